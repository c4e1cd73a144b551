"""The approval core's REST API (CONTRACT.md), under /api/v1."""

from __future__ import annotations

import base64
import datetime
import io
import json
import logging
from typing import Any, Optional
from urllib.parse import urlsplit

import qrcode
from aiohttp import web

from approval.apikeys import ApiKeys
from approval.idempotency import IdempotencyKeys
from approval.inspections import Inspection, InspectionBook, parse_rfc3339
from approval.requests import parse_cancel, parse_new_inspection
from errors import Conflict, NotFound, ValidationFailed
from identity.permissions import Principal
from privacy.masking import mask_id_number, mask_phone
from session.service import SessionService
from session.tokens import TokenSigner

from .auth import actor_of, caller
from .bodies import read_json
from .routes import Route, get, post

logger = logging.getLogger(__name__)

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


class InspectionApi:
    """Handlers of the inspection routes; one instance per app."""

    def __init__(
        self,
        book: InspectionBook,
        keys: ApiKeys,
        idempotency: IdempotencyKeys,
        signer: TokenSigner,
        session: SessionService,
        base_url: str,
        link_ttl: datetime.timedelta,
        webhook_allowed_hosts: Optional[tuple[str, ...]] = None,
    ) -> None:
        self.book = book
        self.keys = keys
        self.idempotency = idempotency
        self.signer = signer
        self.session = session
        self.base_url = base_url
        self.link_ttl = link_ttl
        self.webhook_allowed_hosts = webhook_allowed_hosts

    def routes(self) -> list[Route]:
        return [
            post("/api/v1/inspections", self.create, "entry"),
            get("/api/v1/inspections", self.list, "query"),
            get("/api/v1/inspections/{id}", self.get, "query"),
            post("/api/v1/inspections/{id}/cancel", self.cancel, "entry"),
        ]

    # -- helpers ----------------------------------------------------------------------


    def _get_record(self, request: web.Request) -> Inspection:
        return visible_record(self.book, request.match_info["id"], caller(request))

    def link(self, record: Inspection, role: str) -> str:
        expires = parse_rfc3339(record.expires_at)
        assert expires is not None
        token = self.signer.issue(record.id, role, int(expires.timestamp()))
        page = {"inspector": "console", "applicant": "join", "observer": "observe"}[role]
        return f"{self.base_url}/{page}#{token}"

    def view(self, record: Inspection, principal: Optional[Principal] = None) -> dict[str, Any]:
        """The record as the contract shows it (personal data masked unless permitted)."""
        manifest = record.manifest
        return {
            "id": record.id,
            "case_no": record.case_no,
            "item_code": record.item_code,
            "item_name": record.item_name,
            "status": record.status,
            "scheduled_at": record.scheduled_at,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "duration_s": record.duration_s,
            "cancel_reason": record.cancel_reason,
            "applicant": dict(record.applicant) if principal is not None and principal.can_see_personal_data else masked_applicant(record.applicant),
            "site": record.site,
            "participants": record.participants,
            "checkpoints": record.checkpoints,
            "verdict": record.verdict,
            "manifest": manifest,
            "recognitions": [
                {k: r.get(k) for k in ("kind", "evidence_key", "fields", "matches", "at", "result", "checkpoint")}
                for r in record.recognitions
            ],
        }

    # -- handlers ---------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        principal = caller(request)
        owner = actor_of(principal)
        body, raw = await read_json(request)
        idem_key = request.headers.get("Idempotency-Key")
        if idem_key is None:
            new = parse_new_inspection(body)
            return web.json_response(await self._create(new, principal), status=201)
        IdempotencyKeys.check_key(idem_key)
        async with self.idempotency.exclusive(owner, idem_key):
            saved = await self.idempotency.recall(owner, idem_key, raw)
            if saved is not None:
                return web.json_response(saved, status=201, headers={"Idempotent-Replayed": "true"})
            new = parse_new_inspection(body)
            response = await self._create(new, principal)
            await self.idempotency.remember(owner, idem_key, raw, response)
        return web.json_response(response, status=201)

    def _check_callback(self, url: Optional[str]) -> None:
        """SSRF guard: with TAKAN_WEBHOOK_ALLOWED_HOSTS set, callbacks go only there."""
        if not url or self.webhook_allowed_hosts is None:
            return
        host = (urlsplit(url).hostname or "").lower()
        for allowed in self.webhook_allowed_hosts:
            if host == allowed or (allowed.startswith(".") and host.endswith(allowed)):
                return
        raise ValidationFailed(
            f"callback_url host {host!r} is not in this deployment's allowed webhook hosts",
            errors=[{"field": "callback_url", "message": "host not allowed; ask the Takan admin to allow it"}],
        )

    async def _create(self, new: Any, principal: Principal) -> dict[str, Any]:
        self._check_callback(new.callback_url)
        # An API key's id names whose webhook secret signs the callbacks; a staff
        # inspector who creates an inspection owns it.
        owner = principal.id if principal.kind == "api_key" else actor_of(principal)
        inspector = principal.id if principal.kind == "staff" and "inspector" in principal.roles else None
        record = await self.book.create(new, owner, self.link_ttl, inspector_user_id=inspector)
        applicant_url = self.link(record, "applicant")
        return {
            "id": record.id,
            "case_no": record.case_no,
            "status": record.status,
            "inspector_url": self.link(record, "inspector"),
            "applicant_url": applicant_url,
            "observer_url": self.link(record, "observer"),
            "applicant_qr_png": qr_data_url(applicant_url),
            "expires_at": record.expires_at,
        }

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(self.view(self._get_record(request), caller(request)))

    async def list(self, request: web.Request) -> web.Response:
        principal = caller(request)
        query = request.query
        allowed = {"case_no", "status", "from", "to", "cursor", "limit"}
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise ValidationFailed(
                f"unknown query parameter(s): {', '.join(unknown)}",
                errors=[{"field": name, "message": "is not a known parameter"} for name in unknown],
            )
        records = [r for r in self.book.all() if may_see(principal, r)]
        errors: list[dict[str, str]] = []
        if "case_no" in query:
            records = [r for r in records if r.case_no == query["case_no"]]
        if "status" in query:
            statuses = set(query["status"].split(","))
            bad = statuses - {"scheduled", "live", "ended", "judged", "reviewed", "cancelled", "interrupted"}
            if bad:
                errors.append({"field": "status", "message": f"unknown status {', '.join(sorted(bad))}"})
            records = [r for r in records if r.status in statuses]
        for name in ("from", "to"):
            if name in query:
                try:
                    moment = datetime.datetime.fromisoformat(query[name].replace("Z", "+00:00"))
                    if moment.tzinfo is None:
                        raise ValueError
                except ValueError:
                    errors.append({"field": name, "message": f"{query[name]!r} is not an RFC 3339 date-time with offset"})
                    continue
                if name == "from":
                    records = [r for r in records if (parse_rfc3339(r.created_at) or moment) >= moment]
                else:
                    records = [r for r in records if (parse_rfc3339(r.created_at) or moment) < moment]
        limit = PAGE_SIZE_DEFAULT
        if "limit" in query:
            try:
                limit = int(query["limit"])
                if not 1 <= limit <= PAGE_SIZE_MAX:
                    raise ValueError
            except ValueError:
                errors.append({"field": "limit", "message": f"must be an integer 1-{PAGE_SIZE_MAX}"})
        start = 0
        if "cursor" in query:
            cursor = decode_cursor(query["cursor"])
            if cursor is None:
                errors.append({"field": "cursor", "message": "is not a cursor this API returned"})
            else:
                start = next((i for i, r in enumerate(records) if (r.created_at, r.id) > cursor), len(records))
        if errors:
            raise ValidationFailed("the query is not valid; see errors", errors=errors)
        page = records[start : start + limit]
        more = start + limit < len(records)
        return web.json_response(
            {
                "items": [self.view(r, principal) for r in page],
                "next_cursor": encode_cursor(page[-1].created_at, page[-1].id) if more and page else None,
            }
        )

    async def cancel(self, request: web.Request) -> web.Response:
        principal = caller(request)
        record = self._get_record(request)
        body, _ = await read_json(request)
        reason = parse_cancel(body)
        if record.status == "cancelled":
            return web.json_response(self.view(record, principal))
        if not record.is_open:
            raise Conflict(f"inspection {record.id} is {record.status}; only open inspections can be cancelled")
        await self.session.end_inspection(record.id, actor=actor_of(principal), status="cancelled", reason=reason)
        return web.json_response(self.view(self.book.get(record.id), principal))


def may_see(principal: Principal, record: Inspection) -> bool:
    """Staff without query_all (inspectors) see only the inspections they run."""
    return principal.has("query_all") or (principal.kind == "staff" and record.inspector_user_id == principal.id)


def visible_record(book: InspectionBook, inspection_id: str, principal: Principal) -> Inspection:
    record = book.get(inspection_id)
    if not may_see(principal, record):
        raise NotFound(f"no inspection with id {inspection_id!r}")  # do not reveal others' inspections
    return record


def encode_cursor(created_at: str, record_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, record_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Optional[tuple[str, str]]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return (value[0], value[1])
    except (ValueError, UnicodeDecodeError):
        pass
    return None


def qr_data_url(url: str) -> str:
    image = qrcode.make(url, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def masked_applicant(applicant: dict[str, Any]) -> dict[str, Any]:
    shown = dict(applicant)
    shown["id_number"] = mask_id_number(applicant["id_number"]) if applicant.get("id_number") else None
    shown["contact_phone"] = mask_phone(applicant["contact_phone"]) if applicant.get("contact_phone") else None
    return shown
