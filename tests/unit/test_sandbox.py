"""The sandboxed expression language of `{{ }}` blocks in `edit` values (upstream evaluates
them in services/rune-worker/pkg/nodes/custom/edit/edit_node.go), time-boxed like its JS."""

from __future__ import annotations

import time
from typing import Any

import pytest

from runeworker.nodes.sandbox import Expression, Limits, SandboxError, Template
from runeworker.nodes.sandbox_syntax import MAX_DEPTH

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


def lookup(name: str) -> Any:
    if name not in CONTEXT:
        raise SandboxError(f"unknown {name}")
    return CONTEXT[name]


def is_root(name: str) -> bool:
    return "$" + name in CONTEXT


DEFAULT = Limits()


def ev(text: str, limits: Limits = DEFAULT) -> Any:
    return Expression(text, is_root, limits).evaluate(lookup)


VALUES = [
    # literals
    ("1", 1),
    ("2.5", 2.5),
    ("1e3", 1000.0),
    ("'single'", "single"),
    ('"double"', "double"),
    (r"'it\'s\n\u00e9'", "it's\né"),
    ("true", True),
    ("false", False),
    ("null", None),
    ("undefined", None),
    ("[1, 'a', null]", [1, "a", None]),
    # context access
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
    ("$Fetch-Users.status", 200),
    ("$count-1", 4),
    ("$count - 1", 4),
    # arithmetic (integral results are ints, as JSON.stringify writes them)
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
    # string concatenation (JS: a string on either side concatenates)
    ("$json.first + ' ' + $json.last", "Alice Smith"),
    ("'n=' + 1", "n=1"),
    ("1 + 2 + 'x'", "3x"),
    ("'x' + 1 + 2", "x12"),
    ("'v: ' + null", "v: null"),
    ("'t: ' + $json.tags", 't: ["a","b","c"]'),
    ("'o: ' + $json.nested", 'o: {"deep":{"value":42}}'),
    ("'b: ' + true", "b: true"),
    ("'f: ' + 2.50", "f: 2.5"),
    # comparisons
    ("1 == 1", True),
    ("'1' == 1", True),
    ("'1' === 1", False),
    ("1 === 1.0", True),
    ("1 !== '1'", True),
    ("null == null", True),
    ("$json.missing === null", True),
    ("[1, 2] === [1, 2]", True),
    ("true == 1", False),
    ("2 > 1", True),
    ("2 >= 2", True),
    ("'10' < 9", False),
    ("'b' > 'a'", True),
    ("'B' < 'a'", True),
    ("$json.quantity <= 9", False),
    ("$json.first != 'Bob'", True),
    # logic: JS short-circuit values and truthiness
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
    # ternary
    ("$json.quantity > 5 ? 'big' : 'small'", "big"),
    ("$json.quantity > 50 ? 'big' : $json.quantity > 5 ? 'medium' : 'small'", "medium"),
    ("$json.missing ? 1 : 2", 2),
    # methods
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
    # functions
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
    ("String($json.tags)", '["a","b","c"]'),
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


@pytest.mark.parametrize(("text", "expected"), VALUES)
def test_values(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


ERRORS = [
    ("", "empty expression"),
    ("1 +", "expected a value but found the end"),
    ("(1 + 2", "expected ')' but found the end"),
    ("1 2", "expected the end of the expression but found 2 at position 2"),
    ("'open", "unterminated string starting at position 0"),
    ("a + 1", "unknown name 'a' at position 0 (context values are written $name)"),
    ("$x = 1", "unexpected character '=' at position 3 (assignment is not supported)"),
    ("1 & 2", "unexpected character '&' at position 2"),
    ("$", "expected a name after '$' at position 0"),
    ("12abc", "bad number at position 0"),
    ("Math.pow(2, 3)", "Math.pow is not available (known: abs, ceil, floor, max, min, round)"),
    ("require('os')", "unknown name 'require' at position 0 (context values are written $name)"),
    ("$json.first.repeat(3)", "a string has no method 'repeat' (available: includes, split, "),
    ("$json.quantity.toFixed(2)", "a number has no method 'toFixed' (available: none)"),
    ("$json.missing.x", "cannot read property 'x' of null"),
    ("$json.missing.trim()", "cannot call 'trim()' on null"),
    ("1 / 0", "operator '/': division by zero"),
    ("5 % 0", "operator '%': division by zero"),
    ("$json.missing + 1", "operator '+': expected a number but got null (a missing value?)"),
    ("$json.first * 2", "operator '*': cannot convert 'Alice' to a number"),
    ("$json.tags - 1", "operator '-': expected a number but got an array"),
    ("$json.missing > 1", "operator '>': cannot convert 'null' to number"),
    ("Math.max()", "Math.max() needs at least one argument"),
    ("Math.abs(null)", "Math.abs(): expected a number but got null (a missing value?)"),
    ("Math.abs(1, 2)", "Math.abs() takes 1 argument(s), got 2"),
    ("JSON.parse('{')", "JSON.parse: Input data was truncated"),
    ("JSON.parse(1)", "JSON.parse: expected a string but got a number"),
    ("$nope", "unknown $nope"),
    ("1e308 * 10", "arithmetic result is not a finite number"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(SandboxError) as info:
        ev(text)
    assert str(info.value).startswith(message)


# -- no way out of the sandbox -----------------------------------------------------------------

ESCAPES = [
    ("'x'.__class__", "access to '__class__' is not allowed"),
    ("$json.__class__", "access to '__class__' is not allowed"),
    ("$json['__class__']", "access to '__class__' is not allowed"),
    ("$json.tags.__len__()", "access to '__len__' is not allowed"),
    ("'x'._secret", "access to '_secret' is not allowed"),
    ("$json.tags['_x']", "access to '_x' is not allowed"),
    ("$json.first.__class__.__mro__", "access to '__class__' is not allowed"),
    ("__import__('os')", "unknown name '__import__'"),
    ("_", "unknown name '_'"),
    ("String.__class__", "expected '(' but found '.'"),
    ("Math.__dict__", "Math.__dict__ is not available"),
    ("JSON.constructor", "JSON.constructor is not available"),
    ("eval('1')", "unknown name 'eval'"),
    ("this", "unknown name 'this'"),
]


@pytest.mark.parametrize(("text", "message"), ESCAPES)
def test_python_internals_are_out_of_reach(text: str, message: str) -> None:
    with pytest.raises(SandboxError) as info:
        ev(text)
    assert str(info.value).startswith(message)


def test_object_keys_are_plain_data() -> None:
    # `constructor` or `toString` on data are missing keys, never host attributes.
    assert ev("$json.constructor") is None
    assert ev("$json.first.constructor") is None
    assert ev("$json['toString']") is None


# -- limits ------------------------------------------------------------------------------------


def test_runaway_chain_is_interrupted_within_the_budget() -> None:
    big = ",".join("x" * 3 for _ in range(200_000))  # 200k elements, 800 kB
    CONTEXT["$big"] = big
    try:
        pair = ".split(',').join(',')"
        one = Expression("$big" + pair, is_root, Limits(timeout=60))
        started = time.monotonic()
        assert one.evaluate(lookup) == big
        single = time.monotonic() - started
        pairs = max(400, int(3.0 / max(single, 1e-4)))  # unbudgeted: at least 3 seconds
        runaway = Expression("$big" + pair * pairs, is_root, Limits(timeout=0.1))
        started = time.monotonic()
        with pytest.raises(SandboxError) as info:
            runaway.evaluate(lookup)
        elapsed = time.monotonic() - started
    finally:
        del CONTEXT["$big"]
    assert str(info.value) == "expression timeout or cancelled"
    assert 0.1 <= elapsed < 0.1 + max(0.3, 3 * single)


def test_deadline_is_checked_at_every_node() -> None:
    with pytest.raises(SandboxError, match=r"^expression timeout or cancelled$"):
        ev("1 + 1", Limits(timeout=-1))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 40_000])
def test_nesting_beyond_the_limit_is_a_clear_error(depth: int) -> None:
    for text in ("(" * depth + "1" + ")" * depth, "[" * depth + "]" * depth):
        with pytest.raises(SandboxError) as info:
            ev(text)
        assert str(info.value) == f"expression is nested too deeply (limit {MAX_DEPTH})"
    levels = min(depth, 5_000)  # a deeper ternary is longer than the text limit
    ternary = "true ? " * levels + "1" + " : 0" * levels
    with pytest.raises(SandboxError, match="nested too deeply"):
        ev(ternary)


def test_expression_text_is_length_limited() -> None:
    with pytest.raises(SandboxError) as info:
        ev("1" + " + 1" * 30_000)
    assert str(info.value) == "expression is too long (120001 > 100000 characters)"


def test_nesting_up_to_the_limit_works() -> None:
    depth = MAX_DEPTH - 1
    assert ev("(" * depth + "1" + ")" * depth) == 1


def test_long_flat_expressions_do_not_recurse() -> None:
    # what is tested is the absence of a RecursionError, not speed: a loaded CI machine may need
    # more than the default 100 ms for 20 000 terms
    roomy = Limits(timeout=30.0)
    assert ev(" + ".join(["1"] * 20_000), roomy) == 20_000
    assert ev("!" * 20_001 + "true", roomy) is False
    assert ev("$json" + ".nested" + ".deep" + ".value", roomy) == 42
    assert ev(" || ".join(["null"] * 5_000 + ["'end'"]), roomy) == "end"


@pytest.mark.parametrize(
    "text",
    [
        "$big + $big",
        "$big.split('')",
        "[$big, $big].join('')",
        "JSON.stringify([$big, $big])",
        "String([$big, $big])",
    ],
)
def test_results_are_size_limited(text: str) -> None:
    CONTEXT["$big"] = "y" * 600
    try:
        with pytest.raises(SandboxError) as info:
            ev(text, Limits(max_length=500))
        assert str(info.value).startswith("expression result too large (")
        assert ev("$big.length", Limits(max_length=500)) == 600
    finally:
        del CONTEXT["$big"]


# -- templates ---------------------------------------------------------------------------------


def render(text: str) -> Any:
    template = Template.parse(text, is_root)
    assert template is not None
    return template.evaluate(lookup)


def test_template_single_block_keeps_the_json_type() -> None:
    assert render("{{ $json.quantity }}") == 10
    assert render("  {{ $json.tags }}  ") == ["a", "b", "c"]
    assert render("{{ $json.nested }}") == {"deep": {"value": 42}}
    assert render("{{$json.missing}}") is None
    assert render("{{ $json.quantity > 3 }}") is True


def test_template_partial_interpolation_renders_each_block() -> None:
    assert render("Hello {{ $json.first }}!") == "Hello Alice!"
    assert render("{{ $json.first }} {{ $json.last }}") == "Alice Smith"
    assert render("{{ $json.quantity }}x{{ $json.unit_price }}") == "10x25.5"
    assert render("tags: {{ $json.tags }}, none: {{ $json.missing }}") == (
        'tags: ["a","b","c"], none: null'
    )
    assert render("{{ '}}' }} and {{ \"{{\" }}") == "}} and {{"


def test_template_literal_parts_go_through_the_given_mapper() -> None:
    template = Template.parse("a $x {{ 1 + 1 }} b", is_root)
    assert template is not None
    assert template.evaluate(lookup, lambda s: s.replace("$x", "X")) == "a X 2 b"


def test_template_without_blocks() -> None:
    assert Template.parse("no blocks here") is None
    assert Template.parse("unclosed {{ $json.first") is None
    assert render("{{ 1 }} then unclosed {{ x") == "1 then unclosed {{ x"


def test_template_block_results_are_not_evaluated_again() -> None:
    CONTEXT["$evil"] = "{{ $json.first }}"
    try:
        assert render("{{ $evil }}") == "{{ $json.first }}"
        assert render("say {{ $evil }}") == "say {{ $json.first }}"
    finally:
        del CONTEXT["$evil"]


def test_template_syntax_errors_surface_when_parsing() -> None:
    with pytest.raises(SandboxError, match=r"^empty expression$"):
        Template.parse("x {{ }}")
    with pytest.raises(SandboxError, match="expected a value"):
        Template.parse("{{ 1 + }}")


def test_template_blocks_share_one_budget() -> None:
    big = ",".join(["z"] * 100_000)
    CONTEXT["$big"] = big
    try:
        block = "{{ $big.split(',').join(',').length }}"
        one = Template.parse(block, is_root, Limits(timeout=60))
        assert one is not None
        started = time.monotonic()
        assert one.evaluate(lookup) == len(big)
        single = time.monotonic() - started
        # Each block alone fits in the budget; together they would not.
        budget = max(0.05, single * 4)
        blocks = int(budget / max(single, 1e-4)) * 3 + 3
        template = Template.parse(" ".join([block] * blocks), is_root, Limits(timeout=budget))
        assert template is not None
        with pytest.raises(SandboxError, match=r"^expression timeout or cancelled$"):
            template.evaluate(lookup)
    finally:
        del CONTEXT["$big"]


def test_huge_integers_become_floats() -> None:
    CONTEXT["$huge"] = 10**400
    try:
        with pytest.raises(SandboxError, match="not a finite number"):
            ev("$huge / 2")
        assert ev("2 * 9007199254740993") == 2 * 9007199254740992.0
    finally:
        del CONTEXT["$huge"]
