"""The flow-control nodes at their edges (runeworker/engine/flow.py): dead letters replayed at a
barrier (`runeworker dlq replay`: the arrival is recorded by the step's own calls, not inside
the ledger's), a barrier's limits at their exact boundary, what a late arrival and a split
without branches publish, the merge timer's due time, and the frozen message of a wait."""

from __future__ import annotations

import time
from typing import Any, cast

import msgspec
import pytest
from flowkit import TRIGGER, Run, definition, drive, n, start, step
from statecases import Unparked

from runeworker.engine import flow
from runeworker.engine.barriers import aggregate_hold
from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, StackFrame, decode_execution, encode
from runeworker.engine.outbox import Outbox
from runeworker.engine.state import MemoryStore, StateStore

NOW_MS = 1_700_000_000_000
AGG = {"id": "agg", "name": "Collector", "type": "aggregator"}


def wire(msg: NodeExecutionMessage) -> NodeExecutionMessage:
    return decode_execution(encode(msg))  # exactly what a worker decodes


def at(executor: Executor, msg: NodeExecutionMessage, **how: Any) -> Outbox:
    """One step of `msg` as a worker takes it (`how`: `replayed`, `resumed`)."""
    return executor.step(wire(msg), None, how.pop("resumed", False), **how)


def fan_in(**merge_params: Any) -> bytes:
    """trigger -> a, b -> merge M -> c."""
    merge = n("m", "merge", **merge_params)
    nodes = [TRIGGER, n("a", value="A"), n("b", value="B"), merge, n("c", value="$M")]
    edges = [("e1", "trigger", "a"), ("e2", "trigger", "b"), ("e3", "a", "m"),
             ("e4", "b", "m"), ("e5", "m", "c")]  # fmt: skip
    return definition(nodes, edges)


def merge_arrivals(executor: Executor, defn: bytes) -> tuple[NodeExecutionMessage, ...]:
    """The two arrivals at the merge, from a and from b."""
    to_a, to_b = at(executor, start(defn, "trigger")).messages
    [from_a] = at(executor, to_a).messages
    [from_b] = at(executor, to_b).messages
    assert (from_a.from_node, from_b.from_node) == ("a", "b")
    return from_a, from_b


def status_of(outbox: Outbox) -> tuple[str, Any]:
    last = outbox.statuses[-1]
    return last.status, last.output


def test_a_dead_letter_replayed_at_a_merge_is_counted_and_releases_it() -> None:
    """A merge arrival dead-lettered and put back by hand (`runeworker dlq replay`) takes the
    admitted path: its arrival is recorded by the step itself. It counts as the parent it
    comes from and opens the merge; the execution completes once, with both parents' data."""
    executor = Executor(MemoryStore())
    from_a, from_b = merge_arrivals(executor, fan_in())
    assert status_of(at(executor, from_a))[0] == "waiting"
    released = at(executor, from_b, replayed=True)
    state, output = status_of(released)
    assert state == "success" and output["_merge_sources"] == ["a", "b"]
    [to_c] = released.messages
    assert released.completion is None
    done = at(executor, to_c)
    assert done.completion is not None and done.completion.status == "completed"
    final = done.completion.final_context
    assert (final["$A"], final["$B"]) == ({"value": "A"}, {"value": "B"})


def test_a_dead_letter_replayed_at_a_merge_that_waits_arms_its_timer_at_the_timeout() -> None:
    """Replayed and waiting, the arrival arms the merge's timer, due the timeout after it
    (its own clock's milliseconds); the other parent's arrival opens the merge and cancels
    the timer."""
    store = MemoryStore()
    executor = Executor(store, clock=lambda: NOW_MS * 1_000_000)
    from_a, from_b = merge_arrivals(executor, fan_in(timeout="2.5"))
    waited = at(executor, from_a, replayed=True)
    assert status_of(waited) == ("waiting", {"_merge_waiting": True, "_merge_arrived": 1,
                                             "_merge_expected": 2})  # fmt: skip
    assert store.next_due() == NOW_MS + 2_500
    released = at(executor, from_b)
    assert [m.current_node for m in released.messages] == ["c"]
    assert store.next_due() is None


