"""The shared StateStore table (tests/unit/statecases.py) against RedisStore on the real Redis.

Every test works under its own key prefix and deletes its keys afterwards; the server is shared.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import pytest
import redis

_UNIT = str(Path(__file__).resolve().parent.parent / "unit")
if _UNIT not in sys.path:
    sys.path.insert(0, _UNIT)

from holdcase import timer_holds_its_execution  # noqa: E402
from statecases import (  # noqa: E402
    CASES,
    FLOW_CASES,
    INTERLEAVINGS,
    NOW,
    OPEN,
    T0,
    T1,
    ctx,
    fan_out,
)

from runeworker.adapters.redis_state import RedisStore  # noqa: E402
from runeworker.engine.state import (  # noqa: E402
    Admission,
    Barrier,
    BarrierState,
    Failure,
    MergeRule,
    Settlement,
    Transition,
    Verdict,
    child_token,
)
from runeworker.errors import StateError  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TTL = 3600
SUFFIXES = ("live", "done", "meta", "failctx", "contexts", "timers")


@pytest.fixture
def store(client: redis.Redis, prefix: str) -> RedisStore:
    return RedisStore(client, prefix=prefix, ttl_seconds=TTL)


def keys_under(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Every key under `prefix` with its TTL in seconds."""
    return {k.decode(): client.ttl(k) for k in client.scan_iter(match=prefix + "*")}


def assert_expiry(client: redis.Redis, prefix: str, key: str, ttl: int) -> None:
    """A per-execution key lives `TTL` from the last call, or while a timer holds its
    execution (runeworker/adapters/redis_flow.py) until the hold's instant; the hold itself
    goes when its latest timer is due."""
    execution = re.fullmatch(re.escape(prefix) + r"exec:\{([^{}]+)\}:.+", key)
    assert execution, key
    hold = client.get(f"{prefix}exec:{{{execution[1]}}}:hold")
    if hold is None:
        assert 0 < ttl <= TTL, key
    elif key.endswith(":hold"):
        assert client.pexpiretime(key) == int(hold) - TTL * 1000, key
    else:
        assert client.pexpiretime(key) == int(hold), key


def names(prefix: str, execution_id: str, *suffixes: str) -> set[str]:
    return {f"{prefix}exec:{{{execution_id}}}:branches:{s}" for s in suffixes}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(CASES))
def test_redis_store(name: str, store: RedisStore, client: redis.Redis, prefix: str) -> None:
    CASES[name](store)
    keys = keys_under(client, prefix)
    assert keys
    pattern = re.compile(
        re.escape(prefix)
        + r"(exec:\{[^{}]+\}:(branches:("
        + "|".join(SUFFIXES)
        + r")|started|ended|barriers|hold|(split|node):.+)|scheduler:(timers|payloads))"
    )
    for key, ttl in keys.items():
        assert pattern.fullmatch(key), key
        if ":scheduler:" not in key:  # the scheduler's keys are global: entries go, not keys
            assert_expiry(client, prefix, key, ttl)


