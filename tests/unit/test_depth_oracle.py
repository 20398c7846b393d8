"""runeworker/engine/depth.py against plain oracles, on seeded random JSON texts.

Its checks are fast paths over bytes (counts, translations, samples) in front of a decoder; each
shortcut must agree with the slow answer: how deep a text nests (walked, not recursed) and
whether it holds, outside its strings, a number no IEEE double holds (Python's json, whose
hooks see each number's text). The texts mix what the shortcuts look at: exponents of two,
three and four digits with and without sign, runs of 199 to 400 digits, the same shapes inside
strings and in hex ids, escaped quotes and backslashes beside brackets, and nesting around the
limits."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from runeworker.engine import depth

NUMBERS = [
    "0", "-1", "123", "1.5", "2e10", "1e308", "-1e308", "1.7976931348623157e308", "1e309",
    "-1e309", "1E400", "1e+309", "1e+0309", "-2.5E+999", "0e999", "0.0e400", "1e-400",
    "9e-999", "1e0308", "12e307", "0.5e309", "9" * 199, "9" * 200, "9" * 308, "9" * 309,
    "-" + "9" * 309, "1" + "0" * 308, "1" + "0" * 309 + ".5", "9" * 400, "3.25e-10",
]  # fmt: skip
STRINGS = [
    "", "a", "1e999", "3e456f", "93e123-4a5b", "9" * 320, 'quote " inside', "back\\slash",
    "[[{{", "}]", "e400", "x1e309y", "\\u00e9", "\u00e9",
]  # fmt: skip


def gen_value(rng: random.Random, level: int, deep: int) -> Any:
    """A value nesting at most `deep` more levels."""
    pick = rng.random()
    if deep <= 0 or pick < 0.35:
        return Num(rng.choice(NUMBERS)) if rng.random() < 0.6 else rng.choice(STRINGS)
    if pick < 0.65:
        return [gen_value(rng, level + 1, deep - 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(STRINGS) + str(i): gen_value(rng, level + 1, deep - 1)
        for i in range(rng.randint(0, 3))
    }


class Num(str):
    """A number written as its own text."""


def dump(value: Any) -> str:
    if isinstance(value, Num):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"


def chain(rng: random.Random, levels: int) -> str:
    """A value nesting exactly `levels` levels, with strings of brackets along the way."""
    text = dump(gen_value(rng, 0, 0))
    for _ in range(levels):
        if rng.random() < 0.5:
            text = f"[{json.dumps(rng.choice(STRINGS))},{text}]"
        else:
            text = f'{{"k{rng.randint(0, 9)}":{text}}}'
    return text


def levels(text: str) -> int:
    """How deep a JSON text nests, walking the decoded value (no recursion)."""
    deepest, stack = 0, [(json.loads(text, parse_int=str, parse_float=str), 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            stack += ((v, level) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def overflowing(text: str) -> bool:
    """Whether a number outside the strings of `text` is one no double holds."""
    found = []

    def number(token: str) -> int:
        if math.isinf(float(token)):
            found.append(token)
        return 0

    json.loads(text, parse_int=number, parse_float=number)
    return bool(found)


def texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.3:
            out.append(chain(rng, rng.choice([1, 49, 50, 51, 99, 100, 101, 102, 127, 128, 140])))
        else:
            out.append(dump(gen_value(rng, 0, rng.randint(1, 6))))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_number_problem_agrees_with_the_oracle(seed: int) -> None:
    for text in texts(seed, 150):
        found = depth.number_problem(text.encode())
        assert bool(found) == overflowing(text), text[:300]
        if found:
            assert found.startswith("Number out of range")


@pytest.mark.parametrize("seed", range(6))
def test_json_exceeds_agrees_with_the_oracle(seed: int) -> None:
    for text in texts(100 + seed, 150):
        deepest = levels(text)
        for limit in (depth.MAX_DEPTH, 50, depth.RTES_DEPTH):
            assert depth.json_exceeds(text, limit) == (deepest > limit), (limit, text[:300])
            assert depth.json_exceeds(text.encode(), limit) == (deepest > limit)


@pytest.mark.parametrize("seed", range(6))
def test_unpublishable_agrees_with_the_oracles(seed: int) -> None:
    for text in texts(200 + seed, 150):
        data = text.encode()
        if levels(text) > depth.MAX_DEPTH:
            expected: str | None = depth.PLACEHOLDER
        elif overflowing(text):
            expected = depth.UNREADABLE
        else:
            expected = None
        assert depth.unpublishable(data) == expected, text[:300]
        assert depth.unpublishable(data, keep=True) == expected  # and kept, asked again
        assert depth.unpublishable(data, keep=True) == expected
        whole = b'{"a":' + data + b"}"
        assert depth.context_publishable(whole) == (expected is None)


@pytest.mark.parametrize("seed", range(4))
def test_decode_refuses_what_no_double_holds_and_reads_the_rest(seed: int) -> None:
    for text in texts(300 + seed, 150):
        if levels(text) > depth.MAX_DEPTH:
            with pytest.raises(depth.DepthError):
                depth.decode(text.encode(), "value")
        elif overflowing(text):
            with pytest.raises(Exception, match="out of range"):
                depth.decode(text.encode(), "value")
        else:
            assert levels(json.dumps(depth.decode(text.encode(), "value"))) == levels(text)


@pytest.mark.parametrize("seed", range(3))
def test_number_problem_in_a_text_too_deep_for_a_decoder_scans_it(seed: int) -> None:
    """Past the decoders' nesting (Python's json recurses) the text is scanned with its
    strings blanked: the same answer."""
    for text in texts(400 + seed, 100):
        deep = "[" * 1500 + text + "]" * 1500
        found = depth.number_problem(deep.encode())
        assert bool(found) == overflowing(text), text[:300]
        if found:
            assert found.startswith("Number out of range: ")


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("1e999", "1e999"),
        ("-2.5E+999", "-2.5E+999"),
        ("9" * 309, "999999999999...9999 (309 characters)"),
        ("-" + "1" * 30 + "e400", "-11111111111...e400 (35 characters)"),
    ],
)
def test_a_number_no_double_holds_is_quoted_short(token: str, shown: str) -> None:
    text = '{"a":[1,{"b":' + token + "}]}"
    assert depth.number_problem(text) == f"Number out of range - at `$.a[1].b`: {shown}"
    deep = "[" * 1500 + text + "]" * 1500
    assert depth.number_problem(deep) == f"Number out of range: {shown}"


HOLDS = "holds a number no IEEE double holds"


def nest(levels: int, inner: Any = 0) -> Any:
    value = inner
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**400, f"{HOLDS} (Number out of range - at `$`)"),
        (-(10**308), ""),
        (10**308, ""),
        ({"a": [1, 10**309]}, f"{HOLDS} (Number out of range - at `$.a[1]`)"),
        ({"a": "9" * 400}, ""),
        (nest(depth.MAX_DEPTH), ""),
        (nest(depth.MAX_DEPTH + 1), f"is {depth.TOO_DEEP}"),
        (nest(5000), f"is {depth.TOO_DEEP}"),
        (nest(depth.MAX_DEPTH, object()), ""),
        (nest(depth.MAX_DEPTH + 1, object()), f"is {depth.TOO_DEEP}"),
        ("text", ""),
        (1.5, ""),
    ],
    ids=[
        "huge-int", "negative-in-range", "in-range", "huge-int-inside", "digits-in-a-string",
        "at-the-limit", "one-past", "far-past", "not-json-at-the-limit", "not-json-one-past",
        "string", "float",
    ],
)  # fmt: skip
def test_problem_names_what_keeps_a_value_from_being_published(value: Any, expected: str) -> None:
    assert depth.problem(value) == expected
    assert depth.exceeds(value) == expected.startswith("is ")
