"""Archive packages: the four checks, openssl and sha256sum on the extracted package, and
every way a package can go wrong named by its check and its file."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive.checks import CHECKS, check_package
from archive.package import ExportError, PackageRejected, export_package
from archive.retention import RetentionPolicy
from evidence.signing import public_pem
from privacy.fieldcrypto import FieldCipher, FieldKeys, field_context
from testkit.archive import ID_NUMBER, PHONE, Sealed, make_store

MEDIA = "evidence/media/applicant-video/000001.webm"


@pytest.fixture
async def sealed(tmp_path: Path) -> AsyncIterator[Sealed]:
    sealed = await make_store(tmp_path / "data")
    yield sealed
    await sealed.store.close()


@pytest.fixture
async def package(sealed: Sealed, tmp_path: Path) -> Path:
    out = tmp_path / "package.zip"
    await export_package(sealed.store, sealed.ids[0], out, authority="德州市行政审批服务局")
    return out


async def test_export_passes_all_four_checks(sealed: Sealed, tmp_path: Path) -> None:
    out = tmp_path / "p.zip"
    seen: list[tuple[int, int, str]] = []
    info = await export_package(sealed.store, sealed.ids[0], out, "<p>补充说明：现场有遮挡物。</p>",
                                progress=lambda d, t, w: seen.append((d, t, w)))
    assert seen[0] == (0, 10, "events/00000001.jsonl") and seen[-1] == (10, 10, "done")
    assert [r.name for r in info.check.results] == list(CHECKS)
    assert info.check.ok, info.check.summary()
    assert all(r.checked > 0 for r in info.check.results)
    assert check_package(out).ok
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("evidence/manifest.json"))
        metadata = json.loads(archive.read("metadata.json"))
        html = archive.read("record.html").decode()
    stored = {k.split("/", 2)[2] for k in await sealed.store.list(f"inspections/{sealed.ids[0]}/")}
    assert {n[len("evidence/"):] for n in names if n.startswith("evidence/")} == stored
    assert f"keys/{info.key_id}.pem" in names and {"record.html", "metadata.json", "SHA256SUMS"} <= names
    assert metadata["title"] == "远程踏勘记录 DZ-2026-0001"
    assert metadata["evidence"]["manifest_sha256"] == info.manifest_sha256
    assert metadata["evidence"]["signing_key_id"] == manifest["signature"]["key_id"] == info.key_id
    assert metadata["retention"]["years"] == 30 and metadata["retention"]["disposal_review_from"] == "2057-01-01"
    assert set(metadata["fixity"]["files"]) == names - {"metadata.json", "SHA256SUMS"}
    assert "补充说明：现场有遮挡物。" in html
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


async def test_record_html_shows_the_inspection_without_unmasked_numbers(package: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        html = archive.read("record.html").decode()
        metadata = archive.read("metadata.json").decode()
    assert ID_NUMBER not in html and PHONE not in html
    assert ID_NUMBER not in metadata and PHONE not in metadata
    assert check_package(package)["security"].ok
    assert "3714**********" + ID_NUMBER[-4:] in html  # the applicant's ID, masked
    assert "138****8000" in html  # the phone in the note and chat, masked
    for text in ("远程踏勘记录 DZ-2026-0001", "张小三", "门头及招牌", "后厨操作间", "申请人签名", "签名码",
                 "12分34秒", "通过", "德州市行政审批服务局", "openssl pkeyutl -verify", "sha256sum -c SHA256SUMS",
                 "data:image/jpeg;base64,", "data:image/png;base64,"):
        assert text in html, text


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("sha256sum") is None, reason="needs openssl and sha256sum")
def test_openssl_and_sha256sum_verify_the_extracted_package(package: Path, tmp_path: Path) -> None:
    root = tmp_path / "extracted"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(root)
        kid = json.loads(archive.read("evidence/manifest.json"))["signature"]["key_id"]
    result = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", f"keys/{kid}.pem", "-rawin",
         "-in", "evidence/manifest.json", "-sigfile", "evidence/manifest.json.sig"],
        cwd=root, capture_output=True, text=True,
    )
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stdout + result.stderr
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=root, capture_output=True, text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    manifest = json.loads((root / "evidence" / "manifest.json").read_bytes())
    lines = "".join(f"{o['sha256']}  {o['key']}\n" for o in manifest["objects"])
    objects = subprocess.run(["sha256sum", "-c", "-"], input=lines, cwd=root / "evidence", capture_output=True, text=True)
    assert objects.returncode == 0, objects.stdout + objects.stderr


def flip_raw_byte(path: Path, member: str, offset: int = 40) -> None:
    """Flip a byte of a stored member's data in the zip file itself (its CRC no longer fits)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    name_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
    data[info.header_offset + 30 + name_len + extra_len + offset] ^= 0x01
    path.write_bytes(bytes(data))


def rewrite(path: Path, change: Callable[[str, bytes], bytes | None], add: dict[str, bytes] | None = None) -> None:
    """Rebuild the zip with members changed (None drops one), as a careful forger would."""
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            new = change(info.filename, data)
            if new is not None:
                archive.writestr(info, new)
        for name, data in (add or {}).items():
            archive.writestr(name, data)


def flip(data: bytes, offset: int = 40) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0x01
    return bytes(changed)


def test_a_flipped_byte_fails_integrity_naming_the_file(package: Path) -> None:
    flip_raw_byte(package, MEDIA)
    check = check_package(package)
    assert not check["integrity"].ok
    assert any(p.startswith(MEDIA) for p in check["integrity"].problems), check["integrity"].problems
    assert check["authenticity"].ok  # the manifest itself is intact


