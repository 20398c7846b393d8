"""The embedded runner: a whole workflow in one process, with an in-memory queue and state.

Messages still go through their JSON encoding between steps, so a workflow that runs here
sees exactly what it would see on the wire.
"""

from __future__ import annotations

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
)
from runeworker.engine.state import MemoryStore
from runeworker.engine.workflow import parse_definition
from runeworker.errors import WorkflowError

OnStatus = Callable[[NodeStatusMessage], None]


def start_message(
    definition: bytes,
    inputs: dict[str, Any] | None = None,
    *,
    workflow_id: str = "local",
    execution_id: str | None = None,
) -> NodeExecutionMessage:
    """The message the master would publish: it starts at the trigger node, which fans out
    to every successor (the Rune API starts only the first one; we start them all)."""
    wf = parse_definition(definition)
    triggers = [n.id for n in wf.nodes if n.trigger]
    if triggers:
        current = triggers[0]
    else:
        # Without a trigger the first node no edge points to is itself the start (it must
        # run: `start_nodes` would give its successors, as if it were a trigger).
        targets = {e.dst for e in wf.edges}
        starts = [n.id for n in wf.nodes if n.id not in targets]
        if not starts:
            raise WorkflowError("workflow has no trigger node and no start node")
        current = starts[0]
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

    def __init__(self, executor: Executor | None = None, on_status: OnStatus | None = None) -> None:
        self.executor = executor or Executor(MemoryStore())
        self.on_status = on_status or (lambda status: None)

    def run(self, start: NodeExecutionMessage) -> CompletionMessage | None:
        """Execute until no message is left; return the completion (None if none came)."""
        queue: deque[bytes] = deque([encode(start)])
        done: CompletionMessage | None = None
        while queue:
            msg = decode_execution(queue.popleft())
            result = self.executor.step(msg, lambda status, _blocking: self.on_status(status))
            for status in result.statuses:
                self.on_status(status)
            queue.extend(encode(m) for m in result.messages)
            if result.completion is not None:
                done = result.completion
        return done
