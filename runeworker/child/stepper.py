"""Runs executor steps, in a helper thread when the node may block, so that the caller keeps
the AMQP connection alive.

pika's BlockingConnection is not thread-safe and only services heartbeats when called, so
the connection stays in the main thread and a node that may block (its NodeSpec says
`blocking`: http, smtp; the step's `Plan` carries it) runs in a single long-lived helper
thread. The node thread hands the `running` status back to the main thread (pika calls only
happen there) and waits until it has been committed.

Every other step runs inline, in the calling thread: a node that does not declare `blocking`
promises to be quick, and the hand-off to a thread and back (three cross-thread wake-ups and
the GIL traded between two busy threads) cost more than the node itself (see
deploy/PERFORMANCE.md).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, NodeStatusMessage
from runeworker.engine.outbox import Outbox

Publish = Callable[[NodeStatusMessage, bool], None]  # (running status, commit now?)
Idle = Callable[[], None]  # serve the connection for a short while
_Events = queue.SimpleQueue[tuple[NodeStatusMessage, bool, threading.Event] | None]


class Stepper:
    """Executes one step at a time: inline, or in a helper thread when the node may block."""

    def __init__(self, executor: Executor, idle_interval: float = 0.25) -> None:
        self.executor = executor
        self.idle_interval = idle_interval
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="node")

    def run(
        self,
        msg: NodeExecutionMessage,
        publish: Publish,
        idle: Idle,
        resumed: bool = False,
        *,
        replayed: bool = False,
    ) -> Outbox:
        """Execute `msg`; calls `publish` for the running status and `idle` while waiting.
        `resumed`, `replayed`: see `Executor.plan`.
        Exceptions of the step (StateError, ...) are re-raised here."""
        plan = self.executor.plan(msg, resumed=resumed, replayed=replayed)
        if not plan.blocking:
            return self.executor.run(plan, publish)
        # one queue per step: events of an abandoned step (broker lost) cannot leak into the next
        events: _Events = queue.SimpleQueue()

        def hand_over(status: NodeStatusMessage, blocking: bool) -> None:
            committed = threading.Event()
            events.put((status, blocking, committed))
            if blocking:
                committed.wait()

        future = self._pool.submit(self.executor.run, plan, hand_over)
        future.add_done_callback(lambda _f: events.put(None))
        while True:
            try:
                event = events.get(timeout=self.idle_interval)
            except queue.Empty:
                idle()
                continue
            if event is None:
                return _result(future)
            status, blocking, committed = event
            try:
                publish(status, blocking)
            finally:
                committed.set()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _result(future: Future[Outbox]) -> Outbox:
    return future.result()
