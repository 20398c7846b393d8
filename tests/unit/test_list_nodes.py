"""filter, sort and limit nodes and their shared helpers, after upstream's
services/rune-worker/pkg/nodes/shared/listops/listops.go: field paths never resolved against the
context, missing values last in both directions (Go puts them first when descending)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import msgspec
import pytest

from runeworker.commands.files import sample_input
from runeworker.engine import registry
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import NodeStatusMessage, decode_execution
from runeworker.engine.registry import NodeContext
from runeworker.engine.resolver import Resolver
from runeworker.engine.workflow import parse_definition
from runeworker.errors import NodeError
from runeworker.nodes import filter as filter_node
from runeworker.nodes import limit as limit_node
from runeworker.nodes import lists
from runeworker.nodes import sort as sort_node

NodeRun = Callable[[NodeContext], Any]


def run(fn: NodeRun, params: dict[str, Any], context: dict[str, Any] | None = None) -> Any:
    ctx = dict(context or {})
    nodes = [{"id": "n", "name": "N", "type": "x", "parameters": params}]
    wf = parse_definition(json.dumps({"nodes": nodes, "edges": []}).encode())
    node_ctx = NodeContext(
        workflow_id="wf",
        execution_id="ex",
        node=wf.node("n"),
        params=params,
        context=ctx,
        workflow=wf,
        resolver=Resolver(ctx),
    )
    return fn(node_ctx)


def fails(fn: NodeRun, params: dict[str, Any], context: dict[str, Any] | None = None) -> str:
    with pytest.raises(NodeError) as info:
        run(fn, params, context)
    return str(info.value)


def kept(items: list[Any], rules: list[Any], mode: str | None = None, **ctx: Any) -> list[Any]:
    params: dict[str, Any] = {"rules": rules}
    if mode is not None:
        params["match_mode"] = mode
    context = {"$json": items, **{"$" + k: v for k, v in ctx.items()}}
    out = run(filter_node.run, params, context)
    assert out["original_count"] == len(items)
    assert out["count"] == len(out["$json"])
    result: list[Any] = out["$json"]
    return result


def test_registration_declares_raw_parameters() -> None:
    specs = {name: registry.get(name) for name in ("filter", "sort", "limit")}
    shape = {n: (s.required, s.raw) for n, s in specs.items() if s is not None}
    assert shape == {
        "filter": (("rules",), frozenset({"rules", "input_array"})),
        "sort": (("rules",), frozenset({"rules", "input_array"})),
        "limit": (("count",), frozenset({"input_array"})),
    }


# -- operators --------------------------------------------------------------------------------

# (field value, operator, rule value, kept)
OPERATORS = [
    (5, "==", "5", True),
    (5, "is equal to", 5, True),
    (5, " IS EQUAL TO ", "6", False),
    (5, "!=", "6", True),
    (5, "is not equal to", "5", False),
    (10, ">", "9", True),
    ("10", "is greater than", 9, True),  # numeric, not text order ("10" < "9")
    (9, ">", 9, False),
    (3, "<", "4", True),
    (3, "is less than", 3, False),
    (3, ">=", 3, True),
    (2, "is greater than or equal to", 3, False),
    (3, "<=", 3, True),
    (4, "is less than or equal to", 3, False),
    ("2026-03-02", ">", "2026-03-01", True),  # dates, chronologically
    ("02 Jan 2006", "<", "2006-01-03", True),
    ("2026-03-01T23:00:00-02:00", ">", "2026-03-02 00:30", True),
    ("apple", "<", "Banana", True),  # text, case-insensitive
    ("Apple", ">=", "apple", True),
    (None, ">", 5, False),  # an ordering with null never holds
    (None, "<", 5, False),
    ("hello world", "contains", "world", True),
    ("hello", "contains", "xyz", False),
    (12345, "contains", 234, True),
    (["a", "b"], "contains", "b", True),  # list membership
    (["ab"], "contains", "a", False),
    ("hello", "not contains", "xyz", True),
    ("x", "eq", "x", True),  # the expression aliases are accepted too
]


@pytest.mark.parametrize(("value", "op", "compare", "expected"), OPERATORS)
def test_operators(value: Any, op: str, compare: Any, expected: bool) -> None:
    items = [{"v": value}]
    rules = [{"field": "v", "operator": op, "value": compare}]
    assert kept(items, rules) == (items if expected else [])


# (left, right, equal)
EQUALITY = [
    (1, "1.0", True),
    ("1", 1, True),
    (" 2 ", 2, True),
    (2.5, "2.50", True),
    (True, "yes", True),
    ("no", False, True),
    ("TRUE", True, True),
    ("1", True, True),  # numeric vs bool: both boolean-like
    ("0", "no", True),
    (1, True, False),  # a JSON number is not boolean-like: "1" vs "true"
    (None, None, True),
    (None, "null", False),
    (None, 0, False),
    ("abc", "ABC", False),
    ("abc", "abc", True),
    ({"a": 1}, {"a": 1}, True),
    ([1, 2], "[1,2]", True),
]


@pytest.mark.parametrize(("left", "right", "expected"), EQUALITY)
def test_equality_coercions(left: Any, right: Any, expected: bool) -> None:
    assert lists.equal(left, right) is expected
    assert lists.equal(right, left) is expected


@pytest.mark.parametrize(
    ("op", "error"),
    [("between", "unsupported operator: between"), (" LIKE ", "unsupported operator: like"),
     (5, "unsupported operator: 5")],
)  # fmt: skip
def test_unsupported_operator(op: Any, error: str) -> None:
    rules = [{"field": "v", "operator": op, "value": 1}]
    assert fails(filter_node.run, {"rules": rules}, {"$json": [{"v": 1}]}) == error


@pytest.mark.parametrize(
    ("rules", "error"),
    [([], "at least one filter rule is required"),
     (None, "at least one filter rule is required"),
     (["v == 1"], "filter rule 1 must be an object with field, operator and value"),
     ([{"field": "v", "value": 1}], "filter rule 1 has no operator"),
     ([{"field": 3, "operator": "==", "value": 1}],
      "filter rule 1: field must be a string, not number"),
     ([{"field": "a..b", "operator": "==", "value": 1}],
      "filter rule 1: field 'a..b' is not a valid path (at '..b')"),
     (7, "rules parameter must be a list of filter rules, not number")],
)  # fmt: skip
def test_filter_rule_errors(rules: Any, error: str) -> None:
    assert fails(filter_node.run, {"rules": rules}, {"$json": [{"v": 1}]}) == error


def test_match_mode_error() -> None:
    params = {"rules": [{"field": "v", "operator": "==", "value": 1}], "match_mode": "most"}
    assert fails(filter_node.run, params, {"$json": []}) == (
        "match_mode must be 'all' or 'any', not 'most'"
    )


PEOPLE = [
    {"name": "Ada", "age": 36, "city": "Oslo"},
    {"name": "Bo", "age": 17},
    {"name": "Cy", "city": "Oslo"},
    {"name": "Di", "age": None, "city": "Rome"},
]


@pytest.mark.parametrize(
    ("mode", "names"),
    [(None, ["Ada"]), ("all", ["Ada"]), (" ALL ", ["Ada"]), ("", ["Ada"]),
     ("any", ["Ada", "Cy"]), ("Any", ["Ada", "Cy"])],
)  # fmt: skip
def test_match_mode_with_missing_fields(mode: str | None, names: list[str]) -> None:
    rules = [
        {"field": "age", "operator": ">=", "value": "18"},
        {"field": "city", "operator": "==", "value": "Oslo"},
    ]
    assert [p["name"] for p in kept(PEOPLE, rules, mode)] == names


def test_any_keeps_nothing_when_every_field_is_missing() -> None:
    rules = [{"field": "zip", "operator": "==", "value": "1"}]
    assert kept(PEOPLE, rules, "any") == []
    assert kept(PEOPLE, rules, "all") == []


# -- rule values ------------------------------------------------------------------------------

COERCIONS = [
    (" 5 ", 5), ("2.5", 2.5), ("-3", -3), ("'5'", "5"), ('"x y"', "x y"), ("yes", True),
    ("No", False), ("TRUE", True), ("1", 1), ("0", 0), ("null", None), ("NIL", None), ("", ""),
    ("  hi ", "hi"), ("'", "'"), (7, 7), (None, None), (True, True), (["a"], ["a"]),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "value"), COERCIONS)
def test_value_coercion(raw: Any, value: Any) -> None:
    result = lists.coerce_value(raw)
    assert (result, type(result)) == (value, type(value))


CONTEXT = {"$input": {"min": 18, "flag": "yes", "name": "Ada", "tags": ["a"]}}


@pytest.mark.parametrize(
    ("raw", "value"),
    [("{{ $input.min }}", 18), ("$input.min", 18), (" $input.min ", 18),
     ("$input.flag", "yes"),  # a referenced value is data: never re-read as rule text
     ("$input.tags", ["a"]), ("'$input.name'", "Ada"), ("$input.min years", "18 years"),
     ("costs $5", "costs $5")],
)  # fmt: skip
def test_rule_value_references(raw: Any, value: Any) -> None:
    result = lists.rule_value(raw, Resolver(CONTEXT), "filter rule 1")
    assert (result, type(result)) == (value, type(value))


def test_rule_value_reference_error_names_the_rule() -> None:
    rules = [{"field": "v", "operator": "==", "value": "$missing.x"}]
    assert fails(filter_node.run, {"rules": rules}, {"$json": []}) == (
        "filter rule 1: value: reference $missing.x: node 'missing' not found in context"
    )


def test_rule_value_reference_filters_by_context() -> None:
    rules = [{"field": "age", "operator": ">=", "value": "{{ $input.min }}"}]
    assert [p["name"] for p in kept(PEOPLE, rules, input=CONTEXT["$input"])] == ["Ada"]


# -- array input ------------------------------------------------------------------------------

USERS = [{"name": "Ada"}, {"name": "Bo"}]
ALL = [{"field": "", "operator": "!=", "value": "null"}]  # keeps every non-null item


def source(params: dict[str, Any], context: dict[str, Any]) -> lists.ArrayInput:
    result: lists.ArrayInput = run(lists.array_input, params, context)
    return result


@pytest.mark.parametrize(
    ("context", "items", "bases"),
    [({"$Fetch": {"status": 200, "body": {"users": USERS}}, "$trigger": {"x": 1}}, USERS,
      ("$Fetch.body.users",)),
     ({"$input": {"users": USERS}, "$trigger": {"users": USERS}}, USERS,
      ("$input.users", "$trigger.users")),  # the same list twice counts once
     ({"$S": {"_split_items": [1, 2], "rows": [3]}, "_private": [4]}, [3], ("$S.rows",)),
     ({"$A": {"rows": [{"tags": ["x"]}]}}, [{"tags": ["x"]}], ("$A.rows",)),
     ({"$json": [9], "$A": {"rows": [1]}}, [9], ("$json",))],
)  # fmt: skip
def test_auto_discovery(context: dict[str, Any], items: list[Any], bases: tuple[str, ...]) -> None:
    assert source({}, context) == lists.ArrayInput(items, bases)


@pytest.mark.parametrize(
    ("context", "error"),
    [({}, "input_array is not set, the context has no $json and holds no list to use"),
     ({"$A": {"n": 1}, "$B": "text"},
      "input_array is not set, the context has no $json and holds no list to use"),
     ({"$A": {"rows": [1]}, "$B": [2], "$C": {"x": {"y": [3]}}},
      "input_array is not set and the context holds 3 different lists "
      "($A.rows, $B, $C.x.y); set input_array to the one to use"),
     ({"$json": {"a": 1}, "$B": [2]}, "expected array input, got object"),
     ({"$json": None}, "expected array input, got null")],
)  # fmt: skip
def test_auto_discovery_errors(context: dict[str, Any], error: str) -> None:
    assert fails(filter_node.run, {"rules": ALL}, context) == error


INPUT_CONTEXT = {"$Fetch": {"body": USERS, "meta": {"n": 2}}, "$x": "Cy", "$a.b": [1]}


@pytest.mark.parametrize(
    ("raw", "items", "bases"),
    [("$Fetch.body", USERS, ("$Fetch.body",)), (" $Fetch.body ", USERS, ("$Fetch.body",)),
     ("Fetch.body", USERS, ("$Fetch.body",)), ("{{ $Fetch.body }}", USERS, ("$Fetch.body",)),
     ("$a.b", [1], ("$a.b",)),  # direct lookup: the whole reference as a literal key
     ([3, 1, 2], [3, 1, 2], ()), (["$x", "y"], ["Cy", "y"], ()), ([], [], ())],
)  # fmt: skip
def test_input_array_forms(raw: Any, items: list[Any], bases: tuple[str, ...]) -> None:
    assert source({"input_array": raw}, INPUT_CONTEXT) == lists.ArrayInput(items, bases)


@pytest.mark.parametrize(
    ("raw", "error"),
    [("", "array input cannot be empty"), ("   ", "array input cannot be empty"),
     ("$missing", 'failed to resolve reference "$missing": '
                  "reference $missing: node 'missing' not found in context"),
     ("$Fetch.nope", 'failed to resolve reference "$Fetch.nope": '
                     "reference $Fetch.nope: field 'nope' not found at $Fetch"),
     ("nothing", 'expected array input, got string ("nothing" names no list in the context)'),
     ("$Fetch.meta", "expected array input, got object"),
     ({"a": 1}, "expected array input, got object"), (5, "expected array input, got number"),
     (["$nope.x"], "input_array: reference $nope.x: node 'nope' not found in context")],
)  # fmt: skip
def test_input_array_errors(raw: Any, error: str) -> None:
    params = {"rules": ALL, "input_array": raw}
    assert fails(filter_node.run, params, INPUT_CONTEXT) == error


def test_input_array_records_used_keys() -> None:
    ctx = dict(INPUT_CONTEXT)
    resolver = Resolver(ctx)
    wf = parse_definition(b'{"nodes": [{"id": "n", "type": "filter"}], "edges": []}')
    params = {"rules": ALL, "input_array": "$Fetch.body"}
    node_ctx = NodeContext("wf", "ex", wf.node("n"), params, ctx, wf, resolver)
    filter_node.run(node_ctx)
    assert resolver.used_keys == {"$Fetch"}


# -- field paths ------------------------------------------------------------------------------

ITEM = {"name": "A", "tags": ["x", "y"], "user": {"id": 7}, "item": "inner"}


@pytest.mark.parametrize(
    ("base", "field", "value"),
    [("$Fetch.body", "$item.name", "A"), ("$Fetch.body", "name", "A"),
     ("$Fetch.body", ".name", "A"), ("$Fetch.body", "$name", "A"),
     ("$Fetch.body", " name ", "A"), ("$Fetch.body", "$item.user.id", 7),
     ("$Fetch.body", "$Fetch.body.name", "A"), ("$Fetch.body", "$Fetch.body[0].name", "A"),
     ("$Fetch.body", "$Fetch.body[3].user.id", 7), ("Fetch.body", "Fetch.body[0].name", "A"),
     ("Fetch.body", "$Fetch.body[0].name", "A"), ("$Fetch.body", "tags[1]", "y"),
     ("$Fetch.body", "$item.tags[0]", "x"), ("$json", "$json[0].name", "A"),
     ("$Fetch.body", "{{ $item.user.id }}", 7), ("$Fetch.body", "item", "inner"),
     ("$Fetch.body", "$Fetch.bodyx.name", None)],  # not the base: a path inside the item
)  # fmt: skip
def test_field_path_prefixes(base: str, field: str, value: Any) -> None:
    path = lists.field_path(field, (base,), "rule 1")
    assert path.get(ITEM) == (value is not None, value)


@pytest.mark.parametrize("field", [None, "", "  ", "$item", "$Fetch.body[2]", "$Fetch.body"])
def test_field_path_naming_the_item_itself(field: Any) -> None:
    path = lists.field_path(field, ("$Fetch.body",), "rule 1")
    assert (path.segments, path.get(ITEM)) == ((), (True, ITEM))


@pytest.mark.parametrize(
    ("field", "item"),
    [("missing", ITEM), ("tags[5]", ITEM), ("name.first", ITEM), ("user[0]", ITEM),
     ("name", "scalar"), ("[0]", {"a": 1})],
)  # fmt: skip
def test_field_path_not_found(field: str, item: Any) -> None:
    assert lists.field_path(field, (), "rule 1").get(item) == (False, None)


def test_field_is_never_resolved_against_the_context() -> None:
    # Inside a split branch `$item` is the context's current element; the rule's
    # `$item.name` must still read each list item.
    context = {"$item": {"name": "Z"}, "$json": [{"name": "A"}, {"name": "Z"}]}
    rules = [{"field": "$item.name", "operator": "==", "value": "A"}]
    assert run(filter_node.run, {"rules": rules}, context)["$json"] == [{"name": "A"}]


def test_filter_outputs() -> None:
    items = [{"n": 1}, {"n": 2}, {"n": 3}]
    out = run(filter_node.run, {"rules": [{"field": "n", "operator": ">", "value": "1"}]},
              {"$json": items})  # fmt: skip
    assert out == {"$json": [{"n": 2}, {"n": 3}], "count": 2, "original_count": 3}


# -- sort -------------------------------------------------------------------------------------


def ordered(items: list[Any], *rules: dict[str, Any]) -> list[Any]:
    out = run(sort_node.run, {"rules": list(rules)}, {"$json": items})
    assert set(out) == {"$json", "count"}
    assert out["count"] == len(items)
    result: list[Any] = out["$json"]
    return result


def by(field: str = "", direction: str | None = None, type_: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"field": field}
    if direction is not None:
        rule["direction"] = direction
    if type_ is not None:
        rule["type"] = type_
    return rule


@pytest.mark.parametrize(
    ("items", "type_", "expected"),
    [([10, "9", 2.5, "-1"], None, ["-1", 2.5, "9", 10]),
     ([10, "9", 2.5], "AUTO", [2.5, "9", 10]),
     (["b", "A", "c"], "auto", ["A", "b", "c"]),
     (["2026-03-10", "01 Mar 2026", "2026-03-02T00:00:00Z"], None,
      ["01 Mar 2026", "2026-03-02T00:00:00Z", "2026-03-10"]),
     (["b", "A", "c"], "text", ["A", "b", "c"]),
     ([10, 9, 100], "text", [10, 100, 9]),
     ([10, 9, 100], "string", [10, 100, 9]),
     (["10", 9, " 100 ", 2.5], "number", [2.5, 9, "10", " 100 "]),
     (["2026-03-02", "01 Mar 2026", "2026-03-01T23:00:00-02:00"], "date",
      ["01 Mar 2026", "2026-03-02", "2026-03-01T23:00:00-02:00"]),
     (["Mon, 02 Jan 2006 15:04:05 MST", "02 Jan 06 15:03 -0700"], "datetime",
      ["Mon, 02 Jan 2006 15:04:05 MST", "02 Jan 06 15:03 -0700"]),
     (["2026-03-01 10:00", "2026-03-01 09:00:30"], "time",
      ["2026-03-01 09:00:30", "2026-03-01 10:00"])],
)  # fmt: skip
def test_sort_types(items: list[Any], type_: str | None, expected: list[Any]) -> None:
    assert ordered(items, by(type_=type_)) == expected


@pytest.mark.parametrize(
    ("items", "rule", "error"),
    [([1, "abc"], by(type_="number"), "sort rule 1: item 1 is 'abc', not a number"),
     ([{"v": 1}, {"v": True}], by("v", type_="number"),
      "sort rule 1: 'v' of item 1 is 'true', not a number"),
     (["2026-03-01", "tomorrow"], by(type_="date"),
      "sort rule 1: item 1 is 'tomorrow', not a date in a supported layout"),
     ([1700000000], by(type_="date"),
      "sort rule 1: item 0 is '1700000000', not a date in a supported layout"),
     ([1, 2], by(type_="color"), "unsupported sort type: color"),
     ([1, 2], "up", "sort rule 1 must be an object with field, direction and type")],
)  # fmt: skip
def test_sort_errors(items: list[Any], rule: Any, error: str) -> None:
    assert fails(sort_node.run, {"rules": [rule]}, {"$json": items}) == error


def test_digit_strings_beyond_a_double_are_text_not_a_crash() -> None:
    # Go's ParseFloat refuses them (ErrRange), so they compare as text; Python's int() refused
    # more than 4300 digits with a ValueError that failed the node.
    huge, zeros = "1" * 5000, "0" * 5000 + "7"
    items = [{"v": huge}, {"v": zeros}, {"v": 3}]
    assert kept(items, [{"field": "v", "operator": ">", "value": "5"}]) == [{"v": zeros}]
    assert kept([{"v": 1}], [{"field": "v", "operator": "==", "value": huge}]) == []
    assert ordered(["2", huge], by()) == [huge, "2"]  # as text: "1..." before "2"
    assert ordered([zeros, "2"], by()) == ["2", zeros]  # 7 and 2
    error = fails(sort_node.run, {"rules": [by(type_="number")]}, {"$json": [huge, 2]})
    assert error.startswith("sort rule 1: item 0 is '111") and error.endswith("', not a number")


def test_an_index_too_long_for_any_list_finds_no_item() -> None:
    items = [{"v": [1, 2]}]
    huge = "1" * 5000  # int() of it raised ValueError, which failed the node
    assert kept(items, [{"field": f"v[{huge}]", "operator": "==", "value": "1"}]) == []
    assert kept(items, [{"field": f"v[{'0' * 5000}1]", "operator": "==", "value": "2"}]) == items


@pytest.mark.parametrize("rules", [[], None])
def test_sort_needs_a_rule(rules: Any) -> None:
    error = fails(sort_node.run, {"rules": rules}, {"$json": [1]})
    assert error == "at least one sort rule is required"


MISSING = [{"id": "a", "v": 2}, {"id": "b"}, {"id": "c", "v": None}, {"id": "d", "v": 1},
           {"id": "e", "v": 3}]  # fmt: skip


@pytest.mark.parametrize(
    ("direction", "ids"),
    [(None, "daebc"), ("asc", "daebc"), ("whatever", "daebc"), ("desc", "eadbc"),
     ("DESCENDING", "eadbc"), (" Desc ", "eadbc")],
)  # fmt: skip
@pytest.mark.parametrize("type_", ["auto", "number", "text"])
def test_missing_values_last_in_both_directions(
    direction: str | None, ids: str, type_: str
) -> None:
    result = ordered(MISSING, by("v", direction, type_))
    assert "".join(item["id"] for item in result) == ids


def test_later_rules_break_ties() -> None:
    items = [{"g": "b", "n": 1}, {"g": "a", "n": 2}, {"g": "B", "n": 0}, {"g": "a", "n": 1},
             {"g": "a"}]  # fmt: skip
    result = ordered(items, by("g", type_="text"), by("n", "desc", "number"))
    assert result == [{"g": "a", "n": 2}, {"g": "a", "n": 1}, {"g": "a"}, {"g": "b", "n": 1},
                      {"g": "B", "n": 0}]  # fmt: skip


def test_sort_is_stable() -> None:
    items = [{"k": 1, "i": 0}, {"k": 0, "i": 1}, {"k": 1, "i": 2}, {"k": 0, "i": 3},
             {"k": "1", "i": 4}]  # fmt: skip
    assert [x["i"] for x in ordered(items, by("k"))] == [1, 3, 0, 2, 4]
    assert [x["i"] for x in ordered(items, by("k", "desc"))] == [0, 2, 4, 1, 3]


def test_sort_field_paths_and_input_array() -> None:
    context = {"$Fetch": {"body": [{"u": {"age": 30}}, {"u": {"age": 20}}]}}
    rule = by("$Fetch.body[0].u.age", "desc")
    out = run(sort_node.run, {"rules": [rule], "input_array": "$Fetch.body"}, context)
    assert out == {"$json": [{"u": {"age": 30}}, {"u": {"age": 20}}], "count": 2}


# -- dates ------------------------------------------------------------------------------------

PLUS2 = timezone(timedelta(hours=2))
MINUS7 = timezone(timedelta(hours=-7))


@pytest.mark.parametrize(
    ("text", "when"),
    [("2026-03-08T15:30:00Z", datetime(2026, 3, 8, 15, 30, tzinfo=UTC)),
     ("2026-03-08T15:30:00+02:00", datetime(2026, 3, 8, 15, 30, tzinfo=PLUS2)),
     ("2026-03-08T15:30:00.5Z", datetime(2026, 3, 8, 15, 30, 0, 500000, tzinfo=UTC)),
     ("2026-03-08T15:30:00.123456789Z", datetime(2026, 3, 8, 15, 30, 0, 123456, tzinfo=UTC)),
     ("2026-03-08 15:30:05", datetime(2026, 3, 8, 15, 30, 5, tzinfo=UTC)),
     ("2026-03-08 15:30", datetime(2026, 3, 8, 15, 30, tzinfo=UTC)),
     (" 2026-03-08 ", datetime(2026, 3, 8, tzinfo=UTC)),
     ("Mon, 02 Jan 2006 15:04:05 -0700", datetime(2006, 1, 2, 15, 4, 5, tzinfo=MINUS7)),
     ("Mon, 02 Jan 2006 15:04:05 MST", datetime(2006, 1, 2, 15, 4, 5, tzinfo=UTC)),
     ("Mon, 02 Jan 2006 15:04 EET", datetime(2006, 1, 2, 15, 4, tzinfo=UTC)),
     ("Mon, 02 Jan 2006 15:04 -0700", datetime(2006, 1, 2, 15, 4, tzinfo=MINUS7)),
     ("02 Jan 2006 15:04 MST", datetime(2006, 1, 2, 15, 4, tzinfo=UTC)),
     ("02 Jan 2006 15:04 -0700", datetime(2006, 1, 2, 15, 4, tzinfo=MINUS7)),
     ("02 Jan 2006", datetime(2006, 1, 2, tzinfo=UTC)),
     ("02 Jan 06 15:04 -0700", datetime(2006, 1, 2, 15, 4, tzinfo=MINUS7)),
     ("02 Jan 06 15:04 MST", datetime(2006, 1, 2, 15, 4, tzinfo=UTC)),
     ("02 Jan 70 15:04 UTC", datetime(1970, 1, 2, 15, 4, tzinfo=UTC))],
)  # fmt: skip
def test_date_layouts(text: str, when: datetime) -> None:
    parsed = lists.as_time(text)
    assert parsed is not None
    assert (parsed, parsed.utcoffset()) == (when, when.utcoffset())


@pytest.mark.parametrize(
    "value",
    ["2026-03-08T15:30:00", "2026-13-01", "08/03/2026", "tomorrow", "", "Mon, 02 Jan 2006",
     "02 Jan 2006 15:04 mst", 20260308, None],
)  # fmt: skip
def test_date_rejects(value: Any) -> None:
    assert lists.as_time(value) is None


# -- limit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "n"),
    [(2, 2), (2.0, 2), ("2", 2), (" 2 ", 2), ("+2", 2), (0, 0), ("0", 0), (10, 4)],
)  # fmt: skip
def test_limit_count_forms(count: Any, n: int) -> None:
    out = run(limit_node.run, {"count": count}, {"$json": [1, 2, 3, 4]})
    assert out == {"$json": [1, 2, 3, 4][:n], "count": n, "original_count": 4}


@pytest.mark.parametrize(
    ("count", "error"),
    [(2.5, "count parameter is required"), ("2.5", "count parameter is required"),
     ("two", "count parameter is required"), (True, "count parameter is required"),
     (None, "count parameter is required"), ([], "count parameter is required"),
     ("", "count parameter is required"), (-1, "count must be zero or greater"),
     ("-1", "count must be zero or greater"), (-2.0, "count must be zero or greater")],
)  # fmt: skip
def test_limit_count_errors(count: Any, error: str) -> None:
    assert fails(limit_node.run, {"count": count}, {"$json": [1]}) == error


def test_limit_input_array() -> None:
    context = {"$Fetch": {"rows": ["a", "b", "c"]}, "$json": [1]}
    out = run(limit_node.run, {"count": 2, "input_array": "$Fetch.rows"}, context)
    assert out == {"$json": ["a", "b"], "count": 2, "original_count": 3}
    assert fails(limit_node.run, {"count": 1}, {}) == (
        "input_array is not set, the context has no $json and holds no list to use"
    )


# -- whole workflows --------------------------------------------------------------------------

SCORES = [
    {"name": "Ada", "score": 88, "team": "red"},
    {"name": "Bo", "score": 95, "team": "blue"},
    {"name": "Cy", "score": "88", "team": "red"},
    {"name": "Di", "team": "red"},
    {"name": "Ed", "score": 70, "team": "red"},
]


def chain() -> bytes:
    params = {
        "filter": {"input_array": "$input.players",
                   "rules": [{"field": "$input.players[0].team", "operator": "==",
                              "value": "{{ $input.team }}"}]},
        "sort": {"rules": [{"field": "$item.score", "direction": "desc"},
                           {"field": "name", "direction": "desc"}]},
        "limit": {"count": "3"},
    }  # fmt: skip
    nodes: list[dict[str, Any]] = [
        {"id": "t", "name": "Start", "type": "ManualTrigger", "trigger": True}
    ]
    nodes += [{"id": k, "name": k.title(), "type": k, "parameters": p} for k, p in params.items()]
    edges = [("t", "filter"), ("filter", "sort"), ("sort", "limit")]
    edge_list = [{"id": f"e{i}", "src": s, "dst": d} for i, (s, d) in enumerate(edges)]
    return msgspec.json.encode({"nodes": nodes, "edges": edge_list})


def test_scenario_34_outputs_propagate_json_into_the_completion_context() -> None:
    """Scenario 34 = TestExecutor_EditNodeUpdatesJson and TestExecutor_FilterNodeUpdatesJson of
    upstream's services/rune-worker/pkg/executor/executor_test.go: `$json` reaches the end."""
    statuses: list[NodeStatusMessage] = []
    runner = LocalRunner(on_status=statuses.append)
    done = runner.run(start_message(chain(), {"players": SCORES, "team": "red"}))
    assert [(s.node_id, s.status) for s in statuses] == [
        (n, st) for n in ("filter", "sort", "limit") for st in ("running", "success")]  # fmt: skip
    assert done is not None and done.status == "completed"
    final = done.final_context
    top = [SCORES[2], SCORES[0], SCORES[4]]  # "88" ties 88: the later rule (name desc) decides
    assert final["$json"] == top
    assert final["$Limit"] == {"$json": top, "count": 3, "original_count": 4}
    assert final["$Sort"] == {"$json": [*top, SCORES[3]], "count": 4}
    assert (final["$Filter"]["count"], final["$Filter"]["original_count"]) == (4, 5)


