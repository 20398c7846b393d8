"""`filter` node: keeps the items of a list that match its rules (upstream
services/rune-worker/pkg/nodes/custom/filter/).

`rules` is a list of `{field, operator, value}`; `match_mode` is `all` (the default: every rule
must hold, an item without a rule's field is dropped) or `any` (one rule must hold; rules whose
field the item lacks are skipped). `rules` and `input_array` are raw parameters: fields are
paths inside each item, never references into the context; a `value` may reference the context.
Output: `$json` (the kept items), `count`, `original_count`.

The node as a whole is bounded by `worker.node_timeout` (counted from its start), looked at
before each rule is read and before each item (before each rule applied to an item when there
are more than `UNTIMED_STEPS`, 8): many items, or many rules, fail it with `filter item at
index I of N: stopped at the node time limit of S s (worker.node_timeout)` (`...: rule R:
stopped ...`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from time import monotonic
from typing import Any

from runeworker.engine.registry import UNTIMED_STEPS, NodeContext, TimeLimit, node
from runeworker.engine.resolver import Resolver
from runeworker.errors import NodeError
from runeworker.nodes import params
from runeworker.nodes.lists import (
    JSON_KEY,
    FieldPath,
    array_input,
    field_path,
    matches,
    operator_of,
    rule_value,
    rules_param,
)

MATCH_MODES = ("all", "any")


@dataclass(frozen=True)
class FilterRule:
    """One rule, ready to apply: `item[field] OP value`."""

    field: FieldPath
    op: str
    value: Any

    @classmethod
    def parse(cls, number: int, raw: Any, bases: tuple[str, ...], resolver: Resolver) -> FilterRule:
        """Check one `rules` entry and resolve its value; a bad entry raises NodeError."""
        where = f"filter rule {number}"
        if not isinstance(raw, dict):
            raise NodeError(f"{where} must be an object with field, operator and value")
        if raw.get("operator") is None:
            raise NodeError(f"{where} has no operator")
        op = operator_of(raw["operator"])
        path = field_path(raw.get("field"), bases, where)
        return cls(path, op, rule_value(raw.get("value"), resolver, where))

    def holds(self, item: Any) -> bool | None:
        """Whether the rule holds for `item`; None when the item lacks the field."""
        found, left = self.field.get(item)
        return matches(left, self.op, self.value) if found else None


_MATCH_MODE = params.Wording(invalid="match_mode must be 'all' or 'any', not '{kind}'")


def _match_mode(ps: dict[str, Any]) -> str:
    raw = params.text(ps, "match_mode", "all", wording=_MATCH_MODE)
    if raw.strip().lower() not in MATCH_MODES:
        raise NodeError(f"match_mode must be 'all' or 'any', not '{raw}'")
    return raw.strip().lower()


def keep(item: Any, rules: Iterable[FilterRule], mode: str) -> bool:
    """`all`: every rule holds (a missing field fails the item). `any`: one rule holds."""
    for rule in rules:
        result = rule.holds(item)
        if mode == "any" and result:
            return True
        if mode == "all" and not result:
            return False
    return mode == "all"


def _timed(rules: list[FilterRule], limit: TimeLimit) -> Iterator[FilterRule]:
    """The rules, looking at `limit` before each; once passed, NodeError names the rule."""
    for number, rule in enumerate(rules, 1):
        if monotonic() >= limit.deadline:
            raise NodeError(f"rule {number}: {limit.message()}")
        yield rule


@node("filter", required=("rules",), raw=("rules", "input_array"))
def run(ctx: NodeContext) -> dict[str, Any]:
    """Filter the input list; output `{"$json": kept, "count": n, "original_count": m}`."""
    limit = ctx.time_limit()
    entries = rules_param(ctx, "filter")
    if not entries:
        raise NodeError("at least one filter rule is required")
    mode = _match_mode(ctx.params)
    source = array_input(ctx, limit)
    rules = []
    for i, raw in enumerate(entries, 1):
        if monotonic() >= limit.deadline:
            raise NodeError(f"filter rule {i}: {limit.message()}")
        rules.append(FilterRule.parse(i, raw, source.bases, ctx.resolver))
    items = source.items
    deadline = limit.deadline
    many = len(rules) > UNTIMED_STEPS  # an item's rules are then timed one by one
    kept = []
    for index, item in enumerate(items):
        try:
            if monotonic() >= deadline:
                raise NodeError(limit.message())
            if keep(item, _timed(rules, limit) if many else rules, mode):
                kept.append(item)
        except NodeError as exc:
            raise NodeError(f"filter item at index {index} of {len(items)}: {exc}") from exc
    return {JSON_KEY: kept, "count": len(kept), "original_count": len(items)}
