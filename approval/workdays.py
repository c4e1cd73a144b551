"""Chinese statutory working days: the calendar behind every "within N working days" limit.

The State Council publishes each year's public holidays and the weekend days worked in
exchange for them (调休) only in the autumn before; the PyPI package ``chinese-calendar``
carries them year by year. A year it does not carry yet raises :class:`CalendarYearUnknown`
instead of guessing: a deadline computed from plain weekdays would be wrong around every
holiday. The fix is to upgrade the package (``pip install -U chinese-calendar``).

Dates here are civil dates in China (UTC+8); :func:`china_date` turns a moment into one.
"""

from __future__ import annotations

import datetime

import chinese_calendar  # type: ignore[import-untyped]

from errors import ValidationFailed

__all__ = [
    "CHINA_TZ",
    "CalendarYearUnknown",
    "add_working_days",
    "china_date",
    "is_working_day",
    "known_years",
    "working_days_between",
]

#: China Standard Time. China has not observed daylight saving time since 1991, so a fixed
#: offset is exact and needs no tz database.
CHINA_TZ = datetime.timezone(datetime.timedelta(hours=8), "CST")


class CalendarYearUnknown(ValidationFailed, ValueError):
    """The installed ``chinese-calendar`` has no holiday data for ``year``.

    A :class:`~errors.ValidationFailed` (422) because it is raised for a date the
    caller sent; also a :class:`ValueError` for callers outside the web layer.
    """

    def __init__(self, year: int, field: str = "date") -> None:
        years = known_years()
        super().__init__(
            f"the working-day calendar has no data for {year} (chinese-calendar "
            f"{chinese_calendar.__version__} knows {years.start}-{years.stop - 1}); "
            "upgrade the chinese-calendar package once the State Council has published "
            f"the {year} holidays",
            errors=[{"field": field, "message": f"year {year} is not in the working-day calendar"}],
        )
        self.year = year


def known_years() -> range:
    """The years whose holidays and make-up working days the installed package knows."""
    years = [day.year for day in chinese_calendar.holidays]
    return range(min(years), max(years) + 1)


def china_date(moment: datetime.datetime) -> datetime.date:
    """The civil date in China of an aware ``moment`` (naive moments are refused)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment {moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(CHINA_TZ).date()


def _check(day: datetime.date, field: str) -> None:
    if isinstance(day, datetime.datetime):
        # A datetime is a date too, but its date depends on the time zone: make the caller say.
        raise TypeError(f"{field} must be a date, not a datetime; use china_date(moment)")
    if not isinstance(day, datetime.date):
        raise TypeError(f"{field} must be a datetime.date, got {type(day).__name__}")
    if day.year not in known_years():
        raise CalendarYearUnknown(day.year, field)


def is_working_day(day: datetime.date) -> bool:
    """Whether ``day`` is a working day: a weekday that is no holiday, or a make-up day."""
    _check(day, "day")
    return _is_workday(day)


def _is_workday(day: datetime.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # the package's own "no data for year" signal
        raise CalendarYearUnknown(day.year) from None


def add_working_days(start: datetime.date, n: int) -> datetime.date:
    """The ``n``-th working day after ``start`` (``start`` itself is not counted).

    ``add_working_days(d, 7)`` is the last day of a "within 7 working days of d" limit.
    ``n == 0`` returns ``start``. Every day walked must be in a known year, else
    :class:`CalendarYearUnknown` names the first unknown one.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a whole number of working days >= 0, got {n!r}")
    _check(start, "start")
    day = start
    left = n
    while left:
        day += datetime.timedelta(days=1)
        if _is_workday(day):
            left -= 1
    return day


def working_days_between(a: datetime.date, b: datetime.date) -> int:
    """The number of working days after ``a`` up to and including ``b``.

    The inverse of :func:`add_working_days`: ``working_days_between(d, add_working_days(d, n))
    == n``. If ``b`` is before ``a`` the count is negative (``-working_days_between(b, a)``).
    """
    _check(a, "a")
    _check(b, "b")
    if b < a:
        return -working_days_between(b, a)
    count = 0
    day = a
    while day < b:
        day += datetime.timedelta(days=1)
        if _is_workday(day):
            count += 1
    return count
