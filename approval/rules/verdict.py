"""A verdict: what the rules decided about one inspection, and why."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Optional

OUTCOMES = ("pass", "fail", "manual_review")
# A reason's severity: a failed `fail` rule, a failed `review` rule, or `error` when a rule
# or the judgement itself could not decide (a rule error, a missing fact, a timeout).
REASON_SEVERITIES = ("fail", "review", "error")


@dataclass(frozen=True)
class Reason:
    """Why the verdict is not a plain pass: one rule, in Chinese and in English."""

    rule: str
    message: str
    message_en: str
    severity: str

    def as_json(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message, "message_en": self.message_en, "severity": self.severity}


@dataclass(frozen=True)
class Verdict:
    """``outcome`` is pass, fail or manual_review; ``reasons`` lists every rule that was not satisfied."""

    outcome: str
    reasons: tuple[Reason, ...]
    rules_version: Optional[str]
    decided_at: str
    duration_ms: float

    @staticmethod
    def of(reasons: list[Reason], rules_version: Optional[str], duration_ms: float) -> "Verdict":
        """The verdict that ``reasons`` call for.

        A rule that could not decide sends the inspection to people even when another rule
        failed (5.6: what the rules cannot decide goes to manual review); otherwise a failed
        ``fail`` rule fails it, and a failed ``review`` rule sends it to people.
        """
        severities = {reason.severity for reason in reasons}
        if "error" in severities:
            outcome = "manual_review"
        elif "fail" in severities:
            outcome = "fail"
        elif "review" in severities:
            outcome = "manual_review"
        else:
            outcome = "pass"
        return Verdict(outcome, tuple(reasons), rules_version, now_rfc3339(), round(duration_ms, 3))

    def as_json(self) -> dict[str, Any]:
        """The verdict as a JSON-ready dict (the inspection record's ``verdict``)."""
        return {
            "outcome": self.outcome,
            "reasons": [reason.as_json() for reason in self.reasons],
            "rules_version": self.rules_version,
            "decided_at": self.decided_at,
            "duration_ms": self.duration_ms,
        }


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339 with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
