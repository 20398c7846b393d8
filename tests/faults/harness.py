"""Runs one fault scenario end to end and counts what came out.

A scenario gets its own vhost (on the shared broker, or on a private node), its own Redis key
prefix (or a private Redis) and its own temporary directory. The `Run` starts the collector,
publishes the workflow mix as the Rune API does (persistent, publisher-confirmed, before any
fault), starts `runeworker serve`, lets the scenario inject its faults, waits for every
completion, and settles: the execution queue must empty, late duplicates get time to show up,
`serve` is stopped with SIGTERM and the collector drains the status queues. Then the figures
are taken from what the collector recorded, `rabbitmqctl list_queues` and Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import psutil

from runeworker.engine.messages import encode
from runeworker.supervisor.systemd import NOTIFY_VARIABLES

from .collector import COLLECTED, Collector
from .figures import Figures, tally
from .services import (
    DEAD_LETTER_QUEUE,
    EXECUTION_QUEUE,
    SHARED_REDIS,
    PrivateRabbit,
    PrivateRedis,
    Rabbit,
    delete_prefix,
    open_executions,
    wait_for,
)
from .workflows import Planned

REPO = Path(__file__).resolve().parents[2]
FAULT_NODES = "tests.faults.faultnodes"
KEEP_ENV = "RUNEWORKER_FAULTS_KEEP"  # set: keep every scenario's directory, not only failed ones
SETTLE = 2.0  # after the last completion: time for a late duplicate to arrive


def base_config(directory: Path) -> dict[str, dict[str, Any]]:
    """serve's config in every scenario: quick restarts and reconnects, no crash-loop exit
    (the faults are the crashes), metrics files in the scenario's directory."""
    return {
        "worker": {"processes": 3, "timeout": 30.0, "graceful_timeout": 10.0},
        "supervisor": {"restart_backoff": 0.05, "restart_backoff_max": 0.1,
                       "crash_limit": 1_000_000},
        "broker": {"retry_delay": 0.2, "retry_delay_max": 1.0},
        "metrics": {"listen": "", "directory": str(directory / "metrics")},
        "logging": {"format": "text", "level": "INFO"},
    }  # fmt: skip


