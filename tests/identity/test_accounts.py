"""Accounts and Takan's own two-factor login: creation rules, failures, lockout, replay."""

from __future__ import annotations

import json

import pytest

from errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed
from identity import totp
from identity.accounts import BAD_CREDENTIALS, Account, Accounts
from identity.passwords import HashParameters, Passwords
from storage.local import LocalObjectStore
from storage.objects import ObjectStore
from tests.identity.conftest import FAST, OTHER_PASSWORD, PASSWORD, T0, code_for, seconds

# ---- creating ---------------------------------------------------------------------------


async def test_create_stores_a_record_and_returns_the_totp_uri(accounts: Accounts, store: LocalObjectStore) -> None:
    account, uri = await accounts.create(
        "li.si", "李四", ["reviewer", "approver"], PASSWORD, id_number="370102199003071234", phone="13800000000", now=T0
    )
    assert uri.startswith("otpauth://totp/Takan:li.si?secret=" + account.totp_secret)
    assert account.roles == {"reviewer", "approver"}
    assert account.enabled and account.must_change_password and account.failed_attempts == 0
    assert account.created_at == account.password_changed_at == T0

    raw = await store.get("records/accounts/li.si.json")
    stored = json.loads(raw)
    assert stored["real_name"] == "李四" and stored["id_number"] == "370102199003071234"
    assert stored["roles"] == ["reviewer", "approver"]
    assert stored["password_hash"].startswith("$argon2id$")
    assert PASSWORD.encode() not in raw
    assert await accounts.get("li.si") == account


def test_repr_hides_secrets_and_personal_data(inspector: Account) -> None:
    text = repr(inspector)
    assert "zhang.san" in text
    for hidden in (inspector.password_hash, inspector.totp_secret, inspector.real_name):
        assert hidden not in text


async def test_user_id_is_unique(accounts: Accounts, inspector: Account) -> None:
    with pytest.raises(Conflict, match="taken"):
        await accounts.create("zhang.san", "张三丰", ["reviewer"], OTHER_PASSWORD)


@pytest.mark.parametrize("bad_id", ["ab", "Zhang.San", "zhang san", "a" * 33, "张三", "../x", ""])
async def test_user_id_shape(accounts: Accounts, bad_id: str) -> None:
    with pytest.raises(ValidationFailed, match="user_id"):
        await accounts.create(bad_id, "张三", ["inspector"], PASSWORD)


async def test_weak_password_is_refused_with_every_problem(accounts: Accounts) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await accounts.create("wang.wu", "王五", ["inspector"], "wangwu1234")
    messages = [e["message"] for e in caught.value.errors]
    assert all(e["field"] == "password" for e in caught.value.errors)
    assert any("at least 12" in m for m in messages) and any("run of 4" in m for m in messages)
    assert await accounts.find("wang.wu") is None


@pytest.mark.parametrize(
    ("roles", "complaint"),
    [([], "at least one role"), (["boss"], "unknown role"), (["admin", "auditor"], "separation of duties")],
)
async def test_roles_are_checked(accounts: Accounts, roles: list[str], complaint: str) -> None:
    with pytest.raises(ValidationFailed, match=complaint):
        await accounts.create("wang.wu", "王五", roles, PASSWORD)


async def test_real_name_is_required(accounts: Accounts) -> None:
    with pytest.raises(ValidationFailed, match="real_name"):
        await accounts.create("wang.wu", "  ", ["inspector"], PASSWORD)


# ---- logging in -------------------------------------------------------------------------


async def test_login_with_password_and_code(accounts: Accounts, inspector: Account) -> None:
    account = await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, T0), T0)
    assert account.user_id == "zhang.san"
    assert account.totp_last_step == totp.step_at(T0)
    assert account.last_login_at == T0
    # The user id is matched case-insensitively.
    later = T0 + seconds(30)
    assert (await accounts.authenticate(" Zhang.San ", PASSWORD, code_for(inspector, later), later)).user_id == "zhang.san"


async def test_unknown_user_and_wrong_password_get_the_same_answer(accounts: Accounts, inspector: Account) -> None:
    code = code_for(inspector, T0)
    with pytest.raises(Unauthorized) as unknown:
        await accounts.authenticate("nobody", PASSWORD, code, T0)
    with pytest.raises(Unauthorized) as wrong:
        await accounts.authenticate("zhang.san", OTHER_PASSWORD, code, T0)
    with pytest.raises(Unauthorized) as malformed:
        await accounts.authenticate("../etc", PASSWORD, code, T0)
    assert unknown.value.detail == wrong.value.detail == malformed.value.detail == BAD_CREDENTIALS


