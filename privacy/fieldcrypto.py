"""Encryption of sensitive fields at rest (clause 5.8): ID numbers, phone numbers, TOTP secrets.

A field is stored as a self-describing string::

    enc:v1:<kid>:<base64url(nonce | ciphertext | tag)>

AES-256-GCM with a random 96-bit nonce; the associated data binds the value to its place
(``context``, e.g. ``inspection:<id>:applicant.id_number``, see :func:`field_context`) and to
the version and key id, so a value copied to another record or field, or re-labelled with
another key id, does not decrypt.

Keys are 256-bit random keys in ``<directory>/<kid>.key`` (mode 0600, one base64 line),
``<directory>/current`` names the key new values are encrypted with, and
``<directory>/index.key`` is the separate, never-rotated key of the blind index
(:meth:`FieldCipher.lookup_hash`). The directory is not part of the object store on
purpose: a backup of the store holds only ciphertext, and the keys are backed up on their own
(losing them loses the data; keep two offline copies).

Rotation: :meth:`FieldKeys.rotate` makes a new current key; old keys stay, so old values
still decrypt, and :meth:`FieldCipher.reencrypt` moves a value to the current key (a
migration walks the records and rewrites every value whose :func:`kid_of` is not current;
only then may an old key file be retired). Several nodes share one key directory (a mounted
secret); a node that meets a key id it has not loaded reads it from the directory, and
:meth:`FieldKeys.reload` picks up another node's rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "TOKEN_PREFIX",
    "DecryptionFailed",
    "FieldCipher",
    "FieldCryptoError",
    "FieldKeys",
    "decrypt_fields",
    "encrypt_fields",
    "MalformedToken",
    "MissingKey",
    "field_context",
    "is_encrypted",
    "kid_of",
]

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "enc:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
CURRENT = "current"
INDEX_KEY = "index.key"

_KID = re.compile(r"[0-9a-f]{16}\Z")
_BODY = re.compile(r"[A-Za-z0-9_-]+\Z")
_PURPOSE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")


class FieldCryptoError(ValueError):
    """A field could not be encrypted or decrypted; the message says why and what to do."""


class MissingKey(FieldCryptoError):
    """The key a value was encrypted with (``exc.kid``) is not in the key directory."""

    def __init__(self, kid: str, directory: Path) -> None:
        super().__init__(
            f"field key {kid!r} is not in {directory}: it was removed, or this node uses another "
            f"key directory; restore {directory / (kid + '.key')} from the key backup"
        )
        self.kid = kid


class DecryptionFailed(FieldCryptoError):
    """The value does not decrypt: altered, or encrypted for another context."""


class MalformedToken(FieldCryptoError):
    """The string is not an ``enc:v1:<kid>:<data>`` token."""


def is_encrypted(value: object) -> bool:
    """Whether ``value`` looks like a field encrypted by :class:`FieldCipher`."""
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def _parse(token: str) -> tuple[str, bytes]:
    if not is_encrypted(token):
        raise MalformedToken(f"not an encrypted field (expected {TOKEN_PREFIX}<kid>:<data>): {token[:12]!r}…")
    kid, sep, body = token[len(TOKEN_PREFIX):].partition(":")
    if not sep or not _KID.match(kid) or not _BODY.match(body):
        raise MalformedToken(f"malformed encrypted field {token[:32]!r}…: expected {TOKEN_PREFIX}<16 hex kid>:<base64url>")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken(f"encrypted field with key {kid} has invalid base64url data") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise MalformedToken(f"encrypted field with key {kid} is too short ({len(raw)} bytes) to hold a nonce and a tag")
    return kid, raw


def kid_of(token: str) -> str:
    """The key id an encrypted field names (raises :class:`MalformedToken` for other strings)."""
    return _parse(token)[0]


def field_context(kind: str, record_id: str, field: str) -> str:
    """The associated-data context of one field: ``"<kind>:<record id>:<field path>"``.

    For example ``field_context("inspection", "2026…-ab12", "applicant.id_number")`` or
    ``field_context("account", user_id, "totp_secret")``.
    """
    for name, part in (("kind", kind), ("record_id", record_id)):
        if not part or ":" in part:
            raise ValueError(f"field_context: {name} {part!r} must be non-empty and contain no ':'")
    if not field:
        raise ValueError("field_context: field must be non-empty")
    return f"{kind}:{record_id}:{field}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FieldKeys:
    """The AES-256 field keys and the blind-index key in one directory.

    Call :meth:`start` before use: it creates the directory (mode 0700) and, on the very
    first start, the first key and the index key. It refuses to invent a replacement for a
    lost ``current`` pointer or ``index.key`` while other keys exist, since that would
    quietly make stored values or lookup hashes unreachable.
    """

    def __init__(self, directory: Path) -> None:
        self._dir = Path(directory)
        self._keys: dict[str, bytes] = {}
        self._current: str | None = None
        self._index: bytes | None = None
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        """Where the key files live."""
        return self._dir

    def start(self) -> None:
        """Load the keys, generating the first ones if the directory holds none. Idempotent."""
        with self._lock:
            if self._current is not None:
                return
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            existing = self._kids_on_disk()
            pointer = self._dir / CURRENT
            index = self._dir / INDEX_KEY
            if not existing and not pointer.exists() and not index.exists():
                self._index = self._write_new(index)
                self._make_current(self._new_kid())
                logger.info("field keys created in %s (current %s); back this directory up now", self._dir, self._current)
                return
            if not index.exists():
                raise FieldCryptoError(
                    f"{index} is missing but field keys exist: restore it from the key backup "
                    "(a new index key would make every stored lookup hash unmatchable)"
                )
            if not pointer.exists():
                raise FieldCryptoError(
                    f"{pointer} is missing: write the id of the key to encrypt with into it "
                    f"(one of {', '.join(existing) or 'none'}), or restore it from the key backup"
                )
            self._index = self._read_key(index)
            kid = pointer.read_text().strip()
            if not _KID.match(kid):
                raise FieldCryptoError(f"{pointer} holds {kid!r}, not a key id (16 hex digits): fix or restore it")
            self._keys[kid] = self._load(kid)
            self._current = kid
            logger.info("field keys loaded from %s (current %s, %d keys)", self._dir, kid, len(existing))

    def close(self) -> None:
        """Forget the loaded keys (they are read again by the next :meth:`start`)."""
        with self._lock:
            self._keys.clear()
            self._current = None
            self._index = None

    def reload(self) -> None:
        """Re-read the ``current`` pointer (after another node rotated)."""
        if self._current is None:
            raise RuntimeError("FieldKeys is not started: call keys.start() first")
        pointer = self._dir / CURRENT
        kid = pointer.read_text().strip()
        if not _KID.match(kid):
            raise FieldCryptoError(f"{pointer} holds {kid!r}, not a key id (16 hex digits): fix or restore it")
        key = self._load(kid)
        with self._lock:
            self._keys[kid] = key
            self._current = kid

    @property
    def current_kid(self) -> str:
        """The id of the key new values are encrypted with."""
        if self._current is None:
            raise RuntimeError("FieldKeys is not started: call keys.start() first")
        return self._current

    @property
    def index_key(self) -> bytes:
        """The blind-index HMAC key (never rotated)."""
        if self._index is None:
            raise RuntimeError("FieldKeys is not started: call keys.start() first")
        return self._index

    def key(self, kid: str) -> bytes:
        """The key with id ``kid``, read from the directory if not loaded yet."""
        if self._current is None:
            raise RuntimeError("FieldKeys is not started: call keys.start() first")
        with self._lock:
            found = self._keys.get(kid)
            if found is None:
                if not _KID.match(kid):
                    raise MissingKey(kid, self._dir)
                found = self._keys[kid] = self._load(kid)
            return found

    def kids(self) -> list[str]:
        """The ids of every key in the directory, sorted."""
        return self._kids_on_disk()

    def rotate(self) -> str:
        """Make a new key current and return its id; older keys stay and still decrypt."""
        if self._current is None:
            raise RuntimeError("FieldKeys is not started: call keys.start() first")
        with self._lock:
            kid = self._new_kid()
            self._make_current(kid)
        logger.info("field key %s is now current in %s; re-encrypt old values, then back up the key directory", kid, self._dir)
        return kid

    # ---- files ------------------------------------------------------------------------------

    def _kids_on_disk(self) -> list[str]:
        if not self._dir.is_dir():
            return []
        return sorted(p.stem for p in self._dir.glob("*.key") if _KID.match(p.stem))

    def _new_kid(self) -> str:
        while True:
            kid = secrets.token_hex(8)
            if not (self._dir / f"{kid}.key").exists():
                return kid

    def _make_current(self, kid: str) -> None:
        self._keys[kid] = self._write_new(self._dir / f"{kid}.key")
        tmp = self._dir / f"{CURRENT}.{secrets.token_hex(4)}.tmp"
        tmp.write_text(kid + "\n")
        os.replace(tmp, self._dir / CURRENT)
        _fsync_dir(self._dir)
        self._current = kid

    @staticmethod
    def _write_new(path: Path) -> bytes:
        key = secrets.token_bytes(KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(base64.b64encode(key) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(path.parent)
        return key

    def _load(self, kid: str) -> bytes:
        path = self._dir / f"{kid}.key"
        if not path.exists():
            raise MissingKey(kid, self._dir)
        return self._read_key(path)

    @staticmethod
    def _read_key(path: Path) -> bytes:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            logger.warning("key file %s is readable by others (mode %o): run chmod 600 %s", path, mode, path)
        try:
            key = base64.b64decode(path.read_bytes().strip(), validate=True)
        except (binascii.Error, ValueError):
            raise FieldCryptoError(f"key file {path} is not one base64 line: restore it from the key backup") from None
        if len(key) != KEY_BYTES:
            raise FieldCryptoError(f"key file {path} holds {len(key)} bytes, not {KEY_BYTES}: restore it from the key backup")
        return key


def _normalise(value: str) -> bytes:
    # NFKC folds full-width digits and letters (common in Chinese input) to ASCII.
    return unicodedata.normalize("NFKC", value).strip().encode("utf-8")


class FieldCipher:
    """Encrypts and decrypts fields with :class:`FieldKeys`; computes blind-index hashes."""

    def __init__(self, keys: FieldKeys) -> None:
        self._keys = keys

    @staticmethod
    def is_encrypted(value: object) -> bool:
        """Whether ``value`` is an encrypted field (same as :func:`is_encrypted`)."""
        return is_encrypted(value)

    @staticmethod
    def _aad(kid: str, context: str) -> bytes:
        if not isinstance(context, str) or not context:
            raise ValueError("context must be a non-empty string naming the record and field, e.g. field_context(...)")
        return f"{TOKEN_PREFIX}{kid}:{context}".encode()

    def encrypt(self, plaintext: str, context: str) -> str:
        """Encrypt ``plaintext`` with the current key, bound to ``context``."""
        if not isinstance(plaintext, str):
            raise TypeError(f"encrypt() takes a str, got {type(plaintext).__name__}")
        if is_encrypted(plaintext):
            raise FieldCryptoError(f"the value for {context!r} is already encrypted: use reencrypt() to move it to the current key")
        kid = self._keys.current_kid
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._keys.key(kid)).encrypt(nonce, plaintext.encode("utf-8"), self._aad(kid, context))
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{TOKEN_PREFIX}{kid}:{body}"

    def decrypt(self, token: str, context: str) -> str:
        """The plaintext of ``token``; :class:`DecryptionFailed` if altered or out of context."""
        kid, raw = _parse(token)
        key = self._keys.key(kid)
        try:
            plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(kid, context))
        except InvalidTag:
            raise DecryptionFailed(
                f"the value for {context!r} does not decrypt with key {kid}: it was altered, "
                "or it was encrypted for another record or field"
            ) from None
        return plain.decode("utf-8")

    def reencrypt(self, token: str, context: str) -> str:
        """``token`` re-encrypted with the current key (returned unchanged if already current)."""
        if kid_of(token) == self._keys.current_kid:
            return token
        return self.encrypt(self.decrypt(token, context), context)

    def lookup_hash(self, value: str, purpose: str) -> str:
        """A blind index of ``value``: HMAC-SHA256 (hex) under a per-purpose key.

        Equal values give equal hashes for the same ``purpose`` (e.g. ``"id_number"``), so a
        store can be searched for a value without decrypting anything; different purposes
        give unrelated hashes. The value is NFKC-normalised and stripped; other
        normalisation (upper-casing an ID number's ``x``) is the caller's.
        """
        if not isinstance(purpose, str) or not _PURPOSE.match(purpose):
            raise ValueError(f"purpose {purpose!r} must be 1-64 characters of A-Z a-z 0-9 . _ : -")
        subkey = hmac.new(self._keys.index_key, b"takan-blind-index/v1:" + purpose.encode(), hashlib.sha256).digest()
        return hmac.new(subkey, _normalise(value), hashlib.sha256).hexdigest()


def encrypt_fields(
    data: dict[str, Any], names: tuple[str, ...], cipher: Optional["FieldCipher"], context: Callable[[str], str]
) -> dict[str, Any]:
    """Encrypt ``data[name]`` in place for each of ``names`` present (no-op without a cipher).

    ``context(name)`` gives each field's associated data, e.g. ``field_context("ledger", id, name)``.
    """
    if cipher is not None:
        for name in names:
            value = data.get(name)
            if value and not is_encrypted(value):
                data[name] = cipher.encrypt(value, context(name))
    return data


def decrypt_fields(
    data: dict[str, Any], names: tuple[str, ...], cipher: Optional["FieldCipher"], context: Callable[[str], str]
) -> dict[str, Any]:
    """The inverse of :func:`encrypt_fields`; an encrypted value without a cipher is an error."""
    for name in names:
        value = data.get(name)
        if value and is_encrypted(value):
            if cipher is None:
                raise FieldCryptoError(f"field {name!r} is encrypted and no field cipher is configured")
            data[name] = cipher.decrypt(value, context(name))
    return data
