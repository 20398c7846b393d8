"""The two contenders of `runeworker bench`, measured one after the other on one broker vhost:
the floor (bare pika processes) and `runeworker serve` (a subprocess, its own queue and Redis
key prefix). Each one runs a throughput phase (all workflows at once; CPU and RSS are taken
around it) and a low-load phase (one workflow at a time; latency).

Both follow `broker.queue_type`: every queue is declared with the type `runeworker serve`
gives the queue it is or stands for (`serve_queues`: the execution queue, the resume queue and
the dead-letter queue get the type, Rune's status, completion and mirror queues stay classic),
and on quorum queues the floor commits with publisher confirms, as runeworker does."""

from __future__ import annotations

import calendar
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pika.exceptions
import psutil
import redis

from runeworker.adapters.amqp import (
    AMQP_ERRORS,
    COMPLETION_QUEUE,
    MIRROR_QUEUE,
    STATUS_QUEUE,
    Endpoint,
    typed_queues,
)
from runeworker.bench.floor import FloorPool, FloorQueues, declare
from runeworker.bench.workload import (
    BenchError,
    Figures,
    Got,
    Load,
    Trace,
    Wire,
    Workload,
    drive,
    figures,
)
from runeworker.config import GO_ENV_VARS, BrokerConfig, Config

_SERVICES = {"beam.smp": "rabbitmq", "redis-server": "redis"}
RUNE_OUTPUTS = [STATUS_QUEUE, COMPLETION_QUEUE, MIRROR_QUEUE]
_PRECONDITION_FAILED = 406

Send = Callable[[Trace, int], None]  # publish workflow i, recording its publish time
Parse = Callable[[Trace, dict[str, list[Got]], list[str]], None]  # received -> trace


@dataclass
class Result:
    """Everything measured for one contender at one load."""

    name: str
    load: Figures
    idle: Figures
    cpu_ms_per_node: float  # user + system of the contender's processes, throughput phase
    rss_mb: list[float]  # per process, after the throughput phase
    services_ms_per_node: dict[str, float] = field(default_factory=dict)  # rabbitmq, redis
    rss_start_mb: list[float] = field(default_factory=list)  # per process, before any work


class _Status(msgspec.Struct):
    execution_id: str
    node_id: str
    status: str
    executed_at: str


class _Completion(msgspec.Struct):
    execution_id: str
    status: str
    completed_at: str


_statuses = msgspec.json.Decoder(_Status)
_completions = msgspec.json.Decoder(_Completion)


_NOT_OURS = "a message the bench's workflows do not publish"


def _foreign(queue: str, what: str) -> BenchError:
    """Another producer publishes to the bench's vhost: its messages were counted among the
    round's, so the round's figures cannot be trusted."""
    return BenchError(
        f"{queue} received {what}, which this round did not start: another producer or "
        "worker uses this vhost; run the bench in a vhost of its own (deploy/PERFORMANCE.md)"
    )


def _stamp(trace: Trace, queue: str, stamp: str | None) -> tuple[str, int, int]:
    """The floor's correlation id `workflow.step.ns` of one of its messages."""
    try:
        w, k, ns = (stamp or "").split(".")
        found = w, int(k), int(ns)
    except ValueError:
        raise _foreign(queue, "a message the floor does not publish") from None
    if w not in trace.published:
        raise _foreign(queue, f"a message of workflow {w!r}")
    return found


@functools.lru_cache(maxsize=4096)
def _seconds(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))


def rfc3339_ns(stamp: str) -> int:
    """'2024-01-02T03:04:05.123456789Z' -> nanoseconds since the epoch."""
    return _seconds(stamp[:19]) * 1_000_000_000 + int(stamp[20:29].ljust(9, "0"))


