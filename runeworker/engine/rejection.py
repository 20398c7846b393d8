"""Turning an unprocessable delivery into a clear error, a `failed` status and completion
(when the execution can be identified) — never into a crash or an endless requeue."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from runeworker.engine.executor import Executor, StepResult
from runeworker.engine.messages import NodeExecutionMessage, peek_ids


@dataclass
class Rejection:
    reason: str
    result: StepResult | None  # what to publish; None when the execution is unknown


def reject(
    executor: Executor, body: bytes, reason: str, msg: NodeExecutionMessage | None = None
) -> Rejection:
    """Fail the execution `body` belongs to, if its ids can be read."""
    if msg is None:
        ids = peek_ids(body)
        if ids is None:
            return Rejection(reason, None)
        msg = NodeExecutionMessage(
            workflow_id=ids.workflow_id,
            execution_id=ids.execution_id,
            current_node=ids.current_node or "unknown",
            workflow_definition=msgspec.Raw(b"{}"),
            accumulated_context={},
            branch_token=ids.branch_token or msgspec.UNSET,
        )
    return Rejection(reason, executor.fail(msg, reason))