@pytest.mark.parametrize(("timeout", "due_in"), [
    ("0.0004", 1),  # under half a millisecond: still a timeout, of one millisecond
    ("0.0016", 2),
    ("7", 7_000),
])  # fmt: skip
def test_a_merge_times_out_after_its_timeout_in_whole_milliseconds(
    timeout: str, due_in: int
) -> None:
    """The first arrival arms the timer `timeout` after it, rounded to whole milliseconds and
    never to none: a timeout of 0.4 ms rounded to 0 would be no timeout at all, the merge
    waiting for ever."""
    store = MemoryStore()
    executor = Executor(store, clock=lambda: NOW_MS * 1_000_000)
    from_a, from_b = merge_arrivals(executor, fan_in(timeout=timeout))
    assert status_of(at(executor, from_a))[0] == "waiting"
    assert store.next_due() == NOW_MS + due_in
    late = Executor(store, clock=lambda: (NOW_MS + due_in + 1) * 1_000_000)
    expired = at(late, from_b)
    assert [s.status for s in expired.statuses] == ["running", "failed"]
    assert expired.completion is not None and expired.completion.status == "halted"


def split_to_aggregator(items: list[Any]) -> bytes:
    nodes = [n("split", "split", input_array=items), AGG]
    return definition(nodes, [("e1", "split", "agg")])


def test_a_dead_letter_replayed_at_an_aggregator_is_counted_and_releases_it() -> None:
    executor = Executor(MemoryStore())
    first, second = at(executor, start(split_to_aggregator(["x", "y"]), "split")).messages
    assert at(executor, first).statuses[-1].aggregator_state == "waiting"
    released = at(executor, second, replayed=True)
    status = released.statuses[-1]
    assert (status.status, status.aggregator_state, status.processed_count) == (
        "success", "released", 2)  # fmt: skip
    assert status.output == {"aggregated": ["x", "y"], "_aggregator_processed_count": 2}
    assert released.completion is not None and released.completion.status == "completed"


@pytest.mark.parametrize("index", [2, 3, -1])
def test_an_aggregator_arrival_outside_its_splits_items_fails(index: int) -> None:
    """item_index must be one of the split's `total_items` (0 to total - 1): an arrival for
    index `total` would count an item the split never had and release the barrier early."""
    executor = Executor(MemoryStore())
    first, _ = at(executor, start(split_to_aggregator(["x", "y"]), "split")).messages
    [top] = first.lineage_stack or []
    forged = msgspec.structs.replace(
        first, lineage_stack=[StackFrame(top.split_node_id, top.branch_id, index, 2)]
    )
    failed = at(executor, forged)
    error = failed.statuses[-1].error
    assert error is not msgspec.UNSET and error.message == (
        f"aggregator node Collector: item_index {index} is outside the 2 items of split split"
    )
    assert failed.completion is not None and failed.completion.status == "halted"


def test_an_aggregator_arrival_after_the_release_is_absorbed_and_says_so() -> None:
    """A branch that joins after the aggregator released (a Go worker's copy of item 0, no
    branch token) while the execution is still open elsewhere: the barrier is closed, the
    arrival absorbed. Its status says the barrier closed and how many items it released; it
    publishes nothing else."""
    nodes = [TRIGGER, n("split", "split", input_array=["x", "y"]), AGG, n("other")]
    edges = [("e0", "trigger", "split"), ("e1", "split", "agg"), ("e2", "trigger", "other")]
    executor = Executor(MemoryStore())
    to_split, to_other = at(executor, start(definition(nodes, edges), "trigger")).messages
    first, second = at(executor, to_split).messages
    at(executor, first)
    assert at(executor, second).statuses[-1].aggregator_state == "released"
    joining = msgspec.structs.replace(first, branch_token=msgspec.UNSET)
    late = at(executor, joining)
    status = late.statuses[-1]
    assert (status.status, status.aggregator_state, status.processed_count) == (
        "success", "released", 2)  # fmt: skip
    assert status.output == {"_barrier_closed": True, "_aggregator_processed_count": 2}
    assert (late.messages, late.completion) == ([], None)
    done = at(executor, to_other)
    assert done.completion is not None and done.completion.status == "completed"
    assert "$Collector" in done.completion.final_context  # the release's, not the late one's


@pytest.mark.parametrize("items", [["x", "y"], []])
def test_a_split_with_no_branches_is_a_leaf_that_reports_its_items(items: list[Any]) -> None:
    """A split with nothing after it (and, for no items, no aggregator): its status reports
    the items, and its context ends the execution."""
    run = drive(start(definition([n("split", "split", input_array=items)]), "split", {"$x": 1}))
    assert run.outputs("SPLIT") == [{"_split_items": items}]
    assert run.completion.status == "completed"
    assert run.completion.final_context == {"$x": 1, "$SPLIT": {"_split_items": items}}


