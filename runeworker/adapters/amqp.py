"""pika adapter: topology, consume into a local buffer, transactional publish + ack.

All publishes and acks of a step happen inside one AMQP transaction (`tx_select` once per
channel, `tx_commit` per step or batch of steps): either the statuses, the next messages or
the completion AND the ack reach the broker, or none of them does. One commit costs one
round trip whatever the number of publishes, where publisher confirms would cost one wait
per publish with a BlockingConnection.

Deliveries are appended to `pending` by the consumer callback and processed by the worker
loop, never inside the callback, so the connection can keep serving heartbeats (and
buffering deliveries) while a node runs in another thread.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from runeworker.config import mask_url
from runeworker.errors import BrokerError

log = logging.getLogger("runeworker.amqp")

STATUS_QUEUE = "workflow.node.status"
COMPLETION_QUEUE = "workflow.completion"
MIRROR_QUEUE = "workflow.worker.initiated"
RESUME_QUEUE = "workflow.resume"
JSON = "application/json"
# set by `runeworker dlq replay` on a dead letter it puts back (see Executor.step `replayed`)
REPLAYED_HEADER = "x-runeworker-replayed"
_PERSISTENT = 2
_FLUSH_BYTES = 1 << 20
_AMQP_ERRORS = (pika.exceptions.AMQPError, OSError)


@dataclass
class Delivery:
    """One consumed message, waiting in the local buffer until the worker handles it."""

    tag: int
    queue: str
    body: bytes
    redelivered: bool
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str | None = None  # the API sends none; a dead-letter copy keeps it


class Broker:
    """One connection and one transactional channel of a worker child."""

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "workflows",
        heartbeat: int = 60,
        connection_attempts: int = 3,
        retry_delay: float = 1.0,
    ) -> None:
        self.url = url
        self.exchange = exchange
        self.heartbeat = heartbeat
        self.connection_attempts = connection_attempts
        self.retry_delay = retry_delay
        self.pending: deque[Delivery] = deque()
        self._conn: BlockingConnection | None = None
        self._ch: BlockingChannel | None = None
        self._tags: list[str] = []
        self._unflushed = 0  # bytes published since the socket was last flushed
        self.returned = 0

    # -- connection ---------------------------------------------------------------------

    def connect(self) -> None:
        params = pika.URLParameters(self.url)
        params.heartbeat = self.heartbeat
        params.connection_attempts = self.connection_attempts
        params.retry_delay = self.retry_delay
        params.client_properties = {"connection_name": "runeworker"}
        try:
            self._conn = BlockingConnection(params)
            self._ch = self._conn.channel()
            self._ch.tx_select()
            self._ch.add_on_return_callback(self._on_return)
        except _AMQP_ERRORS as exc:
            self.close()
            raise BrokerError(
                f"cannot connect to RabbitMQ at {mask_url(self.url)}: {describe(exc)}"
            ) from exc
        self.pending.clear()
        self._tags = []

    @property
    def channel(self) -> BlockingChannel:
        if self._ch is None or not self._ch.is_open:
            raise BrokerError("not connected to RabbitMQ")
        return self._ch

    def close(self) -> None:
        """Close the connection. Buffered deliveries go too: the broker requeues them with
        the connection, and running them now would repeat their side effects for nothing."""
        self.pending.clear()
        conn, self._conn, self._ch = self._conn, None, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(*_AMQP_ERRORS):
                conn.close()

    # -- topology -----------------------------------------------------------------------

    def declare(self, bound_queues: list[str], dead_letter_queue: str) -> None:
        """The Rune topology: a durable topic exchange, every queue durable with no
        arguments (other Rune services declare the same queues and would fail with
        PRECONDITION_FAILED on any difference), bound with its own name as routing key.
        The dead-letter queue is runeworker's own and is reached through the default exchange."""
        ch = self.channel
        try:
            ch.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            for q in dict.fromkeys(bound_queues):
                ch.queue_declare(q, durable=True)
                ch.queue_bind(q, self.exchange, routing_key=q)
            ch.queue_declare(dead_letter_queue, durable=True)
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"cannot declare the Rune topology: {describe(exc)}") from exc

    # -- consuming ----------------------------------------------------------------------

    def consume(self, queues: list[str], prefetch: int) -> None:
        ch = self.channel
        try:
            ch.basic_qos(prefetch_count=prefetch)
            for q in queues:
                self._tags.append(ch.basic_consume(q, self._make_callback(q)))
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"cannot consume {queues}: {describe(exc)}") from exc

    def _make_callback(self, queue: str) -> Any:
        def on_message(
            _ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
        ) -> None:
            self.pending.append(
                Delivery(
                    method.delivery_tag,
                    queue,
                    body,
                    bool(method.redelivered),
                    props.headers or {},
                    props.content_type,
                )
            )

        return on_message

    def stop_consuming(self) -> None:
        """Cancel the consumers; deliveries already buffered stay in `pending`."""
        ch = self._ch
        tags, self._tags = self._tags, []
        if ch is None or not ch.is_open:
            return
        try:
            for tag in tags:
                ch.basic_cancel(tag)
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"cannot cancel consumers: {describe(exc)}") from exc

    def poll(self, timeout: float) -> None:
        """Serve heartbeats and buffer deliveries for up to `timeout` seconds."""
        if self._conn is None:
            raise BrokerError("not connected to RabbitMQ")
        self._unflushed = 0
        try:
            self._conn.process_data_events(time_limit=timeout)
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"connection to RabbitMQ lost: {describe(exc)}") from exc

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
        props = BasicProperties(
            content_type=content_type, delivery_mode=_PERSISTENT, headers=headers
        )
        try:
            self._queued().basic_publish(
                self.exchange if exchange is None else exchange,
                routing_key,
                body,
                properties=props,
                mandatory=True,
            )
            self._unflushed += len(body)
            if self._unflushed > _FLUSH_BYTES:
                self.poll(0)
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"cannot publish to {routing_key}: {describe(exc)}") from exc

    def ack(self, tag: int) -> None:
        try:
            self._queued().basic_ack(tag)
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"cannot ack delivery {tag}: {describe(exc)}") from exc

    def requeue(self, tags: list[int]) -> None:
        """Hand deliveries back to the broker (drain); takes effect at the next commit."""
        try:
            for tag in tags:
                self.channel.basic_nack(tag, requeue=True)
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"cannot requeue deliveries: {describe(exc)}") from exc

    def commit(self) -> float:
        """Commit the transaction; returns its latency in seconds."""
        start = time.perf_counter()
        self._unflushed = 0
        try:
            self.channel.tx_commit()  # sends the queued frames first, in order
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"transaction commit failed: {describe(exc)}") from exc
        return time.perf_counter() - start

    def _queued(self) -> Channel:
        """The channel under the BlockingChannel. Its publish and ack only queue the frames:
        BlockingChannel's flush the socket after every call (a poll and a send per frame,
        about a sixth of a child's CPU per node). Inside a transaction nothing takes effect
        before `tx_commit`, which sends everything queued before its own frame; `poll` and
        a publish past `_FLUSH_BYTES` send them too, so big batches stream."""
        return self.channel._impl

    def rollback(self) -> None:
        try:
            self.channel.tx_rollback()
        except _AMQP_ERRORS as exc:
            raise BrokerError(f"transaction rollback failed: {describe(exc)}") from exc

    def _on_return(
        self, _ch: BlockingChannel, method: Basic.Return, _props: BasicProperties, _body: bytes
    ) -> None:
        self.returned += 1
        log.error(
            "message to %s was unroutable (%s); its queue is missing",
            method.routing_key,
            method.reply_text,
        )


def describe(exc: BaseException) -> str:
    """An exception as text, prefixed with its class name unless the text names it."""
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
