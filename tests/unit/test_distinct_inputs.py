"""Caches of a worker child fed distinct inputs: what they keep must not grow with the length
of what a workflow writes. A child runs for months, and a deployment's workflows write
references, expressions, formats and data of any length (and an adversary chooses them):
a cache bounded by its number of entries alone held 16 KB strings by the thousand (a soak with
16 KB references, expressions, formats and dates, tests/soak/distinct_inputs.py: a child's live
heap 161-165 MB, 80-83 MB once they are not kept). Each test feeds distinct long inputs and
measures, with tracemalloc, what stays allocated once they are done."""

from __future__ import annotations

import contextlib
import gc
import random
import re
import string
import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any

from runeworker.engine.resolver import Resolver
from runeworker.errors import RuneworkerError
from runeworker.nodes import lists
from runeworker.nodes.datetime_layouts import compile_format
from runeworker.nodes.expression import Expression

LONG = 16_000  # characters of each distinct input
COUNT = 200  # distinct inputs: 3.2 MB of text, all of it kept by a cache without a length bound
HELD = 512 * 1024  # what may stay allocated afterwards (the caches' own short entries, noise)


def texts(prefix: str, count: int = COUNT, length: int = LONG) -> list[str]:
    rnd = random.Random(prefix)
    letters = string.ascii_letters
    return [prefix + "".join(rnd.choices(letters, k=length)) for _ in range(count)]


def held(run: Callable[[str], Any], inputs: Iterable[str]) -> int:
    """Bytes still allocated after `run` over `inputs` (each handed over as a copy made while
    tracing, dropped before the measure: only what a cache keeps of them counts)."""
    items = list(inputs)

    def quietly(item: str) -> None:
        # a failing reference or date is parsed (and was kept) all the same
        with contextlib.suppress(RuneworkerError):
            run(item[:1] + item[1:])  # a copy made while traced: counted if something keeps it

    quietly(items[0])  # first-use allocations (imports, compiled patterns) are not the point
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for item in items:
            quietly(item)
        del items, item
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_long_references_are_not_kept() -> None:
    resolver = Resolver({"$input": {"a": 1}})
    kept = held(lambda path: resolver.resolve_value("$input.a." + path), texts("p"))
    assert kept < HELD


def test_long_templates_are_not_kept() -> None:
    resolver = Resolver({"$input": {"a": 1}})
    kept = held(lambda p: resolver.resolve_value("{{ $input." + p + " }} and text"), texts("t"))
    assert kept < HELD


def test_long_expressions_are_not_kept() -> None:
    kept = held(lambda text: Expression(f"'{text}' == 'x' or 1 > 2"), texts("e"))
    assert kept < HELD


def test_long_texts_compared_as_dates_are_not_kept() -> None:
    kept = held(lambda text: lists.order(text, "2024-01-02T03:04:05Z"), texts("2024-01-01 "))
    assert kept < HELD


def test_long_formats_are_not_kept() -> None:
    kept = held(lambda text: compile_format("%Y " + text.replace("%", "")), texts("f"))
    assert kept < HELD


def test_long_list_paths_are_not_compiled_into_re_s_cache() -> None:
    """A rule's field relative to a long `input_array` path: Python's `re` keeps the last 512
    patterns it compiled, each as large as the path."""
    re.purge()
    kept = held(lambda base: lists._relative(f"$input.{base}[0].name", (f"$input.{base}",)),
                texts("b", length=4000))  # fmt: skip
    assert kept < HELD


def _relative_with_re(field: str, bases: tuple[str, ...]) -> str:
    """`lists._relative` as it was, matching each base with a pattern compiled from it."""
    if field == "$item" or field.startswith(("$item.", "$item[")):
        return field[len("$item") :].lstrip(".")
    ref = lists._with_root(field)
    for base in bases:
        base = lists._with_root(base)
        m = re.match(re.escape(base) + r"(?:\[[0-9]+\])?(?=$|[.\[])", ref)
        if m is not None:
            return ref[m.end() :].lstrip(".")
    return field.removeprefix("$").removeprefix(".")


def test_relative_paths_read_as_with_a_pattern_per_base() -> None:
    fields = ["$input.users", "input.users", "$input.users[0].name", "$input.users.name",
              "$input.users[12]", "$input.users[x].name", "$input.users[]", "$input.usersX.a",
              "$input.users\n", "$input.users\n.a", "$input.users[3]\n", "$item", "$item.a",
              "$item[2].b", ".a", "$a.b+c.d", "$a.b+c[1]", "a.b+c", "$json", "$json.a[0]",
              "$input.users.", "$input.users[1][2].x", "", "$", "users"]  # fmt: skip
    bases = [("$input.users",), ("input.users",), ("$a.b+c",), ("$json", "$input.users"),
             ("$input",), ("$input.users[0]",), ("",), ("$",), ("users",)]  # fmt: skip
    rnd = random.Random(7)
    parts = ["$", "a", "b", ".", "[", "]", "0", "1", "\n", "+", "users", "input"]
    fields += ["".join(rnd.choices(parts, k=rnd.randint(0, 8))) for _ in range(3000)]
    bases += [("".join(rnd.choices(parts, k=rnd.randint(0, 5))),) for _ in range(60)]
    for base in bases:
        for field in fields:
            assert lists._relative(field, base) == _relative_with_re(field, base), (field, base)
