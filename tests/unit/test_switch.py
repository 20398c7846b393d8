"""switch node and its router, after upstream's services/rune-worker/pkg/nodes/custom/switch/
and the routing of services/rune-worker/pkg/executor/routing.go (docs/WIRE.md section 10)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from runeworker.engine import registry
from runeworker.engine.registry import NodeContext
from runeworker.engine.resolver import Resolver
from runeworker.engine.workflow import Workflow, parse_definition
from runeworker.errors import NodeError
from runeworker.nodes import switch

ROUTES = ["e_google", "e_yahoo", "e_bing", "e_other"]
TARGET_RULES = [
    {"value": "$target", "operator": "==", "compare": "google"},
    {"value": "$target", "operator": "==", "compare": "yahoo"},
    {"value": "$target", "operator": "==", "compare": "bing"},
]


def workflow(params: dict[str, Any]) -> Workflow:
    dsts = ["google", "yahoo", "bing", "other"]
    nodes = [{"id": "sw", "name": "Route", "type": "switch", "parameters": params}]
    nodes += [{"id": d, "name": d, "type": "log"} for d in dsts]
    edges = [{"id": f"e_{d}", "src": "sw", "dst": d} for d in dsts]
    return parse_definition(json.dumps({"nodes": nodes, "edges": edges}).encode())


def run(params: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    wf = workflow(params)
    ctx = dict(context or {})
    node_ctx = NodeContext(
        workflow_id="wf",
        execution_id="ex",
        node=wf.node("sw"),
        params=params,
        context=ctx,
        workflow=wf,
        resolver=Resolver(ctx),
    )
    return switch.run(node_ctx)


def route(params: dict[str, Any], output: dict[str, Any] | None) -> list[str]:
    wf = workflow(params)
    return [e.dst for e in switch.route_switch(wf.node("sw"), output, wf)]


@pytest.mark.parametrize(
    ("target", "index", "dst"),
    [("google", 0, "google"), ("yahoo", 1, "yahoo"), ("bing", 2, "bing"), ("other", 3, "other")],
)
def test_scenario_11_switch_on_target(target: str, index: int, dst: str) -> None:
    """Scenario 11 = upstream's services/rune-worker/e2e/switch_e2e_test.go: switch on $target."""
    params = {"rules": TARGET_RULES, "routes": ROUTES}
    out = run(params, {"$target": target})
    if index < 3:
        expected = {"value": target, "operator": "==", "compare": target}
        assert out == {"output_index": index, "matched_rule": expected}
    else:
        assert out == {"output_index": 3, "fallback": True}
    assert route(params, out) == [dst]


@pytest.mark.parametrize(("value", "index"), [("case1", 0), ("case2", 1), ("case3", 2)])
def test_scenario_24_switch_on_input_value(value: str, index: int) -> None:
    """Scenario 24 = upstream's services/rune-worker/integration/switch_integration_test.go."""
    rules = [
        {"value": "$input.value", "operator": "==", "compare": "case1"},
        {"value": "$input.value", "operator": "==", "compare": "case2"},
    ]
    out = run({"rules": rules, "routes": ROUTES[:3]}, {"$input": {"value": value}})
    assert out["output_index"] == index


