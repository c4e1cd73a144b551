"""Takan's own check of RFC 3161 tokens, on tokens from a real TSA (openssl ts -reply), side by side with openssl ts -verify."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from evidence.der import OCTET_STRING, SEQUENCE, SET, Node, read, tlv
from evidence.tsa_token import TokenCheck, TsaTrust, check_token, token_imprint
from testkit.tsa import make_tsa_ca, stamp

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

MANIFEST = b'{"format":"takan-evidence/2","inspection_id":"20261201130000-00112233aabbccdd"}'
DIGEST = hashlib.sha256(MANIFEST).digest()


@pytest.fixture(scope="module")
def tsas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TSAs of each kind, and a CA unrelated to them under the same name (a lookalike)."""
    root = tmp_path_factory.mktemp("tsas")
    return {
        "ec": make_tsa_ca(root / "ec"),
        "rsa": make_tsa_ca(root / "rsa", key="rsa"),
        "chain": make_tsa_ca(root / "chain", intermediate=True),
        "other": make_tsa_ca(root / "other"),
    }


def openssl_agrees(tmp_path: Path, token: bytes, ca: Path, data: bytes = MANIFEST) -> bool:
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "token.tsr").write_bytes(token)
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / "data"), "-in", str(tmp_path / "token.tsr"), "-CAfile", str(ca)],
        capture_output=True, text=True,
    )
    return done.returncode == 0 and "Verification: OK" in done.stdout


def trust(directory: Path) -> TsaTrust:
    return TsaTrust.from_pem_file(directory / "ca.crt")


@pytest.mark.parametrize("kind", ["ec", "rsa", "chain"])
def test_a_good_token_verifies_against_its_ca(tmp_path: Path, tsas: dict[str, Path], kind: str) -> None:
    token = stamp(tsas[kind], DIGEST)
    checked = check_token(token, DIGEST, trust(tsas[kind]))
    assert checked == TokenCheck("trusted", token_imprint(token).gen_time, "CN=Takan Test TSA", "CN=Takan Test Root CA"), checked
    assert openssl_agrees(tmp_path, token, tsas[kind] / "ca.crt")


def test_without_a_ca_it_says_the_tsa_is_not_trusted_but_does_not_fail(tsas: dict[str, Path]) -> None:
    token = stamp(tsas["ec"], DIGEST)
    checked = check_token(token, DIGEST, None)
    assert checked.ok and checked.trust == "untrusted" and checked.gen_time and checked.tsa == "CN=Takan Test TSA"
    assert "not trusted" in (checked.message or "") and "TAKAN_TSA_CA_FILE" in (checked.message or "")


@pytest.mark.parametrize("kind", ["ec", "chain"])
def test_another_ca_of_the_same_name_is_not_trusted(tmp_path: Path, tsas: dict[str, Path], kind: str) -> None:
    token = stamp(tsas[kind], DIGEST)
    checked = check_token(token, DIGEST, trust(tsas["other"]))
    assert checked.trust == "failed" and checked.failure == "chain", checked
    assert "does not chain to a CA in" in (checked.message or "")
    assert not openssl_agrees(tmp_path, token, tsas["other"] / "ca.crt")


def test_a_bundle_with_the_right_ca_among_others_is_trusted(tmp_path: Path, tsas: dict[str, Path]) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes((tsas["other"] / "ca.crt").read_bytes() + (tsas["rsa"] / "ca.crt").read_bytes() + (tsas["ec"] / "ca.crt").read_bytes())
    token = stamp(tsas["ec"], DIGEST)
    assert check_token(token, DIGEST, TsaTrust.from_pem_file(bundle)).trust == "trusted"
    assert openssl_agrees(tmp_path, token, bundle)


