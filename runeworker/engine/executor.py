"""One step of a workflow: (execution message, state store) -> an outbox of what to publish.

The executor is pure: it never touches a broker. A step is planned first (`Executor.plan`: the
workflow, node, spec, whether it may block, the ledger mode), then taken (`Executor.run`): a
`Turn` admits the branch token through the plan's ledger, runs the node, lets
`runeworker.engine.flow` decide how the branch continues, closes the token and fills the
`Outbox`. The caller (the embedded runner or a worker child) publishes `running` when
`on_running` is called (at once for blocking nodes, batched otherwise), then publishes the
outbox and acknowledges the delivery as one atomic step.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from runeworker.engine import depth, flow, merge_timer, registry
from runeworker.engine.context import LazyContext, lazy
from runeworker.engine.flow import Ending, Outcome
from runeworker.engine.ledger import Admitted, Arriving, OnRunning
from runeworker.engine.messages import (
    CODE_CREATION_FAILED,
    FAILED,
    STATUS_FAILED,
    STATUS_RUNNING,
    ErrorPayload,
    NodeExecutionMessage,
    encode,
    frames,
)
from runeworker.engine.outbox import (
    Outbox,
    Report,
    StatusBuilder,
    completion,
    next_message,
    outcome_status,
)
from runeworker.engine.paths import BARRIER_TYPES, MERGE, WAIT
from runeworker.engine.plan import Definitions, Plan
from runeworker.engine.registry import NO_METER, Meter, NodeContext, NodeSettings, NodeSpec
from runeworker.engine.resolver import Resolver
from runeworker.engine.state import Failure, StateStore, Verdict, child_tokens
from runeworker.engine.workflow import Node, Workflow, embedded_credentials
from runeworker.errors import NodeError, StateLost, UnreadableError

log = logging.getLogger("runeworker.executor")

# A wait's resume that finds its token not parked yet comes back this much later, for this
# long after the wait was due (see `Turn._resume_early`).
EARLY_RESUME_RETRY_MS = 1_000
EARLY_RESUME_GRACE_MS = 60_000


def _log_raised(node: Node, exc: Exception, resolver: Resolver) -> None:
    """Log a node bug with its traceback. The exceptions' texts may quote the node's
    credentials (a client library echoing its request): with credentials to hide, the traceback
    is rendered and masked, and logged as the message instead of as `exc_info`."""
    if not resolver.has_secrets():
        log.exception("node %s (%s) raised", node.id, node.type)
        return
    text = resolver.mask("".join(traceback.format_exception(exc)).rstrip())
    log.error("node %s (%s) raised\n%s", node.id, node.type, text)


class Executor:
    """Plans and takes one step per call against a state store."""

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
        self.meter = meter  # where nodes report measurements of their own
        self.max_steps = max_steps
        self.clock = clock
        self.specs = registry.load()
        self.definitions = Definitions(self.specs, max_steps)

    def plan(
        self, msg: NodeExecutionMessage, *, resumed: bool = False, replayed: bool = False
    ) -> Plan:
        """Plan the step of `msg` (parses its definition the first time it is seen). `resumed`:
        the message came from the resume queue (a wait node's timer fired): the wait succeeds
        and routing goes on. `replayed`: a dead letter put back by hand (`runeworker dlq
        replay`), whose execution may already have its `failed` completion: the step takes the
        token protocol even in a single-branch execution, so it replays that recorded outcome
        instead of running on."""
        definition = self.definitions.get(msg.workflow_definition)
        return Plan.make(msg, definition, self.specs, resumed=resumed, replayed=replayed)

    def run(self, plan: Plan, on_running: OnRunning | None = None) -> Outbox:
        """Take the planned step and return what to publish. `on_running` receives the node's
        `running` status and whether the node may block (then it must be committed before the
        call returns)."""
        return Turn(self, plan, on_running).take()

    def step(
        self,
        msg: NodeExecutionMessage,
        on_running: OnRunning | None = None,
        resumed: bool = False,
        *,
        replayed: bool = False,
    ) -> Outbox:
        """Plan and take the step of `msg` (see `plan` and `run`)."""
        return Turn(self, self.plan(msg, resumed=resumed, replayed=replayed), on_running).take()

    def fail(self, msg: NodeExecutionMessage, reason: str) -> Outbox:
        """The message cannot run (bad input, poison): one failed status for current_node and,
        through the state store, the execution's `failed` completion; a dead-letter copy."""
        return self.run(self.plan(msg).failing(reason))


class Turn:
    """One step being taken: the plan, the ledger that keeps its token, the node's context,
    resolver and status builder, and the outbox it fills."""

    __slots__ = (
        "clock", "ctx", "executor", "flow", "ledger", "msg", "node", "on_running", "outbox",
        "plan", "report", "resolver", "started", "status", "store", "token", "verdict", "wf",
    )  # fmt: skip

    def __init__(self, executor: Executor, plan: Plan, on_running: OnRunning | None) -> None:
        self.executor = executor
        self.plan = plan
        self.msg, self.node, self.token = plan.msg, plan.node, plan.token
        self.store, self.clock = executor.store, executor.clock
        self.ledger = plan.ledger(
            self.store, plan.msg, plan.token, self.clock, executor.max_steps, anew=plan.replayed
        )
        self.report = Report("" if plan.error else plan.node.type, ledger=self.ledger.mode)
        self.outbox = Outbox(report=self.report)
        self.on_running = self.ledger.running(on_running, self.outbox.statuses)
        self.verdict = Verdict.RUN

    def take(self) -> Outbox:
        """Admit, run the node (or fail the message that cannot run), close; the outbox. A
        step that finds its execution's state lost fails the execution instead (`_lost`)."""
        try:
            return self._take()
        except StateLost as lost:
            return self._lost(lost)

    def _take(self) -> Outbox:
        if self.plan.error:
            return self._reject(self.plan.error)
        started = time.monotonic_ns()
        admission = self.ledger.admit()
        self.verdict = self.report.verdict = admission.verdict
        # a ghost only means something to a barrier; anywhere else it ends quietly
        stray = self.msg.ghost is True and self.node.type not in BARRIER_TYPES
        if self.verdict is Verdict.STALE and self.plan.resumed and self.node.type == WAIT:
            self.report.outcome = "skipped"
            self._resume_early()
            return self.outbox
        if self.verdict in (Verdict.STALE, Verdict.CANCELLED) or stray:
            self.report.outcome = "skipped"
            if self.verdict is not Verdict.STALE:
                self._close(Ending(absorbed=True))
            return self.outbox
        self._prepare()
        if self.plan.resumed and self.node.type == MERGE:
            self._merge_timer()
        elif self.plan.resumed:
            self._resume()
        else:
            self._execute(admission.steps)
        self.report.seconds = (time.monotonic_ns() - started) / 1e9
        return self.outbox

    def _prepare(self) -> None:
        """What every path of the node needs: its context, resolver, status builder and the
        flow's view of the step."""
        msg, node = self.msg, self.node
        wf = self.plan.workflow
        assert wf is not None  # a plan without a workflow carries an error
        self.wf = wf
        self.started = time.monotonic_ns()
        # the decoded message's own context, not a copy: nothing of a step writes to it (new
        # contexts are copies: flow.updated_context), and the message is not encoded again
        ctx = msg.accumulated_context
        self.ctx = ctx if isinstance(ctx, LazyContext) else lazy(ctx)
        self.resolver = _resolver(self.ctx, node, wf)
        self.status = StatusBuilder(msg, node, self.resolver)
        arriving = self.ledger.arrive if isinstance(self.ledger, Arriving) else None
        self.flow = flow.Step(
            msg, wf, node, self.token, self.ctx, frames(msg), self.verdict, self.store,
            self.clock(), arriving, self.executor.max_steps,
        )  # fmt: skip

    # -- the three ways a node's step goes ----------------------------------------------

    def _execute(self, steps: int) -> None:
        node, spec = self.node, self.plan.spec
        if node.trigger or node.type in registry.TRIGGER_TYPES:
            self.report.outcome = "skipped"
            return self._close(flow.route(self.flow, self.wf.normal_edges(node.id), self.ctx))
        if spec is None:
            return self._unknown_type()
        if steps >= self.executor.max_steps:
            return self._at_step_limit()
        output, error = self._run(spec, self.on_running)
        if error is None:
            assert output is not None
            if self.status.masked:  # a response may echo a secret: not into the context
                output = self.resolver.mask(output)
            done = flow.on_success(self.flow, spec, output)
            if self.flow.verdict is not self.verdict:  # a barrier arrival admitted the token
                self.verdict = self.report.verdict = self.flow.verdict
            if isinstance(done, Outcome) and done.ending.unadmitted:
                return self._close(done.ending)  # the ledger tells why (stale, cancelled, limit)
            if isinstance(done, Outcome) and done.ending.cancelled:
                return self._cancelled()
            if isinstance(done, Outcome):
                self.outbox.statuses.append(outcome_status(self.status, done, self._ms()))
                self.report.outcome = "success"
                return self._close(done.ending)
            error = NodeError(self.resolver.mask(str(done)), done.code, done.details)
        self._failed(error, flow.on_error(self.flow, spec, error))

    def _resume(self) -> None:
        """The timer of a wait node fired: its `success` (parameters re-resolved against the
        frozen context, output the frozen `$<name>`, duration 0), then normal routing."""
        spec = self.plan.spec
        if spec is None:
            return self._unknown_type()
        self.status.parameters, _ = self.resolver.resolve_params(self.node.params, spec.raw)
        self.resolver.used_keys.clear()  # like Go, the resume status names no used inputs
        try:
            done = flow.resumed(self.flow, spec)
        except UnreadableError as exc:  # the frozen output nests too deeply, say
            return self._failed(exc, flow.on_error(self.flow, spec, exc))
        self.outbox.statuses.append(outcome_status(self.status, done, 0))
        self.report.outcome = "success"
        self._close(done.ending)

    def _resume_early(self) -> None:
        """A wait's timer fired before the wait's own step parked its token: the step schedules
        the timer, then advances, and a timer due at once can be claimed and resumed by another
        child in between. The resume is scheduled again a second later instead of dropped
        (the execution would never complete), for up to `EARLY_RESUME_GRACE_MS` after the
        wait was due; still stale then, it was never the wait's to run. A wait step that died
        before its advance is redelivered and schedules the same timer again."""
        self._prepare()
        try:
            frozen = self.ctx.get("$" + self.node.label)
        except UnreadableError:  # no timer to read in it: as when it is no object
            return
        if not isinstance(frozen, dict):
            return
        timer_id, due = frozen.get("timer_id"), frozen.get("resume_at")
        if not isinstance(timer_id, str) or isinstance(due, bool) or not isinstance(due, int):
            return
        now = self.clock() // 1_000_000
        if now - due > EARLY_RESUME_GRACE_MS:
            return
        ex = self.msg.execution_id
        again = now + EARLY_RESUME_RETRY_MS
        self.store.schedule(timer_id, again, encode(self.msg), owner=ex)
        log.info("wait %s of execution %s resumed before it parked; again at %d", self.node.id,
                 ex, again)  # fmt: skip

    def _merge_timer(self) -> None:
        """A merge's timeout timer fired: if its barrier still waited the merge fails (`failed`
        status, its error policy applies); else the timer's token ends quietly."""
        spec = self.plan.spec
        if spec is None:
            return self._unknown_type()
        settings, error = self._run(spec, None)
        if settings is not None:
            timeout = float(settings["timeout"])
            error = merge_timer.fire(self.store, self.wf, self.msg, self.token, timeout)
        if error is None:
            self.report.outcome = "skipped"
            return self._close(Ending(absorbed=True))
        self._failed(error, flow.on_error(self.flow, spec, error))

    # -- pieces of a step ---------------------------------------------------------------

    def _run(
        self, spec: NodeSpec, on_running: OnRunning | None
    ) -> tuple[dict[str, Any] | None, NodeError | None]:
        """Resolve the parameters, report `running`, run the node: its output or its error."""
        node, resolver = self.node, self.resolver
        params, errors = resolver.resolve_params(node.params, spec.raw)
        self.status.parameters = params
        if on_running is not None:
            on_running(self.status.build(STATUS_RUNNING, 0), spec.blocking)
        if errors:
            text = "; ".join(f"parameter '{k}': {v}" for k, v in errors.items())
            return None, NodeError(resolver.mask(text))
        nctx = NodeContext(
            workflow_id=self.msg.workflow_id,
            execution_id=self.msg.execution_id,
            node=node,
            params=params,
            context=self.ctx,
            workflow=self.wf,
            resolver=resolver,
            credentials=_credentials(node, with_type=True) if node.credentials else {},
            from_node=self.msg.from_node or "",
            lineage=self.status.lineage,
            state=self.store,
            settings=self.executor.settings,
            meter=self.executor.meter,
        )
        try:
            output = spec.run(nctx)
        except NodeError as exc:
            return None, NodeError(resolver.mask(str(exc)), exc.code, exc.details)
        except Exception as exc:  # a node bug must fail the node, never the worker
            _log_raised(node, exc, resolver)
            return None, NodeError(resolver.mask(f"{type(exc).__name__}: {exc}"))
        if not isinstance(output, dict):
            return None, NodeError(
                f"node type {node.type} returned {type(output).__name__}, expected an object"
            )
        # see runeworker.engine.depth: nothing deeper, and no number RTES cannot read, goes on
        problem = depth.problem(output)
        if problem:
            return None, NodeError(f"the output of node type {node.type} {problem}")
        return output, None

    def _at_step_limit(self) -> None:
        limit = NodeError(f"execution exceeded the maximum of {self.executor.max_steps} steps")
        failure = Failure(FAILED, flow.reason(self.node, limit), encode(self.ctx))
        self._failed(limit, Ending(failure=failure))

    def _unknown_type(self) -> None:
        """No node of this type can be created: `running` then `failed` with
        NODE_CREATION_FAILED, both with the resolved parameters and the inputs they used, and
        the execution fails (`handleNodeCreationFailure` in
        services/rune-worker/pkg/executor/node_handlers.go)."""
        node = self.node
        # as upstream: resolved where resolution works, the raw value where it does not
        self.status.parameters, _ = self.resolver.resolve_params(node.params)
        if self.on_running is not None:
            self.on_running(self.status.build(STATUS_RUNNING, 0), False)
        error = NodeError(
            f"failed to create node of type {node.type}",
            CODE_CREATION_FAILED,
            {"error": f"node type {node.type} not registered"},
        )
        self.outbox.dead_letter = str(error)
        failure = Failure(FAILED, flow.reason(node, error), encode(self.ctx))
        self._failed(error, Ending(failure=failure))

    def _failed(self, error: NodeError, ending: Ending) -> None:
        payload = ErrorPayload(str(error), error.code, error.details)
        self.outbox.statuses.append(self.status.build(STATUS_FAILED, self._ms(), error=payload))
        self.report.error = str(error)
        # an error an `ignore` policy or an error edge took care of is counted apart: alerts on
        # failing nodes should not fire on failures the workflow handles by design
        self.report.outcome = "failed" if ending.failure is not None else "handled"
        node, ex = self.node, self.msg.execution_id
        log.warning("node %s (%s) of execution %s failed: %s", node.id, node.type, ex, error)
        self._close(ending)

    def _cancelled(self) -> None:
        """The execution halted while the node ran (`flow.Ending.cancelled`): the step ends
        as if its token had been admitted after the halt. Its held `running` status goes with
        the rest (`Ledger.running`); the token is retired, which may close the execution."""
        self.verdict = self.report.verdict = Verdict.CANCELLED
        self.report.outcome = "skipped"
        self.outbox.statuses.clear()
        node, ex = self.node, self.msg.execution_id
        log.info("node %s (%s) of execution %s: the execution halted while it ran; dropped",
                 node.id, node.type, ex)  # fmt: skip
        self._close(Ending(absorbed=True))

    def _reject(self, reason: str) -> Outbox:
        """The message cannot run: a failed status and the execution's `failed` completion.
        A refused workflow (its graph breaks a rule) is reported like a node failure:
        `running`, then `failed` on the node the message names."""
        status = StatusBuilder(self.msg, self.node, None)
        if self.plan.refused and self.on_running is not None:
            self.on_running(status.build(STATUS_RUNNING, 0), False)
        self.outbox.statuses.append(status.build(STATUS_FAILED, 0, error=ErrorPayload(reason)))
        self.report.error, self.report.outcome = reason, "failed"
        self.outbox.dead_letter = reason
        try:
            self.ledger.admit()  # opens the execution when this is its first message
        except StateLost as lost:  # told; the failure below is recorded all the same
            self._tell_lost(lost)
        context = encode(self.msg.accumulated_context or {})
        self._close(Ending(failure=Failure(FAILED, reason, context)))
        return self.outbox

    def _lost(self, lost: StateLost) -> Outbox:
        """The state store lost what it held for this execution (`StateLost`: evicted,
        expired, flushed): running on against a fresh state would strand the execution or
        complete it wrongly. Whatever the step did is dropped; the node reports `failed`, the
        message is dead-lettered, and the execution fails: the failure is recorded through
        the token the store kept live for it, so it closes the execution once (a step that
        recorded another failure first leaves this one without a completion)."""
        msg, node, outbox = self.msg, self.node, self.outbox
        reason = self._tell_lost(lost)
        outbox.statuses.clear()
        outbox.messages.clear()
        outbox.completion = None
        status = StatusBuilder(msg, node, None)
        outbox.statuses.append(status.build(STATUS_FAILED, 0, error=ErrorPayload(reason)))
        outbox.dead_letter = reason
        self.verdict = self.report.verdict = Verdict.RUN
        self.report.outcome, self.report.error = "failed", reason
        failure = Failure(FAILED, reason, encode(msg.accumulated_context or {}))
        now = self.clock()
        tr = self.store.advance(msg.execution_id, self.token, [], None, failure, now)
        for timer_id in tr.timers:  # nothing of the execution waits on
            self.store.cancel_timer(timer_id)
        if tr.closed:
            outbox.completion = completion(
                msg, tr.status, tr.contexts, tr.started_at_ns, now, tr.failure_reason,
                self.plan.workflow,
            )  # fmt: skip
        return outbox

    def _tell_lost(self, lost: StateLost) -> str:
        """Log the loss (an ERROR naming the execution, its workflow and the node), count it
        (`Report.lost`); the reason the execution fails with."""
        msg, node = self.msg, self.node
        self.report.lost = lost.what
        log.error(
            "state lost (evicted or expired?): execution %s of workflow %s, node %s (%s): %s; "
            "the execution fails (deploy/RUNBOOK.md, RuneworkerStateLost)",
            msg.execution_id, msg.workflow_id, node.id, node.type or "unknown", lost,
        )  # fmt: skip
        return f"state lost (evicted or expired?) at node {node.label} ({node.id}): {lost}"

    def _close(self, ending: Ending) -> None:
        """Close the branch token through the ledger; build next messages or the completion."""
        failure = ending.failure
        emits = ending.emits if failure is None else []
        children = child_tokens(self.token, [e.dst for e in emits])
        if ending.park and failure is None:
            children.append(ending.park)
        # a branch whose data goes on nowhere (no next message, only ghosts) is a leaf
        goes_on = ending.park or ending.absorbed or any(not e.ghost for e in emits)
        leaf = None
        if failure is None and not goes_on and self.verdict is not Verdict.CANCELLED:
            leaf = encode(ending.context)
        now = self.clock()
        verdict, tr = self.ledger.close(children, leaf, failure, now)
        if verdict is not None:  # known only now (settled)
            self.verdict = self.report.verdict = verdict
            if verdict in (Verdict.STALE, Verdict.CANCELLED):
                # the node ran for a branch that was not to go on: nothing of it is published
                self.outbox.statuses.clear()
                self.report.outcome, self.report.error, emits = "skipped", "", []
        if tr is None:
            return self._retake_at_limit()
        self.outbox.messages += [
            next_message(self.msg, e, child) for child, e in zip(children, emits, strict=False)
        ]
        for timer_id in tr.timers:  # a failure closed the execution: nothing of it waits on
            self.store.cancel_timer(timer_id)
        if tr.closed:
            self.outbox.completion = completion(
                self.msg, tr.status, tr.contexts, tr.started_at_ns, now, tr.failure_reason,
                self.plan.workflow,
            )  # fmt: skip

    def _retake_at_limit(self) -> None:
        """A settled step found its execution at `max_steps` and nothing was recorded: what
        the node produced is dropped, and the step fails at the limit as if the limit had been
        known before the node ran (no `running` status), closed the admitted way (`advance`;
        the verdict is the one `settle` told, no second `admit`)."""
        self.outbox.statuses.clear()
        self.ledger = Admitted(
            self.store, self.msg, self.token, self.clock, self.executor.max_steps
        )
        self.report.ledger = self.ledger.mode
        self._prepare()
        self._at_step_limit()

    def _ms(self) -> int:
        return (time.monotonic_ns() - self.started) // 1_000_000


def _resolver(ctx: dict[str, Any], node: Node, wf: Workflow) -> Resolver:
    """The node's resolver; credentials embedded in its parameters are masked too."""
    if wf.by_id.get(node.id) is node:  # found once per definition (Workflow.index)
        secrets: Sequence[dict[str, Any]] = wf.embedded.get(node.id, ())
    else:
        secrets = embedded_credentials(node.parameters)
    return Resolver(ctx, credentials=_credentials(node), aliases=wf.aliases, secrets=secrets)


def _credentials(node: Node, with_type: bool = False) -> dict[str, Any]:
    if node.credentials is None:
        return {}
    values = dict(node.credentials.values)
    if with_type:
        values["type"] = node.credentials.type
    return values
