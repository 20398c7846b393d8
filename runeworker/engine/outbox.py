"""What one step publishes: its `Outbox` (node statuses, next messages, the completion, a
dead-letter reason), the `Report` that goes with it, and the builders of those messages.

The caller publishes an outbox in this order (statuses, next messages or completion, with the
dead-letter copy when asked) and acknowledges the delivery in the same atomic step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from runeworker.engine import depth
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
    outcome: str = ""  # success | failed | handled | skipped ("" when no step was taken)
    seconds: float = 0.0  # wall time of the step
    error: str = ""  # the node or workflow error
    verdict: Verdict = Verdict.RUN  # on the step's branch token
    ledger: str = ""  # the mode that kept the token (`runeworker.engine.ledger`)
    # what of the execution's state the step found lost (`runeworker.errors.StateLost.what`)
    lost: str = ""


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
        self.resolver = resolver
        self.parameters: dict[str, Any] = {}
        self.lineage: list[StackFrame] = frames(msg)
        # what every status of the node shares, looked up once
        self.ids = (msg.workflow_id, msg.execution_id, node.id, node.label)
        self.masked = resolver is not None and resolver.has_secrets()  # else mask is a no-op

    def build(
        self,
        status: str,
        duration_ms: int,
        *,
        output: dict[str, Any] | None = None,
        error: ErrorPayload | None = None,
    ) -> NodeStatusMessage:
        r, masked, params = self.resolver, self.masked, self.parameters
        if masked and r is not None:
            params = r.mask(params)
            output = r.mask(output) if output else output
        workflow_id, execution_id, node_id, node_name = self.ids
        st = NodeStatusMessage(
            workflow_id,
            execution_id,
            node_id,
            node_name,
            status,
            rfc3339(),
            duration_ms,
            params if params else UNSET,
            output if output else UNSET,
            error if error is not None else UNSET,
        )
        if self.lineage:
            top = self.lineage[-1]
            st.branch_id = top.branch_id
            st.split_node_id = top.split_node_id
            st.item_index = top.item_index
            st.total_items = top.total_items
            st.lineage_stack = self.lineage
        if r is not None and r.used_keys:
            keys = sorted(r.used_keys)
            st.all_used_input_keys = keys
            used = r.used_inputs(keys)
            st.used_inputs = opt(r.mask(used) if masked else used)
        return st


_context_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])

# The largest `total_duration_ms` a completion reports: the archivist stores it in the API's
# Postgres column `executions.total_duration_ms`, an INTEGER (services/api/migrations/versions/
# 2026_03_10_1447_ba3dde446818_initial_schema.py), whose UPDATE fails for anything larger, and
# the archivist then requeues the completion for ever (services/archivist/src/consumer.py). An
# execution that waited about 25 days or more reaches it (docs/WIRE.md section 5).
MAX_TOTAL_DURATION_MS = 2**31 - 1
# contexts below this are checked for what RTES cannot read in one pass over the whole
_WHOLE_CHECK_BYTES = 8192


def _whole(raw: bytes) -> dict[str, Any] | None:
    """The context `raw` decoded at once when it is an object none of whose values nests
    deeper than `depth.MAX_DEPTH` (the object itself at most one level more) or may hold an
    integer no double holds, else None: then each value is decoded on its own, and one that
    cannot be read replaced."""
    if depth.json_exceeds(raw) or depth.holds_int_run(raw):
        return None
    try:
        whole = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None  # the value-by-value path skips what does not decode
    return whole if isinstance(whole, dict) else None


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
    secrets, embedded = (workflow.secret_values, workflow.secret_blocks) if workflow else ({}, [])
    if not secrets and not embedded:
        return _completion(msg, status, _kept(contexts), started_at_ns, now_ns, failure_reason)
    final: dict[str, Any] = {}
    for raw in contexts:
        whole = _whole(raw)
        if whole is not None:  # no value in it nests too deeply: decoded in one go
            final.update(whole)
            continue
        try:
            part = _context_decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            continue
        # a value too deep to walk or that cannot be read (input no node read) is replaced:
        # runeworker.engine.depth
        final.update((k, depth.published(v, "value")) for k, v in part.items())
    final = Resolver({}, credentials=secrets, secrets=embedded).mask(final)
    return _completion(msg, status, final, started_at_ns, now_ns, failure_reason)


def _kept(contexts: list[bytes]) -> LazyContext:
    """The final context of a workflow without credentials: each value kept as the bytes it
    finished with (the encoder writes them verbatim, readers in the process see decoded
    values), except one nesting too deeply or holding a number no double holds, which is
    replaced (`depth.unpublishable`: RTES's serde_json would refuse the completion). A 1 MB
    `$input` then costs a scan, not a decode and an encode (deploy/PERFORMANCE.md)."""
    final = LazyContext()
    for raw in contexts:
        try:
            part = _context_decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            continue
        # a small context in one check of the whole; a larger one value by value (the verdict
        # on a large value read in part by the steps is kept: `depth.unpublishable`)
        if len(raw) < _WHOLE_CHECK_BYTES and depth.context_publishable(raw):
            final.update(part)
            continue
        for key, value in part.items():
            stand_in = depth.unpublishable(value)
            final[key] = value if stand_in is None else stand_in
    return final


def _completion(
    msg: NodeExecutionMessage,
    status: str,
    final: dict[str, Any],
    started_at_ns: int,
    now_ns: int,
    failure_reason: str,
) -> CompletionMessage:
    return CompletionMessage(
        workflow_id=msg.workflow_id,
        execution_id=msg.execution_id,
        status=status,
        final_context=final,
        completed_at=rfc3339(now_ns),
        total_duration_ms=_total_ms(started_at_ns, now_ns),
        failure_reason=opt(storable_reason(failure_reason)),
    )


def storable_reason(reason: str) -> str:
    """`failure_reason` as the archivist can store it: NUL characters (an error message may
    quote data holding them) replaced by U+FFFD. The archivist writes the reason into the API's
    Postgres column `executions.failure_reason` (`update_execution` in
    services/archivist/src/repository.py), and Postgres text holds no NUL: the `UPDATE` fails,
    and the archivist requeues the completion for ever (`handle_message` in
    services/archivist/src/consumer.py). The Go worker never fills the reason."""
    return reason.replace("\x00", "\ufffd")


def _total_ms(started_at_ns: int, now_ns: int) -> int:
    """Milliseconds since the execution's first step (0 when unknown or in the future), at
    most `MAX_TOTAL_DURATION_MS`."""
    if not started_at_ns:
        return 0
    return min(max(0, (now_ns - started_at_ns) // 1_000_000), MAX_TOTAL_DURATION_MS)


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
        outer_keys=_outer_keys(msg, emit),
    )


def _outer_keys(msg: NodeExecutionMessage, emit: Emit) -> list[dict[str, Any]] | UnsetType:
    """One entry per frame of the emit's lineage: a split sets its own; every other step
    carries the message's on, without the frames an aggregator popped."""
    if emit.outer_keys is not None:
        return emit.outer_keys
    kept = msg.outer_keys
    if kept is UNSET or not emit.lineage:
        return UNSET
    return kept[: len(emit.lineage)]
