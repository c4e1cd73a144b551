"""One year's official holiday arrangement, as an operator loads it (``docs/calendar.md``).

Each autumn the State Council (国务院办公厅) publishes the next year's public holidays and
the weekend days worked in exchange for them (调休上班). An operator writes that notice into a
small YAML or JSON file and loads it with ``takan calendar import FILE`` or
``PUT /api/v1/calendar/{year}``::

    year: 2027
    source: "国务院办公厅关于2027年部分节假日安排的通知 (国办发明电〔2026〕N号)"
    holidays:
      - {name: 元旦, date: 2027-01-01}
      - {name: 春节, from: 2027-02-06, to: 2027-02-13}
    makeup_working_days:
      - {date: 2027-02-14, name: 春节}

:func:`parse_arrangement` validates a file strictly and reports every problem at once, each
naming the field (``holidays[1].to``) and, for YAML and JSON text, the line.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import yaml  # type: ignore[import-untyped]

from errors import ValidationFailed

__all__ = [
    "FORMAT_KEYS",
    "MAX_HOLIDAY_DAYS",
    "CalendarFileError",
    "Holiday",
    "MakeupDay",
    "YearArrangement",
    "parse_arrangement",
]

#: The keys a file may have; ``year``, ``source`` and ``holidays`` are required.
FORMAT_KEYS = ("year", "source", "published_on", "url", "notes", "holidays", "makeup_working_days")
#: A holiday longer than this is refused as a typo (the longest statutory break is about 9 days).
MAX_HOLIDAY_DAYS = 15
MAX_NODES = 10_000
_YEARS = range(2000, 2101)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CalendarFileError(ValidationFailed):
    """A holiday arrangement file (or API body) that cannot be loaded; ``errors`` lists why."""


@dataclass(frozen=True, slots=True)
class Holiday:
    """A named public holiday: the days off ``start`` to ``end`` (inclusive)."""

    name: str
    start: datetime.date
    end: datetime.date

    def days(self) -> list[datetime.date]:
        """Every day of the holiday, in order."""
        return [self.start + datetime.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def as_json(self) -> dict[str, str]:
        if self.start == self.end:
            return {"name": self.name, "date": self.start.isoformat()}
        return {"name": self.name, "from": self.start.isoformat(), "to": self.end.isoformat()}


@dataclass(frozen=True, slots=True)
class MakeupDay:
    """A Saturday or Sunday that is worked (调休上班), optionally naming the holiday it makes up for."""

    date: datetime.date
    name: Optional[str] = None

    def as_json(self) -> dict[str, str]:
        body = {"date": self.date.isoformat()}
        if self.name:
            body["name"] = self.name
        return body


@dataclass(frozen=True, slots=True)
class YearArrangement:
    """One year's holidays and make-up working days, and the notice they come from."""

    year: int
    source: str
    holidays: tuple[Holiday, ...]
    makeup_working_days: tuple[MakeupDay, ...] = ()
    published_on: Optional[datetime.date] = None
    url: Optional[str] = None
    notes: Optional[str] = None

    def days_off(self) -> frozenset[datetime.date]:
        """Every holiday date (weekend days inside a holiday included)."""
        return frozenset(day for holiday in self.holidays for day in holiday.days())

    def days_worked(self) -> frozenset[datetime.date]:
        """The make-up working days."""
        return frozenset(day.date for day in self.makeup_working_days)

    def is_workday(self, day: datetime.date) -> bool:
        """A make-up day, or a weekday that is no holiday (the rule chinese-calendar applies)."""
        if day.year != self.year:
            raise ValueError(f"{day} is not in {self.year}")
        return day in self.days_worked() or (day.weekday() < 5 and day not in self.days_off())

    def as_json(self) -> dict[str, Any]:
        """The arrangement in the file format (``parse_arrangement`` reads it back)."""
        body: dict[str, Any] = {"year": self.year, "source": self.source}
        for name in ("published_on", "url", "notes"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value.isoformat() if isinstance(value, datetime.date) else value
        body["holidays"] = [h.as_json() for h in self.holidays]
        body["makeup_working_days"] = [d.as_json() for d in self.makeup_working_days]
        return body


# ---- reading text ------------------------------------------------------------------------


def _from_node(node: yaml.Node, path: str, lines: dict[str, int], problems: list[dict[str, str]]) -> Any:
    """Plain values from a YAML node tree, remembering each path's line (1-based)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if len(lines) > MAX_NODES:  # aliases can make a small text expand without bound
        raise CalendarFileError(
            f"the holiday arrangement has more than {MAX_NODES} values; a year has a few dozen",
            errors=[{"field": path or "$", "message": "too many values (YAML aliases?)"}],
        )
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                problems.append(_problem(path or "$", "keys must be plain names", key_node.start_mark.line + 1))
                continue
            child = f"{path}.{key}" if path else key
            if key in out:
                problems.append(_problem(child, "is given twice", key_node.start_mark.line + 1))
                continue
            out[key] = _from_node(value_node, child, lines, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_from_node(item, f"{path}[{i}]", lines, problems) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    tag = node.tag.rsplit(":", 1)[-1]
    if tag == "null" and node.style is None:
        return None
    if tag == "bool" and node.style is None:
        return node.value.lower() in ("true", "yes", "on", "y")
    if tag == "int" and node.style is None and re.fullmatch(r"[-+]?\d+", node.value):
        return int(node.value)
    return str(node.value)  # dates stay text: they are checked as YYYY-MM-DD below


def _read(text: str) -> tuple[Any, dict[str, int], list[dict[str, str]]]:
    lines: dict[str, int] = {}
    problems: list[dict[str, str]] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        try:  # JSON that PyYAML's YAML 1.1 cannot read (tabs, for instance)
            return json.loads(text, object_pairs_hook=_no_duplicates), {}, []
        except ValueError:
            pass
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise CalendarFileError(
            f"the holiday arrangement is not valid YAML or JSON ({where}{reason})",
            errors=[{"field": "$", "message": f"{where}{reason}"}],
        ) from None
    if node is None:
        raise CalendarFileError("the holiday arrangement is empty", errors=[{"field": "$", "message": "is empty"}])
    return _from_node(node, "", lines, problems), lines, problems


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} is given twice")
        out[key] = value
    return out


def _problem(field: str, message: str, line: Optional[int] = None) -> dict[str, str]:
    return {"field": field or "$", "message": f"line {line}: {message}" if line else message}


# ---- validation --------------------------------------------------------------------------


def parse_arrangement(
    data: bytes | str | Mapping[str, Any], *, expected_year: Optional[int] = None, name: str = "the holiday arrangement"
) -> YearArrangement:
    """Validate a holiday arrangement (YAML or JSON text, or an already parsed mapping).

    Raises :class:`CalendarFileError` (a 422) listing every problem: unknown or missing
    fields, dates that are not ``YYYY-MM-DD`` or not in ``year``, a holiday ending before it
    starts or longer than :data:`MAX_HOLIDAY_DAYS`, a date in two holidays or listed twice, a
    make-up working day that is a weekday or a holiday. ``expected_year`` (the year in the
    URL, say) must match the file's ``year``.
    """
    lines: dict[str, int] = {}
    problems: list[dict[str, str]] = []
    if isinstance(data, (bytes, str)):
        try:
            text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        except UnicodeDecodeError:
            raise CalendarFileError(f"{name} is not UTF-8 text", errors=[{"field": "$", "message": "is not UTF-8"}]) from None
        body, lines, problems = _read(text)
    else:
        body = data

    def bad(field: str, message: str) -> None:
        line = lines.get(field)
        if line is None and "." in field:  # a missing key: point at its parent
            line = lines.get(field.rsplit(".", 1)[0])
        problems.append(_problem(field, message, line))

    if not isinstance(body, Mapping):
        bad("$", "must be a mapping with year, source and holidays")
        raise _error(name, problems)
    for key in body:
        if key not in FORMAT_KEYS:
            bad(str(key), f"is not a known field (known: {', '.join(FORMAT_KEYS)})")

    year = body.get("year")
    if year is None:
        bad("year", "is required (the year the arrangement is for, such as 2027)")
        year = None
    elif isinstance(year, bool) or not isinstance(year, int):
        if isinstance(year, str) and year.strip().isdigit():
            year = int(year)
        else:
            bad("year", f"must be a year such as 2027, got {year!r}")
            year = None
    if isinstance(year, int) and year not in _YEARS:
        bad("year", f"{year} is not a year between {_YEARS.start} and {_YEARS.stop - 1}")
        year = None
    if isinstance(year, int) and expected_year is not None and year != expected_year:
        bad("year", f"is {year}, but the arrangement is being loaded for {expected_year}")

    source = _text(body, "source", "source", bad, limit=500, required="the notice's title and number (发文字号)")
    url = _text(body, "url", "url", bad, limit=500)
    notes = _text(body, "notes", "notes", bad, limit=4000)
    published_on = _date_of(body.get("published_on"), "published_on", bad) if body.get("published_on") is not None else None

    holidays: list[Holiday] = []
    taken: dict[datetime.date, str] = {}
    raw_holidays = body.get("holidays")
    if raw_holidays is None:
        bad("holidays", "is required: the list of holidays, each {name, date} or {name, from, to}")
    elif not isinstance(raw_holidays, Sequence) or isinstance(raw_holidays, str) or not raw_holidays:
        bad("holidays", "must be a non-empty list of holidays, each {name, date} or {name, from, to}")
    else:
        for i, item in enumerate(raw_holidays):
            holiday = _holiday(item, f"holidays[{i}]", year, bad)
            if holiday is None:
                continue
            clash = next((taken[d] for d in holiday.days() if d in taken), None)
            if clash is not None:
                day = next(d for d in holiday.days() if d in taken)
                bad(f"holidays[{i}]", f"{day} is already a day of {clash}; every date may appear once")
                continue
            for day in holiday.days():
                taken[day] = f"holidays[{i}] ({holiday.name})"
            holidays.append(holiday)

    makeup: list[MakeupDay] = []
    raw_makeup = body.get("makeup_working_days", [])
    if raw_makeup is None:
        raw_makeup = []
    if not isinstance(raw_makeup, Sequence) or isinstance(raw_makeup, str):
        bad("makeup_working_days", "must be a list of {date, name} (the weekend days worked, 调休上班)")
        raw_makeup = []
    for i, item in enumerate(raw_makeup):
        field = f"makeup_working_days[{i}]"
        if not isinstance(item, Mapping):
            bad(field, "must be a mapping {date, name}")
            continue
        for key in item:
            if key not in ("date", "name"):
                bad(f"{field}.{key}", "is not a known field (a make-up working day has date and name)")
        worked = _date_of(item.get("date"), f"{field}.date", bad)
        label = _text(item, "name", f"{field}.name", bad, limit=100)
        if worked is None:
            continue
        if year is not None and worked.year != year:
            bad(f"{field}.date", f"{worked} is not in {year}; every date of the file must lie in its year")
            continue
        if worked in taken and taken[worked].startswith("makeup"):
            bad(f"{field}.date", f"{worked} is already {taken[worked]}; every date may appear once")
            continue
        if worked in taken:
            bad(f"{field}.date", f"{worked} is a holiday ({taken[worked]}); a day cannot be both off and worked")
            continue
        if worked.weekday() < 5:
            bad(f"{field}.date", f"{worked} is a {_WEEKDAYS[worked.weekday()]}, a working day anyway; "
                "make-up working days (调休上班) are the Saturdays and Sundays worked")
            continue
        taken[worked] = field
        makeup.append(MakeupDay(worked, label))

    if problems or year is None or source is None:
        raise _error(name, problems)
    return YearArrangement(
        year=year,
        source=source,
        holidays=tuple(sorted(holidays, key=lambda h: h.start)),
        makeup_working_days=tuple(sorted(makeup, key=lambda d: d.date)),
        published_on=published_on,
        url=url,
        notes=notes,
    )


def _error(name: str, problems: list[dict[str, str]]) -> CalendarFileError:
    first = problems[0] if problems else {"field": "$", "message": "is not a holiday arrangement"}
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return CalendarFileError(f"{name} cannot be loaded: {first['field']}: {first['message']}{more}", errors=problems or [first])


def _text(
    body: Mapping[str, Any], key: str, field: str, bad: Callable[[str, str], None], *, limit: int, required: str = ""
) -> Optional[str]:
    """The text at ``key`` (reported as ``field``); ``required`` says what to give if missing."""
    value = body.get(key)
    if value is None:
        if required:
            bad(field, f"is required ({required})")
        return None
    if not isinstance(value, str) or not value.strip():
        bad(field, "must be non-empty text")
        return None
    if len(value) > limit:
        bad(field, f"must be at most {limit} characters")
        return None
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        bad(field, "must not contain control characters")
        return None
    return value.strip()


def _date_of(value: Any, field: str, bad: Callable[[str, str], None]) -> Optional[datetime.date]:
    if value is None:
        bad(field, "is required (a date YYYY-MM-DD)")
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError as exc:
            bad(field, f"{value!r} is not a date ({exc})")
            return None
    bad(field, f"must be a date YYYY-MM-DD, got {value!r}")
    return None


def _holiday(item: Any, field: str, year: Optional[int], bad: Callable[[str, str], None]) -> Optional[Holiday]:
    if not isinstance(item, Mapping):
        bad(field, "must be a mapping {name, date} or {name, from, to}")
        return None
    for key in item:
        if key not in ("name", "date", "from", "to"):
            bad(f"{field}.{key}", "is not a known field (a holiday has name and date, or name, from and to)")
    name = _text(item, "name", f"{field}.name", bad, limit=100, required="the holiday's name, such as 春节")
    if "date" in item:
        if "from" in item or "to" in item:
            bad(field, "give either date (a one-day holiday) or from and to, not both")
            return None
        start = end = _date_of(item.get("date"), f"{field}.date", bad)
    elif "from" in item or "to" in item:
        start = _date_of(item.get("from"), f"{field}.from", bad)
        end = _date_of(item.get("to"), f"{field}.to", bad)
    else:
        bad(field, "needs date (a one-day holiday) or from and to (inclusive)")
        return None
    if start is None or end is None or name is None:
        return None
    where = f"{field}.date" if "date" in item else f"{field}.from"
    if year is not None:
        for key, day in (("date", start),) if "date" in item else (("from", start), ("to", end)):
            if day.year != year:
                bad(f"{field}.{key}", f"{day} is not in {year}; every date of the file must lie in its year")
                return None
    if end < start:
        bad(f"{field}.to", f"{end} is before {start}")
        return None
    if (end - start).days + 1 > MAX_HOLIDAY_DAYS:
        bad(where, f"{start} to {end} is {(end - start).days + 1} days; no holiday is longer than {MAX_HOLIDAY_DAYS}")
        return None
    return Holiday(name, start, end)
