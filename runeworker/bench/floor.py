"""The floor of `runeworker bench`: a bare pika loop doing a worker's broker work per node.

No runeworker code runs here but the frame writer, the reader and the commit (stdlib and pika;
`FrameWriter`, `FrameReader` and `commit` are loaded from runeworker/adapters/amqp_frames.py,
amqp_reader.py and amqp_commit.py alone, which import pika and the standard library only, so
that the floor writes its publishes and acks, reads its deliveries and commits as cheaply as a
child does), so the loop shows what the broker costs by
itself. Per delivery it does what a runeworker child does for a cheap node: publish the
`running` and `success` statuses and the next execution message (the completion after the last
node), all with the sizes runeworker's messages have at that step, persistent, `mandatory`,
through the same topic exchange, then acks; the publishes and acks of the deliveries buffered
at once (at most `batch_max`) go in one AMQP transaction, exactly like
`runeworker.child.worker`, and the mirror copies of the batch's first nodes go before it in a
transaction of their own, as there. Bodies are filler bytes: nothing is parsed.

With `broker.queue_type = "quorum"` runeworker commits with publisher confirms instead of
transactions (runeworker/adapters/amqp.py, `Broker._commit_confirmed`), and so does the floor
(`_ConfirmLoop`): a commit's publishes are held until it, sent at once, then one wait until the
broker has confirmed every one of them (it ends at the last confirm), and only then the acks,
flushed without a wait. The floor's queues have the types runeworker's have (`declare`).

For a workload with parallel branches (`FloorSizes.script`) each step publishes what the recorded
step of runeworker published (statuses, one or more next messages, the completion) and makes one
Redis script call first, as runeworker's branch-token protocol does at least once per step; that
mode imports redis-py (runeworker's own Redis client), the chain mode does not.

Each message carries its workflow and step in `message_id` ("w.k"); the success status and the
completion also carry their publish time in `correlation_id` ("w.k.ns") for the latency figures.

With a `call_url` (the bench's `http` workload) each step also does what a runeworker child does
for a blocking node: it commits the `running` status before the call, then GETs the URL over
one kept-alive connection, reads the answer and goes on as above.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

_PERSISTENT = 2
_JSON = "application/json"
_FLUSH_BYTES = 1 << 20
# confirm mode, as runeworker.adapters.amqp's CONFIRM_WAIT and NACK_PAUSE (this file cannot
# import the package): the longest one wait for confirms lasts before it is looked at again,
# and the pause before nacked publishes go out again
_CONFIRM_WAIT = 1.0
_NACK_PAUSE = 0.1
# one script call per step, of the size of runeworker's cheapest (a hash field and a TTL)
_STEP_SCRIPT = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], 600000)
return 1
"""


@dataclass(frozen=True)
class FloorSizes:
    """Byte sizes of runeworker's messages at each step k of one workflow (k = 0 first)."""

    messages: list[int]  # the execution message that starts step k
    running: list[int]
    success: list[int]
    completion: int
    # parallel branches: what each step publishes, replayed as recorded (see
    # runeworker.bench.workload._measure_script); empty for a chain
    script: list[dict[str, Any]] = field(default_factory=list)

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


def declare(
    ch: BlockingChannel, queues: FloorQueues, typed: Mapping[str, dict[str, Any]] | None = None
) -> None:
    """Durable queues like the Rune ones, bound like them (topic exchange, own name as key).
    `typed`: the declare arguments of the queues that are not classic (queue -> arguments),
    so that each floor queue has the type of the runeworker queue it stands for."""
    ch.exchange_declare(queues.exchange, exchange_type="topic", durable=True)
    for q in queues.all:
        ch.queue_declare(q, durable=True, arguments=(typed or {}).get(q))
        ch.queue_bind(q, queues.exchange, routing_key=q)