def test_an_empty_split_sends_the_aggregator_its_context_from_itself() -> None:
    """No items: one ghost arrival goes straight to the aggregator, from the split, with the
    split's context, and the split's own branch ends there (no leaf of its own)."""
    nodes = [TRIGGER, n("a", value="A"), n("split", "split", input_array=[]), n("inner"), AGG,
             n("after", value="$Collector.aggregated")]  # fmt: skip
    edges = [("e0", "trigger", "a"), ("e1", "a", "split"), ("e2", "split", "inner"),
             ("e3", "inner", "agg"), ("e4", "agg", "after")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "trigger"))
    [ghost] = [m for m in run.messages if m.current_node == "agg"]
    assert (ghost.ghost, ghost.from_node) == (True, "split")
    assert ghost.accumulated_context == {"$A": {"value": "A"}, "$SPLIT": {"_split_items": []}}
    assert run.outputs("SPLIT") == [{"_split_items": []}]
    assert run.completion.final_context == {
        "$A": {"value": "A"},
        "$SPLIT": {"_split_items": []},
        "$Collector": {"aggregated": [], "_aggregator_processed_count": 0},
        "$AFTER": {"value": []},
    }


@pytest.mark.parametrize(("max_steps", "fans_out"), [(6, True), (5, False)])
def test_a_split_may_fan_out_exactly_as_many_branches_as_the_step_limit(
    max_steps: int, fans_out: bool
) -> None:
    defn = definition([n("split", "split", input_array=[1, 2, 3]), n("b"), n("c")],
                      [("e1", "split", "b"), ("e2", "split", "c")])  # fmt: skip
    result = Executor(MemoryStore(), max_steps=max_steps).step(start(defn, "split"))
    assert len(result.messages) == (6 if fans_out else 0)
    assert [s.status for s in result.statuses][-1] == ("success" if fans_out else "failed")


def behind_a_branching_merge() -> bytes:
    """quick -> merge, pause (a minute) -> merge; the merge (timeout 0.2 s) branches along
    its error edge to `handler` when it fails, else goes on to `end`."""
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 60}}
    merge = n("m", "merge", timeout=0.2, error={"type": "branch", "error_edge": "e6"})
    nodes = [TRIGGER, pause, n("quick"), merge, n("end"), n("handler", value="$error.message")]
    edges = [("e1", "trigger", "pause"), ("e2", "trigger", "quick"), ("e3", "pause", "m"),
             ("e4", "quick", "m"), ("e5", "m", "end"), ("e6", "m", "handler")]  # fmt: skip
    return definition(nodes, edges)


def test_a_merge_that_branches_on_error_goes_on_after_its_timeout_and_absorbs_the_late() -> None:
    """The merge's timer fails it; its `branch` policy sends the branch along the error edge
    (the execution does not halt), so the late arrival that comes after is absorbed with its
    own status (`_merge_ignored`), not dropped as a branch of a halted execution."""
    store = MemoryStore()
    executor, run = Executor(store, clock=lambda: NOW_MS * 1_000_000), Run()
    opened = step(executor, start(behind_a_branching_merge(), "trigger"), run)
    drive(*opened.messages, executor=executor, run=run)  # the pause parks, the merge waits
    for timer in store.claim_due(NOW_MS + 300, 10, 60_000):  # the merge's, due at +200 ms
        store.ack_timer(timer.timer_id)
        fired = step(executor, decode_execution(timer.payload), run, resumed=True)
        assert [m.current_node for m in fired.messages] == ["handler"]
        drive(*fired.messages, executor=executor, run=run)
    assert run.trail.count(("M", "failed")) == 1
    assert run.completions == []  # the pause's branch is still live
    # the wait's timer is due a minute after now by the wall clock (the wait node's own)
    [resume] = store.claim_due(time.time_ns() // 1_000_000 + 61_000, 10, 60_000)
    store.ack_timer(resume.timer_id)
    resumed = step(executor, decode_execution(resume.payload), run, resumed=True)
    drive(*resumed.messages, executor=executor, run=run)
    assert run.outputs("M")[-1] == {"_merge_ignored": True}
    assert run.completion.status == "completed"
    assert "timed out" in run.completion.final_context["$HANDLER"]["value"]
    assert ("END", "success") not in run.trail


def test_a_waits_resume_message_carries_no_ghost_key() -> None:
    """The frozen message a wait parks is the arrival's resumed at the wait with its own
    token; a `ghost` key the arrival carried (false, from a peer) is not copied into it."""
    store = MemoryStore()
    executor = Executor(store)
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 60}}
    defn = definition([TRIGGER, pause, n("end")], [("e1", "trigger", "pause"),
                                                   ("e2", "pause", "end")])  # fmt: skip
    to_pause = at(executor, start(defn, "trigger")).messages[0]
    carried = msgspec.json.decode(encode(to_pause))
    carried["ghost"] = False
    waited = at(executor, decode_execution(msgspec.json.encode(carried)))
    assert waited.statuses[-1].status == "waiting"
    due = store.next_due()
    assert due is not None
    [timer] = store.claim_due(due, 10, 60_000)
    frozen = msgspec.json.decode(timer.payload)
    assert "ghost" not in frozen
    assert (frozen["current_node"], frozen["is_worker_initiated"]) == ("pause", True)


