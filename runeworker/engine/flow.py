"""How a step continues: routing, error policies, and the flow-control nodes (docs/WIRE.md
sections 3.3, 7, 8 and 10) on top of the branch-token protocol of `runeworker.engine.state`.

A step ends with an `Ending`: the messages to emit (each becomes one child token), or a leaf
context, or a failure. The flow-control nodes bend that shape:

* split: one message per (item, next node), item-major, each with `$item` and a lineage frame;
  an empty list goes straight to the split's aggregator with a `total_items: 0` frame.
* aggregator / merge: the arrival is recorded in a barrier; until it opens the token is absorbed
  (no leaf): a waiting merge arrival parks its timer's token (`runeworker.engine.merge_timer`),
  a waiting aggregator arrival the barrier's hold token when nothing else of its execution is
  live (a Go worker's fan-out), so the execution stays open while the barrier waits. The
  arrival that opens it retires that token and continues; the aggregator pops the frame.
* wait: the token is replaced by one child token that no message carries: the frozen message
  holding it sits in the timer store until the scheduler publishes it to the resume queue.
* dead paths: edges a step did not follow send ghost arrivals to the barriers they fed
  (`runeworker.engine.paths.dead_paths`), so no barrier waits for a branch that never comes.

The flow node functions (runeworker/nodes/split.py, merge.py, wait.py) interpret their
parameters; this module does the state and routing part with what they return: split
`{"_split_items": [...]}`, merge its settings `{"wait_mode", "timeout"}`, wait `{"resume_at"}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import UNSET

from runeworker.engine import merge_timer
from runeworker.engine.barriers import (
    DEAD,
    AggregateArrival,
    Arrival,
    Barrier,
    BarrierState,
    MergeArrival,
    MergeRule,
    aggregate_hold,
    parked,
)
from runeworker.engine.context import lazy
from runeworker.engine.merge_timer import timer_of
from runeworker.engine.messages import (
    HALTED,
    STATUS_SUCCESS,
    STATUS_WAITING,
    NodeExecutionMessage,
    StackFrame,
    encode,
)
from runeworker.engine.paths import (
    AGGREGATOR,
    MERGE,
    SPLIT,
    WAIT,
    aggregator_of,
    dead_paths,
    merge_parents,
    scope_of,
    split_scope,
)
from runeworker.engine.registry import NodeSpec
from runeworker.engine.state import (
    Arrived,
    Failure,
    StateStore,
    Verdict,
    child_token,
    child_tokens,
    derived_uuid,
    record_arrival,
)
from runeworker.engine.workflow import ERROR_BRANCH, ERROR_IGNORE, Edge, Node, Workflow
from runeworker.errors import NodeError

JSON_KEY = "$json"
ITEM_KEY = "$item"
ERROR_KEY = "$error"
# Keys any node of a split branch may set for the whole context: the aggregator gives them back
# the values they had when the split fanned out (`NodeExecutionMessage.outer_keys`).
BRANCH_SET_KEYS = (JSON_KEY, ERROR_KEY)
# Keys of a merge's output that copy whole contexts: kept in its status, left out of `$<name>`
# (the continuation context already is the merged context; copies would grow with every merge).
_MERGE_COPIES = ("merged_context", "_merge_payloads")
_TIMERS = uuid.UUID("6f9b7a52-3c1e-4d8a-9f0b-2b7d5e0c4a11")


@dataclass
class Step:
    """What the flow logic knows about the step being taken."""

    msg: NodeExecutionMessage
    wf: Workflow
    node: Node
    token: str
    context: dict[str, Any]
    lineage: list[StackFrame]
    verdict: Verdict
    store: StateStore
    now_ns: int
    # how a barrier arrival is recorded: the step's ledger (`runeworker.engine.ledger.Arriving`:
    # admitted, recorded and advanced in one call), else on the store, the token admitted before
    arriving: Callable[[Arrival, dict[str, list[str]]], Arrived] | None = None
    # the steps an execution may take (`worker.max_steps`; 0: no limit): a split that would fan
    # out more branches than that fails at once instead of publishing them
    max_steps: int = 0

    @property
    def ghost(self) -> bool:
        return self.msg.ghost is True

    def arrive(self, arrival: Arrival, foreseen: dict[str, list[str]]) -> Barrier | None:
        """Record `arrival`: the barrier's outcome, None when the token was not admitted after
        all (stale, cancelled, at the step limit: the ledger's `close` tells which). `foreseen`:
        the children of the token for outcomes known before the arrival (see
        `StateStore.arrive`)."""
        if self.arriving is None:  # admitted before the node ran: only the barrier half
            ex, token, verdict = self.msg.execution_id, self.token, self.verdict
            return record_arrival(self.store, ex, token, verdict, self.now_ns, arrival)
        arrived = self.arriving(arrival, foreseen)
        if arrived.barrier is not None:
            self.verdict = arrived.verdict
        return arrived.barrier


def foresee(step: Step, spec: NodeSpec, lineage: list[StackFrame]) -> list[str] | None:
    """The children of the token when the node routes along its normal edges (with the ghosts
    for the edges it cannot take, as `route` does), or None when that is not known before the
    node ran (a router decides) or the branch would end there (its context is then a leaf,
    which an arrival does not carry)."""
    if spec.router is not None:
        return None
    taken = step.wf.normal_edges(step.node.id)
    if not taken:
        return None
    dead = dead_paths(step.wf, step.node.id, taken, lineage)
    return child_tokens(step.token, [e.dst for e in taken] + [dst for dst, _ in dead])


def _unadmitted() -> Outcome:
    """The arrival found its token stale or cancelled, or its execution at the step limit:
    nothing was recorded, and the step's `close` tells the executor which."""
    return Outcome({}, Ending(absorbed=True, unadmitted=True))


@dataclass
class Emit:
    """One next message: its destination, context, lineage and `from_node`."""

    dst: str
    context: dict[str, Any]
    lineage: list[StackFrame]
    from_node: str
    ghost: bool = False
    # the message's `outer_keys` (set by a split for its branches); None = the step's own,
    # without the frames the emit's lineage no longer has
    outer_keys: list[dict[str, Any]] | None = None


@dataclass
class Ending:
    """How a branch continues. With no emits carrying data, the branch is a leaf and `context`
    joins the final context, unless `absorbed` (the branch is parked at a barrier or carried
    on by a message). `park` is a child token kept alive by a wait timer."""

    emits: list[Emit] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None
    absorbed: bool = False
    park: str = ""
    # the execution halted while the step ran (a merge that another arrival or its timer timed
    # out under `halt`): nothing of the step is published, as for a branch admitted after the
    # halt (`runeworker.engine.executor.Turn`)
    cancelled: bool = False
    # a barrier arrival's token was not admitted (`Step.arrive` gave no barrier): the step is
    # closed as its ledger says, without its node's statuses
    unadmitted: bool = False


@dataclass
class Outcome:
    """A successful node: its status and output, and how the branch continues."""

    output: dict[str, Any]
    ending: Ending
    status: str = STATUS_SUCCESS
    aggregator_state: str = ""
    processed_count: int | None = None


def reason(node: Node, error: Exception) -> str:
    """The failure reason of a completion that `node` halted or failed."""
    return f"node {node.label} ({node.id}) failed: {error}"


def updated_context(ctx: dict[str, Any], node: Node, output: dict[str, Any]) -> dict[str, Any]:
    """The context after `node` succeeded: its output under `$<name>`, plus `$json`."""
    updated = lazy(ctx)
    updated["$" + node.label] = output
    if JSON_KEY in output:
        updated[JSON_KEY] = output[JSON_KEY]
    return updated


def route(
    step: Step, taken: list[Edge], ctx: dict[str, Any], lineage: list[StackFrame] | None = None
) -> Ending:
    """Follow `taken` with `ctx`; ghosts go to the barriers fed by the edges not taken."""
    lineage = step.lineage if lineage is None else lineage
    emits = [Emit(e.dst, ctx, lineage, step.node.id) for e in taken]
    return Ending(emits + ghosts(step, taken, ctx, lineage), ctx)


def ghosts(
    step: Step, taken: list[Edge], ctx: dict[str, Any], lineage: list[StackFrame]
) -> list[Emit]:
    """Ghost arrivals for the barriers fed by the outgoing edges not in `taken`."""
    pairs = dead_paths(step.wf, step.node.id, taken, lineage)
    if not pairs:
        return []
    return [Emit(dst, ctx, lineage, parent, ghost=True) for dst, parent in pairs]


def _edges(step: Step, spec: NodeSpec, output: dict[str, Any] | None) -> list[Edge]:
    if spec.router is not None:
        return spec.router(step.node, output, step.wf)
    return step.wf.normal_edges(step.node.id)


def on_success(step: Step, spec: NodeSpec, output: dict[str, Any]) -> Outcome | NodeError:
    """The continuation of a node that returned `output`; a NodeError when a flow node finds
    its state wrong (aggregator outside a split, merge timeout, ...)."""
    try:
        if step.node.type == SPLIT:
            return _split(step, spec, output)
        if step.node.type == AGGREGATOR:
            return _aggregate(step, spec)
        if step.node.type == MERGE:
            return _merge(step, spec, output)
        if step.node.type == WAIT:
            return _wait(step, output)
    except NodeError as exc:
        return exc
    ctx = updated_context(step.context, step.node, output)
    return Outcome(output, route(step, _edges(step, spec, output), ctx))


def on_error(step: Step, spec: NodeSpec, error: NodeError) -> Ending:
    """The node's error policy: ignore (route as if no output, context unchanged), branch
    (the error edge, with `$error` in the context) or halt."""
    node, wf, ctx = step.node, step.wf, step.context
    policy = node.policy
    halt = Ending(failure=Failure(HALTED, reason(node, error), encode(ctx)))
    if policy.kind not in (ERROR_IGNORE, ERROR_BRANCH):
        return halt
    if step.ghost:
        return Ending(absorbed=True)  # a ghost carries no branch that could go on
    if policy.kind == ERROR_IGNORE:
        return route(step, _edges(step, spec, None), ctx)
    if policy.error_edge not in wf.edge_by_id:
        return halt
    branched = lazy(ctx)
    branched[ERROR_KEY] = {
        "node": node.label,
        "node_id": node.id,
        "message": str(error),
        "code": error.code,
    }
    return route(step, [wf.edge_by_id[policy.error_edge]], branched)


def halts(node: Node, wf: Workflow) -> bool:
    """Whether an error of `node` on a branch with data halts its execution, as `on_error`
    decides: its policy is neither `ignore` nor `branch`, or `branch` names no edge."""
    policy = node.policy
    if policy.kind == ERROR_IGNORE:
        return False
    return policy.kind != ERROR_BRANCH or policy.error_edge not in wf.edge_by_id


def resumed(step: Step, spec: NodeSpec) -> Outcome:
    """A wait node's timer fired: its output is the frozen `$<name>`; route as on success."""
    output = step.context.get("$" + step.node.label)
    output = output if isinstance(output, dict) else {}
    return Outcome(output, route(step, _edges(step, spec, output), step.context))


# -- split --------------------------------------------------------------------------------------


def _split(step: Step, spec: NodeSpec, output: dict[str, Any]) -> Outcome:
    items = output.get("_split_items")
    if not isinstance(items, list):
        raise NodeError(f"split node {step.node.label} produced no _split_items list")
    ctx = updated_context(step.context, step.node, output)
    edges = _edges(step, spec, output)
    ex, sid = step.msg.execution_id, step.node.id
    if not edges:
        return Outcome(output, Ending(context=ctx))
    # every branch message carries the whole list (upstream's wire), so the bytes published
    # grow with the square of the items; branches beyond the step limit could never all run
    fan_out = len(items) * len(edges)
    if step.max_steps and fan_out > step.max_steps:
        raise NodeError(
            f"split node {step.node.label} would fan out {fan_out} branches, more than the "
            f"{step.max_steps} steps an execution may take (worker.max_steps)"
        )
    outer = [*_outer_keys(step), {k: ctx[k] for k in BRANCH_SET_KEYS if k in ctx}]
    if not items:
        # nothing to fan out: the aggregator releases `aggregated: []` at once (section 6.1 of
        # services/rune-worker/rfcs/RFC-004-split-aggregate.md)
        agg = aggregator_of(step.wf, sid)
        if agg is None:
            return Outcome(output, Ending(context=ctx))
        frame = StackFrame(sid, f"{ex}_{sid}_0", 0, 0)
        empty = Emit(agg, ctx, [*step.lineage, frame], sid, ghost=True, outer_keys=outer)
        return Outcome(output, Ending([empty], ctx, absorbed=True))
    emits: list[Emit] = []
    for i, item in enumerate(items):
        lineage = [*step.lineage, StackFrame(sid, f"{ex}_{sid}_{i}", i, len(items))]
        item_ctx = {**ctx, ITEM_KEY: item}
        emits += [Emit(e.dst, item_ctx, lineage, sid, outer_keys=outer) for e in edges]
    emits += ghosts(step, edges, ctx, step.lineage)  # an error edge the split did not take
    return Outcome(output, Ending(emits, ctx))


# -- aggregator ---------------------------------------------------------------------------------


def _aggregate(step: Step, spec: NodeSpec) -> Outcome:
    label = step.node.label
    if not step.lineage:
        raise NodeError(
            f"aggregator node {label} must be executed within a split context "
            "(the message has no lineage_stack)"
        )
    top, outer = step.lineage[-1], step.lineage[:-1]
    total, index = top.total_items, top.item_index
    hold = ""
    if total <= 0:
        barrier = Barrier(BarrierState.RELEASED, 0)
    elif not 0 <= index < total:
        raise NodeError(
            f"aggregator node {label}: item_index {index} is outside the {total} items "
            f"of split {top.split_node_id}"
        )
    else:
        payload = None if step.ghost else encode(_branch_result(step, top))
        scope = scope_of(outer)
        hold = aggregate_hold(top.split_node_id, scope)
        arrival = AggregateArrival(top.split_node_id, scope, index, total, payload, hold)
        # an arrival that waits names the barrier's hold token, which its advance parks only
        # when nothing else of the execution would be live (`StateStore.advance`): the
        # execution stays open while the barrier waits, even with no branch live (split
        # branches of a Go worker's fan-out join one at a time); one that runeworker fanned
        # out always has a sibling live and parks nothing. The releasing arrival retires it.
        foreseen: dict[str, list[str]] = {BarrierState.WAITING: [hold], BarrierState.CLOSED: []}
        released = foresee(step, spec, outer)
        if released is not None:  # with results or without, the aggregator routes the same
            foreseen[BarrierState.RELEASED] = foreseen[DEAD] = released
        arrived = step.arrive(arrival, foreseen)
        if arrived is None:
            return _unadmitted()
        barrier = arrived
    if barrier.state is BarrierState.WAITING:
        waiting = {"_barrier_closed": True, "_aggregator_processed_count": barrier.arrived}
        parked_hold = Ending(absorbed=True, park=hold)
        return Outcome(waiting, parked_hold, STATUS_SUCCESS, "waiting", barrier.arrived)
    if barrier.state is not BarrierState.RELEASED:
        late = {"_barrier_closed": True, "_aggregator_processed_count": total}
        return Outcome(late, Ending(absorbed=True), STATUS_SUCCESS, "released", total)
    items = [msgspec.json.decode(r) for r in barrier.results]
    output = {"aggregated": items, "_aggregator_processed_count": total}
    ctx = _outer_context(step, top, outer, output)
    ending = route(step, _edges(step, spec, output), ctx, outer)
    return Outcome(output, ending, STATUS_SUCCESS, "released", total)


def _branch_result(step: Step, top: StackFrame) -> Any:
    """What a branch delivers: the output of the node it arrived from, else its `$item`."""
    src = step.msg.from_node if isinstance(step.msg.from_node, str) else ""
    node = step.wf.by_id.get(src)
    if node is not None and src != top.split_node_id:
        key = "$" + node.label
        if key in step.context:
            return step.context[key]
    return step.context.get(ITEM_KEY)


def _outer_keys(step: Step) -> list[dict[str, Any]]:
    """The message's `outer_keys`, one per frame of its lineage ({} where a peer that does
    not carry them published the message)."""
    kept = step.msg.outer_keys
    kept = kept if isinstance(kept, list) else []
    return [*kept[: len(step.lineage)], *([{}] * (len(step.lineage) - len(kept)))]


def _outer_context(
    step: Step, top: StackFrame, outer: list[StackFrame], output: dict[str, Any]
) -> dict[str, Any]:
    """The context after the aggregator, the same whichever branch arrived last: the outputs
    of the nodes inside the split are dropped (they belong to one item), `$item` is the outer
    split's item again (or gone), and `$json` and `$error` have the values they had when the
    split fanned out (a branch's own, e.g. an error branch's `$error`, stay in the branch)."""
    wf = step.wf
    ctx = lazy(step.context)
    for node_id in split_scope(wf, top.split_node_id, step.node.id):
        ctx.pop("$" + wf.by_id[node_id].label, None)
    ctx.pop(ITEM_KEY, None)
    kept = step.msg.outer_keys
    if isinstance(kept, list) and len(kept) >= len(step.lineage):
        before = kept[len(step.lineage) - 1]
        for key in BRANCH_SET_KEYS:
            if key in before:
                ctx[key] = before[key]
            else:
                ctx.pop(key, None)
    if outer:
        frame = outer[-1]
        split = wf.by_id.get(frame.split_node_id)
        done = ctx.get("$" + split.label) if split is not None else None
        items = done.get("_split_items") if isinstance(done, dict) else None
        if isinstance(items, list) and 0 <= frame.item_index < len(items):
            ctx[ITEM_KEY] = items[frame.item_index]
    ctx["$" + step.node.label] = output
    return ctx


# -- merge --------------------------------------------------------------------------------------


def _merge(step: Step, spec: NodeSpec, settings: dict[str, Any]) -> Outcome:
    node, label = step.node, step.node.label
    parent = step.msg.from_node if isinstance(step.msg.from_node, str) else ""
    parents = merge_parents(step.wf, node.id)
    if not parent:
        raise NodeError(f"merge node {label} got an arrival without from_node (no parent named)")
    if parents and parent not in parents:
        raise NodeError(
            f"merge node {label}: from_node '{parent}' is not the source of an edge into it"
        )
    expected = len(parents) or 1
    timeout = float(settings.get("timeout", 0))
    wait_any = settings.get("wait_mode") == "wait_for_any"
    # whole milliseconds, and at least one: a positive timeout under half a millisecond
    # rounded to 0 would be no timeout at all (`MergeRule.timeout_ms`), the merge waiting for ever
    timeout_ms = max(1, round(timeout * 1000)) if timeout > 0 else 0
    # A replayed arrival (its advance is recorded) never expires the barrier (`Step.arrive`):
    # the failure of that expiry could not be recorded any more (the advance replays what it
    # recorded), so the merge would fail while the execution goes on. Its first attempt was
    # counted and armed the timer (or decided), which decides instead.
    rule = MergeRule(expected, wait_any, timeout_ms)
    payload = None if step.ghost else encode(step.context)
    ex, scope = step.msg.execution_id, scope_of(step.lineage)
    timer = timer_of(ex, node.id, scope) if timeout_ms > 0 and not wait_any else None
    # the arrival schedules and cancels the timer in its own call where the store can
    park = merge_timer.in_arrival(
        step.store, timer, step.msg, step.context, len(payload) if payload is not None else 0
    )
    arrival = MergeArrival(
        node.id, scope, parent, payload, rule, step.now_ns // 1_000_000,
        timer.token if timer is not None else "", park,
    )  # fmt: skip
    # outcomes whose continuation is known now; a waiting arrival that parks the timer's token
    # is one only when the arrival stores the timer (before its token is live)
    foreseen: dict[str, list[str]] = {BarrierState.CLOSED: []}
    if timer is None:
        foreseen[BarrierState.WAITING] = []
    if not halts(node, step.wf):
        foreseen[BarrierState.TIMED_OUT] = []
    released = foresee(step, spec, step.lineage)
    if released is not None:
        foreseen[BarrierState.RELEASED] = released
    arrived = step.arrive(arrival, foreseen)
    if arrived is None:
        return _unadmitted()
    barrier = arrived
    decided = barrier.state in (BarrierState.RELEASED, BarrierState.EXPIRED)
    if timer is not None and park is None and decided:
        # decided: the timeout timer has no job left (its token was retired by the arrival)
        step.store.cancel_timer(timer.timer_id)
    if barrier.state is BarrierState.EXPIRED:
        raise NodeError(
            f"merge node {label} timed out: {barrier.arrived} of {expected} parents arrived "
            f"within {timeout:g} seconds of the first arrival"
        )
    if barrier.state is BarrierState.WAITING:
        output = {"_merge_waiting": True, "_merge_arrived": barrier.arrived}
        output["_merge_expected"] = expected
        if park is not None:  # the arrival scheduled the timer (a RUN not yet due)
            held = next(iter(parked(arrival, barrier)), "")
        elif timer is not None:
            due, now = barrier.first_ms + timeout_ms, step.now_ns // 1_000_000
            run = step.verdict is Verdict.RUN  # a replay (advance recorded) has armed it already
            held = merge_timer.park(step.store, timer, step.msg, step.context, now, due, run)
        else:
            held = ""
        return Outcome(output, Ending(absorbed=True, park=held), STATUS_WAITING)
    if barrier.state is BarrierState.TIMED_OUT and halts(node, step.wf):
        # Another arrival or the merge's timer failed the merge, which halts the execution.
        # This arrival was admitted before that halt was recorded (admitted after it, it would
        # not have run): it is dropped like any branch of a halted execution, so the merge
        # reports `failed` and nothing else.
        return Outcome({"_merge_ignored": True}, Ending(absorbed=True, cancelled=True))
    if barrier.state in (BarrierState.CLOSED, BarrierState.TIMED_OUT):
        return Outcome({"_merge_ignored": True}, Ending(absorbed=True))
    if not barrier.results:
        # every parent path was dead: the merge is dead too, and so are the paths after it
        # (their barriers get ghosts); its branch ends without a leaf, as a ghost's does: the
        # ghosts' context (inside a split, one item's) is no part of the final context
        output = {"_merge_skipped": True, "_merge_arrived": barrier.arrived}
        output["_merge_expected"] = expected
        dead = route(step, [], step.context)
        dead.absorbed = True
        return Outcome(output, dead)
    return _merged(step, spec, barrier, parents, expected, wait_any)


def _merged(
    step: Step, spec: NodeSpec, barrier: Barrier, parents: list[str], expected: int, wait_any: bool
) -> Outcome:
    """Released: payload contexts merged in the order of the merge's incoming edges."""
    rank = {p: i for i, p in enumerate(parents)}
    pairs = sorted(
        zip(barrier.keys, barrier.results, strict=True),
        key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]),
    )
    payloads = [msgspec.json.decode(raw) for _, raw in pairs]
    merged: dict[str, Any] = {}
    for payload in payloads:
        if isinstance(payload, dict):
            merged.update(payload)
    output: dict[str, Any] = {"merged_context": merged, "_merge_payloads": payloads}
    output["_merge_expected"] = expected
    output["_merge_sources"] = [p for p, _ in pairs]
    if wait_any:
        output["_merge_winner"] = pairs[0][0]
    ctx = dict(merged)
    ctx["$" + step.node.label] = {k: v for k, v in output.items() if k not in _MERGE_COPIES}
    return Outcome(output, route(step, _edges(step, spec, output), ctx))


# -- wait ---------------------------------------------------------------------------------------


def _wait(step: Step, output: dict[str, Any]) -> Outcome:
    resume_at = output.get("resume_at")
    if isinstance(resume_at, bool) or not isinstance(resume_at, int):
        raise NodeError(f"wait node {step.node.label} produced no resume_at time")
    park = child_token(step.token, 0, step.node.id)
    # derived, not random: a redelivered wait schedules the same timer again, not a second one
    timer_id = derived_uuid(_TIMERS, f"{step.msg.execution_id}/{park}")
    result = {"resume_at": resume_at, "timer_id": timer_id}
    ctx = updated_context(step.context, step.node, result)
    frozen = msgspec.structs.replace(
        step.msg,
        accumulated_context=ctx,
        current_node=step.node.id,
        is_worker_initiated=True,
        branch_token=park,
        ghost=UNSET,
    )
    if step.verdict is Verdict.RUN:
        # before the token advance: a replayed step (advance recorded) has scheduled already
        step.store.schedule(timer_id, resume_at, encode(frozen), owner=step.msg.execution_id)
    return Outcome(result, Ending(context=ctx, park=park), STATUS_WAITING)
