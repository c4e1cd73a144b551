"""The facts a rule can look at, gathered from an inspection's record and event log.

Facts are a plain dict: one entry per name of :data:`FACT_TYPES`. A fact that could not be
established (the applicant's phone never reported a location, the session never went
live) is absent, not ``None``, so a rule that needs it cannot be decided and the
inspection goes to manual review (5.6) instead of being judged on a guess.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from approval.templates import Template

# name -> CEL type of every fact (CEL type syntax; `dyn` where values are mixed)
FACT_TYPES: dict[str, str] = {
    "item_code": "string",
    # code -> {required: bool, captured: bool, stills: int, photos: int}
    "checkpoints": "map(string, map(string, dyn))",
    "required_missing": "list(string)",  # codes of required checkpoints without evidence
    "stills": "int",  # stills the server took from the applicant's video
    "photos": "int",  # photos the applicant uploaded
    "signatures": "map(string, bool)",  # role -> signed; applicant and inspector always there
    "duration_s": "double",
    "time_limit_s": "double",
    "within_time_limit": "bool",
    "overtime_reason": "string",  # the inspector's reason for running past the limit
    "distance_m": "double",  # the applicant's last reported distance from the site
    "site_radius_m": "double",
    "location_reported": "bool",
    "reconnections": "int",
    "timer_warnings": "int",  # time warnings shown (25 and 29 minutes of 30)
    "warnings": "list(map(string, string))",  # prudent-warning matches {list, match}
    "end_reason": "string",  # ended (the inspector ended it) | abandoned (nobody came back)
    # what recognition/ read (each absent until a reading could compare it; the last reading wins)
    "licence_read": "bool",  # a business licence was captured and recognised as one
    "licence_name_matches": "bool",  # the licence's name is the applicant's
    "licence_uscc_matches": "bool",  # the licence's USCC (check character valid) is the applicant's
    "shop_sign_matches": "bool",  # the shop sign shows the applicant's trade name
    "permit_read": "bool",  # a permit the template asks for (e.g. food_permit) was captured and read
    "permit_name_matches": "bool",  # the permit's holder is the applicant
}
FACT_NAMES: tuple[str, ...] = tuple(FACT_TYPES)
#: facts present only once a capture was recognised (recognition/)
RECOGNITION_FACTS = frozenset({"licence_read", "licence_name_matches", "licence_uscc_matches", "shop_sign_matches",
                               "permit_read", "permit_name_matches"})
DEFAULT_TIME_LIMIT_S = 30 * 60.0  # 8.2.3: an inspection should finish within 30 minutes


def facts_from(
    inspection_record: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    warnings: Sequence[Mapping[str, Any]] = (),
    *,
    template: Optional[Template] = None,
) -> dict[str, Any]:
    """The facts of one inspection.

    ``inspection_record`` is the JSON of :class:`approval.inspections.Inspection`;
    ``events`` the entries of its ``events.jsonl`` (see docs/evidence.md); ``warnings``
    the prudent-warning matches (8.1.8), each ``{list, match}``. ``template``, the item's
    checklist template, supplies the time limit and the site radius when the record and
    the log do not.
    """
    site = inspection_record.get("site") or {}
    stills_of: dict[str, int] = {}
    photos_of: dict[str, int] = {}
    signatures = {"applicant": False, "inspector": False}
    distance: Optional[float] = None
    location_reported = False
    reconnections = timer_warnings = 0
    over_limit = False
    overtime_reason: Optional[str] = None
    limit_s: Optional[float] = None
    live_at: Optional[str] = None
    last_at: Optional[str] = None
    recognised: dict[str, bool] = {}
    for event in events:
        kind = event.get("type")
        data = event.get("data") or {}
        last_at = event.get("at") or last_at
        if kind == "still.captured":
            _count(stills_of, data.get("checkpoint"))
        elif kind == "photo.uploaded":
            _count(photos_of, data.get("checkpoint"))
        elif kind == "signature.signed":
            signatures[str(data.get("role") or event.get("actor"))] = True
        elif kind == "location.updated":
            location_reported = True
            if _is_number(data.get("distance_m")):
                distance = float(data["distance_m"])
        elif kind == "participant.reconnected":
            reconnections += 1
        elif kind in ("timer.warning", "timer.final_warning"):
            timer_warnings += 1
        elif kind == "timer.limit":
            over_limit = True
        elif kind == "timer.overtime_reason" and isinstance(data.get("reason"), str):
            overtime_reason = data["reason"]
        elif kind == "recognition.result":
            _recognition(recognised, data)
        elif kind == "session.live" and live_at is None:
            live_at = event.get("at")
        if kind is not None and kind.startswith("timer.") and _is_number(data.get("limit_s")):
            limit_s = float(data["limit_s"])

    checkpoints: dict[str, dict[str, Any]] = {}
    required_missing: list[str] = []
    for checkpoint in inspection_record.get("checkpoints") or []:
        code = str(checkpoint["code"])
        evidence = [str(key) for key in checkpoint.get("evidence") or []]
        # the log is the source of truth; the record's evidence list covers a log not at hand
        stills = max(stills_of.get(code, 0), sum(key.startswith("stills/") for key in evidence))
        photos = max(photos_of.get(code, 0), sum(key.startswith("photos/") for key in evidence))
        required = bool(checkpoint.get("required", True))
        captured = bool(checkpoint.get("captured")) or stills + photos > 0
        checkpoints[code] = {"required": required, "captured": captured, "stills": stills, "photos": photos}
        if required and not captured:
            required_missing.append(code)

    if template is not None:
        limit_s = template.time_limit_min * 60.0
    facts: dict[str, Any] = {
        "item_code": str(inspection_record.get("item_code", "")),
        "checkpoints": checkpoints,
        "required_missing": required_missing,
        "stills": max(sum(stills_of.values()), sum(c["stills"] for c in checkpoints.values())),
        "photos": max(sum(photos_of.values()), sum(c["photos"] for c in checkpoints.values())),
        "signatures": signatures,
        "time_limit_s": limit_s if limit_s is not None else DEFAULT_TIME_LIMIT_S,
        "location_reported": location_reported,
        "reconnections": reconnections,
        "timer_warnings": timer_warnings,
        "warnings": [{"list": str(w.get("list", "")), "match": str(w.get("match", ""))} for w in warnings],
        "end_reason": str(inspection_record.get("end_reason") or "ended"),
    }
    start = _moment(inspection_record.get("started_at") or live_at)
    end = _moment(inspection_record.get("ended_at") or last_at)
    if start is not None and end is not None:
        facts["duration_s"] = round(max(0.0, (end - start).total_seconds()), 3)
        facts["within_time_limit"] = not over_limit and facts["duration_s"] <= facts["time_limit_s"]
    if overtime_reason is not None:
        facts["overtime_reason"] = overtime_reason
    facts.update(recognised)
    if distance is not None:
        facts["distance_m"] = distance
    radius = site.get("radius_m")
    if not _is_number(radius) and template is not None:
        radius = template.site_radius_m
    if isinstance(radius, (int, float)) and not isinstance(radius, bool):
        facts["site_radius_m"] = float(radius)
    return facts


def _recognition(facts: dict[str, bool], data: Mapping[str, Any]) -> None:
    matches = data.get("matches") or {}
    if data.get("kind") == "business_licence":
        facts["licence_read"] = True
        for name, fact in (("name", "licence_name_matches"), ("uscc", "licence_uscc_matches")):
            if isinstance(matches.get(name), bool):
                facts[fact] = matches[name]
    elif data.get("kind") == "shop_sign" and isinstance(matches.get("name"), bool):
        facts["shop_sign_matches"] = matches["name"]
    elif str(data.get("kind", "")).endswith("permit"):  # recognition.permit.PERMITS
        facts["permit_read"] = True
        if isinstance(matches.get("name"), bool):
            facts["permit_name_matches"] = matches["name"]


def _count(counts: dict[str, int], checkpoint: Any) -> None:
    if isinstance(checkpoint, str):
        counts[checkpoint] = counts.get(checkpoint, 0) + 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _moment(value: Any) -> Optional[datetime.datetime]:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