# (value, operator, compare, context, matches) - operand rules and operators of upstream's
# services/rune-worker/pkg/nodes/custom/switch/evaluator.go
RULES = [
    ("$n", "is equal to", 5, {"$n": 5}, True),
    ("$n", "is not equal to", "5", {"$n": 5}, False),
    ("$n", "is greater than", "4", {"$n": 5}, True),
    ("$n", "is less than", 4, {"$n": 5}, False),
    ("$n", "is greater than or equal to", 5, {"$n": 5.0}, True),
    ("$n", "is less than or equal to", "4.5", {"$n": 5}, False),
    ("$n", " >= ", 5, {"$n": 5}, True),
    ("$n", "<", "$m", {"$n": 1, "$m": 2}, True),
    ("$n", "!=", "null", {"$n": None}, False),
    ("$s", "contains", "'ell'", {"$s": "hello"}, True),
    ("$s", "contains", "xyz", {"$s": "hello"}, False),
    ("$l", "contains", "b", {"$l": ["a", "b"]}, True),
    ("$l", "contains", "a", {"$l": ["ab"]}, False),
    ("{{ $s }}", "==", "{{ $t }}", {"$s": "a b", "$t": "a b"}, True),
    ("'$s'", "==", "$s", {"$s": "$s"}, True),  # quoted value is a literal
    ("$weird key", "==", "yes", {"$weird key": "yes"}, True),  # direct-lookup fallback
    ("$node.x", "==", 1, {"$node.x": 1}, True),  # literal key when the root is missing
    ("$flag", "==", True, {"$flag": True}, True),
    ("$flag", "==", "true", {"$flag": True}, True),
    ("$s", "==", "nil", {"$s": None}, True),
    (5, "==", "5.0", {}, True),  # a non-string value is rendered then read back
    (True, "==", True, {}, True),
    ("hello $u", "==", "hello Bob", {"$u": "Bob"}, True),  # text is interpolated
    ("$g", "==", "hello $u", {"$g": "hello Bob", "$u": "Bob"}, True),  # on both sides
    ("$s", "==", "and or not", {"$s": "and or not"}, True),
]


@pytest.mark.parametrize(("value", "op", "compare", "context", "matches"), RULES)
def test_rule_semantics(
    value: Any, op: str, compare: Any, context: dict[str, Any], matches: bool
) -> None:
    rules = [{"value": value, "operator": op, "compare": compare}]
    out = run({"rules": rules}, context)
    assert out["output_index"] == (0 if matches else 1)


@pytest.mark.parametrize(
    ("value", "compare", "context", "reported"),
    [
        # Go: the value resolved by the executor, then `fmt.Sprintf("%v")` when not a string;
        # compare as resolved, its JSON type kept
        ("$http.status", "{{ $want }}", {"$http": {"status": 200}, "$want": 200.0}, ("200", 200.0)),
        ("$s", "'ok'", {"$s": "ok"}, ("ok", "'ok'")),  # quotes stay: the evaluator strips them
        (5, "5.0", {}, ("5", "5.0")),  # a literal compare is not read as a number yet
        (True, True, {}, ("true", True)),
        ("$flag", "true", {"$flag": True}, ("true", "true")),
        ("hello $u", "hello Bob", {"$u": "Bob"}, ("hello Bob", "hello Bob")),
        ("$obj", "$obj", {"$obj": {"a": [1]}}, ('{"a":[1]}', {"a": [1]})),
        ("$weird key", "yes", {"$weird key": "yes"}, ("$weird key", "yes")),  # as written
    ],
)
def test_matched_rule_is_the_rule_as_go_reports_it(
    value: Any, compare: Any, context: dict[str, Any], reported: tuple[str, Any]
) -> None:
    rules = [{"value": value, "operator": "==", "compare": compare}]
    out = run({"rules": rules}, context)
    want_value, want_compare = reported
    assert out == {
        "output_index": 0,
        "matched_rule": {"value": want_value, "operator": "==", "compare": want_compare},
    }


def test_first_match_wins() -> None:
    rules = [
        {"value": "$n", "operator": ">", "compare": 1},
        {"value": "$n", "operator": ">", "compare": 0},
    ]
    assert run({"rules": rules}, {"$n": 5})["output_index"] == 0


