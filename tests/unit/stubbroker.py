"""In-memory stand-ins for a worker child's broker and state store, for unit tests of the
consume loop (`runeworker.child.worker.Worker`) without RabbitMQ or Redis.

`StubBroker` implements `runeworker.child.ports.TransactionalBroker` with the semantics of one
RabbitMQ connection and one channel in transaction mode (`tx_select`), which is what the loop
relies on:

- publishes, acks and requeues are kept in the open transaction and take effect together at
  `commit`, in order; `close` (or a lost connection) discards them;
- a delivery stays unacked until a committed ack; when the connection goes, every unacked
  delivery (also those still in `pending`) returns to the head of its queue, `redelivered`;
- at most `prefetch` deliveries are unacked at a time; `poll` delivers up to that limit;
- the Rune topology routes by queue name: the exchange to the queues bound with their own
  name, the default exchange `""` to any declared queue; anything else is unroutable;
- acking a tag that is not unacked on this connection is a channel error (as RabbitMQ's
  PRECONDITION_FAILED), so a double ack cannot go unnoticed.

`fail(op)` makes the next call of a method raise BrokerError and lose the connection, the way
pika reports a dead socket; a failed `commit` raises CommitInDoubt and applies nothing.
`time_out_acks(text)` closes the channel as RabbitMQ's consumer_timeout does (the connection
stays). `before_commit`, when set, runs at the start of every commit (a test raises a resource
alarm there through `flow`, as pika calls the listener in the middle of a commit). A message
enqueued with an `age` is delivered as if it had arrived that many seconds ago (`Delivery.at`).
`doubt(...)` makes the next commit apply some of itself (all of it, or its acks and the
publishes to some queues only, as RabbitMQ may when a node dies during `tx.commit`) and then
lose the connection with CommitInDoubt; the publishes of a failed commit are kept for
`resend_in_doubt`. `on_idle` is called by a `poll` that finds nothing to deliver and
nothing unacked: tests set it to `worker.stop` to run the loop until the queues are drained.

`StubStore` is the engine's MemoryStore with the worker's health probe, the same `fail` and a
record of what was spared from the attempt count (`spared`);
its `doubts` (`MemoryDoubts`) keeps commits in doubt as runeworker/adapters/redis_doubts.py
does, on a clock the test moves (`MemoryDoubts.now_ms`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from runeworker.adapters.amqp import (
    JSON,
    RESENT_HEADER,
    Ahead,
    Confirmed,
    Delivery,
    FlowListener,
)
from runeworker.child.receipts import Receipt
from runeworker.engine.state import MemoryStore
from runeworker.errors import BrokerError, CommitInDoubt, StateError


@dataclass
class Message:
    """A message as the broker holds it."""

    body: bytes
    exchange: str = ""
    routing_key: str = ""
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    redelivered: bool = False
    age: float = 0.0  # its next delivery arrived this many seconds ago (then 0)


@dataclass
class Transaction:
    """What one commit made durable, in the order the worker sent it."""

    published: list[Message] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.published or self.acked or self.requeued)

    def to(self, queue: str) -> list[Message]:
        """The messages of this transaction routed to `queue` (by routing key)."""
        return [m for m in self.published if m.routing_key == queue]


class StubBroker:
    """One in-memory connection with a transactional channel (see the module docstring)."""

    def __init__(self, exchange: str = "workflows", *, confirm: bool = False) -> None:
        """`confirm`: commit as `Broker` does with publisher confirms: the publishes are
        applied, then `confirmed(True)` runs, then the acks (an error in it keeps them back)."""
        self.exchange = exchange
        self.confirm = confirm
        self.queues: dict[str, deque[Message]] = {}
        self.bound: set[str] = set()  # queues bound to `exchange` with their own name
        self.pending: deque[Delivery] = deque()
        self.committed: list[Transaction] = []  # every commit, empty ones included
        self.unroutable: list[Message] = []
        self.connections = 0  # successful connects
        self.on_idle: Callable[[], None] | None = None
        self._faults: dict[str, int] = {}
        self._open = False
        self._consumed: list[str] = []
        self._prefetch = 0
        self._next_tag = 1
        self._unacked: dict[int, tuple[str, Message]] = {}  # tag -> (queue, message)
        self._tx = Transaction()
        self._doubts: list[tuple[str, ...] | None] = []  # per failing commit: queues it loses
        self.in_doubt: list[Message] = []
        self.resent: list[Message] = []  # every message published again by resend_in_doubt
        self.ack_timeout: str | None = None
        self.flow: FlowListener | None = None  # told of blocks (RabbitMQ's resource alarms)
        self.before_commit: Callable[[], None] | None = None
        self.rollbacks = 0
        self.polls: list[float] = []  # the timeout of every `poll`
        self._channel_closed = False  # by `time_out_acks`, until the next connect

    # -- the test's side ------------------------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        body: bytes,
        *,
        redelivered: bool = False,
        headers: dict[str, Any] | None = None,
        age: float = 0.0,
    ) -> None:
        """Publish `body` to `queue` as the Rune API does (default exchange, declared first);
        `age`: its first delivery looks that many seconds old."""
        self.queues.setdefault(queue, deque()).append(
            Message(body, "", queue, dict(headers or {}), None, redelivered, age)
        )

    def waiting(self, queue: str) -> list[Message]:
        """The committed messages waiting in `queue`."""
        return list(self.queues.get(queue, ()))

    def fail(self, op: str, times: int = 1) -> None:
        """The next `times` calls of method `op` lose the connection and raise BrokerError."""
        self._faults[op] = self._faults.get(op, 0) + times

    def doubt(self, *, lose: tuple[str, ...] = ()) -> None:
        """The next commit applies its acks and requeues and its publishes except those to
        the queues `lose`, then loses the connection and raises CommitInDoubt."""
        self._doubts.append(lose)

    def time_out_acks(self, text: str) -> None:
        """RabbitMQ closes the channel for an acknowledgement timeout (its consumer_timeout,
        PRECONDITION_FAILED `text`): every unacked delivery goes back to its queue,
        redelivered, the open transaction is lost and `ack_timeout` keeps the text. The
        connection stays: `poll` serves it and delivers nothing, every other call raises
        BrokerError naming the close. `pending` keeps the buffered deliveries until `close`
        or `connect`, as `Broker` does."""
        self.ack_timeout = text
        self._tx = Transaction()
        self._give_back(list(self._unacked))
        self._consumed = []
        self._channel_closed = True

    @property
    def unacked(self) -> int:
        """Deliveries handed out on this connection and not acked by a commit."""
        return len(self._unacked)

    # -- TransactionalBroker ------------------------------------------------------------------

    def watch_flow(self, listener: FlowListener | None) -> None:
        self.flow = listener

    def connect(self, before_each: Ahead | None = None) -> None:
        """Open the connection; delivery tags start again at 1. `before_each` is called once
        (one node), as the real broker does before its try."""
        if before_each is not None and not before_each():
            raise BrokerError("stopped while connecting (stub)")
        self._trip("connect")
        self._open, self._next_tag, self._tx = True, 1, Transaction()
        self._consumed = []
        self._channel_closed, self.ack_timeout = False, None
        self.pending.clear()
        self.connections += 1

    def declare(self, bound_queues: list[str], dead_letter_queue: str) -> None:
        """Declare the queues; bind `bound_queues` to the exchange by name."""
        self._trip("declare")
        for queue in [*bound_queues, dead_letter_queue]:
            self.queues.setdefault(queue, deque())
        self.bound.update(bound_queues)

    def consume(self, queues: list[str], prefetch: int) -> None:
        """Consume `queues` (in that order of preference), `prefetch` unacked at most."""
        self._trip("consume")
        self._consumed, self._prefetch = list(queues), prefetch

    def stop_consuming(self) -> None:
        """Deliver no more; `pending` keeps what was delivered."""
        self._trip("stop_consuming")
        self._consumed = []

    def poll(self, timeout: float) -> None:
        """Deliver up to the prefetch limit at once; never waits (the timeout asked for is
        written down in `polls`)."""
        self._trip("poll")
        self.polls.append(timeout)
        if self._channel_closed:
            return  # the connection is served; no channel, nothing to deliver
        delivered = False
        while len(self._unacked) < self._prefetch:
            queue = next((q for q in self._consumed if self.queues.get(q)), None)
            if queue is None:
                break
            msg = self.queues[queue].popleft()
            tag, self._next_tag = self._next_tag, self._next_tag + 1
            self._unacked[tag] = (queue, msg)
            at, msg.age = time.monotonic() - msg.age, 0.0
            self.pending.append(
                Delivery(tag, queue, msg.body, msg.redelivered, msg.headers, msg.content_type, at)
            )
            delivered = True
        if not delivered and not self._unacked and self.on_idle is not None:
            self.on_idle()

    def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        exchange: str | None = None,
        headers: dict[str, Any] | None = None,
        content_type: str | None = JSON,
    ) -> None:
        """Publish in the open transaction."""
        self._trip("publish")
        ex = self.exchange if exchange is None else exchange
        self._tx.published.append(Message(body, ex, routing_key, dict(headers or {}), content_type))

    def ack(self, tag: int) -> None:
        """Acknowledge in the open transaction."""
        self._trip("ack")
        self._tx.acked.append(tag)

    def requeue(self, tags: list[int]) -> None:
        """Hand deliveries back in the open transaction."""
        self._trip("requeue")
        self._tx.requeued.extend(tags)

    def commit(self, confirmed: Confirmed = None) -> float:
        """Apply the open transaction at once: route its publishes, settle its acks and
        requeues. An unknown or twice-settled tag closes the channel (nothing applied)."""
        if self.before_commit is not None:
            self.before_commit()
        tx, self._tx = self._tx, Transaction()
        if self._faults.get("commit") or self._doubts:
            self.in_doubt += tx.published
        if self._faults.get("commit"):
            self._faults["commit"] -= 1
            self._lose()
            raise CommitInDoubt("stub: connection lost during commit")
        if not self._open:
            raise BrokerError("stub: not connected")
        if self._channel_closed:
            raise BrokerError(f"RabbitMQ closed the channel: {self.ack_timeout}")
        settled = tx.acked + tx.requeued
        if len(set(settled)) != len(settled) or not set(settled) <= self._unacked.keys():
            self._lose()
            raise BrokerError(f"stub: PRECONDITION_FAILED - unknown delivery tag in {settled}")
        lose = self._doubts.pop(0) if self._doubts else None
        for msg in tx.published:
            if lose is None or msg.routing_key not in lose:
                self._route(msg)
        if self.confirm and lose is None and confirmed is not None:
            confirmed(True)  # may raise: the acks stay back, as with RabbitMQ
            confirmed = None
        for tag in tx.acked:
            del self._unacked[tag]
        self._give_back(tx.requeued)
        if lose is not None:
            self._lose()
            raise CommitInDoubt(f"stub: connection lost during commit (lost {lose or 'none'})")
        self.committed.append(tx)
        if confirmed is not None:
            confirmed(False)
        return 0.0

    def rollback(self) -> None:
        """Discard the open transaction: its acked deliveries stay unacked, ours."""
        self._trip("rollback")
        self._tx = Transaction()
        self.rollbacks += 1

    def export_doubt(self) -> bytes:
        """The messages in doubt, packed (`Broker.export_doubt`)."""
        return msgspec.msgpack.encode(self.in_doubt)

    def import_doubt(self, packed: bytes) -> int:
        """Add another child's packed messages to those in doubt."""
        try:
            messages = msgspec.msgpack.decode(packed, type=list[Message])
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a packed commit in doubt: {exc}") from exc
        self.in_doubt += messages
        return len(messages)

    def resend_in_doubt(self) -> int:
        """Publish the messages of failed commits again in one transaction and commit."""
        doubted = [
            Message(m.body, m.exchange, m.routing_key, {**m.headers, RESENT_HEADER: True})
            for m in self.in_doubt
        ]
        for copy, m in zip(doubted, self.in_doubt, strict=True):
            copy.content_type = m.content_type
        self.in_doubt = []
        if not doubted:
            return 0
        if not self._open:
            self.in_doubt = doubted
            raise BrokerError("stub: not connected")
        self._tx.published += doubted
        self.resent += doubted
        self.commit()
        return len(doubted)

    def close(self) -> None:
        """Close: the open transaction is discarded, unacked deliveries go back."""
        self._lose()

    # -- internals ------------------------------------------------------------------------------

    def _trip(self, op: str) -> None:
        if self._faults.get(op):
            self._faults[op] -= 1
            self._lose()
            raise BrokerError(f"stub: connection lost during {op}")
        if op != "connect" and not self._open:
            raise BrokerError("stub: not connected")
        if self._channel_closed and op not in ("connect", "poll"):
            raise BrokerError(f"RabbitMQ closed the channel: {self.ack_timeout}")

    def _lose(self) -> None:
        self._tx = Transaction()
        self._give_back(list(self._unacked))
        self.pending.clear()
        self._open = False
        self._consumed = []

    def _give_back(self, tags: list[int]) -> None:
        """Back to the head of their queues, in delivery order, marked redelivered."""
        for tag in sorted(tags, reverse=True):
            queue, msg = self._unacked.pop(tag)
            msg.redelivered = True
            self.queues[queue].appendleft(msg)

    def _route(self, msg: Message) -> None:
        if msg.exchange == "":
            target = msg.routing_key if msg.routing_key in self.queues else None
        elif msg.exchange == self.exchange and msg.routing_key in self.bound:
            target = msg.routing_key
        else:
            target = None
        if target is None:
            self.unroutable.append(msg)
        else:
            self.queues[target].append(msg)


