"""Fixtures for the real services. Each test session gets its own RabbitMQ vhost and its own
Redis key prefix, so runs on a shared machine never see each other's messages or keys."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis

RABBIT_BASE = os.environ.get("RUNEWORKER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("RUNEWORKER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def _vhost() -> Iterator[str]:
    """A fresh vhost's URL; the vhost is deleted afterwards."""
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl not found: RabbitMQ must be installed (bash .ci/run does it)")
    vhost = f"rwtest-{uuid.uuid4().hex[:10]}"
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"{RABBIT_BASE}/{quote(vhost, safe='')}"
    finally:
        _ctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """URL of a fresh vhost, deleted at the end of the session."""
    with _vhost() as url:
        yield url


@pytest.fixture(scope="session")
def quorum_amqp_url() -> Iterator[str]:
    """URL of another fresh vhost, for workers with `broker.queue_type = "quorum"` (a queue's
    type is fixed when it is first declared)."""
    with _vhost() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to the test; its keys are deleted afterwards."""
    prefix = f"rwtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """Commands run in-process (`cli.main`) install root log handlers on the sys.stderr of
    that test; later tests must not inherit them (nor their closed capture streams)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
