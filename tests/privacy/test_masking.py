"""Masking and scrubbing: the table, and a log line through the real logging machinery."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from privacy.masking import (
    ScrubbingFilter,
    find_sensitive,
    install_scrubbing,
    mask_id_number,
    mask_name,
    mask_phone,
    scrub,
)

ID_NUMBER = "37140219900101123X"


@pytest.mark.parametrize(
    "value, masked",
    [
        (ID_NUMBER, "3714**********123X"),
        ("110105194912310021", "1101**********0021"),
        ("AB123456789", "AB12***6789"),  # a passport-like value: same rule
        ("12345678", "********"),
        ("", ""),
    ],
)
def test_mask_id_number(value: str, masked: str) -> None:
    assert mask_id_number(value) == masked


@pytest.mark.parametrize(
    "value, masked",
    [
        ("13800000000", "138****0000"),
        ("+8613912345678", "+86139****5678"),
        ("+86 139-1234-5678", "+86 139-****-5678"),
        ("0534-2345678", "053*-***5678"),
        ("12345", "***45"),
    ],
)
def test_mask_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


@pytest.mark.parametrize(
    "value, masked",
    [("张三", "张*"), ("张小三", "张*三"), ("欧阳小明", "欧**明"), ("张", "*"), ("", "")],
)
def test_mask_name(value: str, masked: str) -> None:
    assert mask_name(value) == masked


@pytest.mark.parametrize(
    "text, scrubbed",
    [
        (f"applicant {ID_NUMBER} joined", "applicant 3714**********123X joined"),
        (f"身份证号{ID_NUMBER}已核验", "身份证号3714**********123X已核验"),
        ("lower-case x: 37140219900101123x.", "lower-case x: 3714**********123x."),
        ("电话13800000000，备用 139-1234-5678", "电话138****0000，备用 139-****-5678"),
        ("call +8613800000000 now", "call +86138****0000 now"),
        ("id=371402199001011239&phone=15012345678", "id=3714**********1239&phone=150****5678"),
        # left alone: hashes, longer digit runs, timestamps, inspection ids, impossible dates
        ("sha256 a13800000000b3714021990010112394f", "sha256 a13800000000b3714021990010112394f"),
        ("amount 1380000000012 and ms 1732600000000", "amount 1380000000012 and ms 1732600000000"),
        ("inspection 20261126120000-00112233aabbccdd", "inspection 20261126120000-00112233aabbccdd"),
        ("not a date 371402199013011239", "not a date 371402199013011239"),
        ("12345678901 starts with 12", "12345678901 starts with 12"),
    ],
)
def test_scrub(text: str, scrubbed: str) -> None:
    assert scrub(text) == scrubbed


def test_find_sensitive_reports_masked_values_only() -> None:
    text = f"line one\n{ID_NUMBER} and 13800000000\n"
    found = find_sensitive(text)
    assert [(f.kind, f.masked, f.line) for f in found] == [("id_number", "3714**********123X", 2), ("phone", "138****0000", 2)]
    assert ID_NUMBER not in str(found[0]) and "13800000000" not in str(found[1])


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger tree ``scrubtest`` with a handler at its top, the filter installed there."""
    top = logging.getLogger("scrubtest")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    top.addHandler(handler)
    top.setLevel(logging.DEBUG)
    install_scrubbing(top)
    install_scrubbing(top)  # a second call adds nothing
    assert sum(isinstance(f, ScrubbingFilter) for f in handler.filters) == 1
    try:
        yield top, stream
    finally:
        top.removeHandler(handler)
        top.filters.clear()


def test_scrubbing_filter_hides_an_id_number_in_a_log_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    _, stream = captured
    child = logging.getLogger("scrubtest.approval.requests")  # records propagate to the handler
    child.info("applicant %s with phone %d registered", ID_NUMBER, 13800000000)
    child.warning("dict args: %(id)s", {"id": ID_NUMBER})
    child.info(f"f-string {ID_NUMBER}")
    try:
        raise ValueError(f"'{ID_NUMBER}' check digit is wrong")
    except ValueError:
        child.exception("request refused")
    output = stream.getvalue()
    assert ID_NUMBER not in output and "13800000000" not in output, output
    assert "applicant 3714**********123X with phone 138****0000 registered" in output
    assert "dict args: 3714**********123X" in output
    assert "ValueError: '3714**********123X' check digit is wrong" in output


def test_scrubbing_filter_on_the_root_logger() -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    installed = install_scrubbing()
    try:
        logging.getLogger("takan.some.module").info("contact %s", "+86 138 0013 8000")
        assert stream.getvalue().strip() == "contact +86 138 **** 8000"
    finally:
        root.removeHandler(handler)
        root.removeFilter(installed)
        root.setLevel(old_level)


def test_a_broken_format_string_is_still_scrubbed() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "id %s %s", (ID_NUMBER,), None)
    assert ScrubbingFilter().filter(record)
    assert ID_NUMBER not in str(record.msg) + str(record.args)
