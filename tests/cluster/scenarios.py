"""The cluster scenarios: which servers, which supervisors, what breaks and when.

Faults are placed by progress (the fraction of planned success/failed statuses seen), so they
land mid-run whatever the speed of the machine. Each scenario returns `ClusterFigures`; the
tests assert on them and `python -m tests.cluster.report` prints them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pika

from tests.faults.services import Rabbit, wait_for

from .harness import ClusterFigures, Run, Where, declare, parameters, run_scenario
from .servers import ClusterRedis, RabbitCluster, SentinelRedis
from .workloads import mix

SHARED_REDIS = {"url": "redis://127.0.0.1:6379/0"}
# kinds whose steps share Redis state across messages (branch tokens, barriers, timers): a
# write the master acknowledged but had not replicated is lost with it
SHARED_STATE_KINDS = ("fan", "merge-timeout", "wait")


@contextlib.contextmanager
def shared_broker() -> Iterator[tuple[str, Rabbit, str]]:
    """A vhost of its own on the machine's RabbitMQ: (URL, rabbit, vhost)."""
    rabbit = Rabbit()
    with rabbit.vhost() as url:
        yield url, rabbit, url.rsplit("/", 1)[1]


def _nothing(_run: Run) -> None:
    return None


def two_supervisors_timers(count: int) -> ClusterFigures:
    """Two supervisors, each with its own host lock and scheduler, on one broker and one
    Redis: they share the execution queue and every timer fires exactly once."""
    with shared_broker() as (url, rabbit, vhost):
        where = Where([[url], [url]], "classic", SHARED_REDIS,
                      lambda: rabbit.queue_counts(vhost))  # fmt: skip
        return run_scenario("two-supervisors", where, mix(count), _nothing)


def redis_cluster_mix(count: int) -> ClusterFigures:
    """The whole mix (splits of branches, merges, waits, merge timers) on a 3-master Redis
    Cluster: every script and transaction keeps to one hash slot, or the cluster refuses it."""
    with shared_broker() as (url, rabbit, vhost), _started(ClusterRedis) as cluster:
        redis = {"url": cluster.url, "cluster": True}
        where = Where([[url], [url]], "classic", redis, lambda: rabbit.queue_counts(vhost))
        return run_scenario("redis-cluster", where, mix(count), _nothing)


def sentinel_master_killed(count: int) -> ClusterFigures:
    """Redis Sentinel (1 master, 2 replicas, 3 sentinels); the master is killed (SIGKILL)
    at 30% of the run and stays down. Measures the failover window (kill -> the sentinels
    name a new master) and the stall (kill -> the next node status)."""
    with shared_broker() as (url, rabbit, vhost), _started(SentinelRedis) as sentinel:
        redis = {"url": "redis://127.0.0.1:6379/0", "sentinels": sentinel.addresses,
                 "service_name": sentinel.SERVICE}  # fmt: skip
        where = Where([[url], [url]], "classic", redis, lambda: rabbit.queue_counts(vhost))

        def kill_master(run: Run) -> None:
            run.wait_progress(0.3, timeout=180)
            old = sentinel.master_port()
            lag = _replication_lag(sentinel, old)
            sentinel.process_on(old).kill()
            killed = time.monotonic()
            run.event(f"SIGKILL Redis master :{old} at {run.progress():.0%} (lag {lag} B)")
            run.measured["replica_lag_bytes_at_kill"] = lag
            wait_for(lambda: _new_master(sentinel, old), "a new master", 60, poll=0.05)
            run.measured["failover_seconds"] = round(time.monotonic() - killed, 2)
            run.event(f"sentinels promoted :{sentinel.master_port()}")
            run.measured["stall_seconds"] = round(run.stall_after(killed), 2)

        return run_scenario("sentinel-kill", where, mix(count), kill_master,
                            excused=SHARED_STATE_KINDS)  # fmt: skip


