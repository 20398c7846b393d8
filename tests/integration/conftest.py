"""Fixtures of the wire tests: a worker child on the test vhost, the Rune side of the wire, and a
loopback JSON server (a module may define its own of the same name)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
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
