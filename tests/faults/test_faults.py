"""The fault-injection suite (issue 4, item 1) under pytest: `pytest -m faults`.

Each scenario of tests/faults/scenarios.py runs real `runeworker serve` processes against the
real RabbitMQ and Redis while a mix of workflows (linear 10-node chains, fan-out + merge
fan-in, conditional branches, error branches) runs, injects its faults, and must end with 0
completions missing, 0 duplicated, 0 with the wrong status, 0 node statuses duplicated or
missing, nothing left in any queue but the dead letters the scenario plans, and no
execution left open in Redis.

Size: RUNEWORKER_FAULTS_WORKFLOWS workflows per scenario, 500 by default (CI uses the
default; the whole suite takes about 5 minutes on a 2-core machine, the three stalls and
the broker's crash half of it). The same scenarios with their figures table:
`python -m tests.faults.report` (1000 workflows by default).
"""

from __future__ import annotations

import os
import uuid

import pytest

from runeworker.adapters.amqp import Broker, Delivery
from runeworker.adapters.redis_state import RedisStore
from runeworker.engine.barriers import Barrier, BarrierState, MergeRule
from runeworker.engine.state import MemoryStore, StateStore

from .scenarios import SCENARIOS
from .services import EXECUTION_QUEUE, SHARED_REDIS, delete_prefix

pytestmark = pytest.mark.faults

WORKFLOWS = int(os.environ.get("RUNEWORKER_FAULTS_WORKFLOWS", "500"))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_loses_duplicates_and_strands_nothing(name: str) -> None:
    figures = SCENARIOS[name].run(WORKFLOWS)
    assert not figures.problems(), figures.explain()
    assert figures.workflows >= WORKFLOWS


# -- the bugs the suite found, in their smallest form ---------------------------------------


def test_closing_the_broker_drops_the_buffered_deliveries() -> None:
    """Deliveries buffered on a connection that is gone are requeued by the broker: a worker
    that ran them while reconnecting repeated their side effects (and, with Redis down,
    took one failed step per buffered delivery before it noticed)."""
    broker = Broker("amqp://guest:guest@127.0.0.1:1/")
    broker.pending.extend(Delivery(tag, EXECUTION_QUEUE, b"{}", False) for tag in (1, 2))
    broker.close()
    assert list(broker.pending) == []


def _replayed_arrival_still_waits(store: StateStore) -> None:
    """A merge arrival counted while the barrier waited, replayed after the release (its
    step advanced in Redis, then the child died before the AMQP commit), reports `waiting`
    again, not `closed`: `closed` made the merge publish a second `success`."""
    rule, ex = MergeRule(expected=2), f"ex-{uuid.uuid4().hex[:8]}"

    def arrive(parent: str, token: str) -> Barrier:
        return store.merge_arrive(ex, "join", "", parent, token, b"{}", rule, 1_000)

    assert arrive("a", "ta") == Barrier(BarrierState.WAITING, 1, first_ms=1_000)
    released = Barrier(BarrierState.RELEASED, 2, ["a", "b"], [b"{}", b"{}"], 1_000)
    assert arrive("b", "tb") == released
    assert arrive("a", "ta") == Barrier(BarrierState.WAITING, 2, first_ms=1_000)
    assert arrive("b", "tb") == released
    assert arrive("a", "ta-2") == Barrier(BarrierState.CLOSED, 2, first_ms=1_000)


def test_replayed_merge_arrival_waits_in_memory() -> None:
    _replayed_arrival_still_waits(MemoryStore())


def test_replayed_merge_arrival_waits_in_redis() -> None:
    prefix = f"rwfaults:{uuid.uuid4().hex[:10]}:"
    store = RedisStore.from_url(SHARED_REDIS, prefix=prefix)
    try:
        _replayed_arrival_still_waits(store)
    finally:
        store.close()
        delete_prefix(SHARED_REDIS, prefix)
