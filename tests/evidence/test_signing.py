"""The published signing keys: every key has a JWK that is the same key as its PEM."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.der import BIT_STRING, OID, SEQUENCE, tlv
from evidence.signing import SigningKeys
from evidence.sm2 import SM2PublicKey, available
from storage.local import LocalObjectStore

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None or not available(), reason="needs openssl with SM2")

EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
SM2_CURVE = bytes.fromhex("2a811ccf5501822d")  # 1.2.156.10197.1.301


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_sm2_and_ed25519_keys_have_jwks_of_the_same_key(tmp_path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    keys = SigningKeys(tmp_path / "keys", store)
    await keys.start()
    try:
        infos = {info.alg: info for info in await keys.public.all(keys.current_kid, keys.current_sm2_kid or "")}
        sm2 = infos["SM2"].as_json()
        jwk = sm2["jwk"]
        assert isinstance(jwk, dict)
        assert {k: jwk[k] for k in ("kty", "crv", "kid", "alg", "use")} == {"kty": "EC", "crv": "SM2", "kid": sm2["kid"], "alg": "SM2SM3", "use": "sig"}
        x, y = unb64url(jwk["x"]), unb64url(jwk["y"])
        assert len(x) == len(y) == 32

        # the SubjectPublicKeyInfo rebuilt from x and y is the published PEM, byte for byte
        spki = tlv(SEQUENCE, tlv(SEQUENCE, tlv(OID, EC_PUBLIC_KEY) + tlv(OID, SM2_CURVE)) + tlv(BIT_STRING, b"\x00\x04" + x + y))
        pem = str(sm2["pem"])
        assert spki == base64.b64decode("".join(line for line in pem.splitlines() if not line.startswith("-----")))
        # openssl reads the same point out of the PEM
        (tmp_path / "sm2.pem").write_text(pem)
        text = subprocess.run(["openssl", "pkey", "-pubin", "-in", "sm2.pem", "-text", "-noout"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
        assert "SM2" in text
        point = re.search(r"pub:\s*((?:[0-9a-f]{2}:?\s*)+)", text)
        assert point is not None and bytes.fromhex(re.sub(r"[:\s]", "", point.group(1))) == b"\x04" + x + y
        # and the key from the JWK verifies what the SM2 key signs
        rebuilt = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(spki) + b"-----END PUBLIC KEY-----\n"
        signed = keys.sign_sm2(b"manifest")
        assert signed is not None and SM2PublicKey(rebuilt).verify(signed[1], b"manifest")

        ed = infos["Ed25519"].as_json()
        ed_jwk = ed["jwk"]
        assert isinstance(ed_jwk, dict) and ed_jwk["kty"] == "OKP" and ed_jwk["crv"] == "Ed25519" and ed_jwk["kid"] == ed["kid"]
        public = serialization.load_pem_public_key(str(ed["pem"]).encode())
        assert isinstance(public, Ed25519PublicKey)
        assert public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == unb64url(ed_jwk["x"])
    finally:
        await keys.close()
        await store.close()
