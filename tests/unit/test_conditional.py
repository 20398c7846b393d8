"""conditional node and the shared expression evaluator, after upstream's
services/rune-worker/pkg/nodes/custom/conditional/evaluator.go and its evaluator_test.go."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runeworker.engine import registry
from runeworker.engine.registry import NodeContext
from runeworker.engine.resolver import Resolver
from runeworker.engine.workflow import Workflow, parse_definition
from runeworker.errors import NodeError
from runeworker.nodes import conditional
from runeworker.nodes.expression import Expression, compare, parse_number, truthy

EDGES = [
    {"id": "e_true", "src": "cond", "dst": "yes"},
    {"id": "e_false", "src": "cond", "dst": "no"},
]


def workflow(params: dict[str, Any]) -> Workflow:
    nodes = [
        {"id": "cond", "name": "Check", "type": "conditional", "parameters": params},
        {"id": "yes", "name": "Yes", "type": "log"},
        {"id": "no", "name": "No", "type": "log"},
    ]
    return parse_definition(json.dumps({"nodes": nodes, "edges": EDGES}).encode())


def run(params: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    wf = workflow(params)
    ctx = dict(context or {})
    node_ctx = NodeContext(
        workflow_id="wf",
        execution_id="ex",
        node=wf.node("cond"),
        params=params,
        context=ctx,
        workflow=wf,
        resolver=Resolver(ctx),
    )
    return conditional.run(node_ctx)


def result(expression: Any, context: dict[str, Any] | None = None, **params: Any) -> bool:
    out = run({"expression": expression, **params}, context)
    assert isinstance(out["result"], bool)
    return bool(out["result"])


# The examples of upstream's evaluator_test.go, plus what it gets wrong: float 0 is falsy, an
# operator inside quotes is text, parentheses group, data from the context is never re-parsed.
CASES = [
    ("$value == 42", {"$value": 42}, True),
    ("$value == 42", {"$value": 41}, False),
    ("$message contains 'world'", {"$message": "hello world"}, True),
    ("$message contains 'world'", {"$message": "hello there"}, False),
    ("$a == true and $b == true", {"$a": True, "$b": True}, True),
    ("$a == true and $b == true", {"$a": True, "$b": False}, False),
    ("$status >= 200 and $status < 300", {"$status": 200}, True),
    ("$status >= 200 and $status < 300", {"$status": 300}, False),
    ("not $x", {"$x": False}, True),
    ("not $x", {"$x": "yes"}, False),
    ("'hello' == \"hello\"", {}, True),
    ("false or true and false", {}, False),
    ("true", {}, True),
    ("$useGoogle == true", {"$useGoogle": True}, True),
    ("$useGoogle == true", {"$useGoogle": False}, False),
    ("$FetchUUID.status == 200", {"$FetchUUID": {"status": 200}}, True),
    # quotes hide operators and keywords
    ("'a==b' == 'a==b'", {}, True),
    ("$s == 'x >= y'", {"$s": "x >= y"}, True),
    ("$s == 'p or q'", {"$s": "p or q"}, True),
    ("$s contains 'a and b'", {"$s": "1 a and b 2"}, True),
    # parentheses and precedence: not > and > or
    ("($a == 1 or $b == 2) and not ($c)", {"$a": 0, "$b": 2, "$c": False}, True),
    ("($a == 1 or $b == 2) and not ($c)", {"$a": 0, "$b": 2, "$c": True}, False),
    ("$a == 1 or $b == 2 and $c", {"$a": 1, "$b": 0, "$c": False}, True),
    ("($a == 1 or $b == 2) and $c", {"$a": 1, "$b": 0, "$c": False}, False),
    ("not $a and $b", {"$a": False, "$b": True}, True),
    ("not ($a and $b)", {"$a": True, "$b": True}, False),
    ("!$a", {"$a": True}, False),
    ("!($a == 1)", {"$a": 2}, True),
    ("$a == 1 && $b == 2", {"$a": 1, "$b": 2}, True),
    ("$a == 1 || $b == 2", {"$a": 0, "$b": 3}, False),
    # JSON 0 is falsy, int or float
    ("$zero", {"$zero": 0}, False),
    ("$zero", {"$zero": 0.0}, False),
    ("not $zero", {"$zero": 0.0}, True),
    ("$n", {"$n": 0.5}, True),
    ("$s", {"$s": "0"}, False),
    ("$s", {"$s": "false"}, False),
    ("$s", {"$s": ""}, False),
    ("$s", {"$s": "no"}, True),
    ("$n", {"$n": None}, False),
    ("$l", {"$l": []}, True),
    # data containing " and " / " or " / quotes is a typed operand, never expression text
    ("$name == $other", {"$name": "bob and alice", "$other": "bob and alice"}, True),
    ("$name", {"$name": "x or true"}, True),
    ("$name == 'x'", {"$name": "y' or 'x' == 'x"}, False),
    ("$name contains ' and '", {"$name": "salt and pepper"}, True),
    # single references keep their type
    ("$flag", {"$flag": True}, True),
    ("$flag", {"$flag": False}, False),
    ("{{ $flag }}", {"$flag": False}, False),
    ("{{ $value }} == 42", {"$value": 42}, True),
    ("{{$value}} > 41", {"$value": 42}, True),
    # comparison semantics
    ("$n == null", {"$n": None}, True),
    ("$n == nil", {"$n": None}, True),
    ("$n != 0", {"$n": None}, True),
    ("$n == 0", {"$n": None}, False),
    ("$s == 42", {"$s": "42.0"}, True),
    ("$s > 9", {"$s": "10"}, True),
    ("$s > '9'", {"$s": "10"}, True),
    ("$s == '10'", {"$s": 10.0}, True),
    ("$f == 1.5", {"$f": 1.5}, True),
    ("$a == $b", {"$a": {"k": 1}, "$b": {"k": 1}}, True),
    ("$list contains 'b'", {"$list": ["a", "b"]}, True),
    ("$list contains 'z'", {"$list": ["a", "b"]}, False),
    ("$list contains 2", {"$list": [1, 2.0]}, True),
    ("$list contains 'a'", {"$list": ["ab"]}, False),  # membership, not substring of JSON
    ("$obj contains 'k'", {"$obj": {"k": 1}}, True),
    ("$json[1].name == 'B'", {"$json": [{"name": "A"}, {"name": "B"}]}, True),
    # Go picks the first operator by priority; the rest of the text is the operand
    ("$m == hello world", {"$m": "hello world"}, True),
    ("$x == not found", {"$x": "not found"}, True),
    ("O'Brien == O'Brien", {}, True),
    # unquoted text is interpolated like the generic resolver does
    ("$msg == hi $user.name", {"$msg": "hi Bob", "$user": {"name": "Bob"}}, True),
    # short-circuit: the missing reference is never looked up
    ("true or $missing", {}, True),
    ("false and $missing", {}, False),
]


@pytest.mark.parametrize(("expression", "context", "expected"), CASES)
def test_expression_table(expression: str, context: dict[str, Any], expected: bool) -> None:
    assert result(expression, context) is expected


def test_output_shows_the_expression_with_references_rendered() -> None:
    out = run(
        {"expression": "$status >= 200 and {{ $name }} == 'x' and $big < 1"},
        {"$status": 200.0, "$name": "x", "$big": 1234567},
    )
    assert out == {"result": False, "expression": "200 >= 200 and x == 'x' and 1234567 < 1"}


def test_display_leaves_unresolved_references_as_written() -> None:
    out = run({"expression": "true or $missing.x"})
    assert out == {"result": True, "expression": "true or $missing.x"}


def test_display_interpolates_text_operands() -> None:
    out = run({"expression": "id-$n == id-7"}, {"$n": 7})
    assert out == {"result": True, "expression": "id-7 == id-7"}


@pytest.mark.parametrize("value", [True, False])
def test_boolean_expression(value: bool) -> None:
    assert run({"expression": value}) == {"result": value, "expression": str(value).lower()}


STRUCTURED = [
    ([{"op1": "$status", "operator": "eq", "op2": 200}], {}, True),
    ([{"op1": "$status", "operator": "gt", "op2": 300}], {}, False),
    ([{"op1": "{{ $status }}", "operator": "gte", "op2": "200"}], {}, True),
    (
        [{"op1": "$status", "operator": ">=", "op2": 200}, {"op1": 1, "operator": "lt", "op2": 0}],
        {},
        False,
    ),
    (
        [{"op1": "$status", "operator": "ne", "op2": 200}, {"op1": 1, "operator": "lt", "op2": 2}],
        {"operator": "or"},
        True,
    ),
    ([{"op1": "$name", "operator": "contains", "op2": "and"}], {"operator": "and"}, True),
    ([{"op1": "$name", "operator": "not_contains", "op2": "xyz"}], {}, True),
    ([{"op1": "$name", "operator": "is equal to", "op2": "salt and pepper"}], {}, True),
    ([{"op1": "$status", "operator": "lte", "op2": 199}], {"operator": "OR"}, False),
    ({"op1": "$status", "operator": "==", "op2": "200"}, {}, True),
    # an empty or null joiner means "and"
    (
        [{"op1": 1, "operator": "eq", "op2": 1}, {"op1": 1, "operator": "eq", "op2": 2}],
        {"operator": ""},
        False,
    ),
    (
        [{"op1": 1, "operator": "eq", "op2": 1}, {"op1": 1, "operator": "eq", "op2": 1}],
        {"operator": None},
        True,
    ),
]


@pytest.mark.parametrize(("conditions", "params", "expected"), STRUCTURED)
def test_structured_form(conditions: Any, params: dict[str, Any], expected: bool) -> None:
    context = {"$status": 200, "$name": "salt and pepper"}
    assert result(conditions, context, **params) is expected


def test_structured_form_display() -> None:
    out = run(
        {
            "expression": [
                {"op1": "$status", "operator": "eq", "op2": 200},
                {"op1": "$name", "operator": "not_contains", "op2": "x"},
            ],
            "operator": "or",
        },
        {"$status": 201, "$name": "abc"},
    )
    assert out == {"result": True, "expression": "201 == 200 or abc not contains x"}


@pytest.mark.parametrize("joiner", [None, ""])
def test_structured_form_display_of_the_default_joiner(joiner: str | None) -> None:
    conditions = [
        {"op1": "$status", "operator": "eq", "op2": 200},
        {"op1": 1, "operator": "lt", "op2": 2},
    ]
    out = run({"expression": conditions, "operator": joiner}, {"$status": 200})
    assert out == {"result": True, "expression": "200 == 200 and 1 < 2"}


def test_structured_or_stops_at_the_first_true_condition() -> None:
    # The second condition is never evaluated, so its failing reference is no error; the
    # display shows it as written.
    conditions = [
        {"op1": 1, "operator": "eq", "op2": 1},
        {"op1": "$missing.x", "operator": "eq", "op2": 2},
    ]
    out = run({"expression": conditions, "operator": "or"})
    assert out == {"result": True, "expression": "1 == 1 or $missing.x == 2"}


ERRORS = [
    ({"expression": ""}, {}, "expression parameter is required"),
    ({"expression": "   "}, {}, "expression parameter is required"),
    ({}, {}, "expression parameter is required"),
    ({"expression": []}, {}, "expression parameter is required"),
    (
        {"expression": 5},
        {},
        "expression parameter must be a string or a list of conditions, not 5",
    ),
    (
        {"expression": "$name > 5"},
        {"$name": "abc"},
        "cannot convert 'abc' to number, in the comparison $name > 5",
    ),
    (
        {"expression": "$missing.x == 1"},
        {},
        "reference $missing.x: node 'missing' not found in context",
    ),
    (
        {"expression": "$a.b == 1"},
        {"$a": {"c": 1}},
        "reference $a.b: field 'b' not found at $a",
    ),
    ({"expression": "$a == 'x"}, {}, "expression has an unclosed quote at position 6"),
    ({"expression": "{{ $a == 1"}, {}, "expression has an unclosed '{{' at position 0"),
    ({"expression": "($a == 1"}, {"$a": 1}, "expected ')' but found the end in '($a == 1'"),
    ({"expression": "$a == 1)"}, {}, "unexpected ')' at position 7 in expression '$a == 1)'"),
    ({"expression": "$a ==  "}, {}, "missing right operand of '==' in '$a ==  '"),
    ({"expression": "$a and"}, {}, "expected an operand but found the end in '$a and'"),
    (
        {"expression": "$a == f(x)"},
        {},
        "unexpected '(' at position 7 in '$a == f(x)' (quote text that contains parentheses)",
    ),
    (
        {"expression": [{"op1": 1, "operator": "near", "op2": 2}]},
        {},
        "expression condition 1: unsupported operator 'near'",
    ),
    (
        {"expression": [{"op1": 1, "operator": "eq", "op2": 1}, "x"]},
        {},
        "expression condition 2 must be an object with op1, operator and op2",
    ),
    (
        {"expression": [{"op1": "$nope", "operator": "eq", "op2": 1}]},
        {},
        "expression condition 1: op1: reference $nope: node 'nope' not found in context",
    ),
    (
        {"expression": [{"op1": 1, "operator": "eq", "op2": "$nope.x"}]},
        {},
        "expression condition 1: op2: reference $nope.x: node 'nope' not found in context",
    ),
    (
        {"expression": [{"op1": 1, "op2": 1}]},
        {},
        "expression condition 1 must be an object with op1, operator and op2",
    ),
    (
        {"expression": [{"op1": "x", "operator": "gt", "op2": 1}]},
        {},
        "expression condition 1 (>): cannot convert 'x' to number",
    ),
    (
        {"expression": [{"op1": 1, "operator": "eq", "op2": 1}], "operator": "xor"},
        {},
        "operator parameter must be 'and' or 'or', not 'xor'",
    ),
    (  # a joiner that is no text is refused like an unknown one
        {"expression": [{"op1": 1, "operator": "eq", "op2": 1}], "operator": 5},
        {},
        "operator parameter must be 'and' or 'or', not '5'",
    ),
]


@pytest.mark.parametrize(("params", "context", "message"), ERRORS)
def test_errors(params: dict[str, Any], context: dict[str, Any], message: str) -> None:
    with pytest.raises(NodeError) as info:
        run(params, context)
    assert str(info.value) == message


def test_evaluator_helpers() -> None:
    assert compare("10", "is greater than", 9) is True
    assert compare(None, "!=", None) is False
    assert truthy(0.0) is False
    assert truthy({}) is True
    with pytest.raises(NodeError, match=r"^unsupported operator 'approx'$"):
        compare(1, "approx", 1)
    with pytest.raises(NodeError, match=r"^empty expression$"):
        Expression(" ")
    with pytest.raises(NodeError, match=r"^expression is nested too deeply$"):
        Expression("(" * 5000 + "true" + ")" * 5000)


def test_digit_strings_beyond_a_double_are_no_numbers() -> None:
    # strconv.ParseFloat's range, without int()'s 4300-digit ValueError
    assert parse_number("9" * 308) == int("9" * 308)
    assert parse_number("9" * 309) is None
    assert parse_number("-" + "1" * 5000) is None
    assert parse_number("0" * 5000 + "12") == 12
    assert parse_number("-" + "0" * 5000 + "12") == -12
    assert result("$json.v > 1", {"$json": {"v": "0" * 5000 + "2"}}) is True
    with pytest.raises(NodeError, match=r"^cannot convert '1111"):
        run({"expression": "$json.v > 1"}, {"$json": {"v": "1" * 5000}})


def _edges(params: dict[str, Any], output: dict[str, Any] | None) -> list[str]:
    wf = workflow(params)
    return [e.dst for e in conditional.route_conditional(wf.node("cond"), output, wf)]


ROUTES = [
    ({"result": True}, ["yes"]),
    ({"result": False}, ["no"]),
    ({"result": "true"}, ["no"]),  # not a bool: false
    (None, ["no"]),  # failed under the ignore policy
]


@pytest.mark.parametrize(("output", "expected"), ROUTES)
def test_router(output: dict[str, Any] | None, expected: list[str]) -> None:
    params = {"expression": "x", "true_edge_id": "e_true", "false_edge_id": "e_false"}
    assert _edges(params, output) == expected


@pytest.mark.parametrize("false_edge", [None, "", "e_unknown", 7, ["e_false"], {"id": "e_false"}])
def test_router_without_a_usable_edge_id_ends_the_branch(false_edge: Any) -> None:
    params = {"expression": "x", "true_edge_id": "e_true", "false_edge_id": false_edge}
    assert _edges(params, {"result": False}) == []
    assert _edges(params, {"result": True}) == ["yes"]


def test_run_then_route_scenario_31() -> None:
    params = {
        "expression": "$useGoogle == true",
        "true_edge_id": "e_true",
        "false_edge_id": "e_false",
    }
    for flag, dst in ((True, ["yes"]), (False, ["no"])):
        assert _edges(params, run(params, {"$useGoogle": flag})) == dst


def test_registration() -> None:
    spec = registry._REGISTRY["conditional"]
    assert spec.run is conditional.run
    assert spec.raw == frozenset({"expression"})
    assert spec.required == ("expression",)
    assert spec.router is conditional.route_conditional
