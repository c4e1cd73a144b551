"""RFC 3161 trusted timestamps: the request, the TSA client, and what a token says.

:func:`timestamp_query` builds a DER ``TimeStampReq`` (version 1, SHA-256 message imprint,
a nonce, ``certReq`` true, so the token carries the TSA's certificate). :class:`TsaClient`
POSTs it (``application/timestamp-query``) to each configured URL in order, with a timeout,
and returns the first granted ``TimeStampResp``. :func:`token_imprint` reads the SHA-256
message imprint and the ``genTime`` back out of a response, so ``verify`` can name a token
that covers some other manifest; the CMS signature and the TSA's certificate chain are
checked with ``openssl ts -verify`` (the outsider's kit does, given the TSA's CA).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Optional, Sequence

import aiohttp

__all__ = ["TsaClient", "TsaUnavailable", "TokenInfo", "timestamp_query", "token_imprint"]

logger = logging.getLogger(__name__)

SHA256_OID = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1, DER with tag
TST_INFO_OID = bytes.fromhex("060b2a864886f70d0109100104")  # 1.2.840.113549.1.9.16.1.4


class TsaUnavailable(Exception):
    """No configured TSA granted a timestamp now (down, slow, or refusing); retry later."""


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def _integer(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return _tlv(0x02, raw)


def timestamp_query(digest: bytes, nonce: Optional[int] = None) -> bytes:
    """DER TimeStampReq over the SHA-256 ``digest`` (32 bytes)."""
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    algorithm = _tlv(0x30, SHA256_OID + b"\x05\x00")
    imprint = _tlv(0x30, algorithm + _tlv(0x04, digest))
    nonce = secrets.randbits(63) if nonce is None else nonce
    return _tlv(0x30, _integer(1) + imprint + _integer(nonce) + b"\x01\x01\xff")


def _read(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at ``at``."""
    tag = data[at]
    first = data[at + 1]
    if first < 0x80:
        return tag, at + 2, at + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[at + 2 : at + 2 + count], "big")
    start = at + 2 + count
    return tag, start, start + length


@dataclass(frozen=True)
class TokenInfo:
    status: int  #: PKIStatus: 0 granted, 1 granted with modifications, else refused
    imprint: Optional[bytes]  #: the SHA-256 the token covers
    gen_time: Optional[str]  #: GeneralizedTime as the TSA wrote it, e.g. 20261201230102Z

    @property
    def granted(self) -> bool:
        return self.status in (0, 1) and self.imprint is not None


def token_imprint(response: bytes) -> TokenInfo:
    """What a DER TimeStampResp says: its status, message imprint and genTime."""
    try:
        tag, start, end = _read(response, 0)
        if tag != 0x30:
            raise ValueError("not a SEQUENCE")
        _, s_start, s_end = _read(response, start)  # PKIStatusInfo
        _, i_start, i_end = _read(response, s_start)
        status = int.from_bytes(response[i_start:i_end], "big")
        at = response.find(TST_INFO_OID, s_end)
        if at < 0:
            return TokenInfo(status, None, None)
        # TSTInfo: SEQUENCE { version, policy, messageImprint SEQUENCE { alg, OCTET STRING }, serial, genTime, ... }
        imprint_at = response.find(SHA256_OID, at + len(TST_INFO_OID))
        if imprint_at < 0:
            return TokenInfo(status, None, None)
        rest = imprint_at + len(SHA256_OID)
        if response[rest : rest + 2] == b"\x05\x00":
            rest += 2
        tag, d_start, d_end = _read(response, rest)
        digest = response[d_start:d_end] if tag == 0x04 else None
        _, _, serial_end = _read(response, d_end)  # serialNumber
        tag, t_start, t_end = _read(response, serial_end)
        gen_time = response[t_start:t_end].decode("ascii", "replace") if tag == 0x18 else None
        return TokenInfo(status, digest, gen_time)
    except (IndexError, ValueError):
        return TokenInfo(-1, None, None)


class TsaClient:
    """Asks the configured TSAs, in order, each within ``timeout_s``."""

    def __init__(self, urls: Sequence[str], timeout_s: float = 10.0) -> None:
        self.urls = tuple(urls)
        self.timeout_s = timeout_s

    async def stamp(self, digest: bytes) -> bytes:
        """A granted TimeStampResp (DER) over ``digest``; :class:`TsaUnavailable` if none answers."""
        query = timestamp_query(digest)
        reasons = []
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for url in self.urls:
                try:
                    async with http.post(url, data=query, headers={"Content-Type": "application/timestamp-query"}) as r:
                        body = await r.read()
                        if r.status != 200:
                            reasons.append(f"{url}: HTTP {r.status}")
                            continue
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    reasons.append(f"{url}: {type(exc).__name__} {exc}")
                    continue
                info = token_imprint(body)
                if not info.granted:
                    reasons.append(f"{url}: refused (status {info.status})")
                elif info.imprint != digest:
                    reasons.append(f"{url}: answered for another digest")
                else:
                    return body
        raise TsaUnavailable("; ".join(reasons) or "no TSA is configured")
