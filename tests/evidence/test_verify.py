"""Seal, verify, and every kind of tampering named at its place; openssl and sha256sum agree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evidence.journal import Journal
from evidence.manifest import prefix_of
from evidence.signing import SigningKeys
from evidence.verify import verify_inspection
from storage.local import LocalObjectStore

INSPECTION = "20261126120000-00112233aabbccdd"


async def make_sealed(data_dir: Path) -> LocalObjectStore:
    store = LocalObjectStore(data_dir / "objects")
    await store.start()
    keys = SigningKeys(data_dir / "keys", store)
    await keys.start()
    journal = Journal(store, keys)
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
    return store


@pytest.fixture
async def sealed(tmp_path):
    store = await make_sealed(tmp_path)
    yield store, tmp_path
    await store.close()


def path_of(root: Path, relative: str) -> Path:
    return root / "objects" / prefix_of(INSPECTION) / relative


async def test_untouched_evidence_verifies(sealed) -> None:
    store, _ = sealed
    report = await verify_inspection(store, INSPECTION)
    assert report.ok, report.problems
    assert report.objects_checked == 6 and report.events_checked == 8


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


TAMPERING = {
    "flip a media byte": (lambda root: flip_byte(path_of(root, "media/applicant-video/000002.webm")), "media/applicant-video/000002.webm"),
    "flip a still byte": (lambda root: flip_byte(path_of(root, "stills/storefront/1.jpg")), "stills/storefront/1.jpg"),
    "flip a signature byte": (lambda root: flip_byte(path_of(root, "signatures/applicant.png")), "signatures/applicant.png"),
    "delete a segment": (lambda root: path_of(root, "media/applicant-video/000001.webm").unlink(), "media/applicant-video/000001.webm"),
    "add an object": (lambda root: path_of(root, "stills/storefront/2.jpg").write_bytes(b"x"), "stills/storefront/2.jpg"),
    "edit a log line": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: ls[:2] + [retype(ls[2])] + ls[3:]), "events.jsonl"),
    "delete a log line": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: ls[:3] + ls[4:]), "events.jsonl"),
    "delete the last log line": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: ls[:-1]), "events.jsonl"),
    "reorder log lines": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: [ls[1], ls[0]] + ls[2:]), "events.jsonl"),
    "insert a log line": (lambda root: edit_lines(path_of(root, "events.jsonl"), lambda ls: ls[:2] + [ls[1]] + ls[2:]), "events.jsonl"),
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


@pytest.mark.parametrize("name", ["flip a media byte", "edit a log line", "reorder log lines", "edit the manifest"])
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
