"""An RFC 3161 timestamp token, read and checked by Takan itself.

:func:`token_imprint` reads what a ``TimeStampResp`` says (its status, the message imprint,
``genTime``). :func:`check_token` checks what it proves, as ``openssl ts -verify`` does:

* the CMS ``SignedData`` has one signer, whose certificate is in the token (Takan asks
  with ``certReq``);
* the signed attributes name the content type TSTInfo and carry a ``messageDigest`` equal
  to the digest of the encapsulated TSTInfo;
* the signature over the DER of the signed attributes (as a SET, RFC 5652 §5.4) verifies
  with the signer certificate's key (RSA PKCS#1 v1.5 or PSS, ECDSA, Ed25519);
* the ESS signing-certificate attribute (``ESSCertID`` or ``ESSCertIDv2``, RFC 3161 §2.4.1
  and RFC 5816 require one) identifies that certificate, so no other certificate with the
  same key can be passed off as the signer;
* the signer certificate is for timestamping only (a critical extendedKeyUsage of
  timeStamping alone, RFC 3161 §2.3);
* given :class:`TsaTrust`, the certificate chains to one of the trusted CA certificates,
  each certificate signed by the next, and ``genTime`` falls in every certificate's
  validity period.

Unlike ``openssl ts -verify``, validity is judged at ``genTime``, not now: evidence must
still verify after the TSA's certificate has expired (what a later check needs then is
the certificate's revocation status at ``genTime``, which Takan does not fetch).
Without a trust anchor, everything but the chain is checked and the result says plainly
that the TSA is not trusted. SM2 signatures are not checked: OpenSSL 3.0, the libcrypto
Takan signs SM2 with, cannot make or verify SM2 timestamp tokens, so there is nothing to
check such a checker against; a token signed so is reported as an algorithm not checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from .der import GENERALIZED_TIME, INTEGER, OCTET_STRING, SEQUENCE, SET, DerError, Node, read

__all__ = ["TokenInfo", "token_imprint", "TsaTrust", "TokenCheck", "check_token"]

SIGNED_DATA = "1.2.840.113549.1.7.2"
TST_INFO = "1.2.840.113549.1.9.16.1.4"
ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
ATTR_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"
ATTR_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
SHA256 = "2.16.840.1.101.3.4.2.1"

#: digest OIDs -> hashlib name (messageDigest, ESSCertIDv2) and cryptography hash
_DIGESTS: dict[str, tuple[str, Optional[type[hashes.HashAlgorithm]]]] = {
    "1.3.14.3.2.26": ("sha1", hashes.SHA1),
    "2.16.840.1.101.3.4.2.4": ("sha224", hashes.SHA224),
    SHA256: ("sha256", hashes.SHA256),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashes.SHA384),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashes.SHA512),
    "1.2.156.10197.1.401": ("sm3", None),
}
_RSA_PKCS1 = {  # signature OID -> digest OID (None: the SignerInfo's digestAlgorithm)
    "1.2.840.113549.1.1.1": None,
    "1.2.840.113549.1.1.5": "1.3.14.3.2.26",
    "1.2.840.113549.1.1.14": "2.16.840.1.101.3.4.2.4",
    "1.2.840.113549.1.1.11": SHA256,
    "1.2.840.113549.1.1.12": "2.16.840.1.101.3.4.2.2",
    "1.2.840.113549.1.1.13": "2.16.840.1.101.3.4.2.3",
}
_RSA_PSS = "1.2.840.113549.1.1.10"
_MGF1 = "1.2.840.113549.1.1.8"
_ECDSA = {
    "1.2.840.10045.2.1": None,  # id-ecPublicKey, which some TSAs write as the signature algorithm
    "1.2.840.10045.4.1": "1.3.14.3.2.26",
    "1.2.840.10045.4.3.1": "2.16.840.1.101.3.4.2.4",
    "1.2.840.10045.4.3.2": SHA256,
    "1.2.840.10045.4.3.3": "2.16.840.1.101.3.4.2.2",
    "1.2.840.10045.4.3.4": "2.16.840.1.101.3.4.2.3",
}
_ED25519 = "1.3.101.112"
_MAX_CHAIN = 8


# -- what the response says ----------------------------------------------------------------


@dataclass(frozen=True)
class TokenInfo:
    status: int  #: PKIStatus: 0 granted, 1 granted with modifications, else refused; -1 unreadable
    imprint: Optional[bytes]  #: the SHA-256 the token covers (None if another digest or none)
    gen_time: Optional[str]  #: GeneralizedTime as the TSA wrote it, e.g. 20261201230102Z

    @property
    def granted(self) -> bool:
        return self.status in (0, 1) and self.imprint is not None


@dataclass(frozen=True)
class _Token:
    status: int
    content: Optional[Node]  #: the SignedData, if the response carries a token
    tst_info: Optional[Node]  #: the TSTInfo, parsed from the encapsulated content
    imprint_alg: Optional[str]
    imprint: Optional[bytes]
    gen_time: Optional[str]


def _parse(response: bytes) -> _Token:
    top = read(response).expect(SEQUENCE)
    if top.end != len(response):
        raise DerError(f"{len(response) - top.end} bytes after the TimeStampResp")
    parts = top.children()
    status = parts[0].expect(SEQUENCE).child(0).as_int()
    if len(parts) < 2:
        return _Token(status, None, None, None, None, None)
    info = parts[1].expect(SEQUENCE)
    if info.child(0).as_oid() != SIGNED_DATA:
        raise DerError("the token is not a CMS SignedData")
    signed = info.child(1, 0xA0).child(0, SEQUENCE)
    encap = signed.child(2, SEQUENCE)
    if encap.child(0).as_oid() != TST_INFO:
        raise DerError("the token's content is not a TSTInfo")
    octets = encap.child(1, 0xA0).child(0, OCTET_STRING)
    tst = read(octets.content).expect(SEQUENCE)
    fields = tst.children()
    imprint = fields[2].expect(SEQUENCE)
    imprint_alg = imprint.child(0, SEQUENCE).child(0).as_oid()
    digest = imprint.child(1, OCTET_STRING).content
    gen_time = fields[4].expect(GENERALIZED_TIME).content.decode("ascii", "replace")
    return _Token(status, signed, tst, imprint_alg, digest, gen_time)


def token_imprint(response: bytes) -> TokenInfo:
    """What a DER TimeStampResp says: its status, SHA-256 message imprint and genTime."""
    try:
        token = _parse(response)
    except (DerError, IndexError):
        return TokenInfo(-1, None, None)
    imprint = token.imprint if token.imprint_alg == SHA256 else None
    return TokenInfo(token.status, imprint, token.gen_time)


# -- whom to trust -------------------------------------------------------------------------


class TsaTrust:
    """The CA certificates the operator trusts to vouch for TSAs (``TAKAN_TSA_CA_FILE``)."""

    def __init__(self, anchors: Sequence[x509.Certificate], source: str = "the TSA CA") -> None:
        if not anchors:
            raise ValueError(f"{source} holds no certificate")
        self.anchors = tuple(anchors)
        self.source = source

    @classmethod
    def from_pem_file(cls, path: Path) -> "TsaTrust":
        """The certificates of a PEM bundle; ValueError saying why if it holds none."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        try:
            anchors = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ValueError(f"{path} is not a PEM bundle of certificates ({exc})") from None
        return cls(anchors, str(path))


