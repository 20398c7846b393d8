"""Fixtures of the wire tests: a worker child on the test vhost, the Rune side of the wire, and a
loopback JSON server (a module may define its own of the same name)."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
import redis
from wire import JsonServer, RunningWorker, Wire, running_worker


@pytest.fixture
def worker(amqp_url: str, redis_url: str, redis_prefix: str) -> Iterator[RunningWorker]:
    with running_worker(amqp_url, redis_url, redis_prefix) as rw:
        yield rw


@pytest.fixture
def wire(amqp_url: str, worker: RunningWorker) -> Iterator[Wire]:
    w = Wire(amqp_url)
    yield w
    w.close()


@pytest.fixture
def server() -> Iterator[JsonServer]:
    srv = JsonServer()
    yield srv
    srv.close()


# A Redis client and a key prefix of the test's own, its keys deleted after it: the state store
# tests (test_redis_state.py, test_redis_state_lost.py) build their RedisStore on these.
@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    value = f"rwtest:{uuid4().hex}:"
    yield value
    leftovers = list(client.scan_iter(match=value + "*"))
    if leftovers:
        client.delete(*leftovers)
