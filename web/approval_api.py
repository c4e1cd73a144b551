"""REST for the approval side: review, ledger, double publicity, evaluation, warning lists."""

from __future__ import annotations

import datetime
import json
from typing import Any, Optional

from aiohttp import web

from approval.decisions import Decisions
from approval.evaluation import Evaluations
from approval.inspections import InspectionBook
from approval.ledger import Ledger
from approval.prudent import KINDS, WarningLists
from approval.publicity import Publicity
from errors import Conflict, Forbidden, Unauthorized, ValidationFailed
from evidence.access import AccessLog
from session.tokens import TokenExpired, TokenInvalid, TokenSigner

from .auth import actor_of, caller
from .bodies import read_body, read_json_object
from .inspections_api import visible_record
from .routes import LINK, PUBLIC, Route, get, post

MAX_CSV_BYTES = 20 * 1024 * 1024
MAX_PERIOD_DAYS = 3 * 366
EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _date(query: Any, name: str, errors: list[dict[str, str]]) -> Optional[datetime.date]:
    raw = query.get(name)
    if raw is None:
        errors.append({"field": name, "message": "is required (YYYY-MM-DD)"})
        return None
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        errors.append({"field": name, "message": f"{raw!r} is not a date (YYYY-MM-DD)"})
        return None


def _period(request: web.Request, extra: set[str] = frozenset()) -> tuple[datetime.date, datetime.date]:  # type: ignore[assignment]
    errors: list[dict[str, str]] = []
    unknown = sorted(set(request.query) - {"from", "to"} - set(extra))
    errors += [{"field": name, "message": "is not a known parameter"} for name in unknown]
    start, end = _date(request.query, "from", errors), _date(request.query, "to", errors)
    if start and end and end < start:
        errors.append({"field": "to", "message": "is before 'from'"})
    if start and end and (end - start).days > MAX_PERIOD_DAYS:
        errors.append({"field": "to", "message": f"a period is at most {MAX_PERIOD_DAYS} days; ask for several"})
    if errors:
        raise ValidationFailed("the period is not valid; see errors", errors=errors)
    assert start and end
    return start, end