class _Loop:
    """One floor process: consume into a buffer, handle the buffer, commit per batch (an AMQP
    transaction: classic queues)."""

    def __init__(
        self,
        url: str,
        queues: FloorQueues,
        sizes: FloorSizes,
        batch_max: int,
        redis_url: str = "",
        redis_prefix: str = "",
        call_url: str = "",
    ) -> None:
        self.target = _Target(call_url) if call_url else None
        self.queues = queues
        self.script = sizes.script
        self.redis_prefix = redis_prefix
        self.step_script: Any = None
        if self.script:
            import redis  # only the branch mode needs it

            client = redis.Redis.from_url(redis_url)
            self.step_script = client.register_script(_STEP_SCRIPT)
        self.sizes = sizes
        self.batch_max = batch_max
        self.filler = b"x" * sizes.largest
        self.pending: deque[tuple[int, str]] = deque()
        self.unflushed = 0
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.writer = _adapter("amqp_frames", "FrameWriter")(self.ch._impl)
        self.reader: Any = None  # the FrameReader, once consuming
        self.commit_transaction = _adapter("amqp_commit", "commit")
        # an ack: queued in the transaction here, held until the confirms in `_ConfirmLoop`
        self.ack: Callable[[int], None] = self.writer.ack
        self.select()

    def select(self) -> None:
        """Transaction mode."""
        self.ch.tx_select()

    def commit(self) -> None:
        """Commit what the channel queued since the last commit, as a runeworker child
        commits (runeworker/adapters/amqp_commit.py)."""
        self.commit_transaction(self.ch, self.writer, self.reader)
        self.unflushed = 0

    def consume(self, prefetch: int) -> None:
        def on_message(_ch: Any, method: Any, props: Any, _body: bytes) -> None:
            self.pending.append((method.delivery_tag, props.message_id))

        def on_read(_queue: str, tag: int, _again: bool, _body: bytes, props: Any) -> None:
            self.pending.append((tag, props.message_id))

        # deliveries read off the socket as a runeworker child reads them (`Broker.consume`)
        number = self.ch.channel_number
        reader = self.reader = _adapter("amqp_reader", "FrameReader")(
            self.conn._impl,
            self.ch,
            on_read,
            lambda: self.conn._request_channel_dispatch(-number),
        )
        tag = self.ch._impl._generate_consumer_tag()
        reader.follow(tag, self.queues.work)
        self.ch.basic_qos(prefetch_count=prefetch)
        self.ch.basic_consume(self.queues.work, on_message, consumer_tag=tag)

    def serve(self, stopping: list[int]) -> None:
        while not stopping:
            if not self.pending:
                self.conn.process_data_events(time_limit=0.2)
                continue
            batch = [self.pending.popleft() for _ in range(min(len(self.pending), self.batch_max))]
            self.mirror(batch)
            for tag, ident in batch:
                self.handle(tag, ident)
            self.commit()

    def mirror(self, batch: list[tuple[int, str]]) -> None:
        """The mirror copies of the batch's start messages, committed on their own before the
        batch, as runeworker.child.worker `_mirror` does: RTES drops the statuses of an
        execution it has not learnt of from its mirror, and RabbitMQ makes a transaction
        visible queue by queue (docs/WIRE.md section 6)."""
        starts = [ident for _, ident in batch if ident.endswith(".0")]
        for ident in starts:
            self.publish(self.queues.mirror, self.sizes.messages[0], ident)
        if starts:
            self.commit()

    def handle(self, tag: int, ident: str) -> None:
        if self.script:
            self.handle_step(tag, ident)
            return
        w, k = (int(x) for x in ident.split("."))
        sizes, q = self.sizes, self.queues
        self.publish(q.status, sizes.running[k], ident)
        if self.target is not None:
            self.commit()  # a blocking node's `running` is visible before its call
            self.target.call()
        self.publish(q.status, sizes.success[k], ident, stamp=True)
        if k + 1 < len(sizes.messages):
            self.publish(q.work, sizes.messages[k + 1], f"{w}.{k + 1}")
        else:
            self.publish(q.completion, sizes.completion, ident, stamp=True)
        self.ack(tag)

    def handle_step(self, tag: int, ident: str) -> None:
        """Step s of workflow w ("w.s"): one Redis script call, then what the recorded step
        published; statuses carry "w.k" (k = the node's index) like the chain's."""
        w, s = ident.split(".")
        step, q = self.script[int(s)], self.queues
        self.step_script(keys=[f"{self.redis_prefix}floor:{w}"], args=[s])
        node = f"{w}.{step['node']}"
        for size, status in step["statuses"]:
            kind = None if status in ("running", "success") else status
            self.publish(q.status, size, node, stamp=status == "success", kind=kind)
        for size, child in step["nexts"]:
            self.publish(q.work, size, f"{w}.{child}")
        if step["completion"]:
            self.publish(q.completion, step["completion"], node, stamp=True)
        self.ack(tag)

    def publish(
        self, queue: str, size: int, ident: str, *, stamp: bool = False, kind: str | None = None
    ) -> None:
        props = _props(ident, stamp, kind)
        # queued on the channel under the BlockingChannel and sent by the commit, marshalled
        # by the worker's frame writer, like runeworker.adapters.amqp does (BlockingChannel
        # would flush the socket per publish; the properties differ per message here, so
        # their header is marshalled each time)
        self.writer.publish(self.queues.exchange, queue, self.filler[:size], props)
        self.unflushed += size
        if self.unflushed > _FLUSH_BYTES:
            self.conn.process_data_events(time_limit=0)
            self.unflushed = 0

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            self.conn.close()
        if self.target is not None:
            self.target.close()


