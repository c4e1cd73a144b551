"""Parsing of the approval core's request bodies into frozen values.

Every rule of CONTRACT.md that concerns a request body lives here; a failed parse raises
:class:`~errors.ValidationFailed` with one ``{field, message}`` per problem, each
quoting the field's JSON path.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from errors import ValidationFailed
from .ids import resident_id_problem, uscc_problem

APPLICANT_KINDS = ("natural_person", "legal_person", "other_org")
ID_TYPES = ("USCC", "RESIDENT_ID", "PASSPORT", "OTHER")
#: A person by an identity document, an organisation by its unified social credit code.
ID_TYPES_OF_KIND = {
    "natural_person": ("RESIDENT_ID", "PASSPORT", "OTHER"),
    "legal_person": ("USCC", "OTHER"),
    "other_org": ("USCC", "OTHER"),
}
_CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CASE_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,63}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MAX_CHECKPOINTS = 100


@dataclass(frozen=True)
class Applicant:
    name: str
    kind: str
    id_type: str
    id_number: str
    contact_name: Optional[str]
    contact_phone: Optional[str]


@dataclass(frozen=True)
class Site:
    address: str
    lat: Optional[float]
    lon: Optional[float]
    radius_m: Optional[float]


@dataclass(frozen=True)
class Checkpoint:
    code: str
    title: str
    required: bool


@dataclass(frozen=True)
class NewInspection:
    case_no: str
    item_code: str
    item_name: str
    applicant: Applicant
    site: Site
    checkpoints: Optional[tuple[Checkpoint, ...]]
    callback_url: Optional[str]
    scheduled_at: Optional[datetime.datetime]
    inspector_user_id: Optional[str] = None


class _Collector:
    """Gathers every problem of a body so the caller can fix them in one go."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def obj(self, value: Any, field: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.add(field or "$", "must be a JSON object")
            return {}
        for key in sorted(set(value) - allowed):
            self.add(_join(field, key), "is not a known field")
        for key in sorted(required - set(value)):
            self.add(_join(field, key), "is required")
        return value

    def text(self, value: Any, field: str, max_len: int, required: bool = True) -> Optional[str]:
        if value is None:
            if required:
                self.add(field, "is required")
            return None
        if not isinstance(value, str):
            self.add(field, f"must be a string, got {type(value).__name__}")
            return None
        stripped = value.strip()
        if required and not stripped:
            self.add(field, "must not be empty")
            return None
        if len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters")
            return None
        if any(ord(c) < 32 for c in value):
            self.add(field, "must not contain control characters")
            return None
        return stripped

    def number(self, value: Any, field: str, low: float, high: float) -> Optional[float]:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(field, f"must be a number, got {type(value).__name__}")
            return None
        if not low <= value <= high:
            self.add(field, f"must be between {low} and {high}, got {value}")
            return None
        return float(value)


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,  # digits are 0-9, not any script's
)
#: The years an inspection may be scheduled in: past them, adding a link's lifetime (or
#: converting to UTC) leaves what Python's datetime can hold.
SCHEDULE_YEARS = (2000, 2099)


