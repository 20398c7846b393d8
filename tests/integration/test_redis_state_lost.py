"""State lost from Redis (evicted, expired, flushed) is told, not run over: RedisStore against
the real Redis, keys deleted as an evicting Redis would delete them, and real TTL expiry.

Before: a step whose execution's keys were gone opened the execution again with its token as
the only live branch (a sibling was then stale, and the execution completed without it or never
completed), a token whose live set was gone was stale (dropped, silently), and an arrival at a
barrier whose keys were gone began it again (it then waited for arrivals that had come).

Every test works under its own key prefix and deletes its keys afterwards; the server is shared
(nothing of its configuration is changed: the eviction itself is tests/e2e/test_redis_faults.py,
on a redis-server of its own).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import redis

_UNIT = str(Path(__file__).resolve().parent.parent / "unit")
if _UNIT not in sys.path:
    sys.path.insert(0, _UNIT)

from statecases import (  # noqa: E402
    LOST,
    LOST_CASES,
    NOW,
    OPEN,
    T0,
    T1,
    ctx,
    failed_lost,
    fan_out,
    item,
    raises_lost,
    redis_evictor,
)

from runeworker.adapters.redis_state import RedisStore  # noqa: E402
from runeworker.child.scheduler import Scheduler  # noqa: E402
from runeworker.engine.barriers import AggregateArrival, MergeArrival  # noqa: E402
from runeworker.engine.merge_timer import timer_of  # noqa: E402
from runeworker.engine.state import (  # noqa: E402
    Admission,
    Arrived,
    Barrier,
    BarrierState,
    MergeRule,
    Timer,
    Verdict,
    child_token,
)
from runeworker.errors import StateLost  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def store(client: redis.Redis, prefix: str) -> RedisStore:
    return RedisStore(client, prefix=prefix, ttl_seconds=3600)


def exec_keys(client: redis.Redis, prefix: str, execution_id: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{prefix}exec:{{{execution_id}}}:*"))


@pytest.mark.parametrize("name", sorted(LOST_CASES))
def test_redis_store_state_lost(
    name: str, store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    LOST_CASES[name](store, redis_evictor(client, prefix))


def meta_key(prefix: str, execution_id: str) -> str:
    return f"{prefix}exec:{{{execution_id}}}:branches:meta"


def test_meta_evicted_after_the_end_leaves_late_messages_stale(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """The record of an ended execution evicted (meta: its `ended` mark, the failure of a
    failed one) while its closing record is left in `done`: a late message is stale, as it
    was before the eviction, and records nothing (no second completion). The same for an
    execution a worker without the mark closed."""
    a, b = fan_out(store, "ex", 2)
    assert store.advance("ex", a, [], ctx("a"), None, T1) == OPEN
    assert store.advance("ex", b, [], ctx("b"), None, T1).closed
    client.delete(meta_key(prefix, "ex"))
    late = child_token(b, 0, "late")
    assert store.admit("ex", late, T1) == Admission(Verdict.STALE, 0)
    c, d = fan_out(store, "ex-failed", 2)
    assert store.advance("ex-failed", c, [], None, LOST, T1).closed
    client.delete(meta_key(prefix, "ex-failed"))
    assert store.admit("ex-failed", d, T1) == Admission(Verdict.STALE, 0)
    e, f = fan_out(store, "ex-old", 2)
    assert store.advance("ex-old", e, [], ctx("e"), None, T1) == OPEN
    assert store.advance("ex-old", f, [], ctx("f"), None, T1).closed
    client.hdel(meta_key(prefix, "ex-old"), "ended")  # as a worker before the mark left it
    assert store.admit("ex-old", child_token(f, 0, "late"), T1) == Admission(Verdict.STALE, 3)


def test_records_evicted_after_the_end_leave_late_messages_stale_while_its_mark_lasts(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """Every record of an ended execution evicted but the mark of its end (meta, done, what
    else it kept): a late message is stale, records nothing, and its execution is not failed
    a second time. Seen in CI before the mark: two branches of one execution arrived at a
    merge 4 ms apart; the first found the execution's record evicted and failed it, Redis
    evicted that failure's meta and done, and the second failed it again (two completions).
    With the mark gone as well nothing tells the end from a loss: the late token finds the
    execution lost (what an evicting Redis can still do, tests/e2e/test_redis_faults.py)."""
    for ex, failure in (("ex-done", None), ("ex-failed", LOST)):
        a, b = fan_out(store, ex, 2)
        if failure is None:
            assert store.advance(ex, a, [], ctx("a"), None, T1) == OPEN
            assert store.advance(ex, b, [], ctx("b"), None, T1).closed
            late = child_token(b, 0, "late")
        else:
            assert store.advance(ex, a, [], None, failure, T1).closed
            late = b
        mark = f"{prefix}exec:{{{ex}}}:ended".encode()
        assert client.get(mark) == b"1"
        client.delete(*[k for k in exec_keys(client, prefix, ex) if k != mark])
        assert store.admit(ex, late, T1).verdict is Verdict.STALE
        assert store.advance(ex, late, [], ctx("late"), None, T1) == OPEN
        assert store.settle(ex, late, [], ctx("late"), None, T1, 100).verdict is Verdict.STALE
        client.delete(*exec_keys(client, prefix, ex))
        raises_lost(lambda ex=ex, late=late: store.admit(ex, late, T1), ex, "execution")


def test_meta_evicted_from_a_running_execution_is_lost(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """meta alone evicted from an execution still running (its live tokens left): its start,
    its step count, its failure and its barriers' marks are gone, so it is lost."""
    a, b = fan_out(store, "ex", 2)
    client.delete(meta_key(prefix, "ex"))
    raises_lost(lambda: store.advance("ex", a, [], ctx("a"), None, T1), "ex", "execution")
    assert store.advance("ex", a, [], None, LOST, T1) == failed_lost(T1)
    assert store.admit("ex", b, T1) == Admission(Verdict.CANCELLED, 1)


