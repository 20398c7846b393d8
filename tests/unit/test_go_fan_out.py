"""Split branches that a Go worker fanned out, run here (a mixed pool, docs/WIRE.md section
12.1): the Go worker publishes one message per item and successor without runeworker's
`branch_token` (`handleSplitFanOut` in services/rune-worker/pkg/executor/node_handlers.go
upstream), so each joins the execution with a joining token when it is consumed, possibly with
no other branch of the execution live. The aggregator's waiting arrivals keep the execution
open (the barrier's hold token, parked when nothing else is live) until the release. A split
that runeworker fans out never needs the hold, and parks none (the last tests)."""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec
import pytest
from flowkit import Pick, Run, definition, fifo, lifo, n, start, step

from runeworker.engine.barriers import AggregateArrival, Arrival, aggregate_hold
from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, StackFrame
from runeworker.engine.state import JOINING, Arrived, MemoryStore, Verdict, message_token

AGG = {"id": "agg", "name": "Collector", "type": "aggregator"}
ITEMS = ["x", "y", "z"]


def go_branches(
    defn: bytes, dsts: list[str], items: list[Any] = ITEMS, ex: str = "ex-1"
) -> list[NodeExecutionMessage]:
    """The messages a Go worker publishes after the split `split` (name `SPLIT`) fanned out
    `items` to `dsts`, item-major: the split's output and `$item` in the context, one lineage
    frame, `from_node` the split, worker-initiated; no runeworker key."""
    out = []
    for i, it in enumerate(items):
        frame = StackFrame("split", f"{ex}_split_{i}", i, len(items))
        context = {"$seed": 1, "$SPLIT": {"_split_items": items}, "$item": it}
        for dst in dsts:
            msg = NodeExecutionMessage(
                "wf-1", ex, dst, msgspec.Raw(defn), 2, 11, context, [frame], "split", True
            )
            out.append(msg)
    return out


def straight() -> bytes:
    nodes = [n("split", "split", input_array=ITEMS), AGG, n("after", value="$Collector")]
    return definition(nodes, [("e1", "split", "agg"), ("e2", "agg", "after")])


def through_a_node() -> bytes:
    nodes = [n("split", "split", input_array=ITEMS), n("each", value="$item"), AGG]
    return definition(nodes, [("e1", "split", "each"), ("e2", "each", "agg")])


def aggregations(run: Run) -> list[tuple[str, int | None]]:
    return [
        (str(s.aggregator_state), s.processed_count)
        for s in run.statuses
        if s.node_name == "Collector" and s.status == "success"
    ]


@pytest.mark.parametrize("through", [False, True], ids=["straight", "through_a_node"])
def test_branches_one_at_a_time_complete_once_after_the_release(through: bool) -> None:
    """Each branch runs to its end (the aggregator's waiting arrival) before the next is
    consumed: nothing of the execution is live in between but the barrier's hold. One
    completion, `completed`, at the end of the branch after the release; before, the first
    waiting arrival completed the execution and the other branches were dropped as stale."""
    defn = through_a_node() if through else straight()
    executor, run = Executor(MemoryStore()), Run()
    branches = go_branches(defn, ["each" if through else "agg"])
    for i, msg in enumerate(branches):
        assert message_token(msg).startswith(JOINING)
        pending = [msg]
        while pending:
            result = step(executor, pending.pop(), run)
            assert result.report.verdict is Verdict.RUN
            pending += result.messages
        if i < len(branches) - 1:
            assert run.completions == [], f"the execution ended at branch {i}"
    assert aggregations(run) == [("waiting", 1), ("waiting", 2), ("released", 3)]
    released = {"aggregated": ITEMS if not through else [{"value": v} for v in ITEMS],
                "_aggregator_processed_count": 3}  # fmt: skip
    assert run.outputs("Collector")[-1] == released
    assert run.completion.status == "completed"
    final = run.completion.final_context
    assert final["$Collector"] == released
    if not through:
        assert run.outputs("AFTER") == [{"value": released}]
    # the completion came with the last step, not before
    assert [r.completion is not None for r in run.results].index(True) == len(run.results) - 1


