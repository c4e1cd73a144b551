"""SM2 and SM3 through OpenSSL agree with the openssl CLI; manifests carry both signatures."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from evidence.sm2 import SM2PrivateKey, sm3_hex
from evidence.verify import verify_inspection
from tests.evidence.test_verify import INSPECTION, make_sealed, path_of

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def test_openssl_verifies_our_signature_and_we_verify_its(tmp_path) -> None:
    key = SM2PrivateKey.generate()
    (tmp_path / "k.pem").write_bytes(key.private_pem())
    (tmp_path / "pub.pem").write_bytes(key.public_pem())
    (tmp_path / "m").write_bytes(b"manifest " * 300)
    (tmp_path / "s").write_bytes(key.sign(b"manifest " * 300))
    ok = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-digest", "sm3", "-in", "m", "-sigfile", "s"],
                        cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    theirs = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", "k.pem", "-rawin", "-digest", "sm3", "-in", "m"], cwd=tmp_path, capture_output=True).stdout
    assert key.public_key().verify(theirs, b"manifest " * 300)
    assert not key.public_key().verify(theirs, b"manifest " * 301)
    digest = subprocess.run(["openssl", "dgst", "-sm3", "-r", "m"], cwd=tmp_path, capture_output=True, text=True).stdout.split()[0]
    assert digest == sm3_hex(b"manifest " * 300)


async def test_sealed_manifest_has_sm3_and_an_sm2_signature_openssl_accepts(tmp_path) -> None:
    store = await make_sealed(tmp_path)
    prefix = path_of(tmp_path, "")
    manifest = json.loads((prefix / "manifest.json").read_bytes())
    assert all(len(o["sm3"]) == 64 for o in manifest["objects"])
    sm2 = next(s for s in manifest["signatures"] if s["alg"] == "SM2")
    pem = tmp_path / "objects" / "system" / "keys" / f"{sm2['key_id']}.pem"
    ok = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin", "-digest", "sm3",
                         "-in", "manifest.json", "-sigfile", "manifest.sm2.sig"], cwd=prefix, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = await verify_inspection(store, INSPECTION, require_sm2=True)
    assert report.ok and report.sm2_key_id == sm2["key_id"], report.problems
    # a flipped bit in the SM2 signature is named
    sig = bytearray((prefix / "manifest.sm2.sig").read_bytes())
    sig[10] ^= 1
    (prefix / "manifest.sm2.sig").write_bytes(bytes(sig))
    report = await verify_inspection(store, INSPECTION)
    assert not report.ok and "SM2 signature does not verify" in str(report.first_problem)
    (prefix / "manifest.sm2.sig").unlink()
    report = await verify_inspection(store, INSPECTION)
    assert not report.ok and report.first_problem.where == "manifest.sm2.sig"
    await store.close()
