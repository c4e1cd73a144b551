"""Inspections as the rules see them: a record and an event log, built event by event.

A :class:`Scenario` starts as a clean inspection of one checklist template (every required
checkpoint with a still and a photo, both signatures, the applicant near the site, 22
minutes) and is changed by small edits, each breaking one thing. The record is derived
from the log the way signaling/actions.py writes both.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from approval.rules import facts_from
from approval.templates import Template

T0 = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.timezone.utc)


def at(seconds: float) -> str:
    moment = T0 + datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Scenario:
    template: Template
    events: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    site: dict[str, Any] = field(default_factory=dict)
    started_s: Optional[float] = 0.0
    ended_s: Optional[float] = 22 * 60.0

    @classmethod
    def clean(cls, template: Template) -> "Scenario":
        scenario = cls(template, site={"address": "德州市德城区东风中路 1 号", "lat": 37.4355, "lon": 116.3594,
                                       "radius_m": template.site_radius_m})
        scenario.log(0, "participant.joined", "inspector", {"id": "p-i"})
        scenario.log(5, "participant.joined", "applicant", {"id": "p-a"})
        scenario.log(6, "session.live", "system", {"previous": "scheduled"})
        scenario.log(30, "location.updated", "applicant", {"lat": 37.4357, "lon": 116.3597, "accuracy_m": 12,
                                                          "distance_m": 33.4, "within_radius": True})
        second = 60.0
        for checkpoint in template.checkpoints:
            if not checkpoint.required:
                continue  # optional checkpoints left out: they must not matter
            scenario.log(second, "checkpoint.prompted", "inspector", {"checkpoint": checkpoint.code})
            scenario.log(second + 20, "still.captured", "inspector", {"checkpoint": checkpoint.code, "source": "server"})
            scenario.log(second + 40, "photo.uploaded", "applicant", {"checkpoint": checkpoint.code, "source": "applicant"})
            second += 90
        scenario.log(600, "participant.reconnected", "applicant", {"id": "p-a"})
        scenario.log(1250, "location.updated", "applicant", {"lat": 37.4356, "lon": 116.3596, "accuracy_m": 8,
                                                            "distance_m": 21.7, "within_radius": True})
        scenario.log(1260, "signature.signed", "applicant", {"role": "applicant", "code": "1a2b3c4d"})
        scenario.log(1270, "signature.signed", "inspector", {"role": "inspector", "code": "5e6f7a8b"})
        scenario.log(1320, "session.ended", "inspector", {})
        return scenario

    def log(self, second: float, kind: str, actor: str, data: dict[str, Any]) -> None:
        self.events.append({"seq": len(self.events) + 1, "at": at(second), "type": kind, "actor": actor, "data": data})

    def drop(self, matches: Callable[[dict[str, Any]], bool]) -> None:
        self.events = [e for e in self.events if not matches(e)]

    def record(self) -> dict[str, Any]:
        """The inspection record's JSON, as approval/inspections.py keeps it."""
        evidence: dict[str, list[str]] = {}
        for event in self.events:
            folder = {"still.captured": "stills", "photo.uploaded": "photos"}.get(event["type"])
            if folder:
                code = event["data"]["checkpoint"]
                keys = evidence.setdefault(code, [])
                keys.append(f"{folder}/{code}/{len(keys) + 1}.jpg")
        return {
            "id": "20260302090000-0123456789abcdef",
            "case_no": "DZ-2026-000123",
            "item_code": self.template.item_code,
            "item_name": self.template.item_name,
            "applicant": {"name": "德州市某某有限公司", "kind": "legal_person"},
            "site": self.site,
            "checkpoints": [
                {"code": c.code, "title": c.title, "required": c.required, "captured": bool(evidence.get(c.code)),
                 "evidence": evidence.get(c.code, [])}
                for c in self.template.checkpoints
            ],
            "status": "ended",
            "started_at": None if self.started_s is None else at(self.started_s),
            "ended_at": None if self.ended_s is None else at(self.ended_s),
            "template_version": self.template.version,
        }

    def facts(self) -> dict[str, Any]:
        return facts_from(self.record(), self.events, self.warnings, template=self.template)


# ---- edits: each breaks one thing -------------------------------------------------------

Edit = Callable[[Scenario], None]


def no_evidence(code: str) -> Edit:
    def edit(s: Scenario) -> None:
        s.drop(lambda e: e["type"] in ("still.captured", "photo.uploaded") and e["data"]["checkpoint"] == code)
    return edit


def stills_become_photos(code: str) -> Edit:
    def edit(s: Scenario) -> None:
        for e in s.events:
            if e["type"] == "still.captured" and e["data"]["checkpoint"] == code:
                e["type"], e["actor"] = "photo.uploaded", "applicant"
    return edit


def photos_become_stills(code: str) -> Edit:
    def edit(s: Scenario) -> None:
        for e in s.events:
            if e["type"] == "photo.uploaded" and e["data"]["checkpoint"] == code:
                e["type"], e["actor"] = "still.captured", "inspector"
    return edit


def only_one_still(code: str) -> Edit:
    def edit(s: Scenario) -> None:
        s.drop(lambda e: e["type"] == "photo.uploaded" and e["data"]["checkpoint"] == code)
    return edit


def unsigned(role: str) -> Edit:
    def edit(s: Scenario) -> None:
        s.drop(lambda e: e["type"] == "signature.signed" and e["data"]["role"] == role)
    return edit


def no_location(s: Scenario) -> None:
    s.drop(lambda e: e["type"] == "location.updated")


def far_away(s: Scenario) -> None:
    s.log(1255, "location.updated", "applicant", {"lat": 37.46, "lon": 116.39, "accuracy_m": 10,
                                                 "distance_m": 3870.2, "within_radius": False})


def site_without_coordinates(s: Scenario) -> None:
    """The request gave no site coordinates: locations are logged without a distance."""
    s.site = {"address": s.site["address"], "lat": None, "lon": None, "radius_m": None}
    for e in s.events:
        if e["type"] == "location.updated":
            e["data"] = {k: v for k, v in e["data"].items() if k not in ("distance_m", "within_radius")}


def overtime(reason: Optional[str]) -> Edit:
    def edit(s: Scenario) -> None:
        limit = s.template.time_limit_min * 60.0
        s.log(limit - 300, "timer.warning", "system", {"elapsed_s": limit - 300, "limit_s": limit})
        s.log(limit - 60, "timer.final_warning", "system", {"elapsed_s": limit - 60, "limit_s": limit})
        s.log(limit, "timer.limit", "system", {"elapsed_s": limit, "limit_s": limit})
        if reason is not None:
            s.log(limit + 20, "timer.overtime_reason", "inspector", {"reason": reason, "elapsed_s": limit + 20})
        s.ended_s = limit + 11 * 60
    return edit


def on_warning_list(s: Scenario) -> None:
    s.warnings = [{"list": "dishonest-entity", "match": "德州市某某有限公司", "source": "信用中国（德州）"}]


def reconnects(times: int) -> Edit:
    def edit(s: Scenario) -> None:
        for n in range(times):
            s.log(700 + n * 30, "participant.reconnected", "applicant", {"id": "p-a"})
    return edit


def never_live(s: Scenario) -> None:
    s.started_s = None
    s.drop(lambda e: e["type"] == "session.live")
