"""From an ended session to a decision the approval core hears about.

judge (rules on facts, 8.3) -> verdict in the evidence log -> re-seal the manifest with
the verdict -> webhook ``inspection.judged`` -> ledger entry (8.5). A person's review
(5.6) follows the same path with ``inspection.reviewed``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Awaitable, Callable, Optional

from evidence.journal import Journal

from errors import Conflict, ValidationFailed
from .inspections import Inspection, InspectionBook, now_utc, rfc3339
from .ledger import Ledger
from .notifications import Notifier
from .prudent import WarningLists
from .rules.facts import facts_from
from .rules.judgement import judge
from .rules.rulebook import RuleBook

logger = logging.getLogger(__name__)

#: Re-signs the inspection's manifest (:meth:`evidence.sealer.Sealer.seal`).
Seal = Callable[[str, Optional[tuple[str, str, dict[str, Any]]]], Awaitable[Any]]


def warnings_as_facts(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"list": m.get("kind"), "match": m.get("matched"), "reason": m.get("reason")} for m in matches]


class Decisions:
    def __init__(
        self,
        book: InspectionBook,
        journal: Journal,
        rules: RuleBook,
        warnings: WarningLists,
        notifier: Notifier,
        ledger: Ledger,
        seal: Seal,
        judge_timeout_s: float = 120.0,
    ) -> None:
        self.book = book
        self.journal = journal
        self.rules = rules
        self.warnings = warnings
        self.notifier = notifier
        self.ledger = ledger
        self.seal = seal
        self.judge_timeout_s = judge_timeout_s
        #: Seconds from the decision to the ledger write, for the benchmark and the 20 s rule.
        self.last_ledger_latency_s: Optional[float] = None
        #: Judgements made, and the seconds from an inspection's end to its verdict (/metrics).
        self.judged = 0
        self.judge_seconds = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Judge what a previous process ended but did not get to judge."""
        for record in self.book.all():
            if record.status == "ended":
                self._spawn(record.id)

    async def close(self) -> None:
        """Let judgements in flight finish (milliseconds; a cancelled one could leave the
        log ahead of the manifest until the next start), then cancel what remains."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait for the judgements in progress (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, inspection_id: str) -> None:
        task = asyncio.ensure_future(self._judge_logged(inspection_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _judge_logged(self, inspection_id: str) -> None:
        try:
            await self.judge(inspection_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("inspection %s: judging failed; it stays ended and is retried at the next start", inspection_id)

    def prudent_warnings(self, record: Inspection) -> list[dict[str, Any]]:
        """8.1.8: list matches of the applicant (shown to the inspector, logged, a fact)."""
        codes = [c for c in (record.applicant.get("industry_code"),) if c]
        return [m.as_json() for m in self.warnings.match(record.applicant, codes, record.item_code)]

    async def on_finished(self, record: Inspection) -> None:
        """Called once a session has ended or been cancelled (and sealed)."""
        if record.status == "cancelled":
            await self.notifier.notify(record, "inspection.cancelled")
            self.journal.forget(record.id)
        elif record.status == "ended":
            # in the background: the inspector's "end" is acknowledged at once
            self._spawn(record.id)

    async def judge(self, inspection_id: str) -> Inspection:
        started = time.perf_counter()
        record = await self.book.load(inspection_id)
        events = await self.journal.events(inspection_id)
        warnings = [e["data"] for e in events if e.get("type") == "prudent.warning"]
        facts = facts_from(
            dataclasses.asdict(record), events, warnings_as_facts(warnings), template=self.book.template_of(record)
        )
        verdict = await judge(self.rules.find(record.item_code), facts, self.judge_timeout_s)
        decided = verdict.as_json()
        await self.book.transition(inspection_id, "judged", verdict=decided)
        await self.seal(inspection_id, ("verdict", "rules", decided))
        record = await self.book.load(inspection_id)
        logger.info("inspection %s judged %s (%s)", inspection_id, verdict.outcome, verdict.rules_version)
        self.judged += 1
        self.judge_seconds += time.perf_counter() - started
        await self.notifier.notify(record, "inspection.judged")
        await self._file(record, None)
        self.journal.forget(inspection_id)  # judged: its log leaves memory until it is read again
        return record

    async def review(self, inspection_id: str, outcome: Any, comment: Any, reviewer: str) -> Inspection:
        """A person decides (5.6): required for manual_review, allowed to overturn a verdict."""
        errors = []
        if outcome not in ("pass", "fail"):
            errors.append({"field": "outcome", "message": "must be pass or fail"})
        if comment is not None and (not isinstance(comment, str) or len(comment) > 2000):
            errors.append({"field": "comment", "message": "must be a string of at most 2000 characters"})
        if errors:
            raise ValidationFailed("the review is not valid; see errors", errors=errors)
        record = await self.book.load(inspection_id)
        if record.status != "judged":
            raise Conflict(f"inspection {inspection_id} is {record.status}; only a judged inspection can be reviewed")
        review = {"outcome": outcome, "comment": comment or "", "reviewer": reviewer, "at": rfc3339(now_utc())}
        verdict = dict(record.verdict or {})
        verdict["review"] = review
        await self.book.transition(inspection_id, "reviewed", verdict=verdict)
        await self.seal(inspection_id, ("review", reviewer, review))
        record = await self.book.load(inspection_id)
        await self.notifier.notify(record, "inspection.reviewed")
        await self._file(record, review)
        self.journal.forget(inspection_id)
        return record

    async def _file(self, record: Inspection, review: Optional[dict[str, Any]]) -> None:
        start = time.monotonic()
        await self.ledger.record(record, review)
        self.last_ledger_latency_s = time.monotonic() - start
