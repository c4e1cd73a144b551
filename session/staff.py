"""Who runs an inspection: the logged-in staff member behind an inspector link.

The inspector link alone admits nobody (issue 11): the page's connection must also carry a
live staff session (the ``takan_session`` login cookie) of an enabled account holding
``entry``, and that account must be the inspection's assigned inspector. An unassigned
inspection is claimed by the first inspector who opens it; a supervisor (``assign``)
takes over someone else's, and both are logged with names. Refusals carry a code the
console shows (docs/protocol.md, "Refusals") and say whose inspection it is.

While the session runs, :meth:`InspectorGate.recheck` resolves the staff session again
(at most every ``recheck_s``): an expired login refuses the next inspector action with
``login_required`` but leaves the connection and its media alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from approval.inspections import Inspection, InspectionBook
from errors import Forbidden, NotAuthorised, Unauthorized
from evidence.journal import Journal
from identity.accounts import Accounts
from identity.permissions import ASSIGN, ENTRY
from identity.sessions import StaffSessions

logger = logging.getLogger(__name__)

RECHECK_S = 10.0


class LoginRequired(NotAuthorised):
    """No (or no longer a) staff login: log in again and retry; nothing is lost."""

    code = "login_required"


@dataclass
class StaffMember:
    """A logged-in staff member holding an inspector connection."""

    user_id: str
    name: str
    token: str = field(repr=False)
    checked_at: float = 0.0

    def named(self) -> dict[str, str]:
        """How the evidence log names them."""
        return {"user_id": self.user_id, "name": self.name}


class InspectorGate:
    """Decides whether a staff login may hold an inspection's inspector link."""

    def __init__(self, sessions: StaffSessions, accounts: Accounts, book: InspectionBook, journal: Journal,
                 recheck_s: float = RECHECK_S) -> None:
        self.sessions = sessions
        self.accounts = accounts
        self.book = book
        self.journal = journal
        self.recheck_s = recheck_s

    def _whose(self, record: Inspection) -> dict[str, Any]:
        return {"inspector_user_id": record.inspector_user_id, "inspector_name": record.inspector_name}

    async def admit(self, token: Optional[str], record: Inspection) -> StaffMember:
        """The staff member ``token`` logs in, if they may run ``record`` (claims and
        takeovers are recorded); raises a NotAuthorised with a code otherwise."""
        whose = self._whose(record)
        who = f" ({record.inspector_name}, {record.inspector_user_id})" if record.inspector_user_id else ""
        if not token:
            raise LoginRequired(f"log in as the assigned inspector{who} to open this inspection", extra=whose)
        user_id = token.rpartition(".")[0]
        account = await self.accounts.find(user_id) if user_id else None
        if account is not None and not account.enabled:
            raise Forbidden(f"account {user_id!r} is disabled; ask an administrator", code="account_disabled", extra=whose)
        try:
            session = await self.sessions.touch(token)
        except Unauthorized:
            raise LoginRequired("your login has expired; log in again to open this inspection", extra=whose) from None
        if account is None or session.password_change_required:
            raise LoginRequired("change your password and log in again first", extra=whose)
        principal = session.principal
        member = StaffMember(account.user_id, account.real_name, token, time.monotonic())
        if not principal.has(ENTRY):
            raise Forbidden(f"{account.user_id} does not hold the inspector role", code="not_an_inspector", extra=whose)
        if record.inspector_user_id == account.user_id:
            return member
        if record.inspector_user_id is None:
            await self.book.assign(record.id, account.user_id, account.real_name)
            await self.journal.record(record.id, "inspector.claimed", "inspector", {"staff": member.named()})
            logger.info("inspection %s claimed by %s", record.id, account.user_id)
            return member
        if principal.has(ASSIGN):
            previous = self._whose(record)
            await self.book.assign(record.id, account.user_id, account.real_name)
            await self.journal.record(record.id, "inspector.taken_over", "inspector",
                                      {"staff": member.named(), "previous": previous})
            logger.warning("inspection %s taken over by supervisor %s from %s", record.id, account.user_id, previous["inspector_user_id"])
            return member
        name = record.inspector_name or record.inspector_user_id
        raise Forbidden(
            f"this inspection is assigned to {name}; ask them or a supervisor to reassign it",
            code="not_your_inspection", extra=whose,
        )

    async def recheck(self, member: StaffMember) -> None:
        """Raise :class:`LoginRequired` if the login behind ``member`` has ended (at most
        one store read per ``recheck_s``; each check counts as activity)."""
        now = time.monotonic()
        if now - member.checked_at < self.recheck_s:
            return
        try:
            await self.sessions.touch(member.token)
        except Unauthorized:
            raise LoginRequired("your login has expired; log in again, then repeat this (the session goes on)") from None
        member.checked_at = now