def test_a_waiting_arrival_redelivered_replays_and_the_release_too() -> None:
    """Redeliveries derive the same tokens (joining token, hold): a waiting arrival replays
    `waiting` and parks nothing new; the releasing one replays its release and the one
    completion."""
    executor, run = Executor(MemoryStore()), Run()
    first, second, third = go_branches(straight(), ["agg"])
    step(executor, first, run)
    again = step(executor, first, run)
    assert again.report.verdict is Verdict.REPLAY and again.completion is None
    assert aggregations(run) == [("waiting", 1), ("waiting", 1)]
    step(executor, second, run)
    released = step(executor, third, run)
    assert released.completion is None  # `after` is next
    [after] = released.messages
    done = step(executor, after, run)
    assert done.completion is not None and done.completion.status == "completed"
    replay = step(executor, third, run)
    assert replay.report.verdict is Verdict.REPLAY
    assert [m.branch_token for m in replay.messages] == [after.branch_token]
    assert step(executor, after, run).report.verdict is Verdict.REPLAY
    [once, replayed] = run.completions
    assert (replayed.status, replayed.final_context) == (once.status, once.final_context)


def test_a_branch_ending_elsewhere_leaves_the_waiting_barrier_open() -> None:
    """The split also feeds `side`, a leaf: once an arrival waits at the aggregator with
    nothing else live (it parked the hold), the side branches that end while nothing else is
    live do not end the execution (the hold is no branch's); it completes once, at the
    release, with every side branch's context. (A side branch consumed before anything of the
    execution waits opens and ends it at once: a branch of a Go worker's fan-out that no
    barrier holds, section 12.1; one live while the first arrival waits, the last test.)"""
    nodes = [n("split", "split", input_array=ITEMS), AGG, n("side", value="$item")]
    defn = definition(nodes, [("e1", "split", "agg"), ("e2", "split", "side")])
    executor, run = Executor(MemoryStore()), Run()
    branches = go_branches(defn, ["agg", "side"])
    arrivals, sides = branches[0::2], branches[1::2]
    for msg in [arrivals[0], *sides, *arrivals[1:]]:
        result = step(executor, msg, run)
        assert result.report.verdict is Verdict.RUN, msg.current_node
    assert aggregations(run) == [("waiting", 1), ("waiting", 2), ("released", 3)]
    assert run.outputs("SIDE") == [{"value": v} for v in ITEMS]
    assert run.completion.status == "completed"
    assert run.results[-1].completion is not None  # the release closed it
    assert run.completion.final_context["$SIDE"] == {"value": "z"}  # the side leaves joined


def test_a_merge_inside_the_go_fan_out() -> None:
    """Each item runs `a` and `b`, which meet at a `wait_for_all` merge (its default timeout)
    inside the split, then the aggregator: the merge's waiting arrival parks its timer token,
    the aggregator's its hold; one completion, with every item merged and aggregated."""
    nodes = [n("split", "split", input_array=ITEMS), n("a", value="$item"), n("b", value=1),
             n("m", "merge", wait_mode="wait_for_all"), AGG]  # fmt: skip
    edges = [("e1", "split", "a"), ("e2", "split", "b"), ("e3", "a", "m"), ("e4", "b", "m"),
             ("e5", "m", "agg")]  # fmt: skip
    defn = definition(nodes, edges)
    executor, run = Executor(MemoryStore()), Run()
    for msg in go_branches(defn, ["a", "b"]):
        pending = [msg]
        while pending:
            result = step(executor, pending.pop(), run)
            assert result.report.verdict is Verdict.RUN
            pending += result.messages
    assert [s.status for s in run.statuses if s.node_name == "M"] == [
        "running", "waiting", "running", "success"] * 3  # fmt: skip
    assert aggregations(run) == [("waiting", 1), ("waiting", 2), ("released", 3)]
    assert run.completion.status == "completed"
    merged = run.completion.final_context["$Collector"]["aggregated"]
    assert [m["_merge_sources"] for m in merged] == [["a", "b"]] * 3
    assert executor.store.next_due() is None  # every merge timer cancelled


def test_the_hold_token_is_stable_across_versions() -> None:
    # It is persisted (the live set) while a barrier waits: during a rolling upgrade a child of
    # the next version must derive the same one, or its release would not retire it.
    assert aggregate_hold("split", "") == "hold:c027d125192023fb5cdb"
    assert aggregate_hold("split", "ex_outer_1") == "hold:34ce9d88d398cb2c3474"


# -- splits that runeworker fans out: they never need the hold --------------------------------