ALL2 = MergeRule(expected=2)


def merge_arrival(parent: str, rule: MergeRule = ALL2) -> MergeArrival:
    return MergeArrival("join", "", parent, ctx(parent), rule, NOW)


def merge_keys(client: redis.Redis, prefix: str, execution_id: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{prefix}exec:{{{execution_id}}}:node:join:*"))


def test_an_evicted_merge_barrier_is_lost_not_begun_again(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """`a` waits at the merge; its barrier is evicted; `b` arrives. Begun again, the barrier
    would wait for `a` for good (and, every branch absorbed, the execution complete without
    the merge). The arrival is told, writes nothing, and fails the execution once; its
    redelivery before that is told again."""
    a, b, c = fan_out(store, "ex", 3)
    waiting = store.arrive("ex", a, T1, 100, merge_arrival("a"), {"waiting": []})
    assert waiting == Arrived(Verdict.RUN, Barrier(BarrierState.WAITING, 1, first_ms=NOW), OPEN)
    client.delete(*merge_keys(client, prefix, "ex"))
    arrival = merge_arrival("b")
    for _ in range(2):
        with pytest.raises(StateLost, match="merge join barrier of execution ex is gone") as lost:
            store.arrive("ex", b, T1, 100, arrival, {"waiting": []})
        assert lost.value.what == "barrier"
    assert merge_keys(client, prefix, "ex") == []  # nothing begun again
    assert store.advance("ex", b, [], None, LOST, T1) == failed_lost(T0)
    late = store.arrive("ex", c, T1, 100, merge_arrival("c"), {"waiting": []})
    assert late.verdict is Verdict.CANCELLED


def test_a_decided_merge_whose_decision_is_evicted_is_lost_not_released_twice(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """wait_for_any: `a` releases the merge; its decision (the lock) is evicted; `b` comes
    late. It would release the merge a second time (a second continuation, a second
    completion); it is told instead."""
    a, b = fan_out(store, "ex", 2)
    rule = MergeRule(expected=2, any=True)
    released = store.arrive("ex", a, T1, 100, merge_arrival("a", rule), {"released": []})
    assert released.barrier is not None and released.barrier.state is BarrierState.RELEASED
    client.delete(f"{prefix}exec:{{ex}}:node:join:lock")
    raises_lost(
        lambda: store.arrive("ex", b, T1, 100, merge_arrival("b", rule), {"released": []}),
        "ex",
        "barrier",
    )


def test_an_evicted_aggregator_barrier_is_lost(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    a, b = fan_out(store, "ex", 2)
    first = AggregateArrival("split", "", 0, 2, item(0))
    assert store.arrive("ex", a, T1, 100, first, {"waiting": []}).barrier == Barrier(
        BarrierState.WAITING, 1
    )
    client.delete(f"{prefix}exec:{{ex}}:split:split:results")
    second = AggregateArrival("split", "", 1, 2, item(1))
    raises_lost(lambda: store.arrive("ex", b, T1, 100, second, {"waiting": []}), "ex", "barrier")


def test_a_merge_timer_firing_into_an_evicted_barrier_is_lost(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """The timeout timer of a merge fires (`merge_timer.fire`, an arrival of its own) after
    the barrier was evicted: it would begin the barrier again, find nothing to expire, and
    absorb its token quietly (the execution completing without the merge)."""
    a, _ = fan_out(store, "ex", 2)
    timed = MergeRule(expected=2, timeout_ms=60_000)
    store.arrive("ex", a, T1, 100, merge_arrival("a", timed), {"waiting": []})
    client.delete(*merge_keys(client, prefix, "ex"))
    timer = timer_of("ex", "join", "")
    fired = MergeRule(expected=1 << 30, timeout_ms=1)
    raises_lost(
        lambda: store.merge_arrive("ex", "join", "", "", timer.token, b"null", fired, 1 << 52),
        "ex",
        "barrier",
    )


def test_expired_execution_keys_are_lost(client: redis.Redis, prefix: str) -> None:
    """`redis.key_ttl` past the last call: the keys expire, and the next step is told."""
    store = RedisStore(client, prefix=prefix, ttl_seconds=1)
    a, _ = fan_out(store, "ex", 2)
    time.sleep(1.3)
    assert exec_keys(client, prefix, "ex") == []
    raises_lost(lambda: store.admit("ex", a, T1), "ex", "execution")


def test_a_merge_waiting_past_the_key_ttl_is_lost(client: redis.Redis, prefix: str) -> None:
    """`a` waits at a merge (no timeout) while `b` takes steps for longer than the TTL: every
    step refreshes the execution's branch keys, only arrivals the barrier's. The barrier
    expires; `b` then arrives: told, not begun again."""
    store = RedisStore(client, prefix=prefix, ttl_seconds=1)
    a, b = fan_out(store, "ex", 2)
    store.arrive("ex", a, T1, 100, merge_arrival("a"), {"waiting": []})
    token = b
    for i in range(4):
        time.sleep(0.4)
        nxt = child_token(token, 0, f"b{i}")
        assert store.advance("ex", token, [nxt], None, None, T1) == OPEN
        token = nxt
    assert merge_keys(client, prefix, "ex") == []  # expired
    raises_lost(
        lambda: store.arrive("ex", token, T1, 100, merge_arrival("b"), {"waiting": []}),
        "ex",
        "barrier",
    )


def test_a_due_timer_whose_message_is_gone_is_told(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """The scheduler's payloads hash evicted: a due timer has nothing to fire. It is returned
    without a payload, and the scheduler tells it instead of dropping it silently."""
    store.schedule("t1", NOW - 5, b"frozen")
    store.schedule("t2", NOW - 1, b"kept")
    client.hdel(prefix + "scheduler:payloads", "t1")
    assert store.claim_due(NOW, 10, 500) == [Timer("t1", b""), Timer("t2", b"kept")]
    store.ack_timer("t2")
    store.schedule("t3", NOW, b"frozen")
    client.delete(prefix + "scheduler:payloads")
    fired: list[bytes] = []
    lost: list[None] = []
    assert Scheduler(store, fired.append, on_lost=lambda: lost.append(None)).tick(NOW) == 0
    assert (fired, lost) == ([], [None])
    assert client.zcard(prefix + "scheduler:timers") == 0  # told once, not again