async def test_wrong_code_gets_the_same_answer_and_counts(accounts: Accounts, inspector: Account) -> None:
    wrong_code = f"{(int(code_for(inspector, T0)) + 1) % 1_000_000:06d}"
    with pytest.raises(Unauthorized) as caught:
        await accounts.authenticate("zhang.san", PASSWORD, wrong_code, T0)
    assert caught.value.detail == BAD_CREDENTIALS
    assert (await accounts.get("zhang.san")).failed_attempts == 1


async def test_a_code_cannot_be_used_twice(accounts: Accounts, inspector: Account) -> None:
    code = code_for(inspector, T0)
    await accounts.authenticate("zhang.san", PASSWORD, code, T0)
    with pytest.raises(Unauthorized):
        await accounts.authenticate("zhang.san", PASSWORD, code, T0 + seconds(5))
    # Nor an older one still inside the drift window.
    with pytest.raises(Unauthorized):
        await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, T0 - seconds(30)), T0 + seconds(5))
    # The next one works.
    later = T0 + seconds(30)
    await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, later), later)


async def test_replay_survives_a_restart(store: LocalObjectStore, accounts: Accounts, inspector: Account) -> None:
    code = code_for(inspector, T0)
    await accounts.authenticate("zhang.san", PASSWORD, code, T0)
    other_node = Accounts(store, passwords=Passwords(FAST))
    await other_node.start()
    with pytest.raises(Unauthorized):
        await other_node.authenticate("zhang.san", PASSWORD, code, T0)
    await other_node.close()


async def test_success_resets_the_failure_count(accounts: Accounts, inspector: Account) -> None:
    for _ in range(4):
        with pytest.raises(Unauthorized):
            await accounts.authenticate("zhang.san", OTHER_PASSWORD, code_for(inspector, T0), T0)
    assert (await accounts.get("zhang.san")).failed_attempts == 4
    account = await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, T0), T0)
    assert account.failed_attempts == 0 and account.first_failed_at is None
    for _ in range(4):  # four more do not lock
        with pytest.raises(Unauthorized):
            await accounts.authenticate("zhang.san", OTHER_PASSWORD, "000000", T0 + seconds(60))


async def test_five_failures_lock_for_fifteen_minutes(accounts: Accounts, inspector: Account) -> None:
    for i in range(4):
        with pytest.raises(Unauthorized):
            await accounts.authenticate("zhang.san", OTHER_PASSWORD, "000000", T0 + seconds(i))
    with pytest.raises(RateLimited) as fifth:
        await accounts.authenticate("zhang.san", OTHER_PASSWORD, "000000", T0 + seconds(60))
    unlock = T0 + seconds(60 + 15 * 60)
    assert "2026-03-02T09:16:00" in fifth.value.detail
    assert fifth.value.errors[0]["locked_until"] == "2026-03-02T09:16:00.000000Z"
    assert (await accounts.get("zhang.san")).locked_until == unlock

    # Locked: even the right password and code are refused, and nothing is consumed.
    just_before = unlock - seconds(1)
    with pytest.raises(RateLimited):
        await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, just_before), just_before)
    # Expired: the right credentials work again.
    account = await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, unlock), unlock)
    assert account.locked_until is None and account.failed_attempts == 0


async def test_wrong_codes_count_towards_the_lockout(accounts: Accounts, inspector: Account) -> None:
    for i in range(4):
        with pytest.raises(Unauthorized):
            await accounts.authenticate("zhang.san", PASSWORD, "000000" if i % 2 else "999999", T0 + seconds(i))
    with pytest.raises(RateLimited):
        await accounts.authenticate("zhang.san", PASSWORD, "123123", T0 + seconds(5))


async def test_failures_spread_beyond_the_window_do_not_lock(accounts: Accounts, inspector: Account) -> None:
    for i in range(4):
        with pytest.raises(Unauthorized):
            await accounts.authenticate("zhang.san", OTHER_PASSWORD, "000000", T0 + seconds(i))
    later = T0 + seconds(15 * 60)  # the window of the first failure is over
    for i in range(4):
        with pytest.raises(Unauthorized):
            await accounts.authenticate("zhang.san", OTHER_PASSWORD, "000000", later + seconds(i))
    assert (await accounts.get("zhang.san")).failed_attempts == 4


