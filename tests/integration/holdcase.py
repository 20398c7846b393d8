"""A wait or merge timer holds its execution's keys in Redis (runeworker/adapters/redis_flow.py,
`hold_execution`): shared by tests/integration/test_redis_state.py (one server) and
tests/cluster/test_cluster.py (a Redis Cluster, where the owner's part runs in a script of its
own)."""

from __future__ import annotations

import time
from typing import Any

from runeworker.adapters.redis_flow import EXECUTION_KEYS
from runeworker.adapters.redis_state import RedisStore
from runeworker.engine.barriers import MergeRule


def expiries(client: Any, store: RedisStore, execution_id: str) -> dict[str, int]:
    """Each existing key of the execution (`keys_of`, and the barriers its registry names)
    with its expiry instant in epoch ms (-1: none)."""
    keys = dict(zip(EXECUTION_KEYS, store.keys_of(execution_id), strict=True))
    names = [*keys.values(), *(k.decode() for k in client.smembers(keys["barriers"]))]
    return {k: client.pexpiretime(k) for k in names if client.exists(k)}


def timer_holds_its_execution(store: RedisStore, client: Any, ttl: int) -> None:
    """A timer due beyond the TTL moves every key of its execution to its due time + the TTL,
    barriers made before it included; later calls, barriers made later and earlier timers
    shorten nothing; a later timer moves them on; the hold key goes when the latest timer is
    due; a timer due already holds nothing (the TTL from now outlasts it)."""
    ex = f"held-{time.monotonic_ns()}"
    hold_key = store.keys_of(ex)[EXECUTION_KEYS.index("hold")]
    assert store.admit(ex, "root", time.time_ns()).steps == 0  # the branch keys exist
    store.aggregate(ex, "split", "", 0, 2, "t0", b'"item"')  # a barrier before the timer
    now = int(time.time() * 1000)
    due = now + 2 * ttl * 1000
    store.schedule("wait-1", due, b"frozen 1", owner=ex)
    held = expiries(client, store, ex)
    assert client.get(hold_key) == str(due + ttl * 1000).encode()
    assert held.pop(hold_key) == due
    short = {k.split(f"{{{ex}}}:", 1)[1] for k in held}
    assert short == {"branches:live", "branches:meta", "branches:timers", "barriers",
                     "split:split:results"}  # fmt: skip
    assert set(held.values()) == {due + ttl * 1000}, held

    store.merge_arrive(ex, "merge", "", "a", "ta", b"{}", MergeRule(expected=2), now)
    store.schedule("wait-2", now + 60_000, b"frozen 2", owner=ex)  # earlier: changes nothing
    store.advance(ex, "root", ["c1", "c2"], None, None, time.time_ns())
    held = expiries(client, store, ex)
    assert held.pop(hold_key) == due
    merge = {f"node:merge:barrier:{k}" for k in ("arrivals", "data", "first", "waited")}
    assert {k.split(f"{{{ex}}}:", 1)[1] for k in held} == short | merge | {"branches:done"}
    assert set(held.values()) == {due + ttl * 1000}, held

    later = due + 3_600_000
    store.schedule("wait-3", later, b"frozen 3", owner=ex)
    held = expiries(client, store, ex)
    assert held.pop(hold_key) == later
    assert set(held.values()) == {later + ttl * 1000}, held

    first = f"{ex}-first"  # a single-branch execution whose first step is a wait
    store.begin(first, time.time_ns())
    store.schedule("wait-6", due, b"frozen 6", owner=first)
    held = expiries(client, store, first)
    assert set(held) == {store.keys_of(first)[i] for i in (5, 6, 8)}  # timers, hold, started
    assert held.pop(store.keys_of(first)[EXECUTION_KEYS.index("hold")]) == due
    assert set(held.values()) == {due + ttl * 1000}, held

    far = f"{ex}-far"  # a merge timeout of 1e300 s: held as long as Redis can say
    store.admit(far, "root", time.time_ns())
    store.schedule("wait-5", 10**303, b"frozen 5", owner=far)
    held = expiries(client, store, far)
    assert held.pop(store.keys_of(far)[EXECUTION_KEYS.index("hold")]) == 2**53
    assert set(held.values()) == {2**53}, held

    past = f"{ex}-past"
    store.admit(past, "root", time.time_ns())
    store.schedule("wait-4", now - 5_000, b"frozen 4", owner=past)
    assert not client.exists(store.keys_of(past)[EXECUTION_KEYS.index("hold")])
    after = int(time.time() * 1000)
    for key, at in expiries(client, store, past).items():
        assert now < at <= after + ttl * 1000 + 1, key
    for timer in ("wait-1", "wait-2", "wait-3", "wait-4", "wait-5", "wait-6"):
        store.cancel_timer(timer)