def rabbit_node_killed(count: int) -> ClusterFigures:
    """A 3-node RabbitMQ cluster with quorum execution and resume queues whose leaders are on
    node b; supervisor 0 is connected to b (its list is b, a, c), supervisor 1 to c. Node b
    is killed (SIGKILL) at 30% of the run, and started again once the pool moves on."""
    with _started(RabbitCluster) as cluster:
        a, b, c = cluster.nodes
        _declare_through(b.url, quorum=True)  # quorum leaders on b
        _declare_through(a.url, quorum=False)  # the Rune API's classic queues on a

        def counts() -> dict[str, tuple[int, int]]:
            return _queue_counts(a)

        where = Where([[b.url, a.url, c.url], [c.url, a.url, b.url]], "quorum", SHARED_REDIS,
                      counts)  # fmt: skip

        def kill_b(run: Run) -> None:
            leader = b.name  # declared through b (rabbitmqctl takes seconds: not mid-run)
            run.wait_progress(0.3, timeout=240)
            b.kill()
            killed = time.monotonic()
            run.event(f"SIGKILL RabbitMQ node b at {run.progress():.0%} (leader was {leader})")
            run.measured["stall_seconds"] = round(run.stall_after(killed), 2)
            run.measured["new_leader_seconds"] = round(
                _wait_leader_change(a, "workflow.execution", leader, killed), 2
            )
            run.event(f"new leader {_leader(a, 'workflow.execution')}; restarting b")
            b.start()
            run.measured["node_restart_seconds"] = round(time.monotonic() - killed, 2)
            run.event("node b running again")

        return run_scenario("rabbit-node-kill", where, mix(count), kill_b, timeout=600)


# -- helpers --------------------------------------------------------------------------------


@contextlib.contextmanager
def _started(make: Any) -> Iterator[Any]:
    servers = make()
    try:
        yield servers
    finally:
        servers.stop()


def _declare_through(url: str, *, quorum: bool) -> None:
    """Declare (as the Rune API would) the typed queues or the classic ones through `url`'s
    node: a queue's leader (quorum) or home (classic) is the declaring node."""
    conn = pika.BlockingConnection(parameters([url]))
    try:
        queues = ("workflow.execution", "workflow.resume")
        if not quorum:
            queues = ("workflow.node.status", "workflow.completion", "workflow.worker.initiated")
        declare(conn.channel(), "quorum", queues)
    finally:
        conn.close()


def _queue_counts(node: Any) -> dict[str, tuple[int, int]]:
    out = node.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged",
                   "--formatter", "json")  # fmt: skip
    rows = json.loads(out) if out.strip() else []
    return {r["name"]: (r["messages_ready"], r["messages_unacknowledged"]) for r in rows}


def _leader(node: Any, queue: str) -> str:
    out = node.ctl("list_queues", "name", "leader", "--formatter", "json")
    rows = json.loads(out) if out.strip() else []
    return next((str(r.get("leader", "")) for r in rows if r["name"] == queue), "")


def _wait_leader_change(node: Any, queue: str, old: str, since: float) -> float:
    wait_for(lambda: _leader(node, queue) not in ("", old), "a new leader", 60, poll=0.1)
    return time.monotonic() - since


def _replication_lag(sentinel: SentinelRedis, master_port: int) -> int:
    """Bytes the slowest replica was behind the master just before the kill: the master's
    offset, then each replica's own (what it has applied; the master's view of it is up to a
    second old), read right after, so a replica that caught up meanwhile counts 0."""
    client = sentinel.process_on(master_port).client()
    try:
        offset = int(client.info("replication").get("master_repl_offset", 0))
    finally:
        client.close()
    behind = 0
    for replica in (p for p in sentinel.data if p.port != master_port and p.proc is not None):
        client = replica.client()
        try:
            applied = int(client.info("replication").get("slave_repl_offset", 0))
        finally:
            client.close()
        behind = max(behind, offset - applied)
    return behind


def _new_master(sentinel: SentinelRedis, old: int) -> bool:
    with contextlib.suppress(AssertionError):
        return sentinel.master_port() != old
    return False


SCENARIOS = {
    "two-supervisors": two_supervisors_timers,
    "redis-cluster": redis_cluster_mix,
    "sentinel-kill": sentinel_master_killed,
    "rabbit-node-kill": rabbit_node_killed,
}
