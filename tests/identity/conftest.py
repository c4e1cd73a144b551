"""Fixtures of the identity tests: accounts on a local store with cheap argon2 parameters."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from identity import totp
from identity.accounts import Account, Accounts
from identity.passwords import HashParameters, Passwords
from storage.local import LocalObjectStore

#: Cheap argon2id parameters: the smallest argon2 accepts. Production uses 64 MiB, t=3.
FAST = HashParameters(time_cost=1, memory_cost_kib=8, parallelism=1)
#: A fixed clock: Monday 2 March 2026, 09:00:00 UTC (on a TOTP step boundary).
T0 = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.timezone.utc)
PASSWORD = "Kx9#mPq2$vLw"
OTHER_PASSWORD = "Zr7!tBn4&hJc"


def seconds(s: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=s)


def code_for(account: Account, at: datetime.datetime) -> str:
    """The code the account's authenticator app shows at ``at``."""
    return totp.code_at(account.totp_secret, totp.step_at(at))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "objects")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def accounts(store: LocalObjectStore) -> AsyncIterator[Accounts]:
    accounts = Accounts(store, passwords=Passwords(FAST))
    await accounts.start()
    yield accounts
    await accounts.close()


@pytest.fixture
async def inspector(accounts: Accounts) -> Account:
    """An enabled inspector 'zhang.san' (张三) who has changed the initial password."""
    account, _ = await accounts.create(
        "zhang.san", "张三", ["inspector"], PASSWORD, must_change_password=False, now=T0 - seconds(3600)
    )
    return account
