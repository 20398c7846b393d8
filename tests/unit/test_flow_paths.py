"""Graph walks of runeworker.engine.paths: a split's aggregator, its scope, merge parents and
dead-path elimination, on small graphs whose answers can be checked by hand."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from flowkit import definition, drive, lifo, n, start

from runeworker.engine import paths
from runeworker.engine.messages import StackFrame
from runeworker.engine.paths import (
    aggregator_of,
    dead_paths,
    merge_parents,
    scope_of,
    split_scope,
)
from runeworker.engine.workflow import Edge, Workflow, parse_definition


def graph(types: dict[str, str], edges: list[str]) -> Workflow:
    """Nodes typed by `types` (default flow.echo); edges "a>b" get ids "a>b"."""
    ids = dict.fromkeys(x for e in edges for x in e.split(">"))
    nodes = [n(i, types.get(i, "flow.echo")) for i in ids]
    return parse_definition(definition(nodes, [(e, *e.split(">")) for e in edges]))


def edges_of(wf: Workflow, *ids: str) -> list[Edge]:
    return [wf.edge_by_id[i] for i in ids]


def nested() -> Workflow:
    """Two nested split/aggregator pairs. Built afresh for each test: a parsed workflow keeps
    its walks (`Workflow.walks`), and a module-level one would answer from what an earlier
    test (or a run before a mutant's) walked."""
    return graph(
        {"s1": "split", "s2": "split", "a2": "aggregator", "a1": "aggregator"},
        ["s1>x", "x>s2", "s2>y", "y>a2", "a2>z", "z>a1", "a1>end"],
    )


def test_aggregator_of_skips_nested_pairs() -> None:
    wf = nested()
    assert aggregator_of(wf, "s1") == "a1"
    assert aggregator_of(wf, "s2") == "a2"
    assert aggregator_of(graph({"s": "split"}, ["s>x", "x>y"]), "s") is None
    assert aggregator_of(wf, "missing") is None


def test_split_scope() -> None:
    wf = nested()
    assert split_scope(wf, "s1", "a1") == {"x", "s2", "y", "a2", "z"}
    assert split_scope(wf, "s2", "a2") == {"y"}


def test_merge_parents_in_edge_order_without_duplicates() -> None:
    wf = graph({"m": "merge"}, ["c>m", "a>m", "c>x", "x>m"])
    assert merge_parents(wf, "m") == ["c", "a", "x"]


def test_scope_of() -> None:
    frames = [StackFrame("s1", "ex_s1_2", 2, 3), StackFrame("s2", "ex_s2_0", 0, 1)]
    assert (scope_of([]), scope_of(frames[:1]), scope_of(frames)) == (
        "", "ex_s1_2", "ex_s1_2/ex_s2_0")  # fmt: skip


def test_dead_paths_reach_merges_through_dead_nodes_only() -> None:
    # c took t; f leads to y -> m1 and y -> w -> m2; z is alive (reached from t as well)
    wf = graph(
        {"m1": "merge", "m2": "merge", "c": "conditional"},
        ["c>x", "c>y", "y>m1", "y>w", "w>m2", "x>m1", "y>z", "x>z", "z>m2"],
    )
    assert dead_paths(wf, "c", edges_of(wf, "c>x"), []) == [("m1", "y"), ("m2", "w")]
    assert dead_paths(wf, "c", edges_of(wf, "c>x", "c>y"), []) == []


def test_dead_paths_to_the_own_aggregator_and_over_dead_splits() -> None:
    wf = graph(
        {"s": "split", "c": "conditional", "a": "aggregator", "s2": "split", "a2": "aggregator",
         "m": "merge"},
        ["s>c", "c>x", "x>a", "c>s2", "s2>i", "i>a2", "a2>m", "q>m"],
    )  # fmt: skip
    frame = [StackFrame("s", "ex_s_0", 0, 2)]
    # nothing taken inside the split: the aggregator hears once; the dead split s2 is jumped
    assert dead_paths(wf, "c", [], frame) == [("a", "x"), ("m", "a2")]
    # x taken: the aggregator gets a real arrival, only the merge needs a ghost
    assert dead_paths(wf, "c", edges_of(wf, "c>x"), frame) == [("m", "a2")]
    assert dead_paths(wf, "c", [], []) == [("m", "a2")]  # outside a split: no aggregator


def test_a_stray_ghost_ends_quietly() -> None:
    msg = msgspec.structs.replace(start(definition([n("a")]), "a", {"$x": 1}), ghost=True)
    run = drive(msg)
    assert run.statuses == [] and run.messages == []
    assert (run.completion.status, run.completion.final_context) == ("completed", {})


def test_walks_are_kept_per_workflow_and_answer_as_when_walked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A parsed definition serves many executions: each walk is done once per workflow and
    kept (`Workflow.walks`). The kept answers are those of a fresh walk, for every taken set
    and split frame; a caller may change what it gets; past WALKS_KEPT nothing more is kept
    and the answers stay right."""
    edges = ["s>c", "c>x", "x>a", "c>s2", "s2>i", "i>a2", "a2>m", "q>m", "c>y", "y>m"]
    types = {"s": "split", "c": "conditional", "a": "aggregator", "s2": "split",
             "a2": "aggregator", "m": "merge"}  # fmt: skip
    frame = [StackFrame("s", "ex_s_0", 0, 2)]
    asks = [(taken, lineage) for taken in ([], ["c>x"], ["c>y"], ["c>x", "c>s2"])
            for lineage in ([], frame)]  # fmt: skip

    def answers(wf: Workflow) -> list[object]:
        got: list[object] = [dead_paths(wf, "c", edges_of(wf, *t), f) for t, f in asks]
        return [*got, merge_parents(wf, "m"), split_scope(wf, "s", "a"), aggregator_of(wf, "s")]

    def alone(ask: Callable[[Workflow], object]) -> object:
        return ask(graph(types, edges))  # a workflow that has walked nothing yet

    expected = [alone(lambda wf, t=t, f=f: dead_paths(wf, "c", edges_of(wf, *t), f))
                for t, f in asks]  # fmt: skip
    expected += [alone(lambda wf: merge_parents(wf, "m")),
                 alone(lambda wf: split_scope(wf, "s", "a")),
                 alone(lambda wf: aggregator_of(wf, "s"))]  # fmt: skip
    # the asks get five different answers; nothing taken, inside the split or not, two of them
    assert len({repr(e) for e in expected[: len(asks)]}) == 5 and expected[0] != expected[1]
    kept = graph(types, edges)
    assert answers(kept) == expected and len(kept.walks) == 12
    dead_paths(kept, "c", [], frame).append(("changed", "by a caller"))
    merge_parents(kept, "m").append("changed")
    assert answers(kept) == expected  # the second time, from what was kept
    monkeypatch.setattr(paths, "WALKS_KEPT", 3)
    small = graph(types, edges)
    assert answers(small) == expected and answers(small) == expected and len(small.walks) == 3


def test_a_node_that_skips_an_edge_straight_into_a_merge_owes_it_a_ghost() -> None:
    """c took t; its edge f goes straight into the merge, whose parent c is then dead on that
    edge: c owes the merge a ghost of its own."""
    wf = graph({"m": "merge", "c": "conditional"}, ["c>x", "c>m", "x>m"])
    assert dead_paths(wf, "c", edges_of(wf, "c>x"), []) == [("m", "c")]


def test_a_node_that_reaches_a_merge_on_a_taken_edge_owes_it_no_ghost() -> None:
    """x's normal edge and its error edge both go into the merge: when it follows one, it is
    the merge's arrival from x; a ghost from x as well would count x's arrival a second time,
    and decide a merge waiting for x alone as dead when it came first."""
    defn = definition(
        [n("x", error={"type": "branch", "error_edge": "err"}),
         {"id": "m", "name": "M", "type": "merge", "parameters": {}}, n("end")],
        [("ok", "x", "m"), ("err", "x", "m"), ("e", "m", "end")],
    )  # fmt: skip
    wf = parse_definition(defn)
    assert dead_paths(wf, "x", edges_of(wf, "ok"), []) == []
    assert dead_paths(wf, "x", edges_of(wf, "err"), []) == []
    run = drive(start(defn, "x"), pick=lifo)
    assert run.outputs("M")[-1]["_merge_sources"] == ["x"]
    assert run.trail.count(("END", "success")) == 1


def test_a_dead_path_stops_at_a_live_node() -> None:
    """f leads to y, whose successor x is also reached from the taken edge: x is alive and
    delivers to the merge itself; the walk stops there (a ghost from x would count x's arrival
    before it comes)."""
    wf = graph({"m": "merge", "c": "conditional"}, ["c>x", "c>y", "y>x", "x>m", "q>m"])
    assert dead_paths(wf, "c", edges_of(wf, "c>x"), []) == []


def test_a_dead_path_reaches_a_merge_and_the_own_aggregator_alike() -> None:
    """Inside a split, the dead node y feeds both a merge and the split's aggregator: each
    gets its ghost (the aggregator's is owed for the item whatever else the walk found)."""
    wf = graph(
        {"s": "split", "c": "conditional", "m": "merge", "a": "aggregator"},
        ["s>c", "s>z", "c>x", "c>y", "y>m", "z>m", "y>a"],
    )
    frame = [StackFrame("s", "ex_s_0", 0, 1)]
    assert dead_paths(wf, "c", edges_of(wf, "c>x"), frame) == [("m", "y"), ("a", "y")]


def test_a_dead_split_without_aggregator_does_not_end_the_walk() -> None:
    """y is dead and leads both into a split that never comes back (no aggregator) and into
    a merge: nothing is owed past the split, the merge still gets its ghost."""
    wf = graph(
        {"m": "merge", "c": "conditional", "t": "split"},
        ["c>x", "c>y", "y>t", "t>w", "y>m", "x>m"],
    )
    assert dead_paths(wf, "c", edges_of(wf, "c>x"), []) == [("m", "y")]


def test_a_dead_path_that_reaches_another_splits_aggregator_stops_there() -> None:
    """Inside the inner split, the dead node y leads straight to the outer split's aggregator
    (not its own): that barrier counts outer items, which the inner aggregator's continuation
    delivers; nothing past it is owed a ghost."""
    wf = graph(
        {"s1": "split", "s2": "split", "c": "conditional", "a2": "aggregator",
         "a1": "aggregator", "m": "merge"},
        ["s1>s2", "s2>c", "c>x", "x>a2", "c>y", "y>a1", "a2>a1", "a1>m", "q>m"],
    )  # fmt: skip
    frames = [StackFrame("s1", "ex_s1_0", 0, 1), StackFrame("s2", "ex_s2_0", 0, 1)]
    assert dead_paths(wf, "c", edges_of(wf, "c>x"), frames) == []
    # nothing taken (c failed under ignore with no normal edge to follow): the own aggregator
    # hears of the item; the walk still stops at the outer one
    assert dead_paths(wf, "c", [], frames) == [("a2", "x")]


def test_a_dead_path_walks_through_a_node_of_no_type() -> None:
    """A node without a type (it would fail if it ran) on a dead path is dead like any other:
    the merge past it still gets its ghost, or it would wait for its whole timeout."""
    wf = graph({"m": "merge", "c": "conditional", "u": ""}, ["c>x", "c>u", "u>m", "x>m"])
    assert dead_paths(wf, "c", edges_of(wf, "c>x"), []) == [("m", "u")]
