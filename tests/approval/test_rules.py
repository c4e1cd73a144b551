"""Rule files, their loading and versions, and the judge (5.6, 5.9, 8.3.1, 8.3.4)."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import pytest

from approval.rules import (
    FACT_NAMES,
    Rule,
    RuleBook,
    RuleFileError,
    RuleSet,
    Verdict,
    judge,
    load_rules,
)
from approval.rules.rulebook import BUILTIN_DIR
from approval.templates import Templates
from testkit.scenarios import (
    Edit,
    Scenario,
    far_away,
    never_live,
    no_evidence,
    no_location,
    on_warning_list,
    only_one_still,
    overtime,
    photos_become_stills,
    reconnects,
    site_without_coordinates,
    stills_become_photos,
    unsigned,
)

TEMPLATES = Templates()
BOOK = RuleBook()
SHIPPED = ("food-business-license", "pharmacy-retail-license", "hotel-special-industry-license")

# (case, edits, outcome, reasons as (rule, severity)) for the rules every item ships
COMMON: list[tuple[str, list[Edit], str, list[tuple[str, str]]]] = [
    ("clean inspection", [], "pass", []),
    ("overtime with a reason", [overtime("申请人网络中断约十分钟，恢复后继续踏勘")], "pass", []),
    ("a few reconnections", [reconnects(2)], "pass", []),
    ("storefront not captured", [no_evidence("storefront")], "fail", [("required-checkpoints", "fail")]),
    ("applicant did not sign", [unsigned("applicant")], "fail", [("applicant-signature", "fail")]),
    ("inspector did not sign", [unsigned("inspector")], "fail", [("inspector-signature", "fail")]),
    ("no location reported", [no_location], "manual_review", [("location-reported", "review")]),
    ("applicant far from the site", [far_away], "fail", [("within-site-radius", "fail")]),
    ("overtime without a reason", [overtime(None)], "fail", [("time-limit", "fail")]),
    ("on a prudent-warning list", [on_warning_list], "manual_review", [("no-prudent-warnings", "review")]),
    ("too many reconnections", [reconnects(3)], "manual_review", [("few-reconnections", "review")]),
    ("a fail and a review rule", [unsigned("applicant"), on_warning_list], "fail",
     [("applicant-signature", "fail"), ("no-prudent-warnings", "review")]),
    # missing facts: what the rules cannot decide goes to people (5.6)
    ("site has no coordinates: no distance", [site_without_coordinates], "manual_review", [("within-site-radius", "error")]),
    ("never went live: no duration", [never_live], "manual_review", [("time-limit", "error")]),
    ("missing fact beside a failure", [site_without_coordinates, unsigned("inspector")], "manual_review",
     [("inspector-signature", "fail"), ("within-site-radius", "error")]),
]

# the item-specific rules of each shipped file, each broken on its own
SPECIFIC: dict[str, list[tuple[str, list[Edit], str, list[tuple[str, str]]]]] = {
    "food-business-license": [
        ("one shot of the processing area", [only_one_still("processing_area")], "manual_review",
         [("processing-area-evidence", "review")]),
        ("cold storage only in photos", [stills_become_photos("cold_storage")], "fail", [("cold-storage-still", "fail")]),
        ("disinfection only in photos", [stills_become_photos("disinfection")], "fail", [("disinfection-still", "fail")]),
        ("health certificates only as stills", [photos_become_stills("staff_health_certificates")], "manual_review",
         [("health-certificates-photo", "review")]),
        ("no cold storage at all", [no_evidence("cold_storage")], "fail",
         [("required-checkpoints", "fail"), ("cold-storage-still", "fail")]),
    ],
    "pharmacy-retail-license": [
        ("prescription separation only in photos", [stills_become_photos("prescription_separation")], "fail",
         [("prescription-separation-still", "fail")]),
        ("pharmacist certificate only in photos", [stills_become_photos("pharmacist_certificate")], "fail",
         [("pharmacist-certificate-still", "fail")]),
        ("temperature readings only in photos", [stills_become_photos("temperature_humidity")], "fail",
         [("temperature-humidity-still", "fail")]),
        ("one shot of the special drug cabinet", [only_one_still("special_drug_cabinet")], "manual_review",
         [("special-drug-cabinet-evidence", "review")]),
    ],
    "hotel-special-industry-license": [
        ("front desk only in photos", [stills_become_photos("front_desk")], "fail", [("front-desk-still", "fail")]),
        ("surveillance only in photos", [stills_become_photos("surveillance")], "fail", [("surveillance-still", "fail")]),
        ("fire exits only in photos", [stills_become_photos("fire_exits")], "fail", [("fire-exits-still", "fail")]),
        ("one shot of the guest room", [only_one_still("guest_room")], "manual_review", [("guest-room-evidence", "review")]),
    ],
}

CASES = [
    pytest.param(item, case, edits, outcome, reasons, id=f"{item}: {case}")
    for item in SHIPPED
    for case, edits, outcome, reasons in COMMON + SPECIFIC[item]
]


def scenario(item: str, edits: list[Edit]) -> Scenario:
    template = TEMPLATES.find(item)
    assert template is not None
    s = Scenario.clean(template)
    for edit in edits:
        edit(s)
    return s


def rules_of(item: str) -> RuleSet:
    rules = BOOK.find(item)
    assert rules is not None
    return rules


# ---- the shipped templates, table-driven ------------------------------------------------


@pytest.mark.parametrize("item,case,edits,outcome,reasons", CASES)
async def test_shipped_rules(item: str, case: str, edits: list[Edit], outcome: str, reasons: list[tuple[str, str]]) -> None:
    verdict = await judge(rules_of(item), scenario(item, edits).facts())
    assert verdict.outcome == outcome
    assert [(r.rule, r.severity) for r in verdict.reasons] == reasons
    assert verdict.rules_version == rules_of(item).rules_version
    for reason in verdict.reasons:
        assert reason.message and reason.message_en


@pytest.mark.parametrize("item", SHIPPED)
def test_every_shipped_rule_has_a_failure_case(item: str) -> None:
    broken = {rule for _, _, _, reasons in COMMON + SPECIFIC[item] for rule, severity in reasons if severity != "error"}
    assert {rule.id for rule in rules_of(item).rules} == broken


@pytest.mark.parametrize("item", SHIPPED)
async def test_reasons_say_what_was_found(item: str) -> None:
    verdict = await judge(rules_of(item), scenario(item, [far_away, on_warning_list, no_evidence("storefront")]).facts())
    messages = {r.rule: (r.message, r.message_en) for r in verdict.reasons}
    assert messages["within-site-radius"][1] == "not satisfied: The applicant was within the site radius (3870.2 m > " + (
        f"{TEMPLATES.find(item).site_radius_m:g} m)")  # type: ignore[union-attr]
    assert "dishonest-entity: 德州市某某有限公司" in messages["no-prudent-warnings"][0]
    assert messages["required-checkpoints"][0] == "未满足：所有必查点均已采集现场影像（storefront）"


@pytest.mark.parametrize("item", SHIPPED)
async def test_missing_fact_names_the_fact(item: str) -> None:
    facts = scenario(item, []).facts()
    del facts["signatures"]
    verdict = await judge(rules_of(item), facts)
    assert verdict.outcome == "manual_review"
    assert [(r.rule, r.severity) for r in verdict.reasons] == [("applicant-signature", "error"), ("inspector-signature", "error")]
    assert "signatures" in verdict.reasons[0].message and "'signatures' is missing" in verdict.reasons[0].message_en


@pytest.mark.parametrize("item", SHIPPED)
async def test_checklist_without_an_item_checkpoint_goes_to_people(item: str) -> None:
    """A request may bring its own checklist; a rule about a checkpoint it lacks cannot decide."""
    facts = scenario(item, []).facts()
    specific = SPECIFIC[item][0][3][0][0]
    code = re.search(r"checkpoints\.([a-z_]+)", next(r.expr for r in rules_of(item).rules if r.id == specific))
    assert code is not None
    del facts["checkpoints"][code.group(1)]
    verdict = await judge(rules_of(item), facts)
    assert verdict.outcome == "manual_review"
    assert (specific, "error") in [(r.rule, r.severity) for r in verdict.reasons]


@pytest.mark.parametrize("item", SHIPPED)
async def test_an_erroring_rule_goes_to_people_with_other_failures_listed(item: str, tmp_path: Path) -> None:
    path = copy_rules(item, tmp_path, extra=RULE_THAT_DIVIDES_BY_ZERO)
    rules = load_rules(path)
    verdict = await judge(rules, scenario(item, [unsigned("applicant")]).facts())
    assert verdict.outcome == "manual_review"
    assert [(r.rule, r.severity) for r in verdict.reasons] == [("applicant-signature", "fail"), ("photos-per-still", "error")]
    assert "divide by zero" in verdict.reasons[1].message_en


@pytest.mark.parametrize("item", SHIPPED)
async def test_a_judgement_past_the_timeout_goes_to_people(item: str) -> None:
    rules = rules_of(item)
    evaluated: list[str] = []

    def slow(rule: Rule) -> None:
        evaluated.append(rule.id)
        if len(evaluated) == 1:
            time.sleep(0.3)

    started = time.perf_counter()
    verdict = await judge(rules, scenario(item, [unsigned("applicant")]).facts(), timeout_s=0.05, on_rule=slow)
    assert time.perf_counter() - started < 0.25  # the judge does not wait for the slow rule
    assert verdict.outcome == "manual_review"
    assert [(r.rule, r.severity) for r in verdict.reasons] == [("judge.timeout", "error")]
    assert "0.05 s" in verdict.reasons[0].message_en and "0.05 秒" in verdict.reasons[0].message
    assert verdict.rules_version == rules.rules_version
    await asyncio.sleep(0.4)
    assert evaluated == [rules.rules[0].id]  # the worker stopped before the next rule


async def test_a_failing_judgement_goes_to_people() -> None:
    def broken(rule: Rule) -> None:
        raise OSError("disk on fire")

    item = "food-business-license"
    verdict = await judge(rules_of(item), scenario(item, []).facts(), on_rule=broken)
    assert verdict.outcome == "manual_review"
    assert [(r.rule, r.severity) for r in verdict.reasons] == [("judge.error", "error")]
    assert "disk on fire" in verdict.reasons[0].message_en


async def test_default_timeout_is_two_minutes() -> None:
    assert judge.__defaults__ == (120.0,)


async def test_no_rules_for_item() -> None:
    facts = scenario("food-business-license", []).facts()
    facts["item_code"] = "tobacco-retail-license"
    verdict = await judge(BOOK.find("tobacco-retail-license"), facts)
    assert verdict.outcome == "manual_review"
    assert verdict.rules_version is None
    assert [(r.rule, r.severity) for r in verdict.reasons] == [("judge.no_rules", "error")]
    assert "no rules for item 'tobacco-retail-license'" in verdict.reasons[0].message_en


async def test_verdict_json() -> None:
    item = "pharmacy-retail-license"
    verdict = await judge(rules_of(item), scenario(item, [on_warning_list]).facts())
    data = verdict.as_json()
    assert set(data) == {"outcome", "reasons", "rules_version", "decided_at", "duration_ms"}
    assert data["outcome"] == "manual_review"
    assert data["reasons"] == [{
        "rule": "no-prudent-warnings",
        "message": "未满足：申请人未命中审慎预警名单（dishonest-entity: 德州市某某有限公司）",
        "message_en": "not satisfied: The applicant is on no prudent-warning list (dishonest-entity: 德州市某某有限公司)",
        "severity": "review",
    }]
    assert re.fullmatch(r"pharmacy-retail-license@2026\.1\+[0-9a-f]{12}", data["rules_version"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["decided_at"])
    assert 0 <= data["duration_ms"] < 1000
    with pytest.raises(AttributeError):
        verdict.outcome = "pass"  # type: ignore[misc]


def test_verdict_outcome_order() -> None:
    def reasons(*severities: str) -> Verdict:
        from approval.rules import Reason

        return Verdict.of([Reason(f"r{n}", "m", "m", s) for n, s in enumerate(severities)], "x@1+0", 1.0)

    assert reasons().outcome == "pass"
    assert reasons("review").outcome == "manual_review"
    assert reasons("fail").outcome == "fail"
    assert reasons("review", "fail").outcome == "fail"
    assert reasons("fail", "error").outcome == "manual_review"


# ---- rule files: loading, errors, versions ----------------------------------------------

RULE_THAT_DIVIDES_BY_ZERO = """
  - id: photos-per-still
    description: 照片与截图之比合理
    description_en: A sensible ratio of photos to stills
    severity: review
    expr: photos / (stills - stills) >= 0
