"""Facts gathered from an inspection's record and event log."""

from __future__ import annotations

import pytest

from approval.rules import FACT_NAMES, facts_from
from approval.rules.facts import RECOGNITION_FACTS
from approval.templates import Templates
from testkit.scenarios import (
    Scenario,
    far_away,
    never_live,
    no_location,
    on_warning_list,
    overtime,
    reconnects,
    site_without_coordinates,
    unsigned,
)

TEMPLATES = Templates()


def clean(item: str = "pharmacy-retail-license") -> Scenario:
    template = TEMPLATES.find(item)
    assert template is not None
    return Scenario.clean(template)


def test_clean_inspection() -> None:
    facts = clean().facts()
    assert set(facts) == set(FACT_NAMES) - {"overtime_reason"} - RECOGNITION_FACTS
    assert facts["item_code"] == "pharmacy-retail-license"
    assert facts["checkpoints"]["prescription_separation"] == {"required": True, "captured": True, "stills": 1, "photos": 1}
    assert facts["checkpoints"]["cold_chain"] == {"required": False, "captured": False, "stills": 0, "photos": 0}
    assert facts["required_missing"] == []
    assert (facts["stills"], facts["photos"]) == (6, 6)
    assert facts["signatures"] == {"applicant": True, "inspector": True}
    assert facts["duration_s"] == 22 * 60.0 and facts["time_limit_s"] == 1800.0 and facts["within_time_limit"] is True
    assert facts["distance_m"] == 21.7  # the last one reported
    assert facts["site_radius_m"] == 200.0 and facts["location_reported"] is True
    assert (facts["reconnections"], facts["timer_warnings"], facts["warnings"]) == (1, 0, [])


def test_what_went_wrong_shows() -> None:
    s = clean()
    for edit in (unsigned("inspector"), far_away, overtime("网络中断"), reconnects(4), on_warning_list):
        edit(s)
    facts = s.facts()
    assert facts["signatures"] == {"applicant": True, "inspector": False}
    assert facts["distance_m"] == 3870.2
    assert facts["within_time_limit"] is False and facts["overtime_reason"] == "网络中断"
    assert facts["duration_s"] == 41 * 60.0
    assert facts["timer_warnings"] == 2
    assert facts["reconnections"] == 5
    assert facts["warnings"] == [{"list": "dishonest-entity", "match": "德州市某某有限公司"}]


def test_timer_limit_means_overtime_even_when_the_clock_says_otherwise() -> None:
    s = clean()
    s.log(1300, "timer.limit", "system", {"elapsed_s": 1800, "limit_s": 1800})
    assert s.facts()["within_time_limit"] is False


def test_facts_that_could_not_be_established_are_absent() -> None:
    s = clean()
    no_location(s)
    never_live(s)
    facts = s.facts()
    assert facts["location_reported"] is False
    for name in ("distance_m", "duration_s", "within_time_limit", "overtime_reason"):
        assert name not in facts
    s = clean()
    site_without_coordinates(s)
    facts = s.facts()
    assert facts["location_reported"] is True and "distance_m" not in facts
    assert facts["site_radius_m"] == 200.0  # the template's radius when the request gave none


def test_record_evidence_counts_when_the_log_is_not_at_hand() -> None:
    s = clean("hotel-special-industry-license")
    facts = facts_from(s.record(), [], [])
    assert facts["checkpoints"]["surveillance"] == {"required": True, "captured": True, "stills": 1, "photos": 1}
    assert facts["checkpoints"]["luggage_storage"]["captured"] is False
    assert (facts["stills"], facts["photos"]) == (6, 6)
    assert facts["signatures"] == {"applicant": False, "inspector": False}
    assert facts["time_limit_s"] == 1800.0  # 8.2.3's 30 minutes without a template or timer event


def test_required_missing_in_checklist_order() -> None:
    s = clean("food-business-license")
    s.drop(lambda e: e["type"] in ("still.captured", "photo.uploaded") and e["data"]["checkpoint"] in ("disinfection", "storefront"))
    assert s.facts()["required_missing"] == ["storefront", "disinfection"]


@pytest.mark.parametrize("limit_min", [20, 45])
def test_time_limit_comes_from_the_template(limit_min: int) -> None:
    s = clean()
    template = TEMPLATES.find("pharmacy-retail-license")
    assert template is not None
    from dataclasses import replace

    facts = facts_from(s.record(), s.events, [], template=replace(template, time_limit_min=limit_min))
    assert facts["time_limit_s"] == limit_min * 60.0
    assert facts["within_time_limit"] is (22 <= limit_min)


def test_recognitions_become_facts() -> None:
    scenario = clean("food-business-license")
    scenario.log(60, "recognition.result", "system", {"kind": "business_licence", "matches": {"name": True, "uscc": None}})
    scenario.log(90, "recognition.result", "system", {"kind": "shop_sign", "matches": {"name": False}})
    facts = scenario.facts()
    assert facts["licence_read"] is True and facts["licence_name_matches"] is True
    assert "licence_uscc_matches" not in facts  # unreadable: not established
    assert facts["shop_sign_matches"] is False
    assert "permit_read" not in facts  # no permit was asked for or read


def test_a_permit_reading_becomes_facts() -> None:
    scenario = clean("food-business-license")
    scenario.log(60, "recognition.result", "system", {"kind": "food_permit", "matches": {"name": True, "uscc": None}})
    facts = scenario.facts()
    assert facts["permit_read"] is True and facts["permit_name_matches"] is True
    assert "licence_read" not in facts