async def test_unknown_ids_lock_like_real_ones(accounts: Accounts) -> None:
    # Otherwise "never locks" would tell an attacker which ids do not exist.
    for i in range(4):
        with pytest.raises(Unauthorized):
            await accounts.authenticate("ghost", PASSWORD, "000000", T0 + seconds(i))
    with pytest.raises(RateLimited):
        await accounts.authenticate("ghost", PASSWORD, "000000", T0 + seconds(5))
    with pytest.raises(RateLimited):
        await accounts.authenticate("ghost", PASSWORD, "000000", T0 + seconds(6))
    with pytest.raises(Unauthorized):
        await accounts.authenticate("ghost", PASSWORD, "000000", T0 + seconds(5 + 15 * 60))


async def test_admin_can_unlock(accounts: Accounts, inspector: Account) -> None:
    for i in range(5):
        with pytest.raises((Unauthorized, RateLimited)):
            await accounts.authenticate("zhang.san", OTHER_PASSWORD, "000000", T0 + seconds(i))
    await accounts.unlock("zhang.san")
    at = T0 + seconds(30)
    await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, at), at)


async def test_disabled_account_is_refused(accounts: Accounts, inspector: Account) -> None:
    await accounts.disable("zhang.san", now=T0)
    with pytest.raises(Forbidden, match="disabled"):
        await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, T0), T0)
    # Wrong credentials on a disabled account say no more than on any other.
    with pytest.raises(Unauthorized):
        await accounts.authenticate("zhang.san", OTHER_PASSWORD, code_for(inspector, T0), T0)
    await accounts.enable("zhang.san")
    at = T0 + seconds(30)
    assert (await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, at), at)).enabled


async def test_login_upgrades_an_outdated_hash(store: LocalObjectStore, accounts: Accounts, inspector: Account) -> None:
    stronger = Accounts(store, passwords=Passwords(HashParameters(time_cost=2, memory_cost_kib=16, parallelism=1)))
    await stronger.start()
    account = await stronger.authenticate("zhang.san", PASSWORD, code_for(inspector, T0), T0)
    assert account.password_hash.startswith("$argon2id$v=19$m=16,t=2,p=1$")
    assert (await stronger.get("zhang.san")).password_hash == account.password_hash
    at = T0 + seconds(30)
    await stronger.authenticate("zhang.san", PASSWORD, code_for(inspector, at), at)
    await stronger.close()


# ---- administering ----------------------------------------------------------------------


async def test_reset_password(accounts: Accounts, inspector: Account) -> None:
    assert await accounts.reset_password("zhang.san", OTHER_PASSWORD, now=T0) is None
    account = await accounts.get("zhang.san")
    assert account.must_change_password and account.sessions_revoked_at == T0
    assert accounts.needs_password_change(account, T0)
    with pytest.raises(Unauthorized):
        await accounts.authenticate("zhang.san", PASSWORD, code_for(inspector, T0), T0)
    at = T0 + seconds(30)
    await accounts.authenticate("zhang.san", OTHER_PASSWORD, code_for(inspector, at), at)


async def test_reset_password_with_a_new_totp_secret(accounts: Accounts, inspector: Account) -> None:
    uri = await accounts.reset_password("zhang.san", OTHER_PASSWORD, new_totp=True, now=T0)
    assert uri is not None
    account = await accounts.get("zhang.san")
    assert account.totp_secret != inspector.totp_secret and account.totp_secret in uri
    with pytest.raises(Unauthorized):  # the lost phone's code
        await accounts.authenticate("zhang.san", OTHER_PASSWORD, code_for(inspector, T0), T0)
    at = T0 + seconds(30)
    await accounts.authenticate("zhang.san", OTHER_PASSWORD, code_for(account, at), at)


async def test_reset_password_checks_complexity(accounts: Accounts, inspector: Account) -> None:
    with pytest.raises(ValidationFailed):
        await accounts.reset_password("zhang.san", "Zhangsan@2026")
    with pytest.raises(NotFound):
        await accounts.reset_password("nobody", OTHER_PASSWORD)


async def test_change_password(accounts: Accounts) -> None:
    await accounts.create("li.si", "李四", ["reviewer"], PASSWORD, now=T0)
    assert accounts.needs_password_change(await accounts.get("li.si"), T0)
    with pytest.raises(Unauthorized):
        await accounts.change_password("li.si", OTHER_PASSWORD, "Qm4%rTz8*wNk", T0)
    with pytest.raises(ValidationFailed, match="differ"):
        await accounts.change_password("li.si", PASSWORD, PASSWORD, T0)
    changed = await accounts.change_password("li.si", PASSWORD, OTHER_PASSWORD, T0 + seconds(10))
    assert not changed.must_change_password and changed.failed_attempts == 0
    assert changed.password_changed_at == changed.sessions_revoked_at == T0 + seconds(10)
    assert not accounts.needs_password_change(changed, T0 + seconds(20))


