"""Deterministic joins: the context after an aggregator or a merge is the same whatever order
the branches arrive in, and what a split branch sets for itself (`$item`, its nodes' outputs,
its `$json` and `$error`) stays in the branch (docs/WIRE.md section 8; runeworker/engine/flow.py
`_outer_context` and `_merged`). Each workflow is driven in many arrival orders (fifo, lifo and
seeded random picks of the pending messages) and every order must give the same contexts."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from flowkit import TRIGGER, Pick, Run, definition, drive, fifo, lifo, n, start

from runeworker.engine.messages import NodeExecutionMessage
from runeworker.engine.registry import NodeContext, node
from runeworker.errors import NodeError


@node("join.json")
def _json(ctx: NodeContext) -> dict[str, Any]:
    """Sets `$json` for the rest of its branch: `{"$json": <value>}`."""
    return {"$json": ctx.params.get("value")}


@node("join.fail_on")
def _fail_on(ctx: NodeContext) -> dict[str, Any]:
    """Fails when `value` equals `bad`."""
    if ctx.params.get("value") == ctx.params.get("bad"):
        raise NodeError(f"refused {ctx.params.get('value')}")
    return {"value": ctx.params.get("value")}


def seeded(seed: int) -> Pick:
    rng = random.Random(seed)

    def pick(queue: deque[NodeExecutionMessage]) -> NodeExecutionMessage:
        chosen = queue[rng.randrange(len(queue))]
        queue.remove(chosen)
        return chosen

    return pick


ORDERS: list[Pick] = [fifo, lifo, *(seeded(s) for s in range(12))]


def contexts_after(run: Run, node_id: str) -> list[dict[str, Any]]:
    return [dict(m.accumulated_context or {}) for m in run.messages if m.current_node == node_id]


BRANCH = {"type": "branch", "error_edge": "to_handler"}


def split_with_branch_local_keys() -> bytes:
    """prep sets `$json`; the split's items each set `$json` of their own, and item 2 fails
    into an error branch (`$error` in its context) before reaching the aggregator."""
    nodes = [
        TRIGGER,
        n("prep", "join.json", value={"stage": "before"}),
        n("split", "split", input_array=[1, 2, 3]),
        n("tag", "join.json", value="$item"),
        n("risky", "join.fail_on", value="$item", bad=2, error=BRANCH),
        n("handler", value="$error.message"),
        {"id": "agg", "name": "Collector", "type": "aggregator"},
        n("after", value="$json"),
    ]
    edges = [
        ("e0", "trigger", "prep"),
        ("e1", "prep", "split"),
        ("e2", "split", "tag"),
        ("e3", "tag", "risky"),
        ("e4", "risky", "agg"),
        ("to_handler", "risky", "handler"),
        ("e5", "handler", "agg"),
        ("e6", "agg", "after"),
    ]
    return definition(nodes, edges)


def test_the_context_after_an_aggregator_does_not_depend_on_arrival_order() -> None:
    defn = split_with_branch_local_keys()
    runs = [drive(start(defn, "trigger"), pick=pick) for pick in ORDERS]
    afters = [contexts_after(run, "after") for run in runs]
    finals = [run.completion.final_context for run in runs]
    # the orders really differ: the aggregator was released by different items
    releasing = {
        s.item_index for run in runs for s in run.statuses
        if s.node_name == "Collector" and s.aggregator_state == "released"
    }  # fmt: skip
    assert releasing == {0, 1, 2}
    assert all(a == afters[0] for a in afters), afters
    assert all(f == finals[0] for f in finals)
    [after] = afters[0]
    # `$json` is prep's again; no `$item`, no `$error`, no output of a node inside the split
    assert after["$json"] == {"stage": "before"}
    assert set(after) == {"$PREP", "$SPLIT", "$json", "$Collector"}
    assert after["$Collector"]["aggregated"] == [{"value": 1}, {"value": "refused 2"},
                                                 {"value": 3}]  # fmt: skip
    assert "$error" not in finals[0] and "$item" not in finals[0]
    assert finals[0]["$AFTER"] == {"value": {"stage": "before"}}


def test_a_split_over_a_context_without_json_drops_the_branches_json() -> None:
    nodes = [n("split", "split", input_array=["a", "b"]), n("tag", "join.json", value="$item"),
             {"id": "agg", "name": "Collector", "type": "aggregator"}]  # fmt: skip
    defn = definition(nodes, [("e1", "split", "tag"), ("e2", "tag", "agg")])
    for pick in (fifo, lifo):
        final = drive(start(defn, "split"), pick=pick).completion.final_context
        assert "$json" not in final and "$item" not in final and "$TAG" not in final


def test_nested_splits_restore_each_level() -> None:
    """The inner aggregator gives back the outer branch's `$json` (and `$item`); the outer one
    gives back the workflow's."""
    nodes = [
        n("prep", "join.json", value="top"),
        n("outer", "split", input_array=[[1, 2], [3]]),
        n("mid", "join.json", value="$item"),
        n("inner", "split", input_array="$item"),
        n("leaf", "join.json", value="$item"),
        {"id": "agg_in", "name": "Inner", "type": "aggregator"},
        n("check", value="$json"),
        {"id": "agg_out", "name": "Outer", "type": "aggregator"},
    ]
    edges = [("e0", "prep", "outer"), ("e1", "outer", "mid"), ("e2", "mid", "inner"),
             ("e3", "inner", "leaf"), ("e4", "leaf", "agg_in"), ("e5", "agg_in", "check"),
             ("e6", "check", "agg_out")]  # fmt: skip
    defn = definition(nodes, edges)
    runs = [drive(start(defn, "prep"), pick=pick) for pick in ORDERS]
    for run in runs:
        checks = sorted((s.output or {}).get("value", []) for s in run.statuses
                        if s.node_name == "CHECK" and s.status == "success")  # fmt: skip
        assert checks == [[1, 2], [3]]  # the outer branch's own `$json`, not a leaf's
        final = run.completion.final_context
        assert final == runs[0].completion.final_context
        assert final["$json"] == "top" and "$item" not in final


def test_the_context_after_a_merge_does_not_depend_on_arrival_order() -> None:
    """Parents' contexts are merged in the order of the merge's incoming edges, whichever
    parent arrives last: the `$json` of the last edge's parent wins."""
    nodes = [
        TRIGGER,
        n("a", "join.json", value="from a"),
        n("b", "join.json", value="from b"),
        n("c", value="c"),
        {"id": "merge", "name": "Merge", "type": "merge",
         "parameters": {"wait_mode": "wait_for_all", "timeout": 60}},
        n("after", value="$json"),
    ]  # fmt: skip
    edges = [("t1", "trigger", "a"), ("t2", "trigger", "b"), ("t3", "trigger", "c"),
             ("m1", "b", "merge"), ("m2", "c", "merge"), ("m3", "a", "merge"),
             ("e9", "merge", "after")]  # fmt: skip
    defn = definition(nodes, edges)
    runs = [drive(start(defn, "trigger"), pick=pick) for pick in ORDERS]
    afters = [contexts_after(run, "after") for run in runs]
    assert all(a == afters[0] for a in afters)
    [after] = afters[0]
    assert after["$json"] == "from a"  # m3, the last incoming edge, is a's
    assert after["$Merge"]["_merge_sources"] == ["b", "c", "a"]
    assert all(r.completion.final_context == runs[0].completion.final_context for r in runs)
