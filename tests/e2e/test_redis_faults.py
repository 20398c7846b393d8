"""`runeworker serve` against a Redis that fails without going away: full (`maxmemory` with
`noeviction`), read-only (a replica after a failover behind a plain URL), paused for longer
than the socket timeout, or set to evict keys. Every test runs its own redis-server on a free
port (the shared one is never reconfigured) and the real RabbitMQ in the session's vhost.

What must hold: the children wait and say why (log, `/readyz`, `runeworker_children`), nothing
is dead-lettered or failed for it, and every execution completes exactly once when Redis takes
writes again.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis
from serving import (
    Forwarder,
    Rune,
    Serve,
    free_port,
    log_chain,
    samples,
    serve_env,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.e2e

DEAD_LETTER = "runeworker.dead-letter"


class PrivateRedis:
    """redis-server of this test on a free port; `args` are more of its options."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rw-redis-faults-"))
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        flags = dict(zip(args[::2], args[1::2], strict=False))
        self.password = flags.get("--requirepass")
        self.client = redis.Redis(port=self.port, password=self.password, socket_timeout=10)
        wait_until(self._pings, f"redis-server on {self.port}", timeout=20)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _pings(self) -> bool:
        with contextlib.suppress(redis.RedisError):
            return bool(self.client.ping())
        return False

    def stop(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[list[PrivateRedis]]:
    """The test's redis-servers (add with `servers.append`); all stopped afterwards."""
    started: list[PrivateRedis] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


class Start(Protocol):
    def __call__(self, redis_url: str, **sections: dict[str, Any]) -> Serve: ...


@pytest.fixture
def start(tmp_path: Path, amqp_url: str, redis_prefix: str) -> Iterator[Start]:
    started: list[Serve] = []

    def _start(redis_url: str, **sections: dict[str, Any]) -> Serve:
        values: dict[str, dict[str, Any]] = {
            "worker": {"processes": 3, "timeout": 30.0, "graceful_timeout": 10.0},
            "supervisor": {"restart_backoff": 0.1, "restart_backoff_max": 1.0},
            "broker": {"retry_delay": 0.2, "retry_delay_max": 1.0},
            "metrics": {"listen": "127.0.0.1:0", "directory": str(tmp_path / "metrics")},
            "logging": {"format": "text", "level": "INFO"},
        }
        for name, table in sections.items():
            values.setdefault(name, {}).update(table)
        config = tmp_path / f"runeworker-{len(started)}.toml"
        write_config(config, values)
        started.append(Serve(tmp_path, config, serve_env(amqp_url, redis_url, redis_prefix)))
        return started[-1]

    try:
        yield _start
    finally:
        for serve in started:
            serve.kill()


def fan(width: int = 3) -> bytes:
    """start -> b1..bN in parallel -> join (merge, wait_for_all) -> after: every step of it
    goes through Redis (branch tokens, the merge's barrier)."""

    def node(node_id: str, type_: str, **params: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"id": node_id, "name": node_id, "type": type_,
                               "parameters": params}  # fmt: skip
        if type_ == "ManualTrigger":
            out["trigger"] = True
        return out

    def log(node_id: str) -> dict[str, Any]:
        return node(node_id, "log", message=f"{node_id} ran", level="debug")

    branches = [f"b{i}" for i in range(1, width + 1)]
    join = node("join", "merge", wait_mode="wait_for_all", timeout=600)
    nodes = [node("start", "ManualTrigger"), *map(log, branches), join, log("after")]
    edges = [{"id": f"s-{b}", "src": "start", "dst": b} for b in branches]
    edges += [{"id": f"{b}-j", "src": b, "dst": "join"} for b in branches]
    edges.append({"id": "j-a", "src": "join", "dst": "after"})
    return json.dumps({"nodes": nodes, "edges": edges}).encode()


def exactly_one_completed(rune: Rune, ids: list[str]) -> None:
    statuses = rune.statuses(ids)
    wrong = {eid: s for eid, s in statuses.items() if s != ["completed"]}
    assert not wrong, f"{len(wrong)} of {len(ids)} without exactly one completion: {wrong}"
    assert rune.message_count(DEAD_LETTER) == 0, "healthy work was dead-lettered"


def scrape(serve: Serve) -> str:
    code, body = serve.get("/metrics")
    assert code == 200
    return body


def waiting_children(serve: Serve) -> float:
    return sum(samples(scrape(serve), "runeworker_children", state="waiting").values())


def test_a_full_redis_is_waited_for_and_no_work_is_dead_lettered(
    start: Start, rune: Rune, servers: list[PrivateRedis]
) -> None:
    """maxmemory reached under `noeviction`: every write is refused with `OOM command not
    allowed`, while PING answers. The children reconnected in a loop (each refused step handed
    its delivery back), reported ready, and counted every redelivery as an attempt: once
    Redis had room again, healthy executions were dead-lettered as poison with a `failed`
    completion. Now each child keeps its deliveries, waits, says why, and runs them again."""
    server = PrivateRedis()  # maxmemory-policy noeviction: Redis's default
    servers.append(server)
    serve = start(server.url)
    rune.wait_consumers(3)
    server.client.config_set("maxmemory", "1")  # any write is over the limit now
    ids = rune.publish(fan(), 6) + rune.publish(log_chain(3), 6)
    serve.wait_log("command not allowed when used memory", timeout=20)
    time.sleep(4.0)  # long enough for many reconnections and 3 deliveries of each message
    waiting = waiting_children(serve)
    readyz = serve.get("/readyz")
    during = serve.log()
    assert rune.done(ids) == 0
    server.client.config_set("maxmemory", "0")
    rune.wait_done(ids, timeout=60, settle=1.0)
    # the outcome first: nothing dead-lettered as poison, no `failed` completion
    exactly_one_completed(rune, ids)
    assert "poison" not in serve.log()
    # then what an operator saw meanwhile
    assert waiting >= 1, "no child was waiting for Redis"
    code, body = readyz
    assert code == 503 and "refuses writes: OOM command not allowed" in body, readyz
    assert "reconnecting" not in during, "a refused write is not a lost connection"
    waits = [ln for ln in during.splitlines() if "runeworker.worker[" in ln and "waiting for" in ln]
    assert waits and len(waits) <= 3, waits  # one line per child that waits, not one a try
    assert all("OOM command not allowed" in ln for ln in waits), waits
    wait_until(lambda: serve.get("/readyz") == (200, "ready"), "/readyz 200 again")


def test_a_read_only_redis_behind_a_plain_url_is_left_for_the_new_master(
    start: Start, rune: Rune, servers: list[PrivateRedis]
) -> None:
    """A failover behind a plain URL (a DNS name or a virtual IP moved to the new master,
    here a TCP relay): the old master, now a replica, answers every write with `READONLY`
    on the connections already open to it. The children reconnected to RabbitMQ in a loop,
    kept their Redis connections to the replica and never recovered; now they close those
    connections while they wait, and the next try reaches the new master."""
    old, new = PrivateRedis(), PrivateRedis()
    servers += [old, new]
    new.client.execute_command("REPLICAOF", "127.0.0.1", str(old.port))
    relay_port = free_port()
    relay = Forwarder(relay_port, old.port)
    relay.open()
    try:
        serve = start(f"redis://127.0.0.1:{relay_port}/0")
        rune.wait_consumers(3)
        first = rune.publish(fan(), 4)
        rune.wait_done(first, timeout=60, settle=0.2)
        # a graceful failover: writes paused, the replica caught up, promoted; the old
        # master follows it; the address now leads to the new master
        old.client.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
        offset = old.client.info("replication")["master_repl_offset"]
        wait_until(
            lambda: new.client.info("replication").get("slave_repl_offset", -1) >= offset,
            "the replica caught up",
        )
        new.client.execute_command("REPLICAOF", "NO", "ONE")
        old.client.execute_command("REPLICAOF", "127.0.0.1", str(new.port))
        old.client.execute_command("CLIENT", "UNPAUSE")
        relay.target = new.port
        ids = rune.publish(fan(), 6) + rune.publish(log_chain(3), 6)
        rune.wait_done(ids, timeout=60, settle=1.0)
        exactly_one_completed(rune, first + ids)
        assert "reconnecting" not in serve.log()
        assert "READONLY You can't write against a read only replica" in serve.log()
    finally:
        relay.close()


def test_a_redis_paused_longer_than_worker_timeout_gets_no_child_killed(
    start: Start, rune: Rune, servers: list[PrivateRedis]
) -> None:
    """`CLIENT PAUSE ... WRITE` holds every write for its length. A step's script waited
    `redis.socket_timeout` (5 s) with the child beating nothing, so with a `worker.timeout`
    below that the supervisor killed the children as hung, and each kill counted an attempt
    of the healthy message it was handling. The children now wait at most a third of
    `worker.timeout` for Redis (as for a RabbitMQ handshake), then wait beating."""
    server = PrivateRedis()
    servers.append(server)
    serve = start(server.url, worker={"timeout": 3.0, "processes": 2})
    rune.wait_consumers(2)
    server.client.execute_command("CLIENT", "PAUSE", "7000", "WRITE")
    ids = rune.publish(fan(), 6)
    rune.wait_done(ids, timeout=60, settle=1.0)
    exactly_one_completed(rune, ids)
    assert "no heartbeat" not in serve.log()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "noeviction"])
