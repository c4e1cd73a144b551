"""The outsider's kit: verify.sh checks an exported package with openssl, sha256sum, ffprobe."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from archive.package import export_package
from evidence.manifest import prefix_of
from evidence.tsa import TsaClient
from testkit.archive import Sealed, make_store
from testkit.tsa import TsaServer, make_tsa_ca

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("sha256sum") is None, reason="openssl/sha256sum missing")


@pytest.fixture(scope="module")
def tsa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tsa_ca(tmp_path_factory.mktemp("tsa"))


@pytest.fixture
async def unpacked(tmp_path: Path, tsa_dir: Path) -> AsyncIterator[Path]:
    sealed: Sealed = await make_store(tmp_path / "data")
    inspection_id = sealed.ids[0]
    # a real RFC 3161 token over the manifest, as the timestamper would store it
    tsa = TsaServer(tsa_dir)
    await tsa.start()
    try:
        manifest = await sealed.store.get(prefix_of(inspection_id) + "manifest.json")
        token = await TsaClient([tsa.url]).stamp(hashlib.sha256(manifest).digest())
    finally:
        await tsa.stop()
    await sealed.store.put(prefix_of(inspection_id) + "manifest.tsr", token)
    out = tmp_path / "package.zip"
    await export_package(sealed.store, inspection_id, out)
    await sealed.store.close()
    target = tmp_path / "clean"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(target)
    yield target


def run_kit(root: Path, tsa_ca: Path | None = None) -> subprocess.CompletedProcess[str]:
    # a clean environment: no Takan, no Python needed; just sh and the tools on PATH
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if tsa_ca is not None:
        env["TSA_CA"] = str(tsa_ca)
    return subprocess.run(["sh", "verify.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def copy_of(clean: Path, name: str) -> Path:
    target = clean.parent / name
    shutil.copytree(clean, target)
    return target


def flip(path: Path, offset: int = 40) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def resum(root: Path) -> None:
    """Recompute SHA256SUMS, as a forger would, so that the deeper checks are reached."""
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    (root / "SHA256SUMS").write_text("".join(f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}\n" for n in names))


def edit_chunk(root: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
    path = root / "evidence" / "events" / "00000001.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    path.write_bytes(b"\n".join(change(lines)) + b"\n")


def retype(line: bytes) -> bytes:
    entry = json.loads(line)
    entry["actor"] = "someone-else"
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "a media byte": (lambda r: flip(r / "evidence/media/applicant-video/000001.webm", 60), "SHA256SUMS"),
    "a media byte, sums redone": (lambda r: (flip(r / "evidence/media/applicant-video/000001.webm", 60), resum(r)), "evidence/media/applicant-video/000001.webm"),
    "a log line edited": (lambda r: (edit_chunk(r, lambda ls: ls[:1] + [retype(ls[1])] + ls[2:]), resum(r)), "evidence/events/00000001.jsonl"),
    "a log line removed": (lambda r: (edit_chunk(r, lambda ls: ls[:1] + ls[2:]), resum(r)), "evidence/events/00000001.jsonl"),
    "log lines reordered": (lambda r: (edit_chunk(r, lambda ls: [ls[1], ls[0]] + ls[2:]), resum(r)), "evidence/events/00000001.jsonl"),
    "a chunk deleted": (lambda r: ((r / "evidence/events/00000001.jsonl").unlink(), resum(r)), "evidence/events/00000001.jsonl"),
    "the manifest edited": (lambda r: ((r / "evidence/manifest.json").write_bytes((r / "evidence/manifest.json").read_bytes().replace(b"DZ-2026-0001", b"DZ-2026-0002")), resum(r)), "manifest.json.sig"),
    "the SM2 signature flipped": (lambda r: (flip(r / "evidence/manifest.sm2.sig", 12), resum(r)), "manifest.sm2.sig"),
    "a timestamp of another manifest": (lambda r: ((r / "evidence/manifest.tsr").write_bytes((r / "evidence/manifest.tsr").read_bytes().replace(
        bytes.fromhex(hashlib.sha256((r / "evidence/manifest.json").read_bytes()).hexdigest()), b"\x00" * 32)), resum(r)), "manifest.tsr"),
}


def test_kit_passes_on_a_clean_copy(unpacked: Path, tsa_dir: Path) -> None:
    assert (unpacked / "VERIFY.md").exists() and os.access(unpacked / "verify.sh", os.X_OK) or (unpacked / "verify.sh").exists()
    result = run_kit(unpacked, tsa_dir / "ca.crt")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "SM2 signature" in out and "Ed25519 signature" in out and "hash chain intact" in out, out
    assert "trusted timestamp over this manifest, signed by a TSA" in out, out
    if shutil.which("ffprobe"):
        assert "2 media segments open with ffprobe" in out, out
    assert out.rstrip().endswith("OK: the package verifies")
    # openssl ts -verify accepts the token from the package, on its own
    checked = subprocess.run(["openssl", "ts", "-verify", "-data", "evidence/manifest.json", "-in", "evidence/manifest.tsr",
                              "-CAfile", str(tsa_dir / "ca.crt")], cwd=unpacked, capture_output=True, text=True)
    assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", list(TAMPERING))
def test_kit_names_tampering(unpacked: Path, name: str) -> None:
    root = copy_of(unpacked, "tampered")
    tamper, where = TAMPERING[name]
    tamper(root)
    result = run_kit(root)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert failed and where in failed[0], result.stdout
