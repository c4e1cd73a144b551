"""Prudent warnings (8.1.8): loading the four admin lists and matching applications.

The sample lists in ``data/`` are a UTF-8-with-BOM file with Chinese headers and an extra
``序号`` column (dishonest), a GBK file (abnormal_operation), a plain UTF-8 file with English
headers (industry_catalogue) and a negative list keyed by industry and by item code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from errors import NotFound, ValidationFailed
from approval.prudent import KINDS, ListKind, WarningLists, normalise_industry_code
from storage.local import LocalObjectStore

DATA = Path(__file__).parent / "data"
COMPANY = {"name": "德州某某餐饮有限公司", "kind": "legal_person", "id_type": "USCC", "id_number": "91371400MA3C1234XF"}
PERSON = {"name": "王某某", "kind": "natural_person", "id_type": "RESIDENT_ID", "id_number": "371402199003071235"}
CLEAN = {"name": "德州清白有限公司", "kind": "legal_person", "id_type": "USCC", "id_number": "91371400MA3F2222AC"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def lists(store: LocalObjectStore) -> AsyncIterator[WarningLists]:
    lists = WarningLists(store)
    await lists.start()
    yield lists
    await lists.close()


async def load_samples(lists: WarningLists) -> None:
    for kind in KINDS:
        await lists.load_csv(kind, (DATA / f"{kind}.csv").read_bytes(), f"{kind}.csv")


async def test_samples_load_as_version_one(lists: WarningLists, store: LocalObjectStore) -> None:
    await load_samples(lists)
    expected = {
        "dishonest": (2, "utf-8", ("序号",)),
        "abnormal_operation": (2, "gb18030", ()),
        "industry_catalogue": (3, "utf-8", ()),
        "negative_list": (3, "utf-8", ()),
    }
    for kind, (rows, encoding, ignored) in expected.items():
        version = lists.current(kind)  # type: ignore[arg-type]
        assert version is not None
        assert (version.version, version.rows, version.encoding, version.ignored_columns) == (
            1,
            rows,
            encoding,
            ignored,
        )
        assert await store.head(f"records/warning-lists/{kind}/000001.json") is not None
        pointer = json.loads(await store.get(f"records/warning-lists/{kind}/current.json"))
        assert pointer["version"] == 1
    stored = json.loads(await store.get("records/warning-lists/dishonest/000001.json"))
    person = next(e for e in stored["entries"] if e["id_number"] == PERSON["id_number"])
    assert person["listed_on"] == "2023-11-02" and person["line"] == 3 and "序号" not in person


@pytest.mark.parametrize(
    ("applicant", "industries", "item", "expected"),
    [
        (
            COMPANY,
            ["C2511"],
            "food-business-license",
            {
                ("dishonest", "91371400MA3C1234XF", "拒不履行法院生效判决"),
                ("abnormal_operation", "91371400MA3C1234XF", "通过登记的住所或者经营场所无法联系"),
                ("industry_catalogue", "25", "新建1000万吨/年以下常减压装置"),
                ("industry_catalogue", "2511", "200万吨/年及以下常减压装置"),
                ("negative_list", "2511", "不得新建列入淘汰类的常减压装置"),
            },
        ),
        (PERSON, [], "food-business-license", {("dishonest", PERSON["id_number"], None)}),
        (
            CLEAN,
            ["h6110"],  # lower case, lodging: nothing in the catalogue
            "hotel-special-industry-license",
            {("negative_list", "hotel-special-industry-license", "未获得许可，不得从事旅馆业经营")},
        ),
        (
            CLEAN,
            ["3011", "5127"],
            "food-business-license",
            {
                ("industry_catalogue", "3011", "新建、扩建水泥熟料生产线"),
                ("negative_list", "5127", "未获得许可，不得从事烟草制品批发"),
            },
        ),
        (CLEAN, ["C2611", "30"], "pharmacy-retail-license", set()),  # a division does not match its classes' entries
        (
            {**CLEAN, "id_number": " 91371400ma3c1234xf "},
            [],
            "x",
            {  # normalised before lookup
                ("dishonest", "91371400MA3C1234XF", None),
                ("abnormal_operation", "91371400MA3C1234XF", None),
            },
        ),
    ],
)
async def test_match(
    lists: WarningLists,
    applicant: dict[str, Any],
    industries: list[str],
    item: str,
    expected: set[tuple[str, str, Any]],
) -> None:
    await load_samples(lists)
    matches = lists.match(applicant, industries, item)
    assert {(m.kind, m.key) for m in matches} == {(kind, key) for kind, key, _ in expected}
    reasons: dict[tuple[str, str], str] = {(m.kind, m.key): m.reason for m in matches}
    assert all(reasons[kind, key] == reason for kind, key, reason in expected if reason is not None)
    assert all(m.version == 1 and m.line >= 2 and m.title for m in matches)
    assert len(matches) == len(expected)  # each entry once, however many codes hit it


async def test_match_details(lists: WarningLists) -> None:
    await load_samples(lists)
    [hit] = lists.match(PERSON, [], "")
    assert hit.as_json() == {
        "kind": "dishonest",
        "title": "失信警示",
        "key": "371402199003071235",
        "matched": "371402199003071235",
        "reason": "拖欠农民工工资，列入拖欠农民工工资失信联合惩戒对象名单",
        "category": "",
        "name": "王某某",
        "version": 1,
        "line": 3,
    }
    catalogue = [m for m in lists.match(CLEAN, ["C2511"], "") if m.kind == "industry_catalogue"]
    assert {(m.key, m.matched, m.category) for m in catalogue} == {
        ("25", "2511", "restricted"),
        ("2511", "2511", "eliminated"),
    }


HEADERS = {
    "dishonest": "统一社会信用代码/身份证号码,失信原因,列入日期",
    "abnormal_operation": "credit_code,reason",
    "industry_catalogue": "industry_code,category",
    "negative_list": "industry_code,item_code,measure,category",
}


@pytest.mark.parametrize(
    ("kind", "body", "line", "column", "fragment"),
    [
        ("dishonest", "91371400MA3C1234XG,判决,2024-01-01", 2, "id_number", "check character is 'G' but should be 'F'"),
        ("dishonest", "371402199003071234,判决,", 2, "id_number", "neither a credit code"),
        ("dishonest", "91371400MA3C1234XF,,2024-01-01", 2, "reason", "is empty"),
        ("dishonest", "91371400MA3C1234XF,判决,2024-02-30", 2, "listed_on", "not a date"),
        ("dishonest", "91371400MA3C1234XF,判决", 2, "", "has 2 fields but the header has 3"),
        ("abnormal_operation", "91371400MA3C1234XF,ok\n\n371402199003071235,年报", 4, "credit_code", "GB 32100"),
        ("industry_catalogue", "C25,鼓励类", 2, "category", "leave them out"),
        ("industry_catalogue", "X99999,restricted", 2, "industry_code", "GB/T 4754"),
        ("negative_list", ",,不得经营,", 2, "industry_code", "give at least one"),
        ("negative_list", ",Bad Code!,不得经营,", 2, "item_code", "not an item code"),
        ("negative_list", "F5127,,不得经营,鼓励", 2, "category", "prohibited"),
    ],
)
async def test_bad_rows_are_named_by_line_and_column(
    lists: WarningLists, kind: ListKind, body: str, line: int, column: str, fragment: str
) -> None:
    data = f"{HEADERS[kind]}\n{body}\n".encode()
    with pytest.raises(ValidationFailed) as caught:
        await lists.load_csv(kind, data, "bad.csv")
    [problem] = caught.value.errors
    assert (problem["line"], problem["field"]) == (line, column)
    assert fragment in problem["message"]
    assert f"line {line}" in caught.value.detail and "nothing was stored" in caught.value.detail
    assert lists.current(kind) is None and await lists.history(kind) == []


async def test_every_bad_row_is_reported(lists: WarningLists) -> None:
    rows = "\n".join(f"X{i},restricted" for i in range(60))
    with pytest.raises(ValidationFailed, match="60 problem") as caught:
        await lists.load_csv("industry_catalogue", f"industry_code,category\n{rows}\n".encode(), "x.csv")
    assert len(caught.value.errors) == 50
    assert [e["line"] for e in caught.value.errors[:3]] == [2, 3, 4]


@pytest.mark.parametrize(
    ("kind", "data", "fragment"),
    [
        ("dishonest", b"", "needs a header line"),
        ("dishonest", "主体名称,失信原因\n".encode(), "'id_number'"),
        ("abnormal_operation", b"credit_code,reason,reason\n", "a second time"),
        ("negative_list", b"\xff\xfe\xff\xfe", "save it as 'CSV UTF-8'"),
    ],
)
async def test_bad_files(lists: WarningLists, kind: ListKind, data: bytes, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await lists.load_csv(kind, data, "bad.csv")
    assert fragment in caught.value.detail + json.dumps(caught.value.errors, ensure_ascii=False)


async def test_versions_history_and_rollback(store: LocalObjectStore, lists: WarningLists) -> None:
    await lists.load_csv("abnormal_operation", (DATA / "abnormal_operation.csv").read_bytes(), "2024-08.csv")
    # The September list dropped the restaurant.
    v2 = await lists.load_csv(
        "abnormal_operation",
        "统一社会信用代码,列入经营异常名录原因\n91371402MA3D5678KN,未依照规定公示年度报告\n".encode(),
        "2024-09.csv",
    )
    assert v2.version == 2 and lists.current("abnormal_operation") == v2
    assert lists.match(COMPANY, [], "") == []
    assert [(v.version, v.source_name) for v in await lists.history("abnormal_operation")] == [
        (1, "2024-08.csv"),
        (2, "2024-09.csv"),
    ]

    back = await lists.activate("abnormal_operation", 1)
    assert back.version == 1
    [hit] = lists.match(COMPANY, [], "")
    assert hit.version == 1

    # A restart reads the pointer: version 1 is still in force; a new upload becomes 3.
    again = WarningLists(store)
    await again.start()
    assert again.current("abnormal_operation") == back
    assert [m.version for m in again.match(COMPANY, [], "")] == [1]
    v3 = await again.load_csv("abnormal_operation", (DATA / "abnormal_operation.csv").read_bytes(), "2024-10.csv")
    assert v3.version == 3
    await again.close()

    with pytest.raises(NotFound, match="history"):
        await lists.activate("abnormal_operation", 9)


async def test_usage_errors(store: LocalObjectStore, lists: WarningLists) -> None:
    fresh = WarningLists(store)
    with pytest.raises(RuntimeError, match="await start"):
        fresh.match(COMPANY, [], "")
    with pytest.raises(ValidationFailed, match="unknown warning list kind 'blacklist'"):
        await lists.load_csv("blacklist", b"a\n", "x.csv")  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed, match="source_name"):
        await lists.load_csv("dishonest", b"a\n", " ")
    with pytest.raises(ValidationFailed) as caught:
        lists.match(COMPANY, ["C2511", "food"], "")
    assert caught.value.errors == [
        {"field": "industry_codes[1]", "message": "'food' is not a GB/T 4754 code such as 'C2511' or '2511'"}
    ]
    # start() and close() are idempotent.
    await lists.start()
    await lists.close()
    await lists.close()


@pytest.mark.parametrize(
    ("code", "digits"),
    [("C2511", "2511"), ("c25", "25"), (" 3011 ", "3011"), ("C", None), ("25111", None), ("Z25", None)],
)
def test_normalise_industry_code(code: str, digits: str | None) -> None:
    assert normalise_industry_code(code) == digits
