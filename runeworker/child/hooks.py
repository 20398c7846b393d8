"""What a worker child tells its observers: the events of the consume loop, as one subscriber.

The loop (`runeworker.child.worker.Worker`, with its `Services` and `Resender`) calls these
methods; it knows no metric. `serve` subscribes `runeworker.metrics.subscriber.WorkerMetrics`
(Prometheus); tests subscribe a recorder; the default, `NoHooks`, does nothing. Hooks run
inside the loop, some inside a step, so they must be quick and must not raise.

Counting rule: what happens inside a step (delivery outcomes, node and completion counts) is
reported before the step's transaction commits; a subscriber that counts only what is committed
holds its counts until `on_commit` (the Prometheus subscriber does, through
`runeworker.metrics.tally`, and writes them when due or at `on_idle`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

# consumed: a step starts; acked: its ack is in the transaction; rejected: it is refused (bad
# input, poison) and acked; dead_lettered: a raw copy goes to the dead-letter queue; requeued:
# handed back unprocessed at drain
DeliveryOutcome = Literal["consumed", "acked", "duplicate", "rejected", "dead_lettered", "requeued"]
# what became of a commit whose outcome was unknown (runeworker/child/doubts.py): doubted: a
# commit failed in doubt; resent: this child published its messages again; handed_over: it
# stopped without, its copy kept in Redis for the others; adopted: it published another
# child's kept copy
DoubtEvent = Literal["doubted", "resent", "handed_over", "adopted"]


class WorkerHooks(Protocol):
    """The events of one worker child's consume loop."""

    def on_ready(self, queues: Iterable[str], node_types: Iterable[str]) -> None:
        """Connected and about to consume `queues`; `node_types` are the registered types."""

    def on_delivery(self, queue: str, outcome: DeliveryOutcome) -> None:
        """A delivery from `queue` reached `outcome`."""

    def on_inflight(self, delta: int) -> None:
        """+1 when a step starts, -1 when it ends (whatever its outcome)."""

    def on_node_done(self, node_type: str, outcome: str, seconds: float) -> None:
        """A node finished: `outcome` success, failed or skipped, after `seconds`."""

    def on_completion(self, status: str) -> None:
        """A completion (completed, failed, halted) is in the transaction."""

    def on_commit(self, seconds: float) -> None:
        """A transaction committed in `seconds`: what was reported before it is durable."""

    def on_idle(self) -> None:
        """The loop has no backlog (its last batch was not full, or it waited and nothing
        came) or a blocking node runs: what was committed before may be reported now."""

    def on_reconnect(self) -> None:
        """The connection to RabbitMQ or Redis was lost; the child reconnects."""

    def on_state_error(self) -> None:
        """An operation on the state store (Redis) failed."""

    def on_state_lost(self, what: str) -> None:
        """A step found its execution's state lost (`runeworker.errors.StateLost.what`), or
        the scheduler a due timer without its resume message (`timer`)."""

    def on_flow(self, blocked: bool) -> None:
        """RabbitMQ blocked this child's publishes (a memory or disk alarm), or lifted it."""

    def on_ack_timeout(self) -> None:
        """RabbitMQ closed the channel: a delivery stayed unacknowledged past its
        consumer_timeout."""

    def on_doubt(self, event: DoubtEvent) -> None:
        """A commit in doubt reached `event`."""

    def on_stop(self) -> None:
        """The child drained and is about to exit."""


class NoHooks:
    """The default subscriber: ignores every event."""

    def on_ready(self, queues: Iterable[str], node_types: Iterable[str]) -> None:
        """Ignored."""

    def on_delivery(self, queue: str, outcome: DeliveryOutcome) -> None:
        """Ignored."""

    def on_inflight(self, delta: int) -> None:
        """Ignored."""

    def on_node_done(self, node_type: str, outcome: str, seconds: float) -> None:
        """Ignored."""

    def on_completion(self, status: str) -> None:
        """Ignored."""

    def on_commit(self, seconds: float) -> None:
        """Ignored."""

    def on_idle(self) -> None:
        """Ignored."""

    def on_reconnect(self) -> None:
        """Ignored."""

    def on_state_error(self) -> None:
        """Ignored."""

    def on_state_lost(self, what: str) -> None:
        """Ignored."""

    def on_flow(self, blocked: bool) -> None:
        """Ignored."""

    def on_ack_timeout(self) -> None:
        """Ignored."""

    def on_doubt(self, event: DoubtEvent) -> None:
        """Ignored."""

    def on_stop(self) -> None:
        """Ignored."""
