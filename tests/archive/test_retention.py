"""Retention periods from data files, and the disposal review report (which never deletes)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from archive.retention import RetentionPolicy, RetentionRule, closing_date
from testkit.archive import record_of


def record(inspection_id: str, item: str, ended: str | None, status: str = "judged") -> dict[str, object]:
    return {"id": inspection_id, "case_no": f"C-{inspection_id}", "item_code": item, "status": status,
            "created_at": "2020-03-01T00:00:00.000Z", "ended_at": ended}


def test_defaults() -> None:
    policy = RetentionPolicy.defaults()
    assert policy.rule_for("food-business-license").years == 30
    assert policy.rule_for("an-unknown-item") == policy.default and policy.default.years == 30
    assert RetentionRule(30).retain_until(datetime.date(2026, 11, 26)) == datetime.date(2057, 1, 1)
    assert RetentionRule(None).retain_until(datetime.date(2026, 1, 1)) is None
    assert RetentionRule(None).label() == "永久" and RetentionRule(10).label() == "10年"


def test_json_and_yaml_files(tmp_path: Path) -> None:
    data = {"format": "takan-retention/1", "default": {"years": 10, "basis": "定期10年"},
            "items": {"hazardous-chemicals-license": {"years": None, "basis": "永久"}, "food-business-license": {"years": 30}}}
    as_json = tmp_path / "retention.json"
    as_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    as_yaml = tmp_path / "retention.yaml"
    as_yaml.write_text(
        "format: takan-retention/1\ndefault: {years: 10, basis: 定期10年}\nitems:\n"
        "  hazardous-chemicals-license: {years: null, basis: 永久}\n  food-business-license: {years: 30}\n",
        encoding="utf-8",
    )
    for path in (as_json, as_yaml):
        policy = RetentionPolicy.load(path)
        assert policy.default == RetentionRule(10, "定期10年")
        assert policy.rule_for("hazardous-chemicals-license").permanent
        assert policy.rule_for("food-business-license").years == 30
        assert policy.rule_for("pharmacy-retail-license").years == 30  # a built-in item kept


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"items": {"x": {"years": 0}}}', "items.x.years is 0"),
        ('{"items": {"x": {"years": "30"}}}', "items.x.years is '30'"),
        ('{"items": {"x": {"yrs": 30}}}', "must be an object with 'years'"),
        ('{"format": "other/2"}', "this Takan reads"),
        ('{"items": [1]}', "items must be an object"),
        ("{not json", "does not parse"),
    ],
)
def test_bad_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "retention.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        RetentionPolicy.load(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the retention policy"):
        RetentionPolicy.load(tmp_path / "nope.json")


def test_due_for_disposal_reports_only_what_ran_out() -> None:
    policy = RetentionPolicy.from_data({"default": {"years": 10}, "items": {"forever": {"years": None}}})
    records = [
        record("a", "other", "2010-06-01T10:00:00.000Z"),  # due 2021-01-01
        record("b", "other", "2015-12-31T15:00:00.000Z"),  # 23:00 Beijing time: due 2026-01-01
        record("b2", "other", "2015-12-31T16:00:00.000Z"),  # 2016-01-01 00:00 Beijing time: due 2027
        record("c", "other", "2016-01-01T01:00:00.000Z"),  # due 2027-01-01: not yet
        record("d", "forever", "2000-01-01T00:00:00.000Z"),  # permanent
        record("e", "other", None, status="live"),  # open
        record("f", "other", "2001-01-01T00:00:00.000Z"),  # on legal hold
        record("g", "other", None, status="cancelled"),  # never started: from created_at 2020 -> 2031
        record("h", "food-business-license", "2001-05-05T00:00:00.000Z"),  # 30 years: 2032
    ]
    due = policy.due_for_disposal(records, datetime.date(2026, 11, 26), holds={"f"})
    assert [(c.inspection_id, c.retain_until.isoformat(), c.years) for c in due] == [("a", "2021-01-01", 10), ("b", "2026-01-01", 10)]
    assert due[0].as_json()["closed_on"] == "2010-06-01"
    assert policy.due_for_disposal(records, datetime.date(2025, 12, 31), holds={"f"})[-1].inspection_id == "a"


def test_inspection_objects_are_accepted() -> None:
    inspection = record_of("x1", "C-1")
    assert closing_date(record("r", "i", "2026-11-26T02:12:34.000Z")) == datetime.date(2026, 11, 26)
    due = RetentionPolicy.defaults().due_for_disposal([inspection], datetime.date(2057, 1, 1))
    assert [c.inspection_id for c in due] == ["x1"]
    assert RetentionPolicy.defaults().due_for_disposal([inspection], datetime.date(2056, 12, 31)) == []
