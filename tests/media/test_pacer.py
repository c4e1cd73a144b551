"""The subscriber's pacer on its own (media/pacer.py): slots on a budget, bounded waits."""

from __future__ import annotations

import pytest

from media.pacer import BURST_S, MAX_WAIT_S, PACING_FACTOR, Pacer


def test_no_cap_no_wait() -> None:
    pacer = Pacer(lambda: None)
    assert all(pacer.wait(1200, 1.0) == 0.0 for _ in range(100))
    assert pacer.paced == 0


def test_a_keyframe_is_spread_at_the_factor_times_the_cap() -> None:
    cap = 200_000.0
    pacer = Pacer(lambda: cap)
    # 25 packets of 1,200 bytes arrive at once (a 30 kB keyframe)
    waits = [pacer.wait(1200, 10.0) for _ in range(25)]
    slot = 1200 * 8 / (cap * PACING_FACTOR)
    # the first few fit in the burst allowance, the rest wait for their slots
    assert waits[0] == 0.0
    assert waits[5] == pytest.approx(5 * slot)
    assert waits[-1] == pytest.approx(min(24 * slot, MAX_WAIT_S))
    assert pacer.paced == sum(1 for w in waits if w > 0)


def test_a_steady_stream_under_the_budget_never_waits() -> None:
    cap = 300_000.0
    pacer = Pacer(lambda: cap)
    now = 0.0
    for _ in range(1000):  # 1,000-byte packets at 240 kb/s, under the cap itself
        assert pacer.wait(1000, now) == 0.0
        now += 1000 * 8 / 240_000
    assert pacer.paced == 0


def test_waits_are_bounded_and_a_burst_under_the_allowance_goes_at_once() -> None:
    pacer = Pacer(lambda: 50_000.0)
    waits = [pacer.wait(1200, 0.0) for _ in range(200)]
    assert max(waits) <= MAX_WAIT_S + 1e-9
    small = Pacer(lambda: 10_000_000.0)  # a fast link: a slot is ~0.5 ms
    assert [small.wait(1200, 0.0) for _ in range(int(BURST_S / (1200 * 8 / 20e6)))] == [0.0] * int(BURST_S / (1200 * 8 / 20e6))


def test_the_budget_restarts_when_the_cap_goes() -> None:
    rate: list[float | None] = [100_000.0]
    pacer = Pacer(lambda: rate[0])
    for _ in range(20):
        pacer.wait(1200, 0.0)
    rate[0] = None
    assert pacer.wait(1200, 0.0) == 0.0
    rate[0] = 100_000.0
    assert pacer.wait(1200, 0.0) == 0.0  # no debt left from before
