"""Working days around the 2024 National Day and 2025 Spring Festival holidays.

The facts (State Council notices): 2024-10-01..07 off, Sunday 2024-09-29 and Saturday
2024-10-12 worked; 2025-01-28..02-04 off, Sunday 2025-01-26 and Saturday 2025-02-08
worked; 2026-01-01..03 off, Sunday 2026-01-04 worked.
"""

from __future__ import annotations

import datetime

import pytest

from errors import ValidationFailed
from web.problems import http_status
from approval.workdays import CalendarYearUnknown, WorkingCalendar, china_date, package_years

D = datetime.date
#: The package's data alone (no object store): what these facts are checked against.
CALENDAR = WorkingCalendar()
is_working_day = CALENDAR.is_working_day
add_working_days = CALENDAR.add_working_days
working_days_between = CALENDAR.working_days_between
known_years = package_years


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (D(2024, 9, 27), True),  # Friday
        (D(2024, 9, 28), False),  # Saturday
        (D(2024, 9, 29), True),  # Sunday, make-up working day
        (D(2024, 10, 1), False),  # National Day
        (D(2024, 10, 7), False),  # Monday, still the Golden Week
        (D(2024, 10, 8), True),
        (D(2024, 10, 12), True),  # Saturday, make-up working day
        (D(2024, 10, 13), False),
        (D(2025, 1, 26), True),  # Sunday, make-up working day
        (D(2025, 1, 28), False),  # Spring Festival eve
        (D(2025, 2, 4), False),  # Tuesday, last holiday
        (D(2025, 2, 5), True),
        (D(2025, 2, 8), True),  # Saturday, make-up working day
        (D(2025, 2, 9), False),
    ],
)
def test_is_working_day(day: datetime.date, working: bool) -> None:
    assert is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "n", "due"),
    [
        (D(2024, 9, 27), 0, D(2024, 9, 27)),
        (D(2024, 9, 27), 1, D(2024, 9, 29)),  # the make-up Sunday counts
        (D(2024, 9, 29), 1, D(2024, 9, 30)),
        (D(2024, 9, 30), 1, D(2024, 10, 8)),  # the Golden Week is skipped
        (D(2024, 10, 1), 1, D(2024, 10, 8)),  # starting on a holiday
        (D(2024, 9, 30), 5, D(2024, 10, 12)),  # ... and the make-up Saturday counts
        (D(2024, 9, 30), 7, D(2024, 10, 15)),
        (D(2025, 1, 24), 1, D(2025, 1, 26)),
        (D(2025, 1, 27), 1, D(2025, 2, 5)),
        (D(2025, 1, 27), 4, D(2025, 2, 8)),
        (D(2025, 1, 27), 7, D(2025, 2, 12)),
        (D(2025, 12, 31), 1, D(2026, 1, 4)),  # across a year: New Year's make-up Sunday
        (D(2025, 12, 31), 2, D(2026, 1, 5)),
    ],
)
def test_add_working_days(start: datetime.date, n: int, due: datetime.date) -> None:
    assert add_working_days(start, n) == due
    assert working_days_between(start, due) == n


@pytest.mark.parametrize(
    ("a", "b", "count"),
    [
        (D(2024, 10, 1), D(2024, 10, 1), 0),
        (D(2024, 9, 30), D(2024, 10, 7), 0),
        (D(2024, 9, 28), D(2024, 10, 15), 9),  # 29, 30, 8, 9, 10, 11, 12, 14, 15
        (D(2024, 10, 15), D(2024, 9, 28), -9),
        (D(2025, 1, 25), D(2025, 2, 9), 6),  # 26, 27, 5, 6, 7, 8
    ],
)
def test_working_days_between(a: datetime.date, b: datetime.date, count: int) -> None:
    assert working_days_between(a, b) == count


def test_round_trip_through_the_holidays() -> None:
    for start in (D(2024, 9, 20) + datetime.timedelta(days=i) for i in range(0, 30, 3)):
        for n in (0, 1, 3, 7, 12):
            due = add_working_days(start, n)
            assert working_days_between(start, due) == n
            if n:
                assert is_working_day(due)


def test_a_year_the_package_does_not_know() -> None:
    unknown = known_years().stop  # the first year after the package's data
    with pytest.raises(CalendarYearUnknown) as caught:
        is_working_day(D(unknown, 3, 2))
    error = caught.value
    assert isinstance(error, ValidationFailed) and isinstance(error, ValueError)
    assert http_status(error) == 422 and error.year == unknown
    assert str(unknown) in error.detail and "takan calendar import" in error.detail
    with pytest.raises(CalendarYearUnknown, match=str(known_years().start - 1)):
        working_days_between(D(known_years().start - 1, 12, 1), D(known_years().start, 1, 5))


def test_a_walk_into_an_unknown_year_names_that_year() -> None:
    last = known_years().stop - 1
    with pytest.raises(CalendarYearUnknown) as caught:
        add_working_days(D(last, 12, 31), 3)
    assert caught.value.year == last + 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: add_working_days(D(2024, 9, 30), -1), ValueError, ">= 0"),
        (lambda: add_working_days(D(2024, 9, 30), True), ValueError, ">= 0"),
        (
            lambda: is_working_day(datetime.datetime(2024, 9, 30, tzinfo=datetime.timezone.utc)),
            TypeError,
            "china_date",
        ),
        (lambda: working_days_between("2024-09-30", D(2024, 10, 8)), TypeError, "datetime.date"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments(call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]


def test_china_date() -> None:
    # 16:30 UTC on 30 September is already National Day in Dezhou.
    moment = datetime.datetime(2024, 9, 30, 16, 30, tzinfo=datetime.timezone.utc)
    assert china_date(moment) == D(2024, 10, 1)
    with pytest.raises(ValueError, match="time zone"):
        china_date(datetime.datetime(2024, 9, 30, 16, 30))