def test_a_merges_timer_fires_the_arrivals_context_on_either_path() -> None:
    """The timer a waiting arrival arms carries that arrival's context, whether the arrival
    hands it to the store (in one call) or schedules it by a call of its own (a store that
    cannot take it in the arrival: a Redis Cluster, `statecases.Unparked`); and the arrival
    that opens the merge cancels it on either path."""
    for store in (MemoryStore(), cast(StateStore, Unparked(MemoryStore()))):
        executor = Executor(store, clock=lambda: NOW_MS * 1_000_000)
        from_a, from_b = merge_arrivals(executor, fan_in(timeout=5))
        assert status_of(at(executor, from_a))[0] == "waiting"
        assert store.next_due() == NOW_MS + 5_000
        [timer] = store.claim_due(NOW_MS + 5_000, 10, 1)
        frozen = decode_execution(timer.payload)
        assert frozen.current_node == "m" and frozen.from_node == "a"
        assert msgspec.json.decode(encode(frozen.accumulated_context)) == {
            "$A": {"value": "A"}}  # fmt: skip
        store.release_expired(NOW_MS + 6_000)  # the lease ran out: it is due again
        released = at(executor, from_b)
        assert [m.current_node for m in released.messages] == ["c"]
        assert store.next_due() is None


def if_else_into_any(flag: bool) -> bytes:
    """check -> a (true) or b (false), both into a wait_for_any merge, then c."""
    check = n("check", "conditional", expression=flag, true_edge_id="t", false_edge_id="f")
    merge = n("m", "merge", wait_mode="wait_for_any")
    nodes = [check, n("a", value="A"), n("b", value="B"), merge, n("c", value="$M")]
    edges = [("t", "check", "a"), ("f", "check", "b"), ("e1", "a", "m"), ("e2", "b", "m"),
             ("e3", "m", "c")]  # fmt: skip
    return definition(nodes, edges)


def test_a_wait_for_any_merge_arms_no_timer_and_a_waiting_ghost_parks_nothing() -> None:
    """The dead parent's ghost reaches the merge first and waits: wait_for_any has no timer
    and parks no token for it, so the winner's arrival completes the execution."""
    store = MemoryStore()
    executor = Executor(store)
    to_a, ghost = at(executor, start(if_else_into_any(True), "check")).messages
    assert (ghost.current_node, ghost.ghost) == ("m", True)
    # the ghost carries the conditional's context, as the message of the edge it took does
    assert encode(ghost.accumulated_context) == encode(to_a.accumulated_context)
    waited = at(executor, ghost)
    assert status_of(waited)[0] == "waiting" and waited.completion is None
    assert store.next_due() is None
    [from_a] = at(executor, to_a).messages
    [to_c] = at(executor, from_a).messages
    done = at(executor, to_c)
    assert done.completion is not None and done.completion.status == "completed"


def test_two_dead_letters_replayed_at_a_wait_for_any_merge_release_it_once() -> None:
    """Both parents' arrivals dead-lettered, then replayed: the first with data wins, the
    second is told the merge is decided (its own token, not the winner's)."""
    executor = Executor(MemoryStore())
    defn = fan_in(wait_mode="wait_for_any")
    from_a, from_b = merge_arrivals(executor, defn)
    won = at(executor, from_a, replayed=True)
    assert [m.current_node for m in won.messages] == ["c"]
    assert status_of(won)[1]["_merge_winner"] == "a"
    late = at(executor, from_b, replayed=True)
    assert status_of(late) == ("success", {"_merge_ignored": True})
    assert (late.messages, late.completion) == ([], None)


