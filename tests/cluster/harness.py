"""Runs a workflow mix through several `runeworker serve` supervisors against clustered
servers and counts what came out.

The Rune side is the fault suite's (tests/faults): its collector reads every status,
completion and mirror message, `tally` compares them with the plan. What differs here:

- the broker may be several nodes: the collector and the publisher are given the node list
  and reconnect to the next node when theirs dies, and they declare the execution and resume
  queues with the type the workers use (a queue's type must agree on both sides);
- the collector also reads a tap queue bound to `workflow.resume`: every timer a scheduler
  fires is one message there, so a timer fired twice shows as the same bytes twice;
- each supervisor has its own metrics directory, hence its own host lock and scheduler, as
  on separate hosts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
from redis.exceptions import RedisError

from runeworker.adapters.amqp import RESUME_QUEUE, queue_arguments
from runeworker.adapters.redis_state import RedisStore
from runeworker.config import RedisConfig
from runeworker.engine.messages import encode
from runeworker.errors import StateError
from runeworker.supervisor.systemd import NOTIFY_VARIABLES
from tests.faults.collector import COLLECTED, Collector
from tests.faults.figures import Figures, tally
from tests.faults.harness import merged, toml
from tests.faults.services import (
    BOUND_QUEUES,
    DEAD_LETTER_QUEUE,
    EXCHANGE,
    EXECUTION_QUEUE,
    wait_for,
)
from tests.faults.workflows import Planned

from .workloads import resolve, timers_expected

REPO = Path(__file__).resolve().parents[2]
TAP_QUEUE = "rwtest.resume-tap"  # a copy of every message published to workflow.resume
TYPED = (EXECUTION_QUEUE, RESUME_QUEUE)
SETTLE = 3.0  # after the last completion: time for a late duplicate to arrive
# Waiting for the completions ends early once the run is quiescent: nothing new read for QUIET
# seconds, the work queues empty, no timer leased and none due within HORIZON_MS. What is
# missing then can only move on at a timer far in the future (a fan-out merge's 600 s timeout
# after a failover lost a branch), or never: a figure, not a reason to wait out the timeout.
QUIET = 5.0
HORIZON_MS = 60_000
TIMED_OUT = "the scenario's timeout"
KEEP_ENV = "RUNEWORKER_CLUSTER_KEEP"  # set: keep every scenario's directory


def parameters(urls: list[str]) -> list[pika.URLParameters]:
    out = []
    for url in urls:
        params = pika.URLParameters(url)
        params.heartbeat, params.connection_attempts, params.retry_delay = 10, 1, 0.2
        out.append(params)
    return out


def declare(ch: Any, queue_type: str, queues: tuple[str, ...] = BOUND_QUEUES) -> None:
    """The topology as the Rune API would declare it for workers of `queue_type`."""
    ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    for queue in queues:
        arguments = queue_arguments(queue_type) if queue in TYPED else None
        ch.queue_declare(queue, durable=True, arguments=arguments)
        ch.queue_bind(queue, EXCHANGE, routing_key=queue)


class ClusterCollector(Collector):
    """The fault suite's collector over a list of nodes, with typed queues and the tap."""

    every_copy = (TAP_QUEUE,)  # a timer fired twice is its payload twice

    def __init__(self, urls: list[str], queue_type: str) -> None:
        super().__init__(urls[0])
        self.urls = urls
        self.queue_type = queue_type
        self.fired: Counter[bytes] = Counter()  # digest of a fired timer's payload -> times

    def _consume(self) -> None:
        conn = pika.BlockingConnection(parameters(self.urls))
        try:
            ch = conn.channel()
            declare(ch, self.queue_type)
            # typed like the work queues: a classic tap lives on one node, which may be killed
            ch.queue_declare(TAP_QUEUE, durable=True, arguments=queue_arguments(self.queue_type))
            ch.queue_bind(TAP_QUEUE, EXCHANGE, routing_key=RESUME_QUEUE)
            ch.basic_qos(prefetch_count=500)
            for queue in (*COLLECTED, TAP_QUEUE):
                ch.basic_consume(queue, self._callback(queue))
            self._connected.set()
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.1)
        finally:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                conn.close()

    def activity(self) -> int:
        """How many messages have been read so far (statuses, completions, fired timers)."""
        with self.lock:
            rec = self.record
            done = sum(len(c) for c in rec.completions.values())
            return sum(rec.statuses.values()) + done + sum(self.fired.values())

    def _add(self, queue: str, body: bytes) -> None:
        if queue == TAP_QUEUE:
            self.fired[hashlib.blake2b(body, digest_size=16).digest()] += 1
        else:
            super()._add(queue, body)


