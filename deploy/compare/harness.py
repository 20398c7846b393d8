"""What the Celery and Dramatiq comparisons share: the workload, the completion signal and the
measurement (see README.md beside this file).

The workload is the shape of `runeworker bench`'s chains: N workflows of K steps, one after the
other, each step trivial work on a payload that starts as about 1 KB of JSON records (the bench's
`$input`, `runeworker/bench/workload.py`) and grows by one small output per step, as a Rune
context does. Odd steps format a log-like message, even steps test the level of the step before
(the bench alternates `log` and `conditional`).

The last step of a workflow RPUSHes "<workflow> <steps> <ns>" to a Redis list: one Redis command
per workflow, as runeworker publishes one completion per workflow. The driver counts the list.

The figures are those of `runeworker bench` (`runeworker/bench/contenders.py`): node executions/s
from the first publish to the last completion, CPU of the framework's processes over that phase
(from /proc/<pid>/task/*/schedstat) per node, the CPU of the local RabbitMQ per node, RSS per
process; then workflows one at a time, whose latency divided by K is the per-node latency at low
load.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions
import psutil
import redis

HERE = Path(__file__).resolve().parent
DONE_KEY_ENV = "COMPARE_DONE_KEY"  # the workers read the Redis list to push completions to
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/rune-bench")
# COMPARE_CONFIRM=1: the framework publishes with RabbitMQ publisher confirms (off by default in
# both). Read from the environment because the workers import the app before any flag exists.
CONFIRM = os.environ.get("COMPARE_CONFIRM", "") == "1"


# -- the workload (runs in the workers) ----------------------------------------------------------


def make_payload(workflow: str, nbytes: int = 1024) -> dict[str, Any]:
    """About `nbytes` of JSON records, the shape of the bench's `$input`, for one workflow."""
    records: list[dict[str, Any]] = []
    size = 40
    while size < nbytes:
        i = len(records)
        records.append({"id": i, "name": f"customer-{i:06d}", "score": i * 0.5, "tags": ["a", "b"]})
        size += 70
    return {"run": "bench", "workflow": workflow, "records": records, "steps": 0}


def step_work(payload: dict[str, Any], k: int) -> dict[str, Any]:
    """Step k of a workflow: trivial work that reads the payload and adds one output."""
    if k % 2:
        payload[f"n{k}"] = {"level": "info", "message": f"step {k} of {payload['run']}"}
    elif payload[f"n{k - 1}"]["level"] != "info":
        raise ValueError(f"step {k}: the condition on n{k - 1} is false")
    else:
        payload[f"n{k}"] = {"result": True}
    payload["steps"] += 1
    return payload


_redis: redis.Redis | None = None


def report_done(payload: dict[str, Any]) -> None:
    """Called by the last step: push "<workflow> <steps> <ns>" to the round's Redis list."""
    global _redis  # one client per worker process, made after fork
    if _redis is None:
        _redis = redis.Redis.from_url(REDIS_URL)
    stamp = time.time_ns()
    _redis.rpush(os.environ[DONE_KEY_ENV], f"{payload['workflow']} {payload['steps']} {stamp}")


# -- measuring (runs in the driver) ---------------------------------------------------------------


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """CPU used so far by the processes: schedstat in ns, per thread."""
    total = 0
    for p in procs:
        for stat in Path(f"/proc/{p.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(stat.read_text().split()[0])
    return total / 1e9


def rabbitmq_processes() -> list[psutil.Process]:
    """The local RabbitMQ node serving RABBITMQ_URL (the beam.smp listening on its port), for
    its CPU per node; other Erlang nodes on the machine are not ours to count."""
    port = urlsplit(RABBITMQ_URL).port or 5672
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return [psutil.Process(conn.pid)]
    return []  # not local, or not visible to this user: the column reads 0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile, as `runeworker bench` computes it."""
    if not values:
        return math.nan
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


@dataclass
class Round:
    """One round of one framework."""

    completed: int
    nodes_ok: bool
    rate: float  # node executions/s
    cpu_ms: float  # framework processes, per node
    rabbitmq_ms: float  # per node
    rss_mb: list[float]
    idle_p50: float  # ms per node, one workflow at a time
    idle_p95: float


@dataclass
class Worker:
    """A framework's worker started as a subprocess (its whole process tree is measured)."""

    cmd: list[str]
    queue: str
    consumers: int
    done_key: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, **{DONE_KEY_ENV: self.done_key})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_consumers(self.queue, self.consumers, self.alive, self.log)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[psutil.Process]:
        assert self.proc is not None
        top = psutil.Process(self.proc.pid)
        return [top, *top.children(recursive=True)]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            for p in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    p.kill()
            proc.kill()
            proc.wait()