class ApprovalApi:
    def __init__(
        self,
        book: InspectionBook,
        decisions: Decisions,
        ledger: Ledger,
        publicity: Publicity,
        evaluations: Evaluations,
        warning_lists: WarningLists,
        access: AccessLog,
        signer: TokenSigner,
    ) -> None:
        self.book = book
        self.decisions = decisions
        self.ledger = ledger
        self.publicity = publicity
        self.evaluations = evaluations
        self.warning_lists = warning_lists
        self.access = access
        self.signer = signer

    def routes(self) -> list[Route]:
        return [
            post("/api/v1/inspections/{id}/review", self.review, "review"),
            get("/api/v1/ledger", self.ledger_export, "query_all"),
            post("/api/v1/inspections/{id}/publicity", self.create_publicity, "approve"),
            post("/api/v1/publicity/{id}/publish", self.publish, "approve"),
            post("/api/v1/publicity/{id}/withdraw", self.withdraw, "approve"),
            get("/api/v1/publicity", self.feed, PUBLIC),
            post("/api/v1/session/rating", self.rate, LINK),
            get("/api/v1/evaluation/report", self.report, "query_all"),
            get("/api/v1/warning-lists", self.lists, "admin"),
            post("/api/v1/warning-lists/{kind}", self.load_list, "admin"),
            get("/api/v1/audit/access-log", self.access_log, "audit_read"),
        ]

    async def review(self, request: web.Request) -> web.Response:
        principal = caller(request)
        record = visible_record(self.book, request.match_info["id"], principal)
        body = await read_json_object(request, {"outcome", "comment"})
        reviewed = await self.decisions.review(record.id, body.get("outcome"), body.get("comment"), actor_of(principal))
        return web.json_response({"id": reviewed.id, "status": reviewed.status, "verdict": reviewed.verdict})

    async def ledger_export(self, request: web.Request) -> web.Response:
        principal = caller(request)
        start, end = _period(request, {"format"})
        fmt = request.query.get("format", "json")
        if fmt not in EXPORT_TYPES:
            raise ValidationFailed("format must be csv, json or xlsx", errors=[{"field": "format", "message": f"{fmt!r} is not csv, json or xlsx"}])
        full = principal.can_see_personal_data
        data = await self.ledger.export(start, end, fmt, full=full)  # type: ignore[arg-type]
        await self.access.record("ledger.export", actor_of(principal), {"from": str(start), "to": str(end), "format": fmt, "full": full})
        headers = {"Content-Disposition": f'attachment; filename="takan-ledger-{start}-{end}.{fmt}"'}
        return web.Response(body=data, headers={**headers, "Content-Type": EXPORT_TYPES[fmt]})

    async def create_publicity(self, request: web.Request) -> web.Response:
        record = visible_record(self.book, request.match_info["id"], caller(request))
        decision = await read_json_object(
            request, {"document_name", "document_no", "authority", "licence_category", "licence_content", "decision_date"}
        )
        verdict = record.verdict or {}
        outcome = (verdict.get("review") or {}).get("outcome") or verdict.get("outcome")
        if outcome != "pass":
            raise Conflict(f"inspection {record.id} was not approved (outcome {outcome!r}); nothing to publish")
        created = await self.publicity.create(record, decision)
        await self.ledger.record(record, (record.verdict or {}).get("review"), publicity=created.as_json())
        return web.json_response(created.as_json(), status=201)

    async def publish(self, request: web.Request) -> web.Response:
        return web.json_response((await self.publicity.publish(request.match_info["id"])).as_json())

    async def withdraw(self, request: web.Request) -> web.Response:
        body = await read_json_object(request, {"reason"})
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationFailed("a withdrawal needs a reason (8.4.4)", errors=[{"field": "reason", "message": "is required"}])
        return web.json_response((await self.publicity.withdraw(request.match_info["id"], reason)).as_json())

    async def feed(self, request: web.Request) -> web.Response:
        since_raw = request.query.get("since")
        since = None
        if since_raw:
            try:
                since = datetime.datetime.fromisoformat(since_raw.replace("Z", "+00:00"))
                if since.tzinfo is None:
                    raise ValueError
            except ValueError:
                raise ValidationFailed("since must be an RFC 3339 date-time", errors=[{"field": "since", "message": "not a date-time with offset"}]) from None
        return web.json_response({"items": await self.publicity.feed(since)})

    async def rate(self, request: web.Request) -> web.Response:
        """Clause 10: the applicant rates the service, with the link token of the session."""
        try:
            token = self.signer.verify(request.headers.get("X-Takan-Token"))
        except (TokenExpired, TokenInvalid) as exc:
            raise Unauthorized(f"send the link token in X-Takan-Token ({exc})") from None
        if token.role != "applicant":
            raise Forbidden("only the applicant rates the service")
        record = await self.book.load(token.inspection_id)
        if record.status not in ("ended", "judged", "reviewed"):
            raise Conflict("the service can be rated once the inspection has ended")
        body = await read_json_object(request, {"score", "comment", "dimensions"})
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ValidationFailed("score must be an integer 1-5", errors=[{"field": "score", "message": "must be 1-5"}])
        rating = await self.evaluations.rate(record.id, score, str(body.get("comment") or ""), body.get("dimensions"))
        return web.json_response(rating.as_json() if hasattr(rating, "as_json") else {"ok": True}, status=201)

    async def report(self, request: web.Request) -> web.Response:
        start, end = _period(request)
        entries = await self.ledger.query(start, end)
        # the report reads only the fields a record's summary holds (ids, status, times, outcome)
        population = [summary.as_json() for summary in self.book.summaries()]
        return web.json_response(await self.evaluations.report(start, end, population, entries))

    async def lists(self, request: web.Request) -> web.Response:
        current = {kind: (v.as_json() if (v := self.warning_lists.current(kind)) else None) for kind in KINDS}
        return web.json_response({"lists": current})

    async def load_list(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in KINDS:
            raise ValidationFailed(f"unknown list kind {kind!r}", errors=[{"field": "kind", "message": f"must be one of {', '.join(KINDS)}"}])
        data = await read_body(request, MAX_CSV_BYTES, "the list")
        version = await self.warning_lists.load_csv(kind, data, request.headers.get("X-Filename", f"{kind}.csv")[:200])
        await self.access.record("warning_list.loaded", actor_of(caller(request)), {"kind": kind, "version": version.version, "rows": version.rows})
        return web.json_response(version.as_json(), status=201)

    async def access_log(self, request: web.Request) -> web.Response:
        """Auditors query the hash-chained access log, one day at a time."""
        day = request.query.get("day")
        days = await self.access.days()
        if day is None:
            return web.json_response({"days": days})
        if day not in days:
            raise ValidationFailed(f"no access log for {day!r}", errors=[{"field": "day", "message": "not a logged day"}])
        lines = [json.loads(line) for line in (await self.access.read(day)).splitlines() if line.strip()]
        return web.json_response({"day": day, "entries": lines})
