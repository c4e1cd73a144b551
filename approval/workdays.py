"""Chinese statutory working days: the calendar behind every "within N working days" limit.

The State Council publishes each year's public holidays and the weekend days worked in
exchange for them (调休) only in the autumn before. :class:`WorkingCalendar` answers from two
sources, per year:

1. an arrangement the operator imported (``takan calendar import FILE`` or
   ``PUT /api/v1/calendar/{year}``), stored as versioned objects under ``records/calendar/``
   so that every node sees it: it **wins** for its year, so a corrected notice can be loaded
   over the package's data;
2. otherwise the PyPI package ``chinese-calendar``, for the years it carries.

A year known to neither raises :class:`CalendarYearUnknown`, saying what to load, instead of
guessing: a deadline computed from plain weekdays would be wrong around every holiday.
:meth:`WorkingCalendar.warning` says so from November 1 when next year is still missing.

Dates here are civil dates in China (UTC+8); :func:`china_date` turns a moment into one.
See ``docs/calendar.md``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Optional

import chinese_calendar  # type: ignore[import-untyped]

from storage.objects import ObjectStore

from .calendar_file import CalendarFileError, Holiday, MakeupDay, YearArrangement, parse_arrangement
from errors import NotFound, ValidationFailed

__all__ = [
    "CHINA_TZ",
    "RECORD_PREFIX",
    "CalendarYearUnknown",
    "StoredYear",
    "WorkingCalendar",
    "YearSource",
    "china_date",
    "package_arrangement",
    "package_years",
]

logger = logging.getLogger(__name__)

#: China Standard Time. China has not observed daylight saving time since 1991, so a fixed
#: offset is exact and needs no tz database.
CHINA_TZ = datetime.timezone(datetime.timedelta(hours=8), "CST")
#: Imported years live at ``records/calendar/<year>/<version>.json``; the highest version is in force.
RECORD_PREFIX = "records/calendar/"
PACKAGE = f"chinese-calendar {chinese_calendar.__version__}"
#: From this month (China time) on, a missing next year is warned about.
WARN_FROM_MONTH = 11


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def china_date(moment: datetime.datetime) -> datetime.date:
    """The civil date in China of an aware ``moment`` (naive moments are refused)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment {moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(CHINA_TZ).date()


def package_years() -> range:
    """The years whose holidays and make-up working days the installed package knows."""
    years = [day.year for day in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)


def package_arrangement(year: int) -> YearArrangement:
    """The installed package's data for ``year`` in the import format (consecutive days grouped)."""
    if year not in package_years():
        raise KeyError(year)
    holidays: list[Holiday] = []
    for day, name in sorted((d, str(n)) for d, n in chinese_calendar.holidays.items() if d.year == year):
        last = holidays[-1] if holidays else None
        if last is not None and last.name == name and last.end + datetime.timedelta(days=1) == day:
            holidays[-1] = Holiday(name, last.start, day)
        else:
            holidays.append(Holiday(name, day, day))
    makeup = tuple(MakeupDay(d, str(n)) for d, n in sorted(chinese_calendar.workdays.items()) if d.year == year)
    return YearArrangement(year=year, source=PACKAGE, holidays=tuple(holidays), makeup_working_days=makeup)


class CalendarYearUnknown(ValidationFailed, ValueError):
    """The working-day calendar has no holiday data for ``year``: neither imported nor in the package.

    A :class:`~errors.ValidationFailed` (422) because it is raised for a date the
    caller sent; also a :class:`ValueError` for callers outside the web layer. ``known``
    describes what the calendar does know.
    """

    def __init__(self, year: int, field: str = "date", known: str = "") -> None:
        known = known or f"{PACKAGE} knows {package_years().start}-{package_years().stop - 1}"
        super().__init__(
            f"the working-day calendar has no data for {year} ({known}); load the State Council's "
            f"notice on the {year} public holidays and make-up working days (调休) with "
            f"`takan calendar import FILE` or PUT /api/v1/calendar/{year} (see docs/calendar.md)",
            errors=[{"field": field, "message": f"year {year} is not in the working-day calendar"}],
        )
        self.year = year
        self.known = known


@dataclass(frozen=True, slots=True)
class StoredYear:
    """One imported version of one year: the arrangement and who loaded it when."""

    arrangement: YearArrangement
    version: int
    imported_at: str
    imported_by: str

    @property
    def year(self) -> int:
        return self.arrangement.year

    @property
    def key(self) -> str:
        return version_key(self.year, self.version)

    def provenance(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "imported_at": self.imported_at,
            "imported_by": self.imported_by,
            "notice": self.arrangement.source,
        }

    def to_record(self) -> bytes:
        body = {**self.provenance(), "arrangement": self.arrangement.as_json()}
        return json.dumps(body, ensure_ascii=False, sort_keys=True, indent=1).encode()

    @classmethod
    def from_record(cls, data: bytes) -> StoredYear:
        body = json.loads(data)
        arrangement = parse_arrangement(body["arrangement"], name="stored arrangement")
        return cls(arrangement, int(body["version"]), str(body["imported_at"]), str(body["imported_by"]))


@dataclass(frozen=True, slots=True)
class YearSource:
    """Where the calendar takes one year from: ``imported`` (which version) or ``package``."""

    year: int
    kind: Literal["imported", "package"]
    source: str
    stored: Optional[StoredYear] = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"year": self.year, "from": self.kind, "source": self.source}
        if self.stored is not None:
            body.update(self.stored.provenance())
            if self.year in package_years():
                body["overrides"] = PACKAGE
        return body


