"""Judgement time per inspection (aim: p99 under 50 ms; 8.3.4 allows 45 s).

Builds 1000 inspections across the three shipped checklist templates (each a realistic
event log: prompts, stills, photos, locations, reconnections, signatures, timer events;
about a third of them with something wrong), turns each into facts with ``facts_from``
and judges it with the shipped rules through ``judge`` (worker thread, timeout), one after
another as the server would. Prints p50/p95/p99/max of the judgement time (the await
around ``judge``), of ``facts_from``, and the outcomes. Results: approval/rules/README.md.

    .venv/bin/python bench/judge.py [--inspections 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from approval.rules import RuleBook, facts_from, judge  # noqa: E402
from approval.templates import Templates  # noqa: E402
from testkit import scenarios  # noqa: E402

EDITS = [
    scenarios.no_evidence("storefront"),
    scenarios.unsigned("applicant"),
    scenarios.no_location,
    scenarios.far_away,
    scenarios.overtime(None),
    scenarios.overtime("申请人网络中断，恢复后继续"),
    scenarios.on_warning_list,
    scenarios.reconnects(4),
    scenarios.site_without_coordinates,
]


def inspection(rng: random.Random, templates: Templates) -> scenarios.Scenario:
    template = rng.choice(templates.all())
    s = scenarios.Scenario.clean(template)
    for code in rng.sample([c.code for c in template.checkpoints], k=3):  # re-takes: more evidence
        s.log(rng.uniform(60, 1200), "still.captured", "inspector", {"checkpoint": code, "source": "server"})
    for n in range(rng.randint(0, 12)):  # the phone reports its position now and then
        s.log(40 + n * 90, "location.updated", "applicant", {"lat": 37.4356, "lon": 116.3596, "accuracy_m": 15,
                                                           "distance_m": round(rng.uniform(5, 120), 1), "within_radius": True})
    if rng.random() < 0.35:
        for edit in rng.sample(EDITS, k=rng.randint(1, 2)):
            edit(s)
    return s


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"p50 {at(0.50):.3f} ms, p95 {at(0.95):.3f} ms, p99 {at(0.99):.3f} ms, max {ordered[-1]:.3f} ms"


async def main(count: int, seed: int) -> None:
    rng = random.Random(seed)
    templates = Templates()
    started = time.perf_counter()
    book = RuleBook()
    load_ms = (time.perf_counter() - started) * 1000
    cases = [inspection(rng, templates) for _ in range(count)]
    facts_ms: list[float] = []
    judge_ms: list[float] = []
    outcomes: collections.Counter[str] = collections.Counter()
    await judge(book.find("food-business-license"), cases[0].facts())  # warm the thread pool
    for case in cases:
        record, events, warnings = case.record(), case.events, case.warnings
        t0 = time.perf_counter()
        facts = facts_from(record, events, warnings, template=case.template)
        t1 = time.perf_counter()
        verdict = await judge(book.find(facts["item_code"]), facts)
        t2 = time.perf_counter()
        facts_ms.append((t1 - t0) * 1000)
        judge_ms.append((t2 - t1) * 1000)
        outcomes[verdict.outcome] += 1
    rules = sum(len(r.rules) for r in book.all())
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"rule book: {len(book.all())} items, {rules} rules, loaded and compiled in {load_ms:.1f} ms")
    print(f"{count} inspections, {sum(len(c.events) for c in cases) / count:.0f} events each on average")
    print(f"judge:      {percentiles(judge_ms)}")
    print(f"facts_from: {percentiles(facts_ms)}")
    print("outcomes:   " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inspections", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.inspections, args.seed))