def test_a_merge_without_incoming_edges_opens_on_its_one_arrival() -> None:
    """A merge nothing leads to (a message a peer addressed to it): one arrival is all it
    waits for."""
    merge = n("m", "merge")
    defn = definition([n("x"), merge, n("c")], [("e1", "m", "c")])
    arrival = msgspec.structs.replace(start(defn, "m", {"$k": 1}), from_node="x")
    run = drive(arrival)
    assert run.trail == [("M", "running"), ("M", "success"), ("C", "running"), ("C", "success")]
    assert run.outputs("M")[0]["_merge_sources"] == ["x"]
    assert run.completion.status == "completed"


def two_splits_in_a_row() -> bytes:
    """split1 -> agg1 -> split2 -> agg2: two barriers in the same scope of one execution."""
    nodes = [n("s1", "split", input_array=[1, 2]), n("g1", "aggregator"),
             n("s2", "split", input_array=["x", "y", "z"]),
             n("g2", "aggregator")]  # fmt: skip
    return definition(nodes, [("e1", "s1", "g1"), ("e2", "g1", "s2"), ("e3", "s2", "g2")])


def test_two_aggregators_of_one_execution_keep_their_own_barriers() -> None:
    run = drive(start(two_splits_in_a_row(), "s1"))
    assert run.outputs("G1")[-1] == {"aggregated": [1, 2], "_aggregator_processed_count": 2}
    assert run.outputs("G2")[-1] == {
        "aggregated": ["x", "y", "z"], "_aggregator_processed_count": 3}  # fmt: skip
    assert run.completion.status == "completed"


def test_an_aggregator_fed_by_a_go_workers_fan_out_holds_the_execution_open() -> None:
    """A Go worker fanned the split out: its branches carry no branch token and no
    `outer_keys`, and join the execution one at a time. The first waits at the aggregator
    with nothing else of the execution live: the barrier's hold keeps it open (no completion
    yet), and the last releases it and completes it once."""
    executor = Executor(MemoryStore())
    ours = at(executor, start(split_to_aggregator(["x", "y"]), "split", execution_id="ex-go"))
    fresh = Executor(MemoryStore())  # a store that never saw the split's step
    go = [msgspec.structs.replace(m, branch_token=msgspec.UNSET, outer_keys=msgspec.UNSET)
          for m in ours.messages]  # fmt: skip
    first = at(fresh, go[0])
    assert first.statuses[-1].aggregator_state == "waiting" and first.completion is None
    # the barrier's own hold token (split, scope) is what keeps the execution open
    assert fresh.store._executions["ex-go"].live == {aggregate_hold("split", "")}  # type: ignore[attr-defined]
    last = at(fresh, go[1])
    assert last.statuses[-1].output == {
        "aggregated": ["x", "y"], "_aggregator_processed_count": 2}  # fmt: skip
    assert last.completion is not None and last.completion.status == "completed"


@pytest.mark.parametrize("outer", [
    StackFrame("no-such-split", "b", 0, 1),  # names a split the workflow does not have
    StackFrame("trigger", "b", 0, 1),  # names a node that is no split: no items
    StackFrame("outer", "b", 1, 2),  # one past the items the outer split had
])  # fmt: skip
def test_an_aggregator_under_a_forged_outer_frame_releases_without_an_outer_item(
    outer: StackFrame,
) -> None:
    """The outer frame of a lineage (from a peer, or forged) that leads to no item of an
    outer split: the aggregator releases all the same, with no `$item` restored."""
    nodes = [TRIGGER, n("outer", "split", input_array=["only"]),
             n("split", "split", input_array=["x", "y"]), AGG]  # fmt: skip
    edges = [("e0", "trigger", "outer"), ("e1", "outer", "split"), ("e2", "split", "agg")]
    executor = Executor(MemoryStore())
    [to_outer] = at(executor, start(definition(nodes, edges), "trigger")).messages
    [to_split] = at(executor, to_outer).messages
    arrivals = at(executor, to_split).messages
    forged = [msgspec.structs.replace(m, lineage_stack=[outer, *(m.lineage_stack or [])[1:]],
                                      branch_token=msgspec.UNSET) for m in arrivals]  # fmt: skip
    fresh = Executor(MemoryStore())
    at(fresh, forged[0])
    released = at(fresh, forged[1])
    assert released.statuses[-1].output == {
        "aggregated": ["x", "y"], "_aggregator_processed_count": 2}  # fmt: skip
    assert released.completion is not None and released.completion.status == "completed"
    assert "$item" not in released.completion.final_context


