"""What the consume loop needs from its broker and its state store.

`serve` plugs in RabbitMQ (`runeworker.adapters.amqp.Broker`) and Redis
(`runeworker.adapters.redis_state.RedisStore`); the unit tests of the loop plug in memory
stand-ins (`tests/unit/stubbroker.py`) with the same transactional behaviour.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from runeworker.adapters.amqp import JSON, Ahead, Confirmed, Delivery, FlowListener
from runeworker.child.doubts import DoubtStore
from runeworker.child.receipts import Receipt
from runeworker.engine.state import StateStore


class TransactionalBroker(Protocol):
    """One connection with one transactional channel.

    Publishes, acks and requeues take effect together at `commit`; a connection that is
    closed or lost before the commit discards them, and the broker redelivers every delivery
    that was not acked (with `redelivered` set). A commit that fails has an unknown outcome
    (RabbitMQ applies a transaction queue by queue): its publishes are kept *in doubt* until
    `resend_in_doubt` publishes them again (runeworker/child/receipts.py)."""

    pending: deque[Delivery]  # consumed, not yet handled; filled by `poll`
    # RabbitMQ's text once it closed the channel because a delivery stayed unacknowledged past
    # its consumer_timeout; None otherwise (reset by `connect`)
    ack_timeout: str | None

    def watch_flow(self, listener: FlowListener | None) -> None:
        """Tell `listener` when RabbitMQ blocks this connection's publishes (a memory or disk
        alarm) and when it lifts the block, also in the middle of a commit
        (`runeworker.adapters.amqp.FlowListener`)."""

    def connect(self, before_each: Ahead | None = None) -> None:
        """Open the connection and its transactional channel; `pending` starts empty.
        `before_each`: called before each try of a node, False gives up
        (`runeworker.adapters.amqp.Endpoint.connect`)."""

    def declare(self, bound_queues: list[str], dead_letter_queue: str) -> None:
        """Declare the exchange, `bound_queues` bound to it by name, and the dead-letter queue."""

    def consume(self, queues: list[str], prefetch: int) -> None:
        """Start consuming `queues`, at most `prefetch` deliveries unacked at a time."""

    def stop_consuming(self) -> None:
        """Stop consuming; deliveries already in `pending` stay there."""

    def poll(self, timeout: float) -> None:
        """Serve the connection for up to `timeout` seconds, adding deliveries to `pending`."""

    def publish(
        self,
        routing_key: str,
        body: bytes,
        *,
        exchange: str | None = None,
        headers: dict[str, Any] | None = None,
        content_type: str | None = JSON,
    ) -> None:
        """Publish in the transaction; `exchange` None = the Rune exchange, "" = default."""

    def ack(self, tag: int) -> None:
        """Acknowledge a delivery in the transaction."""

    def requeue(self, tags: list[int]) -> None:
        """Hand deliveries back in the transaction."""

    def commit(self, confirmed: Confirmed = None) -> float:
        """Commit the transaction; returns its latency in seconds. `confirmed(before_acks)`
        runs once the publishes are this process's to deliver: with publisher confirms as
        soon as they are sent, before the confirms and the acks (True), after a transaction
        once it is applied (False). A
        commit that was sent and failed raises CommitInDoubt, its publishes kept in doubt."""
        ...

    def rollback(self) -> None:
        """Discard the open transaction's publishes, acks and requeues; the deliveries it
        acked stay unacknowledged, this process's to handle again (a step that Redis refused
        runs again once Redis takes writes)."""

    def export_doubt(self) -> bytes:
        """Every message now in doubt, packed for `DoubtStore.keep` (runeworker/child/doubts.py)."""
        ...

    def import_doubt(self, packed: bytes) -> int:
        """Add the messages of `export_doubt`'s `packed` (another child's) to those in doubt,
        for `resend_in_doubt`; returns how many. ValueError when `packed` is not such."""
        ...

    def resend_in_doubt(self) -> int:
        """Publish the messages of the failed commits again, same bytes, in one transaction,
        and commit; returns how many (0: nothing was in doubt). On failure they stay in
        doubt."""
        ...

    def close(self) -> None:
        """Close the connection; uncommitted work is discarded, `pending` is emptied."""


class WorkerStore(StateStore, Protocol):
    """The state store of a worker child: the engine's `StateStore` plus a health probe,
    receipts, and where commits in doubt are kept (runeworker/child/doubts.py)."""

    @property
    def doubts(self) -> DoubtStore:
        """Where this child keeps a commit in doubt until it is published again."""
        ...

    def ping(self) -> bool:
        """True when the store answers; never raises."""
        ...

    def ping_problem(self) -> str | None:
        """None when the store answers, else why not (a refused connection, a wrong
        password); never raises."""
        ...

    def write_problem(self) -> str | None:
        """None when the store takes a write, else why not (full, read-only, slow); never
        raises. Asked only while connecting or waiting, never per step."""
        ...

    def memory_policy(self) -> tuple[str, int] | None:
        """(`maxmemory-policy`, `maxmemory` in bytes) of the store's server, None when it does
        not say; never raises. Asked once, when the first child connects."""
        ...

    def receipts(self, record: list[Receipt], check: list[Receipt]) -> list[bool]:
        """Record the receipts `record` (steps whose outcome is published), then say for each
        of `check` whether it has a receipt; one round trip (runeworker/child/receipts.py)."""
        ...

    def close(self) -> None:
        """Release the store's connections."""
