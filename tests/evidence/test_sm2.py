"""SM2 and SM3 through OpenSSL agree with the openssl CLI; manifests carry both signatures."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess

import pytest

from evidence.signing import SigningKeys
from evidence.sm2 import SM2Error, SM2PrivateKey, sm3_hex
from evidence.verify import verify_inspection
from storage.local import LocalObjectStore
from takan.config import ConfigError, load_config
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


def _no_sm2(monkeypatch: pytest.MonkeyPatch) -> None:
    """A libcrypto without SM2 (Debian's has it; some FIPS builds do not)."""

    def refuse(cls: type) -> SM2PrivateKey:
        raise SM2Error("this libcrypto has no SM2 (built with no-sm2?)")

    monkeypatch.setattr(SM2PrivateKey, "generate", classmethod(refuse))


async def test_a_deployment_that_requires_sm2_refuses_to_start_without_it(tmp_path, monkeypatch, caplog) -> None:
    _no_sm2(monkeypatch)
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    with pytest.raises(SM2Error, match="TAKAN_REQUIRE_SM2"):
        await SigningKeys(tmp_path / "required", store, require_sm2=True).start()
    # one that does not require it signs with Ed25519 alone and says so
    keys = SigningKeys(tmp_path / "optional", store)
    with caplog.at_level(logging.WARNING, logger="evidence.signing"):
        await keys.start()
    assert keys.sign_sm2(b"manifest") is None and keys.current_kid
    assert any("Ed25519 only" in r.getMessage() for r in caplog.records)
    await store.close()


async def test_a_manifest_without_sm2_fails_where_sm2_is_required(tmp_path, monkeypatch) -> None:
    _no_sm2(monkeypatch)
    store = await make_sealed(tmp_path)
    manifest = json.loads((path_of(tmp_path, "") / "manifest.json").read_bytes())
    assert [s["alg"] for s in manifest.get("signatures", [])] in ([], ["Ed25519"])
    assert (await verify_inspection(store, INSPECTION)).ok
    report = await verify_inspection(store, INSPECTION, require_sm2=True)
    assert not report.ok and "SM2" in str(report.first_problem)
    await store.close()


def test_require_sm2_is_a_setting() -> None:
    assert load_config({}, env={}).require_sm2 is False
    assert load_config({}, env={"TAKAN_REQUIRE_SM2": "true"}).require_sm2 is True
    assert load_config({"require_sm2": True}, env={}).require_sm2 is True
    with pytest.raises(ConfigError, match="TAKAN_REQUIRE_SM2"):
        load_config({}, env={"TAKAN_REQUIRE_SM2": "maybe"})


def test_keys_rotate_without_sm2_rotates_ed25519_and_says_what_to_do(tmp_path, monkeypatch, capsys) -> None:
    """A libcrypto without SM2: `takan keys rotate` made a traceback; now the Ed25519 key
    rotates and the missing SM2 is named with what to install. Where SM2 is required the
    command refuses, naming the setting."""
    from takan import cli

    _no_sm2(monkeypatch)
    monkeypatch.delenv("TAKAN_REQUIRE_SM2", raising=False)
    assert cli.main(["keys", "--data-dir", str(tmp_path), "rotate"]) == 0
    out, err = capsys.readouterr()
    assert "(Ed25519) is now current" in out and "Traceback" not in err
    assert "no SM2 key was made" in err and "libssl3" in err
    assert out.count("(current)") == 1
    monkeypatch.setenv("TAKAN_REQUIRE_SM2", "true")
    assert cli.main(["keys", "--data-dir", str(tmp_path), "rotate"]) != 0
    out, err = capsys.readouterr()
    assert "TAKAN_REQUIRE_SM2" in err and "Traceback" not in err