def publish(urls: list[str], plan: list[Planned]) -> None:
    """Start messages as the API publishes them, each confirmed by the broker."""
    conn = pika.BlockingConnection(parameters(urls))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2)
        for planned in plan:
            ch.basic_publish("", EXECUTION_QUEUE, encode(planned.message), props, mandatory=True)
    finally:
        conn.close()


class Supervisor:
    """`python -m runeworker serve -c FILE` in a session of its own, as one host would run it."""

    def __init__(self, directory: Path, name: str, config: dict[str, dict[str, Any]]) -> None:
        self.name = name
        path = directory / f"{name}.toml"
        path.write_text(toml(config))
        self.log_path = directory / f"{name}.log"
        dropped = {*NOTIFY_VARIABLES, "PROMETHEUS_MULTIPROC_DIR", "RUNTIME_DIRECTORY"}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RUNEWORKER_", "WORKFLOW_", "RABBITMQ_", "REDIS_"))
               and k not in dropped}  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runeworker", "serve", "-c", str(path)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -1

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@dataclass
class Where:
    """The servers of a scenario: each supervisor's broker URLs (its node order), the queue
    type, the `[redis]` section, and how to read the broker's queue counts."""

    broker_urls: list[list[str]]
    queue_type: str
    redis: dict[str, Any]
    queue_counts: Callable[[], dict[str, tuple[int, int]]]


@dataclass
class ClusterFigures:
    """The fault suite's figures plus the timers and what the scenario measured."""

    figures: Figures
    timers_expected: int = 0  # at most: a merge released in time cancels its timer
    timers_fired: int = 0  # distinct timers seen on the tap (a lost one shows as a missing
    # completion: its execution never resumes)
    timers_doubled: int = 0  # copies beyond the first, per timer: a figure, not a problem
    # (a scheduler's commit in doubt publishes its timers again, a lease that runs out fires
    # a timer again; the receipts make the resumed step run once, which the statuses check)
    measured: dict[str, float] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)  # problems per workflow kind
    logs: str = ""
    stopped: str = ""  # why the wait for completions ended before all came ("" = all came)

    def problems(self, *, excused: tuple[str, ...] = ()) -> list[str]:
        """What is wrong; problems of the `excused` kinds are figures, not failures."""
        out = [p for p in self.figures.problems() if not excused]
        if excused:
            out += [f"{n} problems in {kind}" for kind, n in self.by_kind.items()
                    if n and kind not in excused]  # fmt: skip
        if self.timers_fired > self.timers_expected:
            out.append(f"{self.timers_fired} timers fired, at most {self.timers_expected} planned")
        if TIMED_OUT in self.stopped:  # busy to the end: stuck, not quiescent
            out.append(f"the run neither finished nor went quiet: {self.stopped}")
        return out

    def explain(self) -> str:
        lines = [self.figures.explain(), f"  timers: {self.timers_fired} fired of "
                 f"{self.timers_expected}, {self.timers_doubled} doubled",
                 f"  problems by kind: {self.by_kind}", f"  measured: {self.measured}"]  # fmt: skip
        if self.stopped:
            lines.append(f"  stopped waiting: {self.stopped}")
        if self.logs:
            lines.append(f"  supervisor logs kept in {self.logs}")
        return "\n".join(lines)


