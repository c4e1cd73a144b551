"""Judging an inspection: its facts against its item's rules, within a time limit.

8.3.4: a judgement should take at most 45 s, and one past 2 minutes is an error that goes
to manual review. The rules run in a worker thread so the event loop keeps serving; on the
timeout the judge stops waiting, tells the worker to stop before its next rule, and gives
``manual_review`` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Optional

from .ruleset import Outcome, Rule, RuleSet
from .verdict import Reason, Verdict

logger = logging.getLogger(__name__)

TIMEOUT_S = 120.0  # 8.3.4: past 2 minutes a judgement errors
SLOW_S = 45.0  # 8.3.4: a judgement should take at most 45 s
TIMEOUT_RULE = "judge.timeout"
NO_RULES_RULE = "judge.no_rules"
ERROR_RULE = "judge.error"
ABANDONED_RULE = "judge.abandoned"


async def judge(
    rules: Optional[RuleSet],
    facts: Mapping[str, Any],
    timeout_s: float = TIMEOUT_S,
    *,
    on_rule: Optional[Callable[[Rule], None]] = None,
) -> Verdict:
    """The verdict of ``rules`` on ``facts``; never raises for what the rules cannot decide.

    ``rules`` is ``None`` when the item has no rule set (manual review). ``on_rule`` is
    called in the worker thread before each rule.
    """
    started = time.perf_counter()
    item = facts.get("item_code")
    if rules is None:
        reason = Reason(NO_RULES_RULE, f"审批事项 {item} 没有判定规则，转人工审核",
                        f"no rules for item {item!r}; a person decides", "error")
        return Verdict.of([reason], None, _ms_since(started))
    stop = threading.Event()
    try:
        outcomes = await asyncio.wait_for(
            asyncio.to_thread(rules.evaluate, facts, stop=stop, on_rule=on_rule), timeout_s
        )
    except TimeoutError:
        logger.error("judgement of %s with %s timed out after %.1f s", item, rules.rules_version, timeout_s)
        reason = Reason(TIMEOUT_RULE, f"判定超过 {timeout_s:g} 秒未完成，转人工审核",
                        f"the judgement took longer than {timeout_s:g} s; a person decides", "error")
        return Verdict.of([reason], rules.rules_version, _ms_since(started))
    except Exception as exc:  # a bug must not lose the inspection: people decide (5.6)
        logger.exception("judgement of %s with %s failed", item, rules.rules_version)
        reason = Reason(ERROR_RULE, f"判定出错（{exc}），转人工审核", f"the judgement failed ({exc}); a person decides", "error")
        return Verdict.of([reason], rules.rules_version, _ms_since(started))
    finally:
        stop.set()  # a cancelled or timed-out judgement's worker stops before its next rule
    reasons = [r for r in map(_reason, outcomes) if r is not None]
    if facts.get("end_reason") == "abandoned":
        # nobody ended it: whatever the evidence says, a person decides (5.6)
        reasons.append(Reason(ABANDONED_RULE, "踏勘无人结束（参与者离开后未返回），转人工审核",
                              "nobody ended the session (the participants left and did not come back); a person decides", "error"))
    verdict = Verdict.of(reasons, rules.rules_version, _ms_since(started))
    if verdict.duration_ms > SLOW_S * 1000:
        logger.warning("judgement of %s with %s took %.1f s (over %g s)", item, rules.rules_version, verdict.duration_ms / 1000, SLOW_S)
    return verdict


def _reason(outcome: Outcome) -> Optional[Reason]:
    rule = outcome.rule
    if outcome.satisfied:
        return None
    if outcome.error is not None:
        if outcome.error.missing is not None:
            missing = outcome.error.missing
            return Reason(rule.id, f"缺少事实“{missing}”，无法判定“{rule.description}”，转人工审核",
                          f"fact {missing!r} is missing, so {rule.description_en!r} cannot be judged; a person decides", "error")
        return Reason(rule.id, f"规则“{rule.description}”执行出错（{outcome.error.message}），转人工审核",
                      f"the rule {rule.description_en!r} failed to run ({outcome.error.message}); a person decides", "error")
    suffix = f"（{outcome.detail}）" if outcome.detail else ""
    suffix_en = f" ({outcome.detail})" if outcome.detail else ""
    return Reason(rule.id, f"未满足：{rule.description}{suffix}", f"not satisfied: {rule.description_en}{suffix_en}", rule.severity)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