def _props(ident: str, stamp: bool, kind: str | None) -> pika.BasicProperties:
    """A floor message's properties: its id, the stamp the bench reads (`ident.ns`), and its
    type for statuses other than running and success (the merge's waiting)."""
    return pika.BasicProperties(
        content_type=_JSON,
        delivery_mode=_PERSISTENT,
        message_id=ident,
        correlation_id=f"{ident}.{time.time_ns()}" if stamp else None,
        type=kind,
    )


# a publish held for the commit: routing key (the exchange is the floor's), body, properties
_Held = tuple[str, bytes, pika.BasicProperties]


class _ConfirmLoop(_Loop):
    """A floor process for quorum queues: publisher confirms instead of transactions, as
    runeworker.adapters.amqp `Broker._commit_confirmed` commits. Publishes and acks are held
    until the commit, which sends the publishes, waits once for all their confirms (the wait
    ends at the last one, as `Broker._wake` makes runeworker's), sends nacked ones again
    NACK_PAUSE after their round is answered, then sends the acks and flushes them without a
    wait. No deadline: the bench's phase timeout stands for runeworker's confirm timeout."""

    def select(self) -> None:
        """Confirm mode on the channel under the BlockingChannel, with our own callback (the
        BlockingChannel's would wait for each publish alone)."""
        self.held: list[_Held] = []
        self.acks: list[int] = []
        self.ack = self.acks.append
        self.unconfirmed: dict[int, _Held] = {}
        self.nacked: list[_Held] = []
        self.seq = 0
        selected: list[bool] = []

        def on_select_ok(frame: Any) -> None:
            selected.append(True)
            self.wake(frame.channel_number)

        self.ch._impl.confirm_delivery(self.on_confirm, on_select_ok)
        while not selected:
            self.conn.process_data_events(time_limit=0.1)

    def publish(
        self, queue: str, size: int, ident: str, *, stamp: bool = False, kind: str | None = None
    ) -> None:
        props = _props(ident, stamp, kind)
        self.held.append((queue, self.filler[:size], props))  # sent at the commit

    def commit(self) -> None:
        held, self.held = self.held, []
        self.send(held)
        while self.unconfirmed or self.nacked:
            if self.nacked and not self.unconfirmed:  # answered, some refused: again
                self.conn.sleep(_NACK_PAUSE)
                nacked, self.nacked = self.nacked, []
                self.send(nacked)
            self.conn.process_data_events(time_limit=_CONFIRM_WAIT)
        for tag in self.acks:
            self.writer.ack(tag)
        self.acks.clear()  # in place: `ack` is its bound append
        self.conn.process_data_events(time_limit=0)  # sends the acks
        self.unflushed = 0

    def send(self, messages: list[_Held]) -> None:
        for message in messages:
            queue, body, props = message
            self.writer.publish(self.queues.exchange, queue, body, props)
            self.seq += 1
            self.unconfirmed[self.seq] = message

    def on_confirm(self, frame: Any) -> None:
        """basic.ack / basic.nack: `multiple` covers every sequence up to the tag; once none
        is outstanding, the commit's wait ends."""
        method = frame.method
        tag, multiple = method.delivery_tag, method.multiple
        done = [s for s in self.unconfirmed if s <= tag] if multiple else [tag]
        for seq in done:
            message = self.unconfirmed.pop(seq, None)
            if message is not None and isinstance(method, Basic.Nack):
                self.nacked.append(message)
        if not self.unconfirmed:
            self.wake(frame.channel_number)

    def wake(self, channel_number: int) -> None:
        """End the running (or next) `process_data_events`: it returns early only for a
        BlockingChannel's events, not for a callback on the channel under it (pika's own
        request to stop, a negative channel number, as runeworker's `Broker._wake`)."""
        self.conn._request_channel_dispatch(-channel_number)


