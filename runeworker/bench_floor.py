"""The floor of `runeworker bench`: a bare pika loop doing a worker's broker work per node.

No runeworker code runs here (stdlib and pika only), so the loop shows what the broker costs
by itself. Per delivery it does what a runeworker child does for a cheap node: publish the
`running` and `success` statuses and the next execution message (the completion after the last
node; the first node also publishes its mirror copy), all with the sizes runeworker's messages
have at that step, persistent, `mandatory`, through the same topic exchange, then acks; the
publishes and acks of the deliveries buffered at once (at most `batch_max`) go in one AMQP
transaction, exactly like `runeworker.worker`. Bodies are filler bytes: nothing is parsed.

Each message carries its workflow and step in `message_id` ("w.k"); the success status and the
completion also carry their publish time in `correlation_id` ("w.k.ns") for the latency figures.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

_PERSISTENT = 2
_JSON = "application/json"


@dataclass(frozen=True)
class FloorSizes:
    """Byte sizes of runeworker's messages at each step k of one workflow (k = 0 first)."""

    messages: list[int]  # the execution message that starts step k
    running: list[int]
    success: list[int]
    completion: int

    @property
    def largest(self) -> int:
        return max([*self.messages, *self.running, *self.success, self.completion])


@dataclass(frozen=True)
class FloorQueues:
    """The floor's own queues, bound to `exchange` with their names as routing keys."""

    exchange: str
    work: str
    status: str
    completion: str
    mirror: str

    @property
    def all(self) -> tuple[str, str, str, str]:
        return (self.work, self.status, self.completion, self.mirror)


def declare(ch: BlockingChannel, queues: FloorQueues) -> None:
    """Durable queues like the Rune ones, bound like them (topic exchange, own name as key)."""
    ch.exchange_declare(queues.exchange, exchange_type="topic", durable=True)
    for q in queues.all:
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, queues.exchange, routing_key=q)


class _Loop:
    """One floor process: consume into a buffer, handle the buffer, commit per batch."""

    def __init__(self, url: str, queues: FloorQueues, sizes: FloorSizes, batch_max: int) -> None:
        self.queues = queues
        self.sizes = sizes
        self.batch_max = batch_max
        self.filler = b"x" * sizes.largest
        self.pending: deque[tuple[int, str]] = deque()
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.ch.tx_select()

    def consume(self, prefetch: int) -> None:
        def on_message(_ch: Any, method: Any, props: Any, _body: bytes) -> None:
            self.pending.append((method.delivery_tag, props.message_id))

        self.ch.basic_qos(prefetch_count=prefetch)
        self.ch.basic_consume(self.queues.work, on_message)

    def serve(self, stop: Event) -> None:
        while not stop.is_set():
            if not self.pending:
                self.conn.process_data_events(time_limit=0.2)
                continue
            done = 0
            while self.pending and done < self.batch_max:
                self.handle(*self.pending.popleft())
                done += 1
            self.ch.tx_commit()

    def handle(self, tag: int, ident: str) -> None:
        w, k = (int(x) for x in ident.split("."))
        sizes, q = self.sizes, self.queues
        if k == 0:
            self.publish(q.mirror, sizes.messages[0], ident)
        self.publish(q.status, sizes.running[k], ident)
        self.publish(q.status, sizes.success[k], ident, stamp=True)
        if k + 1 < len(sizes.messages):
            self.publish(q.work, sizes.messages[k + 1], f"{w}.{k + 1}")
        else:
            self.publish(q.completion, sizes.completion, ident, stamp=True)
        self.ch.basic_ack(tag)

    def publish(self, queue: str, size: int, ident: str, *, stamp: bool = False) -> None:
        props = pika.BasicProperties(
            content_type=_JSON,
            delivery_mode=_PERSISTENT,
            message_id=ident,
            correlation_id=f"{ident}.{time.time_ns()}" if stamp else None,
        )
        self.ch.basic_publish(
            self.queues.exchange, queue, self.filler[:size], props, mandatory=True
        )

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            self.conn.close()


def floor_main(
    url: str,
    queues: FloorQueues,
    sizes: FloorSizes,
    prefetch: int,
    batch_max: int,
    ready: Event,
    stop: Event,
) -> None:
    """Body of one floor process: consume until `stop` is set. Unacked deliveries go back
    to the queue when the connection closes."""
    loop = _Loop(url, queues, sizes, batch_max)
    try:
        loop.consume(prefetch)
        ready.set()
        loop.serve(stop)
    finally:
        loop.close()


class FloorPool:
    """P floor processes (spawned, so they share nothing with the bench process)."""

    def __init__(self, url: str, queues: FloorQueues, sizes: FloorSizes) -> None:
        self.url = url
        self.queues = queues
        self.sizes = sizes
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._procs: list[Any] = []

    def start(self, processes: int, prefetch: int, batch_max: int, timeout: float) -> None:
        """Start the processes; returns once every one consumes (RuntimeError otherwise)."""
        readies = []
        for i in range(processes):
            ready = self._ctx.Event()
            args = (self.url, self.queues, self.sizes, prefetch, batch_max, ready, self._stop)
            proc = self._ctx.Process(target=floor_main, args=args, name=f"floor-{i}", daemon=True)
            proc.start()
            self._procs.append(proc)
            readies.append(ready)
        deadline = time.monotonic() + timeout
        for proc, ready in zip(self._procs, readies, strict=True):
            while not ready.wait(0.1):
                if not proc.is_alive() or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"floor process {proc.name} did not start consuming")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for proc in self._procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._procs = []
