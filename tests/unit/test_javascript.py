"""JavaScript expressions of the edit node (runeworker.nodes.javascript), as upstream's goja
evaluates them (services/rune-worker/pkg/nodes/custom/edit/edit_node.go, RFC-007).

The values table keeps every case of the former expression language's tests whose answer is
the same in JavaScript; the cases where JavaScript answers differently are listed apart with
the JavaScript answer (issue 11, item 11)."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest

from runeworker.engine import depth
from runeworker.nodes.javascript import Budget, ExpressionError, JavaScript, Template

CONTEXT: dict[str, Any] = {
    "$json": {
        "first": "Alice",
        "last": "Smith",
        "quantity": 10,
        "unit_price": 25.5,
        "tags": ["a", "b", "c"],
        "nested": {"deep": {"value": 42}},
        "empty": "",
        "zero": 0,
        "nothing": None,
        "_id": "abc123",
        "items": [{"name": "x"}, {"name": "y"}],
        "text": "  Mixed Case  ",
        "numeric": "12.5",
    },
    "$input": {"id": 7},
    "$Fetch-Users": {"status": 200},
    "$count": 5,
}


def ev(text: str, context: dict[str, Any] | None = None, seconds: float = 0.1) -> Any:
    return JavaScript(context or CONTEXT).evaluate(text, None, Budget(seconds))


SAME_AS_BEFORE = [
    ("1", 1),
    ("2.5", 2.5),
    ("'single'", "single"),
    ('"double"', "double"),
    (r"'it\'s\n\u00e9'", "it's\né"),
    ("true", True),
    ("false", False),
    ("null", None),
    ("undefined", None),
    ("[1, 'a', null]", [1, "a", None]),
    ("$json.first", "Alice"),
    ("$json['last']", "Smith"),
    ('$json["tags"][1]', "b"),
    ("$json.tags[5]", None),
    ("$json.missing", None),
    ("$json.nested.deep.value", 42),
    ("$json.items[1].name", "y"),
    ("$json.tags.length", 3),
    ("$json.first.length", 5),
    ("$json.first[0]", "A"),
    ("$input.id", 7),
    ("$json._id", "abc123"),
    ("$count-1", 4),
    ("$count - 1", 4),
    ("$json.quantity * $json.unit_price", 255),
    ("1 + 2 * 3 - 4 / 2", 5),
    ("(1 + 2) * 3", 9),
    ("7 / 2", 3.5),
    ("7 % 3", 1),
    ("-7 % 3", -1),
    ("7.5 % 2", 1.5),
    ("-$json.quantity", -10),
    ("+'3' + 1", 4),
    ("'3' * '4'", 12),
    ("true + 1", 2),
    ("$json.numeric * 2", 25),
    ("0.1 + 0.2", 0.30000000000000004),
    ("$json.first + ' ' + $json.last", "Alice Smith"),
    ("'n=' + 1", "n=1"),
    ("1 + 2 + 'x'", "3x"),
    ("'x' + 1 + 2", "x12"),
    ("'v: ' + null", "v: null"),
    ("'b: ' + true", "b: true"),
    ("'f: ' + 2.50", "f: 2.5"),
    ("1 == 1", True),
    ("'1' == 1", True),
    ("'1' === 1", False),
    ("1 === 1.0", True),
    ("1 !== '1'", True),
    ("null == null", True),
    ("true == 1", True),  # JavaScript: true == 1 (the former language said false)
    ("2 > 1", True),
    ("2 >= 2", True),
    ("'10' < 9", False),
    ("'b' > 'a'", True),
    ("'B' < 'a'", True),
    ("$json.quantity <= 9", False),
    ("$json.first != 'Bob'", True),
    ("$json.empty || 'fallback'", "fallback"),
    ("$json.first || 'fallback'", "Alice"),
    ("$json.first && $json.last", "Smith"),
    ("$json.zero && 'never'", 0),
    ("!$json.nothing", True),
    ("!'0'", False),
    ("![]", False),
    ("!!$json.tags", True),
    ("!!!!true", True),
    ("1 < 2 && 2 < 3 || false", True),
    ("$json.quantity > 5 ? 'big' : 'small'", "big"),
    ("$json.quantity > 50 ? 'big' : $json.quantity > 5 ? 'medium' : 'small'", "medium"),
    ("$json.missing ? 1 : 2", 2),
    ("$json.first.toUpperCase()", "ALICE"),
    ("$json.first.toLowerCase()", "alice"),
    ("$json.text.trim()", "Mixed Case"),
    ("$json.first.includes('lic')", True),
    ("$json.tags.includes('b')", True),
    ("$json.tags.includes('z')", False),
    ("$json.tags.join('-')", "a-b-c"),
    ("$json.tags.join()", "a,b,c"),
    ("[1, null, 'x'].join('|')", "1||x"),
    ("'a,b,,c'.split(',')", ["a", "b", "", "c"]),
    ("'abc'.split('')", ["a", "b", "c"]),
    ("'a b c'.split(' ', 2)", ["a", "b"]),
    ("'abc'.split()", ["abc"]),
    ("$json.first.split('').join('.')", "A.l.i.c.e"),
    ("Math.round(2.5)", 3),
    ("Math.round(-2.5)", -2),
    ("Math.round(2.4)", 2),
    ("Math.floor(-1.5)", -2),
    ("Math.ceil(1.2)", 2),
    ("Math.abs(-3)", 3),
    ("Math.min(3, 1, 2)", 1),
    ("Math.max(3, '7', 2)", 7),
    ("Math.round($json.unit_price * 1.1 * 100) / 100", 28.05),
    ("String(12)", "12"),
    ("String(null)", "null"),
    ("Number('42')", 42),
    ("Number(' 2.5 ')", 2.5),
    ("Number('')", 0),
    ("Number(null)", 0),
    ("Number(true)", 1),
    ("JSON.stringify($json.nested)", '{"deep":{"value":42}}'),
    ("JSON.stringify('a\"b')", '"a\\"b"'),
    ("JSON.stringify([1], null, 2)", "[\n  1\n]"),
    ("JSON.parse('{\"a\": [1, 2]}').a[1]", 2),
]

# The former language's answer, then JavaScript's (what upstream's goja gives).
CHANGED = [
    ("1e3", 1000),  # was the float 1000.0: a JS number, integral, is an int as JSON writes it
    ("'t: ' + $json.tags", "t: a,b,c"),  # was 't: ["a","b","c"]' (arrays join with commas)
    ("'o: ' + $json.nested", "o: [object Object]"),  # was JSON text
    ("[1, 2] === [1, 2]", False),  # was True (two distinct arrays)
    ("$json.missing === null", False),  # was True (a missing property is undefined)
    ("String($json.tags)", "a,b,c"),  # was JSON text
    ("globalThis['$Fetch-Users'].status", 200),  # `$Fetch-Users.status` is a subtraction
    ("Math.pow(2, 3)", 8),  # was refused: every built-in of JavaScript is there
    ("$json.first.repeat(2)", "AliceAlice"),
    ("$json.quantity.toFixed(2)", "10.00"),
    ("'x'.__class__", None),  # was refused; Python is simply not reachable
    ("$json.constructor === Object", True),
    ("eval('1 + 1')", 2),
    ("", None),  # was "empty expression"
    ("var n = 2; n * 21", 42),  # a script: its completion value, as goja's RunString
    ("new Date(0)", "1970-01-01T00:00:00.000Z"),
    ("$json.tags.map(function (t) { return t.toUpperCase(); })", ["A", "B", "C"]),
    ("$json.items.filter(function (i) { return i.name === 'y'; }).length", 1),
]


@pytest.mark.parametrize(("text", "expected"), SAME_AS_BEFORE + CHANGED)
def test_values(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


def test_numbers_keep_nan_and_the_infinities() -> None:
    assert ev("1 / 0") == math.inf and ev("-1 / 0") == -math.inf
    assert math.isnan(ev("0 / 0")) and math.isnan(ev("$json.missing + 1"))
    assert ev("2 * 9007199254740993") == 2 * 9007199254740992.0  # beyond 2**53: a float


def test_new_date_is_now() -> None:
    assert ev("typeof new Date().getTime()") == "number"
    assert ev("new Date().getFullYear() >= 2024") is True


ERRORS = [
    ("1 +", "SyntaxError: unexpected token in expression: ''"),
    ("(1 + 2", "SyntaxError: Unexpected end of input"),
    ("a + 1", "ReferenceError: a is not defined"),
    ("$json.missing.x", "TypeError: cannot read property 'x' of undefined"),
    ("$json.missing.trim()", "TypeError: cannot read property 'trim' of undefined"),
    ("JSON.parse('{')", "SyntaxError: "),
    ("$nope", "ReferenceError: $nope is not defined"),
    ("throw new Error('mine')", "Error: mine"),
    ("throw null", "null"),
    ("throw undefined", "undefined"),
    ("throw 42", "42"),
    ("throw {a: 1}", "[object Object]"),
    ("throw 'x'", "x"),
    ("10n", "TypeError: "),  # BigInt has no JSON form
    ("(function f() { f(); })()", "expression is nested too deeply (the JavaScript stack"),
    ("(" * 5_000 + "1" + ")" * 5_000, "expression is nested too deeply"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        ev(text)
    assert str(info.value).startswith(message)


# -- the sandbox -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["require", "process", "fetch", "XMLHttpRequest", "std", "os", "console", "print",
     "setTimeout", "scriptArgs", "__import__"],
)  # fmt: skip
def test_no_host_access(name: str) -> None:
    assert ev(f"typeof {name}") == "undefined"


def test_an_expression_changes_its_own_copy_only() -> None:
    js = JavaScript(CONTEXT)
    assert js.evaluate("$json.first = 'X'; $input.id = 0; $json.first + $input.id", None) == "X0"
    assert js.evaluate("$json.first + $input.id", None) == "Alice7"
    assert CONTEXT["$json"]["first"] == "Alice"


def test_the_helpers_cannot_be_replaced() -> None:
    js = JavaScript(CONTEXT)
    js.evaluate("JSON.stringify = function () { return 'x'; }; __rw_run = null; 1", None)
    assert js.evaluate("$json.tags", None) == ["a", "b", "c"]


def test_json_is_the_item_given() -> None:
    js = JavaScript(CONTEXT)
    assert js.evaluate("$json.n * 2", '{"n": 21}') == 42
    assert js.evaluate("$json.first", None) == "Alice"


def test_used_names_are_collected() -> None:
    js = JavaScript(CONTEXT)
    js.evaluate("$json.first + $count + globalThis['$Fetch-Users'].status", None)
    assert js.used == {"$json", "$count", "$Fetch-Users"}


def test_builtins_win_over_context_keys_of_the_same_name() -> None:
    assert JavaScript({"Math": 1, "$x": 2}).evaluate("Math.max($x, 1)", None) == 2


# -- limits ----------------------------------------------------------------------------------------


def test_a_runaway_loop_is_interrupted() -> None:
    with pytest.raises(ExpressionError, match=r"^expression timeout or cancelled$"):
        ev("for (;;) {}")


def test_the_budget_is_shared_by_what_is_left() -> None:
    budget = Budget(0.05)
    js = JavaScript(CONTEXT)
    with pytest.raises(ExpressionError, match="timeout"):
        js.evaluate("for (;;) {}", None, budget)
    with pytest.raises(ExpressionError, match=r"^expression timeout or cancelled$"):
        js.evaluate("1", None, budget)  # nothing left
    assert js.evaluate("1", None, Budget()) == 1  # the engine is still usable


def test_memory_is_capped() -> None:
    js = JavaScript(CONTEXT)
    with pytest.raises(ExpressionError) as info:
        js.evaluate("var a = []; for (;;) { a.push(new Array(1e5).fill(1)); }", None, Budget(30))
    assert str(info.value) == (
        f"expression ran out of memory (limit {js.memory_limit // 2**20} MiB)"
    )


def test_a_null_thrown_for_want_of_memory_is_no_thrown_null() -> None:
    # QuickJS throws null when it has no memory left for its error object: without `throw` in
    # the run's expressions, or with the memory still in use, a null is the memory's
    js = JavaScript(CONTEXT)
    with pytest.raises(ExpressionError, match=r"^expression ran out of memory \(limit"):
        js.evaluate("(function () { let a = []; for (let i = 0;; i++) a.push([i, 0, 0, 0]); })()",
                    None, Budget(30))  # fmt: skip
    js = JavaScript(CONTEXT)
    with pytest.raises(ExpressionError, match=r"^expression ran out of memory \(limit"):
        js.evaluate("var a = []; for (let i = 0;; i++) { if (i < 0) throw 1; a.push([i, 0]); }",
                    None, Budget(30))  # fmt: skip
    js = JavaScript(CONTEXT)
    js.evaluate("globalThis.fail = function () { throw null; }; 1", None)
    with pytest.raises(ExpressionError, match=r"^null$"):
        js.evaluate("fail()", None)  # an earlier expression of the run can throw


def test_depth_of_results_and_of_context_values() -> None:
    with pytest.raises(ExpressionError, match=r"^the expression result is nested deeper than 100"):
        ev("var x = 1; for (var i = 0; i < 150; i++) { x = [x]; } x")
    assert ev("var x = 1; for (var i = 0; i < 99; i++) { x = [x]; } x.length") == 1
    deep = msgspec.Raw(b"[" * 300 + b"]" * 300)
    js = JavaScript({"$deep": deep, "$ok": msgspec.Raw(b"[1]")})
    assert js.evaluate("$ok[0]", None) == 1
    with pytest.raises(ExpressionError, match=r"context value \$deep is nested deeper than 100"):
        js.evaluate("$deep", None)
    assert depth.MAX_DEPTH == 100


# -- templates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts", "whole"),
    [
        ("{{ $json.quantity }}", [(True, "$json.quantity")], True),
        ("  {{ $json.tags }}  ", [(False, "  "), (True, "$json.tags"), (False, "  ")], True),
        ("Hello {{ $json.first }}!", [(False, "Hello "), (True, "$json.first"), (False, "!")],
         False),
        ("{{ '}}' }} and {{ \"{{\" }}", [(True, "'}}'"), (False, " and "), (True, '"{{"')],
         False),
        ("{{ 1 }} then unclosed {{ x", [(True, "1"), (False, " then unclosed {{ x")], False),
        ("{{ `a}}b` + 'c\\'}}' }}", [(True, "`a}}b` + 'c\\'}}'")], True),
        # a whole value keeps the braces it opens (upstream's greedy pattern)
        ("{{ xs.map(x => {return {id: x}}) }}", [(True, "xs.map(x => {return {id: x}})")], True),
        (" {{ {a: {b: '}}'}} }}", [(False, " "), (True, "{a: {b: '}}'}}")], True),
        ("{{ {a: 1}}}", [(True, "{a: 1}")], True),
        ("{{ a }}{{ {b: 1} }}", [(True, "a"), (True, "{b: 1}")], False),
        ("x {{ {a: {b: 1}} }}", [(False, "x "), (True, "{a: {b: 1"), (False, " }}")], False),
    ],
)  # fmt: skip
def test_template_blocks(text: str, parts: list[tuple[bool, str]], whole: bool) -> None:
    template = Template.parse(text)
    assert template is not None
    assert (template.parts, template.whole) == (parts, whole)


def test_template_without_blocks() -> None:
    assert Template.parse("no blocks here") is None
    assert Template.parse("unclosed {{ $json.first") is None