# -- what the token proves -----------------------------------------------------------------

Trust = Literal["trusted", "untrusted", "failed"]
Failure = Literal["refused", "malformed", "other_manifest", "signature", "chain"]


@dataclass(frozen=True)
class TokenCheck:
    """The outcome: ``trusted`` (chains to a configured CA), ``untrusted`` (covers the data and
    is consistently signed, but no CA was given, so nothing says the TSA is a real one), or
    ``failed`` with a :attr:`failure` kind and a :attr:`message`."""

    trust: Trust
    gen_time: Optional[str] = None
    tsa: Optional[str] = None  #: the signer certificate's subject (RFC 4514)
    ca: Optional[str] = None  #: the trusted CA certificate it chains to
    failure: Optional[Failure] = None
    message: Optional[str] = None  #: why it failed, or why it is untrusted

    @property
    def ok(self) -> bool:
        return self.trust != "failed"


class _Failed(Exception):
    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure: Failure = failure
        self.message = message


class _Unchecked(Exception):
    """An algorithm this checker does not implement (not evidence of tampering)."""


def check_token(response: bytes, digest: bytes, trust: Optional[TsaTrust]) -> TokenCheck:
    """What the DER TimeStampResp ``response`` proves about the SHA-256 ``digest``."""
    try:
        token = _parse(response)
    except (DerError, IndexError, UnicodeError) as exc:
        return TokenCheck("failed", failure="malformed", message=f"is not a readable RFC 3161 timestamp response ({exc})")
    if token.status not in (0, 1) or token.content is None or token.tst_info is None:
        return TokenCheck("failed", failure="refused", message=f"is not a granted RFC 3161 timestamp response (status {token.status})")
    if token.imprint_alg != SHA256 or token.imprint != digest:
        other = (token.imprint or b"").hex() if token.imprint_alg == SHA256 else f"a {token.imprint_alg} digest"
        return TokenCheck(
            "failed", failure="other_manifest",
            message=f"is a timestamp over another manifest (sha256 {other[:16]}…), not this one ({digest.hex()[:16]}…)",
        )
    try:
        gen_time = _generalized_time(token.gen_time or "")
        signer, certificates = _check_signature(token.content, token.tst_info)
        tsa = signer.subject.rfc4514_string()
        _check_timestamping(signer, gen_time)
        if trust is None:
            return TokenCheck(
                "untrusted", token.gen_time, tsa,
                message="covers the manifest, but the TSA is not trusted: no TSA CA is configured (TAKAN_TSA_CA_FILE, --tsa-ca)",
            )
        anchor = _chain(signer, certificates, trust, gen_time)
    except _Failed as failed:
        return TokenCheck("failed", failure=failed.failure, message=failed.message)
    except _Unchecked as exc:
        if trust is None:
            return TokenCheck("untrusted", token.gen_time, message=f"covers the manifest; its signature is not checked ({exc}), and no TSA CA is configured")
        return TokenCheck("failed", failure="signature", message=f"cannot be checked against {trust.source}: {exc}")
    except (DerError, IndexError, ValueError) as exc:
        return TokenCheck("failed", failure="malformed", message=f"has a malformed signature or certificate ({exc})")
    return TokenCheck("trusted", token.gen_time, tsa, anchor.subject.rfc4514_string())


