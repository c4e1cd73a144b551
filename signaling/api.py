"""The approval core's REST API (CONTRACT.md), under /api/v1."""

from __future__ import annotations

import asyncio
import base64
import datetime
import io
import json
import logging
from typing import Any, Optional

import qrcode
from aiohttp import web

from approval.apikeys import ApiKey, ApiKeys
from approval.errors import BadRequest, Conflict, TooLarge, UnsupportedMediaType, ValidationFailed
from approval.idempotency import IdempotencyKeys
from approval.inspections import Inspection, InspectionBook, parse_rfc3339
from approval.requests import parse_cancel, parse_new_inspection

from .sockets import SessionNamespace
from .tokens import TokenSigner

logger = logging.getLogger(__name__)

MAX_JSON_BODY = 256 * 1024
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
        sessions: SessionNamespace,
        base_url: str,
        link_ttl: datetime.timedelta,
    ) -> None:
        self.book = book
        self.keys = keys
        self.idempotency = idempotency
        self.signer = signer
        self.sessions = sessions
        self.base_url = base_url
        self.link_ttl = link_ttl
        self._idempotency_locks: dict[str, asyncio.Lock] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/inspections", self.create),
            web.get("/api/v1/inspections", self.list),
            web.get("/api/v1/inspections/{id}", self.get),
            web.post("/api/v1/inspections/{id}/cancel", self.cancel),
        ]

    # -- helpers ----------------------------------------------------------------------

    def _auth(self, request: web.Request, permission: str) -> ApiKey:
        key = self.keys.authenticate(request.headers.get("Authorization"))
        key.require(permission)
        return key

    async def _body(self, request: web.Request) -> tuple[Any, bytes]:
        if request.content_length is not None and request.content_length > MAX_JSON_BODY:
            raise TooLarge(f"the body is {request.content_length} bytes; the limit is {MAX_JSON_BODY}")
        ctype = request.content_type
        if ctype not in ("application/json", "application/merge-patch+json") and not ctype.endswith("+json"):
            raise UnsupportedMediaType(f"send Content-Type: application/json, not {ctype or 'nothing'}")
        raw = await request.content.read(MAX_JSON_BODY + 1)
        if len(raw) > MAX_JSON_BODY:
            raise TooLarge(f"the body is larger than {MAX_JSON_BODY} bytes")
        try:
            return json.loads(raw.decode("utf-8")), raw
        except UnicodeDecodeError:
            raise BadRequest("the body is not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None

    def _get_record(self, request: web.Request, key: ApiKey) -> Inspection:
        return self.book.get(request.match_info["id"])

    def link(self, record: Inspection, role: str) -> str:
        expires = parse_rfc3339(record.expires_at)
        assert expires is not None
        token = self.signer.issue(record.id, role, int(expires.timestamp()))
        page = {"inspector": "console", "applicant": "join", "observer": "observe"}[role]
        return f"{self.base_url}/{page}#{token}"

    def view(self, record: Inspection) -> dict[str, Any]:
        """The record as the contract shows it."""
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
            "applicant": masked_applicant(record.applicant),
            "site": record.site,
            "participants": record.participants,
            "checkpoints": record.checkpoints,
            "verdict": record.verdict,
            "manifest": manifest,
        }

    # -- handlers ---------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        key = self._auth(request, "entry")
        body, raw = await self._body(request)
        idem_key = request.headers.get("Idempotency-Key")
        if idem_key is None:
            new = parse_new_inspection(body)
            return web.json_response(await self._create(new, key), status=201)
        IdempotencyKeys.check_key(idem_key)
        lock = self._idempotency_locks.setdefault(f"{key.id}:{idem_key}", asyncio.Lock())
        async with lock:
            saved = await self.idempotency.recall(key.id, idem_key, raw)
            if saved is not None:
                return web.json_response(saved, status=201, headers={"Idempotent-Replayed": "true"})
            new = parse_new_inspection(body)
            response = await self._create(new, key)
            await self.idempotency.remember(key.id, idem_key, raw, response)
        return web.json_response(response, status=201)

    async def _create(self, new: Any, key: ApiKey) -> dict[str, Any]:
        record = await self.book.create(new, key.id, self.link_ttl)
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
        key = self._auth(request, "query")
        return web.json_response(self.view(self._get_record(request, key)))

    async def list(self, request: web.Request) -> web.Response:
        key = self._auth(request, "query")
        query = request.query
        allowed = {"case_no", "status", "from", "to", "cursor", "limit"}
        unknown = sorted(set(query) - allowed)
        if unknown:
            raise ValidationFailed(
                f"unknown query parameter(s): {', '.join(unknown)}",
                errors=[{"field": name, "message": "is not a known parameter"} for name in unknown],
            )
        records = self.book.all()
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
                "items": [self.view(r) for r in page],
                "next_cursor": encode_cursor(page[-1].created_at, page[-1].id) if more and page else None,
            }
        )

    async def cancel(self, request: web.Request) -> web.Response:
        key = self._auth(request, "entry")
        record = self._get_record(request, key)
        body, _ = await self._body(request)
        reason = parse_cancel(body)
        if record.status == "cancelled":
            return web.json_response(self.view(record))
        if not record.is_open and record.status != "interrupted":
            raise Conflict(f"inspection {record.id} is {record.status}; only open inspections can be cancelled")
        await self.sessions.end_inspection(record.id, actor=f"api:{key.id}", status="cancelled", reason=reason)
        return web.json_response(self.view(self.book.get(record.id)))


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


def mask(value: Optional[str], keep_start: int = 4, keep_end: int = 4) -> Optional[str]:
    if value is None:
        return None
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


def masked_applicant(applicant: dict[str, Any]) -> dict[str, Any]:
    shown = dict(applicant)
    shown["id_number"] = mask(applicant.get("id_number"))
    shown["contact_phone"] = mask(applicant.get("contact_phone"), 3, 4)
    return shown
