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

from runeworker.engine import bookkeeping, depth, flow, linear, merge_timer, registry
from runeworker.engine.context import lazy
from runeworker.engine.flow import Ending, Outcome, Step
from runeworker.engine.messages import (
    CODE_CREATION_FAILED,
    FAILED,
    STATUS_FAILED,
    STATUS_RUNNING,
    CompletionMessage,
    ErrorPayload,
    NodeExecutionMessage,
    NodeStatusMessage,
    encode,
    frames,
)
from runeworker.engine.paths import BARRIER_TYPES, MERGE, WAIT
from runeworker.engine.registry import NO_METER, Meter, NodeContext, NodeSettings, NodeSpec
from runeworker.engine.reports import StatusBuilder, completion, next_message, outcome_status
from runeworker.engine.resolver import Resolver
from runeworker.engine.state import Admission, Failure, StateStore, Verdict, child_token, root_token
from runeworker.engine.validation import structural_problems
from runeworker.engine.workflow import Node, Workflow, embedded_credentials, parse_definition
from runeworker.errors import NodeError, WorkflowError

log = logging.getLogger("runeworker.executor")

OnRunning = bookkeeping.OnRunning


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
    single_branch: bool = False  # taken without token bookkeeping (runeworker.engine.linear)
    settled: bool = False  # node ran first, admitted and advanced in one call (`_settles`)


