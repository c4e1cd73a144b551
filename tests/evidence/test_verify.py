"""Seal, verify, and every kind of tampering named at its place; openssl and sha256sum agree."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evidence.canonical import canonical_json
from evidence.journal import Journal
from evidence.manifest import merkle_root, prefix_of
from evidence.signing import SigningKeys
from evidence.verify import verify_inspection
from storage.local import LocalObjectStore

INSPECTION = "20261126120000-00112233aabbccdd"


async def make_sealed(data_dir: Path) -> LocalObjectStore:
    """8 events in chunks of 3 (events/00000001, 00000004, 00000007.jsonl), sealed."""
    store = LocalObjectStore(data_dir / "objects")
    await store.start()
    keys = SigningKeys(data_dir / "keys", store)
    await keys.start()
    journal = Journal(store, keys, data_dir / "journal", chunk_lines=3)
    await journal.record(INSPECTION, "participant.joined", "inspector", {"id": "inspector"})
    await journal.record(INSPECTION, "participant.joined", "applicant", {"id": "applicant"})
    for seq in (1, 2, 3):
        await journal.record_blob(
            INSPECTION, f"media/applicant-video/{seq:06d}.webm", os.urandom(5000 + seq), "video/webm",
            "media.segment", "recorder", {"track": "applicant-video", "seq": seq},
        )
    await journal.record_blob(INSPECTION, "stills/storefront/1.jpg", os.urandom(3000), "image/jpeg", "still.captured", "inspector", {"checkpoint": "storefront"})
    await journal.record_blob(INSPECTION, "signatures/applicant.png", os.urandom(800), "image/png", "signature.png", "applicant")
    await journal.record(INSPECTION, "session.ended", "inspector", {})
    await journal.seal(INSPECTION, {"id": INSPECTION, "case_no": "C-1"})
    await journal.close()
    return store


async def make_legacy(data_dir: Path) -> LocalObjectStore:
    """The same evidence as Takan wrote it before chunks: one events.jsonl, format 1."""
    store = await make_sealed(data_dir)
    root = data_dir / "objects" / prefix_of(INSPECTION)
    chunks = sorted((root / "events").iterdir())
    log = b"".join(p.read_bytes() for p in chunks)
    shutil.rmtree(root / "events")
    (root / "events.jsonl").write_bytes(log)
    manifest = json.loads((root / "manifest.json").read_bytes())
    manifest["format"] = "takan-evidence/1"
    manifest["log"] = {"key": "events.jsonl", "head": manifest["log"]["head"], "count": manifest["log"]["count"]}
    manifest.pop("signatures")
    (root / "manifest.sm2.sig").unlink()
    objects = [{k: v for k, v in o.items() if k != "sm3"} for o in manifest["objects"] if o["kind"] != "events"]
    objects.append({"key": "events.jsonl", "kind": "events", "size": len(log), "sha256": hashlib.sha256(log).hexdigest()})
    manifest["objects"] = sorted(objects, key=lambda o: o["key"])
    manifest["merkle"]["root"] = merkle_root(manifest["objects"])
    body = canonical_json(manifest)
    keys = SigningKeys(data_dir / "keys", store)
    await keys.start()
    (root / "manifest.json").write_bytes(body)
    (root / "manifest.json.sig").write_bytes(keys.sign(body)[1])
    return store


@pytest.fixture
async def sealed(tmp_path):
    store = await make_sealed(tmp_path)
    yield store, tmp_path
    await store.close()


@pytest.fixture
async def legacy(tmp_path):
    store = await make_legacy(tmp_path)
    yield store, tmp_path
    await store.close()


def path_of(root: Path, relative: str) -> Path:
    return root / "objects" / prefix_of(INSPECTION) / relative


async def test_untouched_evidence_verifies(sealed) -> None:
    store, _ = sealed
    report = await verify_inspection(store, INSPECTION)
    assert report.ok, report.problems
    assert report.objects_checked == 8 and report.events_checked == 8
    chunks = sorted(p.name for p in path_of(store_root(sealed), "events").iterdir())
    assert chunks == ["00000001.jsonl", "00000004.jsonl", "00000007.jsonl"]


def store_root(sealed) -> Path:
    return sealed[1]


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def edit_lines(path: Path, change) -> None:
    lines = path.read_bytes().split(b"\n")[:-1]
    lines = change(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")


def retype(line: bytes) -> bytes:
    entry = json.loads(line)
    entry["actor"] = "someone-else"
    return json.dumps(entry, separators=(",", ":")).encode()


def chunk(root: Path, first: int) -> Path:
    return path_of(root, f"events/{first:08d}.jsonl")


def swap_chunks(root: Path) -> None:
    a, b = chunk(root, 1), chunk(root, 4)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)


def rename_chunk(root: Path) -> None:
    chunk(root, 7).rename(chunk(root, 5))


LEGACY_TAMPERING = {
    "edit a log line": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: ls[:2] + [retype(ls[2])] + ls[3:]), "events.jsonl"),
    "delete a log line": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: ls[:3] + ls[4:]), "events.jsonl"),
    "delete the last log line": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: ls[:-1]), "events.jsonl"),
    "reorder log lines": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: [ls[1], ls[0]] + ls[2:]), "events.jsonl"),
    "insert a log line": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: ls[:2] + [ls[1]] + ls[2:]), "events.jsonl"),
    "flip a media byte": (lambda root: flip_byte(path_of(root, "media/applicant-video/000002.webm")), "media/applicant-video/000002.webm"),
}

TAMPERING = {
    "edit a log line": (lambda root: edit_lines(chunk(root, 4), lambda ls: ls[:1] + [retype(ls[1])] + ls[2:]), "events/00000004.jsonl"),
    "delete a log line": (lambda root: edit_lines(chunk(root, 4), lambda ls: ls[:1] + ls[2:]), "events/00000004.jsonl"),
    "delete the last log line": (lambda root: edit_lines(chunk(root, 7), lambda ls: ls[:-1]), "events/00000007.jsonl"),
    "truncate a chunk mid-line": (lambda root: chunk(root, 4).write_bytes(chunk(root, 4).read_bytes()[:100]), "events/00000004.jsonl"),
    "reorder log lines": (lambda root: edit_lines(chunk(root, 1), lambda ls: [ls[1], ls[0]] + ls[2:]), "events/00000001.jsonl"),
    "insert a log line": (lambda root: edit_lines(chunk(root, 4), lambda ls: ls[:2] + [ls[1]] + ls[2:]), "events/00000004.jsonl"),
    "delete a chunk": (lambda root: chunk(root, 4).unlink(), "events/00000004.jsonl"),
    "delete the last chunk": (lambda root: chunk(root, 7).unlink(), "events/00000007.jsonl"),
    "reorder chunks": (swap_chunks, "events/00000001.jsonl"),
    "rename a chunk": (rename_chunk, "events/00000007.jsonl"),
    "add a chunk": (lambda root: chunk(root, 9).write_bytes(chunk(root, 7).read_bytes()), "events/00000009.jsonl"),
    "flip a media byte": (lambda root: flip_byte(path_of(root, "media/applicant-video/000002.webm")), "media/applicant-video/000002.webm"),
}

TAMPERING = {
    "flip a media byte": (lambda root: flip_byte(path_of(root, "media/applicant-video/000002.webm")), "media/applicant-video/000002.webm"),
    "flip a still byte": (lambda root: flip_byte(path_of(root, "stills/storefront/1.jpg")), "stills/storefront/1.jpg"),
    "flip a signature byte": (lambda root: flip_byte(path_of(root, "signatures/applicant.png")), "signatures/applicant.png"),
    "delete a segment": (lambda root: path_of(root, "media/applicant-video/000001.webm").unlink(), "media/applicant-video/000001.webm"),
    "add an object": (lambda root: path_of(root, "stills/storefront/2.jpg").write_bytes(b"x"), "stills/storefront/2.jpg"),
    "edit a log line": (lambda root: edit_lines(chunk(root, 4), lambda ls: ls[:1] + [retype(ls[1])] + ls[2:]), "events/00000004.jsonl"),
    "delete a log line": (lambda root: edit_lines(chunk(root, 4), lambda ls: ls[:1] + ls[2:]), "events/00000004.jsonl"),
    "delete the last log line": (lambda root: edit_lines(chunk(root, 7), lambda ls: ls[:-1]), "events/00000007.jsonl"),
    "truncate a chunk mid-line": (lambda root: chunk(root, 4).write_bytes(chunk(root, 4).read_bytes()[:100]), "events/00000004.jsonl"),
    "reorder log lines": (lambda root: edit_lines(chunk(root, 1), lambda ls: [ls[1], ls[0]] + ls[2:]), "events/00000001.jsonl"),
    "insert a log line": (lambda root: edit_lines(chunk(root, 4), lambda ls: ls[:2] + [ls[1]] + ls[2:]), "events/00000004.jsonl"),
    "delete a chunk": (lambda root: chunk(root, 4).unlink(), "events/00000004.jsonl"),
    "delete the last chunk": (lambda root: chunk(root, 7).unlink(), "events/00000007.jsonl"),
    "reorder chunks": (swap_chunks, "events/00000001.jsonl"),
    "rename a chunk": (rename_chunk, "events/00000007.jsonl"),
    "add a chunk": (lambda root: chunk(root, 9).write_bytes(chunk(root, 7).read_bytes()), "events/00000009.jsonl"),
    "edit the manifest": (lambda root: path_of(root, "manifest.json").write_bytes(path_of(root, "manifest.json").read_bytes().replace(b'"C-1"', b'"C-2"')), "manifest.json"),
    "flip a signature bit": (lambda root: flip_byte(path_of(root, "manifest.json.sig"), 3), "manifest.json"),
}


@pytest.mark.parametrize("name", list(TAMPERING))
async def test_tampering_is_named(sealed, name) -> None:
    store, root = sealed
    tamper, where = TAMPERING[name]
    tamper(root)
    report = await verify_inspection(store, INSPECTION)
    assert not report.ok
    assert report.first_problem.where.startswith(where), report.problems


@pytest.mark.parametrize("name", ["flip a media byte", "edit a log line", "reorder chunks", "edit the manifest"])
def test_cli_verify_exit_codes(tmp_path, name) -> None:
    import asyncio

    store = asyncio.run(make_sealed(tmp_path))
    asyncio.run(store.close())
    takan = [sys.executable, "-m", "takan", "verify", "--data-dir", str(tmp_path), INSPECTION]
    good = subprocess.run(takan, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.startswith("OK ")
    assert "checked" in good.stderr  # progress was shown
    TAMPERING[name][0](tmp_path)
    bad = subprocess.run(takan, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert TAMPERING[name][1] in bad.stdout.splitlines()[0], bad.stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_and_sha256sum_agree(sealed, tmp_path) -> None:
    store, root = sealed
    prefix = root / "objects" / prefix_of(INSPECTION)
    manifest = json.loads((prefix / "manifest.json").read_bytes())
    kid = manifest["signature"]["key_id"]
    pem = root / "objects" / "system" / "keys" / f"{kid}.pem"
    result = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin",
         "-in", str(prefix / "manifest.json"), "-sigfile", str(prefix / "manifest.json.sig")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stdout + result.stderr
    lines = "".join(f"{o['sha256']}  {o['key']}\n" for o in manifest["objects"])
    check = subprocess.run(["sha256sum", "-c", "-"], input=lines, cwd=prefix, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    flip_byte(prefix / "manifest.json", 40)
    result = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin",
         "-in", str(prefix / "manifest.json"), "-sigfile", str(prefix / "manifest.json.sig")],
        capture_output=True, text=True,
    )
    assert result.returncode != 0


async def test_rotation_keeps_old_manifests_valid(tmp_path) -> None:
    store = await make_sealed(tmp_path)
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    old = keys.current_kid
    new = await keys.rotate()
    assert new != old
    assert (await verify_inspection(store, INSPECTION)).ok
    kids = {k.kid for k in await keys.public.all()}
    assert {old, new} <= kids
    await store.close()


async def test_legacy_single_object_log_verifies(legacy) -> None:
    store, root = legacy
    assert not path_of(root, "events").exists()
    report = await verify_inspection(store, INSPECTION)
    assert report.ok, report.problems
    assert report.objects_checked == 6 and report.events_checked == 8


async def test_legacy_log_continues_in_chunks(legacy) -> None:
    store, root = legacy
    keys = SigningKeys(root / "keys", store)
    await keys.start()
    journal = Journal(store, keys, root / "journal", chunk_lines=3)
    await journal.seal(INSPECTION, {"id": INSPECTION, "case_no": "C-1"}, {"outcome": "pass"}, "r1", ("judgement.recorded", "system", {}))
    await journal.close()
    assert sorted(p.name for p in path_of(root, "events").iterdir()) == ["00000009.jsonl"]
    report = await verify_inspection(store, INSPECTION)
    assert report.ok, report.problems
    assert report.events_checked == 9
    manifest = json.loads(path_of(root, "manifest.json").read_bytes())
    assert manifest["log"]["chunks"] == ["events.jsonl", "events/00000009.jsonl"]
    assert len(await Journal(store, keys).events(INSPECTION)) == 9


@pytest.mark.parametrize("name", list(LEGACY_TAMPERING))
async def test_legacy_tampering_is_named(legacy, name) -> None:
    store, root = legacy
    tamper, where = LEGACY_TAMPERING[name]
    tamper(root)
    report = await verify_inspection(store, INSPECTION)
    assert not report.ok
    assert report.first_problem.where.startswith(where), report.problems