class MemoryDoubts:
    """`DoubtStore` in memory (RedisDoubts' semantics), on a clock of its own (`now_ms`)."""

    def __init__(self, store: StubStore) -> None:
        self.now_ms = 0
        self.kept: dict[str, bytes] = {}
        self.leases: dict[str, int] = {}
        self._store = store

    def keep(self, doubt_id: str, packed: bytes, lease_ms: int) -> None:
        self._check("keep")
        self.kept[doubt_id] = packed
        self.leases[doubt_id] = self.now_ms + lease_ms

    def renew(self, doubt_id: str, lease_ms: int) -> bool:
        self._check("renew")
        if doubt_id not in self.kept:
            return False
        self.leases[doubt_id] = self.now_ms + lease_ms
        return True

    def drop(self, doubt_id: str) -> None:
        self._check("drop")
        self.kept.pop(doubt_id, None)
        self.leases.pop(doubt_id, None)

    def take(self, lease_ms: int, limit: int) -> list[tuple[str, bytes]]:
        self._check("take")
        out = []
        for doubt_id, packed in self.kept.items():
            if len(out) < limit and self.leases.get(doubt_id, 0) <= self.now_ms:
                self.leases[doubt_id] = self.now_ms + lease_ms
                out.append((doubt_id, packed))
        return out

    def _check(self, op: str) -> None:
        if self._store._trip("doubts"):
            raise StateError(f"stub: Redis is gone (doubts {op})")


