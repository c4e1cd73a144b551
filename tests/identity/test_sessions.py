"""Staff sessions: idle and absolute timeouts, logout, logout everywhere, limits, storage."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator

import pytest

from errors import Forbidden, Unauthorized
from identity.accounts import Account, Accounts
from identity.sessions import EXPIRED, SESSION_PREFIX, StaffSessions
from storage.local import LocalObjectStore
from storage.objects import ObjectStore
from tests.identity.conftest import OTHER_PASSWORD, PASSWORD, T0, code_for, seconds


@pytest.fixture
async def sessions(accounts: Accounts, store: LocalObjectStore) -> AsyncIterator[StaffSessions]:
    sessions = StaffSessions(accounts, store, touch_interval_s=0, sweep_interval_s=None)
    await sessions.start()
    yield sessions
    await sessions.close()


async def expect_expired(sessions: StaffSessions, token: str, now: object) -> None:
    with pytest.raises(Unauthorized) as caught:
        await sessions.resolve(token, now)  # type: ignore[arg-type]
    assert caught.value.detail == EXPIRED


async def test_open_and_resolve(sessions: StaffSessions, store: LocalObjectStore, inspector: Account) -> None:
    token = await sessions.open(inspector, T0)
    user_id, _, secret = token.rpartition(".")
    assert user_id == "zhang.san" and len(secret) == 43  # 256 bits, url-safe
    session = await sessions.resolve(token, T0 + seconds(1))
    assert session.user_id == "zhang.san" and session.method == "password"
    assert session.created_at == session.last_seen_at == T0
    assert session.expires_at == T0 + seconds(900)
    assert session.principal.permissions == {"query", "entry"}
    assert not session.password_change_required

    # Only the token's SHA-256 is stored.
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert await store.list(SESSION_PREFIX) == [f"{SESSION_PREFIX}zhang.san/{digest}.json"]
    assert secret.encode() not in await store.get(f"{SESSION_PREFIX}zhang.san/{digest}.json")


async def test_tokens_are_unique(sessions: StaffSessions, inspector: Account) -> None:
    assert await sessions.open(inspector, T0) != await sessions.open(inspector, T0)


@pytest.mark.parametrize(
    "forged",
    ["", "zhang.san", "zhang.san.", "zhang.san." + "A" * 43, "../x." + "A" * 43, "x" * 500, "zhang.san.short"],
)
async def test_forged_tokens_are_refused(sessions: StaffSessions, inspector: Account, forged: str) -> None:
    await sessions.open(inspector, T0)
    await expect_expired(sessions, forged, T0)


async def test_idle_timeout(sessions: StaffSessions, inspector: Account) -> None:
    token = await sessions.open(inspector, T0)
    await sessions.resolve(token, T0 + seconds(899))
    touched = await sessions.touch(token, T0 + seconds(899))
    assert touched.expires_at == T0 + seconds(899 + 900)
    await sessions.resolve(token, T0 + seconds(899 + 899))
    await expect_expired(sessions, token, T0 + seconds(899 + 900))
    # Gone for good, even if the clock went back.
    await expect_expired(sessions, token, T0 + seconds(900))


async def test_resolve_alone_is_not_activity(sessions: StaffSessions, inspector: Account) -> None:
    token = await sessions.open(inspector, T0)
    await sessions.resolve(token, T0 + seconds(600))
    await expect_expired(sessions, token, T0 + seconds(900))


async def test_absolute_timeout_despite_activity(sessions: StaffSessions, inspector: Account) -> None:
    token = await sessions.open(inspector, T0)
    at = T0
    while at < T0 + seconds(8 * 3600 - 600):
        at += seconds(600)
        session = await sessions.touch(token, at)
    assert session.expires_at == T0 + seconds(8 * 3600)
    await expect_expired(sessions, token, T0 + seconds(8 * 3600))


async def test_touch_writes_at_most_every_interval(accounts: Accounts, store: LocalObjectStore, inspector: Account) -> None:
    sessions = StaffSessions(accounts, store, touch_interval_s=60, sweep_interval_s=None)
    await sessions.start()
    token = await sessions.open(inspector, T0)
    assert (await sessions.touch(token, T0 + seconds(30))).last_seen_at == T0  # not written
    assert (await sessions.touch(token, T0 + seconds(60))).last_seen_at == T0 + seconds(60)
    assert (await sessions.resolve(token, T0 + seconds(61))).last_seen_at == T0 + seconds(60)
    await sessions.close()


async def test_logout(sessions: StaffSessions, inspector: Account) -> None:
    token = await sessions.open(inspector, T0)
    other = await sessions.open(inspector, T0)
    await sessions.close_session(token)
    await expect_expired(sessions, token, T0)
    await sessions.resolve(other, T0)  # only that one
    await sessions.close_session(token)  # twice is fine
    await sessions.close_session("garbage")
    with pytest.raises(Unauthorized):  # a closed session is not brought back by touch
        await sessions.touch(token, T0 + seconds(60))


async def test_logout_everywhere(sessions: StaffSessions, accounts: Accounts, inspector: Account) -> None:
    desk, laptop = await sessions.open(inspector, T0), await sessions.open(inspector, T0 + seconds(1))
    await accounts.create("li.si", "李四", ["reviewer"], PASSWORD)
    colleague = await sessions.open(await accounts.get("li.si"), T0)
    assert await sessions.close_all("zhang.san", T0 + seconds(2)) == 2
    await expect_expired(sessions, desk, T0 + seconds(3))
    await expect_expired(sessions, laptop, T0 + seconds(3))
    await sessions.resolve(colleague, T0 + seconds(3))
    fresh = await sessions.open(await accounts.get("zhang.san"), T0 + seconds(4))
    await sessions.resolve(fresh, T0 + seconds(5))


async def test_revocation_on_the_account_voids_sessions_kept_elsewhere(
    sessions: StaffSessions, accounts: Accounts, inspector: Account
) -> None:
    # Another node revoked (or the deletion was missed): the account's mark is enough.
    token = await sessions.open(inspector, T0)
    await accounts.revoke_sessions("zhang.san", T0 + seconds(1))
    await expect_expired(sessions, token, T0 + seconds(2))


async def test_password_reset_ends_sessions(sessions: StaffSessions, accounts: Accounts, inspector: Account) -> None:
    token = await sessions.open(inspector, T0)
    await accounts.reset_password("zhang.san", OTHER_PASSWORD, now=T0 + seconds(1))
    await expect_expired(sessions, token, T0 + seconds(2))


async def test_disabled_account_ends_sessions_and_cannot_open(
    sessions: StaffSessions, accounts: Accounts, inspector: Account
) -> None:
    token = await sessions.open(inspector, T0)
    disabled = await accounts.disable("zhang.san", now=T0 + seconds(1))
    await expect_expired(sessions, token, T0 + seconds(2))
    with pytest.raises(Forbidden, match="disabled"):
        await sessions.open(disabled, T0 + seconds(3))


async def test_role_changes_apply_to_open_sessions(sessions: StaffSessions, accounts: Accounts, inspector: Account) -> None:
    token = await sessions.open(inspector, T0)
    await accounts.set_roles("zhang.san", ["reviewer"])
    session = await sessions.resolve(token, T0 + seconds(1))
    assert session.roles == {"reviewer"} and "review" in session.principal.permissions


async def test_password_change_required_is_reported(sessions: StaffSessions, accounts: Accounts) -> None:
    account, _ = await accounts.create("li.si", "李四", ["reviewer"], PASSWORD, now=T0)
    token = await sessions.open(account, T0)
    assert (await sessions.resolve(token, T0)).password_change_required


async def test_at_most_three_sessions_per_account(sessions: StaffSessions, inspector: Account) -> None:
    tokens = [await sessions.open(inspector, T0 + seconds(i)) for i in range(3)]
    await sessions.touch(tokens[0], T0 + seconds(10))  # the first is now the most recently used
    fourth = await sessions.open(inspector, T0 + seconds(11))
    await expect_expired(sessions, tokens[1], T0 + seconds(12))
    for token in (tokens[0], tokens[2], fourth):
        await sessions.resolve(token, T0 + seconds(12))
    assert len(await sessions.sessions_of("zhang.san", T0 + seconds(12))) == 3


async def test_sweep_deletes_expired_sessions(sessions: StaffSessions, store: LocalObjectStore, inspector: Account) -> None:
    old = await sessions.open(inspector, T0)
    recent = await sessions.open(inspector, T0 + seconds(600))
    assert await sessions.sweep(T0 + seconds(1000)) == 1
    assert len(await store.list(SESSION_PREFIX)) == 1
    await sessions.resolve(recent, T0 + seconds(1000))
    await expect_expired(sessions, old, T0 + seconds(1000))


async def test_stored_sessions_survive_a_restart(object_store: ObjectStore, accounts: Accounts, inspector: Account) -> None:
    first = StaffSessions(accounts, object_store, sweep_interval_s=None)
    await first.start()
    token = await first.open(inspector, T0)
    await first.close()
    second = StaffSessions(accounts, object_store, sweep_interval_s=None)
    await second.start()
    assert (await second.resolve(token, T0 + seconds(60))).user_id == "zhang.san"
    assert await second.close_all("zhang.san", T0 + seconds(61)) == 1
    await second.close()


async def test_memory_sessions_end_with_the_process(accounts: Accounts, inspector: Account) -> None:
    sessions = StaffSessions(accounts, sweep_interval_s=None)
    assert sessions.in_memory
    await sessions.start()
    token = await sessions.open(inspector, T0)
    await sessions.resolve(token, T0)
    await sessions.close()
    await sessions.start()
    await expect_expired(sessions, token, T0)
    await sessions.close()


async def test_start_and_close_are_idempotent_and_own_the_sweeper(
    accounts: Accounts, store: LocalObjectStore, inspector: Account
) -> None:
    sessions = StaffSessions(accounts, store, sweep_interval_s=0.01, idle_timeout_s=0.05)
    with pytest.raises(RuntimeError, match="start"):
        await sessions.open(inspector)
    await sessions.start()
    await sessions.start()
    await sessions.open(inspector)
    assert len(await store.list(SESSION_PREFIX)) == 1
    for _ in range(100):  # the sweeper removes the idle session from the store
        await asyncio.sleep(0.02)
        if not await store.list(SESSION_PREFIX):
            break
    assert await store.list(SESSION_PREFIX) == []
    await sessions.close()
    await sessions.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "session-sweeper"]


async def test_secrets_never_reach_the_log(
    caplog: pytest.LogCaptureFixture, accounts: Accounts, sessions: StaffSessions
) -> None:
    caplog.set_level(logging.DEBUG)
    account, uri = await accounts.create("li.si", "李四", ["reviewer"], PASSWORD, id_number="370102199003071234", now=T0)
    code = code_for(account, T0)
    with pytest.raises(Unauthorized):
        await accounts.authenticate("li.si", OTHER_PASSWORD, code, T0)
    logged_in = await accounts.authenticate("li.si", PASSWORD, code, T0)
    with pytest.raises(Unauthorized):
        await accounts.authenticate("li.si", PASSWORD, code, T0)  # replay
    token = await sessions.open(logged_in, T0)
    await sessions.touch(token, T0 + seconds(1))
    await sessions.close_session(token)
    await accounts.reset_password("li.si", OTHER_PASSWORD, new_totp=True, now=T0 + seconds(2))
    assert "li.si" in caplog.text  # the log does say who
    secret_part = token.rpartition(".")[2]
    new_secret = (await accounts.get("li.si")).totp_secret
    for secret in (PASSWORD, OTHER_PASSWORD, account.totp_secret, new_secret, code, secret_part, uri, "370102199003071234"):
        assert secret not in caplog.text
