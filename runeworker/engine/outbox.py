"""What one step publishes: its `Outbox` (node statuses, next messages, the completion, a
dead-letter reason), the `Report` that goes with it, and the builders of those messages.

The caller publishes an outbox in this order (statuses, next messages or completion, with the
dead-letter copy when asked) and acknowledges the delivery in the same atomic step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import UNSET

from runeworker.engine.context import LazyContext
from runeworker.engine.flow import Emit, Outcome
from runeworker.engine.messages import (
    CompletionMessage,
    ErrorPayload,
    NodeExecutionMessage,
    NodeStatusMessage,
    StackFrame,
    frames,
    opt,
    rfc3339,
)
from runeworker.engine.resolver import Resolver
from runeworker.engine.state import Verdict
from runeworker.engine.workflow import Node, Workflow


@dataclass(slots=True)
class Report:
    """How a step went, for metrics, logs and tests; nothing here is published."""

    node_type: str = ""  # "" when the message named no node that could be read
    outcome: str = ""  # success | failed | skipped ("" when no step was taken)
    seconds: float = 0.0  # wall time of the step
    error: str = ""  # the node or workflow error
    verdict: Verdict = Verdict.RUN  # on the step's branch token
    ledger: str = ""  # the mode that kept the token (`runeworker.engine.ledger`)


@dataclass(slots=True)
class Outbox:
    """Everything one step publishes, in publish order: statuses, then next messages or the
    completion. `dead_letter`: the message or its definition is broken; keep a copy of the
    delivery on the dead-letter queue with this reason."""

    statuses: list[NodeStatusMessage] = field(default_factory=list)
    messages: list[NodeExecutionMessage] = field(default_factory=list)
    completion: CompletionMessage | None = None
    dead_letter: str = ""
    report: Report = field(default_factory=Report)


class StatusBuilder:
    """Statuses of one node execution: shared ids, masked parameters, lineage, used inputs."""

    def __init__(self, msg: NodeExecutionMessage, node: Node, resolver: Resolver | None) -> None:
        self.msg = msg
        self.node = node
        self.resolver = resolver
        self.parameters: dict[str, Any] = {}
        self.lineage: list[StackFrame] = frames(msg)

    def build(
        self,
        status: str,
        duration_ms: int,
        *,
        output: dict[str, Any] | None = None,
        error: ErrorPayload | None = None,
    ) -> NodeStatusMessage:
        r = self.resolver
        st = NodeStatusMessage(
            workflow_id=self.msg.workflow_id,
            execution_id=self.msg.execution_id,
            node_id=self.node.id,
            node_name=self.node.label,
            status=status,
            executed_at=rfc3339(),
            duration_ms=duration_ms,
            parameters=opt(r.mask(self.parameters) if r else self.parameters),
            output=opt(r.mask(output) if r and output else output),
            error=error if error is not None else UNSET,
        )
        if self.lineage:
            top = self.lineage[-1]
            st.branch_id = top.branch_id
            st.split_node_id = top.split_node_id
            st.item_index = top.item_index
            st.total_items = top.total_items
            st.lineage_stack = self.lineage
        if r is not None and r.used_keys:
            st.all_used_input_keys = sorted(r.used_keys)
            st.used_inputs = opt(r.mask(r.used_inputs()))
        return st


_context_parts = msgspec.json.Decoder(dict[str, msgspec.Raw])


def completion(
    msg: NodeExecutionMessage,
    status: str,
    contexts: list[bytes],
    started_at_ns: int,
    now_ns: int,
    failure_reason: str,
    workflow: Workflow | None,
) -> CompletionMessage:
    """The single completion of an execution. `final_context` merges the contexts of every
    finished branch in finishing order (later branches win a shared key), with every
    credential value of the workflow masked."""
    secrets = {}
    if workflow is not None:
        secrets = {
            f"{n.id}.{k}": v
            for n in workflow.nodes
            if n.credentials
            for k, v in n.credentials.values.items()
        }
    # without secrets to mask, each key's value goes on as the bytes it arrived as (a reader
    # in this process sees them decoded: LazyContext)
    decode = msgspec.json.decode if secrets else _context_parts.decode
    final: dict[str, Any] = {} if secrets else LazyContext()
    for raw in contexts:
        try:
            part = decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue  # a ValidationError (a DecodeError) too: the context is not an object
        if isinstance(part, dict):
            final.update(part)
    if secrets:
        final = Resolver({}, credentials=secrets).mask(final)
    return CompletionMessage(
        workflow_id=msg.workflow_id,
        execution_id=msg.execution_id,
        status=status,
        final_context=final,
        completed_at=rfc3339(now_ns),
        total_duration_ms=max(0, (now_ns - started_at_ns) // 1_000_000) if started_at_ns else 0,
        failure_reason=opt(failure_reason),
    )


def outcome_status(report: StatusBuilder, done: Outcome, duration_ms: int) -> NodeStatusMessage:
    """The status of a successful (or waiting) node, with the aggregator's barrier fields."""
    status = report.build(done.status, duration_ms, output=done.output)
    if done.aggregator_state:
        status.aggregator_state = done.aggregator_state
    if done.processed_count is not None:
        status.processed_count = done.processed_count
    return status


def next_message(msg: NodeExecutionMessage, emit: Emit, token: str) -> NodeExecutionMessage:
    """The execution message of one emit: the next node, its context and lineage, the child
    token, and the execution's start time carried on (engine/ledger.py)."""
    return NodeExecutionMessage(
        workflow_id=msg.workflow_id,
        execution_id=msg.execution_id,
        current_node=emit.dst,
        workflow_definition=msg.workflow_definition,
        workflow_version=msg.workflow_version,
        workflow_version_id=msg.workflow_version_id,
        accumulated_context=emit.context,
        lineage_stack=emit.lineage or UNSET,
        from_node=emit.from_node,
        is_worker_initiated=True,
        branch_token=token,
        ghost=True if emit.ghost else UNSET,
        started_at_ms=msg.started_at_ms,
    )
