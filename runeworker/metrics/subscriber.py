"""The Prometheus subscriber of a worker child's events (`runeworker.child.hooks.WorkerHooks`).

Updates go through `runeworker.metrics.tally`: summed in memory from `on_ready` on, written
after a commit at most every `tally.FLUSH_EVERY` seconds and whenever the loop is idle, so a
scrape counts what is committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runeworker import metrics
from runeworker.metrics import tally

# label sets whose series a subscriber keeps, as `metrics.Family` keeps its children
_KEPT = 4 * metrics.MAX_LABEL_VALUES


class WorkerMetrics:
    """Counts a worker child's deliveries, nodes, completions, commits and failures.

    A step reports five events (a delivery consumed and acked, the in-flight gauge up and
    down, its node done); each is one dict lookup here and the tally's sums: the series an
    event adds to are looked up once per label set, and the in-flight gauge's moves are summed
    in an int that reaches the tally before it writes (`on_commit`, `on_idle`, `on_stop`), so a
    quick node's +1 and -1 cost two additions."""

    def __init__(self) -> None:
        self._delivered: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._nodes: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._inflight = 0  # the in-flight gauge's moves not handed to the tally yet

    def on_ready(self, queues: Iterable[str], node_types: Iterable[str]) -> None:
        """Create the child's series at zero, then buffer updates until each commit."""
        metrics.prime(queues=queues, node_types=node_types)
        tally.start()

    def on_delivery(self, queue: str, outcome: str) -> None:
        """Count the outcome; a consumed delivery is also a message the child handles."""
        series = self._delivered.get((queue, outcome))
        if series is None:
            series = self._delivered[(queue, outcome)] = metrics.delivery_series(queue, outcome)
        for child in series:
            tally.inc(child)

    def on_inflight(self, delta: int) -> None:
        """Move the in-flight gauge (in the tally before it next writes)."""
        self._inflight += delta

    def on_node_done(self, node_type: str, outcome: str, seconds: float) -> None:
        """Count the node and observe its duration."""
        series = self._nodes.get((node_type, outcome))
        if series is None:
            series = metrics.node_series(node_type, outcome)
            # a message may name any type (an unknown one fails): the junk is not kept, past
            # _KEPT label sets or past MAX_LABEL_CHARS (it reads "other")
            if len(self._nodes) < _KEPT and len(node_type) <= metrics.MAX_LABEL_CHARS:
                self._nodes[(node_type, outcome)] = series
        counter, duration = series
        tally.inc(counter)
        if duration is not None:
            tally.observe(duration, seconds)

    def on_completion(self, status: str) -> None:
        """Count the completion."""
        metrics.completion(status)

    def on_commit(self, seconds: float) -> None:
        """Observe the commit; write what the committed steps counted when it is time."""
        metrics.commit_observed(seconds)
        self._hand_inflight()
        tally.flush_due()

    def on_idle(self) -> None:
        """Write what is pending: nothing else is coming soon."""
        self._hand_inflight()
        tally.flush()

    def on_reconnect(self) -> None:
        """Count the reconnection."""
        metrics.broker_reconnect()

    def on_state_error(self) -> None:
        """Count the failed state store operation."""
        metrics.state_error()

    def on_state_lost(self, what: str) -> None:
        """Count the loss (with the step's counts: written after its commit)."""
        metrics.state_lost(what)

    def on_flow(self, blocked: bool) -> None:
        """Count a block of this child's publishes by RabbitMQ (a resource alarm)."""
        if blocked:
            metrics.broker_blocked()

    def on_ack_timeout(self) -> None:
        """Count a channel RabbitMQ closed for an unacknowledged delivery."""
        metrics.ack_timeout()

    def on_doubt(self, event: str) -> None:
        """Count what became of a commit in doubt."""
        metrics.commit_in_doubt(event)

    def on_stop(self) -> None:
        """Write what is pending."""
        self._hand_inflight()
        tally.stop()

    def _hand_inflight(self) -> None:
        if self._inflight:
            metrics.inflight(self._inflight)
            self._inflight = 0