def _signer_info(token: bytes) -> Node:
    signed = read(token).child(1).child(1).child(0)
    return signed.children()[-1].child(0)


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_a_flipped_signature_byte_fails(tmp_path: Path, tsas: dict[str, Path], kind: str) -> None:
    token = bytearray(stamp(tsas[kind], DIGEST))
    signature = _signer_info(bytes(token)).child(5, OCTET_STRING)
    token[signature.body + len(signature.content) // 2] ^= 0x01
    for anchors in (trust(tsas[kind]), None):  # broken whether or not a CA is configured
        checked = check_token(bytes(token), DIGEST, anchors)
        assert checked.trust == "failed" and checked.failure == "signature", checked
        assert "signature does not verify" in (checked.message or "")
    assert not openssl_agrees(tmp_path, bytes(token), tsas[kind] / "ca.crt")


def test_an_altered_tstinfo_fails_on_its_message_digest(tmp_path: Path, tsas: dict[str, Path]) -> None:
    token = stamp(tsas["ec"], DIGEST)
    gen_time = token_imprint(token).gen_time or ""
    later = gen_time[:3] + str((int(gen_time[3]) + 1) % 10) + gen_time[4:]  # another year, same length
    altered = token.replace(gen_time.encode(), later.encode(), 1)
    checked = check_token(altered, DIGEST, trust(tsas["ec"]))
    assert checked.failure == "signature" and "messageDigest does not match" in (checked.message or ""), checked
    assert not openssl_agrees(tmp_path, altered, tsas["ec"] / "ca.crt")


def test_a_token_over_another_manifest_is_named(tmp_path: Path, tsas: dict[str, Path]) -> None:
    other = hashlib.sha256(b"another manifest").digest()
    token = stamp(tsas["ec"], other)
    checked = check_token(token, DIGEST, trust(tsas["ec"]))
    assert checked.failure == "other_manifest", checked
    assert f"over another manifest (sha256 {other.hex()[:16]}" in (checked.message or "")
    assert not openssl_agrees(tmp_path, token, tsas["ec"] / "ca.crt")


def _resign(token: bytes, key_pem: Path, sign: Callable[[Any, bytes], bytes], attrs: bytes | None = None, algorithm: bytes | None = None) -> bytes:
    """``token`` with its signed attributes and signature algorithm replaced, signed anew with the TSA's key."""
    from cryptography.hazmat.primitives import serialization

    info = _signer_info(token)
    fields = info.children()
    attrs = attrs if attrs is not None else fields[3].der
    key = serialization.load_pem_private_key(key_pem.read_bytes(), None)
    signature = sign(key, bytes([SET]) + attrs[1:])  # signed as a SET, sent as [0]
    body = b"".join(f.der for f in fields[:3]) + attrs + (algorithm or fields[4].der) + tlv(OCTET_STRING, signature)
    return _replace(token, info, tlv(SEQUENCE, body + b"".join(f.der for f in fields[6:])))


def test_an_ess_attribute_naming_another_certificate_fails(tsas: dict[str, Path]) -> None:
    """Signed by the TSA's own key, but the signing-certificate attribute names another certificate."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    token = stamp(tsas["ec"], DIGEST)
    attrs = _signer_info(token).children()[3].der
    real = hashlib.sha256(_der_cert(tsas["ec"] / "tsa.crt")).digest()
    assert real in attrs
    altered = attrs.replace(real, hashlib.sha256(_der_cert(tsas["other"] / "tsa.crt")).digest())
    resigned = _resign(token, tsas["ec"] / "tsa.key", lambda key, data: key.sign(data, ec.ECDSA(hashes.SHA256())), attrs=altered)
    checked = check_token(resigned, DIGEST, trust(tsas["ec"]))
    assert checked.failure == "signature" and "ESS signing-certificate" in (checked.message or ""), checked


def test_an_rsa_pss_signature_verifies(tmp_path: Path, tsas: dict[str, Path]) -> None:
    """openssl ts -reply signs PKCS#1 v1.5 only; the same token re-signed with RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    sha256 = tlv(SEQUENCE, bytes.fromhex("0609608648016503040201"))
    params = tlv(0xA0, sha256) + tlv(0xA1, tlv(SEQUENCE, bytes.fromhex("06092a864886f70d010108") + sha256)) + tlv(0xA2, bytes.fromhex("020120"))
    pss = tlv(SEQUENCE, bytes.fromhex("06092a864886f70d01010a") + tlv(SEQUENCE, params))

    def sign(key: Any, data: bytes) -> bytes:
        return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())

    resigned = _resign(stamp(tsas["rsa"], DIGEST), tsas["rsa"] / "tsa.key", sign, algorithm=pss)
    assert check_token(resigned, DIGEST, trust(tsas["rsa"])).trust == "trusted"
    # OpenSSL 3.0's ts -verify goes through its PKCS7 code, which checks any RSA signature as
    # PKCS#1 v1.5 and so refuses PSS; its CMS code reads the PSS parameters and accepts this one
    (tmp_path / "token.tsr").write_bytes(resigned)
    subprocess.run(["openssl", "ts", "-reply", "-in", "token.tsr", "-token_out", "-out", "token.der"], cwd=tmp_path, check=True, capture_output=True)
    cms = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", "token.der", "-CAfile", str(tsas["rsa"] / "ca.crt"), "-purpose", "timestampsign", "-out", "tst.der"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert cms.returncode == 0, cms.stderr
    flipped = bytearray(resigned)
    flipped[-10] ^= 0x01  # inside the PSS signature, the last field
    assert check_token(bytes(flipped), DIGEST, trust(tsas["rsa"])).failure == "signature"


def _der_cert(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


def _replace(data: bytes, node: Node, new: bytes) -> bytes:
    """``data`` with ``node`` replaced by ``new``, every enclosing length rewritten."""
    def rebuild(outer: Node) -> bytes:
        if outer.start == node.start and outer.end == node.end:
            return new
        if not outer.constructed or not (outer.body <= node.start and node.end <= outer.end):
            return outer.der
        return tlv(outer.tag, b"".join(rebuild(child) for child in outer.children()))

    return rebuild(read(data))


def test_unreadable_and_refused_responses(tsas: dict[str, Path]) -> None:
    assert check_token(b"\x30\x03\x02\x01", DIGEST, None).failure == "malformed"
    refused = tlv(SEQUENCE, tlv(SEQUENCE, bytes.fromhex("020102")))
    assert check_token(refused, DIGEST, None).failure == "refused"
    assert token_imprint(refused).status == 2 and not token_imprint(refused).granted


def test_a_bundle_without_certificates_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(ValueError, match="PEM bundle"):
        TsaTrust.from_pem_file(tmp_path / "empty.pem")
    with pytest.raises(ValueError, match="cannot read"):
        TsaTrust.from_pem_file(tmp_path / "missing.pem")
