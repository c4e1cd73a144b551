"""Tells the approval core about an inspection's outcome through its webhook."""

from __future__ import annotations

import logging
from typing import Any, Optional

from .apikeys import ApiKeys
from .inspections import Inspection
from .outbox import Delivery, Outbox

logger = logging.getLogger(__name__)


def webhook_view(record: Inspection) -> dict[str, Any]:
    """The ``inspection`` object of a webhook body (CONTRACT.md)."""
    verdict = None
    if record.verdict is not None:
        verdict = {"outcome": record.verdict.get("outcome"), "reasons": record.verdict.get("reasons", [])}
        review = record.verdict.get("review")
        if isinstance(review, dict):
            # a person decided (inspection.reviewed): the outcome to act on is theirs; the
            # rules' own outcome and reasons stay beside it
            verdict = {
                "outcome": review.get("outcome"), "reasons": verdict["reasons"], "rules_outcome": verdict["outcome"],
                "review": {k: review.get(k) for k in ("outcome", "comment", "reviewer", "at")},
            }
    return {
        "id": record.id,
        "case_no": record.case_no,
        "status": record.status,
        "end_reason": record.end_reason,
        "inspector_user_id": record.inspector_user_id,
        "inspector_name": record.inspector_name,
        "verdict": verdict,
        "manifest_sha256": (record.manifest or {}).get("sha256"),
    }


class Notifier:
    def __init__(self, outbox: Outbox, keys: ApiKeys) -> None:
        self.outbox = outbox
        self.keys = keys

    def secret_for(self, api_key_id: str) -> Optional[str]:
        key = self.keys.get(api_key_id)
        return key.webhook_secret if key is not None and key.revoked_at is None else None

    async def notify(self, record: Inspection, event: str) -> Optional[Delivery]:
        """Queue ``event`` (inspection.judged / reviewed / cancelled / expired) if a callback is set."""
        if not record.callback_url:
            return None
        delivery = await self.outbox.enqueue(
            event, webhook_view(record), record.callback_url, self.secret_for(record.api_key_id) or "", record.api_key_id
        )
        logger.info("inspection %s: %s queued as %s", record.id, event, delivery.delivery_id)
        return delivery