def test_a_barriers_error_edge_into_another_barrier_sends_its_ghost_when_it_succeeds() -> None:
    """A merge that branches on error along an edge to `h`, and `h` and the merge's normal
    successor meet at a second merge: when the first merge opens, the error path is dead and
    its ghost must reach the second merge in the same step, or the second would wait for it
    (here: for its whole timeout)."""
    m1 = n("m1", "merge", error={"type": "branch", "error_edge": "err"})
    m2 = n("m2", "merge")
    nodes = [TRIGGER, n("a"), n("b"), m1, n("c", value="C"), n("h"), m2, n("end")]
    edges = [("e1", "trigger", "a"), ("e2", "trigger", "b"), ("e3", "a", "m1"),
             ("e4", "b", "m1"), ("e5", "m1", "c"), ("err", "m1", "h"), ("e6", "c", "m2"),
             ("e7", "h", "m2"), ("e8", "m2", "end")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "trigger"))
    ghosts = [m for m in run.messages if m.ghost is True]
    assert [(m.current_node, m.from_node) for m in ghosts] == [("m2", "h")]
    assert run.outputs("M2")[-1]["_merge_sources"] == ["c"]
    assert run.completion.status == "completed"


def test_a_ghost_carries_the_context_and_lineage_of_the_step_that_sent_it() -> None:
    """Ghosts travel the wire like any message (a peer may take them): with the sending
    step's context and lineage, here a split's whose error edge (not taken) leads to a merge
    inside an outer split."""
    s = n("split", "split", input_array=["x"], error={"type": "branch", "error_edge": "err"})
    m = n("m", "merge")
    nodes = [n("outer", "split", input_array=["o"]), s, AGG, n("h"), n("z"), m]
    edges = [("e1", "outer", "split"), ("e2", "split", "agg"), ("err", "split", "h"),
             ("e3", "h", "m"), ("e4", "outer", "z"), ("e5", "z", "m")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "outer"))
    [ghost] = [m for m in run.messages if m.ghost is True]
    assert (ghost.current_node, ghost.from_node) == ("m", "h")
    [sent] = [m for m in run.messages if m.current_node == "split"]
    assert ghost.lineage_stack == sent.lineage_stack and ghost.lineage_stack
    assert msgspec.json.decode(encode(ghost.accumulated_context)) == {
        **msgspec.json.decode(encode(sent.accumulated_context)),
        "$SPLIT": {"_split_items": ["x"]},
    }
    assert run.completion.status == "completed"


def test_a_resumed_wait_whose_frozen_output_is_no_object_reports_none() -> None:
    """The frozen `$<name>` of a resume message (a peer's, or tampered with) that is no object:
    the wait succeeds with an empty output, which its status leaves out (as Go's `omitempty`
    does), and routing goes on."""
    store = MemoryStore()
    executor = Executor(store)
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 60}}
    defn = definition([pause, n("end")], [("e1", "pause", "end")])
    at(executor, start(defn, "pause"))
    due = store.next_due()
    assert due is not None
    [timer] = store.claim_due(due, 10, 60_000)
    frozen = msgspec.json.decode(timer.payload)
    frozen["accumulated_context"]["$Pause"] = [1, 2]
    resumed = at(executor, decode_execution(msgspec.json.encode(frozen)), resumed=True)
    assert status_of(resumed) == ("success", msgspec.UNSET)
    assert [m.current_node for m in resumed.messages] == ["end"]


def test_a_barrier_inside_a_split_sends_its_dead_error_paths_ghost_to_the_aggregator() -> None:
    """Inside a split, a merge branches on error along an edge to `h`, which leads to the
    split's aggregator, while its normal successor `c` does not. When the merge opens, the
    error path is dead and owes the aggregator the item (a ghost from `h`), in the same step
    that advances the merge's token; without it the aggregator would wait for ever."""
    m = n("m", "merge", error={"type": "branch", "error_edge": "err"})
    nodes = [n("split", "split", input_array=["x", "y"]), n("a"), n("b"), m, n("c"), n("h"),
             AGG]  # fmt: skip
    edges = [("e1", "split", "a"), ("e2", "split", "b"), ("e3", "a", "m"), ("e4", "b", "m"),
             ("e5", "m", "c"), ("err", "m", "h"), ("e6", "h", "agg")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "split"))
    ghosts = [(m.current_node, m.from_node) for m in run.messages if m.ghost is True]
    assert ghosts == [("agg", "h"), ("agg", "h")]
    assert run.outputs("Collector")[-1] == {"aggregated": [], "_aggregator_processed_count": 2}
    assert run.completion.status == "completed"


