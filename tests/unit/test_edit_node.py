"""edit node, after upstream's services/rune-worker/pkg/nodes/custom/edit/edit_node.go and the
cases of its e2e/edit_e2e_test.go and integration/edit_node_test.go."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from runeworker.engine import registry
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.registry import NodeContext
from runeworker.engine.resolver import Resolver
from runeworker.engine.workflow import parse_definition
from runeworker.errors import NodeError
from runeworker.nodes import edit


def context_for(params: dict[str, Any], context: dict[str, Any], creds: Any) -> NodeContext:
    node: dict[str, Any] = {"id": "edit-1", "name": "Edit", "type": "edit", "parameters": params}
    if creds is not None:
        node["credentials"] = {"id": "c1", "name": "c", "type": "basic", "values": creds}
    wf = parse_definition(json.dumps({"nodes": [node], "edges": []}).encode())
    return NodeContext(
        workflow_id="wf",
        execution_id="ex",
        node=wf.node("edit-1"),
        params=params,
        context=context,
        workflow=wf,
        resolver=Resolver(context, credentials=creds or {}, aliases=wf.aliases),
        credentials=dict(creds or {}),
    )


def run(
    assignments: list[dict[str, Any]],
    context: dict[str, Any],
    creds: dict[str, Any] | None = None,
    **params: Any,
) -> Any:
    """Run the node; return the edited `$json`, checking that the context was not mutated."""
    before = copy.deepcopy(context)
    out = edit.run(context_for({"assignments": assignments, **params}, context, creds))
    assert list(out) == ["$json"]
    assert context == before
    return out["$json"]


def fails(assignments: list[dict[str, Any]], context: dict[str, Any], **params: Any) -> str:
    with pytest.raises(NodeError) as info:
        run(assignments, context, **params)
    return str(info.value)


def a(name: str, value: Any, type_: str | None = "string") -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "value": value}
    if type_ is not None:
        entry["type"] = type_
    return entry


# -- the Go worker's scenarios -----------------------------------------------------------------


def test_scenario_4_target_path_with_nested_name() -> None:
    baby = {"first_name": "John", "last_name": "Doe", "email": "john@example.com"}
    result = run(
        [
            a("full_name", "{{ $json.first_name + ' ' + $json.last_name }}"),
            a("is_active", "true", "boolean"),
            a("metadata.source", "api_v2"),
        ],
        {"$baby": baby},
        mode="assignments",
        target_path="baby",
    )
    assert result == {
        **baby,
        "full_name": "John Doe",
        "is_active": True,
        "metadata": {"source": "api_v2"},
    }


def test_scenario_5_keep_only() -> None:
    source = {
        "id": "user-123",
        "email": "user@example.com",
        "password": "secret_password",
        "role": "admin",
        "token": "sensitive_token",
    }
    result = run(
        [a("id", "{{ $json.id }}"), a("email", "{{ $json.email }}")],
        {"$json": source},
        mode="keep_only",
    )
    assert result == {"id": "user-123", "email": "user@example.com"}


def test_scenario_6_numbers() -> None:
    result = run(
        [
            a("subtotal", "{{ $json.quantity * $json.unit_price }}", "number"),
            a("tax", "{{ $json.quantity * $json.unit_price * 0.1 }}", "number"),
            a("total", "{{ $json.quantity * $json.unit_price * 1.1 }}", "number"),
        ],
        {"$json": {"order_id": "ORD-123", "quantity": 10.0, "unit_price": 25.5}},
        mode="assignments",
    )
    assert result["subtotal"] == 255
    assert result["tax"] == pytest.approx(25.5)
    assert result["total"] == pytest.approx(280.5)
    for key in ("subtotal", "tax", "total"):
        assert isinstance(result[key], int | float) and not isinstance(result[key], bool)
    assert result["order_id"] == "ORD-123"


def test_scenario_13_without_target_path() -> None:
    result = run(
        [a("full_name", "{{ $json.first + ' ' + $json.last }}"), a("active", "true", "boolean")],
        {"$json": {"first": "Alice", "last": "Smith"}},
    )
    assert result == {"first": "Alice", "last": "Smith", "full_name": "Alice Smith", "active": True}


def test_scenario_34_output_reaches_the_completion_context() -> None:
    defn = resources.files("runeworker.examples").joinpath("edit.json").read_bytes()
    sample = json.loads(defn)["metadata"]["sample_input"]
    done = LocalRunner().run(start_message(defn, sample))
    assert done is not None and done.status == "completed"
    final = done.final_context
    assert final["$json"] == final["$Shape_Order"]["$json"]
    assert final["$json"] == {
        **sample,
        "customer": {"full_name": "Ada LOVELACE"},
        "subtotal": 255,
        "total": 280.5,
        "vip": True,
        "tags": "books, math",
        "summary": "Order ORD-123: 10 x 25.5",
        "metadata": {"source": "runeworker-example"},
    }
    assert final["$Report"]["message"] == (
        "Order ORD-123: 10 x 25.5 for Ada LOVELACE, total 280.5 (vip: true)"
    )


def test_registered_with_raw_parameters() -> None:
    spec = registry.get("edit")
    assert spec is not None and spec.run is edit.run
    assert spec.raw == frozenset({"assignments", "target_path", "array_path"})


# -- casts -------------------------------------------------------------------------------------

CASTS = [
    ("string", "plain", "plain"),
    ("string", 12, "12"),
    ("string", 2.5, "2.5"),
    ("string", True, "true"),
    ("string", None, "null"),
    ("string", {"a": [1, "x"]}, '{"a":[1,"x"]}'),
    ("string", [1, 2], "[1,2]"),
    ("number", 3, 3),
    ("number", 2.5, 2.5),
    ("number", 4.0, 4),
    ("number", "42", 42),
    ("number", " 2.75 ", 2.75),
    ("number", "-1e3", -1000),
    ("boolean", True, True),
    ("boolean", False, False),
    ("boolean", 0, False),
    ("boolean", 0.0, False),
    ("boolean", 2, True),
    ("boolean", "TRUE", True),
    ("boolean", " yes ", True),
    ("boolean", "1", True),
    ("boolean", "False", False),
    ("boolean", "no", False),
    ("boolean", "0", False),
    ("json", '{"a": [1, 2]}', {"a": [1, 2]}),
    ("json", "[true, null]", [True, None]),
    ("json", "3", 3),
    ("json", {"k": "v"}, {"k": "v"}),
    ("json", [1], [1]),
    ("json", 7, 7),
    ("json", None, None),
]


@pytest.mark.parametrize(("type_", "value", "expected"), CASTS)
def test_casts(type_: str, value: Any, expected: Any) -> None:
    assert edit.cast(value, type_) == expected
    assert type(edit.cast(value, type_)) is type(expected)
    # the same through the node, the value coming typed from the context
    result = run([a("out", "{{ $json.v }}", type_.upper())], {"$json": {"v": value}})
    assert result["out"] == expected


CAST_ERRORS = [
    ("number", "abc", 'cast to number: parsing "abc": invalid syntax'),
    ("number", "", 'cast to number: parsing "": invalid syntax'),
    ("number", True, "cannot cast boolean to number"),
    ("number", None, "cannot cast null to number"),
    ("number", [1], "cannot cast array to number"),
    ("number", {"a": 1}, "cannot cast object to number"),
    ("boolean", "maybe", "cannot cast string 'maybe' to boolean"),
    ("boolean", None, "cannot cast null to boolean"),
    ("boolean", {}, "cannot cast object to boolean"),
    ("json", "{oops", "cast to json: JSON is malformed: object keys must be strings (byte 1)"),
    ("json", "", "cast to json: Input data was truncated"),
    ("date", "x", "unsupported target type 'date'"),
]


@pytest.mark.parametrize(("type_", "value", "message"), CAST_ERRORS)
def test_cast_errors(type_: str, value: Any, message: str) -> None:
    with pytest.raises(NodeError) as info:
        edit.cast(value, type_)
    assert str(info.value) == message
    text = fails([a("out", "{{ $json.v }}", type_)], {"$json": {"v": value}})
    assert text == f"type cast for 'out': {message}"


def test_a_whole_expression_may_close_nested_braces_with_its_own() -> None:
    # `}}` inside the expression: upstream's `^\\s*\\{\\{(.+)\\}\\}\\s*$` takes the last one.
    result = run(
        [
            a("ids", "{{ $json.xs.map(x => {return {id: x}}) }}", "json"),
            a("obj", " {{ ({a: {b: $json.xs.length}}) }} ", "json"),
        ],
        {"$json": {"xs": [1, 2]}},
    )
    assert result["ids"] == [{"id": 1}, {"id": 2}]
    assert result["obj"] == {"a": {"b": 2}}


def test_lone_surrogates_read_as_the_replacement_character() -> None:
    # Half of a UTF-16 surrogate pair, as JavaScript strings and JSON text may hold one: U+FFFD,
    # as goja's export and Go's encoding/json make it (not a DecodeError failing the node).
    result = run(
        [
            a("js", "{{ '\\ud83d' + 'x' }}"),
            a("obj", "{{ ({k: ['\\udc00']}) }}", "json"),
            a("text", "<{{ '\\ud800' }}>"),
            a("cast", '["\\ud83d", "\\ud83d\\ude00"]', "json"),
        ],
        {"$json": {}},
    )
    assert result == {
        "js": "\ufffdx",
        "obj": {"k": ["\ufffd"]},
        "text": "<\ufffd>",
        "cast": ["\ufffd", "\U0001f600"],
    }


def test_type_defaults_to_string() -> None:
    result = run([a("n", "{{ 1 + 1 }}", None), a("m", "{{ 2 }}", "")], {"$json": {}})
    assert result == {"n": "2", "m": "2"}


@pytest.mark.parametrize("type_", [5, True, ["number"], {"t": "number"}])
def test_a_type_that_is_not_a_string_is_string(type_: Any) -> None:
    """Upstream reads `type` with `.(string)`: anything else is `string`, never an error."""
    assert run([a("n", "{{ 1 + 1 }}", type_)], {"$json": {}}) == {"n": "2"}


# -- values ------------------------------------------------------------------------------------

CTX = {
    "$json": {"name": "Ada", "age": 36, "tags": ["x", "y"], "profile": {"city": "London"}},
    "$Fetch": {"status": 200, "body": {"ids": [3, 4]}},
    "$input": {"id": 7},
}


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        # partial interpolation, each block on its own (Go evaluates only a whole-value block)
        ("Hello {{ $json.name }}!", "string", "Hello Ada!"),
        ("{{ $json.name }} is {{ $json.age }}", "string", "Ada is 36"),
        ("ids: {{ $Fetch.body.ids }}", "string", "ids: [3,4]"),
        # one block alone keeps the JSON type
        ("{{ $json.tags }}", "json", ["x", "y"]),
        ("{{ $json.profile }}", "json", {"city": "London"}),
        (" {{ $json.age + 1 }} ", "number", 37),
        ("{{ $json.age > 18 }}", "boolean", True),
        ("{{ $json.missing }}", "json", None),
        # no {{: ordinary references, whole ones typed (never "", as Go makes a non-string)
        ("$Fetch.status", "number", 200),
        ("$Fetch.body", "json", {"ids": [3, 4]}),
        ("$json.tags", "json", ["x", "y"]),
        ("Status $Fetch.status for $input.id", "string", "Status 200 for 7"),
        ("costs $5", "string", "costs $5"),
        ("plain text", "string", "plain text"),
        # literal parts of a partial template resolve references too
        ("$json.name is {{ $json.age * 2 }}", "string", "Ada is 72"),
        # the expression language: concatenation, arithmetic, logic, ternary, methods
        ("{{ 'Hi ' + $json.name + ', ' + $json.age }}", "string", "Hi Ada, 36"),
        ("{{ $json.age * 12 + 6 }}", "number", 438),
        ("{{ $json.age / 8 }}", "number", 4.5),
        ("{{ $json.age >= 18 && $json.name !== '' }}", "boolean", True),
        ("{{ $json.age < 30 ? 'young' : 'other' }}", "string", "other"),
        ("{{ $json.name.toUpperCase() + '!' }}", "string", "ADA!"),
        ("{{ $json.tags.join('+') }}", "string", "x+y"),
        ("{{ 'a;b'.split(';') }}", "json", ["a", "b"]),
        ("{{ $json.tags.includes('x') }}", "boolean", True),
        ("{{ Math.round($json.age / 7) }}", "number", 5),
        ("{{ JSON.stringify($json.profile) }}", "string", '{"city":"London"}'),
        # values that are not strings are taken as JSON (their references resolved)
        (5, "number", 5),
        (True, "boolean", True),
        ({"id": "$input.id", "fixed": 1}, "json", {"id": 7, "fixed": 1}),
    ],
)
def test_values(value: Any, type_: str, expected: Any) -> None:
    assert run([a("out", value, type_)], CTX)["out"] == expected


def test_assignments_see_the_source_not_earlier_assignments() -> None:
    result = run([a("name", "Bob"), a("copy", "{{ $json.name }}")], {"$json": {"name": "Ada"}})
    assert result == {"name": "Bob", "copy": "Ada"}


def test_node_names_with_dashes_are_reachable() -> None:
    # In JavaScript `$Fetch-Users.count` is `$Fetch - Users.count`: as with upstream's goja, a
    # name that is not an identifier is a property of the global object. Bare references
    # (outside {{ }}) still take the name whole.
    context = {"$json": {}, "$Fetch-Users": {"count": 3}}
    result = run([a("n", "{{ globalThis['$Fetch-Users'].count - 1 }}", "number")], context)
    assert result == {"n": 2}
    assert run([a("n", "$Fetch-Users.count", "number")], context) == {"n": 3}
    assert fails([a("n", "{{ $Fetch-Users.count - 1 }}", "number")], context) == (
        "resolve value for 'n': ReferenceError: $Fetch is not defined"
    )


def test_no_template_injection_from_context_data() -> None:
    evil = "{{ $credential.password }}"
    context = {"$json": {"note": evil, "ref": "$credential.password"}}
    creds = {"password": "s3cret"}
    result = run(
        [
            a("whole", "{{ $json.note }}"),
            a("partial", "Note: {{ $json.note }}"),
            a("bare", "$json.note"),
            a("bare_text", "Note: $json.note and $json.ref"),
            a("concat", "{{ $json.note + $json.ref }}"),
            a("direct", "{{ $credential.password }}"),  # the definition itself may use it
        ],
        context,
        creds,
    )
    assert result["whole"] == evil
    assert result["partial"] == "Note: " + evil
    assert result["bare"] == evil
    assert result["bare_text"] == "Note: " + evil + " and $credential.password"
    assert result["concat"] == evil + "$credential.password"
    assert result["direct"] == "s3cret"


@pytest.mark.parametrize(
    "expression",
    [
        "{{ (function () { for (;;) {} })() }}",
        "{{ $json.big.split(',').map(function (x) { while (x) {} }) }}",
        "{{ 1 }} and {{ (function () { for (;;) {} })() }}",
    ],
)
def test_runaway_expression_times_out(expression: str) -> None:
    big = ",".join(["item"] * 200_000)
    text = fails([a("x", expression)], {"$json": {"big": big}})
    assert text == "resolve value for 'x': expression timeout or cancelled"


def test_used_keys_are_recorded() -> None:
    context = {"$json": {"a": 1}, "$Fetch": {"status": 200}, "$other": 1}
    ctx = context_for(
        {"assignments": [a("s", "{{ $Fetch.status + $json.a }}"), a("t", "$input x")]},
        context,
        None,
    )
    edit.run(ctx)
    assert ctx.resolver.used_keys == {"$Fetch", "$json", "$input"}


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        ([], "assignments are required"),
        (None, "assignments are required"),
        ("x", "assignments must be a list of {name, value, type} objects"),
        (["x"], "assignment 1 must be an object with name, value and type"),
        ([a("", "v")], "assignment name is required"),
        ([{"value": "v"}], "assignment name is required"),
        # JavaScript's own errors, as upstream's goja reports them (the words are QuickJS's)
        ([a("x", "{{ 1 + }}")], "resolve value for 'x': SyntaxError: unexpected token"),
        ([a("x", "{{ $nope.y }}")], "resolve value for 'x': ReferenceError: $nope is not defined"),
        (
            [a("x", "{{ $json.m.y }}")],
            "resolve value for 'x': TypeError: cannot read property 'y' of undefined",
        ),
        ([a("x", "$json.m.y")], "resolve value for 'x': reference $json.m.y: field 'm' not found"),
        # 1 / 0 is Infinity in JavaScript: a value, which JSON cannot hold as a number
        (
            [a("x", "{{ 1 / 0 }}", "number")],
            "type cast for 'x': cast to number: Infinity is not a finite number",
        ),
        ([a("x", "{{ 0 / 0 }}", "json")], "type cast for 'x': cast to json: NaN is not a finite"),
        ([a("x", "v", "date")], "type cast for 'x': unsupported target type 'date'"),
        ([a("a.b", "v")], "set nested for 'a.b': cannot set property 'a' on non-object"),
        ([a("s.t.u", "v")], "set nested for 's.t.u': cannot set property 't' on non-object"),
        ([a("a..b", "v")], "set nested for 'a..b': path 'a..b' has an empty key"),
    ],
)
def test_errors(assignments: Any, message: str) -> None:
    context = {"$json": {"a": 1, "s": {"t": "text"}}}
    with pytest.raises(NodeError) as info:
        edit.run(context_for({"assignments": assignments}, context, None))
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        # goja's Exception.Error() is the value's String() and its position (`null at
        # <eval>:1:1(1)`): the value as goja writes it, without the position
        ("throw null", "null"),
        ("throw undefined", "undefined"),
        ("throw 42", "42"),
        ("throw -1001234567890", "-1001234567890"),
        ("throw {a: 1}", "[object Object]"),
        ("throw [1, 2]", "1,2"),
        ("throw 'x'", "x"),
        ("throw 'null'", "null"),
        ("throw ''", '""'),
        ("throw Symbol('s')", "Symbol(s)"),
        ("throw Object.create(null)", "[object Object]"),
        ("throw {toString() { return 'mine' }}", "mine"),
        ("throw 'InternalError: interrupted'", "InternalError: interrupted"),
        ("throw 'InternalError: out of memory'", "InternalError: out of memory"),
        ("throw new Error('boom')", "Error: boom"),
    ],
)
def test_a_thrown_value_is_named_as_goja_writes_it(expression: str, message: str) -> None:
    text = fails([a("x", "{{ " + expression + " }}")], {"$json": {}})
    assert text == f"resolve value for 'x': {message}"


def test_a_thrown_object_that_cannot_be_written_in_time_times_out() -> None:
    text = fails([a("x", "{{ (() => { throw {toString() { for (;;) {} }} })() }}")], {"$json": {}})
    assert text == "resolve value for 'x': expression timeout or cancelled"


# -- nested set paths --------------------------------------------------------------------------


def test_nested_paths_create_objects_and_keep_siblings() -> None:
    source = {"meta": {"a": 1, "deep": {"b": 2}}, "keep": True}
    result = run(
        [a("meta.deep.c", "3", "number"), a("meta.new.x.y", "z"), a("top", "t")],
        {"$json": source},
    )
    assert result == {
        "meta": {"a": 1, "deep": {"b": 2, "c": 3}, "new": {"x": {"y": "z"}}},
        "keep": True,
        "top": "t",
    }
    assert source == {"meta": {"a": 1, "deep": {"b": 2}}, "keep": True}  # not mutated


def test_nested_set_into_a_value_taken_from_the_context_copies_it() -> None:
    context = {"$json": {}, "$Meta": {"source": "api"}}
    result = run([a("m", "$Meta", "json"), a("m.extra", "1", "number")], context)
    assert result == {"m": {"source": "api", "extra": 1}}
    assert context["$Meta"] == {"source": "api"}


# -- sources: target_path, array_path, lists ---------------------------------------------------


@pytest.mark.parametrize("path", ["baby", "$baby", "baby.info", "$baby.info", "b-1.info"])
def test_target_path_is_tried_as_written_then_with_dollar(path: str) -> None:
    info = {"first": "Jo"}
    context = {"$baby": {"info": info}, "$b-1": {"info": info}, "$json": {"other": 1}}
    result = run([a("seen", "{{ $json.first || 'top' }}")], context, target_path=path)
    if path.endswith("info"):
        assert result == {"first": "Jo", "seen": "Jo"}
    else:
        assert result == {"info": info, "seen": "top"}


def test_target_path_literal_key_and_legacy_array_path() -> None:
    context = {"plain": {"v": 1}, "$rows": [{"v": 2}]}
    assert run([a("w", "{{ $json.v }}", "number")], context, target_path="plain") == {
        "v": 1,
        "w": 1,
    }
    assert run([a("w", "{{ $json.v * 10 }}", "number")], context, array_path="rows") == [
        {"v": 2, "w": 20}
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing", "get target path 'missing': reference $missing: node 'missing' not found"),
        ("none", "target path 'none' resolved to nil"),
        ("text", "target data is neither map nor array"),
        (5, "target_path must be a dot path string, not 5"),
    ],
)
def test_target_path_errors(path: Any, message: str) -> None:
    context: dict[str, Any] = {"$json": {}, "$none": None, "$text": "abc"}
    assert fails([a("x", "1")], context, target_path=path).startswith(message)


def test_list_targets_are_edited_per_element() -> None:
    rows = [{"n": 1, "name": "a"}, {"n": 2, "name": "b"}]
    context = {"$json": {"rows": rows}, "$Rows": rows}
    result = run(
        [a("double", "{{ $json.n * 2 }}", "number"), a("label", "#{{ $json.n }} $json.name")],
        context,
        target_path="Rows",
    )
    assert result == [
        {"n": 1, "name": "a", "double": 2, "label": "#1 a"},
        {"n": 2, "name": "b", "double": 4, "label": "#2 b"},
    ]
    kept = run([a("n", "{{ $json.n }}", "number")], {"$json": rows}, mode="KEEP_ONLY")
    assert kept == [{"n": 1}, {"n": 2}]


def test_list_target_errors_name_the_index() -> None:
    context = {"$json": [{"n": 1}, {"n": "x"}]}
    # 'x' * 2 is NaN in JavaScript; the number cast refuses it
    assert fails([a("m", "{{ $json.n * 2 }}", "number")], context) == (
        "apply assignments at index 1: type cast for 'm': "
        "cast to number: NaN is not a finite number"
    )
    assert fails([a("m", "1")], {"$json": [{"n": 1}, 5]}) == "item at index 1 is not a map"
    assert fails([a("m", "1")], {"$json": "text"}) == "target data is neither map nor array"


def test_missing_json_starts_from_an_empty_object() -> None:
    assert run([a("x", "1", "number")], {}) == {"x": 1}
    assert run([a("x", "1", "number")], {"$json": None}) == {"x": 1}


def test_unknown_mode_acts_as_assignments() -> None:
    assert run([a("x", "1")], {"$json": {"y": 2}}, mode="upsert") == {"y": 2, "x": "1"}


# -- JavaScript, as upstream (issue 11, item 11) -------------------------------------------------


def test_rfc_007_example_and_javascript_built_ins() -> None:
    context = {
        "$json": {"total": 100.0, "shipping": {"street": "123 Main St", "city": "Cairo"}},
        "$http_fetch_rates": {"body": {"tax_rate": 0.15}},
    }
    result = run(
        [
            a("tax_amount", "{{ $json.total * $http_fetch_rates.body.tax_rate }}", "number"),
            a("shipping.full_address", "{{ $json.shipping.street + ', ' + $json.shipping.city }}"),
            a("when", "{{ new Date(0).toISOString() }}"),
            a("codes", "{{ ['b', 'a'].sort().map(function (c) { return c.toUpperCase(); }) }}",
              "json"),
            a("body", "{{ JSON.stringify({ city: $json.shipping.city }) }}"),
            a("ratio", "{{ 1 / 0 }}"),
        ],
        context,
    )  # fmt: skip
    assert result["tax_amount"] == 15
    assert result["shipping"]["full_address"] == "123 Main St, Cairo"
    assert result["when"] == "1970-01-01T00:00:00.000Z"
    assert result["codes"] == ["A", "B"]
    assert result["body"] == '{"city":"Cairo"}'
    assert result["ratio"] == "Infinity"


def test_credentials_and_context_reach_the_expressions_not_python() -> None:
    result = run(
        [a("p", "{{ $credential.password.length }}", "number"), a("k", "{{ 'x'.__class__ }}")],
        {"$json": {}},
        {"password": "s3cret"},
    )
    assert result == {"p": 6, "k": "null"}


def test_a_node_without_expressions_starts_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any) -> None:
        raise AssertionError("a JavaScript engine was started")

    monkeypatch.setattr(edit, "JavaScript", refuse)
    ctx = context_for({"assignments": [a("x", "$json.name"), a("y", 2, "number")]}, CTX, None)
    assert edit.run(ctx) == {"$json": {**CTX["$json"], "x": "Ada", "y": 2}}