def test_a_rewritten_member_fails_integrity_naming_the_file(package: Path) -> None:
    rewrite(package, lambda name, data: flip(data) if name == MEDIA else data)
    check = check_package(package)
    problems = check["integrity"].problems
    assert problems and all(p.startswith(MEDIA) for p in problems), problems
    assert any("metadata.json says" in p for p in problems) and any("the manifest says" in p for p in problems)
    assert [r.name for r in check.failed] == ["integrity"]


CASES = {
    "manifest edited": (lambda n, d: d.replace(b"DZ-2026-0001", b"DZ-2026-9999") if n == "evidence/manifest.json" else d, None, "authenticity", "evidence/manifest.json"),
    "signature flipped": (lambda n, d: flip(d, 3) if n == "evidence/manifest.json.sig" else d, None, "authenticity", "evidence/manifest.json"),
    "key swapped": (lambda n, d: public_pem(Ed25519PrivateKey.generate().public_key()).encode() if n.startswith("keys/") else d, None, "authenticity", "keys/"),
    "key damaged": (lambda n, d: d[:-30] + b"!" * 5 + d[-25:] if n.startswith("keys/") else d, None, "authenticity", "keys/"),
    "object dropped": (lambda n, d: None if n == "evidence/stills/storefront/1.jpg" else d, None, "integrity", "evidence/stills/storefront/1.jpg"),
    "object added": (lambda n, d: d, {"evidence/stills/storefront/2.jpg": b"x"}, "integrity", "evidence/stills/storefront/2.jpg"),
    "path traversal": (lambda n, d: d, {"evidence/../../etc/cron.d/x": b"x"}, "security", "'evidence/../../etc/cron.d/x'"),
    "absolute path": (lambda n, d: d, {"/tmp/x": b"x"}, "security", "'/tmp/x'"),
    "unmasked ID in record": (lambda n, d: d.replace(b"</body>", f"<p>{ID_NUMBER}</p></body>".encode()) if n == "record.html" else d, None, "security", "record.html"),
    "unmasked phone in metadata": (lambda n, d: d.replace(b'"language"', f'"note": "{PHONE}", "language"'.encode()) if n == "metadata.json" else d, None, "security", "metadata.json"),
    "segment not WebM": (lambda n, d: b"RIFF" + d[4:] if n == MEDIA else d, None, "usability", MEDIA),
    "image unreadable": (lambda n, d: d[:40] if n == "evidence/photos/kitchen/1.jpg" else d, None, "usability", "evidence/photos/kitchen/1.jpg"),
    "record unbalanced": (lambda n, d: d.replace(b"</table>", b"", 1) if n == "record.html" else d, None, "usability", "record.html"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_check_names_what_is_wrong(package: Path, case: str) -> None:
    change, add, failing, where = CASES[case]
    rewrite(package, change, add)
    check = check_package(package)
    result = check[failing]
    assert not result.ok, check.summary()
    assert any(p.startswith(where) for p in result.problems), result.problems
    for problem in (p for r in check.results for p in r.problems):
        assert ID_NUMBER not in problem and PHONE not in problem  # problems never leak the numbers


async def test_export_refuses_a_failing_package_and_removes_it(sealed: Sealed, tmp_path: Path) -> None:
    out = tmp_path / "p.zip"
    with pytest.raises(PackageRejected, match="security") as caught:
        await export_package(sealed.store, sealed.ids[0], out, f"<p>身份证 {ID_NUMBER}</p>")
    assert not caught.value.check["security"].ok and caught.value.check["integrity"].ok
    assert ID_NUMBER not in str(caught.value)
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]  # neither the package nor a partial file


async def test_export_refuses_unsealed_or_tampered_evidence(sealed: Sealed, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not sealed"):
        await export_package(sealed.store, "20261126000000-0000000000000000", tmp_path / "a.zip")
    key = f"inspections/{sealed.ids[0]}/photos/kitchen/1.jpg"
    await sealed.store.put(key, flip(await sealed.store.get(key)))
    with pytest.raises(ExportError, match="photos/kitchen/1.jpg"):
        await export_package(sealed.store, sealed.ids[0], tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()
    (tmp_path / "c.zip").write_bytes(b"")
    with pytest.raises(ExportError, match="already exists"):
        await export_package(sealed.store, sealed.ids[0], tmp_path / "c.zip")


async def test_encrypted_applicant_fields_are_shown_masked(sealed: Sealed, tmp_path: Path) -> None:
    keys = FieldKeys(tmp_path / "field-keys")
    keys.start()
    cipher = FieldCipher(keys)
    inspection_id = sealed.ids[0]
    key = f"records/inspections/{inspection_id}.json"
    record = json.loads(await sealed.store.get(key))
    for name in ("id_number", "contact_phone"):
        record["applicant"][name] = cipher.encrypt(record["applicant"][name], field_context("inspection", inspection_id, f"applicant.{name}"))
    await sealed.store.put(key, json.dumps(record).encode())

    hidden = tmp_path / "hidden.zip"
    await export_package(sealed.store, inspection_id, hidden)
    shown = tmp_path / "shown.zip"
    policy = RetentionPolicy.from_data({"items": {"food-business-license": {"years": None, "basis": "永久"}}})
    await export_package(sealed.store, inspection_id, shown, cipher=cipher, retention=policy)
    with zipfile.ZipFile(hidden) as archive:
        assert "加密存储" in archive.read("record.html").decode()
    with zipfile.ZipFile(shown) as archive:
        html = archive.read("record.html").decode()
        metadata = json.loads(archive.read("metadata.json"))
    assert "3714**********" + ID_NUMBER[-4:] in html and ID_NUMBER not in html
    assert metadata["retention"]["period"] == "永久" and metadata["retention"]["disposal_review_from"] is None


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"not a zip")
    check = check_package(path)
    assert not check.ok and len(check.failed) == 4
