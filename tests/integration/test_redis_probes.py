"""RedisStore's edges against real redis-servers (runeworker/adapters/redis_state.py): what its
constructors refuse and take, the probes a child runs while it connects or waits (`ping_problem`,
`write_problem`, `memory_policy`) against a server of this module's own that is made full,
read-only or evicting, the attempt counts and sparing, and the error of every call when the
server does not answer: it names the call and the server, never the password."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from badinput import closed_port
from redis.exceptions import RedisError

from runeworker.adapters.redis_state import RedisStore
from runeworker.config import RedisConfig
from runeworker.engine.barriers import AggregateArrival, MergeArrival, MergeRule, Park
from runeworker.engine.state import Failure
from runeworker.errors import StateError
from tests.faults.services import PrivateRedis

pytestmark = pytest.mark.integration

PASSWORD = "pr0be-s3cret"


@pytest.fixture(scope="module")
def server() -> Iterator[PrivateRedis]:
    """A redis-server of this module with a password: its settings are changed here."""
    srv = PrivateRedis("--appendonly", "no")
    redis.Redis(port=srv.port).config_set("requirepass", PASSWORD)  # once it answers
    yield srv
    srv.stop()


@pytest.fixture
def admin(server: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(port=server.port, password=PASSWORD, socket_timeout=5)
    yield client
    client.config_set("maxmemory", 0)
    client.config_set("maxmemory-policy", "noeviction")
    client.execute_command("REPLICAOF", "NO", "ONE")
    client.flushall()
    client.close()


def _url(port: int) -> str:
    return f"redis://:{PASSWORD}@127.0.0.1:{port}/0"


@pytest.fixture
def store(server: PrivateRedis, admin: redis.Redis) -> Iterator[RedisStore]:
    s = RedisStore.from_url(_url(server.port), prefix="rwprobe:", ttl_seconds=300, socket_timeout=5)
    yield s
    s.close()


# -- what the constructors refuse and take ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"ttl_seconds": 0}, "ttl_seconds must be a positive number of seconds, not 0"),
        ({"prefix": "a{"}, "the key prefix 'a{' must not contain '{' or '}'"),
        ({"prefix": "}a"}, "the key prefix '}a' must not contain '{' or '}'"),
    ],
)
def test_the_store_refuses_what_would_break_its_keys(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as err:
        RedisStore(redis.Redis(port=closed_port()), **kwargs)
    assert str(err.value) == words


def test_the_store_refuses_a_client_that_decodes_replies() -> None:
    with pytest.raises(ValueError) as err:
        RedisStore(redis.Redis(port=closed_port(), decode_responses=True))
    assert str(err.value) == "the Redis client must not decode responses: contexts are bytes"


def _attempt_keys(admin: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(admin.ttl(k)) for k in admin.scan_iter(match="*attempts:*")}


def test_from_url_takes_the_prefix_the_ttl_and_the_client_options(
    server: PrivateRedis, admin: redis.Redis
) -> None:
    store = RedisStore.from_url(_url(server.port), prefix="u:", ttl_seconds=77, socket_timeout=5)
    assert store.count_attempt(b"body") == 1
    [(key, ttl)] = _attempt_keys(admin).items()
    assert key.startswith("u:attempts:{") and 70 <= ttl <= 77
    store.close()
    admin.flushall()
    # the password comes in the client options only; the default prefix and TTL
    bare = RedisStore.from_url(f"redis://127.0.0.1:{server.port}/0", password=PASSWORD)
    assert bare.count_attempt(b"body") == 1
    [(key, ttl)] = _attempt_keys(admin).items()
    assert key.startswith("attempts:{") and 86390 <= ttl <= 86400
    bare.close()
    admin.flushall()
    own = RedisStore(redis.Redis(port=server.port, password=PASSWORD))  # the same defaults
    assert own.count_attempt(b"body") == 1
    [(key, ttl)] = _attempt_keys(admin).items()
    assert key.startswith("attempts:{") and 86390 <= ttl <= 86400
    own.close()


def test_from_config_takes_the_prefix_the_ttl_and_names_the_server(
    server: PrivateRedis, admin: redis.Redis
) -> None:
    config = RedisConfig(url=_url(server.port), key_prefix="c:", key_ttl=66)
    store = RedisStore.from_config(config, socket_timeout=5, client_name="rwprobe-config")
    assert store.count_attempt(b"body") == 1
    assert "rwprobe-config" in {c["name"] for c in admin.client_list()}  # the options reach it
    [(key, ttl)] = _attempt_keys(admin).items()
    assert key.startswith("c:attempts:{") and 60 <= ttl <= 66
    assert store.memory_policy() == ("noeviction", 0)
    store.close()
    port = closed_port()
    down = RedisStore.from_config(RedisConfig(url=_url(port)), socket_connect_timeout=1)
    with pytest.raises(StateError) as err:
        down.count_attempt(b"x")
    assert str(err.value).startswith(f"The Redis attempt count on redis://:***@127.0.0.1:{port}/0 ")
    assert PASSWORD not in str(err.value)


# -- the probes ---------------------------------------------------------------------------------


def test_ping_problem_says_why_and_hides_the_password() -> None:
    down = RedisStore.from_url(_url(closed_port()), socket_connect_timeout=1)
    problem = down.ping_problem()
    assert problem is not None and problem.startswith("no answer to PING: Error 111 connecting")
    assert PASSWORD not in problem and not down.ping()


def test_a_live_server_answers_every_probe(store: RedisStore, admin: redis.Redis) -> None:
    assert store.ping() and store.ping_problem() is None
    assert store.write_problem() is None
    assert 0 < admin.pttl("rwprobe:probe:write") <= 1000  # the probe's key goes at once
    assert store.memory_policy() == ("noeviction", 0)


def test_a_full_server_refuses_writes_and_says_what_to_do(
    store: RedisStore, admin: redis.Redis
) -> None:
    admin.config_set("maxmemory", 1)
    assert store.write_problem() == (
        "refuses writes: OOM command not allowed when used memory > 'maxmemory'. "
        "(Redis is full: raise its maxmemory or free memory; runeworker retries)"
    )
    admin.config_set("maxmemory", 0)
    assert store.write_problem() is None


def test_a_replica_refuses_writes_and_is_connected_to_again(
    store: RedisStore, admin: redis.Redis
) -> None:
    admin.execute_command("REPLICAOF", "127.0.0.1", str(closed_port()))
    problem = store.write_problem()
    assert problem is not None
    assert problem.startswith("refuses writes: READONLY You can't write against a read only")
    assert problem.endswith("runeworker retries and reconnects)")
    admin.execute_command("REPLICAOF", "NO", "ONE")
    assert store.write_problem() is None  # a new connection, to the master it is again


def test_an_evicting_server_is_named_with_its_policy_and_limit(
    store: RedisStore, admin: redis.Redis
) -> None:
    admin.config_set("maxmemory-policy", "allkeys-lru")
    admin.config_set("maxmemory", 100 * 1024 * 1024)
    assert store.memory_policy() == ("allkeys-lru", 100 * 1024 * 1024)


def test_a_refusal_never_shows_the_password(store: RedisStore, server: PrivateRedis) -> None:
    said = store._refused(RedisError(f"ERR something about {PASSWORD} here"))
    assert said == "refuses writes: ERR something about *** here"
    plain = RedisStore.from_url(f"redis://127.0.0.1:{server.port}/0")  # no password: no mask
    assert plain._refused(RedisError("ERR about x")) == "refuses writes: ERR about x"
    assert plain._refused(RedisError()) == "refuses writes: RedisError"  # no text: the type
    plain.close()


# -- attempt counts -----------------------------------------------------------------------------


def test_a_spared_redelivery_is_no_attempt_and_the_flag_expires_with_the_ttl(
    store: RedisStore, admin: redis.Redis
) -> None:
    assert store.count_attempt(b"m1") == 1
    store.spare_attempts([b"m1", b"m2"])
    spared = {k: t for k, t in _attempt_keys(admin).items() if k.endswith(":spared")}
    assert len(spared) == 2 and all(0 < t <= 300 for t in spared.values())
    assert store.count_attempt(b"m1") == 1  # spared
    assert store.count_attempt(b"m1") == 2
    assert store.count_attempt(b"m2") == 0  # a first delivery spared: none counted yet


def test_sparing_nothing_asks_nothing() -> None:
    down = RedisStore.from_url(_url(closed_port()), socket_connect_timeout=1)
    down.spare_attempts([])  # no round trip: no error either


# -- every call's error names the call and the server ------------------------------------------

_MERGE = MergeArrival("m", "", "p", b"{}", MergeRule(2, timeout_ms=1000), 5, "tt")
_CALLS: list[tuple[str, Callable[[RedisStore], Any]]] = [
    ("admit of execution 'ex'", lambda s: s.admit("ex", "t", 1)),
    ("advance of execution 'ex'", lambda s: s.advance("ex", "t", ["c"], None, None, 1)),
    (
        "settle of execution 'ex'",
        lambda s: s.settle("ex", "t", [], b"{}", Failure("failed", "r", b"{}"), 1, 10),
    ),
    ("retire of execution 'ex'", lambda s: s.retire("ex", "t", 1)),
    ("arrival of execution 'ex'", lambda s: s.arrive("ex", "t", 1, 10, _MERGE, {})),
    (
        "arrival of execution 'ex'",
        lambda s: s.arrive("ex", "t", 1, 10, AggregateArrival("s", "", 0, 2, None), {}),
    ),
    ("attempt count", lambda s: s.count_attempt(b"x")),
    ("attempt sparing", lambda s: s.spare_attempts([b"x"])),
    ("receipts", lambda s: s.receipts([("ex", "r")], [("ex", "r")])),
    ("start lookup of execution 'ex'", lambda s: s.started_at("ex")),
    ("keep a commit in doubt", lambda s: s.doubts.keep("d", b"x", 1000)),
]


@pytest.mark.parametrize(("what", "call"), _CALLS, ids=[f"{i}" for i in range(len(_CALLS))])
def test_a_call_to_a_server_that_does_not_answer_names_itself(
    what: str, call: Callable[[RedisStore], Any]
) -> None:
    port = closed_port()
    down = RedisStore.from_url(_url(port), socket_connect_timeout=1)
    with pytest.raises(StateError) as err:
        call(down)
    assert str(err.value).startswith(
        f"The Redis {what} on redis://:***@127.0.0.1:{port}/0 failed: Error 111 connecting"
    )
    assert PASSWORD not in str(err.value)


def test_start_records_that_fail_are_dropped_and_named() -> None:
    port = closed_port()
    down = RedisStore.from_url(_url(port), socket_connect_timeout=1)
    down.begin("ex", 1)
    with pytest.raises(StateError) as err:
        down.flush()
    assert str(err.value).startswith(
        f"The Redis start records on redis://:***@127.0.0.1:{port}/0 failed: Error 111"
    )
    assert down._begun == []  # the steps that made them run again


def test_a_parked_arrival_on_a_store_that_cannot_park_is_refused(store: RedisStore) -> None:
    store.parks_in_arrival = False  # as on a Redis Cluster
    parked = MergeArrival("m", "", "p", b"{}", MergeRule(2), 5, "tt", park=Park("timer", b"{}"))
    with pytest.raises(ValueError) as err:
        store.arrive("ex", "t", 1, 10, parked, {})
    assert str(err.value) == "a Redis Cluster cannot park a timer in an arrival"