def version_key(year: int, version: int) -> str:
    return f"{RECORD_PREFIX}{year:04d}/{version:06d}.json"


class WorkingCalendar:
    """Working days from imported arrangements (which win) and the ``chinese-calendar`` package.

    Without a ``store`` it knows only the package. With one, ``start()`` loads the imported
    years and ``refresh()`` re-reads them (the app does every minute, and before refusing a
    year) so that an import on one node reaches all. ``clock`` (aware UTC) is for tests.
    """

    def __init__(
        self,
        store: Optional[ObjectStore] = None,
        *,
        use_package: bool = True,
        clock: Callable[[], datetime.datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._use_package = use_package
        self.clock = clock
        self._imported: dict[int, StoredYear] = {}
        self._workday_sets: dict[int, tuple[frozenset[datetime.date], frozenset[datetime.date]]] = {}
        self._lock = asyncio.Lock()

    # ---- life cycle and imports -----------------------------------------------------------

    async def start(self) -> None:
        """Load the imported years in force; safe to call twice."""
        await self.refresh()
        if self._imported:
            logger.info("working-day calendar: imported years %s", sorted(self._imported))

    async def close(self) -> None:
        """Nothing to release; the imported years stay known."""

    async def refresh(self) -> bool:
        """Re-read the imported years from the store; True if anything changed."""
        if self._store is None:
            return False
        versions: dict[int, list[int]] = {}
        for key in await self._store.list(RECORD_PREFIX):
            parsed = _parse_key(key)
            if parsed is not None:
                versions.setdefault(parsed[0], []).append(parsed[1])
        changed = False
        for year, numbers in versions.items():
            current = self._imported.get(year)
            if current is not None and current.version == max(numbers):
                continue
            for number in sorted(numbers, reverse=True):
                if current is not None and number == current.version:
                    break
                try:
                    stored = StoredYear.from_record(await self._store.get(version_key(year, number)))
                except (ValueError, KeyError, TypeError, CalendarFileError) as exc:
                    logger.error("calendar %d version %d is unreadable (%s); trying the previous one", year, number, exc)
                    continue
                if stored.year != year:
                    logger.error("calendar object %s holds year %d; skipped", version_key(year, number), stored.year)
                    continue
                self._set(stored)
                changed = True
                logger.info("working-day calendar: %d from version %d (%s)", year, number, stored.arrangement.source)
                break
        return changed

    async def import_year(self, arrangement: YearArrangement, imported_by: str) -> tuple[StoredYear, Optional[StoredYear]]:
        """Store ``arrangement`` as the next version of its year and put it in force.

        Returns the new version and the one it replaces (None for a first import). Earlier
        versions stay in the store (:meth:`history`).
        """
        if self._store is None:
            raise RuntimeError("this calendar has no object store to import into")
        async with self._lock:
            await self.refresh()
            previous = self._imported.get(arrangement.year)
            numbers = [p[1] for p in map(_parse_key, await self._store.list(f"{RECORD_PREFIX}{arrangement.year:04d}/")) if p]
            version = max(numbers, default=0) + 1
            while await self._store.head(version_key(arrangement.year, version)) is not None:
                version += 1  # written by another node since the listing
            stored = StoredYear(
                arrangement,
                version,
                self.clock().astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                imported_by,
            )
            await self._store.put(stored.key, stored.to_record(), "application/json")
            self._set(stored)
        logger.info(
            "working-day calendar: %d imported as version %d by %s (%s)%s",
            stored.year, stored.version, imported_by, arrangement.source,
            f"; replaces version {previous.version}" if previous else "",
        )
        return stored, previous

    async def history(self, year: int) -> list[StoredYear]:
        """Every stored version of ``year``, oldest first (unreadable ones skipped)."""
        if self._store is None:
            return []
        out = []
        for key in await self._store.list(f"{RECORD_PREFIX}{year:04d}/"):
            if _parse_key(key) is None:
                continue
            try:
                out.append(StoredYear.from_record(await self._store.get(key)))
            except (ValueError, KeyError, TypeError, CalendarFileError) as exc:
                logger.error("calendar object %s is unreadable (%s)", key, exc)
        return sorted(out, key=lambda s: s.version)

    def _set(self, stored: StoredYear) -> None:
        self._imported[stored.year] = stored
        self._workday_sets[stored.year] = (stored.arrangement.days_off(), stored.arrangement.days_worked())

    # ---- what is known --------------------------------------------------------------------

    def knows(self, year: int) -> bool:
        """Whether ``year``'s holidays are known (imported or in the package)."""
        return year in self._imported or (self._use_package and year in package_years())

    def source_of(self, year: int) -> Optional[YearSource]:
        """Where ``year`` comes from, or None if it is unknown."""
        stored = self._imported.get(year)
        if stored is not None:
            return YearSource(year, "imported", stored.arrangement.source, stored)
        if self._use_package and year in package_years():
            return YearSource(year, "package", PACKAGE)
        return None

    def years(self) -> list[YearSource]:
        """Every known year and its source, in order."""
        years = set(self._imported) | (set(package_years()) if self._use_package else set())
        return [s for s in map(self.source_of, sorted(years)) if s is not None]

    def arrangement(self, year: int) -> YearArrangement:
        """The holidays and make-up days in force for ``year`` (404 if it is unknown)."""
        stored = self._imported.get(year)
        if stored is not None:
            return stored.arrangement
        if self._use_package and year in package_years():
            return package_arrangement(year)
        raise NotFound(f"the working-day calendar has no data for {year}; {self._load_hint(year)}")

    def describe(self) -> str:
        """What the calendar knows, for messages."""
        parts = []
        if self._use_package:
            years = package_years()
            parts.append(f"{PACKAGE} knows {years.start}-{years.stop - 1}")
        imported = sorted(self._imported)
        parts.append(f"imported: {', '.join(map(str, imported)) if imported else 'none'}")
        return "; ".join(parts)

    def warning(self, today: Optional[datetime.date] = None) -> Optional[str]:
        """A warning for operators, or None: the current year is missing, or from November 1
        (China time, ``today`` by default from the clock) next year is."""
        today = today or china_date(self.clock())
        if not self.knows(today.year):
            return f"the working-day calendar has no data for the current year {today.year}: " + self._load_hint(today.year)
        if today.month >= WARN_FROM_MONTH and not self.knows(today.year + 1):
            return (
                f"the working-day calendar has no data for {today.year + 1}: publicity due dates that fall in "
                f"{today.year + 1} (decisions from late December on) will be refused; " + self._load_hint(today.year + 1)
            )
        return None

    @staticmethod
    def _load_hint(year: int) -> str:
        return (
            f"load the State Council's notice on the {year} holidays with `takan calendar import FILE` "
            f"or PUT /api/v1/calendar/{year} (see docs/calendar.md)"
        )

    # ---- working days ---------------------------------------------------------------------

    def is_working_day(self, day: datetime.date) -> bool:
        """Whether ``day`` is a working day: a weekday that is no holiday, or a make-up day."""
        _check(day, "day")
        return self._is_workday(day, "day")

    def add_working_days(self, start: datetime.date, n: int) -> datetime.date:
        """The ``n``-th working day after ``start`` (``start`` itself is not counted).

        ``add_working_days(d, 7)`` is the last day of a "within 7 working days of d" limit.
        ``n == 0`` returns ``start``. Every day walked must be in a known year, else
        :class:`CalendarYearUnknown` names the first unknown one.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a whole number of working days >= 0, got {n!r}")
        _check(start, "start")
        self._require(start.year, "start")
        day = start
        left = n
        while left:
            day += datetime.timedelta(days=1)
            if self._is_workday(day, "start"):
                left -= 1
        return day

    def working_days_between(self, a: datetime.date, b: datetime.date) -> int:
        """The number of working days after ``a`` up to and including ``b``.

        The inverse of :meth:`add_working_days`: ``working_days_between(d, add_working_days(d, n))
        == n``. If ``b`` is before ``a`` the count is negative (``-working_days_between(b, a)``).
        """
        _check(a, "a")
        _check(b, "b")
        self._require(a.year, "a")
        self._require(b.year, "b")
        if b < a:
            return -self.working_days_between(b, a)
        count = 0
        day = a
        while day < b:
            day += datetime.timedelta(days=1)
            if self._is_workday(day, "b"):
                count += 1
        return count

    def _require(self, year: int, field: str) -> None:
        if not self.knows(year):
            raise CalendarYearUnknown(year, field, self.describe())

    def _is_workday(self, day: datetime.date, field: str) -> bool:
        sets = self._workday_sets.get(day.year)
        if sets is not None:
            days_off, days_worked = sets
            return day in days_worked or (day.weekday() < 5 and day not in days_off)
        if not self._use_package or day.year not in package_years():
            raise CalendarYearUnknown(day.year, field, self.describe())
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # the package's own "no data for year" signal
            raise CalendarYearUnknown(day.year, field, self.describe()) from None


def _check(day: datetime.date, field: str) -> None:
    if isinstance(day, datetime.datetime):
        # A datetime is a date too, but its date depends on the time zone: make the caller say.
        raise TypeError(f"{field} must be a date, not a datetime; use china_date(moment)")
    if not isinstance(day, datetime.date):
        raise TypeError(f"{field} must be a datetime.date, got {type(day).__name__}")


def _parse_key(key: str) -> Optional[tuple[int, int]]:
    """(year, version) of ``records/calendar/<year>/<version>.json``, else None."""
    rest = key[len(RECORD_PREFIX):] if key.startswith(RECORD_PREFIX) else ""
    year, _, name = rest.partition("/")
    number = name[:-5] if name.endswith(".json") else ""
    if len(year) == 4 and year.isdigit() and number.isdigit() and "/" not in name:
        return int(year), int(number)
    return None