def test_an_inner_aggregators_dead_error_path_owes_the_outer_aggregator_its_item() -> None:
    """The same one level up: the inner split's aggregator branches on error to `h`, which
    leads to the outer split's aggregator; its normal successor `c` does not. Released, the
    inner aggregator sends the outer one a ghost for the outer item."""
    inner_agg = n("ia", "aggregator", error={"type": "branch", "error_edge": "err"})
    outer_agg = n("oa", "aggregator")
    nodes = [n("outer", "split", input_array=[1, 2]), n("inner", "split", input_array=["x"]),
             inner_agg, n("c"), n("h"), outer_agg]  # fmt: skip
    edges = [("e1", "outer", "inner"), ("e2", "inner", "ia"), ("e3", "ia", "c"),
             ("err", "ia", "h"), ("e4", "h", "oa")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "outer"))
    ghosts = [(m.current_node, m.from_node) for m in run.messages if m.ghost is True]
    assert ghosts == [("oa", "h"), ("oa", "h")]
    assert run.outputs("OA")[-1] == {"aggregated": [], "_aggregator_processed_count": 2}
    assert run.completion.status == "completed"


def test_an_empty_split_with_branches_but_no_aggregator_reports_its_items_and_ends() -> None:
    defn = definition([n("split", "split", input_array=[]), n("b")], [("e1", "split", "b")])
    run = drive(start(defn, "split", {"$x": 1}))
    assert run.outputs("SPLIT") == [{"_split_items": []}]
    assert run.completion.final_context == {"$x": 1, "$SPLIT": {"_split_items": []}}


def test_a_dead_merge_at_the_end_leaves_the_final_context_to_the_live_branch() -> None:
    """Every parent of the last merge is dead (the conditional took the other edge): the
    merge is dead, its branch ends without a leaf, and the final context is the live
    branch's."""
    check = n("check", "conditional", expression=True, true_edge_id="t", false_edge_id="f")
    m = n("m", "merge")
    nodes = [check, n("x", value="X"), n("y"), n("p"), n("q"), m]
    edges = [("t", "check", "x"), ("f", "check", "y"), ("e1", "y", "p"), ("e2", "y", "q"),
             ("e3", "p", "m"), ("e4", "q", "m")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "check", {"$in": 1}))
    assert run.outputs("M") == [{"_merge_skipped": True, "_merge_arrived": 2,
                                 "_merge_expected": 2}]  # fmt: skip
    final = msgspec.json.decode(encode(run.completion.final_context))
    assert final["$in"] == 1 and final["$X"] == {"value": "X"}


def test_an_empty_inner_split_leaves_no_leaf_of_its_own() -> None:
    """An inner split with no items sends its aggregator a ghost and its own branch ends
    there: were it also a leaf, its context (the outer `$item`, the inner split's output, both
    dropped by the outer aggregator) would come back into the final context."""
    inner_agg = n("ia", "aggregator")
    outer_agg = n("oa", "aggregator")
    nodes = [n("outer", "split", input_array=["o"]), n("inner", "split", input_array=[]),
             inner_agg, outer_agg]  # fmt: skip
    edges = [("e1", "outer", "inner"), ("e2", "inner", "ia"), ("e3", "ia", "oa")]
    run = drive(start(definition(nodes, edges), "outer", {"$in": 1}))
    assert run.completion.status == "completed"
    final = msgspec.json.decode(encode(run.completion.final_context))
    assert final == {
        "$in": 1,
        "$OUTER": {"_split_items": ["o"]},
        "$OA": {
            "aggregated": [{"aggregated": [], "_aggregator_processed_count": 0}],
            "_aggregator_processed_count": 1,
        },
    }


def test_halts_unless_the_policy_ignores_or_branches_along_an_edge_the_workflow_has() -> None:
    """Whether an error of a node halts its execution (`flow.halts`), as `on_error` decides."""
    policies = {
        "halt": ({"type": "halt"}, True),
        "default": (None, True),
        "ignore": ({"type": "ignore"}, False),
        "branch": ({"type": "branch", "error_edge": "err"}, False),
        "branch-nowhere": ({"type": "branch", "error_edge": "nope"}, True),
    }
    nodes = [n(k, error=p) if p else n(k) for k, (p, _) in policies.items()] + [n("h")]
    edges = [("err", "branch", "h")]
    executor = Executor(MemoryStore())
    wf = executor.plan(start(definition(nodes, edges), "halt")).workflow
    assert wf is not None
    assert {k: flow.halts(wf.by_id[k], wf) for k in policies} == {
        k: halts for k, (_, halts) in policies.items()}  # fmt: skip