def wait_consumers(queue: str, count: int, alive: Callable[[], bool], log: Path) -> None:
    """Until `queue` has `count` consumers (passive declare: the framework declares it with
    arguments of its own)."""
    conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    deadline = time.monotonic() + 60
    try:
        while True:
            with contextlib.suppress(pika.exceptions.ChannelClosed):
                ch = conn.channel()
                if ch.queue_declare(queue, passive=True).method.consumer_count >= count:
                    ch.close()
                    return
                ch.close()
            if not alive():
                raise SystemExit(f"the worker exited; its log:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"fewer than {count} consumers on {queue} after 60 s")
            time.sleep(0.2)
    finally:
        conn.close()


def purge(queues: list[str]) -> None:
    """Empty the framework's queues between rounds (a lost message must not leak)."""
    conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        for q in queues:
            with contextlib.suppress(pika.exceptions.ChannelClosed):
                conn.channel().queue_purge(q)
    finally:
        conn.close()


def measure(worker: Worker, publish: Callable[[str], None], args: argparse.Namespace) -> Round:
    """Throughput phase (all workflows at once), then the low-load phase."""
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(worker.done_key)
    procs, rabbit = worker.processes(), rabbitmq_processes()
    cpu0, rabbit0 = cpu_seconds(procs), cpu_seconds(rabbit)
    start = time.time_ns()
    for i in range(args.workflows):
        publish(f"w{i}")
    done = _wait(client, worker, args.workflows, args.timeout)
    cpu, rabbit_cpu = cpu_seconds(procs) - cpu0, cpu_seconds(rabbit) - rabbit0
    rss = [p.memory_info().rss / 2**20 for p in procs]
    seen = {wf: (int(steps), int(ns)) for wf, steps, ns in (d.split() for d in done)}
    nodes = args.workflows * args.nodes
    wall = (max(ns for _s, ns in seen.values()) - start) / 1e9
    latencies: list[float] = []
    for i in range(args.latency_workflows):
        client.delete(worker.done_key)
        sent = time.time_ns()
        publish(f"idle{i}")
        got = client.blpop([worker.done_key], timeout=args.timeout)
        if got is None:
            raise SystemExit(f"low-load workflow {i} did not complete in {args.timeout} s")
        ns = int(got[1].decode().split()[2])
        latencies.append((ns - sent) / 1e6 / args.nodes)
    client.delete(worker.done_key)
    client.close()
    return Round(
        completed=len(seen),
        nodes_ok=all(steps == args.nodes for steps, _ns in seen.values()),
        rate=nodes / wall,
        cpu_ms=cpu * 1e3 / nodes,
        rabbitmq_ms=rabbit_cpu * 1e3 / nodes,
        rss_mb=rss,
        idle_p50=percentile(latencies, 50),
        idle_p95=percentile(latencies, 95),
    )


def _wait(client: redis.Redis, worker: Worker, total: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while client.llen(worker.done_key) < total:
        if not worker.alive():
            raise SystemExit(f"the worker exited; its log:\n{worker.log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            got = client.llen(worker.done_key)
            raise SystemExit(f"timed out after {timeout} s with {got}/{total} workflows complete")
        time.sleep(0.02)
    return [d.decode() for d in client.lrange(worker.done_key, 0, -1)]


def arguments(framework: str) -> argparse.Namespace:
    """The flags both comparison scripts take (named as `runeworker bench` names them)."""
    parser = argparse.ArgumentParser(description=f"{framework} on runeworker bench's workload")
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10, help="steps per workflow")
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--prefetch", type=int, default=10, help="per worker process")
    parser.add_argument("--latency-workflows", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--context", type=int, default=1024, help="payload bytes at the start")
    return parser.parse_args()


def run(
    framework: str,
    args: argparse.Namespace,
    make_worker: Callable[[str, Path], Worker],
    publish: Callable[[str], None],
    queues: list[str],
) -> int:
    """R rounds, each with a fresh worker; prints one line per round and the medians."""
    rounds: list[Round] = []
    print(
        f"{framework}: {args.workflows} workflows x {args.nodes} steps, P={args.processes}, "
        f"prefetch {args.prefetch} per process, payload {args.context} B, "
        f"publisher confirms {'on' if CONFIRM else 'off'}; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(
        "round  workflows  nodes/s  CPU ms/node  RabbitMQ ms/node  low-load p50/p95 ms/node  RSS MB"
    )
    for r in range(args.rounds):
        log = Path(f"/tmp/compare-{framework}-{os.getpid()}.log")
        worker = make_worker(f"compare:{framework}:{uuid.uuid4().hex[:8]}:done", log)
        purge(queues)
        worker.start()
        try:
            res = measure(worker, publish, args)
        finally:
            worker.stop()
            purge(queues)
        rounds.append(res)
        ok = "" if res.completed == args.workflows and res.nodes_ok else "  INCOMPLETE"
        rss = " ".join(f"{m:.1f}" for m in res.rss_mb)
        print(
            f"{r + 1:>5}  {res.completed:>9}  {res.rate:>7.1f}  {res.cpu_ms:>11.3f}  "
            f"{res.rabbitmq_ms:>16.3f}  {res.idle_p50:>10.2f}/{res.idle_p95:<13.2f}  {rss}{ok}",
            flush=True,
        )
    if len(rounds) > 1:
        med = statistics.median
        print(
            f"median: {med(x.rate for x in rounds):.1f} nodes/s, "
            f"{med(x.cpu_ms for x in rounds):.3f} CPU ms/node, "
            f"RabbitMQ {med(x.rabbitmq_ms for x in rounds):.3f} ms/node; "
            f"load {os.getloadavg()[0]:.2f}"
        )
    complete = all(x.completed == args.workflows and x.nodes_ok for x in rounds)
    return 0 if complete else 1
