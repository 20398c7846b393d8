"""Tests of runeworker.engine.validation: graph rules, registry rules, and input loading."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import msgspec
import pytest

from runeworker.engine import validation
from runeworker.engine.registry import NodeContext, NodeSpec
from runeworker.engine.validation import (
    Problem,
    check_workflow,
    load_for_validation,
    runnable_problems,
    structural_problems,
)
from runeworker.engine.workflow import Workflow
from runeworker.errors import WorkflowError


def _run(ctx: NodeContext) -> dict[str, Any]:
    return {}


REGISTRY = {
    "http": NodeSpec("http", _run, required=("url", "method")),
    "log": NodeSpec("log", _run, required=("message",)),
    "conditional": NodeSpec("conditional", _run, required=("expression",)),
    "switch": NodeSpec("switch", _run),
}


def build(nodes: list[dict[str, Any]], edges: list[tuple[str, str, str]]) -> Workflow:
    """A workflow from node dicts and (id, src, dst) edges, built as the wire decoder does."""
    data = {"nodes": nodes, "edges": [{"id": i, "src": s, "dst": d} for i, s, d in edges]}
    return msgspec.convert(data, Workflow).index()


def valid_nodes() -> list[dict[str, Any]]:
    return [
        {"id": "t", "type": "ManualTrigger", "trigger": True},
        {"id": "get", "type": "http", "parameters": {"url": "http://x", "method": "GET"}},
        {
            "id": "cond",
            "type": "conditional",
            "parameters": {"expression": "$x == 1", "true_edge_id": "e3", "false_edge_id": ""},
        },
        {"id": "sw", "type": "switch", "parameters": {"routes": ["e4", None, ""]}},
        {"id": "ok", "type": "log", "parameters": {"message": "hi"}},
        {"id": "bad", "type": "log", "parameters": {"message": "error"}},
        {"id": "fin", "type": "log", "parameters": {"message": 0}},
    ]


VALID_EDGES = [
    ("e1", "t", "get"),
    ("e2", "get", "cond"),
    ("e3", "cond", "sw"),
    ("e4", "sw", "ok"),
    ("e5", "get", "bad"),
    ("e6", "ok", "fin"),
    ("e7", "bad", "fin"),
]


def test_valid_workflow_has_no_problems() -> None:
    nodes = valid_nodes()
    nodes[1]["error"] = {"type": "branch", "error_edge": "e5"}
    nodes[4]["error"] = {"type": "ignore"}
    nodes[5]["error"] = {"type": "halt"}
    wf = build(nodes, VALID_EDGES)
    assert structural_problems(wf) == []
    assert check_workflow(wf, REGISTRY) == []


def test_problem_str() -> None:
    assert str(Problem("a", "is wrong")) == "node a: is wrong"
    assert str(Problem("", "edge e1 is wrong")) == "edge e1 is wrong"


# (case name, nodes, edges, expected problems as strings); checked by structural_problems.
STRUCTURAL_CASES: list[tuple[str, list[dict[str, Any]], list[tuple[str, str, str]], list[str]]] = [
    (
        "duplicate node id",
        [{"id": "a"}, {"id": "b"}, {"id": "a"}],
        [("e1", "a", "b")],
        ["node a: the id is shared by nodes[0] and nodes[2]"],
    ),
    (
        "empty node id",
        [{"id": "a"}, {"id": "", "error": {"type": "oops"}}],
        [],
        [
            "nodes[1]: the node has an empty id",
            "nodes[1]: error policy type 'oops' is not one of halt, ignore, branch",
        ],
    ),
    (
        "duplicate edge id",
        [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        [("e1", "a", "b"), ("e1", "b", "c"), ("e1", "a", "c")],
        ["edge id 'e1' is shared by edges[0], edges[1] and edges[2]"],
    ),
    (
        "edge id shared by two edges",
        [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        [("e1", "a", "b"), ("e1", "b", "c")],
        ["edge id 'e1' is shared by edges[0] and edges[1]"],
    ),
    (
        "shared edge id reported where the id first appears",
        [{"id": "a"}, {"id": "b"}],
        [("e1", "a", "x"), ("e1", "a", "b")],
        [
            "edge id 'e1' is shared by edges[0] and edges[1]",
            "edge e1 points to node 'x', which does not exist",
        ],
    ),
    (
        "dangling dst",
        [{"id": "a"}],
        [("e3", "a", "x")],
        ["edge e3 points to node 'x', which does not exist"],
    ),
    (
        "dangling src",
        [{"id": "a"}],
        [("e3", "y", "a")],
        ["edge e3 comes from node 'y', which does not exist"],
    ),
    (
        "empty edge fields",
        [{"id": "a"}],
        [("", "", "a"), ("e2", "a", "")],
        ["edges[0] has an empty id", "edges[0] has an empty src", "edge e2 has an empty dst"],
    ),
    (
        "self loop",
        [{"id": "a"}, {"id": "b"}],
        [("e1", "a", "b"), ("e2", "b", "b")],
        ["cycle: b -> b"],
    ),
    (
        "cycle reachable only through a node's second out-edge",
        [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        [("e1", "a", "b"), ("e2", "a", "c"), ("e3", "c", "a")],
        ["cycle: a -> c -> a"],
    ),
    (
        "shortest cycle when a longer way to the same node is seen later",
        [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        [("e1", "a", "b"), ("e2", "a", "c"), ("e3", "b", "c"), ("e4", "c", "a")],
        ["cycle: a -> c -> a"],
    ),
    (
        "cycles in the order of their first node, not of their discovery",
        [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}],
        [("e1", "a", "d"), ("e2", "d", "a"), ("e3", "b", "c"), ("e4", "c", "b")],
        ["cycle: a -> d -> a", "cycle: b -> c -> b"],
    ),
    (
        "unknown error policy",
        [{"id": "a", "error": {"type": "retry"}}],
        [],
        ["node a: error policy type 'retry' is not one of halt, ignore, branch"],
    ),
    (
        "branch policy without edge",
        [{"id": "a", "error": {"type": "branch"}}],
        [],
        ["node a: error policy 'branch' names no error_edge"],
    ),
    (
        "branch policy with unknown edge",
        [{"id": "a", "error": {"type": "branch", "error_edge": "e9"}}],
        [],
        ["node a: error_edge names edge 'e9', which does not exist"],
    ),
    (
        "branch policy with edge of another node",
        [{"id": "a", "error": {"type": "branch", "error_edge": "e2"}}, {"id": "b"}, {"id": "c"}],
        [("e1", "a", "b"), ("e2", "b", "c")],
        ["node a: error_edge names edge 'e2', which leaves node 'b', not this node"],
    ),
    (
        "conditional edges",
        [
            {
                "id": "c",
                "type": "conditional",
                "parameters": {"true_edge_id": "e9", "false_edge_id": "e2"},
            },
            {"id": "b"},
            {"id": "d"},
        ],
        [("e1", "c", "b"), ("e2", "b", "d")],
        [
            "node c: true_edge_id names edge 'e9', which does not exist",
            "node c: false_edge_id names edge 'e2', which leaves node 'b', not this node",
        ],
    ),
    (
        "conditional edge id of wrong type",
        [{"id": "c", "type": "conditional", "parameters": {"true_edge_id": 3}}],
        [],
        ["node c: true_edge_id must be an edge id (a string), not a number"],
    ),
    (
        "conditional edge ids of every JSON type",
        [
            {
                "id": "c",
                "type": "conditional",
                "parameters": {"true_edge_id": 1.5, "false_edge_id": ["e1"]},
            },
            {"id": "d", "type": "conditional", "parameters": {"true_edge_id": {"id": "e1"}}},
            {"id": "s", "type": "switch", "parameters": {"routes": "e1"}},
        ],
        [],
        [
            "node c: true_edge_id must be an edge id (a string), not a number",
            "node c: false_edge_id must be an edge id (a string), not an array",
            "node d: true_edge_id must be an edge id (a string), not an object",
            "node s: routes must be a list of edge ids, not a string",
        ],
    ),
    (
        "switch routes",
        [
            {"id": "s", "type": "switch", "parameters": {"routes": ["e1", None, "e9", True, "e2"]}},
            {"id": "b"},
            {"id": "d"},
        ],
        [("e1", "s", "b"), ("e2", "b", "d")],
        [
            "node s: routes[2] names edge 'e9', which does not exist",
            "node s: routes[3] must be an edge id (a string) or null, not a boolean",
            "node s: routes[4] names edge 'e2', which leaves node 'b', not this node",
        ],
    ),
    (
        "switch routes not a list",
        [{"id": "s", "type": "switch", "parameters": {"routes": {"0": "e1"}}}],
        [],
        ["node s: routes must be a list of edge ids, not an object"],
    ),
    (
        "routing parameters of other node types are not edge references",
        [{"id": "h", "type": "http", "parameters": {"true_edge_id": "x", "routes": 5}}],
        [],
        [],
    ),
]


@pytest.mark.parametrize(
    ("nodes", "edges", "expected"),
    [case[1:] for case in STRUCTURAL_CASES],
    ids=[case[0] for case in STRUCTURAL_CASES],
)
def test_structural_rule(
    nodes: list[dict[str, Any]], edges: list[tuple[str, str, str]], expected: list[str]
) -> None:
    wf = build(nodes, edges)
    problems = structural_problems(wf, strict=True)
    assert [str(p) for p in problems] == expected
    # `node_id` names the node a problem is about, and is "" (never None) for the others.
    assert [p.node_id for p in problems] == [
        text.split(":")[0].removeprefix("node ") if text.startswith("node ") else ""
        for text in expected
    ]

    # what upstream's worker runs is not refused at the first step (routing.go ends the branch,
    # node_handlers.go halts): missing or non-string routes, unusable error policies
    refused = [p for p in expected if not run_by_upstream(p)]
    assert [str(p) for p in structural_problems(wf)] == refused


def run_by_upstream(problem: str) -> bool:
    return any(m in problem for m in RUN_BY_UPSTREAM) or bool(MISSING_EDGE.search(problem))


MISSING_EDGE = re.compile(r"names edge '[^']*', which does not exist")
RUN_BY_UPSTREAM = (
    "must be an edge id",
    "routes must be a list",
    "error policy type",
    "names no error_edge",
)


def test_what_upstream_runs_is_refused_by_no_rule_of_the_first_step() -> None:
    dropped = [p for case in STRUCTURAL_CASES for p in case[3] if run_by_upstream(p)]
    assert len(dropped) == 13  # the table holds a case of every kind


def test_routing_value_of_a_python_type_is_named_by_its_type() -> None:
    # A hand-built Workflow may hold any Python value where the wire only has JSON types.
    wf = build([{"id": "c", "type": "conditional", "parameters": {"expression": "true"}}], [])
    wf.nodes[0].params["true_edge_id"] = {"e1"}
    assert structural_problems(wf) == []  # upstream runs it: the branch ends there
    assert structural_problems(wf, strict=True) == [
        Problem("c", "true_edge_id must be an edge id (a string), not set")
    ]


# (case name, nodes, expected problems) checked by check_workflow with REGISTRY.
REGISTRY_CASES: list[tuple[str, list[dict[str, Any]], list[str]]] = [
    (
        "unknown type with suggestion",
        [{"id": "a", "type": "htp"}],
        ["node a: node type 'htp' is not registered (did you mean 'http'?)"],
    ),
    (
        "unknown type without suggestion",
        [{"id": "a", "type": "zzzzzz"}],
        ["node a: node type 'zzzzzz' is not registered"],
    ),
    ("no type", [{"id": "a"}], ["node a: the node has no type"]),
    (
        "missing and empty required parameters",
        [{"id": "a", "type": "http", "parameters": {"url": "  "}}],
        [
            "node a: required parameter 'url' is empty",
            "node a: required parameter 'method' is missing",
        ],
    ),
    (
        "null parameters",
        [{"id": "a", "type": "log", "parameters": None}],
        ["node a: required parameter 'message' is missing"],
    ),
    (
        "empty containers and null are empty, zero and false are not",
        [
            {"id": "a", "type": "log", "parameters": {"message": []}},
            {"id": "b", "type": "log", "parameters": {"message": {}}},
            {"id": "c", "type": "log", "parameters": {"message": None}},
            {"id": "d", "type": "log", "parameters": {"message": False}},
            {"id": "e", "type": "log", "parameters": {"message": 0}},
        ],
        [
            "node a: required parameter 'message' is empty",
            "node b: required parameter 'message' is empty",
            "node c: required parameter 'message' is empty",
        ],
    ),
    (
        "trigger types and trigger nodes are not checked",
        [
            {"id": "t1", "type": "ManualTrigger"},
            {"id": "t2", "type": "ScheduledTrigger"},
            {"id": "t3", "type": "webhook"},
            {"id": "t4", "type": "customTrigger", "trigger": True},
            {"id": "t5", "type": "http", "trigger": True},
        ],
        [],
    ),
]


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [case[1:] for case in REGISTRY_CASES],
    ids=[case[0] for case in REGISTRY_CASES],
)
def test_registry_rule(nodes: list[dict[str, Any]], expected: list[str]) -> None:
    wf = build(nodes, [])
    assert [str(p) for p in check_workflow(wf, REGISTRY)] == expected
    assert structural_problems(wf) == []


def test_every_problem_is_reported_in_definition_order() -> None:
    nodes: list[dict[str, Any]] = [
        {"id": "a", "type": "log", "error": {"type": "branch", "error_edge": "nope"}},
        {"id": "b", "type": "htp"},
        {"id": "a", "type": "log", "parameters": {"message": "x"}},
        {"id": "c", "type": "switch", "parameters": {"routes": ["e1"]}},
    ]
    edges = [("e1", "a", "b"), ("e2", "b", "c"), ("e3", "c", "a"), ("e4", "c", "ghost")]
    problems = check_workflow(build(nodes, edges), REGISTRY)
    assert problems == [
        Problem("a", "the id is shared by nodes[0] and nodes[2]"),
        Problem("a", "required parameter 'message' is missing"),
        Problem("a", "error_edge names edge 'nope', which does not exist"),
        Problem("b", "node type 'htp' is not registered (did you mean 'http'?)"),
        Problem("c", "routes[0] names edge 'e1', which leaves node 'a', not this node"),
        Problem("", "edge e4 points to node 'ghost', which does not exist"),
        Problem("", "cycle: a -> b -> c -> a"),
    ]


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        # Two separate cycles, reported in the order of their first node in the definition.
        (
            [
                ("e1", "d", "e"),
                ("e2", "e", "d"),
                ("e3", "a", "b"),
                ("e4", "b", "c"),
                ("e5", "c", "a"),
            ],
            ["cycle: a -> b -> c -> a", "cycle: d -> e -> d"],
        ),
        # One component with several cycles: one shortest cycle through its first node.
        (
            [
                ("e1", "a", "b"),
                ("e2", "b", "c"),
                ("e3", "c", "d"),
                ("e4", "d", "a"),
                ("e5", "b", "a"),
            ],
            ["cycle: a -> b -> a"],
        ),
        # A cycle entered from outside does not include the way in.
        (
            [("e1", "a", "b"), ("e2", "b", "c"), ("e3", "c", "d"), ("e4", "d", "b")],
            ["cycle: b -> c -> d -> b"],
        ),
        # A diamond (fan-out then merge) is not a cycle.
        ([("e1", "a", "b"), ("e2", "a", "c"), ("e3", "b", "d"), ("e4", "c", "d")], []),
    ],
    ids=["two cycles", "shortest in component", "entered from outside", "diamond"],
)
def test_cycle_naming(edges: list[tuple[str, str, str]], expected: list[str]) -> None:
    nodes = [{"id": n} for n in "abcde"]
    assert [str(p) for p in structural_problems(build(nodes, edges))] == expected


def chain(n: int, *, closed: bool) -> Workflow:
    nodes = [{"id": f"n{i}"} for i in range(n)]
    edges = [(f"e{i}", f"n{i}", f"n{i + 1}") for i in range(n - 1)]
    if closed:
        edges.append(("back", f"n{n - 1}", "n0"))
    return build(nodes, edges)


def executed_lines(call: Callable[[], object]) -> int:
    """Lines of runeworker/engine/validation.py run by `call`: a measure of work that, unlike a
    clock, does not depend on how loaded the machine is."""
    count = 0
    here = validation.__file__

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if frame.f_code.co_filename != here:
            return None  # no line events for other files
        if event == "line":
            count += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


def test_long_chain_is_validated_without_recursion() -> None:
    # Deeper than the default recursion limit (1000): a recursive DFS would raise here.
    assert structural_problems(chain(3000, closed=False)) == []


def test_long_cycle_is_named_in_full() -> None:
    problems = structural_problems(chain(3000, closed=True))
    expected = " -> ".join(f"n{i}" for i in range(3000))
    assert problems == [Problem("", f"cycle: {expected} -> n0")]


@pytest.mark.parametrize("closed", [False, True], ids=["chain", "cycle"])
def test_work_grows_linearly_with_the_workflow(closed: bool) -> None:
    # Twice the nodes, twice the work (a quadratic step would make it four times).
    small = executed_lines(lambda: structural_problems(chain(500, closed=closed)))
    large = executed_lines(lambda: structural_problems(chain(1000, closed=closed)))
    assert 1.9 * small < large < 2.1 * small


DEFINITION: dict[str, Any] = {
    "nodes": [
        {"id": "t", "type": "ManualTrigger", "trigger": True, "notes": "kept by the raw bytes"},
        {"id": "l", "type": "log", "parameters": {"message": "hi"}},
    ],
    "edges": [{"id": "e1", "src": "t", "dst": "l", "label": "go"}],
}


@pytest.mark.parametrize(
    "payload",
    [
        DEFINITION,
        {
            "workflow_id": "7",
            "execution_id": "x-1",
            "current_node": "l",
            "workflow_version": 2,
            "workflow_definition": DEFINITION,
            "accumulated_context": {},
        },
    ],
    ids=["bare definition", "execution message"],
)
def test_load_for_validation_accepts_both_shapes(payload: dict[str, Any]) -> None:
    wf = load_for_validation(json.dumps(payload, indent=2).encode())
    assert [(n.id, n.type, n.trigger) for n in wf.nodes] == [
        ("t", "ManualTrigger", True),
        ("l", "log", False),
    ]
    assert [(e.id, e.src, e.dst) for e in wf.edges] == [("e1", "t", "l")]
    assert check_workflow(wf, REGISTRY) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'{\n  "nodes": [,]\n}',
            "cannot read the workflow: JSON is malformed: invalid character "
            "(byte 14, line 2, column 13)",
        ),
        (
            b'\n{\n  "nodes":\n  [1,,]\n}',
            "cannot read the workflow: JSON is malformed: invalid character "
            "(byte 19, line 4, column 6)",
        ),
        (
            b'\n{"nodes": [,]}',
            "cannot read the workflow: JSON is malformed: invalid character "
            "(byte 12, line 2, column 12)",
        ),
        (
            b'{"nodes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "cannot read the workflow: JSON nested too deeply",
        ),
        (b'{"nodes": [', "cannot read the workflow: Input data was truncated"),
        (b"[1, 2]", "cannot read the workflow: Expected `object`, got `array`"),
        (
            b'{"edges": []}',
            "the input is neither a workflow definition (an object with 'nodes') "
            "nor an execution message (an object with 'workflow_definition')",
        ),
        (b'{"nodes": []}', "the workflow definition must contain at least one node"),
        (
            b'{"nodes": [{"id": "a", "trigger": "yes"}]}',
            "Expected `bool`, got `str` - at `$.nodes[0].trigger`",
        ),
        (
            b'{"nodes": [{"id": "a"}], "edges": [{"id": "e1", "src": "a"}]}',
            "Object missing required field `dst` - at `$.edges[0]`",
        ),
        (
            b'{"workflow_definition": {"nodes": [{"id": "a", "parameters": [1]}]}}',
            "workflow_definition: Expected `object | null`, got `array` - at "
            "`$.nodes[0].parameters`",
        ),
        (
            b'{"workflow_definition": null}',
            "workflow_definition: Expected `object`, got `null`",
        ),
    ],
    ids=[
        "malformed JSON",
        "malformed JSON on line 4",
        "malformed JSON after a leading newline",
        "nested too deeply",
        "truncated",
        "not an object",
        "neither shape",
        "no nodes",
        "wrong type in definition",
        "missing edge field",
        "wrong type in message",
        "null definition",
    ],
)
def test_load_for_validation_rejects_bad_input(data: bytes, message: str) -> None:
    with pytest.raises(WorkflowError) as info:
        load_for_validation(data)
    assert str(info.value) == message
    assert info.value.problems == [message]


# -- where an execution starts (issue 11, item 10) ---------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "edges", "expected"),
    [
        ([{"id": "t", "trigger": True}, {"id": "a", "type": "log"}], [("e", "t", "a")], []),
        ([{"id": "a", "type": "log"}, {"id": "b", "type": "log"}], [("e", "a", "b")], []),
        (
            [{"id": "t", "trigger": True}, {"id": "u", "trigger": True}, {"id": "a"}],
            [("e1", "t", "a"), ("e2", "u", "a")],
            ["workflow has 2 trigger nodes (t, u): exactly one is allowed, as the Rune API "
             "requires"],
        ),
        (
            [{"id": "a"}, {"id": "b"}, {"id": "c"}],
            [("e", "a", "b")],
            ["workflow has no trigger node and 2 start nodes (a, c): add a trigger node and "
             "connect it to each node to run first (the Rune API requires exactly one trigger)"],
        ),
        # no start at all: the cycle says why, once
        ([{"id": "a"}, {"id": "b"}], [("e1", "a", "b"), ("e2", "b", "a")], ["cycle: a -> b -> a"]),
    ],
)  # fmt: skip
def test_runnable_problems_name_the_start(
    nodes: list[dict[str, Any]], edges: list[tuple[str, str, str]], expected: list[str]
) -> None:
    registry = {**REGISTRY, "": NodeSpec("", _run)}
    for n in nodes:
        n.setdefault("type", "log")
        n.setdefault("parameters", {"message": "m"})
    wf = build(nodes, edges)
    found = runnable_problems(wf, registry)
    assert [str(p) for p in found] == expected
    assert [str(p) for p in check_workflow(wf, registry)] == [e for e in expected if "cycle" in e]
    assert all(p.node_id == "" for p in found)  # where to start is about no one node


def test_runnable_problems_include_the_registry_rules() -> None:
    wf = build([{"id": "t", "trigger": True}, {"id": "a", "type": "nope"}], [("e", "t", "a")])
    found = runnable_problems(wf, REGISTRY)
    assert found == check_workflow(wf, REGISTRY) and [p.node_id for p in found] == ["a"]