def merged(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = {name: dict(table) for name, table in base.items()}
    for name, table in extra.items():
        out.setdefault(name, {}).update(table)
    return out


def toml(sections: dict[str, dict[str, Any]]) -> str:
    """TOML text of flat tables (JSON literals are valid TOML for strings and numbers)."""
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Setup:
    """Where one scenario runs."""

    rabbit: Rabbit
    amqp_url: str
    vhost: str
    redis_url: str
    prefix: str
    dir: Path
    private_redis: PrivateRedis | None = None
    private_rabbit: PrivateRabbit | None = None
    # keep `dir` (configs and serve logs) after the scenario
    keep: bool = field(default_factory=lambda: bool(os.environ.get(KEEP_ENV)))


class Fleet:
    """`python -m runeworker serve` in a session of its own (kill reaches every child)."""

    def __init__(self, setup: Setup, config: dict[str, dict[str, Any]]) -> None:
        path = setup.dir / f"serve-{time.monotonic_ns()}.toml"
        path.write_text(toml(config))
        self.log_path = path.with_suffix(".log")
        dropped = {*NOTIFY_VARIABLES, "PROMETHEUS_MULTIPROC_DIR", "RUNTIME_DIRECTORY"}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RUNEWORKER_", "WORKFLOW_")) and k not in dropped}  # fmt: skip
        env.update(RABBITMQ_URL=setup.amqp_url, REDIS_URL=setup.redis_url,
                   RUNEWORKER_REDIS_KEY_PREFIX=setup.prefix, PYTHONPATH=str(REPO),
                   RUNEWORKER_EXTRA_NODE_MODULES=FAULT_NODES)  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runeworker", "serve", "-c", str(path)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        """Live children that have logged that they consume."""
        consuming = {int(p) for p in re.findall(r"child (\d+) consuming ", self.log())}
        try:
            kids = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        live = []
        for kid in kids:
            with contextlib.suppress(psutil.NoSuchProcess):
                if kid.pid in consuming and kid.status() != psutil.STATUS_ZOMBIE:
                    live.append(kid.pid)
        return sorted(live)

    def terminate(self, timeout: float) -> int:
        """SIGTERM (drain) and wait for the exit code; SIGKILL after `timeout`."""
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
class Run:
    """One scenario in progress: what the injectors use."""

    setup: Setup
    plan: list[Planned]
    config: dict[str, dict[str, Any]]
    collector: Collector
    fleets: list[Fleet] = field(default_factory=list)
    faults: int = 0
    events: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    random: random.Random = field(default_factory=lambda: random.Random(0xFA17))

    @property
    def fleet(self) -> Fleet:
        return self.fleets[-1]

    @property
    def ids(self) -> list[str]:
        return [p.execution_id for p in self.plan]

    def start_fleet(self) -> Fleet:
        self.fleets.append(Fleet(self.setup, self.config))
        return self.fleet

    def fault(self, what: str) -> None:
        self.faults += 1
        self.events.append(f"{time.monotonic() - self.started:7.2f}s {what}")

    def progress(self) -> float:
        """The fraction of the expected success/failed statuses seen so far."""
        expected = sum(len(p.statuses) for p in self.plan)
        return self.collector.terminal_seen() / max(expected, 1)

    def finished(self) -> bool:
        return self.collector.completed(self.ids) == len(self.plan)

    def wait_progress(self, fraction: float, timeout: float) -> None:
        wait_for(lambda: self.progress() >= fraction or self.finished(),
                 f"{fraction:.0%} of the statuses", timeout, poll=0.02)  # fmt: skip


def publish(amqp_url: str, plan: list[Planned]) -> None:
    """Start messages as the API publishes them (default exchange, persistent), each
    confirmed by the broker, so that any loss later is the workers'."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2)
        for planned in plan:
            ch.basic_publish("", EXECUTION_QUEUE, encode(planned.message), props, mandatory=True)
    finally:
        conn.close()


@contextlib.contextmanager
def environment(private_rabbit: bool, private_redis: bool) -> Iterator[Setup]:
    """A fresh vhost, key prefix and directory (and private servers when asked for)."""
    with contextlib.ExitStack() as stack:
        rabbit, node = Rabbit(), None
        if private_rabbit:
            node = PrivateRabbit()
            stack.callback(node.stop)
            rabbit = node.rabbit
        redis_server = PrivateRedis() if private_redis else None
        if redis_server is not None:
            stack.callback(redis_server.stop)
        redis_url = redis_server.url if redis_server else SHARED_REDIS
        prefix = f"rwfaults:{uuid.uuid4().hex[:10]}:"
        stack.callback(delete_prefix, redis_url, prefix)
        amqp_url = stack.enter_context(rabbit.vhost())
        directory = Path(tempfile.mkdtemp(prefix="rwfaults-"))
        vhost = amqp_url.rsplit("/", 1)[1]
        setup = Setup(rabbit, amqp_url, vhost, redis_url, prefix, directory, redis_server, node)
        stack.callback(_remove_unless_kept, setup)
        yield setup


def _remove_unless_kept(setup: Setup) -> None:
    if not setup.keep:
        shutil.rmtree(setup.dir, ignore_errors=True)


Inject = Callable[[Run], None]


def run_scenario(
    name: str,
    plan: list[Planned],
    inject: Inject,
    *,
    config: dict[str, dict[str, Any]] | None = None,
    private_rabbit: bool = False,
    private_redis: bool = False,
    timeout: float = 180.0,
    expected_dead: int = 0,
) -> Figures:
    """Run `plan` under `inject` and return the figures. The scenario's directory (configs,
    serve logs) is kept when something is wrong; `Figures.logs` names it."""
    with environment(private_rabbit, private_redis) as setup:
        cfg = merged(base_config(setup.dir), config or {})
        run = Run(setup, plan, cfg, Collector(setup.amqp_url))
        run.collector.start()
        try:
            publish(setup.amqp_url, plan)
            run.started = time.monotonic()
            run.start_fleet()
            inject(run)
            with contextlib.suppress(AssertionError):  # missing completions are a figure
                wait_for(run.finished, "every completion", timeout, poll=0.05)
            elapsed = time.monotonic() - run.started
            exit_code = settle(run)
        finally:
            for fleet in run.fleets:
                fleet.kill()
            run.collector.stop()
        figures = tally(name, plan, run.collector.record, run.faults, elapsed)
        figures.expected_dead, figures.serve_exit, figures.events = (
            expected_dead,
            exit_code,
            run.events,
        )
        leftovers(run, figures)
        setup.keep = setup.keep or bool(figures.problems())
        figures.logs = str(setup.dir) if setup.keep else ""
    return figures


def leftovers(run: Run, figures: Figures) -> None:
    """What the run left behind: messages in the vhost's queues, open executions in Redis."""
    setup = run.setup
    counts = setup.rabbit.queue_counts(setup.vhost)
    figures.left_in_queues = sum(r + u for q, (r, u) in counts.items() if q != DEAD_LETTER_QUEUE)
    figures.dead_lettered = sum(counts.get(DEAD_LETTER_QUEUE, (0, 0)))
    figures.open_in_redis = open_executions(setup.redis_url, setup.prefix, run.ids)


def settle(run: Run) -> int:
    """Let the pool finish and the collector drain; returns serve's exit code on SIGTERM."""
    rabbit, vhost = run.setup.rabbit, run.setup.vhost

    def queue_empty(*queues: str) -> bool:
        counts = rabbit.queue_counts(vhost)
        return all(counts.get(q, (0, 0)) == (0, 0) for q in queues)

    with contextlib.suppress(AssertionError):  # whatever is left is a figure
        wait_for(lambda: queue_empty(EXECUTION_QUEUE), "an empty execution queue", 30, 0.25)
    time.sleep(SETTLE)  # a duplicate has no event to wait for: give it time to show up
    code = run.fleet.terminate(15.0)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: queue_empty(*COLLECTED), "the collector to drain", 15, 0.25)
    return code