class Executor:
    """Executes one node per call against a state store."""

    def __init__(
        self,
        store: StateStore,
        *,
        settings: NodeSettings | None = None,
        max_steps: int = 10_000,
        clock: Callable[[], int] = time.time_ns,
        meter: Meter = NO_METER,
    ) -> None:
        self.store = store
        self.settings = settings or NodeSettings()
        self.meter = meter
        self.max_steps = max_steps
        self.clock = clock
        self.specs = registry.load()
        self._shapes = bookkeeping.Shapes(self.specs, max_steps)

    def step(
        self,
        msg: NodeExecutionMessage,
        on_running: OnRunning | None = None,
        resumed: bool = False,
        *,
        replayed: bool = False,
    ) -> StepResult:
        """Run `msg.current_node` and return what to publish. `resumed`: the message came from
        the resume queue (a wait node's timer fired): the wait succeeds and routing goes on.
        `replayed`: a dead letter put back by hand (`runeworker dlq replay`), whose execution
        may already have its `failed` completion: the step takes the token protocol even in a
        single-branch execution, so it replays that recorded outcome instead of running on."""
        started = time.monotonic_ns()
        token = msg.branch_token or root_token(msg.execution_id)
        try:
            wf = self._workflow(msg)
            node = wf.node(msg.current_node)
        except WorkflowError as exc:
            return self.fail(msg, str(exc))
        if resumed and node.type not in (WAIT, MERGE):
            return self.fail(msg, f"resume message names node {node.id}, which is not a wait node")
        single = not (resumed or replayed) and msg.ghost is not True and self._shapes(wf)
        settle = not single and bookkeeping.settles(self.specs, msg, node, resumed)
        if single:  # no token bookkeeping: see runeworker.engine.linear
            linear.begin(self.store, msg, self.clock)
            admission = Admission(Verdict.RUN, 0)
        elif settle:
            admission = Admission(Verdict.RUN, 0)  # the verdict comes with the advance
        else:
            admission = self.store.admit(msg.execution_id, token, self.clock())
        result = StepResult(
            verdict=admission.verdict, node_type=node.type, single_branch=single, settled=settle
        )
        # a ghost only means something to a barrier; anywhere else it ends quietly
        stray = msg.ghost is True and node.type not in BARRIER_TYPES
        if admission.verdict in (Verdict.STALE, Verdict.CANCELLED) or stray:
            result.outcome = "skipped"
            if admission.verdict is not Verdict.STALE:
                self._finish(msg, wf, token, Ending(absorbed=True), result)
            return result
        try:
            if resumed and node.type == MERGE:
                return self._merge_timer(msg, wf, node, token, result)
            if resumed:
                return self._resume(msg, wf, node, token, result)
            try:
                self._execute(msg, wf, node, token, admission.steps, result, on_running)
                if result.settled:
                    bookkeeping.release_running(result.statuses, on_running)
                return result
            except bookkeeping.AtStepLimit:  # settled at max_steps: take the step the admitted way
                admission = self.store.admit(msg.execution_id, token, self.clock())
                result = StepResult(verdict=admission.verdict, node_type=node.type)
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
        ctx = lazy(msg.accumulated_context)
        step = self._flow_step(msg, wf, node, token, ctx, result)
        if node.trigger or node.type in registry.TRIGGER_TYPES:
            result.outcome = "skipped"
            ending = flow.route(step, wf.normal_edges(node.id), ctx)
            return self._finish(msg, wf, token, ending, result)
        spec = self.specs.get(node.type)
        if spec is None:
            return self._unknown_type(msg, wf, node, token, result)
        resolver = _resolver(ctx, node, wf)
        report = StatusBuilder(msg, node, resolver)
        if steps >= self.max_steps:
            limit = NodeError(f"execution exceeded the maximum of {self.max_steps} steps")
            ending = Ending(failure=Failure(FAILED, flow.reason(node, limit), encode(ctx)))
            return self._failed(msg, wf, node, token, report, limit, started, ending, result)
        if result.settled:  # `running` waits with the other statuses for the verdict
            on_running = bookkeeping.holding(result.statuses)
        output, error = self._run(msg, wf, node, spec, ctx, resolver, report, on_running)
        if error is None:
            assert output is not None
            if resolver.has_secrets():  # a response may echo a secret: not into the context
                output = resolver.mask(output)
            done = flow.on_success(step, spec, output)
            if isinstance(done, Outcome):
                result.statuses.append(outcome_status(report, done, _ms(started)))
                result.outcome = "success"
                return self._finish(msg, wf, token, done.ending, result)
            error = NodeError(resolver.mask(str(done)), done.code, done.details)
        ending = flow.on_error(step, spec, error)
        return self._failed(msg, wf, node, token, report, error, started, ending, result)

    def _resume(
        self, msg: NodeExecutionMessage, wf: Workflow, node: Node, token: str, result: StepResult
    ) -> StepResult:
        """The timer of a wait node fired: its `success` (parameters re-resolved against the
        frozen context, output the frozen `$<name>`, duration 0), then normal routing."""
        spec = self.specs.get(node.type)
        if spec is None:
            return self._unknown_type(msg, wf, node, token, result)
        ctx = lazy(msg.accumulated_context)
        resolver = _resolver(ctx, node, wf)
        report = StatusBuilder(msg, node, resolver)
        report.parameters, _ = resolver.resolve_params(node.params, spec.raw)
        resolver.used_keys.clear()  # like Go, the resume status names no used inputs
        done = flow.resumed(self._flow_step(msg, wf, node, token, ctx, result), spec)
        result.statuses.append(outcome_status(report, done, 0))
        result.outcome = "success"
        return self._finish(msg, wf, token, done.ending, result)

    def _merge_timer(
        self, msg: NodeExecutionMessage, wf: Workflow, node: Node, token: str, result: StepResult
    ) -> StepResult:
        """A merge's timeout timer fired: if its barrier still waited the merge fails (`failed`
        status, its error policy applies); else the timer's token ends quietly."""
        spec = self.specs.get(node.type)
        if spec is None:
            return self._unknown_type(msg, wf, node, token, result)
        started, ctx = time.monotonic_ns(), lazy(msg.accumulated_context)
        resolver = _resolver(ctx, node, wf)
        report = StatusBuilder(msg, node, resolver)
        settings, error = self._run(msg, wf, node, spec, ctx, resolver, report, None)
        if settings is not None:
            error = merge_timer.fire(self.store, wf, msg, token, float(settings["timeout"]))
        if error is None:
            result.outcome = "skipped"
            return self._finish(msg, wf, token, Ending(absorbed=True), result)
        ending = flow.on_error(self._flow_step(msg, wf, node, token, ctx, result), spec, error)
        return self._failed(msg, wf, node, token, report, error, started, ending, result)

    def _flow_step(
        self,
        msg: NodeExecutionMessage,
        wf: Workflow,
        node: Node,
        token: str,
        ctx: dict[str, Any],
        result: StepResult,
    ) -> Step:
        verdict, now = result.verdict, self.clock()
        return Step(msg, wf, node, token, ctx, frames(msg), verdict, self.store, now)

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
            meter=self.meter,
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
        if depth.exceeds(output):  # see runeworker.engine.depth: nothing deeper goes on
            return None, NodeError(f"the output of node type {node.type} is {depth.TOO_DEEP}")
        return output, None

    def _failed(
        self,
        msg: NodeExecutionMessage,
        wf: Workflow,
        node: Node,
        token: str,
        report: StatusBuilder,
        error: NodeError,
        started: int,
        ending: Ending,
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
        report = StatusBuilder(msg, node, _resolver({}, node, wf))  # masks embedded secrets
        report.parameters = node.params
        ctx = msg.accumulated_context or {}
        ending = Ending(failure=Failure(FAILED, flow.reason(node, error), encode(ctx)))
        result.bad_input = True
        return self._failed(
            msg, wf, node, token, report, error, time.monotonic_ns(), ending, result
        )

    def fail(self, msg: NodeExecutionMessage, reason: str) -> StepResult:
        """The message or its definition cannot run (bad input, poison): one failed status
        for current_node and, through the state store, the execution's `failed` completion."""
        token = msg.branch_token or root_token(msg.execution_id)
        node = _named_node(msg)
        report = StatusBuilder(msg, node, None)
        result = StepResult(error=reason, outcome="failed", bad_input=True)
        result.statuses.append(report.build(STATUS_FAILED, 0, error=ErrorPayload(reason)))
        self.store.admit(msg.execution_id, token, self.clock())
        failure = Failure(FAILED, reason, encode(msg.accumulated_context or {}))
        return self._finish(msg, None, token, Ending(failure=failure), result)

    def _finish(
        self,
        msg: NodeExecutionMessage,
        wf: Workflow | None,
        token: str,
        ending: Ending,
        result: StepResult,
    ) -> StepResult:
        """Advance the branch token and build next messages or the completion."""
        emits = ending.emits if ending.failure is None else []
        children = [child_token(token, i, e.dst) for i, e in enumerate(emits)]
        if ending.park and ending.failure is None:
            children.append(ending.park)
        # a branch whose data goes on nowhere (no next message, only ghosts) is a leaf
        goes_on = ending.park or ending.absorbed or any(not e.ghost for e in emits)
        leaf = None
        if ending.failure is None and not goes_on and result.verdict is not Verdict.CANCELLED:
            leaf = encode(ending.context)
        now = self.clock()
        if result.single_branch:
            tr = linear.close(self.store, msg, children, leaf, ending.failure)
        elif result.settled:
            args = (self.store, msg, token, children, leaf, ending.failure, now, self.max_steps)
            tr, result.verdict = bookkeeping.settle(*args)
            if result.verdict in (Verdict.STALE, Verdict.CANCELLED):
                # the node ran for a branch that was not to go on: nothing of it is published
                result.statuses.clear()
                result.outcome, result.error, emits = "skipped", "", []
        else:
            tr = self.store.advance(msg.execution_id, token, children, leaf, ending.failure, now)
        for child, emit in zip(children, emits, strict=False):
            result.messages.append(next_message(msg, emit, child))
        if tr.closed:
            result.completion = completion(
                msg, tr.status, tr.contexts, tr.started_at_ns, now, tr.failure_reason, wf
            )
        return result


def _named_node(msg: NodeExecutionMessage) -> Node:
    """current_node as far as it can be known: with its name when the definition parses
    (an invalid graph still names its nodes), else by id alone."""
    node_id = msg.current_node or "unknown"
    try:
        found = parse_definition(msg.workflow_definition).by_id.get(node_id)
    except WorkflowError:
        found = None
    return found if found is not None else Node(id=node_id)


def _resolver(ctx: dict[str, Any], node: Node, wf: Workflow) -> Resolver:
    """The node's resolver; credentials embedded in its parameters are masked too."""
    secrets = embedded_credentials(node.parameters)
    return Resolver(ctx, credentials=_credentials(node), aliases=wf.aliases, secrets=secrets)


def _credentials(node: Node, with_type: bool = False) -> dict[str, Any]:
    if node.credentials is None:
        return {}
    values = dict(node.credentials.values)
    if with_type:
        values["type"] = node.credentials.type
    return values


def _ms(started_mono_ns: int) -> int:
    return (time.monotonic_ns() - started_mono_ns) // 1_000_000
