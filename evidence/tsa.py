"""RFC 3161 trusted timestamps: the request and the TSA client.

:func:`timestamp_query` builds a DER ``TimeStampReq`` (version 1, SHA-256 message imprint,
a nonce, ``certReq`` true, so the token carries the TSA's certificate). :class:`TsaClient`
POSTs it (``application/timestamp-query``) to each configured URL in order, with a timeout,
and returns the first granted ``TimeStampResp`` over the digest it asked about. What a
token says and proves (its signature, the TSA's certificate chain) is read and checked in
:mod:`evidence.tsa_token`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Optional, Sequence

import aiohttp

from .der import OCTET_STRING, SEQUENCE, integer, tlv
from .tsa_token import token_imprint

__all__ = ["TsaClient", "TsaUnavailable", "timestamp_query"]

logger = logging.getLogger(__name__)

SHA256_OID = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1, DER with tag


class TsaUnavailable(Exception):
    """No configured TSA granted a timestamp now (down, slow, or refusing); retry later."""


def timestamp_query(digest: bytes, nonce: Optional[int] = None) -> bytes:
    """DER TimeStampReq over the SHA-256 ``digest`` (32 bytes)."""
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    algorithm = tlv(SEQUENCE, SHA256_OID + b"\x05\x00")
    imprint = tlv(SEQUENCE, algorithm + tlv(OCTET_STRING, digest))
    nonce = secrets.randbits(63) if nonce is None else nonce
    return tlv(SEQUENCE, integer(1) + imprint + integer(nonce) + b"\x01\x01\xff")


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
