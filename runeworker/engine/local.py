"""The embedded runner: a whole workflow in one process, with an in-memory queue and state.

Messages still go through their JSON encoding between steps, so a workflow that runs here
sees exactly what it would see on the wire. Wait timers live in the state store; when the queue
is empty and a timer is pending, the runner sleeps until it is due and resumes the wait, as the
scheduler and the resume queue do for a worker pool.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from runeworker.engine.executor import Executor
from runeworker.engine.messages import (
    CompletionMessage,
    NodeExecutionMessage,
    NodeStatusMessage,
    decode_execution,
    encode,
    encode_execution,
)
from runeworker.engine.state import MemoryStore
from runeworker.engine.workflow import parse_definition

OnStatus = Callable[[NodeStatusMessage], None]
Sleep = Callable[[float], None]
_BATCH = 100
_LEASE_MS = 60_000
# The longest single sleep: time.sleep overflows past about 292 years (int64 nanoseconds),
# and a wait node may be due as late as the year 9999.
_LONGEST_SLEEP_MS = 86_400_000


def start_message(
    definition: bytes,
    inputs: dict[str, Any] | None = None,
    *,
    workflow_id: str = "local",
    execution_id: str | None = None,
) -> NodeExecutionMessage:
    """The message the master would publish: it starts at the trigger node, which fans out
    to every successor (the Rune API starts only the first one; we start them all). Without a
    trigger, the one node no edge points to runs first. A workflow with several triggers, or
    without one and with several such nodes, raises WorkflowError (`Workflow.start_node`)."""
    current = parse_definition(definition).start_node()
    context: dict[str, Any] = {}
    if inputs is not None:
        context = {"$input": inputs, "$trigger": inputs}
    return NodeExecutionMessage(
        workflow_id=workflow_id,
        execution_id=execution_id or str(uuid.uuid4()),
        current_node=current,
        workflow_definition=msgspec.Raw(definition),
        accumulated_context=context,
    )


class LocalRunner:
    """Runs executions to completion in this process."""

    def __init__(
        self,
        executor: Executor | None = None,
        on_status: OnStatus | None = None,
        *,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.executor = executor or Executor(MemoryStore())
        self.on_status = on_status or (lambda status: None)
        self.sleep = sleep

    def run(self, start: NodeExecutionMessage) -> CompletionMessage | None:
        """Execute until no message and no timer is left; return the completion (None if
        none came)."""
        queue: deque[tuple[bytes, bool]] = deque([(encode(start), False)])
        done: CompletionMessage | None = None
        while queue or self._wait_for_timers(queue):
            if not queue:
                continue  # the due timers were gone (cancelled): look again
            body, resumed = queue.popleft()
            msg = decode_execution(body)
            outbox = self.executor.step(
                msg, lambda status, _blocking: self.on_status(status), resumed=resumed
            )
            for status in outbox.statuses:
                self.on_status(status)
            queue.extend((encode_execution(m), False) for m in outbox.messages)
            if outbox.completion is not None:
                done = outbox.completion
        return done

    def _wait_for_timers(self, queue: deque[tuple[bytes, bool]]) -> bool:
        """Sleep until the next timer is due and queue its resume message; False when no
        timer is pending."""
        store = self.executor.store
        due = store.next_due()
        if due is None:
            return False
        delay_ms = due - time.time_ns() // 1_000_000
        while delay_ms > 0:  # counted down, so an injected sleep that returns at once ends too
            step_ms = min(delay_ms, _LONGEST_SLEEP_MS)
            self.sleep(step_ms / 1000)
            delay_ms -= step_ms
        for timer in store.claim_due(max(due, time.time_ns() // 1_000_000), _BATCH, _LEASE_MS):
            queue.append((timer.payload, True))
            store.ack_timer(timer.timer_id)
        return True
