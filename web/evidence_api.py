"""Evidence endpoints of the contract: manifest, signature, objects, keys, verification."""

from __future__ import annotations

import mimetypes
from typing import Any, Optional

from aiohttp import web

from approval.apikeys import ApiKeys
from approval.inspections import InspectionBook
from errors import NotFound
from evidence.access import AccessLog
from evidence.journal import Journal
from evidence.chainlog import read_log
from evidence.manifest import EVENTS, MANIFEST, SIGNATURE, SM2_SIGNATURE, TIMESTAMP, prefix_of
from evidence.signing import SigningKeys
from evidence.tsa_token import TsaTrust
from evidence.verify import verify_inspection
from identity.permissions import Principal
from storage.keys import InvalidKey, validate_key
from storage.objects import ObjectNotFound, ObjectStore

from .auth import actor_of, caller
from .inspections_api import visible_record
from .routes import PUBLIC, Route, get

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska", ".jsonl": "application/x-ndjson", ".json": "application/json"}


class EvidenceApi:
    def __init__(
        self, book: InspectionBook, keys: ApiKeys, store: ObjectStore, signing: SigningKeys, access: AccessLog, journal: Journal,
        tsa_trust: Optional[TsaTrust] = None,
    ) -> None:
        self.tsa_trust = tsa_trust  #: the configured TSA CA certificates (TAKAN_TSA_CA_FILE)
        self.journal = journal
        self.book = book
        self.keys = keys
        self.store = store
        self.signing = signing
        self.access = access

    def routes(self) -> list[Route]:
        return [
            get("/api/v1/keys", self.public_keys, PUBLIC),
            get("/api/v1/inspections/{id}/manifest", self.manifest, "query"),
            get("/api/v1/inspections/{id}/manifest.sig", self.signature, "query"),
            get("/api/v1/inspections/{id}/manifest.sm2.sig", self.sm2_signature, "query"),
            get("/api/v1/inspections/{id}/manifest.tsr", self.timestamp, "query"),
            get("/api/v1/inspections/{id}/objects/{key:.+}", self.object, "query"),
            get("/api/v1/inspections/{id}/verification", self.verification, "query"),
        ]

    async def _read(self, request: web.Request, relative: str) -> tuple[Principal, bytes]:
        principal = caller(request)
        inspection_id = request.match_info["id"]
        visible_record(self.book, inspection_id, principal)
        full = prefix_of(inspection_id) + relative
        try:
            # events.jsonl is the whole log, whether stored as one object or in chunks
            if relative == EVENTS:  # a live log's last events may not be shipped yet: this node has them
                data = self.journal.held(inspection_id) or await read_log(self.store, full)
            else:
                data = await self.store.get(full)
            if relative == EVENTS and not data:
                raise ObjectNotFound(full)
        except ObjectNotFound:
            raise NotFound(f"inspection {inspection_id} has no object {relative!r}") from None
        await self.access.record("evidence.read", actor_of(principal), {"inspection_id": inspection_id, "key": relative, "size": len(data), "remote": request.remote})
        return principal, data

    async def public_keys(self, request: web.Request) -> web.Response:
        infos = await self.signing.public.all(self.signing.current_kid, *[k for k in [self.signing.current_sm2_kid] if k])
        return web.json_response({"keys": [info.as_json() for info in infos]})

    async def manifest(self, request: web.Request) -> web.Response:
        _, data = await self._read(request, MANIFEST)
        return web.Response(body=data, content_type="application/json", headers=NO_STORE)

    async def signature(self, request: web.Request) -> web.Response:
        _, data = await self._read(request, SIGNATURE)
        return web.Response(body=data, content_type="application/octet-stream", headers=NO_STORE)

    async def sm2_signature(self, request: web.Request) -> web.Response:
        _, data = await self._read(request, SM2_SIGNATURE)
        return web.Response(body=data, content_type="application/octet-stream", headers=NO_STORE)

    async def timestamp(self, request: web.Request) -> web.Response:
        """The RFC 3161 token over the current manifest; 404 ``pending`` until the TSA answers."""
        inspection_id = request.match_info["id"]
        visible_record(self.book, inspection_id, caller(request))
        if await self.store.head(prefix_of(inspection_id) + TIMESTAMP) is None:
            if await self.store.head(prefix_of(inspection_id) + MANIFEST) is None:
                raise NotFound(f"inspection {inspection_id} is not sealed yet, so it has no timestamp")
            timestamper = self.journal.timestamper
            if timestamper is None or not timestamper.enabled:
                raise NotFound(f"pending: no TSA is configured (TAKAN_TSA_URLS), so inspection {inspection_id} has no timestamp")
            raise NotFound(f"pending: the TSA has not answered yet for the current manifest of inspection {inspection_id}; retried in the background")
        _, data = await self._read(request, TIMESTAMP)
        return web.Response(body=data, content_type="application/timestamp-reply", headers=NO_STORE)

    async def object(self, request: web.Request) -> web.Response:
        inspection_id = request.match_info["id"]
        relative = request.match_info["key"]
        if relative.startswith(prefix_of(inspection_id)):
            relative = relative[len(prefix_of(inspection_id)):]
        try:
            validate_key(relative)
        except InvalidKey as exc:
            raise NotFound(f"no such object: {exc}") from None
        _, data = await self._read(request, relative)
        suffix = "." + relative.rsplit(".", 1)[-1] if "." in relative else ""
        ctype = _TYPES.get(suffix) or mimetypes.guess_type(relative)[0] or "application/octet-stream"
        return web.Response(body=data, content_type=ctype, headers=NO_STORE)

    async def verification(self, request: web.Request) -> web.Response:
        principal = caller(request)
        inspection_id = request.match_info["id"]
        visible_record(self.book, inspection_id, principal)
        async with await self.journal.consistent(inspection_id):
            report = await verify_inspection(self.store, inspection_id, require_sm2=self.signing.require_sm2, tsa_trust=self.tsa_trust)
        await self.access.record("evidence.verify", actor_of(principal), {"inspection_id": inspection_id, "ok": report.ok})
        body: dict[str, Any] = report.as_json()
        return web.json_response(body, headers=NO_STORE)