def _with_a_dead_merge(dead_merge: bool) -> bytes:
    """Inside a split, a conditional (true for every item) leads to `a` and the aggregator;
    with `dead_merge`, its false edge and a second edge lead to a merge that is then dead."""
    cond = n("check", "conditional", expression="{{$item.ok}}", true_edge_id="t",
             false_edge_id="f")  # fmt: skip
    nodes = [n("split", "split", input_array=[{"ok": True}, {"ok": True}]), cond,
             n("a", value="$item"), AGG]  # fmt: skip
    edges = [("e1", "split", "check"), ("t", "check", "a"), ("e2", "a", "agg")]
    if dead_merge:
        nodes += [n("b"), n("c"), n("m", "merge")]
        edges += [("f", "check", "b"), ("e3", "b", "m"), ("e4", "check", "c"),
                  ("e5", "c", "m")]  # fmt: skip
    return definition(nodes, edges)


def test_a_dead_merge_adds_nothing_to_the_final_context() -> None:
    """A merge whose every parent is dead ends its branch without a leaf: inside a split its
    ghosts carry one item's context (`$item`, the conditional's output), which the aggregator
    drops from the live branches and which must not come back through the dead merge."""
    without = drive(start(_with_a_dead_merge(False), "split")).completion
    run = drive(start(_with_a_dead_merge(True), "split"))
    assert run.outputs("M", "success") == [{"_merge_skipped": True, "_merge_arrived": 2,
                                            "_merge_expected": 2}] * 2  # fmt: skip
    assert run.completion.status == without.status == "completed"
    final = msgspec.json.decode(encode(run.completion.final_context))
    assert final == msgspec.json.decode(encode(without.final_context))
    assert "$item" not in final and "$CHECK" not in final


def test_a_dead_merge_passes_its_ghosts_context_on() -> None:
    """The paths after a dead merge are dead too: the ghost it sends on to the next merge
    carries the context its own ghosts carried."""
    cond = n("check", "conditional", expression="true", true_edge_id="t", false_edge_id="f")
    m1 = n("m1", "merge")
    m2 = n("m2", "merge")
    nodes = [cond, n("x"), n("y"), n("p"), n("q"), m1, n("after1"), m2, n("end")]
    edges = [("t", "check", "x"), ("f", "check", "y"), ("e1", "y", "p"), ("e2", "y", "q"),
             ("e3", "p", "m1"), ("e4", "q", "m1"), ("e5", "m1", "after1"), ("e6", "after1", "m2"),
             ("e7", "x", "m2"), ("e8", "m2", "end")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "check", {"$in": 1}))
    into_m1 = [m for m in run.messages if m.current_node == "m1"]
    [onwards] = [m for m in run.messages if m.current_node == "m2" and m.ghost is True]
    assert onwards.from_node == "after1"
    assert encode(onwards.accumulated_context) == encode(into_m1[-1].accumulated_context)
    assert run.completion.status == "completed"


def test_only_a_merges_own_timer_decides_it() -> None:
    """A message on the resume queue at a merge that carries another token than the merge
    timer's (no branch token: a peer's copy, or one put there by hand; Go's merges arm no
    timer) decides nothing: the waiting barrier is not expired by it and still opens when the
    other parent arrives; at a barrier never begun it reports nothing lost."""
    store = MemoryStore()
    executor = Executor(store, clock=lambda: NOW_MS * 1_000_000)
    from_a, from_b = merge_arrivals(executor, fan_in(timeout=5))
    assert status_of(at(executor, from_a))[0] == "waiting"
    [timer] = store.claim_due(NOW_MS + 5_000, 10, 60_000)
    foreign = msgspec.structs.replace(decode_execution(timer.payload), branch_token=msgspec.UNSET)
    ignored = at(executor, foreign, resumed=True)
    assert (ignored.statuses, ignored.messages, ignored.completion) == ([], [], None)
    released = at(executor, from_b)
    assert [m.current_node for m in released.messages] == ["c"]
    elsewhere = msgspec.structs.replace(foreign, execution_id="ex-never-begun")
    quiet = at(Executor(MemoryStore()), elsewhere, resumed=True)
    assert quiet.statuses == [] and quiet.dead_letter == ""
