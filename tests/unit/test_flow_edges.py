"""The flow-control nodes at their edges (runeworker/engine/flow.py): dead letters replayed at a
barrier (`runeworker dlq replay`: the arrival is recorded by the step's own calls, not inside
the ledger's), a barrier's limits at their exact boundary, what a late arrival and a split
without branches publish, the merge timer's due time, and the frozen message of a wait."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from flowkit import TRIGGER, Run, definition, drive, n, start, step

from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, StackFrame, decode_execution, encode
from runeworker.engine.outbox import Outbox
from runeworker.engine.state import MemoryStore

NOW_MS = 1_700_000_000_000
AGG = {"id": "agg", "name": "Collector", "type": "aggregator"}


def wire(msg: NodeExecutionMessage) -> NodeExecutionMessage:
    return decode_execution(encode(msg))  # exactly what a worker decodes


def at(executor: Executor, msg: NodeExecutionMessage, **how: Any) -> Outbox:
    """One step of `msg` as a worker takes it (`how`: `replayed`, `resumed`)."""
    return executor.step(wire(msg), None, how.pop("resumed", False), **how)


def fan_in(**merge_params: Any) -> bytes:
    """trigger -> a, b -> merge M -> c."""
    merge = {"id": "m", "name": "M", "type": "merge", "parameters": merge_params}
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
    merge = {"id": "m", "name": "M", "type": "merge", "parameters": {"timeout": 0.2},
             "error": {"type": "branch", "error_edge": "e6"}}  # fmt: skip
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