@pytest.mark.integration
def test_keys_while_open_and_after_close(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    a, b = fan_out(store, "ex", 2)
    assert not store.advance("ex", a, [], ctx("a"), None, T1).closed
    assert set(keys_under(client, prefix)) == names(
        prefix, "ex", "live", "done", "meta", "contexts"
    )
    meta = names(prefix, "ex", "meta").pop()
    assert client.hgetall(meta) == {b"started_at_ns": str(T0).encode(), b"steps": b"2"}
    assert store.advance("ex", b, [], ctx("b"), None, T1).contexts == [ctx("a"), ctx("b")]
    # the closing record holds the contexts; the working keys are gone; the end is marked
    ended = f"{prefix}exec:{{ex}}:ended"
    assert set(keys_under(client, prefix)) == names(prefix, "ex", "done", "meta") | {ended}
    assert client.get(ended) == b"1"


@pytest.mark.integration
def test_single_branch_start_key(store: RedisStore, client: redis.Redis, prefix: str) -> None:
    store.begin("ex", T0)
    store.begin("ex", T1)
    assert keys_under(client, prefix) == {}  # kept back until the flush before a commit
    store.flush()
    assert keys_under(client, prefix).keys() == {prefix + "exec:{ex}:started"}
    assert 0 < keys_under(client, prefix)[prefix + "exec:{ex}:started"] <= TTL
    store.begin("ex-2", T1)
    assert store.started_at("ex-2") == T1  # a lookup sends what was kept back first
    assert client.get(prefix + "exec:{ex}:started") == str(T0).encode()  # no double rounding
    assert store.started_at("ex") == T0


@pytest.mark.integration
def test_failure_is_kept_in_meta(store: RedisStore, client: redis.Redis, prefix: str) -> None:
    """The failure closes at once: its status in meta, the live set gone (every later message
    is cancelled), no failing context kept apart (the closing record holds it)."""
    a, _ = fan_out(store, "ex", 2)
    store.advance("ex", a, [], None, Failure("halted", "stop", ctx("a")), T1)
    ended = f"{prefix}exec:{{ex}}:ended"
    assert set(keys_under(client, prefix)) == names(prefix, "ex", "done", "meta") | {ended}
    meta = client.hgetall(names(prefix, "ex", "meta").pop())
    assert (meta[b"failure_status"], meta[b"failure_reason"], meta[b"steps"]) == (
        b"halted",
        b"stop",
        b"2",
    )


@pytest.mark.integration
def test_failure_recorded_by_an_earlier_version_closes_at_the_last_branch(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """During a rolling upgrade a worker before 0.9 may record a failure the old way (status in
    meta, context in failctx, siblings still live, to close when the last one ends): this
    version closes it then, once, and cancels the siblings meanwhile."""
    a, b, c = fan_out(store, "ex", 3)
    live, _, meta, failctx, *_ = store.keys_of("ex")
    client.srem(live, a)  # what the old advance of `a` did
    client.hset(meta, mapping={"failure_status": "failed", "failure_reason": "old http 500"})
    client.set(failctx, ctx("a"))
    assert store.admit("ex", b, T1) == Admission(Verdict.CANCELLED, 1)
    assert store.advance("ex", b, [child_token(b, 0, "x")], ctx("b"), None, T1) == OPEN
    assert store.admit("ex", child_token(b, 0, "x"), T1) == Admission(Verdict.CANCELLED, 2)
    closing = store.settle("ex", c, [], ctx("c"), None, T1, 100)
    assert closing == Settlement(
        Verdict.CANCELLED, Transition(True, "failed", "old http 500", T0, [ctx("a")])
    )
    assert store.settle("ex", c, [], ctx("c"), None, T1, 100).verdict is Verdict.REPLAY
    assert store.advance("ex", b, [], None, None, T1) == OPEN  # recorded before the close
    assert client.exists(failctx) == 0


@pytest.mark.integration
def test_every_call_refreshes_ttl(store: RedisStore, client: redis.Redis, prefix: str) -> None:
    fan_out(store, "ex", 2)
    for key in keys_under(client, prefix):
        client.expire(key, 7)
    assert store.admit("ex", "stale", T1) == Admission(Verdict.STALE, 1)
    assert all(ttl > 7 for ttl in keys_under(client, prefix).values())


@pytest.mark.integration
def test_from_url_ping_close(prefix: str) -> None:
    store = RedisStore.from_url(REDIS_URL, prefix=prefix, ttl_seconds=60)
    assert store.ping() is True
    assert store.admit("ex", "root", T0) == Admission(Verdict.RUN, 0)
    store.close()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_lost_connection_raises_state_error_with_masked_url() -> None:
    port = closed_port()
    store = RedisStore.from_url(f"redis://rune:s3cret-pw@127.0.0.1:{port}/2")
    assert store.ping() is False
    for call in (
        lambda: store.admit("ex-9", "root", T0),
        lambda: store.advance("ex-9", "root", [], b"{}", None, T0),
        lambda: store.started_at("ex-9"),
    ):
        with pytest.raises(StateError) as info:
            call()
        message = str(info.value)
        assert f"of execution 'ex-9' on redis://rune:***@127.0.0.1:{port}/2 failed" in message
        assert "s3cret" not in message
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
    store.begin("ex-9", T0)
    with pytest.raises(StateError, match=r"start records on redis://rune:\*\*\*@127"):
        store.flush()
    store.close()


def test_client_that_decodes_responses_is_refused() -> None:
    client = redis.Redis(host="127.0.0.1", decode_responses=True)
    with pytest.raises(ValueError, match="must not decode responses"):
        RedisStore(client)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl_seconds": 0}, "ttl_seconds must be a positive number of seconds, not 0"),
        ({"prefix": "a{b}:"}, "the key prefix 'a{b}:' must not contain '{' or '}'"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RedisStore(redis.Redis(host="127.0.0.1"), **kwargs)  # type: ignore[arg-type]


def test_invalid_url_is_reported_masked() -> None:
    with pytest.raises(StateError, match=re.escape("The Redis URL http://u:***@host/ is invalid")):
        RedisStore.from_url("http://u:pw-123@host/")


# -- barriers and timers ---------------------------------------------------------------------

FLOW_KEY = re.compile(
    r"exec:\{[^{}]+\}:(split:[^:]+(:[^:]+)?:(results|release)"
    r"|node:[^:]+(:[^:]+)?:(barrier:arrivals|barrier:data|barrier:first|barrier:waited|lock)"
    # arrivals admit and advance tokens; a closing one marks the end
    r"|branches:(" + "|".join(SUFFIXES) + ")|barriers|hold|ended)"
)
SCHEDULER_KEYS = {"scheduler:timers", "scheduler:processing", "scheduler:payloads"}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(FLOW_CASES))
def test_redis_flow(name: str, store: RedisStore, client: redis.Redis, prefix: str) -> None:
    FLOW_CASES[name](store)
    for key, ttl in keys_under(client, prefix).items():
        short = key.removeprefix(prefix)
        if short in SCHEDULER_KEYS:
            assert ttl == -1, key  # global keys: their entries go when a timer is acked
        else:
            assert FLOW_KEY.fullmatch(short), key
            assert_expiry(client, prefix, key, ttl)
    # no payload outlives its timer (the global hash would keep it for good)
    pending = set(client.zrange(prefix + "scheduler:timers", 0, -1))
    pending |= set(client.zrange(prefix + "scheduler:processing", 0, -1))
    assert set(client.hkeys(prefix + "scheduler:payloads")) <= pending


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(INTERLEAVINGS))
def test_redis_interleaving(name: str, store: RedisStore, client: redis.Redis, prefix: str) -> None:
    """Two workers' steps interleaved on the real Redis (a merge's arrivals, see
    statecases.INTERLEAVINGS)."""
    INTERLEAVINGS[name](store)
    for key, ttl in keys_under(client, prefix).items():
        if key.removeprefix(prefix) not in SCHEDULER_KEYS:
            assert_expiry(client, prefix, key, ttl)


@pytest.mark.integration
def test_a_timer_holds_its_execution(store: RedisStore, client: redis.Redis) -> None:
    timer_holds_its_execution(store, client, TTL)


MERGE_KEY_NAMES = ("barrier:arrivals", "barrier:data", "barrier:first", "lock", "barrier:waited")


@pytest.mark.integration
def test_merge_keys_have_the_go_shape(store: RedisStore, client: redis.Redis, prefix: str) -> None:
    """As TestMergeBarrierWithRedis (integration/merge_integration_test.go upstream): no
    barrier key before the first arrival; then Go's names, with the execution id as hash tag,
    each with the TTL."""
    base = f"{prefix}exec:{{ex-18}}:node:merge_node"
    assert keys_under(client, prefix) == {}
    rule = MergeRule(expected=2)
    waiting = store.merge_arrive("ex-18", "merge_node", "", "a", "ta", ctx("a"), rule, NOW)
    assert waiting == Barrier(BarrierState.WAITING, 1, first_ms=NOW)
    assert set(keys_under(client, prefix)) == {
        f"{base}:barrier:arrivals",
        f"{base}:barrier:data",
        f"{base}:barrier:first",
        f"{base}:barrier:waited",  # runeworker's: what a replayed arrival reported
        f"{prefix}exec:{{ex-18}}:barriers",  # runeworker's: the barriers a timer holds
    }
    registry = client.smembers(f"{prefix}exec:{{ex-18}}:barriers")
    assert registry == {f"{base}:{k}".encode() for k in MERGE_KEY_NAMES}
    assert client.smembers(f"{base}:barrier:arrivals") == {b"a"}
    assert client.hgetall(f"{base}:barrier:data") == {b"a": ctx("a")}
    store.merge_arrive("ex-18", "merge_node", "ex-18_s_0", "b", "tb", None, rule, NOW)
    scoped = f"{prefix}exec:{{ex-18}}:node:merge_node:ex-18_s_0:barrier:data"
    assert client.hgetall(scoped) == {b"b": b""}  # a ghost inside the split branch ex-18_s_0
    assert all(0 < ttl <= TTL for ttl in keys_under(client, prefix).values())


@pytest.mark.integration
def test_aggregator_keys(store: RedisStore, client: redis.Redis, prefix: str) -> None:
    base = f"{prefix}exec:{{ex}}:split:s1"
    store.aggregate("ex", "s1", "", 1, 2, "t1", b'"b"')
    assert client.hgetall(base + ":results") == {b"1": b'"b"'}
    store.aggregate("ex", "s1", "", 0, 2, "t0", None)
    assert client.get(base + ":release") == b"t0"
    assert client.hgetall(base + ":results") == {b"0": b"", b"1": b'"b"'}
    registry = f"{prefix}exec:{{ex}}:barriers"
    assert set(keys_under(client, prefix)) == {base + ":results", base + ":release", registry}
    assert client.smembers(registry) == {(base + ":results").encode(), (base + ":release").encode()}


@pytest.mark.integration
def test_timer_keys(store: RedisStore, client: redis.Redis, prefix: str) -> None:
    store.schedule("t1", NOW, b"frozen")
    assert client.zrange(prefix + "scheduler:timers", 0, -1, withscores=True) == [(b"t1", NOW)]
    assert client.hgetall(prefix + "scheduler:payloads") == {b"t1": b"frozen"}
    store.claim_due(NOW, 10, 500)
    assert client.zrange(prefix + "scheduler:timers", 0, -1) == []
    leased = client.zrange(prefix + "scheduler:processing", 0, -1, withscores=True)
    assert leased == [(b"t1", NOW + 500)]
    store.ack_timer("t1")
    assert keys_under(client, prefix) == {}


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_a_spared_redelivery_is_no_attempt_and_sparing_twice_spares_once(
    store: RedisStore, kind: str
) -> None:
    from runeworker.engine.state import MemoryStore

    target = store if kind == "redis" else MemoryStore()
    body, other = b'{"execution_id": "e1"}', b'{"execution_id": "e2"}'
    assert target.count_attempt(body) == 1
    target.spare_attempts([body, body])  # two drains before the next delivery
    target.spare_attempts([body])
    assert target.count_attempt(body) == 1  # the spared redelivery
    assert target.count_attempt(body) == 2  # the next one counts again
    assert target.count_attempt(other) == 1  # sparing is per message
    target.spare_attempts([])


def test_receipts_are_recorded_before_they_are_looked_up(
    store: RedisStore, client: redis.Redis, prefix: str
) -> None:
    """One script records, then looks up (runeworker/child/receipts.py): a receipt recorded
    in the same call is found; each execution's receipts are one hash with the key TTL."""
    a, b = ("ex-a", "workflow.execution|root|n1"), ("ex-b", "workflow.execution|t1|n2")
    assert store.receipts([], [a, b]) == [False, False]
    assert store.receipts([a], [b, a]) == [False, True]
    assert store.receipts([b, a], []) == []
    key = f"{prefix}exec:{{ex-b}}:receipts"
    assert client.hgetall(key) == {b[1].encode(): b"1"}
    assert 0 < client.ttl(key) <= TTL
