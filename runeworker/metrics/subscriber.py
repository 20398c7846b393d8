"""The Prometheus subscriber of a worker child's events (`runeworker.child.hooks.WorkerHooks`).

Updates go through `runeworker.metrics.tally`: summed in memory from `on_ready` on, written
after a commit at most every `tally.FLUSH_EVERY` seconds and whenever the loop is idle, so a
scrape counts what is committed.
"""

from __future__ import annotations

from collections.abc import Iterable

from runeworker import metrics
from runeworker.metrics import tally


class WorkerMetrics:
    """Counts a worker child's deliveries, nodes, completions, commits and failures."""

    def on_ready(self, queues: Iterable[str], node_types: Iterable[str]) -> None:
        """Create the child's series at zero, then buffer updates until each commit."""
        metrics.prime(queues=queues, node_types=node_types)
        tally.start()

    def on_delivery(self, queue: str, outcome: str) -> None:
        """Count the outcome; a consumed delivery is also a message the child handles."""
        metrics.delivery(queue, outcome)
        if outcome == "consumed":
            metrics.message_handled()

    def on_inflight(self, delta: int) -> None:
        """Move the in-flight gauge."""
        metrics.inflight(delta)

    def on_node_done(self, node_type: str, outcome: str, seconds: float) -> None:
        """Count the node and observe its duration."""
        metrics.node_done(node_type, outcome, seconds)

    def on_completion(self, status: str) -> None:
        """Count the completion."""
        metrics.completion(status)

    def on_commit(self, seconds: float) -> None:
        """Observe the commit; write what the committed steps counted when it is time."""
        metrics.commit_observed(seconds)
        tally.flush_due()

    def on_idle(self) -> None:
        """Write what is pending: nothing else is coming soon."""
        tally.flush()

    def on_reconnect(self) -> None:
        """Count the reconnection."""
        metrics.broker_reconnect()

    def on_state_error(self) -> None:
        """Count the failed state store operation."""
        metrics.state_error()

    def on_doubt(self, event: str) -> None:
        """Count what became of a commit in doubt."""
        metrics.commit_in_doubt(event)

    def on_stop(self) -> None:
        """Write what is pending."""
        tally.stop()