def _adapter(module: str, name: str) -> Any:
    """Class `name` of runeworker/adapters/`module`.py, loaded from its file alone."""
    path = Path(__file__).resolve().parents[1] / "adapters" / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"_floor_{module}", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return getattr(loaded, name)


class _Target:
    """GETs of one URL over a kept-alive connection, reopened when the server closed it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.conn: http.client.HTTPConnection | None = None

    def call(self) -> None:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request("GET", self.path)
                self.conn.getresponse().read()
                return
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def floor_main() -> int:
    """Body of one floor process (`python bench_floor.py` with its spec as JSON on stdin,
    which keeps the broker password out of the process list): consume until SIGTERM.
    Unacked deliveries go back to the queue when the connection closes."""
    spec = json.load(sys.stdin)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    queues = FloorQueues(**spec["queues"])
    kind = _ConfirmLoop if spec.get("confirm") else _Loop
    loop = kind(
        spec["url"],
        queues,
        FloorSizes(**spec["sizes"]),
        spec["batch_max"],
        spec.get("redis_url", ""),
        spec.get("redis_prefix", ""),
        spec.get("call_url", ""),
    )
    try:
        loop.consume(spec["prefetch"])
        loop.serve(stopping)
    finally:
        loop.close()
    return 0


class FloorPool:
    """P floor processes. They run this file as a script, so they load pika and the stdlib
    only (not even the runeworker package); the caller waits for their consumers."""

    def __init__(
        self,
        url: str,
        queues: FloorQueues,
        sizes: FloorSizes,
        redis_url: str = "",
        redis_prefix: str = "",
    ) -> None:
        self.url = url
        self.queues = queues
        self.sizes = sizes
        self.redis = (redis_url, redis_prefix)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        processes: int,
        prefetch: int,
        batch_max: int,
        call_url: str = "",
        *,
        confirm: bool = False,
    ) -> None:
        """Start `processes` floor processes; with `call_url` each step GETs it (see above);
        `confirm`: publisher confirms instead of transactions (`_ConfirmLoop`)."""
        spec = json.dumps(
            {
                "url": self.url,
                "queues": asdict(self.queues),
                "sizes": asdict(self.sizes),
                "prefetch": prefetch,
                "batch_max": batch_max,
                "redis_url": self.redis[0],
                "redis_prefix": self.redis[1],
                "call_url": call_url,
                "confirm": confirm,
            }
        )
        for _ in range(processes):
            proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE)
            self.procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(spec.encode())
            proc.stdin.close()

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


if __name__ == "__main__":
    sys.exit(floor_main())
