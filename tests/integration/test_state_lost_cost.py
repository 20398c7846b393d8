"""The cost claim of state-lost detection, measured on the wire: a single-branch chain makes no
call of the branch-token scripts (admit, advance, settle, arrive, retire) on Redis, however
many steps it takes; an execution with parallel branches does (the positive control, so that
the count can fail). The real worker and RabbitMQ, a private redis-server (MONITOR sees only
this test's commands; the shared server's configuration is left alone)."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from wire import Wire, edge, master, node, running_worker

from runeworker.adapters import redis_ledger

pytestmark = pytest.mark.integration

STATE_SCRIPTS = {
    hashlib.sha1(getattr(redis_ledger, name).encode()).hexdigest(): name
    for name in ("ADMIT", "ADVANCE", "SETTLE", "ARRIVE", "RETIRE")
}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def state_calls(url: str, amqp_url: str, body: dict[str, object]) -> dict[str, int]:
    """Run `body` on a worker against `url`, under MONITOR; the branch-token scripts called."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    with running_worker(amqp_url, url, "rwcost:"):
        wire = Wire(amqp_url)
        try:
            monitor = subprocess.Popen(
                ["redis-cli", "-p", port, "MONITOR"], stdout=subprocess.PIPE, text=True
            )
            time.sleep(0.3)
            wire.publish_api(body)
            done = wire.completion(str(body["execution_id"]))
            assert done["status"] == "completed", done
            time.sleep(0.3)
            monitor.terminate()
            out, _ = monitor.communicate(10)
        finally:
            wire.close()
    counts: dict[str, int] = {}
    for line in out.splitlines():
        for sha, name in STATE_SCRIPTS.items():
            if sha in line:
                counts[name] = counts.get(name, 0) + 1
    return counts


def test_a_single_branch_chain_calls_no_state_script(private_redis: str, amqp_url: str) -> None:
    ids = [f"n{i}" for i in range(20)]
    nodes = [node("trigger", "ManualTrigger", "Start")]
    nodes += [node(i, "log", message=i) for i in ids]
    edges = [edge(a, b) for a, b in zip(["trigger", *ids], ids, strict=False)]
    assert state_calls(private_redis, amqp_url, master(nodes, edges)) == {}


def test_parallel_branches_call_the_state_scripts(private_redis: str, amqp_url: str) -> None:
    nodes = [node("trigger", "ManualTrigger", "Start")]
    nodes += [node(i, "log", message=i) for i in ("a", "b")]
    calls = state_calls(private_redis, amqp_url, master(nodes, [edge("trigger", i) for i in "ab"]))
    assert sum(calls.values()) >= 2, calls