@dataclass
class Run:
    """A scenario in progress: what an injector uses."""

    where: Where
    plan: list[Planned]
    collector: ClusterCollector
    dir: Path
    supervisors: list[Supervisor] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    measured: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def ids(self) -> list[str]:
        return [p.execution_id for p in self.plan]

    def event(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:7.2f}s {what}")

    def progress(self) -> float:
        expected = sum(len(p.statuses) for p in self.plan)
        return self.collector.terminal_seen() / max(expected, 1)

    def finished(self) -> bool:
        return self.collector.completed(self.ids) == len(self.plan)

    def wait_progress(self, fraction: float, timeout: float) -> None:
        wait_for(lambda: self.progress() >= fraction or self.finished(),
                 f"{fraction:.0%} of the statuses", timeout, poll=0.02)  # fmt: skip

    def stall_after(self, since: float, timeout: float = 120.0) -> float:
        """Seconds from `since` (monotonic) until a new success/failed status arrives: how
        long the pool made no progress after a fault."""
        seen = self.collector.terminal_seen()
        wait_for(lambda: self.collector.terminal_seen() > seen or self.finished(),
                 "progress after the fault", timeout, poll=0.02)  # fmt: skip
        return time.monotonic() - since


def base_config(directory: Path, where: Where, index: int, prefix: str) -> dict[str, Any]:
    """One supervisor's config: its node order, quick reconnects, its own metrics directory
    (so its own host lock), a short Redis timeout so a dead master is noticed quickly."""
    return {
        "broker": {"urls": where.broker_urls[index], "queue_type": where.queue_type,
                   "retry_delay": 0.2, "retry_delay_max": 1.0, "heartbeat": 10,
                   "connection_attempts": 1},
        "redis": {**where.redis, "key_prefix": prefix, "socket_timeout": 1.0},
        "worker": {"processes": 2, "timeout": 30.0, "graceful_timeout": 10.0},
        "supervisor": {"restart_backoff": 0.1, "restart_backoff_max": 0.5,
                       "crash_limit": 1_000_000},
        "metrics": {"listen": "", "directory": str(directory / f"metrics-{index}")},
        "logging": {"format": "text", "level": "INFO"},
    }  # fmt: skip


Inject = Callable[[Run], None]


def open_executions(redis_section: dict[str, Any], prefix: str, ids: list[str]) -> list[str]:
    """The executions that still have live branch tokens."""
    store = RedisStore.from_config(RedisConfig(**redis_section, key_prefix=prefix))
    try:
        pipe = store._client.pipeline(transaction=False)
        for eid in ids:
            pipe.exists(store.keys_of(eid)[0])
        return [eid for eid, n in zip(ids, pipe.execute(), strict=True) if int(n)]
    finally:
        store.close()


def delete_prefix(redis_section: dict[str, Any], prefix: str) -> None:
    store = RedisStore.from_config(RedisConfig(**redis_section))
    client: Any = store._client
    try:
        if hasattr(client, "get_primaries"):  # a cluster: each primary holds some keys
            for node in client.get_primaries():
                for key in client.scan_iter(match=prefix + "*", target_nodes=node):
                    client.delete(key)
        else:
            for key in client.scan_iter(match=prefix + "*", count=1000):
                client.delete(key)
    finally:
        store.close()


@contextlib.contextmanager
def _directory() -> Iterator[tuple[Path, list[bool]]]:
    directory = Path(tempfile.mkdtemp(prefix="rwcluster-run-"))
    keep = [bool(os.environ.get(KEEP_ENV))]
    try:
        yield directory, keep
    finally:
        if not keep[0]:
            shutil.rmtree(directory, ignore_errors=True)