def parse_datetime(value: Any, field: str, errors: _Collector) -> Optional[datetime.datetime]:
    """An RFC 3339 ``date-time`` exactly (``T`` or ``t``, seconds, an offset or ``Z``/``z``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(field, "must be an RFC 3339 date-time string")
        return None
    example = "e.g. 2026-11-27T09:30:00+08:00"
    match = _RFC3339.fullmatch(value)
    if match is None:
        errors.add(field, f"{value!r} is not an RFC 3339 date-time with seconds and an offset ({example})")
        return None
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    if second == 60:
        errors.add(field, f"{value!r} is a leap second, which Takan does not schedule at; use :59 or the next minute")
        return None
    try:
        offset = datetime.timedelta(hours=int(match[10] or 0), minutes=int(match[11] or 0))
        zone = datetime.timezone(-offset if match[9] == "-" else offset)
        micros = int((match[7] or "0")[:6].ljust(6, "0"))
        parsed = datetime.datetime(year, month, day, hour, minute, second, micros, tzinfo=zone)
    except ValueError:
        errors.add(field, f"{value!r} is not a real date, time and offset ({example})")
        return None
    low, high = SCHEDULE_YEARS
    if not low <= year <= high:
        errors.add(field, f"{value!r} must be in the years {low}-{high}")
        return None
    return parsed


def parse_new_inspection(body: Any) -> NewInspection:
    """Validate a ``POST /api/v1/inspections`` body."""
    c = _Collector()
    top = c.obj(
        body,
        "",
        {"case_no", "item_code", "item_name", "applicant", "site", "checkpoints", "callback_url", "scheduled_at",
         "inspector_user_id"},
        {"case_no", "item_code", "item_name", "applicant", "site"},
    )
    case_no = c.text(top.get("case_no"), "case_no", 64) if "case_no" in top else None
    if case_no and not _CASE_NO.match(case_no):
        c.add("case_no", f"{case_no!r} may hold only letters, digits and _ . / - (at most 64)")
    item_code = c.text(top.get("item_code"), "item_code", 64) if "item_code" in top else None
    if item_code and not _CODE.match(item_code):
        c.add("item_code", f"{item_code!r} must be lower-case letters, digits and _ . -")
    item_name = c.text(top.get("item_name"), "item_name", 200) if "item_name" in top else None

    applicant = _parse_applicant(c, top.get("applicant")) if "applicant" in top else None
    site = _parse_site(c, top.get("site")) if "site" in top else None
    checkpoints = _parse_checkpoints(c, top["checkpoints"]) if "checkpoints" in top else None

    callback_url = c.text(top.get("callback_url"), "callback_url", 2000, required=False)
    if callback_url:
        problem = callback_url_problem(callback_url)
        if problem:
            c.add("callback_url", problem)
    scheduled_at = parse_datetime(top.get("scheduled_at"), "scheduled_at", c)
    inspector_user_id = _user_id(c, top.get("inspector_user_id"), required=False)

    if c.errors:
        raise ValidationFailed(
            f"the request body has {len(c.errors)} problem(s); see errors", errors=c.errors
        )
    assert case_no and item_code and item_name and applicant and site
    return NewInspection(
        case_no=case_no,
        item_code=item_code,
        item_name=item_name,
        applicant=applicant,
        site=site,
        checkpoints=checkpoints,
        callback_url=callback_url or None,
        scheduled_at=scheduled_at,
        inspector_user_id=inspector_user_id,
    )


def callback_url_problem(url: str) -> Optional[str]:
    """Why the notifier could not POST to ``url``, or None: checked at create, so that no
    inspection is accepted whose webhooks would all be dropped, and by the outbox at
    delivery time (``check_callback_url``)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # a port outside 0-65535, or not a number, raises here
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc}); send an absolute http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} must be an absolute http(s) URL with a host"
    if port == 0:
        return f"{url!r} has port 0; give a port from 1 to 65535, or none for the scheme's own"
    if any(ch.isspace() for ch in url):
        return f"{url!r} holds a space; percent-encode it"
    return None


def _user_id(c: _Collector, value: Any, required: bool, field: str = "inspector_user_id") -> Optional[str]:
    if isinstance(value, str) and not value.strip():
        # "" is not "nobody": an unknown user id is a 422 (CONTRACT.md, Additions)
        c.add(field, "must not be empty: name a staff user id (where it is optional, omit it or send null)")
        return None
    user_id = c.text(value, field, 64, required=required)
    if user_id and not _USER_ID.match(user_id):
        c.add(field, f"{user_id!r} is not a staff user id")
        return None
    return user_id or None


def _parse_applicant(c: _Collector, value: Any) -> Optional[Applicant]:
    before = len(c.errors)
    a = c.obj(
        value,
        "applicant",
        {"name", "kind", "id_type", "id_number", "contact_name", "contact_phone"},
        {"name", "kind", "id_type", "id_number"},
    )
    name = c.text(a.get("name"), "applicant.name", 200) if "name" in a else None
    kind = a.get("kind")
    if "kind" in a and kind not in APPLICANT_KINDS:
        c.add("applicant.kind", f"{kind!r} must be one of {', '.join(APPLICANT_KINDS)}")
    id_type = a.get("id_type")
    if "id_type" in a and id_type not in ID_TYPES:
        c.add("applicant.id_type", f"{id_type!r} must be one of {', '.join(ID_TYPES)}")
    id_number = c.text(a.get("id_number"), "applicant.id_number", 64) if "id_number" in a else None
    if id_number:
        id_number = id_number.upper()
        problem = None
        if id_type == "USCC":
            problem = uscc_problem(id_number)
        elif id_type == "RESIDENT_ID":
            problem = resident_id_problem(id_number)
        if problem:
            c.add("applicant.id_number", f"{id_number!r} {problem}")
    fitting = ID_TYPES_OF_KIND.get(str(kind), ID_TYPES)
    if id_type in ID_TYPES and id_type not in fitting:
        c.add("applicant.id_type", f"{id_type!r} does not identify a {kind}: use {' or '.join(fitting)}")
    contact_name = c.text(a.get("contact_name"), "applicant.contact_name", 100, required=False)
    contact_phone = c.text(a.get("contact_phone"), "applicant.contact_phone", 32, required=False)
    if contact_phone and not _PHONE.match(contact_phone):
        c.add("applicant.contact_phone", f"{contact_phone!r} is not a phone number")
    if len(c.errors) > before:
        return None
    assert name and id_number
    return Applicant(name, str(kind), str(id_type), id_number, contact_name or None, contact_phone or None)


