"""The working-day calendar beyond the package: imported years, their file format, the warning.

Every arrangement for 2027 here is TEST DATA - not the official arrangement (the State
Council's notice for 2027 is not known to these tests); see data/calendar-2027.TEST-DATA.yaml.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import chinese_calendar
import pytest

from approval.calendar_file import CalendarFileError, parse_arrangement
from errors import NotFound
from approval.publicity import Publicity
from approval.workdays import CalendarYearUnknown, WorkingCalendar, package_arrangement, package_years
from web.calendar_api import CalendarApi
from web.problems import http_status
from storage.local import LocalObjectStore

D = datetime.date
UTC = datetime.timezone.utc
TEST_2027 = Path(__file__).parent / "data" / "calendar-2027.TEST-DATA.yaml"
TEST_SOURCE = "TEST DATA - not the official arrangement"


def arrangement_2027(**changes: Any) -> dict[str, Any]:
    """The test file as a mapping (TEST DATA - not the official arrangement)."""
    body = parse_arrangement(TEST_2027.read_bytes()).as_json()
    body.update(changes)
    return body


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def calendar(store: LocalObjectStore) -> WorkingCalendar:
    calendar = WorkingCalendar(store)
    await calendar.start()
    return calendar


def test_the_package_years_are_answered_as_the_package_does() -> None:
    calendar = WorkingCalendar()
    day = D(package_years().stop - 3, 1, 1)
    while day.year < package_years().stop:
        assert calendar.is_working_day(day) is chinese_calendar.is_workday(day), day
        day += datetime.timedelta(days=1)
    # and the package's data, rewritten in the import format, gives the same answers
    for year in (2024, 2025, 2026):
        rewritten = parse_arrangement(package_arrangement(year).as_json())
        assert all(
            rewritten.is_workday(D(year, 1, 1) + datetime.timedelta(days=i))
            is chinese_calendar.is_workday(D(year, 1, 1) + datetime.timedelta(days=i))
            for i in range(365)
        )


async def test_an_unknown_year_is_refused_with_what_to_load(calendar: WorkingCalendar) -> None:
    year = package_years().stop  # 2027 with chinese-calendar 1.11
    assert not calendar.knows(year)
    with pytest.raises(CalendarYearUnknown) as caught:
        calendar.is_working_day(D(year, 3, 2))
    assert http_status(caught.value) == 422 and caught.value.year == year
    assert f"takan calendar import FILE` or PUT /api/v1/calendar/{year}" in caught.value.detail
    assert "imported: none" in caught.value.detail
    with pytest.raises(CalendarYearUnknown):
        calendar.add_working_days(D(year - 1, 12, 28), 7)  # the walk runs into the unknown year
    with pytest.raises(NotFound, match="takan calendar import"):
        calendar.arrangement(year)


async def test_an_imported_year_is_used_and_every_node_sees_it(store: LocalObjectStore, calendar: WorkingCalendar) -> None:
    other_node = WorkingCalendar(store)
    await other_node.start()
    stored, previous = await calendar.import_year(parse_arrangement(TEST_2027.read_bytes()), "test")
    assert (stored.version, previous) == (1, None) and stored.key == "records/calendar/2027/000001.json"
    assert calendar.is_working_day(D(2027, 1, 4)) and not calendar.is_working_day(D(2027, 1, 1))
    assert calendar.is_working_day(D(2027, 2, 14))  # a (test) make-up Sunday
    assert not calendar.is_working_day(D(2027, 2, 10))  # a weekday inside the (test) Spring Festival
    # 2026-12-31 (Thu) + 7: Jan 1-3 off, then 4, 5, 6, 7, 8, 11, 12
    assert calendar.add_working_days(D(2026, 12, 31), 7) == D(2027, 1, 12)
    assert calendar.working_days_between(D(2026, 12, 31), D(2027, 1, 12)) == 7

    assert not other_node.knows(2027)
    assert await other_node.refresh() is True and other_node.knows(2027)
    assert await other_node.refresh() is False
    source = other_node.source_of(2027)
    assert source is not None and source.kind == "imported" and source.source == TEST_SOURCE
    assert source.as_json()["version"] == 1 and "overrides" not in source.as_json()


async def test_a_new_import_replaces_the_year_and_keeps_the_old_version(store: LocalObjectStore, calendar: WorkingCalendar) -> None:
    await calendar.import_year(parse_arrangement(TEST_2027.read_bytes()), "test")
    corrected = arrangement_2027(holidays=[{"name": "元旦 (test)", "from": "2027-01-01", "to": "2027-01-04"}])
    stored, previous = await calendar.import_year(parse_arrangement(corrected), "test.corrected")
    assert stored.version == 2 and previous is not None and previous.version == 1
    assert not calendar.is_working_day(D(2027, 1, 4)) and calendar.is_working_day(D(2027, 2, 10))
    assert [s.version for s in await calendar.history(2027)] == [1, 2]
    again = WorkingCalendar(store)
    await again.start()
    assert again.arrangement(2027) == stored.arrangement


async def test_an_imported_year_wins_over_the_package(calendar: WorkingCalendar) -> None:
    assert calendar.is_working_day(D(2026, 10, 8))  # Thursday after the 2026 National Day (package)
    corrected = package_arrangement(2026).as_json()
    corrected["source"] = "TEST DATA - not the official arrangement (a corrected 2026 notice)"
    corrected["holidays"][-1] = {"name": "National Day", "from": "2026-10-01", "to": "2026-10-08"}
    await calendar.import_year(parse_arrangement(corrected), "test")
    assert not calendar.is_working_day(D(2026, 10, 8))
    source = calendar.source_of(2026)
    assert source is not None and source.kind == "imported"
    assert source.as_json()["overrides"].startswith("chinese-calendar")
    assert calendar.source_of(2025) is not None and calendar.source_of(2025).kind == "package"  # type: ignore[union-attr]


async def test_an_unreadable_newest_version_falls_back(store: LocalObjectStore, calendar: WorkingCalendar) -> None:
    await calendar.import_year(parse_arrangement(TEST_2027.read_bytes()), "test")
    await store.put("records/calendar/2027/000002.json", b"{not json", "application/json")
    fresh = WorkingCalendar(store)
    await fresh.start()
    source = fresh.source_of(2027)
    assert source is not None and source.stored is not None and source.stored.version == 1


async def test_publicity_due_in_an_imported_year(store: LocalObjectStore, calendar: WorkingCalendar) -> None:
    from tests.approval.test_publicity import decision, inspection

    publicity = Publicity(store, clock=lambda: datetime.datetime(2027, 1, 5, 2, tzinfo=UTC), calendar=calendar)
    await publicity.start()
    with pytest.raises(CalendarYearUnknown) as caught:
        await publicity.create(inspection(), decision(decision_date="2026-12-31"))
    assert caught.value.errors[0]["field"] == "decision.decision_date" and "takan calendar import" in caught.value.detail
    # loaded meanwhile by another node: the refusal re-reads the store first
    await WorkingCalendar(store).import_year(parse_arrangement(TEST_2027.read_bytes()), "other-node")
    record = await publicity.create(inspection(), decision(decision_date="2026-12-31"))
    assert record.due_on == "2027-01-12"


@pytest.mark.parametrize(
    ("today", "warned"),
    [
        (datetime.datetime(2026, 10, 31, 15, 59, tzinfo=UTC), None),  # 23:59 on 31 October in China
        (datetime.datetime(2026, 10, 31, 16, 0, tzinfo=UTC), "no data for 2027"),  # 1 November in China
        (datetime.datetime(2026, 12, 31, 12, 0, tzinfo=UTC), "no data for 2027"),
        (datetime.datetime(2027, 1, 4, 1, 0, tzinfo=UTC), "no data for the current year 2027"),
    ],
)
async def test_the_warning_from_november(calendar: WorkingCalendar, today: datetime.datetime, warned: str | None) -> None:
    calendar.clock = lambda: today
    warning = calendar.warning()
    if warned is None:
        assert warning is None
    else:
        assert warning is not None and warned in warning and "takan calendar import" in warning
        await calendar.import_year(parse_arrangement(TEST_2027.read_bytes()), "test")
        assert calendar.warning() is None


async def test_the_warning_is_logged(calendar: WorkingCalendar, caplog: pytest.LogCaptureFixture) -> None:
    calendar.clock = lambda: datetime.datetime(2026, 11, 2, tzinfo=UTC)
    api = CalendarApi(calendar)
    with caplog.at_level(logging.WARNING, logger="web.calendar_api"):
        api._log_warning()
        api._log_warning()  # the same warning again: not repeated within a day
    assert [r.getMessage() for r in caplog.records if "no data for 2027" in r.getMessage()] == [calendar.warning()]


# ---- the file format ---------------------------------------------------------------------

GOOD_YAML = TEST_2027.read_text(encoding="utf-8")


def test_yaml_and_json_read_the_same() -> None:
    from_yaml = parse_arrangement(GOOD_YAML)
    from_json = parse_arrangement(json.dumps(from_yaml.as_json(), ensure_ascii=False, indent="\t").encode())
    assert from_yaml == from_json and from_yaml.source == TEST_SOURCE
    assert from_yaml.holidays[1].days()[0] == D(2027, 2, 6) and len(from_yaml.holidays[1].days()) == 8


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        (GOOD_YAML.replace("{date: 2027-02-20, name: 春节 (test)}", "{date: 2027-02-07}"), "makeup_working_days[1].date", "line 16: 2027-02-07 is a holiday"),
        (GOOD_YAML.replace("to: 2027-02-13", "to: 2028-02-13"), "holidays[1].to", "line 11: 2028-02-13 is not in 2027"),
        (GOOD_YAML.replace("{date: 2027-10-09, name", "{date: 2027-02-14, name"), "makeup_working_days[2].date", "2027-02-14 is already makeup_working_days[0]"),
        (GOOD_YAML.replace("from: 2027-05-01, to: 2027-05-05", "from: 2027-02-13, to: 2027-02-13"), "holidays[2]", "already a day of holidays[1]"),
        (GOOD_YAML.replace("{date: 2027-02-20,", "{date: 2027-02-17,"), "makeup_working_days[1].date", "Wednesday, a working day anyway"),
        (GOOD_YAML.replace("to: 2027-05-05", "to: 2027-04-05"), "holidays[2].to", "2027-04-05 is before 2027-05-01"),
        (GOOD_YAML.replace("to: 2027-05-05", "to: 2027-05-25"), "holidays[2].from", "25 days"),
        (GOOD_YAML.replace("to: 2027-05-05", "to: 2027/05/05"), "holidays[2].to", "YYYY-MM-DD"),
        (GOOD_YAML.replace("to: 2027-05-05", "to: 2027-05-32"), "holidays[2].to", "is not a date"),
        (GOOD_YAML.replace('source: "TEST DATA - not the official arrangement"\n', ""), "source", "is required"),
        (GOOD_YAML.replace("year: 2027", "year: 2027\ncolour: red"), "colour", "line 5: is not a known field"),
        (GOOD_YAML.replace("year: 2027", "year: 2027\nyear: 2028"), "year", "line 5: is given twice"),
        (GOOD_YAML.replace("{name: 劳动节 (test), from: 2027-05-01, to: 2027-05-05}", "{name: x}"), "holidays[2]", "needs date"),
        (GOOD_YAML.replace("{name: 劳动节 (test), from: 2027-05-01, to: 2027-05-05}", "{date: 2027-05-01}"), "holidays[2].name", "is required"),
        (GOOD_YAML.replace("from: 2027-05-01, to", "date: 2027-05-01, from: 2027-05-01, to"), "holidays[2]", "not both"),
        (GOOD_YAML.replace("year: 2027", "year: twenty"), "year", "must be a year"),
        ("year: 2027\nsource: x\nholidays: []\n", "holidays", "non-empty list"),
        ("- 2027\n", "$", "must be a mapping"),
        ("year: 2027\nholidays: [\n", "$", "line 3, column 1: expected the node content"),
        (b"\xff\xfe", "$", "is not UTF-8"),
    ],
)
def test_the_file_is_validated_strictly(text: str | bytes, field: str, fragment: str) -> None:
    with pytest.raises(CalendarFileError) as caught:
        parse_arrangement(text)
    assert http_status(caught.value) == 422
    matching = [e for e in caught.value.errors if e["field"] == field]
    assert matching and fragment in matching[0]["message"], caught.value.errors


def test_alias_bombs_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    with pytest.raises(CalendarFileError, match="more than 10000 values"):
        parse_arrangement(bomb)


def test_every_problem_is_listed_and_the_year_must_match() -> None:
    text = GOOD_YAML.replace("to: 2027-05-05", "to: 2027-04-05").replace("{date: 2027-02-20,", "{date: 2027-02-17,")
    with pytest.raises(CalendarFileError) as caught:
        parse_arrangement(text, expected_year=2028, name="upload.yaml")
    assert [e["field"] for e in caught.value.errors] == ["year", "holidays[2].to", "makeup_working_days[1].date"]
    assert caught.value.detail.startswith("upload.yaml cannot be loaded: year: line 4: is 2027, but")
    assert "(and 2 more problem(s))" in caught.value.detail