def run_scenario(
    name: str,
    where: Where,
    plan: list[Planned],
    inject: Inject,
    *,
    supervisors: int = 2,
    timeout: float = 300.0,
    config: dict[str, dict[str, Any]] | None = None,
    excused: tuple[str, ...] = (),
) -> ClusterFigures:
    """Publish `plan`, start the supervisors, `inject` faults, wait for every completion,
    settle, and return the figures."""
    prefix = f"rwcluster:{uuid.uuid4().hex[:10]}:"
    all_urls = list(dict.fromkeys(u for urls in where.broker_urls for u in urls))
    with _directory() as (directory, keep):
        collector = ClusterCollector(all_urls, where.queue_type)
        run = Run(where, plan, collector, directory)
        collector.start()
        try:
            publish(all_urls, plan)
            run.started = time.monotonic()
            for i in range(supervisors):
                cfg = merged(base_config(directory, where, i, prefix), config or {})
                run.supervisors.append(Supervisor(directory, f"serve-{i}", cfg))
            inject(run)
            stopped = _wait_completions(run, prefix, timeout)  # missing ones are a figure
            if stopped:
                missing = len(plan) - collector.completed(run.ids)
                stopped = f"{missing} completions missing; {stopped}"
                run.event(f"stopped waiting: {stopped}")
            elapsed = time.monotonic() - run.started
            exit_codes = _settle(run)
            for i in range(supervisors):
                run.measured[f"serve_{i}_acked"] = acked(directory / f"metrics-{i}")
        finally:
            for sup in run.supervisors:
                sup.kill()
            collector.stop()
        faults = sum("SIGKILL" in event for event in run.events)
        rec = collector.record
        plan = resolve(plan, rec.completions, rec.terminal)
        figures = tally(name, plan, rec, faults, elapsed)
        figures.events = run.events
        figures.serve_exit = max(exit_codes, key=abs, default=0)
        counts = where.queue_counts()
        ignored = (DEAD_LETTER_QUEUE, TAP_QUEUE)
        figures.left_in_queues = sum(r + u for q, (r, u) in counts.items() if q not in ignored)
        figures.dead_lettered = sum(counts.get(DEAD_LETTER_QUEUE, (0, 0)))
        if rec.repeated:  # a commit in doubt published again: the same message twice
            run.measured["messages_repeated"] = rec.repeated
        still_open = set(open_executions(where.redis, prefix, run.ids))
        figures.open_in_redis = len(still_open)
        for p in plan:
            if p.execution_id in still_open:
                key = f"open_in_redis_{p.kind}"
                run.measured[key] = run.measured.get(key, 0) + 1
        bad = _wrong(plan, collector)
        if bad:  # what the statuses and Redis say of them, for the kept directory
            _write_evidence(directory / "wrong-executions.txt", where.redis, prefix, bad,
                            collector)  # fmt: skip
        delete_prefix(where.redis, prefix)
        out = ClusterFigures(figures, timers_expected(plan), len(collector.fired),
                             sum(n - 1 for n in collector.fired.values()), run.measured,
                             _by_kind(plan, collector))  # fmt: skip
        out.stopped = stopped
        keep[0] = keep[0] or bool(out.problems(excused=excused))
        out.logs = str(directory) if keep[0] else ""
        return out


def _wait_completions(run: Run, prefix: str, timeout: float) -> str:
    """Wait until every completion is in, the run is quiescent (see QUIET) or `timeout` s
    have passed; "" when every completion came, else why the wait ended."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while not run.finished():
        now = time.monotonic()
        if now > deadline:
            return f"{TIMED_OUT} ({timeout:g} s) ran out"
        activity = run.collector.activity()
        if activity != seen:
            seen, since = activity, now
        elif now - since >= QUIET:
            idle = _quiescent(run, prefix)
            if idle:
                return idle
            since = now  # busy somewhere we do not read: look again after QUIET
        time.sleep(0.1)
    return ""


def _quiescent(run: Run, prefix: str) -> str:
    """Why nothing more can happen within HORIZON_MS ("" when something still may): the
    execution and resume queues empty, no timer leased, none due within the horizon."""
    with contextlib.suppress(RuntimeError, subprocess.SubprocessError, RedisError, StateError):
        counts = run.where.queue_counts()
        if any(counts.get(q, (0, 0)) != (0, 0) for q in (EXECUTION_QUEUE, RESUME_QUEUE)):
            return ""
        store = RedisStore.from_config(RedisConfig(**run.where.redis, key_prefix=prefix))
        try:
            timers, processing, _ = store._timer_keys()
            leased = int(store._client.zcard(processing))
            first = store._client.zrange(timers, 0, 0, withscores=True)
        finally:
            store.close()
        now_ms = time.time_ns() // 1_000_000
        due_in = (int(first[0][1]) - now_ms) if first else None
        if leased or (due_in is not None and due_in <= HORIZON_MS):
            return ""
        after = "no timer" if due_in is None else f"the next timer is due in {due_in / 1000:.0f} s"
        return f"quiescent for {QUIET:g} s: work queues empty, no timer leased, {after}"
    return ""  # a server that does not answer now may answer later: keep waiting


def acked(metrics_dir: Path) -> float:
    """Deliveries one supervisor's children acked (its share of the queue), from its
    multiprocess metrics files."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(metrics_dir))
    return sum(
        s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == "runeworker_deliveries_total" and s.labels.get("outcome") == "acked"
    )