def _generalized_time(text: str) -> datetime:
    if not text.endswith("Z") or len(text) < 15:
        raise _Failed("malformed", f"genTime {text!r} is not a UTC GeneralizedTime")
    whole = text[:14]
    fraction = text[14:-1].lstrip(".")
    try:
        moment = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
        return moment.replace(microsecond=int((fraction + "000000")[:6])) if fraction else moment
    except ValueError:
        raise _Failed("malformed", f"genTime {text!r} is not a UTC GeneralizedTime") from None


def _check_signature(signed: Node, tst_info: Node) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The signer's certificate and all the token's, once the CMS signature holds."""
    parts = signed.children()
    certificates = [x509.load_der_x509_certificate(c.der) for c in parts[3].children() if c.tag == SEQUENCE] if parts[3].tag == 0xA0 else []
    signer_infos = parts[-1].expect(SET).children()
    if len(signer_infos) != 1:
        raise _Failed("signature", f"has {len(signer_infos)} signers; an RFC 3161 token has exactly one")
    fields = signer_infos[0].expect(SEQUENCE).children()
    sid, digest_alg, attrs = fields[1], fields[2].child(0).as_oid(), fields[3]
    if attrs.tag != 0xA0:
        raise _Failed("signature", "has no signed attributes, so its signature does not cover the TSTInfo")
    signature_alg, signature = fields[4], fields[5].expect(OCTET_STRING).content
    signer = _signer(sid, certificates)
    attributes = _attributes(attrs)

    if digest_alg not in _DIGESTS:
        raise _Unchecked(f"digest algorithm {digest_alg}")
    content_type = attributes.get(ATTR_CONTENT_TYPE)
    if content_type is None or content_type.as_oid() != TST_INFO:
        raise _Failed("signature", "signed attributes do not name the content type TSTInfo")
    message_digest = attributes.get(ATTR_MESSAGE_DIGEST)
    if message_digest is None:
        raise _Failed("signature", "has no messageDigest signed attribute")
    if message_digest.expect(OCTET_STRING).content != hashlib.new(_DIGESTS[digest_alg][0], tst_info.der).digest():
        raise _Failed("signature", "messageDigest does not match the TSTInfo: the timestamp's content was altered")
    signed_attrs = bytes([SET]) + attrs.der[1:]  # signed as an explicit SET OF, not the [0] it is sent as
    try:
        _verify(signer, signature_alg, digest_alg, signature, signed_attrs)
    except InvalidSignature:
        raise _Failed("signature", f"signature does not verify with the key of the TSA certificate {signer.subject.rfc4514_string()}: the token was altered") from None
    _check_ess(attributes, signer)
    return signer, certificates


def _signer(sid: Node, certificates: list[x509.Certificate]) -> x509.Certificate:
    for cert in certificates:
        if sid.tag == SEQUENCE:  # IssuerAndSerialNumber
            issuer, serial = sid.children()
            if serial.as_int() == cert.serial_number and issuer.der == cert.issuer.public_bytes():
                return cert
        elif sid.tag == 0x80:  # [0] SubjectKeyIdentifier
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.content:
                return cert
    raise _Failed("signature", "does not carry the TSA's certificate (it was requested with certReq)")


def _attributes(attrs: Node) -> dict[str, Node]:
    """Signed attribute OID -> its single value."""
    out: dict[str, Node] = {}
    for attribute in attrs.children():
        oid = attribute.child(0).as_oid()
        values = attribute.child(1, SET).children()
        if oid in out or len(values) != 1:
            raise _Failed("signature", f"signed attribute {oid} appears twice or has {len(values)} values")
        out[oid] = values[0]
    return out


def _hash(oid: str) -> hashes.HashAlgorithm:
    algorithm = _DIGESTS.get(oid, ("", None))[1]
    if algorithm is None:
        raise _Unchecked(f"hash {oid} with this signature algorithm")
    return algorithm()


def _verify(signer: x509.Certificate, algorithm: Node, digest_alg: str, signature: bytes, data: bytes) -> None:
    """Raises InvalidSignature unless ``signature`` is the signer's over ``data``."""
    oid = algorithm.child(0).as_oid()
    try:
        key = signer.public_key()
    except (UnsupportedAlgorithm, ValueError):
        raise _Unchecked(f"the TSA's key type (signature algorithm {oid})") from None
    if oid in _RSA_PKCS1 and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), _hash(_RSA_PKCS1[oid] or digest_alg))
    elif oid == _RSA_PSS and isinstance(key, rsa.RSAPublicKey):
        hash_alg, salt = _pss_parameters(algorithm)
        key.verify(signature, data, padding.PSS(padding.MGF1(hash_alg), salt), hash_alg)
    elif oid in _ECDSA and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(_hash(_ECDSA[oid] or digest_alg)))
    elif oid == _ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    else:
        raise _Unchecked(f"signature algorithm {oid} with a {type(key).__name__.lstrip('_')}")