def test_shipped_lists_example() -> None:
    definition = resources.files("runeworker.examples").joinpath("lists.json").read_bytes()
    statuses: list[NodeStatusMessage] = []
    done = LocalRunner(on_status=statuses.append).run(
        start_message(definition, sample_input(definition))
    )
    assert done is not None and done.status == "completed"
    assert [u["name"] for u in done.final_context["$json"]] == ["Flo", "Ada", "Cy"]
    assert done.final_context["$Report"]["message"] == (
        "Top 3 of 4 active adults (out of 7 users): Flo, Ada, Cy"
    )


def test_json_nested_too_deeply_fails_the_list_node_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by tests/fuzz: a sort, filter or limit node reading `$json` (no input_array) that
    is nested deeper than the engine reads let the resolver's error escape the node: logged as
    a node bug with its traceback, and the user read `ResolveError: reference $json: ...`."""
    deep = "[" * 150 + "1" + "]" * 150
    nodes = [{"id": "top", "name": "Top", "type": "limit", "parameters": {"count": 1}}]
    body = (
        '{"workflow_id":"wf","execution_id":"ex-deep","current_node":"top",'
        f'"workflow_definition":{json.dumps({"nodes": nodes, "edges": []})},'
        f'"accumulated_context":{{"$json":{deep}}}}}'
    ).encode()
    statuses: list[NodeStatusMessage] = []
    done = LocalRunner(on_status=statuses.append).run(decode_execution(body))
    assert done is not None and done.status == "halted"
    error = statuses[-1].error
    assert statuses[-1].status == "failed" and error
    assert error.message == (
        'failed to resolve reference "$json": reference $json: context value $json is nested '
        "deeper than 100 levels"
    )
    assert not [r for r in caplog.records if "raised" in r.getMessage()]
