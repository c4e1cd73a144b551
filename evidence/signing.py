"""The keys that sign manifests: Ed25519, and SM2 beside it (:mod:`evidence.sm2`).

Private keys live in ``<data dir>/keys/`` (mode 0600); the current key id is in
``keys/current``. Public keys are also published to the object store under
``system/keys/<kid>.pem`` so that manifests stay verifiable from the store alone, after a
rotation, a backup/restore, or on another machine. A key id is the first 16 hex digits of
SHA-256 over the raw 32-byte public key.

SM2 keys live in ``<data dir>/keys/sm2/`` (PKCS#8 PEM, mode 0600, pointer ``current``) and
are published the same way with ``"alg": "SM2"``; an SM2 key id is the first 16 hex digits
of SHA-256 over the uncompressed public point ``04||X||Y``. Both rotate the same way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from storage.objects import ObjectNotFound, ObjectStore, StorageUnavailable

from .chainlog import rfc3339_ms, utc_now
from .sm2 import SM2Error, SM2PrivateKey, SM2PublicKey, public_point

logger = logging.getLogger(__name__)

PUBLIC_PREFIX = "system/keys/"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def public_jwk(public: Ed25519PublicKey, kid: str) -> dict[str, str]:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": kid, "alg": "EdDSA", "use": "sig"}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sm2_public_jwk(pem: bytes, kid: str) -> dict[str, str]:
    """The JWK of an SM2 public key: ``kty`` EC, ``crv`` SM2, the point's 32-byte X and Y.

    No IANA registry names SM2 for JOSE; ``crv: "SM2"`` is what SM2-aware JOSE code writes
    (jsrsasign, fibjs, DID documents' SM2 verification keys, the expired
    draft-dang-webauthn-sm2), and ``alg: "SM2SM3"`` is RFC 9563's name for the SM2
    signature with SM3 (the default distinguishing ID), see docs/evidence.md.
    """
    point = public_point(pem)
    if len(point) != 65 or point[0] != 0x04:
        raise ValueError("not an uncompressed SM2 public point")
    return {"kty": "EC", "crv": "SM2", "x": _b64url(point[1:33]), "y": _b64url(point[33:]), "kid": kid, "alg": "SM2SM3", "use": "sig"}


def sm2_key_id(pem: bytes) -> str:
    return hashlib.sha256(public_point(pem)).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKeyInfo:
    kid: str
    pem: str
    created_at: str
    current: bool
    alg: str = "Ed25519"

    def jwk(self) -> Optional[dict[str, str]]:
        """The key as a JWK (RFC 7517), or None for an algorithm without one."""
        if self.alg == "SM2":
            return sm2_public_jwk(self.pem.encode(), self.kid)
        if self.alg != "Ed25519":
            return None
        public = serialization.load_pem_public_key(self.pem.encode())
        assert isinstance(public, Ed25519PublicKey)
        return public_jwk(public, self.kid)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"kid": self.kid, "alg": self.alg, "pem": self.pem}
        jwk = self.jwk()
        if jwk is not None:
            out["jwk"] = jwk
        out.update(created_at=self.created_at, current=self.current)
        return out


class PublicKeys:
    """Public keys read from the object store: all a verifier needs."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def get(self, kid: str) -> Optional[Ed25519PublicKey]:
        if not kid.isalnum():
            return None
        try:
            record = json.loads(await self._store.get(f"{PUBLIC_PREFIX}{kid}.json"))
        except ObjectNotFound:
            return None
        if record.get("alg", "Ed25519") != "Ed25519":
            return None
        public = serialization.load_pem_public_key(record["pem"].encode())
        return public if isinstance(public, Ed25519PublicKey) else None

    async def pem(self, kid: str) -> Optional[tuple[str, str]]:
        """(alg, PEM) of the published key ``kid``, or None."""
        if not kid.isalnum():
            return None
        try:
            record = json.loads(await self._store.get(f"{PUBLIC_PREFIX}{kid}.json"))
        except ObjectNotFound:
            return None
        return str(record.get("alg", "Ed25519")), str(record["pem"])

    async def all(self, current: Optional[str] = None, *also_current: str) -> list[PublicKeyInfo]:
        out = []
        currents = {current, *also_current}
        for name in await self._store.list(PUBLIC_PREFIX):
            if name.endswith(".json"):
                record = json.loads(await self._store.get(name))
                out.append(PublicKeyInfo(record["kid"], record["pem"], record["created_at"], record["kid"] in currents, record.get("alg", "Ed25519")))
        return sorted(out, key=lambda k: k.created_at)

    async def verify_sm2(self, kid: str, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is the published SM2 key ``kid``'s signature over ``data``."""
        found = await self.pem(kid)
        if found is None or found[0] != "SM2":
            return False
        return SM2PublicKey(found[1].encode()).verify(signature, data)

    async def verify(self, kid: str, signature: bytes, data: bytes) -> bool:
        public = await self.get(kid)
        if public is None:
            return False
        try:
            public.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class SigningKeys:
    """The signer's private keys; generates one on first start."""

    def __init__(self, directory: Path, store: ObjectStore, sm2: bool = True, require_sm2: bool = False) -> None:
        self._dir = directory
        self._store = store
        self.public = PublicKeys(store)
        self.sm2 = sm2 or require_sm2
        #: A deployment that requires SM2 refuses to start without it; one that does not signs
        #: Ed25519 alone (with a warning) on a libcrypto that lacks SM2.
        self.require_sm2 = require_sm2
        self._current: Optional[tuple[str, Ed25519PrivateKey]] = None
        self._current_sm2: Optional[tuple[str, SM2PrivateKey]] = None

    @property
    def current_sm2_kid(self) -> Optional[str]:
        """The current SM2 key id (None when SM2 signing is off)."""
        return self._current_sm2[0] if self._current_sm2 is not None else None

    @property
    def current_kid(self) -> str:
        if self._current is None:
            raise RuntimeError("call SigningKeys.start() first")
        return self._current[0]

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        pointer = self._dir / "current"
        if pointer.exists():
            kid = pointer.read_text().strip()
            self._current = (kid, self._load(kid))
        else:
            await self.rotate()
        # (re)publish every local public key: the store may be new or restored
        for path in sorted(self._dir.glob("*.key")):
            await self._publish(path.stem, self._load(path.stem))
        if self.sm2:
            try:
                await self._start_sm2()
            except SM2Error as exc:
                if self.require_sm2:
                    raise SM2Error(f"SM2 signatures are required (TAKAN_REQUIRE_SM2) but cannot be made: {exc}") from exc
                logger.warning("manifests are signed with Ed25519 only: %s", exc)

    async def _start_sm2(self) -> None:
        sm2_dir = self._dir / "sm2"
        pointer = sm2_dir / "current"
        if pointer.exists():
            kid = pointer.read_text().strip()
            self._current_sm2 = (kid, SM2PrivateKey.from_pem((sm2_dir / f"{kid}.key").read_bytes()))
        else:
            await self.rotate_sm2()
        for path in sorted(sm2_dir.glob("*.key")):
            await self._publish_sm2(path.stem, SM2PrivateKey.from_pem(path.read_bytes()).public_pem())

    async def close(self) -> None:
        self._current = None
        self._current_sm2 = None

    async def rotate_sm2(self) -> str:
        """Make a new current SM2 key; old ones stay published."""
        private = SM2PrivateKey.generate()
        public = private.public_pem()
        kid = sm2_key_id(public)
        sm2_dir = self._dir / "sm2"
        sm2_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(sm2_dir / f"{kid}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private.private_pem())
            os.fsync(handle.fileno())
        tmp = sm2_dir / "current.tmp"
        tmp.write_text(kid)
        os.replace(tmp, sm2_dir / "current")
        await self._publish_sm2(kid, public)
        self._current_sm2 = (kid, private)
        logger.info("SM2 signing key %s is now current", kid)
        return kid

    async def _unpublished(self, name: str) -> bool:
        """Whether the public key record ``name`` is not in the store yet. A store that cannot
        tell (an outage at start) gets it again, spooled: a node must start in an outage, and
        the record's key is the same (only its ``created_at`` may move)."""
        try:
            return await self._store.head(name) is None
        except StorageUnavailable:
            return True

    async def _publish_sm2(self, kid: str, pem: bytes) -> None:
        name = f"{PUBLIC_PREFIX}{kid}.json"
        if not await self._unpublished(name):
            return
        record = {"kid": kid, "alg": "SM2", "pem": pem.decode(), "created_at": rfc3339_ms(utc_now())}
        await self._store.put(name, json.dumps(record).encode(), "application/json")
        await self._store.put(f"{PUBLIC_PREFIX}{kid}.pem", pem, "application/x-pem-file")

    def sign_sm2(self, data: bytes) -> Optional[tuple[str, bytes]]:
        """(key id, DER SM2 signature) over ``data``, or None when SM2 signing is off."""
        if self._current_sm2 is None:
            return None
        kid, private = self._current_sm2
        return kid, private.sign(data)

    def _load(self, kid: str) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key((self._dir / f"{kid}.key").read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"signing key {kid} is not an Ed25519 key")
        return key

    async def rotate(self) -> str:
        """Make a new current key; old keys stay published so old manifests verify."""
        private = Ed25519PrivateKey.generate()
        kid = key_id(private.public_key())
        path = self._dir / f"{kid}.key"
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            os.fsync(handle.fileno())
        tmp = self._dir / "current.tmp"
        tmp.write_text(kid)
        os.replace(tmp, self._dir / "current")
        await self._publish(kid, private)
        self._current = (kid, private)
        logger.info("signing key %s is now current", kid)
        return kid

    async def _publish(self, kid: str, private: Ed25519PrivateKey) -> None:
        name = f"{PUBLIC_PREFIX}{kid}.json"
        if not await self._unpublished(name):
            return
        created = rfc3339_ms(utc_now())
        record = {"kid": kid, "alg": "Ed25519", "pem": public_pem(private.public_key()), "created_at": created}
        await self._store.put(name, json.dumps(record).encode(), "application/json")
        await self._store.put(f"{PUBLIC_PREFIX}{kid}.pem", record["pem"].encode(), "application/x-pem-file")

    def sign(self, data: bytes) -> tuple[str, bytes]:
        if self._current is None:
            raise RuntimeError("call SigningKeys.start() first")
        kid, private = self._current
        return kid, private.sign(data)
