"""split and aggregator through the executor (upstream: services/rune-worker/pkg/nodes/custom/
split/, aggregator/, the fan-out of pkg/executor/node_handlers.go; docs/WIRE.md sections 3.3, 8):
fan-out, lineage, barriers, ghosts, nesting, redelivery."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from flowkit import TRIGGER, Pick, Run, definition, drive, fifo, lifo, n, start, step

from runeworker.engine.executor import Executor
from runeworker.engine.messages import StackFrame, encode
from runeworker.engine.state import MemoryStore, Verdict

AGG = {"id": "agg", "name": "Collector", "type": "aggregator"}


def split(items: Any, node_id: str = "split") -> dict[str, Any]:
    return n(node_id, "split", input_array=items)


def frame(i: int, total: int, split_id: str = "split", ex: str = "ex-1") -> StackFrame:
    return StackFrame(split_id, f"{ex}_{split_id}_{i}", i, total)


def test_fan_out_is_item_major_with_item_and_frame() -> None:
    """As upstream's TestExecutorHandleSplitFanOutPublishesPerItemAndNode: 2 items x 2
    successors = 4 messages; the input context is not mutated."""
    defn = definition(
        [split(["x", "y"]), n("b"), n("c")], [("e1", "split", "b"), ("e2", "split", "c")]
    )
    msg = start(defn, "split", {"$seed": 1})
    running: list[str] = []
    result = Executor(MemoryStore()).step(msg, lambda st, _blocking: running.append(st.status))
    assert msg.accumulated_context == {"$seed": 1}
    assert running == ["running"]
    assert [s.status for s in result.statuses] == ["success"]
    assert result.statuses[0].output == {"_split_items": ["x", "y"]}
    got = [
        (m.current_node, m.accumulated_context, m.lineage_stack, m.from_node)
        for m in result.messages
    ]
    base = {"$seed": 1, "$SPLIT": {"_split_items": ["x", "y"]}}
    assert got == [
        ("b", {**base, "$item": "x"}, [frame(0, 2)], "split"),
        ("c", {**base, "$item": "x"}, [frame(0, 2)], "split"),
        ("b", {**base, "$item": "y"}, [frame(1, 2)], "split"),
        ("c", {**base, "$item": "y"}, [frame(1, 2)], "split"),
    ]
    assert len({m.branch_token for m in result.messages}) == 4
    assert result.completion is None


def test_literal_list_to_aggregator() -> None:
    """As upstream's integration/split_aggregate_test.go: one completion; the aggregator reports
    waiting, waiting, released."""
    defn = definition([TRIGGER, split(["item1", "item2", "item3"]), AGG],
                      [("e1", "trigger", "split"), ("e2", "split", "agg")])  # fmt: skip
    run = drive(start(defn, "trigger"))
    aggs = [s for s in run.statuses if s.node_name == "Collector" and s.status == "success"]
    assert [(s.aggregator_state, s.processed_count) for s in aggs] == [
        ("waiting", 1), ("waiting", 2), ("released", 3)]  # fmt: skip
    assert [s.output for s in aggs[:2]] == [
        {"_barrier_closed": True, "_aggregator_processed_count": 1},
        {"_barrier_closed": True, "_aggregator_processed_count": 2},
    ]
    released = {"aggregated": ["item1", "item2", "item3"], "_aggregator_processed_count": 3}
    assert aggs[2].output == released
    assert run.completion.status == "completed"
    assert run.completion.final_context == {
        "$SPLIT": {"_split_items": ["item1", "item2", "item3"]},
        "$Collector": released,
    }


def test_results_are_node_outputs_in_item_order_and_lineage_pops() -> None:
    """The shape of upstream's integration/http_split_aggregate_test.go: split -> per-item node
    -> aggregator -> next; the aggregated entries are the per-item node's outputs as objects,
    in item order whatever the arrival order."""
    nodes = [
        split([{"id": 1}, {"id": 2}, {"id": 3}]),
        n("fetch", value="$item.id"),
        AGG,
        n("after", value="$Collector.aggregated"),
    ]
    edges = [("e1", "split", "fetch"), ("e2", "fetch", "agg"), ("e3", "agg", "after")]
    run = drive(start(definition(nodes, edges), "split"), pick=lifo)
    released = {"aggregated": [{"value": 1}, {"value": 2}, {"value": 3}],
                "_aggregator_processed_count": 3}  # fmt: skip
    assert run.outputs("Collector")[-1] == released
    [after] = [m for m in run.messages if m.current_node == "after"]
    assert after.lineage_stack is msgspec.UNSET and after.from_node == "agg"
    # the per-item outputs and $item stay inside the split: the continuation is item-free
    items = {"_split_items": [{"id": 1}, {"id": 2}, {"id": 3}]}
    assert after.accumulated_context == {"$SPLIT": items, "$Collector": released}
    assert run.outputs("AFTER") == [{"value": released["aggregated"]}]
    assert run.completion.status == "completed"


def test_empty_split_releases_an_empty_aggregate() -> None:
    """An empty list skips the branches and goes to the aggregator (section 6.1 of upstream's
    services/rune-worker/rfcs/RFC-004-split-aggregate.md; the Go worker completes instead)."""
    nodes = [split([]), n("inner"), AGG, n("after", value="$Collector._aggregator_processed_count")]
    edges = [("e1", "split", "inner"), ("e2", "inner", "agg"), ("e3", "agg", "after")]
    run = drive(start(definition(nodes, edges), "split", {"$x": 1}))
    assert run.trail == [(name, st) for name in ("SPLIT", "Collector", "AFTER")
                         for st in ("running", "success")]  # fmt: skip
    [ghost] = [m for m in run.messages if m.current_node == "agg"]
    assert (ghost.ghost, ghost.lineage_stack) == (True, [frame(0, 0)])
    agg = next(s for s in run.statuses if s.node_name == "Collector" and s.status == "success")
    assert (agg.aggregator_state, agg.processed_count, agg.total_items) == ("released", 0, 0)
    assert agg.output == {"aggregated": [], "_aggregator_processed_count": 0}
    assert run.completion.final_context["$AFTER"] == {"value": 0}


def test_empty_split_without_aggregator_completes() -> None:
    """As upstream's TestExecutorExecuteSplitWithEmptyItemsCompletes: no execution message, one
    completion keeping the context."""
    run = drive(start(definition([split([]), n("b")], [("e1", "split", "b")]), "split", {"$x": 1}))
    assert run.messages == []
    assert run.completion.status == "completed"
    assert run.completion.final_context == {"$x": 1, "$SPLIT": {"_split_items": []}}


def test_nested_splits_aggregate_per_level() -> None:
    nodes = [split([[1, 2], [3]], "outer"), split("$item", "inner"), n("each", value="$item"),
             {"id": "ia", "name": "InnerAgg", "type": "aggregator"}, n("check", value="$item"),
             {"id": "oa", "name": "OuterAgg", "type": "aggregator"}]  # fmt: skip
    edges = [("e1", "outer", "inner"), ("e2", "inner", "each"), ("e3", "each", "ia"),
             ("e4", "ia", "check"), ("e5", "check", "oa")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "outer"), pick=lifo)
    # after the inner aggregator, $item is the outer item again and one frame is left
    checks = [m for m in run.messages if m.current_node == "check"]
    seen = sorted((m.lineage_stack[0].item_index, m.accumulated_context["$item"]) for m in checks)
    assert seen == [(0, [1, 2]), (1, [3])]
    assert all(len(m.lineage_stack) == 1 for m in checks)
    assert run.outputs("OuterAgg")[-1] == {"aggregated": [{"value": [1, 2]}, {"value": [3]}],
                                           "_aggregator_processed_count": 2}  # fmt: skip
    inner = [o["aggregated"] for o in run.outputs("InnerAgg") if "aggregated" in o]
    inner.sort(key=lambda results: results[0]["value"])
    assert inner == [[{"value": 1}, {"value": 2}], [{"value": 3}]]
    assert run.completion.status == "completed"


def _conditional_split(false_edge: str = "") -> bytes:
    cond = n("keep", "conditional", expression="$item.v > 3", true_edge_id="t",
             false_edge_id=false_edge)  # fmt: skip
    nodes = [split([{"v": 1}, {"v": 5}, {"v": 10}]), cond, n("x", value="$item.v"), AGG]
    edges = [("e1", "split", "keep"), ("t", "keep", "x"), ("e2", "x", "agg")]
    return definition(nodes, edges)


@pytest.mark.parametrize("pick", [fifo, lifo])
def test_dead_end_inside_split_sends_a_ghost(pick: Pick) -> None:
    """The item the conditional drops still reaches the aggregator (as a ghost, section 5.3 of
    services/rune-worker/rfcs/RFC-004-split-aggregate.md; Go waits forever)."""
    run = drive(start(_conditional_split(), "split"), pick=pick)
    ghosts = [m for m in run.messages if m.ghost is True]
    assert [(m.current_node, m.from_node, m.lineage_stack) for m in ghosts] == [
        ("agg", "x", [frame(0, 3)])]  # fmt: skip
    assert run.outputs("Collector")[-1] == {"aggregated": [{"value": 5}, {"value": 10}],
                                            "_aggregator_processed_count": 3}  # fmt: skip
    assert run.completion.status == "completed"
    assert run.trail.count(("X", "success")) == 2


def test_conditional_failing_under_ignore_ends_early_with_a_ghost() -> None:
    """Item 1 has no `ok`: the conditional fails, `ignore` takes its false edge, which is not
    wired: the branch ends early and the aggregator still hears from item 1."""
    cond = n("check", "conditional", expression="$item.ok == true", true_edge_id="t",
             error={"type": "ignore"})  # fmt: skip
    nodes = [split([{"ok": True}, {}, {"ok": True}]), cond, n("x", value="$item"), AGG]
    defn = definition(nodes, [("e1", "split", "check"), ("t", "check", "x"), ("e2", "x", "agg")])
    run = drive(start(defn, "split"))
    assert run.trail.count(("CHECK", "failed")) == 1
    assert [m.lineage_stack[0].item_index for m in run.messages if m.ghost is True] == [1]
    assert run.outputs("Collector")[-1]["aggregated"] == [{"value": {"ok": True}}] * 2
    assert run.completion.status == "completed"


def test_failing_item_with_ignore_and_a_successor_delivers_its_item() -> None:
    nodes = [split([1, 2]), n("risky", "flow.fail", value="$item", error={"type": "ignore"}), AGG]
    run = drive(
        start(definition(nodes, [("e1", "split", "risky"), ("e2", "risky", "agg")]), "split")
    )
    assert run.trail.count(("RISKY", "failed")) == 2
    assert run.outputs("Collector")[-1]["aggregated"] == [1, 2]
    assert run.completion.status == "completed"


def test_redelivered_aggregator_arrival_counts_once() -> None:
    executor, run = Executor(MemoryStore()), Run()
    defn = definition([split(["a", "b"]), AGG], [("e1", "split", "agg")])
    first, second = step(executor, start(defn, "split"), run).messages
    assert step(executor, first, run).report.verdict is Verdict.RUN
    again = step(executor, first, run)  # redelivered after a lost broker commit
    assert again.report.verdict is Verdict.REPLAY
    waiting = [s.processed_count for s in run.statuses if s.aggregator_state == "waiting"]
    assert waiting == [1, 1]
    done = step(executor, second, run)
    assert done.completion is not None
    assert run.outputs("Collector")[-1] == {
        "aggregated": ["a", "b"],
        "_aggregator_processed_count": 2,
    }
    replay = step(executor, second, run)  # the releasing arrival redelivered: same outcome
    assert replay.report.verdict is Verdict.REPLAY and replay.completion is not None
    assert (replay.completion.status, replay.completion.final_context) == (
        "completed", done.completion.final_context)  # fmt: skip
    assert run.outputs("Collector")[-2:] == [run.outputs("Collector")[-1]] * 2


def test_aggregator_outside_a_split_fails() -> None:
    run = drive(start(definition([AGG]), "agg", {"$x": 1}))
    assert run.trail == [("Collector", "running"), ("Collector", "failed")]
    error = run.statuses[1].error
    assert error is not msgspec.UNSET and error.message == (
        "aggregator node Collector must be executed within a split context "
        "(the message has no lineage_stack)"
    )
    assert run.completion.status == "halted"


@pytest.mark.parametrize(("items", "error"), [
    (None, "missing required parameter: input_array"),
    ("$x", "input_array must be an array/slice, got number"),
    ({"a": 1}, "input_array must be an array/slice, got object"),
])  # fmt: skip
def test_split_input_errors(items: Any, error: str) -> None:
    run = drive(start(definition([n("split", "split", input_array=items)]), "split", {"$x": 7}))
    assert run.trail == [("SPLIT", "running"), ("SPLIT", "failed")]
    status = msgspec.json.decode(encode(run.statuses[1]))
    assert status["error"]["message"] == error
    assert run.completion.status == "halted"


@pytest.mark.parametrize(("items", "fails"), [(3, False), (4, True)])
def test_a_fan_out_beyond_the_step_limit_fails_the_split_before_publishing(
    items: int, fails: bool
) -> None:
    """Every branch message carries the whole item list, so a split of thousands of items
    would publish a quadratic number of bytes in one step, for branches that the step limit
    would stop anyway. 3 or 4 items x 2 successors against `max_steps` 7: 6 branches fan out,
    8 fail the split (its error policy, halt by default, applies)."""
    defn = definition(
        [split(list(range(items))), n("b"), n("c")], [("e1", "split", "b"), ("e2", "split", "c")]
    )
    result = Executor(MemoryStore(), max_steps=7).step(start(defn, "split"), lambda *_: None)
    if not fails:
        assert len(result.messages) == 2 * items and result.completion is None
        return
    assert result.messages == []
    assert [s.status for s in result.statuses] == ["failed"]
    error = result.statuses[0].error
    assert error is not msgspec.UNSET and "fan out 8 branches" in error.message
    assert "worker.max_steps" in error.message
    assert result.completion is not None and result.completion.status == "halted"