"""

GOOD = """item_code: pharmacy-retail-license
version: "7"
rules:
  - id: signed
    description: 申请人已签名
    description_en: The applicant signed
    severity: fail
    expr: signatures.applicant
"""


def copy_rules(item: str, directory: Path, extra: str = "") -> Path:
    path = directory / f"{item}.rules.yaml"
    shutil.copyfile(BUILTIN_DIR / path.name, path)
    if extra:
        with path.open("a", encoding="utf-8") as file:
            file.write(extra)
    return path


def write(directory: Path, text: str, name: str = "pharmacy-retail-license.rules.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> RuleFileError:
    with pytest.raises(RuleFileError) as caught:
        load_rules(path)
    return caught.value


def test_a_syntax_error_is_rejected_with_file_line_and_rule(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + """
  - id: broken
    description: 坏规则
    description_en: A broken rule
    severity: fail
    expr: size(required_missing) ==
""")
    error = load_error(path)
    assert str(error).startswith(f"{path}:14: rule 'broken': bad CEL in expr: Syntax error")
    assert (error.path, error.line, error.rule_id) == (path, 14, "broken")


def test_a_syntax_error_in_a_shipped_file_names_its_line(tmp_path: Path) -> None:
    path = copy_rules("hotel-special-industry-license", tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(n for n, line in enumerate(lines, 1) if "expr: checkpoints.fire_exits.stills >= 1" in line)
    lines[number - 1] = lines[number - 1].replace(">= 1", ">= 1 &&")
    path.write_text("".join(lines), encoding="utf-8")
    error = load_error(path)
    assert str(error).startswith(f"{path}:{number}: rule 'fire-exits-still': bad CEL in expr: Syntax error")


def test_a_syntax_error_in_a_block_expression_names_the_line_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + """
  - id: in-time
    description: 按时
    description_en: In time
    severity: fail
    expr: |
      within_time_limit
        || (has(facts.overtime_reason) &&)
