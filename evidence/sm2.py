"""SM2 signatures (GB/T 32918, with SM3 and the default distinguishing ID) through OpenSSL.

OpenSSL's libcrypto (3.x, the one Python's ``hashlib`` is linked against, which also gives
SM3 as ``hashlib.new("sm3")``) is called through ``ctypes``: the same code that
``openssl pkeyutl -sign/-verify -rawin -digest sm3`` runs, so the CLI verifies what Takan
signs by construction, in constant time, at C speed. Why not a Python package: see
evidence/README.md (the pure-Python candidates take 19-53 s for the SM3 of 1 MiB and
35-250 ms per signature). Signatures are DER ``SEQUENCE { r INTEGER, s INTEGER }``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from typing import Any, Optional

__all__ = ["DEFAULT_ID", "SM2Error", "SM2PrivateKey", "SM2PublicKey", "available", "sm3_hex"]

DEFAULT_ID = "1234567812345678"


class SM2Error(RuntimeError):
    """libcrypto refused an SM2 operation (or has no SM2): the message says which."""


def sm3_hex(data: bytes) -> str:
    """SM3 (hex) of ``data``, by OpenSSL through hashlib."""
    return hashlib.new("sm3", data).hexdigest()


_lib: Optional[Any] = None


def _crypto() -> Any:
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("crypto")
    if name is None:
        raise SM2Error("libcrypto (OpenSSL 3) was not found; install openssl (libssl3) to sign with SM2")
    lib = ctypes.CDLL(name)
    P, I, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    for fname, restype, argtypes in [
        ("EVP_PKEY_CTX_new_from_name", P, [P, ctypes.c_char_p, ctypes.c_char_p]),
        ("EVP_PKEY_keygen_init", I, [P]),
        ("EVP_PKEY_generate", I, [P, ctypes.POINTER(P)]),
        ("EVP_PKEY_CTX_free", None, [P]),
        ("EVP_PKEY_free", None, [P]),
        ("EVP_PKEY_get_base_id", I, [P]),
        ("BIO_new_mem_buf", P, [ctypes.c_char_p, I]),
        ("BIO_new", P, [P]),
        ("BIO_s_mem", P, []),
        ("BIO_read", I, [P, ctypes.c_char_p, I]),
        ("BIO_ctrl_pending", S, [P]),
        ("BIO_free", I, [P]),
        ("PEM_write_bio_PrivateKey", I, [P, P, P, P, I, P, P]),
        ("PEM_write_bio_PUBKEY", I, [P, P]),
        ("PEM_read_bio_PrivateKey", P, [P, P, P, P]),
        ("PEM_read_bio_PUBKEY", P, [P, P, P, P]),
        ("EVP_MD_CTX_new", P, []),
        ("EVP_MD_CTX_free", None, [P]),
        ("EVP_DigestSignInit_ex", I, [P, P, ctypes.c_char_p, P, P, P, P]),
        ("EVP_DigestSign", I, [P, ctypes.c_char_p, ctypes.POINTER(S), ctypes.c_char_p, S]),
        ("EVP_DigestVerifyInit_ex", I, [P, P, ctypes.c_char_p, P, P, P, P]),
        ("EVP_DigestVerify", I, [P, ctypes.c_char_p, S, ctypes.c_char_p, S]),
        ("ERR_clear_error", None, []),
    ]:
        try:
            fn = getattr(lib, fname)
        except AttributeError:
            raise SM2Error(f"libcrypto {name} has no {fname}: OpenSSL 3.0 or later is needed for SM2") from None
        fn.restype = restype
        fn.argtypes = argtypes
    _lib = lib
    return lib


def available() -> bool:
    """Whether SM2 signing works here (libcrypto 3 with SM2 and SM3)."""
    try:
        SM2PrivateKey.generate()
    except SM2Error:
        return False
    return "sm3" in hashlib.algorithms_available


def _bio_bytes(lib: Any, bio: Any) -> bytes:
    size = lib.BIO_ctrl_pending(bio)
    buf = ctypes.create_string_buffer(size)
    got = lib.BIO_read(bio, buf, size)
    return buf.raw[: max(got, 0)]


def _load(pem: bytes, private: bool) -> Any:
    lib = _crypto()
    bio = lib.BIO_new_mem_buf(pem, len(pem))
    try:
        key = (lib.PEM_read_bio_PrivateKey if private else lib.PEM_read_bio_PUBKEY)(bio, None, None, None)
    finally:
        lib.BIO_free(bio)
    if not key:
        lib.ERR_clear_error()
        raise SM2Error(f"not an SM2 {'private' if private else 'public'} key in PEM")
    return key


class SM2PublicKey:
    """An SM2 public key (SubjectPublicKeyInfo PEM)."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self._key = _load(pem, private=False)

    def __del__(self) -> None:
        if getattr(self, "_key", None) and _lib is not None:
            _lib.EVP_PKEY_free(self._key)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` (DER) is this key's SM2 signature (SM3, default ID) over ``data``."""
        lib = _crypto()
        mctx = lib.EVP_MD_CTX_new()
        try:
            if lib.EVP_DigestVerifyInit_ex(mctx, None, b"SM3", None, None, self._key, None) != 1:
                raise SM2Error("EVP_DigestVerifyInit_ex failed for SM2/SM3")
            ok = bool(lib.EVP_DigestVerify(mctx, signature, len(signature), data, len(data)) == 1)
        finally:
            lib.EVP_MD_CTX_free(mctx)
            lib.ERR_clear_error()
        return ok


class SM2PrivateKey:
    """An SM2 private key; :meth:`sign` gives DER signatures ``openssl pkeyutl`` verifies."""

    def __init__(self, key: Any) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> "SM2PrivateKey":
        lib = _crypto()
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not ctx:
            lib.ERR_clear_error()
            raise SM2Error("this libcrypto has no SM2 (built with no-sm2?)")
        key = ctypes.c_void_p()
        try:
            if lib.EVP_PKEY_keygen_init(ctx) != 1 or lib.EVP_PKEY_generate(ctx, ctypes.byref(key)) != 1:
                raise SM2Error("SM2 key generation failed")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        return cls(key.value)

    @classmethod
    def from_pem(cls, pem: bytes) -> "SM2PrivateKey":
        return cls(_load(pem, private=True))

    def __del__(self) -> None:
        if getattr(self, "_key", None) and _lib is not None:
            _lib.EVP_PKEY_free(self._key)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted (kept mode 0600 by the caller)."""
        lib = _crypto()
        bio = lib.BIO_new(lib.BIO_s_mem())
        try:
            if lib.PEM_write_bio_PrivateKey(bio, self._key, None, None, 0, None, None) != 1:
                raise SM2Error("could not write the SM2 private key")
            return _bio_bytes(lib, bio)
        finally:
            lib.BIO_free(bio)

    def public_pem(self) -> bytes:
        lib = _crypto()
        bio = lib.BIO_new(lib.BIO_s_mem())
        try:
            if lib.PEM_write_bio_PUBKEY(bio, self._key) != 1:
                raise SM2Error("could not write the SM2 public key")
            return _bio_bytes(lib, bio)
        finally:
            lib.BIO_free(bio)

    def public_key(self) -> SM2PublicKey:
        return SM2PublicKey(self.public_pem())

    def sign(self, data: bytes) -> bytes:
        """The DER SM2 signature (SM3, default distinguishing ID) over ``data``."""
        lib = _crypto()
        mctx = lib.EVP_MD_CTX_new()
        try:
            if lib.EVP_DigestSignInit_ex(mctx, None, b"SM3", None, None, self._key, None) != 1:
                raise SM2Error("EVP_DigestSignInit_ex failed for SM2/SM3")
            size = ctypes.c_size_t(0)
            if lib.EVP_DigestSign(mctx, None, ctypes.byref(size), data, len(data)) != 1:
                raise SM2Error("EVP_DigestSign (size) failed")
            buf = ctypes.create_string_buffer(size.value)
            if lib.EVP_DigestSign(mctx, buf, ctypes.byref(size), data, len(data)) != 1:
                raise SM2Error("EVP_DigestSign failed")
            return buf.raw[: size.value]
        finally:
            lib.EVP_MD_CTX_free(mctx)
            lib.ERR_clear_error()


def public_point(pem: bytes) -> bytes:
    """The uncompressed point 04||X||Y of an SM2 public key PEM (its SPKI's last 65 bytes)."""
    import base64

    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    return base64.b64decode(body)[-65:]
