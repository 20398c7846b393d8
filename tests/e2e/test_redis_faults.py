"""`runeworker serve` against a Redis that fails without going away: full (`maxmemory` with
`noeviction`), read-only (a replica after a failover behind a plain URL), paused for longer
than the socket timeout, or set to evict keys. Every test runs its own redis-server on a free
port (the shared one is never reconfigured) and the real RabbitMQ in the session's vhost.

What must hold: the children wait and say why (log, `/readyz`, `runeworker_children`), nothing
is dead-lettered or failed for it, and every execution completes exactly once when Redis takes
writes again. A Redis that loses keys (evicted, or deleted here as eviction or a flush would)
cannot be waited for: every execution whose state is lost ends, failed, once, and says so.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
import warnings
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


def node(node_id: str, type_: str, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": node_id, "name": node_id, "type": type_, "parameters": params}
    if type_ == "ManualTrigger":
        out["trigger"] = True
    return out


def log(node_id: str, pad: int = 0) -> dict[str, Any]:
    """A log node; `pad` characters more in its message (and so in its output)."""
    return node(node_id, "log", message=f"{node_id} ran" + "x" * pad, level="debug")


def fan(width: int = 3, pad: int = 0) -> bytes:
    """start -> b1..bN in parallel -> join (merge, wait_for_all) -> after: every step of it
    goes through Redis (branch tokens, the merge's barrier)."""
    branches = [f"b{i}" for i in range(1, width + 1)]
    join = node("join", "merge", wait_mode="wait_for_all", timeout=600)
    nodes = [node("start", "ManualTrigger"), *(log(b, pad) for b in branches), join, log("after")]
    edges = [{"id": f"s-{b}", "src": "start", "dst": b} for b in branches]
    edges += [{"id": f"{b}-j", "src": b, "dst": "join"} for b in branches]
    edges.append({"id": "j-a", "src": "join", "dst": "after"})
    return json.dumps({"nodes": nodes, "edges": edges}).encode()


def waiting_fan(seconds: float) -> bytes:
    """start -> w (wait `seconds`) -> b1 and start -> b2, both -> join (merge: its default
    timeout) -> after: b2 waits at the merge while w waits; nothing of the execution runs
    meanwhile but the two timers (the wait's, the merge's) waiting to fire."""
    nodes = [
        node("start", "ManualTrigger"), node("w", "wait", amount=seconds, unit="seconds"),
        log("b1"), log("b2"), node("join", "merge", wait_mode="wait_for_all"), log("after"),
    ]  # fmt: skip
    pairs = [("start", "w"), ("w", "b1"), ("start", "b2"), ("b1", "join"), ("b2", "join"),
             ("join", "after")]  # fmt: skip
    edges = [{"id": f"{a}-{b}", "src": a, "dst": b} for a, b in pairs]
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


LOST = "state lost (evicted or expired?)"


def completions_of(rune: Rune, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {eid: rune.completions.get(eid, []) for eid in ids}


def lost_samples(serve: Serve) -> dict[str, float]:
    found = samples(scrape(serve), "runeworker_state_lost_total")
    return {dict(labels)["what"]: value for labels, value in found.items() if value}


@pytest.mark.parametrize(
    ("what", "evicted"),
    [
        ("execution", "*"),  # every key of the execution: evicted one by one, or flushed
        ("branches", "branches:live"),  # its live branch tokens
        ("barrier", "node:join:*"),  # the merge barrier b2 waits at
    ],
)
def test_state_evicted_under_a_waiting_execution_fails_it_loudly(
    start: Start,
    rune: Rune,
    servers: list[PrivateRedis],
    redis_prefix: str,
    what: str,
    evicted: str,
) -> None:
    """b2 waits at the merge, w in its wait; then keys of the execution go, as an evicting
    Redis takes them. Before: the resumed wait (or b1's arrival) ran against a fresh state
    and the execution never completed, with nothing in the log, the metrics or the
    dead-letter queue. Now the step that finds the loss fails the execution: one `failed`
    completion saying so, one dead-lettered message, an ERROR line naming execution, workflow
    and node, `runeworker_state_lost_total{what}`. Executions whose keys stay complete."""
    server = PrivateRedis()
    servers.append(server)
    serve = start(server.url)
    rune.wait_consumers(3)
    hit = rune.publish(waiting_fan(4.0), 3)
    spared = rune.publish(waiting_fan(4.0), 2)
    chains = rune.publish(log_chain(3), 3)
    client = server.client

    def first_key(eid: str) -> bytes:
        return f"{redis_prefix}exec:{{{eid}}}:node:join:barrier:first".encode()

    def all_waiting() -> bool:  # b2 at the merge, w's timer and the merge's scheduled
        timers = client.zcard(f"{redis_prefix}scheduler:timers")
        return timers == 10 and all(client.exists(first_key(e)) for e in hit + spared)

    wait_until(all_waiting, "every execution waiting", timeout=30)
    for eid in hit:
        pattern = f"{redis_prefix}exec:{{{eid}}}:{evicted}"
        keys = list(client.scan_iter(match=pattern))
        assert keys, pattern
        client.delete(*keys)
    rune.wait_done(hit + spared + chains, timeout=60, settle=1.5)
    got = completions_of(rune, hit + spared + chains)
    for eid in spared + chains:
        assert [c["status"] for c in got[eid]] == ["completed"], got[eid]
    for eid in hit:
        assert [c["status"] for c in got[eid]] == ["failed"], got[eid]
        reason = got[eid][0]["failure_reason"]
        assert reason.startswith(LOST + " at node "), reason
    # one message per execution found the loss, and was dead-lettered; its siblings were not
    assert rune.message_count(DEAD_LETTER) == len(hit)
    errors = [ln for ln in serve.log().splitlines() if f"{LOST}: execution" in ln]
    assert len(errors) == len(hit), errors
    for eid in hit:
        [line] = [ln for ln in errors if f"execution {eid} of workflow " in ln]
        assert "ERROR" in line and ", node " in line, line
    wait_until(lambda: lost_samples(serve) == {what: float(len(hit))}, f"{what} counted")


def first_completions(rune: Rune, ids: list[str], timeout: float) -> dict[str, float]:
    """When (time.monotonic) a completion of each of `ids` was first read."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(ids):
        assert time.monotonic() < deadline, f"{len(seen)} of {len(ids)} executions ended"
        rune.drain()
        now = time.monotonic()
        seen.update((e, now) for e in ids if e not in seen and rune.completions.get(e))
        rune.conn.sleep(0.05)
    return seen


def telling(message: dict[str, Any]) -> list[str]:
    """The execution of an evicted key whose loss a step tells (`exec:{<id>}:branches:meta`,
    `...:branches:live`, `...:node:<merge>:...`); none for any other key."""
    found = re.search(
        r"exec:\{([^{}]+)\}:(branches:meta|branches:live|node:)", message["data"].decode()
    )
    return [found[1]] if found else []


def end_mark(message: dict[str, Any]) -> list[str]:
    """The execution of an evicted mark of an end (`exec:{<id>}:ended`); none for any other
    key."""
    found = re.fullmatch(r".*exec:\{([^{}]+)\}:ended", message["data"].decode())
    return [found[1]] if found else []


def test_an_evicting_redis_strands_no_execution_silently(
    start: Start, rune: Rune, servers: list[PrivateRedis]
) -> None:
    """`maxmemory` under `allkeys-lru` 1 MB above what Redis held before 80 executions with
    parallel branches and 4 KB outputs: Redis evicts their branch tokens, barriers, marks.
    Before, 35 of the 80 never completed, and nothing said so. Now every one ends, once:
    completed, or failed as lost (42 to 70 of them over 11 runs) with its message
    dead-lettered and the loss in the log and the metrics; and only executions whose record,
    tokens or barrier Redis evicted before they ended (keyspace notifications). Once, unless
    Redis evicted every record of the end as well, its mark included: then a late branch
    cannot tell the end from a loss, and fails the execution again (seen in CI before the
    mark, with meta and done evicted 4 ms after the first failure)."""
    server = PrivateRedis("--maxmemory-policy", "allkeys-lru", "--notify-keyspace-events", "Ee")
    servers.append(server)
    # when Redis evicted a key of an execution that a step reads to tell a loss (its record,
    # its live branch tokens, its merge barrier), as Redis tells it
    evicted: dict[str, list[float]] = {}
    unmarked: set[str] = set()  # executions whose mark of their end Redis evicted

    def note(message: dict[str, Any]) -> None:
        for eid in telling(message):
            evicted.setdefault(eid, []).append(time.monotonic())
        unmarked.update(end_mark(message))

    listener = server.client.pubsub()
    listener.subscribe(**{"__keyevent@0__:evicted": note})
    thread = listener.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        serve = start(server.url)
        rune.wait_consumers(3)
        warm = rune.publish(fan(), 3)
        rune.wait_done(warm, timeout=30, settle=0.2)
        used = int(server.client.info("memory")["used_memory"])
        server.client.config_set("maxmemory", str(used + 1024 * 1024))
        ids = rune.publish(fan(pad=4 * 1024), 80)
        ended = first_completions(rune, ids, timeout=120)
        rune.wait_done(ids, timeout=1, settle=2.0)
    finally:
        thread.stop()
    assert int(server.client.info("stats")["evicted_keys"]) > 0, "nothing evicted: nothing measured"
    got = completions_of(rune, ids)
    twice = {eid: c for eid, c in got.items() if len(c) != 1 and eid not in unmarked}
    assert not twice, f"{len(twice)} executions with more than one completion: {twice}"
    again = [c for e in unmarked & set(ids) for c in got[e][1:]]
    assert all(c["failure_reason"].startswith(LOST) for c in again), again
    if again:  # allowed, and worth seeing in the summary
        warnings.warn(f"{len(again)} second completions after their end mark was evicted",
                      stacklevel=1)  # fmt: skip
    failed = {eid: c[0] for eid, c in got.items() if c[0]["status"] != "completed"}
    assert all(c["failure_reason"].startswith(LOST) for c in failed.values()), failed
    assert failed, "keys evicted and no execution lost: the test measured nothing"
    # no execution was failed as lost but one whose record, tokens or barrier Redis evicted
    # before it ended (give or take the listener's lag): no false alarm
    unprovoked = [e for e in failed if not any(t < ended[e] + 0.25 for t in evicted.get(e, []))]
    assert not unprovoked, unprovoked
    lines = [ln for ln in serve.log().splitlines() if f"{LOST}: execution" in ln]
    assert len(lines) == rune.message_count(DEAD_LETTER) >= len(failed)
    wait_until(lambda: sum(lost_samples(serve).values()) == len(lines), "the losses counted")
