"""Staff accounts and Takan's own login (clauses 9.3.3 and 9.4; the fallback of 5.4).

An account is bound to a real person (real name, optionally an ID number and a phone) and
holds one or more roles (:data:`identity.permissions.ROLES`). Logging in takes two factors:
a password (argon2id, complexity-checked) and a TOTP code from an authenticator app.

Each account is a JSON object at ``records/accounts/<user_id>.json``. :class:`Accounts`
reads through to the store on every call (no cache), so that several Takan nodes sharing one
store see the same lockouts, replay marks and revocations. The object store has no
compare-and-swap: two nodes changing the same account in the same few milliseconds can lose
one change (at worst one failed-login count, or one TOTP code accepted twice within that
window); within one node a lock serialises every change.

Sensitive fields (``password_hash``, ``totp_secret``, ``id_number``, ``phone``) are stored as
given and left out of ``repr``; encrypting them at rest is the caller's job.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NoReturn, Optional

from errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed
from privacy.fieldcrypto import FieldCipher, decrypt_fields, encrypt_fields, field_context
from storage.objects import ObjectNotFound, ObjectStore

from . import totp
from .passwords import Passwords, check_complexity
from .permissions import ROLES, Principal, check_roles

#: Stored encrypted when a field cipher is configured.
SENSITIVE_FIELDS = ("totp_secret", "id_number", "phone")

__all__ = [
    "BAD_CREDENTIALS",
    "RECORD_PREFIX",
    "USER_ID_PATTERN",
    "Account",
    "Accounts",
    "now_utc",
]

logger = logging.getLogger(__name__)

RECORD_PREFIX = "records/accounts/"
USER_ID_PATTERN = re.compile(r"[a-z0-9._-]{3,32}\Z")
SCHEMA = 1

#: The one answer to a wrong user id, password or code, so that none of them is revealed.
BAD_CREDENTIALS = (
    "the user id, password or verification code is wrong (each code works only once: "
    "if you just used it, wait for the next one); check them and try again"
)

# Passwords this long are refused without hashing them.
_MAX_PASSWORD_INPUT = 1024
# Unknown user ids whose failures are counted (so that lockout does not reveal which ids
# exist); the oldest is forgotten beyond this many.
_MAX_UNKNOWN_TRACKED = 10_000


def now_utc() -> datetime.datetime:
    """The current time, aware, in UTC."""
    return datetime.datetime.now(datetime.timezone.utc)


def _aware(moment: Optional[datetime.datetime]) -> datetime.datetime:
    if moment is None:
        return now_utc()
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime (tzinfo=UTC), not a naive one")
    return moment


def _iso(moment: Optional[datetime.datetime]) -> Optional[str]:
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse(value: Optional[str]) -> Optional[datetime.datetime]:
    return None if value is None else datetime.datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class Account:
    """One staff member's account. Immutable: :class:`Accounts` stores changed copies."""

    user_id: str
    real_name: str = field(repr=False)
    roles: frozenset[str]
    password_hash: str = field(repr=False)
    totp_secret: str = field(repr=False)
    created_at: datetime.datetime
    password_changed_at: datetime.datetime
    id_number: Optional[str] = field(default=None, repr=False)
    phone: Optional[str] = field(default=None, repr=False)
    totp_last_step: Optional[int] = None
    enabled: bool = True
    failed_attempts: int = 0
    #: Start of the window in which ``failed_attempts`` were counted.
    first_failed_at: Optional[datetime.datetime] = None
    locked_until: Optional[datetime.datetime] = None
    must_change_password: bool = True
    #: Sessions opened at or before this moment are void ("log out everywhere").
    sessions_revoked_at: Optional[datetime.datetime] = None
    oidc_subject: Optional[str] = None
    last_login_at: Optional[datetime.datetime] = None

    @property
    def principal(self) -> Principal:
        """The principal this account's requests act as."""
        return Principal.staff(self.user_id, self.roles)

    def is_locked(self, now: datetime.datetime) -> bool:
        """True if too many failed logins lock the account at ``now``."""
        return self.locked_until is not None and now < self.locked_until

    def to_json(self) -> dict[str, Any]:
        """The stored form (JSON-serialisable)."""
        return {
            "schema": SCHEMA,
            "user_id": self.user_id,
            "real_name": self.real_name,
            "id_number": self.id_number,
            "phone": self.phone,
            "roles": [r for r in ROLES if r in self.roles],
            "password_hash": self.password_hash,
            "totp_secret": self.totp_secret,
            "totp_last_step": self.totp_last_step,
            "enabled": self.enabled,
            "failed_attempts": self.failed_attempts,
            "first_failed_at": _iso(self.first_failed_at),
            "locked_until": _iso(self.locked_until),
            "created_at": _iso(self.created_at),
            "password_changed_at": _iso(self.password_changed_at),
            "must_change_password": self.must_change_password,
            "sessions_revoked_at": _iso(self.sessions_revoked_at),
            "oidc_subject": self.oidc_subject,
            "last_login_at": _iso(self.last_login_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Account:
        """Parse the stored form; raises ValueError (with the field) if it is not one."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"account record has schema {data.get('schema')!r}, expected {SCHEMA}")
        try:
            created = _parse(data["created_at"])
            changed = _parse(data["password_changed_at"])
            assert created is not None and changed is not None
            return cls(
                user_id=data["user_id"],
                real_name=data["real_name"],
                id_number=data.get("id_number"),
                phone=data.get("phone"),
                roles=frozenset(data["roles"]),
                password_hash=data["password_hash"],
                totp_secret=data["totp_secret"],
                totp_last_step=data.get("totp_last_step"),
                enabled=bool(data["enabled"]),
                failed_attempts=int(data.get("failed_attempts", 0)),
                first_failed_at=_parse(data.get("first_failed_at")),
                locked_until=_parse(data.get("locked_until")),
                created_at=created,
                password_changed_at=changed,
                must_change_password=bool(data.get("must_change_password", False)),
                sessions_revoked_at=_parse(data.get("sessions_revoked_at")),
                oidc_subject=data.get("oidc_subject"),
                last_login_at=_parse(data.get("last_login_at")),
            )
        except (KeyError, AssertionError, TypeError) as exc:
            raise ValueError(f"account record is missing or has a bad field: {exc!r}") from exc


@dataclass(slots=True)
class _Strikes:
    """Failed logins for a user id that has no account (kept in memory only)."""

    count: int = 0
    first_at: Optional[datetime.datetime] = None
    locked_until: Optional[datetime.datetime] = None


def _invalid(field_name: str, message: str, value: object = None) -> ValidationFailed:
    quoted = "" if value is None else f" ({value!r})"
    return ValidationFailed(
        f"{field_name}{quoted} {message}", errors=[{"field": field_name, "message": message}]
    )


def _check_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not USER_ID_PATTERN.match(user_id):
        raise _invalid("user_id", "must be 3-32 characters of a-z 0-9 '.' '_' '-'", user_id)
    return user_id


def _check_text(field_name: str, value: Optional[str], max_length: int, required: bool) -> Optional[str]:
    if value is None or not value.strip():
        if required:
            raise _invalid(field_name, "is required")
        return None
    text = value.strip()
    if len(text) > max_length or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _invalid(field_name, f"must be at most {max_length} characters without control characters")
    return text


def _check_password(password: str, user_id: str, real_name: str) -> None:
    problems = check_complexity(password, user_id, real_name)
    if problems:
        raise ValidationFailed(
            "the password does not meet the rules; choose another (see errors): " + "; ".join(problems),
            errors=[{"field": "password", "message": p} for p in problems],
        )


class Accounts:
    """The staff accounts in an object store, and the login that checks them.

    ``start()`` must be awaited before use; ``start()`` and ``close()`` are idempotent.
    Every method that changes an account takes an optional ``now`` (an aware datetime,
    default the current time) so that tests can move the clock.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        passwords: Optional[Passwords] = None,
        issuer: str = "Takan",
        max_failures: int = 5,
        failure_window: datetime.timedelta = datetime.timedelta(minutes=15),
        lockout: datetime.timedelta = datetime.timedelta(minutes=15),
        password_max_age: Optional[datetime.timedelta] = datetime.timedelta(days=90),
        max_concurrent_hashes: int = 4,
        cipher: Optional[FieldCipher] = None,
    ) -> None:
        """``passwords`` sets the argon2 parameters (tests pass cheap ones);
        ``max_concurrent_hashes`` bounds the memory that simultaneous logins take."""
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        self._store = store
        self._cipher = cipher
        self._passwords = passwords or Passwords()
        self._issuer = issuer
        self._max_failures = max_failures
        self._failure_window = failure_window
        self._lockout = lockout
        self._password_max_age = password_max_age
        self._hash_slots = asyncio.Semaphore(max_concurrent_hashes)
        self._lock = asyncio.Lock()
        self._unknown: OrderedDict[str, _Strikes] = OrderedDict()
        self._dummy_hash: Optional[str] = None
        self._started = False

    async def start(self) -> None:
        """Prepare the stand-in hash that unknown user ids are checked against."""
        if self._started:
            return
        # Checking a password for an unknown id against a real hash takes as long as for a
        # known one, so response times do not reveal which ids exist.
        self._dummy_hash = await asyncio.to_thread(self._passwords.hash, "takan-no-such-account")
        self._started = True

    async def close(self) -> None:
        """Forget in-memory state (failure counts of unknown ids); safe to call twice."""
        self._unknown.clear()
        self._started = False

    # ---- reading ---------------------------------------------------------------------

    async def find(self, user_id: str) -> Optional[Account]:
        """Return the account ``user_id``, or None if there is none (or the id is malformed)."""
        self._require_started()
        if not isinstance(user_id, str) or not USER_ID_PATTERN.match(user_id):
            return None
        try:
            raw = await self._store.get(self._key(user_id))
        except ObjectNotFound:
            return None
        return Account.from_json(self._opened(json.loads(raw)))

    async def get(self, user_id: str) -> Account:
        """Return the account ``user_id``; raise NotFound if there is none."""
        account = await self.find(user_id)
        if account is None:
            raise NotFound(f"no account {user_id!r}; list the accounts to find the right user id")
        return account

    async def list(self) -> builtins.list[Account]:
        """Return every account (enabled or not), sorted by user id."""
        self._require_started()
        accounts: builtins.list[Account] = []
        for key in await self._store.list(RECORD_PREFIX):
            if key.endswith(".json"):
                accounts.append(Account.from_json(self._opened(json.loads(await self._store.get(key)))))
        return sorted(accounts, key=lambda a: a.user_id)

    async def find_by_oidc_subject(self, subject: str) -> Optional[Account]:
        """Return the account bound to the identity provider's ``sub``, or None.

        Reads every account: staff accounts number in the hundreds and a login happens once
        per working day per person.
        """
        if not subject:
            return None
        for account in await self.list():
            if account.oidc_subject == subject:
                return account
        return None

    def needs_password_change(self, account: Account, now: Optional[datetime.datetime] = None) -> bool:
        """True if ``account`` must set a new password before doing anything else.

        Either an admin set (or reset) its password, or the password is older than
        ``password_max_age``. The web layer lets such a session reach only the change form.
        """
        if account.must_change_password:
            return True
        if self._password_max_age is None:
            return False
        return _aware(now) - account.password_changed_at > self._password_max_age

    # ---- creating and administering -------------------------------------------------

    async def create(
        self,
        user_id: str,
        real_name: str,
        roles: Iterable[str],
        password: str,
        *,
        id_number: Optional[str] = None,
        phone: Optional[str] = None,
        oidc_subject: Optional[str] = None,
        must_change_password: bool = True,
        now: Optional[datetime.datetime] = None,
    ) -> tuple[Account, str]:
        """Create an account; return it and the TOTP provisioning URI to show its owner once.

        Raises ValidationFailed for a malformed field or a weak password, Conflict if the
        user id (or the OIDC subject) is taken. The new account must change its password at
        first login unless ``must_change_password`` is False.
        """
        self._require_started()
        moment = _aware(now)
        _check_user_id(user_id)
        name = _check_text("real_name", real_name, 64, required=True)
        assert name is not None
        held = check_roles(roles)
        id_no = _check_text("id_number", id_number, 64, required=False)
        phone_no = _check_text("phone", phone, 32, required=False)
        subject = _check_text("oidc_subject", oidc_subject, 255, required=False)
        _check_password(password, user_id, name)
        if await self.find(user_id) is not None:
            raise Conflict(f"user id {user_id!r} is taken; choose another")
        password_hash = await self._hash(password)
        secret = totp.new_secret()
        account = Account(
            user_id=user_id,
            real_name=name,
            id_number=id_no,
            phone=phone_no,
            roles=held,
            password_hash=password_hash,
            totp_secret=secret,
            created_at=moment,
            password_changed_at=moment,
            must_change_password=must_change_password,
            oidc_subject=subject,
        )
        async with self._lock:
            if await self.find(user_id) is not None:
                raise Conflict(f"user id {user_id!r} is taken; choose another")
            if subject is not None:
                await self._check_subject_free(subject, user_id)
            await self._save(account)
        logger.info("account %s created with roles %s", user_id, ",".join(sorted(held)))
        return account, totp.provisioning_uri(secret, user_id, self._issuer)

    async def disable(self, user_id: str, now: Optional[datetime.datetime] = None) -> Account:
        """Refuse every login of ``user_id`` and void its sessions until :meth:`enable`."""
        moment = _aware(now)
        async with self._lock:
            account = await self.get(user_id)
            if "admin" in account.roles and account.enabled:
                await self._keep_an_admin(user_id)
            updated = replace(account, enabled=False, sessions_revoked_at=moment)
            await self._save(updated)
        logger.info("account %s disabled", user_id)
        return updated

    async def enable(self, user_id: str) -> Account:
        """Allow ``user_id`` to log in again (and lift any lockout)."""
        async with self._lock:
            account = await self.get(user_id)
            updated = replace(account, enabled=True, **self._cleared_failures())
            await self._save(updated)
        logger.info("account %s enabled", user_id)
        return updated

    async def unlock(self, user_id: str) -> Account:
        """Lift a lockout from failed logins before it expires."""
        async with self._lock:
            account = await self.get(user_id)
            updated = replace(account, **self._cleared_failures())
            await self._save(updated)
        logger.info("account %s unlocked", user_id)
        return updated

    async def set_roles(self, user_id: str, roles: Iterable[str]) -> Account:
        """Replace the roles of ``user_id``; they take effect at its next request."""
        held = check_roles(roles)
        async with self._lock:
            account = await self.get(user_id)
            if "admin" in account.roles and "admin" not in held and account.enabled:
                await self._keep_an_admin(user_id)
            updated = replace(account, roles=held)
            await self._save(updated)
        logger.info("account %s roles set to %s", user_id, ",".join(sorted(held)))
        return updated

    async def set_oidc_subject(self, user_id: str, subject: Optional[str]) -> Account:
        """Bind ``user_id`` to the identity provider's ``sub`` (None unbinds it).

        Raises Conflict if another account is bound to that subject.
        """
        cleaned = _check_text("oidc_subject", subject, 255, required=False)
        async with self._lock:
            account = await self.get(user_id)
            if cleaned is not None:
                await self._check_subject_free(cleaned, user_id)
            updated = replace(account, oidc_subject=cleaned)
            await self._save(updated)
        logger.info("account %s %s", user_id, "bound to an OIDC subject" if cleaned else "unbound from OIDC")
        return updated

    async def revoke_sessions(self, user_id: str, now: Optional[datetime.datetime] = None) -> Account:
        """Void every session of ``user_id`` opened up to ``now`` ("log out everywhere")."""
        moment = _aware(now)
        async with self._lock:
            account = await self.get(user_id)
            updated = replace(account, sessions_revoked_at=moment)
            await self._save(updated)
        logger.info("account %s: all sessions revoked", user_id)
        return updated

    async def reset_password(
        self,
        user_id: str,
        new_password: str,
        *,
        new_totp: bool = False,
        now: Optional[datetime.datetime] = None,
    ) -> Optional[str]:
        """Set a password for ``user_id`` as an admin; the owner must change it at next login.

        Also lifts any lockout and voids the account's sessions. With ``new_totp`` the TOTP
        secret is replaced too (a lost phone) and the new provisioning URI returned, to show
        the owner once; otherwise returns None.
        """
        moment = _aware(now)
        account = await self.get(user_id)
        _check_password(new_password, user_id, account.real_name)
        password_hash = await self._hash(new_password)
        secret = totp.new_secret() if new_totp else None
        async with self._lock:
            account = await self.get(user_id)
            changes: dict[str, Any] = dict(
                password_hash=password_hash,
                password_changed_at=moment,
                must_change_password=True,
                sessions_revoked_at=moment,
                **self._cleared_failures(),
            )
            if secret is not None:
                changes.update(totp_secret=secret, totp_last_step=None)
            await self._save(replace(account, **changes))
        logger.info("account %s: password reset%s", user_id, " with a new TOTP secret" if secret else "")
        return None if secret is None else totp.provisioning_uri(secret, user_id, self._issuer)

    async def change_password(
        self,
        user_id: str,
        old_password: str,
        new_password: str,
        now: Optional[datetime.datetime] = None,
    ) -> Account:
        """Let the owner replace their password; ends all their sessions (open a new one).

        A wrong ``old_password`` counts as a failed login. The new password must meet the
        rules and differ from the old one.
        """
        moment = _aware(now)
        account = await self.get(user_id)
        if account.is_locked(moment):
            self._raise_locked(account.locked_until)
        if not await self._verify(account.password_hash, old_password):
            async with self._lock:
                await self._fail(await self.get(user_id), moment, "wrong old password")
        _check_password(new_password, user_id, account.real_name)
        if await self._verify(account.password_hash, new_password):
            raise _invalid("password", "must differ from the current password")
        password_hash = await self._hash(new_password)
        async with self._lock:
            current = await self.get(user_id)
            updated = replace(
                current,
                password_hash=password_hash,
                password_changed_at=moment,
                must_change_password=False,
                sessions_revoked_at=moment,
                **self._cleared_failures(),
            )
            await self._save(updated)
        logger.info("account %s: password changed by its owner", user_id)
        return updated

    # ---- logging in ------------------------------------------------------------------

    async def authenticate(
        self,
        user_id: str,
        password: str,
        totp_code: str,
        now: Optional[datetime.datetime] = None,
    ) -> Account:
        """Check a login with password and TOTP code; return the account on success.

        Raises Unauthorized with :data:`BAD_CREDENTIALS` for an unknown id, a wrong password,
        a wrong code or a code already used (all alike, so none is revealed); RateLimited,
        naming the unlock time, after ``max_failures`` failures within ``failure_window``
        (for ``lockout``); Forbidden if the credentials are right but the account is
        disabled. Success clears the failure count, records the code's time step so it
        cannot be replayed, and upgrades the password hash if its parameters are outdated.
        The caller then checks :meth:`needs_password_change`.
        """
        self._require_started()
        moment = _aware(now)
        wanted = user_id.strip().lower() if isinstance(user_id, str) else ""
        totp_code = totp_code if isinstance(totp_code, str) else ""
        account = await self.find(wanted)
        if account is None:
            self._check_unknown_lock(wanted, moment)
            await self._verify(self._dummy_hash or "", password)
            self._fail_unknown(wanted, moment)
        if account.is_locked(moment):
            self._raise_locked(account.locked_until)

        password_ok = await self._verify(account.password_hash, password)
        new_hash: Optional[str] = None
        if password_ok and self._passwords.needs_rehash(account.password_hash):
            new_hash = await self._hash(password)

        async with self._lock:
            # Re-read: another login may have locked the account or used a code meanwhile.
            current = await self.get(wanted)
            if current.is_locked(moment):
                self._raise_locked(current.locked_until)
            if not password_ok:
                await self._fail(current, moment, "wrong password")
            step = totp.verify(current.totp_secret, totp_code, moment, after_step=current.totp_last_step)
            if step is None:
                replayed = totp.verify(current.totp_secret, totp_code, moment) is not None
                await self._fail(current, moment, "replayed TOTP code" if replayed else "wrong TOTP code")
            if not current.enabled:
                logger.warning("account %s: login refused, the account is disabled", wanted)
                raise Forbidden(f"account {wanted!r} is disabled; ask an administrator to enable it")
            updated = replace(
                current,
                totp_last_step=step,
                last_login_at=moment,
                **self._cleared_failures(),
            )
            if new_hash is not None and current.password_hash == account.password_hash:
                updated = replace(updated, password_hash=new_hash)
            await self._save(updated)
        logger.info("account %s: logged in%s", wanted, " (password hash upgraded)" if new_hash else "")
        return updated

    # ---- internals -------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("call Accounts.start() before using it")

    @staticmethod
    def _key(user_id: str) -> str:
        return f"{RECORD_PREFIX}{user_id}.json"

    def _sealed(self, data: dict[str, Any]) -> dict[str, Any]:
        """Encrypt the sensitive fields (5.8) when a cipher is configured."""
        return encrypt_fields(data, SENSITIVE_FIELDS, self._cipher, partial(field_context, "account", data["user_id"]))

    def _opened(self, data: dict[str, Any]) -> dict[str, Any]:
        return decrypt_fields(data, SENSITIVE_FIELDS, self._cipher, partial(field_context, "account", data["user_id"]))

    async def _save(self, account: Account) -> None:
        data = json.dumps(self._sealed(account.to_json()), ensure_ascii=False, sort_keys=True).encode()
        await self._store.put(self._key(account.user_id), data, "application/json")

    async def _hash(self, password: str) -> str:
        async with self._hash_slots:
            return await asyncio.to_thread(self._passwords.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        if not isinstance(password, str) or len(password) > _MAX_PASSWORD_INPUT:
            return False
        async with self._hash_slots:
            return await asyncio.to_thread(self._passwords.verify, password_hash, password)

    @staticmethod
    def _cleared_failures() -> dict[str, Any]:
        return {"failed_attempts": 0, "first_failed_at": None, "locked_until": None}

    def _count_failure(
        self, count: int, first_at: Optional[datetime.datetime], now: datetime.datetime
    ) -> tuple[int, Optional[datetime.datetime], Optional[datetime.datetime]]:
        """Add a failure; return the new (count, window start, locked until)."""
        if first_at is None or now - first_at >= self._failure_window:
            count, first_at = 0, now
        count += 1
        if count >= self._max_failures:
            return 0, None, now + self._lockout
        return count, first_at, None

    @staticmethod
    def _raise_locked(until: Optional[datetime.datetime]) -> NoReturn:
        when = _iso(until)
        raise RateLimited(
            f"too many failed logins: this account is locked until {when}; try again then, "
            "or ask an administrator to unlock it",
            errors=[{"field": "user_id", "message": "locked", "locked_until": when}],
        )

    async def _fail(self, account: Account, now: datetime.datetime, reason: str) -> NoReturn:
        """Count a failed login of ``account`` (persisted), then raise. Hold self._lock."""
        count, first_at, locked_until = self._count_failure(account.failed_attempts, account.first_failed_at, now)
        await self._save(replace(account, failed_attempts=count, first_failed_at=first_at, locked_until=locked_until))
        if locked_until is not None:
            logger.warning("account %s: %s; locked until %s", account.user_id, reason, _iso(locked_until))
            self._raise_locked(locked_until)
        logger.warning("account %s: login failed (%s), %d/%d", account.user_id, reason, count, self._max_failures)
        raise Unauthorized(BAD_CREDENTIALS)

    def _check_unknown_lock(self, user_id: str, now: datetime.datetime) -> None:
        """Raise RateLimited if an id with no account is "locked", like a real one would be."""
        strikes = self._unknown.get(user_id)
        if strikes is not None and strikes.locked_until is not None and now < strikes.locked_until:
            self._raise_locked(strikes.locked_until)

    def _fail_unknown(self, user_id: str, now: datetime.datetime) -> NoReturn:
        """Count a failed login of an id with no account, exactly like a real one, then raise."""
        strikes = self._unknown.pop(user_id, None) or _Strikes()
        strikes.count, strikes.first_at, strikes.locked_until = self._count_failure(
            strikes.count, strikes.first_at, now
        )
        self._unknown[user_id] = strikes
        while len(self._unknown) > _MAX_UNKNOWN_TRACKED:
            self._unknown.popitem(last=False)
        # %r and a length cap: the id is whatever the client sent.
        logger.warning("login failed for unknown user id %r", user_id[:64])
        if strikes.locked_until is not None:
            self._raise_locked(strikes.locked_until)
        raise Unauthorized(BAD_CREDENTIALS)

    async def _check_subject_free(self, subject: str, user_id: str) -> None:
        holder = await self.find_by_oidc_subject(subject)
        if holder is not None and holder.user_id != user_id:
            raise Conflict(
                f"that OIDC subject is already bound to account {holder.user_id!r}; "
                "unbind it there first"
            )

    async def _keep_an_admin(self, leaving: str) -> None:
        others = [a for a in await self.list() if a.user_id != leaving and a.enabled and "admin" in a.roles]
        if not others:
            raise Conflict(
                f"{leaving!r} is the last enabled admin; give another account the admin role first"
            )