class RollingStore(MemoryStore):
    """A MemoryStore shared with an earlier runeworker during a rolling upgrade: while
    `earlier` is set, its aggregator arrivals are those of a version before hold tokens (no
    hold named, so none retired; none foreseen for a waiting arrival)."""

    earlier = False

    def arrive(
        self,
        execution_id: str,
        token: str,
        now_ns: int,
        max_steps: int,
        arrival: Arrival,
        foreseen: dict[str, list[str]],
    ) -> Arrived:
        if self.earlier and isinstance(arrival, AggregateArrival):
            arrival = msgspec.structs.replace(arrival, hold="")
            foreseen = {**foreseen, "waiting": []}
        return super().arrive(execution_id, token, now_ns, max_steps, arrival, foreseen)


def own_split(through: bool) -> bytes:
    """`straight` or `through_a_node`, started at the split: runeworker fans it out."""
    return through_a_node() if through else straight()


@pytest.mark.parametrize("pick", [fifo, lifo], ids=["fifo", "lifo"])
@pytest.mark.parametrize("through", [False, True], ids=["straight", "through_a_node"])
def test_a_split_runeworker_fans_out_never_parks_the_hold(through: bool, pick: Pick) -> None:
    """Every branch token of the split is live from the fan-out, so an arrival that waits
    always has a sibling live and parks nothing: after every step the hold token is not live
    (STALE until the release, which records it as advanced: REPLAY), and the execution
    completes once, as before holds existed. Before, the first waiting arrival parked it."""
    store = MemoryStore()
    executor, run = Executor(store), Run()
    hold = aggregate_hold("split", "")
    queue = deque([start(own_split(through), "split")])
    while queue:
        queue.extend(step(executor, pick(queue), run).messages)
        verdict = store.admit("ex-1", hold, 0).verdict
        assert verdict in (Verdict.STALE, Verdict.REPLAY), f"the hold is live: {verdict}"
    assert aggregations(run) == [("waiting", 1), ("waiting", 2), ("released", 3)]
    assert run.completion.status == "completed"
    assert run.results[-1].completion is not None


def test_a_split_released_by_an_earlier_version_completes() -> None:
    """A rolling upgrade: the releasing aggregator arrival is taken by a runeworker before
    hold tokens, which never retires one, the waiting ones by this version. The execution
    completes once. Before, this version's waiting arrivals parked the hold and the earlier
    version's release left it live: no completion, ever. (The rollback, the other way round,
    is in the state table: `arrive_released_by_an_earlier_version_completes`.)"""
    store = RollingStore()
    executor, run = Executor(store), Run()
    queue = deque([start(through_a_node(), "split")])
    arrivals = 0
    while queue:
        msg = queue.popleft()
        store.earlier = msg.current_node == "agg" and arrivals == len(ITEMS) - 1
        arrivals += msg.current_node == "agg"
        queue.extend(step(executor, msg, run).messages)
    assert aggregations(run) == [("waiting", 1), ("waiting", 2), ("released", 3)]
    assert run.completion.status == "completed"
    assert run.completion.final_context["$Collector"]["aggregated"] == [{"value": v} for v in ITEMS]


def test_a_branch_ending_while_an_arrival_waits_unheld_ends_the_execution() -> None:
    """The gap that remains in a mixed pool (docs/WIRE.md section 12.1): an arrival of a Go
    worker's fan-out that waits while another branch of the execution is live parks no hold;
    when that branch then ends with nothing else live (here a side branch, admitted before
    the arrival and advanced after it), the execution ends there, before the release, and
    the later arrivals find it ended. Pinned so that the documentation stays true."""
    nodes = [n("split", "split", input_array=ITEMS), AGG, n("side", value="$item")]
    defn = definition(nodes, [("e1", "split", "agg"), ("e2", "split", "side")])
    store = MemoryStore()
    executor, run = Executor(store), Run()
    branches = go_branches(defn, ["agg", "side"])
    arrivals, sides = branches[0::2], branches[1::2]
    assert store.admit("ex-1", message_token(sides[0]), 0).verdict is Verdict.RUN  # joined
    assert step(executor, arrivals[0], run).report.verdict is Verdict.RUN  # waits, unheld
    ended = step(executor, sides[0], run)
    assert ended.completion is not None and ended.completion.status == "completed"
    later = [step(executor, msg, run).report.verdict for msg in [*sides[1:], *arrivals[1:]]]
    assert later == [Verdict.STALE] * 4
    assert aggregations(run) == [("waiting", 1)]
