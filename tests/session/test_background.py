"""Background.close ends its task even when the task swallows a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from session import background
from session.background import Background


async def test_close_cancels_again_a_task_that_swallowed_the_first_cancellation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.11's asyncio.wait_for returns a result that completes as its task is
    cancelled and swallows the cancellation; a loop around it carries on. Here the loop
    swallows its first cancellation itself."""
    monkeypatch.setattr(background, "CANCEL_RETRY_S", 0.05, raising=False)
    swallowed: list[int] = []

    async def run() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(1)  # and on it goes, as after wait_for's race

    task = Background()
    task.start(run)
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await task.close()
    assert swallowed and task.task is None
    await task.close()  # idempotent


async def test_close_of_a_task_that_failed_does_not_raise() -> None:
    async def run() -> None:
        raise RuntimeError("boom")

    task = Background()
    task.start(run)
    await asyncio.sleep(0)
    await task.close()


async def test_repeat_goes_on_after_a_step_that_fails(caplog: pytest.LogCaptureFixture) -> None:
    steps: list[int] = []

    async def step() -> None:
        steps.append(len(steps))
        if len(steps) == 2:
            raise RuntimeError("the store is down")

    task = Background()
    task.repeat(step, lambda: 0.01, "a test step")
    task.repeat(step, lambda: 0.01, "a second loop")  # idempotent: one loop
    async with asyncio.timeout(5):
        while len(steps) < 4:
            await asyncio.sleep(0.01)
    await task.close()
    assert "a test step failed" in caplog.text and "a second loop" not in caplog.text
