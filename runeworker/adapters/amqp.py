"""pika adapter: topology, consume into a local buffer, transactional publish + ack.

All publishes and acks of a step happen inside one AMQP transaction (`tx_select` once per
channel, `tx_commit` per step or batch of steps): either the statuses, the next messages or
the completion AND the ack reach the broker, or none of them does. One commit costs one
round trip whatever the number of publishes, where publisher confirms would cost one wait
per publish with a BlockingConnection.

Deliveries are appended to `pending` as they are read (runeworker/adapters/amqp_reader.py, or
the consumer callback for those it leaves to pika) and processed by the worker loop, never
while reading, so the connection can keep serving heartbeats (and buffering deliveries) while
a node runs in another thread.

RabbitMQ's flow control reaches the worker two ways. A memory or disk alarm makes the broker
send `connection.blocked` and stop reading the socket of every connection that publishes: a
commit then waits inside pika until `connection.unblocked`. The broker tells the `Broker`, which
tells its `FlowListener` at once and every BLOCKED_TICK seconds after, from inside pika's own
I/O loop, so that the child keeps beating while it waits (`Broker.watch_flow`). No
`blocked_connection_timeout` is set: closing a blocked connection would hand its deliveries
back to be run again and counted as attempts, and the next connection would block at its
first publish just the same. A delivery left unacknowledged for the broker's `consumer_timeout`
makes it close the channel (PRECONDITION_FAILED); `Broker.ack_timeout` keeps its text.

`Endpoint` is the one way runeworker opens a pika connection (the worker's `Broker`,
`runeworker submit`, `runeworker dlq`, `runeworker bench`) and turns pika's exceptions into
`BrokerError`s that name the URL with its password masked.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.adapters.utils.connection_workflow import (
    AMQPConnectorException,
    AMQPConnectorStackTimeout,
)
from pika.spec import Basic, BasicProperties

from runeworker.adapters.amqp_commit import commit as commit_transaction
from runeworker.adapters.amqp_frames import FrameWriter
from runeworker.adapters.amqp_reader import FrameReader
from runeworker.config import BrokerConfig
from runeworker.errors import BrokerError, CommitInDoubt
from runeworker.masking import mask_url, scrub_password

log = logging.getLogger("runeworker.amqp")

STATUS_QUEUE = "workflow.node.status"
COMPLETION_QUEUE = "workflow.completion"
MIRROR_QUEUE = "workflow.worker.initiated"
RESUME_QUEUE = "workflow.resume"
JSON = "application/json"
# set by `runeworker dlq replay` on a dead letter it puts back (see Executor.step `replayed`)
REPLAYED_HEADER = "x-runeworker-replayed"
# set on a message published again after a commit in doubt (runeworker/child/receipts.py)
RESENT_HEADER = "x-runeworker-resent"
_PERSISTENT = 2
_PRECONDITION_FAILED = 406
_FLUSH_BYTES = 1 << 20
# what pika raises when the broker refuses something or the socket fails
AMQP_ERRORS = (pika.exceptions.AMQPError, OSError)
# and what bringing a connection up may raise besides: pika hands on a handshake that timed out
# (a broker that takes the connection and never answers) as its connector's own exception
CONNECT_ERRORS = (*AMQP_ERRORS, AMQPConnectorException)
QUEUE_TYPE_ARGUMENT = "x-queue-type"
# set by quorum queues on a redelivered message: the deliveries before this one
DELIVERY_COUNT_HEADER = "x-delivery-count"
# one publish as sent: exchange, routing key, body, properties (kept to be sent again)
_Published = tuple[str, str, bytes, BasicProperties]
# called by `Broker.commit` once the publishes are durable (see there)
Confirmed = Callable[[bool], None] | None
# called before each try of `Endpoint.connect`; False: give up (asked to stop)
Ahead = Callable[[], bool]
# told what RabbitMQ blocks publishes for (connection.blocked: "low on memory", ...) once, then
# again every BLOCKED_TICK seconds while it lasts, and None once it is lifted (or the connection
# is gone); runs inside pika's I/O loop, maybe in the middle of a commit: it must not call pika
FlowListener = Callable[[str | None], None]
BLOCKED_TICK = 1.0  # seconds between two calls of the FlowListener while blocked
# confirm mode: the longest one wait for confirms lasts before the deadline is looked at again
# (the wait ends at the last confirm: `Broker._wake`), and the pause before nacked publishes
# go out again (a queue that refuses them, x-overflow reject-publish, nacks each at once)
CONFIRM_WAIT = 1.0
NACK_PAUSE = 0.1
_ACK_TIMEOUT_TEXT = "delivery acknowledgement"  # in the broker's close of a consumer timeout
# seconds a command-line client (`submit`, `dlq`) gives one try at the TCP, TLS and AMQP
# handshake: pika's 15 s times `broker.connection_attempts` kept a user waiting 48 s on a
# broker that takes the connection and never answers
COMMAND_HANDSHAKE_TIMEOUT = 5.0
_PIKA_HANDSHAKE_TIMEOUT = 15.0  # pika's `stack_timeout` when none is given


@dataclass(frozen=True)
class Endpoint:
    """Where RabbitMQ is and how to reach it: the URL of each node and the connection's retry
    policy.

    With several URLs (the nodes of a cluster, `broker.urls`) pika tries them in order on every
    attempt and keeps the first that answers; `connection_attempts` and `retry_delay` apply to
    the whole list (pika reads them from its last entry). Every error it raises names the URLs
    with their passwords masked, and scrubs the passwords from pika's own text should pika ever
    echo one."""

    urls: tuple[str, ...]
    heartbeat: int | None = None  # seconds; None keeps what the broker proposes
    connection_attempts: int = 1
    retry_delay: float = 1.0
    # seconds one attempt may take to bring up TCP, TLS and AMQP (pika's `stack_timeout`); None
    # keeps pika's 15 s. A broker that takes the connection and never answers costs this much.
    handshake_timeout: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):  # Endpoint("amqp://...") names one node
            object.__setattr__(self, "urls", (self.urls,))
        if not self.urls:
            raise ValueError("an Endpoint needs at least one URL")

    @property
    def confirm_timeout(self) -> float:
        """How long publisher confirms may take before the connection counts as lost: two
        heartbeat intervals (a quorum queue's leader election takes seconds), at least 30 s."""
        return max(30.0, 2.0 * (self.heartbeat or 60))

    @classmethod
    def of(cls, b: BrokerConfig, handshake_timeout: float | None = None) -> Endpoint:
        """The endpoint the `[broker]` section describes: `urls` when set, else `url`."""
        urls = tuple(b.urls) or (b.url,)
        return cls(urls, b.heartbeat, b.connection_attempts, b.retry_delay, handshake_timeout)

    @property
    def where(self) -> str:
        """The URLs, passwords masked, for messages."""
        return ", ".join(mask_url(url) for url in self.urls)

    def parameters(self, name: str) -> list[pika.URLParameters]:
        """pika's parameters, one per node, for a connection the broker's UI shows as `name`."""
        out = []
        for url in self.urls:
            try:
                params = pika.URLParameters(url)
            except ValueError as exc:  # e.g. a port that is not a number
                raise self.error("cannot use the RabbitMQ URL", exc) from exc
            if self.heartbeat is not None:
                params.heartbeat = self.heartbeat
            params.connection_attempts = self.connection_attempts
            params.retry_delay = self.retry_delay
            if self.handshake_timeout is not None:
                params.stack_timeout = self.handshake_timeout
            params.client_properties = {"connection_name": name}
            out.append(params)
        return out

    def connect(self, name: str, before_each: Ahead | None = None) -> BlockingConnection:
        """A new blocking connection named `name`; BrokerError when none can be opened.

        Without `before_each`, pika makes `connection_attempts` over the nodes, `retry_delay`
        apart. With it, each node is tried once, and `before_each()` runs before each try: a
        caller that retries with a backoff of its own and must show it is alive meanwhile (a
        worker child beats; it returns False when asked to stop, and no other node is tried).
        One try then blocks for at most `handshake_timeout`."""
        params = self.parameters(name)
        if before_each is None:
            try:
                # one node: its parameters alone, as before lists existed
                return BlockingConnection(params[0] if len(params) == 1 else params)
            except CONNECT_ERRORS as exc:
                raise self.error("cannot connect to RabbitMQ", exc) from exc
        failed: list[BaseException] = []
        for node in params:
            if not before_each():
                raise BrokerError(f"stopped while connecting to RabbitMQ at {self.where}")
            node.connection_attempts = 1
            try:
                return BlockingConnection(node)
            except CONNECT_ERRORS as exc:
                failed.append(exc)
        # every node's failure, as pika's own walk of the list reports them (all were tried)
        named = zip(self.urls, failed, strict=True)
        cause = (
            failed[0]
            if len(failed) == 1
            else ConnectionError(
                "; ".join(f"{mask_url(url)}: {self._detail(exc)}" for url, exc in named)
            )
        )
        raise self.error("cannot connect to RabbitMQ", cause) from cause

    def node_of(self, conn: BlockingConnection) -> str:
        """The masked URL of the node `conn` is connected to (pika keeps the parameters of
        the node that answered); all of them when that cannot be told."""
        used = getattr(getattr(conn, "_impl", None), "params", None)
        host, port = getattr(used, "host", None), getattr(used, "port", None)
        for url in self.urls:
            with contextlib.suppress(ValueError):
                params = pika.URLParameters(url)
                if (params.host, params.port) == (host, port):
                    return mask_url(url)
        return self.where

    def error(self, what: str, exc: BaseException) -> BrokerError:
        """`exc` (a pika or socket error) as a BrokerError: `what at URL: detail`."""
        detail = self._detail(exc)
        for url in self.urls:
            detail = scrub_password(detail, url)
        return BrokerError(f"{what} at {self.where}: {detail}")

    def _detail(self, exc: BaseException) -> str:
        if isinstance(exc, AMQPConnectorStackTimeout):
            # pika's text ends in the socket's address tuple, a repr nobody needs
            waited = self.handshake_timeout or _PIKA_HANDSHAKE_TIMEOUT
            return (
                f"no AMQP handshake within {waited:g} s (the broker took the connection "
                "and did not answer)"
            )
        return describe(exc)

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Translate the pika and socket errors of the block with `error`. (The worker's hot
        path calls `error` in an `except` clause instead: entering a context manager for
        every publish costs more than the publish's own bookkeeping.)"""
        try:
            yield
        except AMQP_ERRORS as exc:
            raise self.error(what, exc) from exc


def queue_arguments(queue_type: str) -> dict[str, Any] | None:
    """The declare arguments of the execution and resume queues for `broker.queue_type`:
    none for classic (what Rune's API declares), `x-queue-type` for quorum. Both sides of a
    queue must declare the same, or the second declare fails with PRECONDITION_FAILED."""
    return {QUEUE_TYPE_ARGUMENT: queue_type} if queue_type != "classic" else None


def typed_queues(b: BrokerConfig) -> dict[str, dict[str, Any]]:
    """The queues runeworker declares with `broker.queue_type` (queue -> arguments): the
    execution and resume queues, and its own dead-letter queue, which nobody else declares.
    A classic dead-letter queue lives on one node: in a cluster, while that node is down,
    every worker's declare of it would fail and no worker could (re)connect."""
    arguments = queue_arguments(b.queue_type)
    if arguments is None:
        return {}
    return {q: arguments for q in (b.queue, b.resume_queue, b.dead_letter_queue)}


def delivery_count(headers: dict[str, Any]) -> int | None:
    """How many times a quorum queue delivered this message before without an ack (its
    `x-delivery-count` header); None on a classic queue, which keeps no count."""
    count = headers.get(DELIVERY_COUNT_HEADER)
    return count if isinstance(count, int) and not isinstance(count, bool) else None


@dataclass
class Delivery:
    """One consumed message, waiting in the local buffer until the worker handles it."""

    tag: int
    queue: str
    body: bytes
    redelivered: bool
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str | None = None  # the API sends none; a dead-letter copy keeps it
    # when it arrived (time.monotonic(), a vDSO call: no system call): RabbitMQ closes the
    # channel of a delivery unacknowledged for its consumer_timeout
    at: float = 0.0


class Broker:
    """One connection and one transactional channel of a worker child."""

    read_by_hand = True  # deliveries read by a `FrameReader` (False: pika's own path)

    def __init__(
        self,
        url: str | tuple[str, ...],
        *,
        exchange: str = "workflows",
        heartbeat: int = 60,
        connection_attempts: int = 3,
        retry_delay: float = 1.0,
        typed_queues: dict[str, dict[str, Any]] | None = None,
        confirm: bool = False,
        handshake_timeout: float | None = None,
    ) -> None:
        """`url`: one node, or the nodes of a cluster in the order to try them.
        `typed_queues`: declare arguments of the queues that are not classic (queue -> args).
        `confirm`: publisher confirms instead of an AMQP transaction (see `commit`).
        `handshake_timeout`: see `Endpoint`."""
        urls = (url,) if isinstance(url, str) else url
        self.endpoint = Endpoint(
            urls, heartbeat, connection_attempts, retry_delay, handshake_timeout
        )
        self.exchange = exchange
        self.typed_queues = typed_queues or {}
        self.node = self.endpoint.where  # the node of the open connection, once connected
        self.pending: deque[Delivery] = deque()
        self._conn: BlockingConnection | None = None
        self._ch: BlockingChannel | None = None
        self._tags: list[str] = []
        self._unflushed = 0  # bytes published since the socket was last flushed
        self._open: list[_Published] = []  # the publishes of the open transaction
        self.in_doubt: list[_Published] = []  # the publishes of failed commits
        self.confirm = confirm
        self._settle: list[tuple[int, bool]] = []  # confirm mode: (tag, ack) sent at commit
        self._unconfirmed: dict[int, _Published] = {}  # confirm mode: sequence -> publish
        self._nacked: list[_Published] = []
        self._seq = 0
        self._writer: FrameWriter | None = None  # of the open channel (`_queued`)
        self._reader: FrameReader | None = None  # of the consuming connection (`consume`)
        self._props: dict[str | None, BasicProperties] = {}  # without headers, by content type
        self._inbound: select.poll | None = None  # the connection's socket, polled at commit
        # RabbitMQ's flow control (see the module's docstring)
        self.blocked: str | None = None  # why RabbitMQ blocks our publishes, while it does
        self.ack_timeout: str | None = None  # the broker's text, once it closed the channel so
        self._flow: FlowListener | None = None
        self._blocked_timer: Any = None

    @classmethod
    def of(cls, b: BrokerConfig, handshake_timeout: float | None = None) -> Broker:
        """The broker the `[broker]` section describes."""
        return cls(
            Endpoint.of(b).urls,
            exchange=b.exchange,
            heartbeat=b.heartbeat,
            connection_attempts=b.connection_attempts,
            retry_delay=b.retry_delay,
            typed_queues=typed_queues(b),
            confirm=b.queue_type == "quorum",
            handshake_timeout=handshake_timeout,
        )

    # -- connection ---------------------------------------------------------------------

    def connect(self, before_each: Ahead | None = None) -> None:
        """Open the connection and a channel in transaction mode; forget buffered deliveries.
        `before_each`: see `Endpoint.connect`."""
        try:
            self._conn = self.endpoint.connect("runeworker", before_each)
            self.node = self.endpoint.node_of(self._conn)
            with self.endpoint.errors("cannot open a channel"):
                self._ch = self._conn.channel()
                if self.confirm:
                    self._select_confirms(self._conn, self._ch)
                else:
                    self._ch.tx_select()
                self._ch.add_on_return_callback(self._on_return)
            impl = self._conn._impl
            impl.add_on_connection_blocked_callback(self._on_blocked)
            impl.add_on_connection_unblocked_callback(self._on_unblocked)
            self._ch._impl.add_on_close_callback(self._on_channel_closed)
            self._inbound = _inbound(self._conn)
        except BrokerError:
            self.close()
            raise
        self.pending.clear()
        self._tags = []
        self._reader = None
        self.ack_timeout = None

    def watch_flow(self, listener: FlowListener | None) -> None:
        """Tell `listener` when RabbitMQ blocks and unblocks this connection's publishes (see
        FlowListener); the callbacks are the connection's own, read in pika's I/O loop, so a
        commit that waits for an alarm to clear still calls it."""
        self._flow = listener

    def _on_blocked(self, conn: Any, frame: Any) -> None:
        """connection.blocked: a memory or disk alarm. The broker reads nothing more from us
        until connection.unblocked; the listener hears of it now and every BLOCKED_TICK s."""
        reason = getattr(frame.method, "reason", None) or "a resource alarm"
        self.blocked = str(reason)
        if self._blocked_timer is None:
            self._blocked_timer = conn.ioloop.call_later(BLOCKED_TICK, self._blocked_tick)
        self._tell_flow()

    def _blocked_tick(self) -> None:
        conn = self._conn
        if self.blocked is None or conn is None:
            self._blocked_timer = None
            return
        self._blocked_timer = conn._impl.ioloop.call_later(BLOCKED_TICK, self._blocked_tick)
        self._tell_flow()

    def _on_unblocked(self, conn: Any, _frame: Any) -> None:
        timer, self._blocked_timer = self._blocked_timer, None
        if timer is not None:
            conn.ioloop.remove_timeout(timer)
        if self.blocked is not None:
            self.blocked = None
            self._tell_flow()

    def _tell_flow(self) -> None:
        if self._flow is not None:
            self._flow(self.blocked)

    def _on_channel_closed(self, _ch: Any, reason: BaseException) -> None:
        """Keep the text of a close for an acknowledgement timeout (RabbitMQ's
        consumer_timeout: PRECONDITION_FAILED, "delivery acknowledgement on channel 1 timed
        out. Timeout value used: 1800000 ms. ..."); other closes say enough themselves."""
        code = getattr(reason, "reply_code", None)
        text = str(getattr(reason, "reply_text", "") or "")
        if code == _PRECONDITION_FAILED and _ACK_TIMEOUT_TEXT in text:
            self.ack_timeout = text

    def _select_confirms(self, conn: BlockingConnection, ch: BlockingChannel) -> None:
        """Confirm mode on the channel under the BlockingChannel, with our own callback: the
        BlockingChannel's would wait for each publish alone."""
        selected: list[bool] = []

        def on_select_ok(frame: Any) -> None:
            selected.append(True)
            self._wake(frame.channel_number)

        ch._impl.confirm_delivery(self._on_confirm, on_select_ok)
        deadline = time.monotonic() + 30.0
        while not selected:
            if time.monotonic() > deadline:
                raise BrokerError("RabbitMQ did not answer confirm.select within 30 s")
            conn.process_data_events(time_limit=0.1)
        self._seq = 0
        self._unconfirmed, self._nacked, self._settle = {}, [], []

    @property
    def channel(self) -> BlockingChannel:
        """The open transactional channel; BrokerError when there is none."""
        if self._ch is None or not self._ch.is_open:
            raise BrokerError(self._closed_why("not connected to RabbitMQ"))
        return self._ch

    def _closed_why(self, otherwise: str) -> str:
        if self.ack_timeout is not None:
            return f"RabbitMQ closed the channel: {self.ack_timeout}"
        return otherwise

    def close(self) -> None:
        """Close the connection. Buffered deliveries go too: the broker requeues them with
        the connection, and running them now would repeat their side effects for nothing."""
        self.pending.clear()
        self._open, self._settle = [], []  # never committed: not applied
        if self._unconfirmed or self._nacked:  # sent, not confirmed: nobody can say
            self.in_doubt += [*self._unconfirmed.values(), *self._nacked]
            self._unconfirmed, self._nacked = {}, []
        conn, self._conn, self._ch = self._conn, None, None
        self._inbound = None
        self._reader = None
        timer, self._blocked_timer = self._blocked_timer, None
        if timer is not None and conn is not None:
            with contextlib.suppress(Exception):  # a loop already closed holds no timers
                conn._impl.ioloop.remove_timeout(timer)
        blocked, self.blocked = self.blocked, None
        if blocked is not None:  # a block is the connection's: gone with it
            self._tell_flow()
            # the broker reads nothing from a blocked connection: a connection.close would
            # wait for its close-ok as long as the alarm lasts. The socket is shut instead
            # (the broker requeues what was not acknowledged, as for any lost connection).
            sock = getattr(getattr(getattr(conn, "_impl", None), "_transport", None), "_sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
        if conn is not None and conn.is_open:
            with contextlib.suppress(*AMQP_ERRORS):
                conn.close()

    # -- topology -----------------------------------------------------------------------

    def declare(self, bound_queues: list[str], dead_letter_queue: str) -> None:
        """The Rune topology: a durable topic exchange, every queue durable with no
        arguments (other Rune services declare the same queues and would fail with
        PRECONDITION_FAILED on any difference), bound with its own name as routing key;
        only the queues of `typed_queues` (`broker.queue_type = "quorum"`) get their type.
        The dead-letter queue is runeworker's own and is reached through the default exchange
        (typed too: see `typed_queues`)."""
        ch = self.channel
        try:
            ch.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            for q in dict.fromkeys(bound_queues):
                ch.queue_declare(q, durable=True, arguments=self.typed_queues.get(q))
                ch.queue_bind(q, self.exchange, routing_key=q)
            arguments = self.typed_queues.get(dead_letter_queue)
            ch.queue_declare(dead_letter_queue, durable=True, arguments=arguments)
        except AMQP_ERRORS as exc:
            error = self.endpoint.error("cannot declare the Rune topology", exc)
            if getattr(exc, "reply_code", None) == _PRECONDITION_FAILED:
                error = BrokerError(f"{error}; {self._type_hint()}")
            raise error from exc

    def _type_hint(self) -> str:
        """Why a declare may differ from the queue's: its type is set by whoever declared
        it first (Rune's API declares classic queues)."""
        typed = ", ".join(self.typed_queues) or "none"
        return (
            "a queue's type must agree on both sides: broker.queue_type must be what the "
            f"queue was first declared with (quorum here: {typed}; Rune's API declares classic)"
        )

    # -- consuming ----------------------------------------------------------------------

    def consume(self, queues: list[str], prefetch: int) -> None:
        """Consume `queues` into `pending`, at most `prefetch` deliveries of each unacked at a time
        (basic.qos without `global` applies to each consumer). The deliveries are read off the
        socket by a `FrameReader` (runeworker/adapters/amqp_reader.py) unless `read_by_hand`
        is False; pika's own path (`_make_callback`) takes what the reader leaves to it."""
        ch = self.channel
        reader = self._reader
        if self.read_by_hand and (reader is None or reader.channel is not ch._impl):
            number = ch.channel_number
            reader = self._reader = FrameReader(
                self._connection()._impl, ch, self._delivered, lambda: self._wake(number)
            )
        try:
            ch.basic_qos(prefetch_count=prefetch)
            for q in queues:
                # the tag made first: the reader takes the deliveries that follow consume-ok
                tag = ch._impl._generate_consumer_tag()
                if reader is not None:
                    reader.follow(tag, q)
                self._tags.append(ch.basic_consume(q, self._make_callback(q), consumer_tag=tag))
        except AMQP_ERRORS as exc:
            raise self.endpoint.error(f"cannot consume {queues}", exc) from exc

    def _make_callback(self, queue: str) -> Any:
        def on_message(
            _ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
        ) -> None:
            self._delivered(queue, method.delivery_tag, bool(method.redelivered), body, props)

        return on_message

    def _delivered(
        self, queue: str, tag: int, redelivered: bool, body: bytes, props: BasicProperties
    ) -> None:
        self.pending.append(
            Delivery(
                tag,
                queue,
                body,
                redelivered,
                props.headers or {},
                props.content_type,
                time.monotonic(),
            )
        )

    def stop_consuming(self) -> None:
        """Cancel the consumers; deliveries already buffered stay in `pending`."""
        ch = self._ch
        tags, self._tags = self._tags, []
        if self._reader is not None:
            self._reader.forget()
        if ch is None or not ch.is_open:
            return
        try:
            for tag in tags:
                ch.basic_cancel(tag)
        except AMQP_ERRORS as exc:
            raise self.endpoint.error("cannot cancel consumers", exc) from exc

    def poll(self, timeout: float) -> None:
        """Serve heartbeats and buffer deliveries for up to `timeout` seconds."""
        conn = self._connection()  # lost in an earlier call: BrokerError, not pika's ValueError
        self._unflushed = 0
        try:
            conn.process_data_events(time_limit=timeout)
        except AMQP_ERRORS as exc:
            raise self.endpoint.error("connection to RabbitMQ lost", exc) from exc

    # -- transactional publishing -------------------------------------------------------

    def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        exchange: str | None = None,
        headers: dict[str, Any] | None = None,
        content_type: str | None = JSON,
    ) -> None:
        """Publish (persistent, mandatory) inside the transaction; `exchange` None = ours."""
        props = self._props.get(content_type) if headers is None else None
        if props is None:
            props = BasicProperties(
                content_type=content_type, delivery_mode=_PERSISTENT, headers=headers
            )
            if headers is None:  # never changed once made: shared by the publishes kept
                self._props[content_type] = props
        target = self.exchange if exchange is None else exchange
        if self.confirm:  # sent at commit: a crash before it publishes nothing
            self._open.append((target, routing_key, body, props))
            return
        try:
            self._queued().publish(target, routing_key, body, props)
            self._open.append((target, routing_key, body, props))
            self._unflushed += len(body)
            if self._unflushed > _FLUSH_BYTES:
                self.poll(0)
        except AMQP_ERRORS as exc:
            raise self.endpoint.error(f"cannot publish to {routing_key}", exc) from exc

    def ack(self, tag: int) -> None:
        """Acknowledge delivery `tag`; takes effect at the next commit."""
        if self.confirm:
            self._settle.append((tag, True))
            return
        try:
            self._queued().ack(tag)
        except AMQP_ERRORS as exc:
            raise self.endpoint.error(f"cannot ack delivery {tag}", exc) from exc

    def requeue(self, tags: list[int]) -> None:
        """Hand deliveries back to the broker (drain); takes effect at the next commit."""
        if self.confirm:
            self._settle += [(tag, False) for tag in tags]
            return
        try:
            for tag in tags:
                self.channel.basic_nack(tag, requeue=True)
        except AMQP_ERRORS as exc:
            raise self.endpoint.error("cannot requeue deliveries", exc) from exc

    def commit(self, confirmed: Confirmed = None) -> float:
        """Commit the transaction; returns its latency in seconds. `confirmed(before_acks)`
        runs once the publishes are this process's to deliver: in confirm mode as soon as
        they are sent, before their confirms and the acks (True; a publish not confirmed is
        kept in doubt and sent again), in a transaction, which applies all at once, after it
        (False)."""
        start = time.perf_counter()
        self._unflushed = 0
        if self.confirm:
            self._commit_confirmed(confirmed)
            return time.perf_counter() - start
        published, self._open = self._open, []
        channel = self._before_commit()
        writer = self._queued()
        try:
            # the queued frames go first, in order (runeworker/adapters/amqp_commit.py)
            commit_transaction(channel, writer, self._reader)
        except AMQP_ERRORS as exc:
            self.in_doubt += published  # applied, partly applied or not: nobody can say
            error = self.endpoint.error("transaction commit failed", exc)
            raise CommitInDoubt(str(error)) from exc
        if confirmed is not None:
            confirmed(False)
        return time.perf_counter() - start

    def rollback(self) -> None:
        """Discard the open transaction: none of its publishes, acks and requeues takes
        effect, and the deliveries it acked stay unacknowledged on this channel, this
        process's to handle again (RabbitMQ does not requeue on a rollback). In confirm mode
        nothing of it was sent yet."""
        self._open, self._settle = [], []
        self._unflushed = 0
        if self.confirm:
            return
        try:
            self.channel.tx_rollback()  # sends the queued frames first, in order
        except AMQP_ERRORS as exc:
            raise self.endpoint.error("transaction rollback failed", exc) from exc

    def _before_commit(self) -> BlockingChannel:
        """The channel to commit on, once what the broker sent meanwhile is read. A broker
        that closed the connection or the channel while the batch ran (a fault, a node going
        down) has discarded the transaction and handed its deliveries to other children: the
        commit then fails as never sent (BrokerError), not in doubt, whose resend would publish
        the outcome of steps those children may be running again. Reading costs one `poll`
        system call when nothing came; pika's own read (`process_data_events`) runs only when
        something did (measured in deploy/PERFORMANCE.md). A close that arrives after this
        read still leaves the commit in doubt (runeworker/child/receipts.py)."""
        inbound = self._inbound
        if inbound is not None and inbound.poll(0) and self._conn is not None:
            try:
                self._conn.process_data_events(time_limit=0)
            except AMQP_ERRORS as exc:
                error = self.endpoint.error("connection to RabbitMQ lost before the commit", exc)
                raise error from exc
        if self._ch is None or not self._ch.is_open:  # closed: nothing of it applied
            raise BrokerError(
                self._closed_why("the channel closed before the commit") + ": none of it applied"
            )
        return self._ch

    def _commit_confirmed(self, confirmed: Confirmed) -> None:
        """Confirm mode: send the publishes, call `confirmed`, wait until the broker confirms
        each (a quorum queue confirms once a majority of its members has the message; a
        nacked one is sent again), then send the acks and requeues. The connection lost
        meanwhile: CommitInDoubt, with the publishes not yet confirmed kept in doubt
        (runeworker/child/receipts.py).

        The wait ends as soon as the last confirm is read (`_on_confirm` asks pika's loop to
        return). The deadline counts only the time RabbitMQ reads our socket: while it blocks
        the connection (a resource alarm) the confirms cannot come, and giving up then would
        drop the connection, hand its deliveries back to be run again and counted as
        attempts, and block the next connection at its first publish just the same."""
        channel = self._before_commit()
        writer = self._queued()
        try:
            self._send(writer, self._open)
            self._open = []
            if confirmed is not None:  # sent: confirmed, or kept in doubt and sent again
                confirmed(True)
            timeout = self.endpoint.confirm_timeout
            deadline = time.monotonic() + timeout
            while self._unconfirmed or self._nacked:
                if self._nacked and not self._unconfirmed:  # answered, some refused: again
                    self._connection().sleep(NACK_PAUSE)  # a queue that refuses: no busy loop
                    nacked, self._nacked = self._nacked, []
                    self._send(writer, nacked)
                if self.blocked is not None:  # nothing is read meanwhile: the clock waits
                    deadline = time.monotonic() + timeout
                elif time.monotonic() > deadline:
                    raise BrokerError(
                        f"{len(self._unconfirmed)} publishes not confirmed within {timeout:g} s"
                    )
                self._connection().process_data_events(time_limit=CONFIRM_WAIT)
            for tag, ack in self._settle:
                if ack:
                    writer.ack(tag)
                else:
                    channel._impl.basic_nack(tag, requeue=True)
            self._settle = []
            self._connection().process_data_events(time_limit=0)  # sends the acks
        except (*AMQP_ERRORS, BrokerError) as exc:
            self.in_doubt += [*self._open, *self._unconfirmed.values(), *self._nacked]
            self._open, self._unconfirmed, self._nacked, self._settle = [], {}, [], []
            error = self.endpoint.error("publish confirms failed", exc)
            raise CommitInDoubt(str(error)) from exc

    def _send(self, writer: FrameWriter, messages: list[_Published]) -> None:
        for message in messages:
            exchange, routing_key, body, props = message
            writer.publish(exchange, routing_key, body, props)
            self._seq += 1
            self._unconfirmed[self._seq] = message

    def _on_confirm(self, frame: Any) -> None:
        """basic.ack / basic.nack from the broker: `multiple` covers every sequence up to
        the tag. Once none is outstanding, the commit's wait (`process_data_events`) ends."""
        method = frame.method
        tag, multiple = method.delivery_tag, method.multiple
        done = [s for s in self._unconfirmed if s <= tag] if multiple else [tag]
        for seq in done:
            message = self._unconfirmed.pop(seq, None)
            if message is not None and isinstance(method, Basic.Nack):
                self._nacked.append(message)
        if not self._unconfirmed:
            self._wake(frame.channel_number)

    def _wake(self, channel_number: int) -> None:
        """Make the running (or next) `process_data_events` of the connection return once
        the frames read so far are handled. It returns early only for what a BlockingChannel
        hands it (a delivery, a close); a callback on the channel under it, as the confirms'
        and confirm.select-ok's are here, does not count: every confirm wait lasted its whole
        time limit. A negative channel number is pika's own request to stop without
        dispatching anything (what BlockingChannel asks when a consumer is cancelled)."""
        conn = self._conn
        if conn is not None:
            conn._request_channel_dispatch(-channel_number)

    def _connection(self) -> BlockingConnection:
        """The open connection; BrokerError when there is none or it was lost (pika's closed
        loop would raise ValueError on the next `process_data_events`)."""
        if self._conn is None:
            raise BrokerError("not connected to RabbitMQ")
        if not self._conn.is_open:
            raise BrokerError(f"connection to RabbitMQ lost at {self.endpoint.where}: closed")
        return self._conn

    def export_doubt(self) -> bytes:
        """Every message in doubt, packed (msgpack: exchange, routing key, body, content type,
        delivery mode, headers) for the store to keep (runeworker/child/doubts.py)."""
        return _pack_doubt(
            [
                (e, rk, body, p.content_type, p.delivery_mode, p.headers)
                for e, rk, body, p in self.in_doubt
            ]
        )

    def import_doubt(self, packed: bytes) -> int:
        """Add the messages `export_doubt` packed (another child's) to those in doubt; returns
        how many. ValueError when `packed` is not such a list."""
        try:
            unpacked = _unpack_doubt(packed)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a packed commit in doubt: {exc}") from exc
        for exchange, routing_key, body, content_type, mode, headers in unpacked:
            props = BasicProperties(content_type=content_type, delivery_mode=mode, headers=headers)
            self.in_doubt.append((exchange, routing_key, body, props))
        return len(unpacked)

    def resend_in_doubt(self) -> int:
        """Publish the messages of failed commits again, the same bytes and properties plus
        the header RESENT_HEADER, in one transaction (see runeworker/child/receipts.py);
        returns how many."""
        doubted = [_marked(message) for message in self.in_doubt]
        self.in_doubt = []
        if not doubted:
            return 0
        if self.confirm:
            if self._ch is None or not self._ch.is_open:
                self.in_doubt = doubted
                raise BrokerError("not connected to RabbitMQ")
            self._open = doubted + self._open
            self.commit()  # in doubt again if this one fails too
            return len(doubted)
        try:
            writer = self._queued()
            for exchange, routing_key, body, props in doubted:
                writer.publish(exchange, routing_key, body, props)
                self._open.append((exchange, routing_key, body, props))
        except (*AMQP_ERRORS, BrokerError) as exc:
            self.in_doubt = doubted + self.in_doubt  # nothing of it committed yet
            self._open = []
            if isinstance(exc, BrokerError):
                raise
            raise self.endpoint.error("cannot publish again", exc) from exc
        self.commit()
        return len(doubted)

    def _queued(self) -> FrameWriter:
        """Publish and ack on the channel under the BlockingChannel, only queueing the
        frames: BlockingChannel's flush the socket after every call (a poll and a send per
        frame, about a sixth of a child's CPU per node), and the frames are marshalled with
        their constant parts kept (runeworker/adapters/amqp_frames.py). Inside a transaction
        nothing takes effect before `tx_commit`, which sends everything queued before its own
        frame; `poll` and a publish past `_FLUSH_BYTES` send them too, so big batches stream."""
        impl = self.channel._impl
        writer = self._writer
        if writer is None or writer.channel is not impl:
            writer = self._writer = FrameWriter(impl)
        return writer

    def _on_return(
        self, _ch: BlockingChannel, method: Basic.Return, _props: BasicProperties, _body: bytes
    ) -> None:
        log.error(
            "message to %s was unroutable (%s); its queue is missing",
            method.routing_key,
            method.reply_text,
        )


# a message in doubt as `Broker.export_doubt` packs it
_Packed = tuple[str, str, bytes, str | None, int | None, dict[str, Any] | None]
_pack_doubt = msgspec.msgpack.Encoder(enc_hook=str).encode  # a header of another type: as text
_unpack_doubt = msgspec.msgpack.Decoder(list[_Packed]).decode


def _inbound(conn: BlockingConnection) -> select.poll | None:
    """A poll object on the connection's socket, to see at no more than a system call whether
    the broker sent anything (pika keeps the socket in its transport; None if it moved)."""
    sock = getattr(getattr(conn._impl, "_transport", None), "_sock", None)
    if sock is None:
        return None
    inbound = select.poll()
    inbound.register(sock, select.POLLIN | select.POLLPRI)
    return inbound


def _marked(message: _Published) -> _Published:
    """A publish sent again: its properties with RESENT_HEADER, so that the worker receiving
    it checks its receipt (Rune's consumers read the body only)."""
    exchange, routing_key, body, props = message
    if props.headers and props.headers.get(RESENT_HEADER):
        return message
    marked = BasicProperties(
        content_type=props.content_type,
        delivery_mode=props.delivery_mode,
        headers={**(props.headers or {}), RESENT_HEADER: True},
    )
    return exchange, routing_key, body, marked


def describe(exc: BaseException) -> str:
    """An exception as text, prefixed with its class name unless the text names it. pika's
    connect errors print nothing (`AMQPConnectionError` around `AMQPConnectorSocketConnectError`
    around the `ConnectionRefusedError`): the error they wrap is described instead."""
    wrapped = _wrapped(exc)
    if wrapped is not None:
        return describe(wrapped)
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


def _wrapped(exc: BaseException) -> BaseException | None:
    """The error a textless pika error carries (`.exception`, or its first argument)."""
    if str(exc):
        return None
    inner = getattr(exc, "exception", None)
    if isinstance(inner, BaseException):
        return inner
    return exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