def _pss_parameters(algorithm: Node) -> tuple[hashes.HashAlgorithm, int]:
    """RSASSA-PSS-params (RFC 4055): the hash (MGF1 must use the same) and the salt length."""
    hash_oid, mgf_hash, salt = "1.3.14.3.2.26", "1.3.14.3.2.26", 20  # the ASN.1 defaults
    params = algorithm.children()[1:]  # absent: every default
    for field in params[0].expect(SEQUENCE).children() if params else []:
        inner = field.child(0)
        if field.tag == 0xA0:
            hash_oid = inner.child(0).as_oid()
        elif field.tag == 0xA1:
            if inner.child(0).as_oid() != _MGF1:
                raise _Unchecked(f"PSS mask generation {inner.child(0).as_oid()}")
            mgf_hash = inner.child(1, SEQUENCE).child(0).as_oid()
        elif field.tag == 0xA2:
            salt = inner.expect(INTEGER).as_int()
    if mgf_hash != hash_oid:
        raise _Unchecked("PSS with MGF1 over another hash than the message's")
    return _hash(hash_oid), salt


def _check_ess(attributes: dict[str, Node], signer: x509.Certificate) -> None:
    """The signing-certificate attribute's first ESSCertID must be the signer certificate."""
    v2 = attributes.get(ATTR_SIGNING_CERTIFICATE_V2)
    v1 = attributes.get(ATTR_SIGNING_CERTIFICATE)
    if v2 is None and v1 is None:
        raise _Failed("signature", "has no ESS signing-certificate attribute (RFC 3161 requires one), so nothing binds the signature to the TSA's certificate")
    der = signer.public_bytes(serialization.Encoding.DER)
    for attribute, default in ((v2, SHA256), (v1, None)):
        if attribute is None:
            continue
        first = attribute.expect(SEQUENCE).child(0, SEQUENCE).child(0, SEQUENCE).children()
        at, hash_oid = 0, default or "1.3.14.3.2.26"
        if default is not None and first[0].tag == SEQUENCE:  # ESSCertIDv2's optional hashAlgorithm
            hash_oid, at = first[0].child(0).as_oid(), 1
        if hash_oid not in _DIGESTS:
            raise _Unchecked(f"ESS certificate hash {hash_oid}")
        if first[at].expect(OCTET_STRING).content != hashlib.new(_DIGESTS[hash_oid][0], der).digest():
            raise _Failed("signature", "its ESS signing-certificate attribute names another certificate than the one that signed it")
        if len(first) > at + 1:  # IssuerSerial { GeneralNames, serialNumber }
            names, serial = first[at + 1].children()
            issuers = [n.child(0).der for n in names.children() if n.tag == 0xA4]
            if serial.as_int() != signer.serial_number or (issuers and signer.issuer.public_bytes() not in issuers):
                raise _Failed("signature", "its ESS signing-certificate attribute names another issuer and serial than the signer certificate's")


