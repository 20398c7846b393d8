"""The workflow mix of the cluster suite: the fault suite's mix (10-node chains, fan-out +
merge, conditional and error branches, tests/faults/workflows.py) plus two kinds that fire
timers, so that the schedulers of several supervisors have timers to compete for:

- `wait`: start -> pause (wait 1 s) -> after; one wait timer fires.
- `merge-timeout`: start -> a and start -> slow (wait 3 s); a, slow -> join (wait_for_all,
  timeout 1 s) -> after. At low load the merge's timer fires first and fails the join (the
  execution halts), and slow's branch is absorbed when its wait ends, with or without its
  `success` (it is still running when the join fails or not). Under a backlog, slow may
  reach the join within the second after `a`: the join releases and the execution
  completes. Both are right; `resolve` picks the plan the completion shows, and either way
  every status and the completion must come exactly once.
"""

from __future__ import annotations

from dataclasses import replace

from runeworker.engine.local import start_message
from tests.faults.workflows import (
    SUCCESS,
    Planned,
    _definition,
    _edge,
    _log,
    _node,
)
from tests.faults.workflows import mix as fault_mix

FAILED = "failed"
COMPLETED = "completed"
HALTED = "halted"


def _wait() -> bytes:
    pause = _node("pause", "wait", amount=1, unit="seconds")
    nodes = [_node("start", "ManualTrigger"), pause, _log("after")]
    return _definition(nodes, [_edge("start", "pause"), _edge("pause", "after")])


def _merge_timeout() -> bytes:
    slow = _node("slow", "wait", amount=3, unit="seconds")
    join = _node("join", "merge", wait_mode="wait_for_all", timeout=1)
    nodes = [_node("start", "ManualTrigger"), _log("a"), slow, join, _log("after")]
    edges = [_edge("start", "a"), _edge("start", "slow"), _edge("a", "join")]
    return _definition(nodes, [*edges, _edge("slow", "join"), _edge("join", "after")])


WAIT, MERGE_TIMEOUT = _wait(), _merge_timeout()
# timers each kind fires
TIMERS = {"wait": 1, "merge-timeout": 2}


def _timed(kind: str) -> Planned:
    if kind == "wait":
        ok = {"pause": SUCCESS, "after": SUCCESS}
        return Planned(kind, start_message(WAIT), ok, COMPLETED)
    expected = {"a": SUCCESS, "join": FAILED}
    return Planned(kind, start_message(MERGE_TIMEOUT), expected, HALTED)


def resolve(plan: list[Planned], completions: dict[str, list[str]],
            terminal: dict[tuple[str, str], list[str]]) -> list[Planned]:  # fmt: skip
    """The plan with each merge-timeout execution's outcome picked by its completion, and
    slow's `success` expected when it was reported (once is right; twice is counted)."""
    out = []
    for p in plan:
        if p.kind == "merge-timeout":
            if completions.get(p.execution_id, [""])[0] == COMPLETED:
                ok = dict.fromkeys(("a", "slow", "join", "after"), SUCCESS)
                p = replace(p, statuses=ok, completion=COMPLETED)
            elif (p.execution_id, "slow") in terminal:
                p = replace(p, statuses={**p.statuses, "slow": SUCCESS})
        out.append(p)
    return out


def mix(count: int) -> list[Planned]:
    """`count` executions: two in six fire timers, the rest is the fault suite's mix."""
    plan: list[Planned] = []
    plain = iter(fault_mix(count))
    for i in range(count):
        slot = i % 6
        if slot == 4:
            plan.append(_timed("wait"))
        elif slot == 5:
            plan.append(_timed("merge-timeout"))
        else:
            plan.append(next(plain))
    return plan


def timers_expected(plan: list[Planned]) -> int:
    """How many timers the plan fires at most (a merge released in time cancels its own)."""
    return sum(TIMERS.get(p.kind, 0) for p in plan)