async def test_password_expires_after_ninety_days(accounts: Accounts, inspector: Account) -> None:
    assert not accounts.needs_password_change(inspector, inspector.password_changed_at + seconds(89 * 86400))
    assert accounts.needs_password_change(inspector, inspector.password_changed_at + seconds(91 * 86400))


async def test_set_roles_and_last_admin(accounts: Accounts, inspector: Account) -> None:
    await accounts.create("admin.1", "管理员", ["admin"], PASSWORD)
    assert (await accounts.set_roles("zhang.san", ["inspector", "reviewer"])).roles == {"inspector", "reviewer"}
    with pytest.raises(Conflict, match="last enabled admin"):
        await accounts.set_roles("admin.1", ["reviewer"])
    with pytest.raises(Conflict, match="last enabled admin"):
        await accounts.disable("admin.1")
    await accounts.set_roles("zhang.san", ["admin"])
    await accounts.disable("admin.1")
    with pytest.raises(ValidationFailed):
        await accounts.set_roles("zhang.san", ["admin", "auditor"])


async def test_revoke_sessions_marks_the_account(accounts: Accounts, inspector: Account) -> None:
    assert (await accounts.revoke_sessions("zhang.san", T0)).sessions_revoked_at == T0


async def test_oidc_subject_binding(accounts: Accounts, inspector: Account) -> None:
    await accounts.create("li.si", "李四", ["reviewer"], PASSWORD, oidc_subject="gov-42")
    assert (await accounts.find_by_oidc_subject("gov-42") or inspector).user_id == "li.si"
    with pytest.raises(Conflict, match="already bound"):
        await accounts.set_oidc_subject("zhang.san", "gov-42")
    await accounts.set_oidc_subject("zhang.san", "gov-7")
    assert (await accounts.find_by_oidc_subject("gov-7") or inspector).user_id == "zhang.san"
    await accounts.set_oidc_subject("zhang.san", None)
    assert await accounts.find_by_oidc_subject("gov-7") is None
    assert await accounts.find_by_oidc_subject("") is None


async def test_list_and_get(accounts: Accounts, inspector: Account) -> None:
    await accounts.create("admin.1", "管理员", ["admin"], PASSWORD)
    assert [a.user_id for a in await accounts.list()] == ["admin.1", "zhang.san"]
    with pytest.raises(NotFound, match="no account 'nobody'"):
        await accounts.get("nobody")
    assert await accounts.find("Not Valid") is None


async def test_start_and_close_are_idempotent(store: LocalObjectStore) -> None:
    accounts = Accounts(store, passwords=Passwords(FAST))
    with pytest.raises(RuntimeError, match="start"):
        await accounts.list()
    await accounts.start()
    await accounts.start()
    assert await accounts.list() == []
    await accounts.close()
    await accounts.close()


async def test_naive_datetimes_are_refused(accounts: Accounts, inspector: Account) -> None:
    with pytest.raises(ValueError, match="aware"):
        await accounts.authenticate("zhang.san", PASSWORD, "000000", T0.replace(tzinfo=None))


async def test_accounts_persist_on_every_backend(object_store: ObjectStore) -> None:
    accounts = Accounts(object_store, passwords=Passwords(FAST))
    await accounts.start()
    account, _ = await accounts.create("li.si", "李四", ["auditor"], PASSWORD, phone="13800000000", now=T0)
    await accounts.close()
    restarted = Accounts(object_store, passwords=Passwords(FAST))
    await restarted.start()
    assert await restarted.get("li.si") == account
    logged_in = await restarted.authenticate("li.si", PASSWORD, code_for(account, T0), T0)
    assert logged_in.principal.permissions == {"query", "query_all", "audit_read"}
    await restarted.close()


async def test_malformed_login_input_is_just_a_failed_login(accounts: Accounts, inspector: Account) -> None:
    for user_id, password, code in [(None, PASSWORD, "123456"), ("zhang.san", None, "123456"), ("zhang.san", PASSWORD, None)]:
        with pytest.raises(Unauthorized):
            await accounts.authenticate(user_id, password, code, T0)  # type: ignore[arg-type]
    with pytest.raises(Unauthorized):
        await accounts.authenticate("zhang.san", "x" * 100_000, code_for(inspector, T0), T0)