def _cpu(procs: list[psutil.Process]) -> float:
    """CPU seconds the processes have used so far. Linux's per-thread schedstat counts in
    nanoseconds; psutil's user + system (clock ticks of 10 ms) is the fallback."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += _schedstat(p.pid) or sum(p.cpu_times()[:2])
    return total


def _schedstat(pid: int) -> float:
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[0])
    return total / 1e9


def _rss_mb(procs: list[psutil.Process]) -> list[float]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            out.append(p.memory_info().rss / 2**20)
    return out


def serve_queues(b: BrokerConfig, queue: str) -> dict[str, dict[str, Any] | None]:
    """Every queue `runeworker serve` declares with `b` and execution queue `queue`, with the
    arguments it declares it with (runeworker.child.services' topology, `Broker.declare`): None
    for a classic queue."""
    typed = typed_queues(msgspec.structs.replace(b, queue=queue))
    declared = [queue, b.resume_queue, *RUNE_OUTPUTS, b.dead_letter_queue]
    return {q: typed.get(q) for q in declared}


def _services() -> dict[str, list[psutil.Process]]:
    """The local RabbitMQ and Redis processes, when this machine runs them (for their CPU)."""
    found: dict[str, list[psutil.Process]] = {}
    for p in psutil.process_iter(["name"]):
        name = _SERVICES.get(p.info["name"] or "")
        if name:
            found.setdefault(name, []).append(p)
    return found


class BenchRun:
    """One bench run against the configured vhost; `close` removes what it created."""

    def __init__(self, cfg: Config, *, discard_waiting: bool = False) -> None:
        self.cfg = cfg
        self.run_id = uuid.uuid4().hex[:10]
        self.prefix = f"{cfg.redis.key_prefix}bench:{self.run_id}:"
        self.endpoint = Endpoint.of(cfg.broker)
        self.wire = Wire(self.endpoint)
        self.workdir = Path(tempfile.mkdtemp(prefix="runeworker-bench-"))
        self.services = _services()
        self._queues: list[str] = []
        try:
            with self.endpoint.errors("cannot check the vhost"):
                self._check(discard_waiting)
        except BaseException:
            self.close()
            raise

    def _check(self, discard_waiting: bool) -> None:
        """The queues `runeworker serve` will declare must have the type it declares them with,
        the bench consumes the vhost's status, completion and mirror queues: nobody else may,
        and what waits there must be the bench's to throw away."""
        self.wire.ch.exchange_declare(self.cfg.broker.exchange, exchange_type="topic", durable=True)
        self._check_types()
        for q in RUNE_OUTPUTS:
            consumers, waiting = self.wire.consumers_and_messages(q)
            self.wire.ch.queue_bind(q, self.cfg.broker.exchange, routing_key=q)
            if consumers:
                raise BenchError(
                    f"{q} has {consumers} consumer(s) in this vhost; the bench would compete "
                    "with them: point it at a vhost of its own"
                )
            if waiting and not discard_waiting:
                raise BenchError(
                    f"{q} holds {waiting} message(s) the bench would consume and discard; "
                    "use a vhost of its own, or --discard-waiting if they are leftovers"
                )

    def _check_types(self) -> None:
        """Declare, as `runeworker serve` will, the queues of the vhost it shares with earlier
        runs (all but its execution queue, which is the bench's own): a queue declared before
        with another type (a vhost used by a bench of the other `broker.queue_type`) would make
        every child's declare fail, and the bench wait for consumers that never come. Each
        queue on a channel of its own: the broker closes the channel of a refused declare."""
        b = self.cfg.broker
        own = f"runeworker.bench.{self.run_id}"
        shared = {q: args for q, args in serve_queues(b, own).items() if q != own}
        self.wire.typed.update({q: args for q, args in shared.items() if args is not None})
        refused: list[str] = []
        for q, arguments in shared.items():
            ch = self.wire.conn.channel()
            try:
                ch.queue_declare(q, durable=True, arguments=arguments)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != _PRECONDITION_FAILED:
                    raise
                refused.append(f"{q} ({exc.reply_text})")
            else:
                ch.close()
        if refused:
            declared = (
                "without arguments" if b.queue_type == "classic" else f"x-queue-type {b.queue_type}"
            )
            raise BenchError(
                f"this vhost holds queues of another type than runeworker serve declares them "
                f"with broker.queue_type = {b.queue_type!r} ({declared}), so its children could "
                f"not start: {'; '.join(refused)}. A queue's type is fixed when it is first "
                "declared: run the bench in a fresh vhost (one per queue type), or delete those "
                "queues from this vhost if nothing else uses them"
            )

    def compare(
        self, load: Load, work: Workload, *, runeworker_first: bool = False
    ) -> tuple[Result, Result]:
        """(floor, runeworker) at `load`, measured in the order asked for."""
        with self.endpoint.errors("the bench lost the broker"):
            if runeworker_first:
                rw = self.runeworker(load, work)
                return self.floor(load, work), rw
            return self.floor(load, work), self.runeworker(load, work)

    @property
    def confirm(self) -> bool:
        """Whether runeworker commits with publisher confirms (`Broker.of`), and so the floor."""
        return self.cfg.broker.queue_type == "quorum"

    # -- the floor ---------------------------------------------------------------------------

    def floor(self, load: Load, work: Workload) -> Result:
        base = f"runeworker.bench.{self.run_id}.floor"
        fq = FloorQueues(
            self.cfg.broker.exchange, base, f"{base}.status", f"{base}.completion", f"{base}.mirror"
        )
        # each floor queue has the type of the runeworker queue it stands for
        rw = serve_queues(self.cfg.broker, fq.work)
        stands_for = zip(fq.all, [fq.work, *RUNE_OUTPUTS], strict=True)
        typed = {q: args for q, rq in stands_for if (args := rw[rq]) is not None}
        self.wire.typed.update(typed)
        declare(self.wire.ch, fq, typed)
        self._queues += fq.all
        pool = FloorPool(self.endpoint.urls[0], fq, work.sizes, self.cfg.redis.url, self.prefix)
        pool.start(
            load.processes,
            load.prefetch,
            self.cfg.broker.batch_max,
            work.http_url,
            confirm=self.confirm,
        )
        try:
            self.wire.wait_consumers(fq.work, load.processes, pool.alive, timeout=60)
            procs = [psutil.Process(pid) for pid in pool.pids]
            outputs = [fq.status, fq.completion, fq.mirror]
            start = work.sizes.messages[0] * b"x"

            def send(trace: Trace, i: int) -> None:
                trace.published[str(i)] = time.time_ns()
                self.wire.publish(fq.work, start, message_id=f"{i}.0")

            return self._measure("floor", load, work, procs, outputs, send, self._floor_trace)
        finally:
            pool.stop()

    @staticmethod
    def _floor_trace(trace: Trace, got: dict[str, list[Got]], outputs: list[str]) -> None:
        status, completion = outputs[0], outputs[1]
        for props, _body in got[status]:
            stamp = getattr(props, "correlation_id", None)
            if getattr(props, "type", None):
                continue  # the merge's waiting status
            if stamp is None:
                trace.running += 1
                continue
            w, k, ns = _stamp(trace, status, stamp)
            trace.success.setdefault(w, {})[k] = ns
            trace.successes += 1
        for props, _body in got[completion]:
            w, _k, ns = _stamp(trace, completion, getattr(props, "correlation_id", None))
            trace.completed[w] = ns
            trace.completions += 1

    # -- runeworker --------------------------------------------------------------------------

    def runeworker(self, load: Load, work: Workload) -> Result:
        queue = f"runeworker.bench.{self.run_id}"
        arguments = serve_queues(self.cfg.broker, queue)[queue]
        if arguments is not None:
            self.wire.typed[queue] = arguments
        self.wire.consumers_and_messages(queue)  # declared first, so consumers can be counted
        self._queues.append(queue)

        def send(trace: Trace, _i: int) -> None:
            body = work.start(eid := str(uuid.uuid4()))
            trace.published[eid] = time.time_ns()
            self.wire.publish(queue, body)

        with ServeProcess(self.cfg, queue, self.prefix, load, self.workdir) as serve:
            try:
                self.wire.wait_consumers(queue, load.processes, serve.alive, timeout=60)
                procs = serve.children()
                return self._measure(
                    "runeworker", load, work, procs, RUNE_OUTPUTS, send, self._rw_trace
                )
            except BenchError as exc:
                raise BenchError(f"{exc}\nlast lines of runeworker serve:\n{serve.tail()}") from exc

    @staticmethod
    def _rw_trace(trace: Trace, got: dict[str, list[Got]], outputs: list[str]) -> None:
        for _props, body in got[outputs[0]]:
            try:
                st = _statuses.decode(body)
                k = int(st.node_id[1:]) - 1 if st.status == "success" else 0
                executed_at = rfc3339_ns(st.executed_at)
            except (msgspec.DecodeError, ValueError):
                raise _foreign(outputs[0], _NOT_OURS) from None
            if st.execution_id not in trace.published:
                raise _foreign(outputs[0], f"a status of execution {st.execution_id!r}")
            if st.status == "running":
                trace.running += 1
            elif st.status == "success":
                trace.success.setdefault(st.execution_id, {})[k] = executed_at
                trace.successes += 1
        for _props, body in got[outputs[1]]:
            try:
                c = _completions.decode(body)
            except msgspec.DecodeError:
                raise _foreign(outputs[1], _NOT_OURS) from None
            if c.execution_id not in trace.published:
                raise _foreign(outputs[1], f"a completion of execution {c.execution_id!r}")
            trace.completions += 1
            if c.status == "completed":
                trace.completed[c.execution_id] = rfc3339_ns(c.completed_at)

    # -- shared ------------------------------------------------------------------------------

    def _measure(
        self,
        name: str,
        load: Load,
        work: Workload,
        procs: list[psutil.Process],
        outputs: list[str],
        send: Send,
        parse: Parse,
    ) -> Result:
        """Throughput phase (CPU, RSS around it), then the low-load phase."""
        self.wire.listen(outputs)
        try:
            rss_start = _rss_mb(procs)
            services = {k: _cpu(v) for k, v in self.services.items()}
            cpu = _cpu(procs)
            busy = self._phase(load, work, load.workflows, load.workflows, outputs, send, parse)
            cpu = _cpu(procs) - cpu
            used = {
                k: (_cpu(v) - services[k]) * 1e3 / max(1, busy.successes)
                for k, v in self.services.items()
            }
            rss = _rss_mb(procs)
            idle = self._phase(load, work, load.latency_workflows, 1, outputs, send, parse)
        finally:
            self.wire.unlisten()
        cpu_per_node = cpu * 1e3 / max(1, busy.successes)
        return Result(name, busy, idle, cpu_per_node, rss, used, rss_start_mb=rss_start)

    def _phase(
        self,
        load: Load,
        work: Workload,
        total: int,
        inflight: int,
        outputs: list[str],
        send: Send,
        parse: Parse,
    ) -> Figures:
        for q in outputs:
            self.wire.got[q].clear()
        trace = Trace()
        statuses = work.statuses_per_workflow * total
        expected = {outputs[0]: statuses, outputs[1]: total, outputs[2]: total}
        drive(
            self.wire, lambda i: send(trace, i), total, inflight, expected, outputs[1], load.timeout
        )
        parse(trace, self.wire.got, outputs)
        return figures(trace, total, work.nodes, in_time=bool(work.sizes.script))

    def close(self) -> None:
        """Delete the bench's queues and Redis keys and its work directory."""
        with contextlib.suppress(*AMQP_ERRORS):
            for q in self._queues:
                self.wire.ch.queue_delete(q)
        self.wire.close()
        client = redis.Redis.from_url(self.cfg.redis.url)
        with contextlib.suppress(redis.RedisError):
            keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i : i + 1000])
        client.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class ServeProcess:
    """`runeworker serve` in a subprocess with the bench's queue, sizes and Redis prefix. The
    effective config goes to it as a TOML file; the variables that would override the file are
    removed from its environment."""

    def __init__(self, cfg: Config, queue: str, prefix: str, load: Load, workdir: Path) -> None:
        tree = msgspec.to_builtins(cfg)
        tree["broker"].update(queue=queue, prefetch=load.prefetch)
        tree["worker"]["processes"] = load.processes
        tree["redis"]["key_prefix"] = prefix
        tree["metrics"].update(listen="", directory=str(workdir / "metrics"))
        self.config = workdir / "serve.toml"
        self.config.write_text(_toml(tree))
        self.log = workdir / "serve.log"
        self.graceful = cfg.worker.graceful_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("RUNEWORKER_") and k not in GO_ENV_VARS
        }
        cmd = [sys.executable, "-m", "runeworker", "serve", "-c", str(self.config)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children()

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(self.graceful + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _toml(tree: dict[str, dict[str, object]]) -> str:
    """The config as TOML: its values are strings, numbers, booleans and lists of strings,
    whose JSON forms are valid TOML."""
    out = []
    for section, table in tree.items():
        out.append(f"[{section}]")
        out += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(out) + "\n"