def _check_timestamping(cert: x509.Certificate, at: datetime) -> None:
    """A TSA certificate: extendedKeyUsage critical and timeStamping alone (RFC 3161 §2.3)."""
    name = cert.subject.rfc4514_string()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise _Failed("signature", f"the signer certificate {name} has no extendedKeyUsage timeStamping: it is not a TSA certificate") from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise _Failed("signature", f"the signer certificate {name} is not for timestamping alone (extendedKeyUsage must be critical and timeStamping only)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if not (usage.digital_signature or usage.content_commitment):
            raise _Failed("signature", f"the signer certificate {name} may not sign (keyUsage lacks digitalSignature)")
    _check_validity(cert, at)


def _check_validity(cert: x509.Certificate, at: datetime) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise _Failed(
            "chain", f"genTime {at:%Y-%m-%dT%H:%M:%SZ} is outside the validity of {cert.subject.rfc4514_string()} "
            f"({cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})",
        )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _chain(signer: x509.Certificate, certificates: list[x509.Certificate], trust: TsaTrust, at: datetime) -> x509.Certificate:
    """The trusted CA certificate ``signer`` chains to (through the token's certificates)."""
    current = signer
    for _ in range(_MAX_CHAIN):
        if current in trust.anchors:
            return current
        for anchor in trust.anchors:
            if anchor.subject == current.issuer and _issued_by(current, anchor):
                _check_validity(anchor, at)
                return anchor
        step = next((c for c in certificates if c != current and c.subject == current.issuer and _is_ca(c) and _issued_by(current, c)), None)
        if step is None:
            raise _Failed(
                "chain", f"the TSA certificate {signer.subject.rfc4514_string()} does not chain to a CA in {trust.source}: "
                f"neither it nor the token holds a certificate of {current.issuer.rfc4514_string()} that signed {current.subject.rfc4514_string()}",
            )
        _check_validity(step, at)
        current = step
    raise _Failed("chain", f"the TSA certificate {signer.subject.rfc4514_string()} has a chain longer than {_MAX_CHAIN} certificates")
