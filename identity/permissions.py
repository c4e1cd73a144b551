"""Roles, permissions and the principal a request acts as (DB3714/T 0014-2023 clause 9.4).

The standard names four data permissions (9.4.5): ``query``, ``entry``, ``review`` and
``approve``. Takan adds ``query_all`` (see every inspection, not only one's own),
``audit_read`` (read the access and audit logs and the evidence, change nothing),
``personal_data`` (see ID numbers and phones unmasked) and ``admin`` (accounts, templates,
keys). A staff member's permissions follow from their roles (:data:`ROLE_PERMISSIONS`); an
API key holds permissions directly.

Pure data and functions: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from errors import Forbidden, ValidationFailed

__all__ = [
    "ADMIN",
    "ASSIGN",
    "APPROVE",
    "AUDIT_READ",
    "ENTRY",
    "EXCLUSIVE_ROLES",
    "PERMISSIONS",
    "PERSONAL_DATA",
    "QUERY",
    "QUERY_ALL",
    "REVIEW",
    "ROLES",
    "ROLE_PERMISSIONS",
    "Principal",
    "PrincipalKind",
    "check_roles",
    "permissions_for",
]

QUERY = "query"
QUERY_ALL = "query_all"
ENTRY = "entry"
REVIEW = "review"
APPROVE = "approve"
ADMIN = "admin"
AUDIT_READ = "audit_read"
PERSONAL_DATA = "personal_data"
#: Assign, reassign and take over other people's inspections (the supervisor).
ASSIGN = "assign"

#: Every permission Takan knows.
PERMISSIONS: frozenset[str] = frozenset(
    {QUERY, QUERY_ALL, ENTRY, REVIEW, APPROVE, ADMIN, AUDIT_READ, PERSONAL_DATA, ASSIGN}
)

#: Staff roles, in the order an admin screen lists them.
ROLES: tuple[str, ...] = ("inspector", "supervisor", "reviewer", "approver", "auditor", "admin")

#: What each role may do. An inspector sees only the inspections they run (no ``query_all``).
ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "inspector": frozenset({QUERY, ENTRY}),
        "supervisor": frozenset({QUERY, QUERY_ALL, ENTRY, ASSIGN}),
        "reviewer": frozenset({QUERY, QUERY_ALL, REVIEW, PERSONAL_DATA}),
        "approver": frozenset({QUERY, QUERY_ALL, APPROVE, PERSONAL_DATA}),
        "auditor": frozenset({QUERY, QUERY_ALL, AUDIT_READ}),
        "admin": frozenset({ADMIN, QUERY, QUERY_ALL, PERSONAL_DATA}),
    }
)

#: Pairs of roles one person may not hold together. GB/T 22239 level 3 asks that the
#: administrators and the auditors who check them be different people.
EXCLUSIVE_ROLES: tuple[tuple[str, str], ...] = (("admin", "auditor"),)

PrincipalKind = Literal["staff", "api_key", "participant"]


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    """Return ``roles`` as a frozenset if they are a valid role set, else raise ValidationFailed.

    Valid: at least one role, each one of :data:`ROLES`, and no pair of
    :data:`EXCLUSIVE_ROLES`.
    """
    if isinstance(roles, str):
        # A bare string would iterate as characters; name the mistake instead.
        raise ValidationFailed(
            f"roles must be a list of role names, not the string {roles!r}",
            errors=[{"field": "roles", "message": "expected a list"}],
        )
    chosen = frozenset(roles)
    unknown = sorted(chosen - set(ROLES))
    if unknown:
        raise ValidationFailed(
            f"unknown role(s) {', '.join(map(repr, unknown))}; choose from {', '.join(ROLES)}",
            errors=[{"field": "roles", "message": f"unknown role {r!r}"} for r in unknown],
        )
    if not chosen:
        raise ValidationFailed(
            f"an account needs at least one role; choose from {', '.join(ROLES)}",
            errors=[{"field": "roles", "message": "is empty"}],
        )
    for first, second in EXCLUSIVE_ROLES:
        if first in chosen and second in chosen:
            raise ValidationFailed(
                f"one account may not be both {first!r} and {second!r} (separation of duties); "
                "create a second account for the other role",
                errors=[{"field": "roles", "message": f"{first!r} and {second!r} together"}],
            )
    return chosen


def permissions_for(roles: Iterable[str]) -> frozenset[str]:
    """Return the union of the permissions of ``roles``; unknown roles grant nothing."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a staff member, an API key, or an inspection participant.

    Build one with :meth:`staff`, :meth:`api_key` or :meth:`participant` and check it with
    :meth:`require` at the top of each handler.
    """

    kind: PrincipalKind
    id: str
    permissions: frozenset[str]
    roles: frozenset[str] = frozenset()

    @classmethod
    def staff(cls, user_id: str, roles: Iterable[str]) -> Principal:
        """A logged-in staff member holding ``roles``."""
        held = frozenset(roles)
        return cls(kind="staff", id=user_id, permissions=permissions_for(held), roles=held)

    @classmethod
    def api_key(cls, key_id: str, permissions: Iterable[str]) -> Principal:
        """An API key (the approval core) holding ``permissions``; unknown names are dropped."""
        return cls(kind="api_key", id=key_id, permissions=frozenset(permissions) & PERMISSIONS)

    @classmethod
    def participant(cls, participant_id: str) -> Principal:
        """An inspection participant (applicant) admitted by a link token: no permissions."""
        return cls(kind="participant", id=participant_id, permissions=frozenset())

    def has(self, permission: str) -> bool:
        """True if this principal holds ``permission``."""
        return permission in self.permissions

    def require(self, permission: str) -> None:
        """Raise Forbidden naming ``permission`` unless this principal holds it."""
        if permission not in PERMISSIONS:
            # A typo in a handler must not silently deny (or allow) everything.
            raise ValueError(f"unknown permission {permission!r}; use one of {sorted(PERMISSIONS)}")
        if permission not in self.permissions:
            raise Forbidden(
                f"{self.kind} {self.id!r} lacks the {permission!r} permission; "
                "ask an administrator to grant a role that includes it"
            )

    @property
    def can_see_personal_data(self) -> bool:
        """True if ID numbers and phone numbers may be shown unmasked (``personal_data``)."""
        return PERSONAL_DATA in self.permissions

    def can_query_inspection(self, inspector_ids: Iterable[str]) -> bool:
        """True if this principal may read an inspection run by ``inspector_ids``.

        ``query_all`` sees every inspection; plain ``query`` only those where this staff
        member is one of the inspectors. An API key is the approval core, which owns every
        inspection, so ``query`` is enough for it.
        """
        if QUERY not in self.permissions:
            return False
        if QUERY_ALL in self.permissions or self.kind == "api_key":
            return True
        return self.kind == "staff" and self.id in set(inspector_ids)

    def require_inspection(self, inspector_ids: Iterable[str]) -> None:
        """Raise Forbidden unless :meth:`can_query_inspection` allows it."""
        self.require(QUERY)
        if not self.can_query_inspection(inspector_ids):
            raise Forbidden(
                f"{self.kind} {self.id!r} may only see the inspections they run (no "
                f"{QUERY_ALL!r} permission); ask a reviewer or an administrator"
            )