def test_failing_rules_are_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    rules = [
        "not a rule",
        {"value": "$s", "operator": ">", "compare": 1},
        {"value": "$missing.x", "operator": "==", "compare": 1},
        {"value": "$s", "operator": "approx", "compare": 1},
        {"value": "$s", "operator": 3, "compare": 1},
        {"value": "$s", "compare": 1},  # no operator
        {"value": "$s", "operator": "  ", "compare": 1},  # blanks are an operator, unknown
        {"value": "$s", "operator": "==", "compare": "abc"},
    ]
    with caplog.at_level(logging.WARNING, logger="runeworker.node"):
        out = run({"rules": rules}, {"$s": "abc"})
    assert out["output_index"] == 7
    assert [r.getMessage() for r in caplog.records] == [
        "switch node Route: rule 1 skipped: cannot convert 'abc' to number",
        "switch node Route: rule 2 skipped: reference $missing.x: node 'missing' not found in "
        "context",
        "switch node Route: rule 3 skipped: unsupported operator 'approx'",
        "switch node Route: rule 4 skipped: operator must be a string, not 3",
        "switch node Route: rule 5 skipped: operator must be a string, not null",
        "switch node Route: rule 6 skipped: unsupported operator '  '",
    ]


def test_a_skipped_rule_logs_no_credential_value(caplog: pytest.LogCaptureFixture) -> None:
    secret = "pw-Secret-4711"
    rules = [{"value": "{{ $credential.password }}", "operator": ">", "compare": 1}]
    wf = workflow({"rules": rules})
    node_ctx = NodeContext(
        workflow_id="wf",
        execution_id="ex",
        node=wf.node("sw"),
        params={"rules": rules},
        context={},
        workflow=wf,
        resolver=Resolver({}, credentials={"password": secret}),
    )
    with caplog.at_level(logging.WARNING, logger="runeworker.node"):
        assert switch.run(node_ctx)["output_index"] == 1
    assert [r.getMessage() for r in caplog.records] == [
        "switch node Route: rule 0 skipped: cannot convert '***' to number"
    ]


@pytest.mark.parametrize("rules", [[], None])
def test_no_rules_is_fallback_zero(rules: Any) -> None:
    assert run({"rules": rules}) == {"output_index": 0, "fallback": True}


def test_rules_may_come_from_a_reference() -> None:
    rules = [{"value": "$n", "operator": "==", "compare": 1}]
    assert (
        run({"rules": "$Config.rules"}, {"$Config": {"rules": rules}, "$n": 1})["output_index"] == 0
    )


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"value": 1}, 'rules parameter must be a list of rules, not {"value":1}'),
        ("$nope", "rules parameter: reference $nope: node 'nope' not found in context"),
    ],
)
def test_bad_rules_parameter(rules: Any, message: str) -> None:
    with pytest.raises(NodeError) as info:
        run({"rules": rules})
    assert str(info.value) == message


# The cases of TestExecutorDetermineNextNodesConditionalAndSwitch
# (services/rune-worker/pkg/executor/executor_paths_test.go) and the defensive ones of routing.go.
ROUTING = [
    ({"output_index": 1.0}, ROUTES, ["yahoo"]),
    ({"output_index": 1}, ROUTES, ["yahoo"]),
    ({"output_index": 3, "fallback": True}, ROUTES, ["other"]),
    ({"output_index": 10}, ROUTES, []),
    ({"output_index": 3, "fallback": True}, ROUTES[:3], []),  # no edge for the fallback
    ({"output_index": -1}, ROUTES, []),
    ({"output_index": 1.5}, ROUTES, []),
    ({"output_index": True}, ROUTES, []),
    ({"output_index": "1"}, ROUTES, []),
    ({}, ROUTES, []),
    (None, ROUTES, []),  # failed under the ignore policy
    ({"output_index": 1}, ["e_google", None], []),  # unwired handle
    ({"output_index": 0}, ["e_unknown"], []),
    ({"output_index": 0}, "e_google", []),
]


@pytest.mark.parametrize(("output", "routes", "expected"), ROUTING)
def test_router(output: dict[str, Any] | None, routes: Any, expected: list[str]) -> None:
    assert route({"rules": TARGET_RULES, "routes": routes}, output) == expected


def test_registration() -> None:
    spec = registry._REGISTRY["switch"]
    assert spec.run is switch.run
    assert spec.raw == frozenset({"rules"})
    assert spec.router is switch.route_switch
