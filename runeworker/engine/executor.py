"""One step of a workflow: (execution message, state store) -> what to publish.

The executor is pure: it never touches a broker. The caller (the embedded runner or a
worker child) publishes `running` when `on_running` is called (at once for blocking nodes,
batched otherwise), then publishes the returned statuses, next messages and completion and
acknowledges the delivery as one atomic step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runeworker.engine import registry
from runeworker.engine.messages import (
    CODE_CREATION_FAILED,
    FAILED,
    HALTED,
    STATUS_FAILED,
    STATUS_RUNNING,
    STATUS_SUCCESS,
    CompletionMessage,
    ErrorPayload,
    NodeExecutionMessage,
    NodeStatusMessage,
    encode,
    frames,
)
from runeworker.engine.registry import NodeContext, NodeSettings, NodeSpec
from runeworker.engine.reports import StatusBuilder, completion
from runeworker.engine.resolver import Resolver
from runeworker.engine.state import Failure, StateStore, Verdict, child_token, root_token
from runeworker.engine.validation import structural_problems
from runeworker.engine.workflow import (
    ERROR_BRANCH,
    ERROR_IGNORE,
    Edge,
    Node,
    Workflow,
    parse_definition,
)
from runeworker.errors import NodeError, WorkflowError

log = logging.getLogger("runeworker.executor")

OnRunning = Callable[[NodeStatusMessage, bool], None]
JSON_KEY = "$json"


@dataclass
class StepResult:
    """Everything one step publishes, in publish order (statuses, then next or completion)."""

    statuses: list[NodeStatusMessage] = field(default_factory=list)
    messages: list[NodeExecutionMessage] = field(default_factory=list)
    completion: CompletionMessage | None = None
    verdict: Verdict = Verdict.RUN
    error: str = ""  # the node or workflow error, for logs and metrics
    node_type: str = ""
    outcome: str = ""  # success | failed | skipped
    seconds: float = 0.0  # wall time of the step
    bad_input: bool = False  # the message or definition is broken: keep a dead-letter copy


@dataclass
class _Ending:
    """How the current branch ends or continues."""

    edges: list[Edge] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None


class Executor:
    """Executes one node per call against a state store."""

    def __init__(
        self,
        store: StateStore,
        *,
        settings: NodeSettings | None = None,
        max_steps: int = 10_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.settings = settings or NodeSettings()
        self.max_steps = max_steps
        self.clock = clock
        self.specs = registry.load()

    def step(self, msg: NodeExecutionMessage, on_running: OnRunning | None = None) -> StepResult:
        """Run `msg.current_node` and return what to publish."""
        started = time.monotonic_ns()
        token = msg.branch_token or root_token(msg.execution_id)
        try:
            wf = self._workflow(msg)
            node = wf.node(msg.current_node)
        except WorkflowError as exc:
            return self.fail(msg, str(exc))
        admission = self.store.admit(msg.execution_id, token, self.clock())
        if admission.verdict in (Verdict.STALE, Verdict.CANCELLED):
            result = StepResult(verdict=admission.verdict, outcome="skipped", node_type=node.type)
            if admission.verdict is Verdict.CANCELLED:
                self._finish(msg, wf, token, _Ending(), result)
            return result
        result = StepResult(verdict=admission.verdict, node_type=node.type)
        try:
            return self._execute(msg, wf, node, token, admission.steps, result, on_running)
        finally:
            result.seconds = (time.monotonic_ns() - started) / 1e9

    def _execute(
        self,
        msg: NodeExecutionMessage,
        wf: Workflow,
        node: Node,
        token: str,
        steps: int,
        result: StepResult,
        on_running: OnRunning | None,
    ) -> StepResult:
        started = time.monotonic_ns()
        if node.trigger or node.type in registry.TRIGGER_TYPES:
            ending = _Ending(wf.normal_edges(node.id), dict(msg.accumulated_context or {}))
            result.outcome = "skipped"
            return self._finish(msg, wf, token, ending, result)
        spec = self.specs.get(node.type)
        if spec is None:
            return self._unknown_type(msg, wf, node, token, result)
        ctx = dict(msg.accumulated_context or {})
        resolver = Resolver(ctx, credentials=_credentials(node), aliases=wf.aliases)
        report = StatusBuilder(msg, node, resolver)
        if steps >= self.max_steps:
            limit = NodeError(f"execution exceeded the maximum of {self.max_steps} steps")
            ending = _Ending(failure=Failure(FAILED, self._reason(node, limit), encode(ctx)))
            return self._failed(msg, wf, node, token, report, limit, started, ending, result)
        output, error = self._run(msg, wf, node, spec, ctx, resolver, report, on_running)
        if error is None:
            assert output is not None
            ending = self._success(wf, node, spec, ctx, output)
            result.statuses.append(report.build(STATUS_SUCCESS, _ms(started), output=output))
            result.outcome = "success"
            return self._finish(msg, wf, token, ending, result)
        ending = self._on_error(wf, node, spec, ctx, error)
        return self._failed(msg, wf, node, token, report, error, started, ending, result)

    # -- pieces of a step --------------------------------------------------------------

    def _workflow(self, msg: NodeExecutionMessage) -> Workflow:
        wf = parse_definition(msg.workflow_definition)
        if wf.problems is None:
            wf.problems = [str(p) for p in structural_problems(wf)]
        if wf.problems:
            raise WorkflowError("invalid workflow: " + "; ".join(wf.problems), wf.problems)
        return wf

    def _run(
        self,
        msg: NodeExecutionMessage,
        wf: Workflow,
        node: Node,
        spec: NodeSpec,
        ctx: dict[str, Any],
        resolver: Resolver,
        report: StatusBuilder,
        on_running: OnRunning | None,
    ) -> tuple[dict[str, Any] | None, NodeError | None]:
        params, errors = resolver.resolve_params(node.params, spec.raw)
        report.parameters = params
        if on_running is not None:
            on_running(report.build(STATUS_RUNNING, 0), spec.blocking)
        if errors:
            text = "; ".join(f"parameter '{k}': {v}" for k, v in errors.items())
            return None, NodeError(resolver.mask(text))
        nctx = NodeContext(
            workflow_id=msg.workflow_id,
            execution_id=msg.execution_id,
            node=node,
            params=params,
            context=ctx,
            workflow=wf,
            resolver=resolver,
            credentials=_credentials(node, with_type=True),
            from_node=msg.from_node or "",
            lineage=frames(msg),
            state=self.store,
            settings=self.settings,
        )
        try:
            output = spec.run(nctx)
        except NodeError as exc:
            return None, NodeError(resolver.mask(str(exc)), exc.code, exc.details)
        except Exception as exc:  # a node bug must fail the node, never the worker
            log.exception("node %s (%s) raised", node.id, node.type)
            return None, NodeError(resolver.mask(f"{type(exc).__name__}: {exc}"))
        if not isinstance(output, dict):
            return None, NodeError(
                f"node type {node.type} returned {type(output).__name__}, expected an object"
            )
        return output, None

    def _success(
        self, wf: Workflow, node: Node, spec: NodeSpec, ctx: dict[str, Any], output: dict[str, Any]
    ) -> _Ending:
        updated = dict(ctx)
        updated["$" + node.label] = output
        if JSON_KEY in output:
            updated[JSON_KEY] = output[JSON_KEY]
        edges = spec.router(node, output, wf) if spec.router else wf.normal_edges(node.id)
        return _Ending(edges, updated)

    def _on_error(
        self, wf: Workflow, node: Node, spec: NodeSpec, ctx: dict[str, Any], error: NodeError
    ) -> _Ending:
        policy = node.policy
        if policy.kind == ERROR_IGNORE:
            edges = spec.router(node, None, wf) if spec.router else wf.normal_edges(node.id)
            return _Ending(edges, ctx)
        if policy.kind == ERROR_BRANCH and policy.error_edge in wf.edge_by_id:
            branched = dict(ctx)
            branched["$error"] = {
                "node": node.label,
                "node_id": node.id,
                "message": str(error),
                "code": error.code,
            }
            return _Ending([wf.edge_by_id[policy.error_edge]], branched)
        return _Ending(failure=Failure(HALTED, self._reason(node, error), encode(ctx)))

    def _failed(
        self,
        msg: NodeExecutionMessage,
        wf: Workflow,
        node: Node,
        token: str,
        report: StatusBuilder,
        error: NodeError,
        started: int,
        ending: _Ending,
        result: StepResult,
    ) -> StepResult:
        payload = ErrorPayload(str(error), error.code, error.details)
        result.statuses.append(report.build(STATUS_FAILED, _ms(started), error=payload))
        result.error = str(error)
        result.outcome = "failed"
        log.warning(
            "node %s (%s) of execution %s failed: %s", node.id, node.type, msg.execution_id, error
        )
        return self._finish(msg, wf, token, ending, result)

    def _unknown_type(
        self, msg: NodeExecutionMessage, wf: Workflow, node: Node, token: str, result: StepResult
    ) -> StepResult:
        error = NodeError(
            f"failed to create node of type {node.type}",
            CODE_CREATION_FAILED,
            {"error": f"node type {node.type} not registered"},
        )
        report = StatusBuilder(msg, node, None)
        report.parameters = node.params
        ctx = msg.accumulated_context or {}
        ending = _Ending(failure=Failure(FAILED, self._reason(node, error), encode(ctx)))
        result.bad_input = True
        return self._failed(
            msg, wf, node, token, report, error, time.monotonic_ns(), ending, result
        )

    def fail(self, msg: NodeExecutionMessage, reason: str) -> StepResult:
        """The message or its definition cannot run (bad input, poison): one failed status
        for current_node and, through the state store, the execution's `failed` completion."""
        token = msg.branch_token or root_token(msg.execution_id)
        node = Node(id=msg.current_node or "unknown")
        report = StatusBuilder(msg, node, None)
        result = StepResult(error=reason, outcome="failed", bad_input=True)
        result.statuses.append(report.build(STATUS_FAILED, 0, error=ErrorPayload(reason)))
        self.store.admit(msg.execution_id, token, self.clock())
        failure = Failure(FAILED, reason, encode(msg.accumulated_context or {}))
        return self._finish(msg, None, token, _Ending(failure=failure), result)

    def _finish(
        self,
        msg: NodeExecutionMessage,
        wf: Workflow | None,
        token: str,
        ending: _Ending,
        result: StepResult,
    ) -> StepResult:
        """Advance the branch token and build next messages or the completion."""
        children = [child_token(token, i, e.dst) for i, e in enumerate(ending.edges)]
        leaf = None
        if ending.failure is None and not children and result.verdict is not Verdict.CANCELLED:
            leaf = encode(ending.context)
        now = self.clock()
        tr = self.store.advance(msg.execution_id, token, children, leaf, ending.failure, now)
        if ending.failure is None:
            node_id = msg.current_node
            for child, edge in zip(children, ending.edges, strict=True):
                result.messages.append(_next(msg, edge.dst, node_id, ending.context, child))
        if tr.closed:
            result.completion = completion(
                msg, tr.status, tr.contexts, tr.started_at_ns, now, tr.failure_reason, wf
            )
        return result

    @staticmethod
    def _reason(node: Node, error: Exception) -> str:
        return f"node {node.label} ({node.id}) failed: {error}"


def _next(
    msg: NodeExecutionMessage, dst: str, from_node: str, ctx: dict[str, Any], token: str
) -> NodeExecutionMessage:
    return NodeExecutionMessage(
        workflow_id=msg.workflow_id,
        execution_id=msg.execution_id,
        current_node=dst,
        workflow_definition=msg.workflow_definition,
        workflow_version=msg.workflow_version,
        workflow_version_id=msg.workflow_version_id,
        accumulated_context=ctx,
        lineage_stack=msg.lineage_stack,
        from_node=from_node,
        is_worker_initiated=True,
        branch_token=token,
    )


def _credentials(node: Node, with_type: bool = False) -> dict[str, Any]:
    if node.credentials is None:
        return {}
    values = dict(node.credentials.values)
    if with_type:
        values["type"] = node.credentials.type
    return values


def _ms(started_mono_ns: int) -> int:
    return (time.monotonic_ns() - started_mono_ns) // 1_000_000
