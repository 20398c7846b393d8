"""The Rune side of the wire during a fault scenario: reads every status, completion and
mirror message the workers publish, in a background thread with its own connection, and
survives the same broker faults as the workers (it reconnects until stopped).

Messages are acknowledged after they are recorded. A message read twice with the same bytes
is one message delivered twice and is recorded once: the broker redelivering it because our
own connection dropped before its ack arrived, or a worker publishing a commit in doubt again
(runeworker/child/receipts.py; counted in `Record.repeated`). A step that *runs* twice
publishes new messages with their own timestamps, so it is never mistaken for a repeat.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from runeworker.adapters.amqp import COMPLETION_QUEUE, MIRROR_QUEUE, STATUS_QUEUE

from .services import BOUND_QUEUES, EXCHANGE

TERMINAL = ("success", "failed")
COLLECTED = (STATUS_QUEUE, COMPLETION_QUEUE, MIRROR_QUEUE)
_ERRORS = (pika.exceptions.AMQPError, OSError)


@dataclass
class Record:
    """Everything read so far (guarded by the collector's lock)."""

    completions: dict[str, list[str]] = field(default_factory=dict)  # execution -> statuses
    terminal: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (exec, node)
    statuses: Counter[str] = field(default_factory=Counter)  # status -> count
    mirrors: int = 0
    unreadable: int = 0
    terminal_total: int = 0
    repeated: int = 0  # messages read again with the same bytes, not redelivered to us


class Collector:
    """Consumes the status, completion and mirror queues until `stop()`."""

    every_copy: tuple[str, ...] = ()  # queues where a repeat is recorded as a message of its own

    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self.record = Record()
        self.reconnects = 0
        self.lock = threading.Lock()
        self._seen: set[bytes] = set()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        """Start consuming; returns once the queues are declared and consumed."""
        self._thread.start()
        if not self._connected.wait(timeout):
            raise AssertionError(f"the collector could not connect within {timeout:g} s")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def terminal_seen(self) -> int:
        """How many `success`/`failed` statuses have arrived (the scenarios' progress)."""
        with self.lock:
            return self.record.terminal_total

    def completed(self, execution_ids: list[str]) -> int:
        """How many of `execution_ids` have at least one completion."""
        with self.lock:
            return sum(1 for eid in execution_ids if eid in self.record.completions)

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except _ERRORS:
                self.reconnects += 1
                self._stop.wait(0.2)  # the broker is down or restarting: try again soon

    def _consume(self) -> None:
        params = pika.URLParameters(self.url)
        params.heartbeat = 10
        params.connection_attempts = 1
        conn = pika.BlockingConnection(params)
        try:
            ch = conn.channel()
            # The same topology the workers declare, so nothing published before the first
            # child is up is dropped.
            ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
            for queue in BOUND_QUEUES:
                ch.queue_declare(queue, durable=True)
                ch.queue_bind(queue, EXCHANGE, routing_key=queue)
            ch.basic_qos(prefetch_count=500)
            for queue in COLLECTED:
                ch.basic_consume(queue, self._callback(queue))
            self._connected.set()
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.1)
        finally:
            with contextlib.suppress(*_ERRORS):
                conn.close()

    def _callback(self, queue: str) -> Any:
        def on_message(
            ch: BlockingChannel, method: Basic.Deliver, _props: BasicProperties, body: bytes
        ) -> None:
            digest = hashlib.blake2b(body, digest_size=16).digest()
            with self.lock:
                if digest not in self._seen:
                    self._seen.add(digest)
                    self._add(queue, body)
                elif method.redelivered:
                    pass  # ours again: our connection dropped before the ack
                elif queue in self.every_copy:
                    self._add(queue, body)
                else:
                    self.record.repeated += 1
            ch.basic_ack(method.delivery_tag)

        return on_message

    def _add(self, queue: str, body: bytes) -> None:
        rec = self.record
        if queue == MIRROR_QUEUE:
            rec.mirrors += 1
            return
        try:
            msg = json.loads(body)
            eid, status = str(msg["execution_id"]), str(msg["status"])
            node = str(msg["node_id"]) if queue == STATUS_QUEUE else ""
        except (ValueError, KeyError, TypeError):
            rec.unreadable += 1
            return
        if queue == COMPLETION_QUEUE:
            rec.completions.setdefault(eid, []).append(status)
            return
        rec.statuses[status] += 1
        if status in TERMINAL:
            rec.terminal.setdefault((eid, node), []).append(status)
            rec.terminal_total += 1