def _wrong(plan: list[Planned], collector: ClusterCollector) -> list[str]:
    """The executions with any wrong outcome (see `_by_kind`), at most 20."""
    rec = collector.record
    out = []
    for p in plan:
        got = rec.completions.get(p.execution_id, [])
        seen = [rec.terminal.get((p.execution_id, n), []) for n in p.statuses]
        if got != [p.completion] or seen != [[s] for s in p.statuses.values()]:
            out.append(p.execution_id)
    return out[:20]


def _write_evidence(
    path: Path, redis_section: dict[str, Any], prefix: str, ids: list[str],
    collector: ClusterCollector,
) -> None:  # fmt: skip
    """Each execution's terminal statuses and completions as read, and its Redis keys."""
    store = RedisStore.from_config(RedisConfig(**redis_section, key_prefix=prefix))
    client: Any = store._client
    lines: list[str] = []
    try:
        for eid in ids:
            rec = collector.record
            lines.append(f"== {eid} completions {rec.completions.get(eid, [])}")
            lines += [f"  {node}: {got}" for (e, node), got in rec.terminal.items() if e == eid]
            for key in sorted(client.scan_iter(match=f"{prefix}exec:{{{eid}}}*", count=1000)):
                kind = client.type(key).decode()
                value: Any = {
                    "string": client.get, "hash": client.hgetall, "set": client.smembers,
                    "list": lambda k: client.lrange(k, 0, -1),
                }.get(kind, lambda _k: "?")(key)  # fmt: skip
                lines.append(f"  {key.decode()[len(prefix) :]} ({kind}): {value!r:.600}")
    except (RedisError, StateError) as exc:
        lines.append(f"Redis did not answer: {exc}")
    finally:
        store.close()
    path.write_text("\n".join(lines) + "\n")


def _by_kind(plan: list[Planned], collector: ClusterCollector) -> dict[str, int]:
    """Executions with any wrong outcome (completion missing, doubled or wrong; a node
    status missing, doubled or wrong), per workflow kind."""
    rec = collector.record
    out: Counter[str] = Counter()
    for p in plan:
        eid = p.execution_id
        got = rec.completions.get(eid, [])
        bad = len(got) != 1 or got[0] != p.completion
        for node, status in p.statuses.items():
            seen = rec.terminal.get((eid, node), [])
            bad = bad or seen != [status]
        out[p.kind] += bad
    for kind in {p.kind for p in plan}:
        out.setdefault(kind, 0)
    return dict(out)


def _settle(run: Run) -> list[int]:
    """Let the pools finish and the collector drain; serve's exit codes on SIGTERM."""

    def empty(*queues: str) -> bool:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            counts = run.where.queue_counts()
            return all(counts.get(q, (0, 0)) == (0, 0) for q in queues)
        return False

    with contextlib.suppress(AssertionError):
        wait_for(lambda: empty(EXECUTION_QUEUE, RESUME_QUEUE), "empty work queues", 60, 0.5)
    time.sleep(SETTLE)  # a duplicate has no event to wait for: give it time to show up
    codes = [sup.terminate(20.0) for sup in run.supervisors]
    with contextlib.suppress(AssertionError):
        wait_for(lambda: empty(*COLLECTED, TAP_QUEUE), "the collector to drain", 20, 0.5)
    return codes