class StubStore(MemoryStore):
    """The engine's MemoryStore with a worker's health probe, and `fail` for Redis outages."""

    def __init__(self) -> None:
        super().__init__()
        self.doubts = MemoryDoubts(self)
        self.closed = False
        self.receipts_kept: set[Receipt] = set()
        self.spared: list[list[bytes]] = []  # the bodies of each `spare_attempts` call
        self._faults: dict[str, int] = {}
        self.policy: tuple[str, int] | None = ("noeviction", 0)  # `memory_policy`

    def fail(self, op: str, times: int = 1) -> None:
        """The next `times` calls of `op` (ping, write, count_attempt, spare_attempts, flush,
        receipts, release_expired, ack_timer, doubts) fail."""
        self._faults[op] = self._faults.get(op, 0) + times

    def _trip(self, op: str) -> bool:
        if self._faults.get(op):
            self._faults[op] -= 1
            return True
        return False

    def ping(self) -> bool:
        """False while a `ping` fault lasts."""
        return self.ping_problem() is None

    def ping_problem(self) -> str | None:
        """`no answer to PING` while a `ping` fault lasts."""
        return "no answer to PING" if self._trip("ping") else None

    def write_problem(self) -> str | None:
        """`refuses writes` while a `write` fault lasts."""
        return "refuses writes: stub: OOM" if self._trip("write") else None

    def memory_policy(self) -> tuple[str, int] | None:
        """What `policy` says (Redis's default, `noeviction` without a limit, unless a test
        sets another)."""
        return self.policy

    def close(self) -> None:
        """Nothing to release; remembered for the tests."""
        self.closed = True

    def count_attempt(self, body: bytes) -> int:
        if self._trip("count_attempt"):
            raise StateError("stub: Redis is gone (count_attempt)")
        return super().count_attempt(body)

    def spare_attempts(self, bodies: list[bytes]) -> None:
        if self._trip("spare_attempts"):
            raise StateError("stub: Redis is gone (spare_attempts)")
        self.spared.append(list(bodies))
        super().spare_attempts(bodies)

    def flush(self) -> None:
        """The writes kept back for the commit (none in memory); a `flush` fault fails it."""
        if self._trip("flush"):
            raise StateError("stub: Redis is gone (flush)")
        super().flush()

    def receipts(self, record: list[Receipt], check: list[Receipt]) -> list[bool]:
        """Record `record`, then look up `check` (RedisStore.receipts in memory)."""
        if self._trip("receipts"):
            raise StateError("stub: Redis is gone (receipts)")
        self.receipts_kept.update(record)
        return [r in self.receipts_kept for r in check]

    def release_expired(self, now_ms: int) -> int:
        if self._trip("release_expired"):
            raise StateError("stub: Redis is gone (release_expired)")
        return super().release_expired(now_ms)

    def ack_timer(self, timer_id: str) -> None:
        if self._trip("ack_timer"):
            raise StateError("stub: Redis is gone (ack_timer)")
        super().ack_timer(timer_id)