def _parse_site(c: _Collector, value: Any) -> Optional[Site]:
    before = len(c.errors)
    s = c.obj(value, "site", {"address", "lat", "lon", "radius_m"}, {"address"})
    address = c.text(s.get("address"), "site.address", 300) if "address" in s else None
    lat = c.number(s.get("lat"), "site.lat", -90, 90)
    lon = c.number(s.get("lon"), "site.lon", -180, 180)
    if (s.get("lat") is None) != (s.get("lon") is None):
        c.add("site", "lat and lon must be given together")
    radius = c.number(s.get("radius_m"), "site.radius_m", 1, 100_000)
    if len(c.errors) > before:
        return None
    assert address
    return Site(address, lat, lon, radius)


def _parse_checkpoints(c: _Collector, value: Any) -> Optional[tuple[Checkpoint, ...]]:
    if not isinstance(value, list):
        c.add("checkpoints", "must be an array")
        return None
    if not value:
        c.add("checkpoints", "must not be empty (omit it to use the item's template)")
        return None
    if len(value) > MAX_CHECKPOINTS:
        c.add("checkpoints", f"must have at most {MAX_CHECKPOINTS} entries")
        return None
    out: list[Checkpoint] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        field = f"checkpoints[{i}]"
        before = len(c.errors)
        cp = c.obj(item, field, {"code", "title", "required"}, {"code", "title"})
        code = c.text(cp.get("code"), f"{field}.code", 64) if "code" in cp else None
        if code and not _CODE.match(code):
            c.add(f"{field}.code", f"{code!r} must be lower-case letters, digits and _ . -")
        if code in seen:
            c.add(f"{field}.code", f"{code!r} appears twice")
        title = c.text(cp.get("title"), f"{field}.title", 200) if "title" in cp else None
        required = cp.get("required", True)
        if not isinstance(required, bool):
            c.add(f"{field}.required", "must be true or false")
        if len(c.errors) == before and code and title:
            seen.add(code)
            out.append(Checkpoint(code, title, bool(required)))
    return tuple(out)


def parse_cancel(body: Any) -> str:
    """Validate a ``POST .../cancel`` body and return the reason."""
    c = _Collector()
    top = c.obj(body, "", {"reason"}, {"reason"})
    reason = c.text(top.get("reason"), "reason", 500) if "reason" in top else None
    if c.errors:
        raise ValidationFailed("the cancel request is not valid; see errors", errors=c.errors)
    assert reason
    return reason


def parse_reschedule(body: Any) -> datetime.datetime:
    """Validate a ``POST .../reschedule`` body and return the new time."""
    c = _Collector()
    top = c.obj(body, "", {"scheduled_at"}, {"scheduled_at"})
    when = parse_datetime(top.get("scheduled_at"), "scheduled_at", c) if "scheduled_at" in top else None
    if c.errors or when is None:
        raise ValidationFailed("the new time is not valid; see errors", errors=c.errors or [{"field": "scheduled_at", "message": "is required"}])
    return when


@dataclass(frozen=True)
class ObserverInvite:
    name: Optional[str]
    user_id: Optional[str]
    ttl_hours: Optional[float]


def parse_observer_invite(body: Any) -> ObserverInvite:
    """Validate a ``POST .../observers`` body: a staff ``user_id`` or a guest's ``name``."""
    c = _Collector()
    top = c.obj(body, "", {"name", "user_id", "ttl_hours"}, set())
    name = c.text(top.get("name"), "name", 100, required=False)
    user_id = _user_id(c, top.get("user_id"), required=False, field="user_id") if "user_id" in top else None
    if not name and not user_id:
        c.add("name", "give the guest's name, or the user_id of a staff member")
    ttl = c.number(top.get("ttl_hours"), "ttl_hours", 0.01, 720)
    if c.errors:
        raise ValidationFailed("the invitation is not valid; see errors", errors=c.errors)
    return ObserverInvite(name or None, user_id, ttl)


def parse_assign(body: Any) -> str:
    """Validate a ``POST .../assign`` body and return the staff user id it names."""
    c = _Collector()
    top = c.obj(body, "", {"inspector_user_id"}, {"inspector_user_id"})
    user_id = _user_id(c, top.get("inspector_user_id"), required=True) if "inspector_user_id" in top else None
    if c.errors:
        raise ValidationFailed("the assignment is not valid; see errors", errors=c.errors)
    assert user_id
    return user_id
