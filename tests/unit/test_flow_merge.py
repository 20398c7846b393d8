"""merge through the executor (upstream: services/rune-worker/pkg/nodes/custom/merge/, its
e2e/merge_e2e_test.go and integration/merge_integration_test.go; docs/WIRE.md sections 7, 8):
wait_for_all and wait_for_any barriers, dead-path elimination, timeout, branch awareness."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from flowkit import TRIGGER, Run, definition, drive, fifo, lifo, n, start, step

from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, encode
from runeworker.engine.state import MemoryStore
from runeworker.nodes.merge import MAX_TIMEOUT, timeout_seconds


def merge(node_id: str = "merge", **params: Any) -> dict[str, Any]:
    return {"id": node_id, "name": "Merge", "type": "merge", "parameters": params}


def arrival(defn: bytes, parent: str, ctx: dict[str, Any], token: str) -> NodeExecutionMessage:
    """A message reaching the merge from `parent`, as upstream's merge_e2e_test.go feeds them."""
    msg = start(defn, "merge", ctx)
    return msgspec.structs.replace(msg, from_node=parent, branch_token=token)


def three_parents(**params: Any) -> bytes:
    nodes = [n("a"), n("b"), n("c"), merge(**params), n("end", value="$Merge._merge_sources")]
    edges = [
        ("e1", "c", "merge"),
        ("e2", "a", "merge"),
        ("e3", "b", "merge"),
        ("e4", "merge", "end"),
    ]
    return definition(nodes, edges)


def opened(executor: Executor, defn: bytes) -> list[str]:
    """Live branch tokens of a fresh execution, one per parent a, b, c of the merge."""
    first = executor.step(start(_fanned(defn), "trigger"))
    return [str(m.branch_token) for m in first.messages]


def test_wait_for_all_with_three_parents() -> None:
    """TestMergeE2E_ThreeBranchMerge: two `waiting` statuses (Go: `success`), then one release
    whose merged context follows the merge's incoming edges (c, a, b), not the arrival order
    (b, a, c)."""
    defn = three_parents()
    executor, run = Executor(MemoryStore()), Run()
    tokens = opened(executor, defn)
    for parent, token in zip("bac", tokens, strict=True):
        step(executor, arrival(defn, parent, {"$" + parent: parent, "$shared": parent}, token), run)
    assert run.trail == [("Merge", "running"), ("Merge", "waiting")] * 2 + [
        ("Merge", "running"), ("Merge", "success")]  # fmt: skip
    waiting = [s.output for s in run.statuses if s.status == "waiting"]
    assert waiting == [{"_merge_waiting": True, "_merge_arrived": i, "_merge_expected": 3}
                       for i in (1, 2)]  # fmt: skip
    released = run.statuses[-1].output
    assert isinstance(released, dict)
    assert list(released["merged_context"].items()) == [
        ("$c", "c"), ("$shared", "b"), ("$a", "a"), ("$b", "b")]  # fmt: skip
    assert released["_merge_payloads"] == [{"$" + p: p, "$shared": p} for p in "cab"]
    assert (released["_merge_expected"], released["_merge_sources"]) == (3, ["c", "a", "b"])
    [nxt] = run.messages
    assert (nxt.current_node, nxt.from_node) == ("end", "merge")


@pytest.mark.parametrize("pick", [fifo, lifo])
def test_fan_in_through_the_executor(pick: Any) -> None:
    run = drive(start(_fanned(three_parents()), "trigger"), pick=pick)
    released = run.outputs("Merge")[-1]
    assert released["_merge_sources"] == ["c", "a", "b"]
    assert released["_merge_payloads"] == [{"$C": {"value": None}}, {"$A": {"value": None}},
                                           {"$B": {"value": None}}]  # fmt: skip
    assert run.trail.count(("Merge", "waiting")) == 2
    assert run.completion.final_context["$END"] == {"value": ["c", "a", "b"]}


def _fanned(defn: bytes) -> bytes:
    """`defn` with a trigger fanning out to every node that feeds the merge."""
    doc = msgspec.json.decode(defn)
    doc["nodes"].insert(0, TRIGGER)
    doc["edges"] += [{"id": f"t{p}", "src": "trigger", "dst": p} for p in "abc"]
    return msgspec.json.encode(doc)


def test_merge_output_is_kept_under_its_name() -> None:
    """Unlike Go, the continuation context is the merged context plus `$Merge`, whose copies of
    whole contexts (merged_context, _merge_payloads) stay in the status only."""
    run = drive(start(_fanned(three_parents(wait_mode="wait_for_all", timeout=60)), "trigger"))
    [after] = [m for m in run.messages if m.current_node == "end"]
    assert after.accumulated_context == {
        "$A": {"value": None}, "$B": {"value": None}, "$C": {"value": None},
        "$Merge": {"_merge_expected": 3, "_merge_sources": ["c", "a", "b"]},
    }  # fmt: skip
    status = run.outputs("Merge")[-1]
    assert set(status) == {"merged_context", "_merge_payloads", "_merge_expected", "_merge_sources"}
    assert after.from_node == "merge"