""")
    assert load_error(path).line == 16  # the second line of the block


@pytest.mark.parametrize(
    "expr,problem",
    [
        ("distanse_m <= site_radius_m", "undeclared reference to 'distanse_m'"),
        ("signatures.applicant && sign(1)", "undeclared reference to 'sign'"),
        ("distance_m <= 300", "found no matching overload for '_<=_' applied to '(double, int)'"),
        ('reconnections <= "3"', "found no matching overload"),
        ("reconnections", "the expression gives int, not bool"),
    ],
)
def test_unknown_facts_and_type_errors_are_rejected_at_load(tmp_path: Path, expr: str, problem: str) -> None:
    path = write(tmp_path, GOOD.replace("expr: signatures.applicant", f"expr: '{expr}'"))
    error = load_error(path)
    assert error.line == 8 and error.rule_id == "signed"
    assert problem in str(error)


@pytest.mark.parametrize(
    "text,line,problem",
    [
        (GOOD.replace("severity: fail", "severity: warn"), 7, "severity must be fail or review, not 'warn'"),
        (GOOD.replace("    description_en: The applicant signed\n", ""), 4, "description_en is missing"),
        (GOOD.replace("severity: fail", "severity: fail\n    weight: 3"), 8, "unknown key 'weight'"),
        (GOOD.replace('version: "7"', "version: 7.10"), 2, 'version must be a string; quote it (version: "7.1")'),
        (GOOD.replace("item_code: pharmacy-retail-license", "item_code: food-business-license"), 1,
         "does not match the file name"),
        (GOOD + GOOD[GOOD.index("  - id"):], 9, "the id is already used by the rule at line 4"),
        (GOOD.replace("expr: signatures.applicant", "expr: signatures.applicant\n    detail: size(warnings)"), 9,
         "bad CEL in detail: the expression gives int, not string"),
        (GOOD.replace("rules:", "rules:\n  - [unclosed"), 5, "not valid YAML"),
        ("- just\n- a list\n", 1, "must be a mapping"),
    ],
)
def test_bad_files_are_rejected_with_their_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = write(tmp_path, text)
    error = load_error(path)
    assert str(error).startswith(f"{path}:{line}: ")
    assert problem in str(error)


def test_version_changes_when_the_file_changes(tmp_path: Path) -> None:
    path = copy_rules("food-business-license", tmp_path)
    before = load_rules(path)
    assert load_rules(path).rules_version == before.rules_version  # same bytes, same version
    assert before.rules_version == rules_of("food-business-license").rules_version
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("reconnections <= 3", "reconnections <= 5"), encoding="utf-8")
    after = load_rules(path)
    assert after.version == before.version == "2026.1"  # nobody bumped it ...
    assert after.rules_version != before.rules_version  # ... and it is a new version anyway
    assert after.rules_version.startswith("food-business-license@2026.1+")
    path.write_text(text.replace('version: "2026.1"', 'version: "2026.2"'), encoding="utf-8")
    assert load_rules(path).rules_version.startswith("food-business-license@2026.2+")


async def test_the_verdict_records_the_edited_version(tmp_path: Path) -> None:
    path = copy_rules("hotel-special-industry-license", tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + "\n# reviewed 2026-03-01\n", encoding="utf-8")
    rules = load_rules(path)
    verdict = await judge(rules, scenario("hotel-special-industry-license", []).facts())
    assert verdict.outcome == "pass"
    assert verdict.rules_version == rules.rules_version != rules_of("hotel-special-industry-license").rules_version


# ---- the rule book ----------------------------------------------------------------------


def test_rule_book_has_the_shipped_items() -> None:
    assert [r.item_code for r in BOOK.all()] == sorted(SHIPPED)
    for rules in BOOK.all():
        assert rules.path.parent == BUILTIN_DIR
        assert len(rules.rules) >= 10


def test_admin_directory_overrides_and_adds(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    write(tmp_path, GOOD.replace("pharmacy-retail-license", "tobacco-retail-license"), "tobacco-retail-license.rules.yaml")
    book = RuleBook(tmp_path)
    pharmacy = book.find("pharmacy-retail-license")
    assert pharmacy is not None and pharmacy.rules_version.startswith("pharmacy-retail-license@7+")
    assert [r.id for r in pharmacy.rules] == ["signed"]
    assert book.find("tobacco-retail-license") is not None
    assert book.find("food-business-license") == BOOK.find("food-business-license")
    assert RuleBook(tmp_path / "absent").find("hotel-special-industry-license") is not None


def test_reload_picks_up_edits_and_keeps_the_old_rules_on_a_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    book = RuleBook(tmp_path)
    first = book.find("pharmacy-retail-license")
    assert first is not None
    path.write_text(GOOD.replace('version: "7"', 'version: "8"'), encoding="utf-8")
    book.reload()
    second = book.find("pharmacy-retail-license")
    assert second is not None and second.version == "8"
    path.write_text(GOOD.replace("signatures.applicant", "signatures.applicant &&"), encoding="utf-8")
    with pytest.raises(RuleFileError, match=re.escape(f"{path}:8: rule 'signed'")):
        book.reload()
    assert book.find("pharmacy-retail-license") is second


def test_a_bad_builtin_or_admin_file_stops_the_start(tmp_path: Path) -> None:
    write(tmp_path, "item_code: [\n")
    with pytest.raises(RuleFileError):
        RuleBook(tmp_path)


# ---- rules and templates agree ----------------------------------------------------------


@pytest.mark.parametrize("item", SHIPPED)
def test_rules_name_only_checkpoints_of_their_template(item: str) -> None:
    template = TEMPLATES.find(item)
    assert template is not None
    codes = {c.code for c in template.checkpoints}
    named = {code for rule in rules_of(item).rules for code in re.findall(r"checkpoints\.([a-z_]+)", rule.expr)}
    assert named and named <= codes
    assert named <= set(template.hints)  # the inspector is told what these rules look for


def test_fact_names_are_the_documented_ones() -> None:
    readme = (BUILTIN_DIR / "README.md").read_text(encoding="utf-8")
    for name in FACT_NAMES:
        assert f"`{name}`" in readme

