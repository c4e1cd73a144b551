"""Roles and permissions (clause 9.4): what each role may do, and how principals check it."""

from __future__ import annotations

import pytest

from errors import Forbidden, ValidationFailed
from identity.permissions import (
    PERMISSIONS,
    ROLE_PERMISSIONS,
    ROLES,
    Principal,
    check_roles,
    permissions_for,
)

EXPECTED = {
    "inspector": {"query", "entry"},
    "supervisor": {"query", "query_all", "entry", "assign"},
    "reviewer": {"query", "query_all", "review", "personal_data"},
    "approver": {"query", "query_all", "approve", "personal_data"},
    "auditor": {"query", "query_all", "audit_read"},
    "admin": {"admin", "query", "query_all", "personal_data"},
}


def test_the_standards_permissions_are_all_there() -> None:
    assert {"query", "entry", "review", "approve"} <= PERMISSIONS  # 9.4.5
    assert {"admin", "audit_read", "query_all", "personal_data"} <= PERMISSIONS


@pytest.mark.parametrize("role", ROLES)
def test_role_permissions(role: str) -> None:
    assert ROLE_PERMISSIONS[role] == EXPECTED[role]
    principal = Principal.staff("someone", [role])
    assert principal.permissions == EXPECTED[role]
    assert principal.can_see_personal_data == (role in {"reviewer", "approver", "admin"})


def test_only_the_auditor_reads_audit_logs_and_changes_nothing() -> None:
    auditor = Principal.staff("shen.ji", ["auditor"])
    auditor.require("audit_read")
    for change in ("entry", "review", "approve", "admin"):
        with pytest.raises(Forbidden):
            auditor.require(change)
    assert [r for r in ROLES if "audit_read" in ROLE_PERMISSIONS[r]] == ["auditor"]


def test_roles_combine() -> None:
    assert permissions_for(["inspector", "reviewer"]) == EXPECTED["inspector"] | EXPECTED["reviewer"]
    assert permissions_for([]) == frozenset()


def test_role_permissions_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS["inspector"] = frozenset({"admin"})  # type: ignore[index]


def test_require_names_the_missing_permission() -> None:
    inspector = Principal.staff("zhang.san", ["inspector"])
    inspector.require("entry")
    with pytest.raises(Forbidden, match="'approve' permission") as caught:
        inspector.require("approve")
    assert "zhang.san" in caught.value.detail
    with pytest.raises(ValueError, match="unknown permission"):
        inspector.require("aprove")


def test_inspector_sees_only_their_own_inspections() -> None:
    inspector = Principal.staff("zhang.san", ["inspector"])
    assert inspector.can_query_inspection(["zhang.san", "li.si"])
    assert not inspector.can_query_inspection(["li.si"])
    with pytest.raises(Forbidden, match="query_all"):
        inspector.require_inspection(["li.si"])
    inspector.require_inspection(["zhang.san"])
    assert Principal.staff("shen.ji", ["auditor"]).can_query_inspection(["li.si"])
    # Holding query_all without query grants nothing.
    assert not Principal("staff", "x", frozenset({"query_all"})).can_query_inspection(["x"])


def test_api_keys_and_participants() -> None:
    core = Principal.api_key("k1", ["query", "entry", "personal_data", "bogus"])
    assert core.kind == "api_key" and core.permissions == {"query", "entry", "personal_data"}
    assert core.can_see_personal_data and core.can_query_inspection(["anyone"])
    assert not Principal.api_key("k2", ["query"]).can_see_personal_data
    applicant = Principal.participant("p-1")
    assert applicant.permissions == frozenset() and not applicant.can_query_inspection(["p-1"])
    with pytest.raises(Forbidden):
        applicant.require("query")


def test_principal_is_frozen() -> None:
    principal = Principal.staff("zhang.san", ["inspector"])
    with pytest.raises(AttributeError):
        principal.permissions = frozenset({"admin"})  # type: ignore[misc]


@pytest.mark.parametrize(
    ("roles", "complaint"),
    [
        ([], "at least one role"),
        (["inspector", "root"], "unknown role"),
        (["admin", "auditor"], "separation of duties"),
        ("admin", "not the string"),
    ],
)
def test_check_roles(roles: object, complaint: str) -> None:
    with pytest.raises(ValidationFailed, match=complaint):
        check_roles(roles)  # type: ignore[arg-type]


def test_check_roles_accepts_several() -> None:
    assert check_roles(["reviewer", "approver", "reviewer"]) == {"reviewer", "approver"}
