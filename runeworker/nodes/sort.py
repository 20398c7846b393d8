"""`sort` node: orders a list by one or more rules (upstream
services/rune-worker/pkg/nodes/custom/sort/).

`rules` is a list of `{field, direction, type}`: direction `desc`/`descending` (any case) or
ascending; type `auto` (the default: numbers, else dates, else case-insensitive text), `text`
(alias `string`), `number` or `date` (aliases `datetime`, `time`). The sort is stable and later
rules break the ties of earlier ones. Items that lack a field, or hold null there, go last in both
directions (the Go worker put them first when descending:
services/rune-worker/pkg/nodes/shared/listops/listops.go).
Output: `$json` (the sorted items) and `count`.

The node as a whole is bounded by `worker.node_timeout` (counted from its start), looked at
before each rule reads an item's key and before each rule compares two: a large list, many
rules, or costly keys (`auto` compares texts as numbers and dates first) fail it with `sort rule
R: sorting N items: stopped at the node time limit of S s (worker.node_timeout)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cmp_to_key
from time import monotonic
from typing import Any

from runeworker.engine.registry import NodeContext, TimeLimit, node
from runeworker.engine.resolver import render
from runeworker.errors import NodeError
from runeworker.nodes import params
from runeworker.nodes.lists import (
    JSON_KEY,
    FieldPath,
    array_input,
    as_number,
    as_time,
    field_path,
    order,
    rules_param,
    sign,
)

SORT_TYPES = {
    "": "auto", "auto": "auto", "text": "text", "string": "text", "number": "number",
    "date": "date", "datetime": "date", "time": "date",
}  # fmt: skip
_SHOWN_CHARS = 60


def _word(rule: dict[str, Any], name: str) -> str:
    # Go reads a non-string direction or type as "" (the default).
    return params.text(rule, name, other="default").strip().lower()


def _shown(value: Any) -> str:
    text = render(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


@dataclass(frozen=True)
class SortRule:
    """One ordering rule."""

    number: int
    field: FieldPath
    descending: bool
    type: str  # auto | text | number | date

    @classmethod
    def parse(cls, number: int, raw: Any, bases: tuple[str, ...]) -> SortRule:
        """Check one `rules` entry; a bad entry raises NodeError."""
        where = f"sort rule {number}"
        if not isinstance(raw, dict):
            raise NodeError(f"{where} must be an object with field, direction and type")
        type_ = _word(raw, "type")
        if type_ not in SORT_TYPES:
            raise NodeError(f"unsupported sort type: {type_}")
        descending = _word(raw, "direction") in ("desc", "descending")
        return cls(
            number, field_path(raw.get("field"), bases, where), descending, SORT_TYPES[type_]
        )

    def key(self, item: Any, index: int) -> Any:
        """The value this rule orders `item` by; None when missing or null."""
        found, value = self.field.get(item)
        if not found or value is None:
            return None
        if self.type == "text":
            return render(value).lower()
        if self.type == "auto":
            return value  # compared pairwise: "auto" is not one key order
        key = as_number(value) if self.type == "number" else as_time(value)
        if key is None:
            what = "a number" if self.type == "number" else "a date in a supported layout"
            at = f"'{self.field.text}' of item {index}" if self.field.text else f"item {index}"
            raise NodeError(f"sort rule {self.number}: {at} is '{_shown(value)}', not {what}")
        return key

    def compare(self, left: Any, right: Any) -> int:
        """Order two keys of this rule; missing (None) keys are last whatever the direction."""
        if left is None or right is None:
            return int(left is None) - int(right is None)
        result = order(left, right) if self.type == "auto" else sign(left, right)
        return -result if self.descending else result


def sort_items(
    items: list[Any], rules: list[SortRule], limit: TimeLimit | None = None
) -> list[Any]:
    """`items` sorted by `rules` (stable; the first rule that tells two items apart decides).
    `limit` is looked at before each item's keys and each comparison; once passed,
    NodeError."""
    limit = limit or TimeLimit(0)
    deadline = limit.deadline
    keyed = []
    for i, item in enumerate(items):
        keys = []
        for rule in rules:
            if monotonic() >= deadline:
                where = f"sort rule {rule.number}: reading item {i} of {len(items)}"
                raise NodeError(f"{where}: {limit.message()}")
            keys.append(rule.key(item, i))
        keyed.append((keys, item))

    def compare(a: tuple[list[Any], Any], b: tuple[list[Any], Any]) -> int:
        for rule, left, right in zip(rules, a[0], b[0], strict=True):
            if monotonic() >= deadline:
                where = f"sort rule {rule.number}: sorting {len(items)} items"
                raise NodeError(f"{where}: {limit.message()}")
            result = rule.compare(left, right)
            if result:
                return result
        return 0

    return [item for _, item in sorted(keyed, key=cmp_to_key(compare))]


@node("sort", required=("rules",), raw=("rules", "input_array"))
def run(ctx: NodeContext) -> dict[str, Any]:
    """Sort the input list; output `{"$json": sorted items, "count": n}`."""
    limit = ctx.time_limit()
    entries = rules_param(ctx, "sort")
    if not entries:
        raise NodeError("at least one sort rule is required")
    source = array_input(ctx, limit)
    rules = [SortRule.parse(i, raw, source.bases) for i, raw in enumerate(entries, 1)]
    ordered = sort_items(source.items, rules, limit)
    return {JSON_KEY: ordered, "count": len(ordered)}
