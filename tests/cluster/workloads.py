"""The workflow mix of the cluster suite: the fault suite's mix (10-node chains, fan-out +
merge, conditional and error branches, tests/faults/workflows.py) plus two kinds that fire
timers, so that the schedulers of several supervisors have timers to compete for:

- `wait`: start -> pause (wait 1 s) -> after; one wait timer fires.
- `merge-timeout`: start -> a and start -> slow (wait 3 s); a, slow -> join (wait_for_all,
  timeout 1 s) -> after. The merge's timer fires first and fails the join (the execution
  halts); slow's wait timer fires later and its branch is absorbed. Two timers fire.
"""

from __future__ import annotations

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
    """How many timers the plan fires in all."""
    return sum(TIMERS.get(p.kind, 0) for p in plan)
