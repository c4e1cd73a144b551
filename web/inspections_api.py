"""The approval core's REST API (CONTRACT.md), under /api/v1."""

from __future__ import annotations

import base64
import datetime
import functools
import io
import json
import logging
import secrets
from typing import Any, Callable, Optional
from urllib.parse import quote, urlsplit

import qrcode
from aiohttp import web

from approval.apikeys import ApiKeys
from approval.idempotency import IdempotencyKeys
from approval.inspections import Inspection, InspectionBook, parse_rfc3339
from approval.record_index import RecordSummary
from approval.requests import parse_assign, parse_cancel, parse_new_inspection, parse_observer_invite, parse_reschedule
from errors import Conflict, Forbidden, NotFound, ValidationFailed
from identity.accounts import Account, Accounts
from identity.permissions import ASSIGN, ENTRY, Principal
from privacy.masking import mask_id_number, mask_phone
from session.service import SessionService
from session.sms import InviteSender
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
        accounts: Optional[Accounts] = None,
        texts: Optional[InviteSender] = None,
    ) -> None:
        self.texts = texts
        self.book = book
        self.accounts = accounts
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
            post("/api/v1/inspections/{id}/assign", self.assign, "entry"),
            post("/api/v1/inspections/{id}/invite", self.invite, "entry"),
            get("/api/v1/inspections/{id}/links", self.links, "entry"),
            post("/api/v1/inspections/{id}/reschedule", self.reschedule, "entry"),
            post("/api/v1/inspections/{id}/observers", self.invite_observer, "entry"),
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
            "end_reason": record.end_reason,
            "inspector_user_id": record.inspector_user_id,
            "inspector_name": record.inspector_name,
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
            return created_response(await self._create(new, principal))
        IdempotencyKeys.check_key(idem_key)
        async with self.idempotency.exclusive(owner, idem_key):
            saved = await self.idempotency.recall(owner, idem_key, body, raw)
            if saved is not None:
                return created_response(saved, {"Idempotent-Replayed": "true"})
            new = parse_new_inspection(body)
            response = await self._create(new, principal)
            await self.idempotency.remember(owner, idem_key, body, raw, response)
        return created_response(response)

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
        if new.inspector_user_id is not None:
            inspector = new.inspector_user_id
        name = None
        if inspector is not None:
            name = (await self.inspector_account(inspector, "inspector_user_id")).real_name
        record = await self.book.create(new, owner, self.link_ttl, inspector_user_id=inspector, inspector_name=name)
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

    async def inspector_account(self, user_id: str, field: str) -> Account:
        """The enabled staff account ``user_id`` holding entry permission (422 otherwise)."""
        account = None if self.accounts is None else await self.accounts.find(user_id)
        problem = None
        if account is None:
            problem = "is not a staff account"
        elif not account.enabled:
            problem = "is a disabled account"
        elif not account.principal.has(ENTRY):
            problem = "does not hold the entry permission (the inspector role)"
        if problem is not None or account is None:
            raise ValidationFailed(
                f"{field} {user_id!r} {problem}; name an enabled inspector",
                errors=[{"field": field, "message": f"{user_id!r} {problem}"}],
            )
        return account

    async def assign(self, request: web.Request) -> web.Response:
        """Name (or change) the inspector: the approval core or an ``assign`` holder for
        anyone; an inspector may claim an unassigned inspection for themselves."""
        principal = caller(request)
        body, _ = await read_json(request)
        user_id = parse_assign(body)
        record = self.book.get(request.match_info["id"])
        claiming = principal.kind == "staff" and record.inspector_user_id is None and user_id == principal.id
        if principal.kind == "staff" and not principal.has(ASSIGN) and not claiming:
            if not may_see(principal, record):
                raise NotFound(f"no inspection with id {record.id!r}")
            raise Forbidden("only a supervisor (the assign permission) reassigns an inspection; an inspector may claim an unassigned one")
        if not record.is_open:
            raise Conflict(f"inspection {record.id} is {record.status}; an inspection that is over cannot be reassigned")
        account = await self.inspector_account(user_id, "inspector_user_id")
        previous = record.inspector_user_id
        await self.session.serve_here(record.id)  # its log is written on one node (docs/nodes.md)
        record = await self.book.assign(record.id, account.user_id, account.real_name)
        await self.session.journal.record(
            record.id, "inspector.assigned", actor_of(principal),
            {"user_id": account.user_id, "name": account.real_name, "previous_user_id": previous},
        )
        logger.info("inspection %s: inspector %s (was %s), by %s", record.id, account.user_id, previous, actor_of(principal))
        return web.json_response(self.view(record, principal))

    async def links(self, request: web.Request) -> web.Response:
        """The participants' links, for the inspector's workbench: the approval core, the
        assigned inspector (or any inspector while unassigned: opening it claims it) and a
        supervisor."""
        principal = caller(request)
        record = self.book.get(request.match_info["id"])
        if principal.kind == "staff" and not principal.has(ASSIGN) and record.inspector_user_id not in (None, principal.id):
            raise NotFound(f"no inspection with id {record.id!r}")
        if not record.is_open:
            raise Conflict(f"inspection {record.id} is {record.status}; its links no longer open it")
        applicant_url = self.link(record, "applicant")
        return web.json_response({
            "inspector_url": self.link(record, "inspector"),
            "applicant_url": applicant_url,
            "applicant_qr_png": qr_data_url(applicant_url),
            "expires_at": record.expires_at,
        })

    async def invite_observer(self, request: web.Request) -> web.Response:
        """An observer (an expert, a supervisor) with their own expiring link, named in the
        evidence when they join: a staff member by user_id, or a guest by name."""
        principal = caller(request)
        record = self._get_record(request)
        body, _ = await read_json(request)
        invite = parse_observer_invite(body)
        name, kind = invite.name, "guest"
        if invite.user_id is not None:
            account = None if self.accounts is None else await self.accounts.find(invite.user_id)
            if account is None or not account.enabled:
                raise ValidationFailed(f"user_id {invite.user_id!r} is not an enabled staff account",
                                       errors=[{"field": "user_id", "message": "is not an enabled staff account"}])
            name, kind = account.real_name, "staff"
        expires = parse_rfc3339(record.expires_at)
        assert expires is not None
        if invite.ttl_hours is not None:
            expires = min(expires, datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=invite.ttl_hours))
        link_id = "o" + secrets.token_hex(6)
        entry = {"link_id": link_id, "name": name, "kind": kind, "user_id": invite.user_id,
                 "expires_at": expires.isoformat(timespec="seconds"), "invited_by": actor_of(principal)}
        await self.session.serve_here(record.id)  # its log is written on one node (docs/nodes.md)
        await self.book.add_observer(record.id, entry)
        await self.session.journal.record(record.id, "observer.invited", actor_of(principal),
                                          {"name": name, "kind": kind, "user_id": invite.user_id, "expires_at": entry["expires_at"]})
        token = self.signer.issue(record.id, "observer", int(expires.timestamp()), nonce=link_id)
        return web.json_response({"observer_url": f"{self.base_url}/observe#{token}", "expires_at": entry["expires_at"],
                                  "name": name, "kind": kind}, status=201)

    async def reschedule(self, request: web.Request) -> web.Response:
        """A new time for a scheduled inspection (its inspector, a supervisor or the approval
        core); the links are reissued from it (the old ones keep their own expiry)."""
        principal = caller(request)
        record = self._get_record(request)
        body, _ = await read_json(request)
        when = parse_reschedule(body)
        previous = record.scheduled_at
        await self.session.serve_here(record.id)  # its log is written on one node (docs/nodes.md)
        record = await self.book.reschedule(record.id, when, self.link_ttl)
        await self.session.journal.record(record.id, "inspection.rescheduled", actor_of(principal),
                                          {"scheduled_at": record.scheduled_at, "previous": previous})
        return web.json_response(self.view(record, principal))

    async def invite(self, request: web.Request) -> web.Response:
        """Text the applicant their link (SMS gateway, or the log); a gateway failure is a 503
        whose detail the inspector sees."""
        principal = caller(request)
        record = self._get_record(request)
        body, _ = await read_json(request)
        if body:
            raise ValidationFailed("send an empty object", errors=[{"field": k, "message": "is not a known field"} for k in sorted(body)])
        if not record.is_open:
            raise Conflict(f"inspection {record.id} is {record.status}; its applicant cannot be invited")
        phone = record.applicant.get("contact_phone")
        if not phone:
            raise Conflict("the applicant has no contact phone; copy the link or show the QR code instead")
        if self.texts is None:
            raise Conflict("no text sender is configured")
        await self.session.serve_here(record.id)  # its log is written on one node (docs/nodes.md)
        await self.texts.send_invite(record.id, phone, self.link(record, "applicant"), record.case_no)
        sent_to = mask_phone(phone)
        await self.session.journal.record(record.id, "applicant.invited", actor_of(principal), {"channel": "sms", "sent_to": sent_to})
        return web.json_response({"ok": True, "sent_to": sent_to})

    async def get(self, request: web.Request) -> web.Response:
        refuse_unknown_parameters(request, set())
        return web.json_response(self.view(self._get_record(request), caller(request)))

    async def list(self, request: web.Request) -> web.Response:
        principal = caller(request)
        query = request.query
        refuse_unknown_parameters(request, {"case_no", "status", "from", "to", "cursor", "limit"})
        errors: list[dict[str, str]] = []
        # Each filter is checked on the book's index of record summaries; only the page's
        # records are read (RecordSummary holds every field filtered on here).
        tests: list[Callable[[RecordSummary], bool]] = [lambda r: may_see(principal, r)]
        case_no = query.get("case_no")
        if "status" in query:
            statuses = set(query["status"].split(","))
            bad = statuses - {"scheduled", "live", "ended", "judged", "reviewed", "cancelled", "interrupted", "expired"}
            if bad:
                errors.append({"field": "status", "message": f"unknown status {', '.join(sorted(bad))}"})
            tests.append(lambda r: r.status in statuses)
        for name in ("from", "to"):
            if name in query:
                try:
                    moment = datetime.datetime.fromisoformat(query[name].replace("Z", "+00:00"))
                    if moment.tzinfo is None:
                        raise ValueError
                except ValueError:
                    errors.append({"field": name, "message": f"{query[name]!r} is not an RFC 3339 date-time with offset"})
                    continue
                tests.append(functools.partial(_created_from if name == "from" else _created_before, moment))
        limit = PAGE_SIZE_DEFAULT
        if "limit" in query:
            try:
                limit = int(query["limit"])
                if not 1 <= limit <= PAGE_SIZE_MAX:
                    raise ValueError
            except ValueError:
                errors.append({"field": "limit", "message": f"must be an integer 1-{PAGE_SIZE_MAX}"})
        cursor = None
        if "cursor" in query:
            cursor = decode_cursor(query["cursor"])
            if cursor is None:
                errors.append({"field": "cursor", "message": "is not a cursor this API returned"})
        if errors:
            raise ValidationFailed("the query is not valid; see errors", errors=errors)
        page, more = await self.book.page(lambda r: all(test(r) for test in tests), limit, cursor, case_no)
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


def created_response(created: dict[str, Any], headers: Optional[dict[str, str]] = None) -> web.Response:
    """The 201 of a new inspection (or its replay), with ``Location`` naming the record."""
    location = f"/api/v1/inspections/{quote(str(created['id']), safe='')}"
    return web.json_response(created, status=201, headers={"Location": location, **(headers or {})})


def refuse_unknown_parameters(request: web.Request, allowed: set[str]) -> None:
    """422 naming each query parameter not in ``allowed``: a misspelt filter must not be
    silently ignored."""
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise ValidationFailed(
            f"unknown query parameter(s): {', '.join(unknown)}; remove them",
            errors=[{"field": name, "message": "is not a known parameter"} for name in unknown],
        )


def may_see(principal: Principal, record: Inspection | RecordSummary) -> bool:
    """Staff without query_all (inspectors) see only the inspections they run."""
    return principal.has("query_all") or (principal.kind == "staff" and record.inspector_user_id == principal.id)


def _created_from(moment: datetime.datetime, record: RecordSummary) -> bool:
    return (parse_rfc3339(record.created_at) or moment) >= moment


def _created_before(moment: datetime.datetime, record: RecordSummary) -> bool:
    return (parse_rfc3339(record.created_at) or moment) < moment


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