def test_directly_fed_wait_for_all_releases() -> None:
    """TestMergeE2E_WaitForAllComplete: two parent messages with different contexts; end_node
    runs once."""
    nodes = [n("branch_a"), n("branch_b"), merge(wait_mode="wait_for_all", timeout=120),
             n("end_node", value="$from")]  # fmt: skip
    edges = [("e1", "branch_a", "merge"), ("e2", "branch_b", "merge"), ("e3", "merge", "end_node")]
    defn = definition(nodes, edges)
    executor, run = Executor(MemoryStore()), Run()
    # a live execution with two branches, as the fan-out before the merge would leave it
    opener = start(
        definition([n("s"), *nodes], [("x1", "s", "branch_a"), ("x2", "s", "branch_b"), *edges]),
        "s",
    )
    tokens = [m.branch_token for m in step(executor, opener, run).messages]
    a = arrival(defn, "branch_a", {"$from": "a", "$a": 1}, str(tokens[0]))
    b = arrival(defn, "branch_b", {"$from": "b", "$b": 2}, str(tokens[1]))
    drive(a, b, executor=executor, run=run)
    released = run.outputs("Merge")[-1]
    assert "_merge_waiting" not in released
    assert released["merged_context"] == {"$from": "b", "$a": 1, "$b": 2}
    assert run.outputs("END_NODE") == [{"value": "b"}]
    assert run.completion.status == "completed"


@pytest.mark.parametrize("pick", [fifo, lifo])
def test_wait_for_any_has_one_winner(pick: Any) -> None:
    """TestMergeE2E_WaitForAnyRace: exactly one `_merge_winner`, the other arrival
    `_merge_ignored`."""
    nodes = [
        TRIGGER,
        n("fast"),
        n("slow"),
        merge(wait_mode="wait_for_any"),
        n("end", value="$Merge._merge_winner"),
    ]
    edges = [("e1", "trigger", "fast"), ("e2", "trigger", "slow"), ("e3", "fast", "merge"),
             ("e4", "slow", "merge"), ("e5", "merge", "end")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "trigger"), pick=pick)
    outputs = run.outputs("Merge")
    winners = [o["_merge_winner"] for o in outputs if "_merge_winner" in o]
    assert len(winners) == 1 and winners[0] in ("fast", "slow")
    assert [o for o in outputs if "_merge_winner" not in o] == [{"_merge_ignored": True}]
    assert run.outputs("END") == [{"value": winners[0]}]
    assert run.completion.status == "completed"


@pytest.mark.parametrize("flag", [True, False])
def test_if_else_into_wait_for_all_completes(flag: bool) -> None:
    """The branch the conditional does not take sends a ghost, so the merge opens (a Go
    wait_for_all after an if/else never does)."""
    cond = n(
        "check", "conditional", expression="$flag == true", true_edge_id="t", false_edge_id="f"
    )
    nodes = [cond, n("yes"), n("no"), n("no2"), merge(), n("end")]
    edges = [("t", "check", "yes"), ("f", "check", "no"), ("e1", "no", "no2"),
             ("e2", "yes", "merge"), ("e3", "no2", "merge"), ("e4", "merge", "end")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "check", {"$flag": flag}))
    [ghost] = [m for m in run.messages if m.ghost is True]
    assert (ghost.current_node, ghost.from_node) == ("merge", "no2" if flag else "yes")
    taken = "YES" if flag else "NO2"
    assert run.outputs("Merge")[-1]["_merge_sources"] == [taken.lower()]
    assert run.trail.count(("END", "success")) == 1
    keys = {"$flag", "$CHECK", "$" + taken, "$Merge", "$END"} | (set() if flag else {"$NO"})
    assert set(run.completion.final_context) == keys


def test_switch_without_match_into_merge() -> None:
    """No rule matches and the fallback is not wired: both routes are dead paths."""
    rules = [{"value": "$pick", "operator": "==", "compare": c} for c in ("a", "b")]
    route = n("route", "switch", rules=rules, routes=["ra", "rb", None])
    nodes = [TRIGGER, route, n("a"), n("b"), n("side"), merge(), n("end")]
    edges = [("e0", "trigger", "route"), ("e1", "trigger", "side"), ("ra", "route", "a"),
             ("rb", "route", "b"), ("x1", "a", "merge"), ("x2", "b", "merge"),
             ("x3", "side", "merge"), ("e4", "merge", "end")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "trigger", {"$pick": "z"}))
    ghosts = [(m.current_node, m.from_node) for m in run.messages if m.ghost is True]
    assert ghosts == [("merge", "a"), ("merge", "b")]
    assert run.outputs("Merge")[-1]["_merge_sources"] == ["side"]
    assert run.trail.count(("END", "success")) == 1
    assert run.completion.status == "completed"


