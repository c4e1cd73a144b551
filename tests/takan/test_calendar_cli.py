"""`takan calendar import|show|list` as operators run them.

The 2027 file is TEST DATA - not the official arrangement (tests/approval/data/).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.approval.test_calendar import TEST_2027, TEST_SOURCE
from tests.takan.test_cli import TAKAN, clean_env


def takan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(TAKAN + list(args), env=clean_env(), capture_output=True, text=True, timeout=60)


def test_import_show_and_list(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    missing = takan("calendar", "show", "2027", "--data-dir", data)
    assert missing.returncode == 1 and "takan calendar import" in missing.stderr, missing.stderr

    first = takan("calendar", "import", str(TEST_2027), "--data-dir", data)
    assert first.returncode == 0, first.stderr
    assert "calendar 2027 imported as version 1: 4 holidays (23 days off), 3 make-up working days" in first.stdout
    again = takan("calendar", "--data-dir", data, "import", str(TEST_2027), "--by", "ops.wang")  # flags before the action too
    assert again.returncode == 0 and "version 2 (replaces version 1, which is kept)" in again.stdout, again.stderr

    shown = takan("calendar", "show", "2027", "--data-dir", data)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "2027: imported version 2" in out and "by ops.wang" in out and f"source: {TEST_SOURCE}" in out
    assert "2027-02-06 to 2027-02-13" in out and "8 day(s)" in out and "2027-02-14 Sunday" in out
    assert "version 1:" in out and "(in force)" in out

    as_json = takan("calendar", "show", "2027", "--json", "--data-dir", data)
    assert json.loads(as_json.stdout)["source"] == TEST_SOURCE
    package_year = takan("calendar", "show", "2026", "--json", "--data-dir", data)
    exported = tmp_path / "2026.json"
    exported.write_text(package_year.stdout, encoding="utf-8")
    assert takan("calendar", "import", str(exported), "--data-dir", data).returncode == 0  # the export is importable

    listed = takan("calendar", "list", "--data-dir", data)
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "imported version 2" in lines["2027"] and "imported version 1" in lines["2026"] and "package" in lines["2025"]


def test_a_bad_file_is_refused_naming_lines_and_fields(tmp_path: Path) -> None:
    bad = tmp_path / "2027.yaml"
    bad.write_text(
        TEST_2027.read_text(encoding="utf-8")
        .replace("to: 2027-02-13", "to: 2028-02-13")
        .replace("{date: 2027-10-09,", "{date: 2027-10-05,"),
        encoding="utf-8",
    )
    result = takan("calendar", "import", str(bad), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "2 problem(s); nothing was loaded" in result.stderr
    assert "holidays[1].to: line 11: 2028-02-13 is not in 2027" in result.stderr
    assert "makeup_working_days[2].date: line 17: 2027-10-05 is a holiday" in result.stderr
    assert takan("calendar", "show", "2027", "--data-dir", str(tmp_path / "data")).returncode == 1
    unreadable = takan("calendar", "import", str(tmp_path / "nope.yaml"), "--data-dir", str(tmp_path / "data"))
    assert unreadable.returncode == 1 and "cannot read" in unreadable.stderr