def test_an_evicting_redis_is_warned_about_at_start_up(
    start: Start, rune: Rune, servers: list[PrivateRedis], policy: str
) -> None:
    """runeworker's keys all carry a TTL, so `volatile-*` policies evict them as readily as
    `allkeys-*`; an evicted branch token or merge barrier strands its execution (measured: 99
    of 100 parallel executions never completed under `allkeys-lru`). serve said nothing;
    now it warns once, with the Redis named and its password masked, and starts anyway."""
    server = PrivateRedis("--maxmemory-policy", policy, "--maxmemory", "512mb",
                          "--requirepass", "s3cret-pw-77")  # fmt: skip
    servers.append(server)
    serve = start(server.url)
    rune.wait_consumers(3)
    ids = rune.publish(log_chain(2), 3)
    rune.wait_done(ids, timeout=30, settle=0.5)
    exactly_one_completed(rune, ids)
    time.sleep(0.5)
    log = serve.log()
    warned = [ln for ln in log.splitlines() if "maxmemory-policy" in ln]
    if policy == "noeviction":
        assert warned == []
        return
    assert len(warned) == 1, warned
    assert "WARNING" in warned[0] and f"maxmemory-policy {policy}" in warned[0]
    assert re.search(rf"Redis at redis://:\*\*\*@127\.0\.0\.1:{server.port}/0 ", warned[0])
    assert "noeviction" in warned[0]
    assert "s3cret-pw-77" not in log
