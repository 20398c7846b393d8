"""Dead letters replayed at a barrier (`runeworker dlq replay`) on the real Redis: the step
records the arrival by calls of its own (`flow.Step.arrive` without the ledger's single
`StateStore.arrive`), through RedisStore's merge and aggregator scripts. The same scenarios on
MemoryStore: tests/unit/test_flow_edges.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis

_UNIT = str(Path(__file__).resolve().parent.parent / "unit")
if _UNIT not in sys.path:
    sys.path.insert(0, _UNIT)

from flowkit import start  # noqa: E402
from test_flow_edges import (  # noqa: E402
    NOW_MS,
    at,
    fan_in,
    merge_arrivals,
    split_to_aggregator,
    status_of,
)

from runeworker.adapters.redis_state import RedisStore  # noqa: E402
from runeworker.engine.executor import Executor  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def executor(client: redis.Redis, prefix: str) -> Executor:
    store = RedisStore(client, prefix=prefix, ttl_seconds=3600)
    return Executor(store, clock=lambda: NOW_MS * 1_000_000)


def test_a_replayed_merge_arrival_that_waits_arms_the_timer_and_the_other_releases(
    executor: Executor,
) -> None:
    from_a, from_b = merge_arrivals(executor, fan_in(timeout="2.5"))
    waited = at(executor, from_a, replayed=True)
    assert status_of(waited)[0] == "waiting"
    assert executor.store.next_due() == NOW_MS + 2_500
    released = at(executor, from_b, replayed=True)
    state, output = status_of(released)
    assert state == "success" and output["_merge_sources"] == ["a", "b"]
    [to_c] = released.messages
    assert executor.store.next_due() is None
    done = at(executor, to_c)
    assert done.completion is not None and done.completion.status == "completed"


def test_two_replayed_arrivals_at_a_wait_for_any_merge_release_it_once(
    executor: Executor,
) -> None:
    from_a, from_b = merge_arrivals(executor, fan_in(wait_mode="wait_for_any"))
    won = at(executor, from_a, replayed=True)
    assert [m.current_node for m in won.messages] == ["c"]
    late = at(executor, from_b, replayed=True)
    assert status_of(late) == ("success", {"_merge_ignored": True})
    assert (late.messages, late.completion) == ([], None)


def test_a_replayed_aggregator_arrival_releases_the_items_in_order(executor: Executor) -> None:
    first, second = at(executor, start(split_to_aggregator(["x", "y"]), "split")).messages
    assert at(executor, second, replayed=True).statuses[-1].aggregator_state == "waiting"
    released = at(executor, first, replayed=True)
    assert released.statuses[-1].output == {
        "aggregated": ["x", "y"], "_aggregator_processed_count": 2}  # fmt: skip
    assert released.completion is not None and released.completion.status == "completed"