def test_dead_merge_passes_the_ghost_on() -> None:
    """A merge whose every parent is dead is dead too: the merge after it still opens."""
    cond = n("check", "conditional", expression="true", true_edge_id="t", false_edge_id="f")
    nodes = [cond, n("x"), n("y"), n("p"), n("q"), merge("m1"), n("after1"), merge("m2"), n("end")]
    edges = [("t", "check", "x"), ("f", "check", "y"), ("e1", "y", "p"), ("e2", "y", "q"),
             ("e3", "p", "m1"), ("e4", "q", "m1"), ("e5", "m1", "after1"), ("e6", "after1", "m2"),
             ("e7", "x", "m2"), ("e8", "m2", "end")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "check"))
    outputs = [s.output for s in run.statuses if s.node_id == "m1" and s.status == "success"]
    assert outputs == [{"_merge_skipped": True, "_merge_arrived": 2, "_merge_expected": 2}]
    m2 = [s.output for s in run.statuses if s.node_id == "m2" and s.status == "success"]
    assert [o["_merge_sources"] for o in m2 if isinstance(o, dict)] == [["x"]]
    assert run.trail.count(("END", "success")) == 1
    assert ("AFTER1", "running") not in run.trail
    assert run.completion.status == "completed"


def test_merge_inside_split_is_keyed_by_branch() -> None:
    nodes = [n("split", "split", input_array=[1, 2]), n("a", value="$item"), n("b", value="$item"),
             merge(), {"id": "agg", "name": "Agg", "type": "aggregator"}]  # fmt: skip
    edges = [("e1", "split", "a"), ("e2", "split", "b"), ("e3", "a", "merge"), ("e4", "b", "merge"),
             ("e5", "merge", "agg")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "split"))
    released = [o for o in run.outputs("Merge") if "merged_context" in o]
    assert sorted(o["merged_context"]["$item"] for o in released) == [1, 2]
    agg = run.outputs("Agg")[-1]
    assert [r["_merge_sources"] for r in agg["aggregated"]] == [["a", "b"], ["a", "b"]]
    assert run.completion.status == "completed"


@pytest.mark.parametrize(("policy", "outcome"), [({}, "halted"), ({"type": "ignore"}, "completed")])
def test_merge_timeout_fails_the_merge(policy: dict[str, str], outcome: str) -> None:
    now = [0]
    doc = msgspec.json.decode(three_parents(timeout=2))
    doc["nodes"][3]["error"] = policy
    doc["nodes"][4].pop("parameters")  # END must not need $Merge, which a failed merge lacks
    defn = msgspec.json.encode(doc)
    executor, run = Executor(MemoryStore(), clock=lambda: now[0]), Run()
    tokens = opened(executor, defn)
    for parent, token, at in zip("abc", tokens, (0, 1, 5), strict=True):
        now[0] = at * 10**9
        step(executor, arrival(defn, parent, {"$" + parent: 1}, token), run)
    assert run.trail[-2:] == [("Merge", "running"), ("Merge", "failed")]
    error = msgspec.json.decode(encode(run.statuses[-1]))["error"]["message"]
    assert error == (
        "merge node Merge timed out: 2 of 3 parents arrived within 2 seconds of the first arrival"
    )
    drive(*run.messages, executor=executor, run=run)
    assert run.completion.status == outcome
    if policy:  # ignore: the late branch goes on alone with its own context
        assert run.completion.final_context == {"$c": 1, "$END": {"value": None}}


def test_merge_without_from_node_fails_clearly() -> None:
    run = drive(start(three_parents(), "merge", {"$x": 1}))
    message = msgspec.json.decode(encode(run.statuses[-1]))["error"]["message"]
    assert message == "merge node Merge got an arrival without from_node (no parent named)"
    run = drive(msgspec.structs.replace(start(three_parents(), "merge"), from_node="end"))
    message = msgspec.json.decode(encode(run.statuses[-1]))["error"]["message"]
    assert message == "merge node Merge: from_node 'end' is not the source of an edge into it"


def test_bad_wait_mode() -> None:
    run = drive(arrival(three_parents(wait_mode="first"), "a", {}, "root"))
    message = msgspec.json.decode(encode(run.statuses[-1]))["error"]["message"]
    assert message == "unsupported wait_mode: first (use wait_for_all or wait_for_any)"


@pytest.mark.parametrize("timeout", [1e308, "1e300", 2.6e11])
def test_a_timeout_no_timer_can_hold_waits_as_the_longest(timeout: Any) -> None:
    """Found by tests/fuzz: `timeout` 1e308 (a number, or its text) made the merge's step
    raise `OverflowError: cannot convert float infinity to integer` (its milliseconds): the
    worker refused the delivery as an engine bug, the traceback in its log. A timeout past the
    year 9999 is read as the longest kept (`MAX_TIMEOUT`), as 1e300 s already waited and
    released (tests/integration/test_flow_wire.py): the merge waits for its parents."""
    assert timeout_seconds(timeout) == MAX_TIMEOUT
    run = drive(start(_fanned(three_parents(timeout=timeout)), "trigger"))
    assert not [s for s in run.statuses if s.status == "failed"]
    merges = [s.status for s in run.statuses if s.node_name == "Merge"]
    assert "waiting" in merges and merges[-1] == "success"
    assert run.completion.status == "completed"
