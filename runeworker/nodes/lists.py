"""Helpers shared by the list nodes `filter`, `sort` and `limit` (upstream
services/rune-worker/pkg/nodes/shared/listops/listops.go).

* Array input: `input_array` (raw, resolved here) is a `$reference` (with the direct-lookup
  fallback), a `{{ $reference }}`, a bare path (`Fetch.body`, tried as `$Fetch.body`) or a literal
  list. Absent, the list is `$json`; without `$json` the context is searched and must hold
  exactly one distinct list (the same list under `$input` and `$trigger` counts once); that
  search compares every list found with the distinct ones before it, and looks at the node's
  time limit (`worker.node_timeout`) before each.
* Field paths: `$item.age`, `age`, `.age`, `[0].x`, or a reference picked from the input list
  (`$Fetch.body[0].age` when the list is `$Fetch.body`) all name a field of each item.
* Values: equality and ordering of upstream's listops, and the rule-value coercion.

Field paths are interpreted here, never resolved against the context (the Go worker resolved them
first, so data could be expanded as a template).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from runeworker.engine.registry import NodeContext, TimeLimit
from runeworker.engine.resolver import Resolver, json_kind, render
from runeworker.errors import NodeError, ResolveError
from runeworker.nodes import dates, params
from runeworker.nodes.expression import ExpressionError, canonical_operator, compare, parse_number
from runeworker.nodes.params import as_bool

JSON_KEY = "$json"
_ORDERING = frozenset({">", "<", ">=", "<="})
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)
_SINGLE_REFERENCE = re.compile(r"\$\S+|\{\{\s*\$[^\s{}]+\s*\}\}")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[([0-9]+)\]")
# what may follow a base path in a field under it: an index, then the end or the next segment
_AFTER_BASE = re.compile(r"(?:\[[0-9]+\])?(?=$|[.\[])")
_MAX_LISTED_PATHS = 5
_INDEX_DIGITS = 18  # any longer index is beyond every list


kind = json_kind  # JSON type name, for error sentences


# -- array input --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayInput:
    """The list a node works on, and the references that named it (for field paths)."""

    items: list[Any]
    bases: tuple[str, ...] = ()


def array_input(ctx: NodeContext, limit: TimeLimit | None = None) -> ArrayInput:
    """The node's input list (see the module docstring); errors raise NodeError. `limit`: the
    node's time limit, for the search of a list when `input_array` is not set."""
    raw = ctx.params.get("input_array")
    if raw is None:
        if JSON_KEY in ctx.context:
            try:
                return _checked(ctx.resolver.lookup(JSON_KEY), (JSON_KEY,))
            except ResolveError as exc:  # unreadable: nested too deeply, a number out of range
                raise NodeError(f'failed to resolve reference "{JSON_KEY}": {exc}') from exc
        return _discover(ctx, limit or ctx.time_limit())
    if isinstance(raw, str):
        return _from_text(raw, ctx.resolver)
    if isinstance(raw, list):
        try:
            return ArrayInput(ctx.resolver.resolve_value(raw))
        except ResolveError as exc:
            raise NodeError(f"input_array: {exc}") from exc
    raise NodeError(f"expected array input, got {kind(raw)}")


def _checked(value: Any, bases: tuple[str, ...]) -> ArrayInput:
    if not isinstance(value, list):
        raise NodeError(f"expected array input, got {kind(value)}")
    return ArrayInput(value, bases)


def _from_text(raw: str, resolver: Resolver) -> ArrayInput:
    text = raw.strip()
    template = _TEMPLATE.fullmatch(text)
    if template is not None:
        text = template.group(1)
    if not text:
        raise NodeError("array input cannot be empty")
    if text.startswith("$"):
        try:
            return _checked(resolver.lookup_direct(text), (text,))
        except ResolveError as exc:
            raise NodeError(f'failed to resolve reference "{text}": {exc}') from exc
    try:
        return _checked(resolver.lookup_direct("$" + text), ("$" + text,))
    except ResolveError:
        # Go keeps the text itself, which is then not a list.
        raise NodeError(
            f'expected array input, got string ("{text}" names no list in the context)'
        ) from None


def _discover(ctx: NodeContext, limit: TimeLimit) -> ArrayInput:
    found: list[tuple[str, str, list[Any]]] = []  # (context key, path, list)
    for key in sorted(ctx.context):
        if not key.startswith("_"):
            found += [(key, path, value) for path, value in _lists(ctx.context[key], key)]
    distinct: list[list[Any]] = []
    for number, (_, path, value) in enumerate(found, 1):
        if limit.passed():  # each list is compared with every distinct one before it
            raise NodeError(
                f"input_array is not set; looking for the list to use at {path} "
                f"({number} of {len(found)} found): {limit.message()}"
            )
        if value not in distinct:
            distinct.append(value)
    paths = [path for _, path, _ in found]
    if not distinct:
        raise NodeError("input_array is not set, the context has no $json and holds no list to use")
    if len(distinct) > 1:
        more = ", ..." if len(paths) > _MAX_LISTED_PATHS else ""
        raise NodeError(
            f"input_array is not set and the context holds {len(distinct)} different lists "
            f"({', '.join(paths[:_MAX_LISTED_PATHS])}{more}); set input_array to the one to use"
        )
    ctx.resolver.used_keys.update(key for key, _, _ in found)
    return ArrayInput(distinct[0], tuple(paths))


def _lists(value: Any, path: str) -> list[tuple[str, list[Any]]]:
    """Every list reachable through objects, with its path. Lists are not searched: lists in
    their items are fields of the items, not candidate inputs."""
    if isinstance(value, list):
        return [(path, value)]
    if not isinstance(value, dict):
        return []
    out: list[tuple[str, list[Any]]] = []
    for key in sorted(value):
        if not key.startswith("_"):
            out += _lists(value[key], f"{path}.{key}")
    return out


# -- field paths ----------------------------------------------------------------------------------


def _with_root(path: str) -> str:
    return path if path.startswith("$") else "$" + path


def _relative(field: str, bases: tuple[str, ...]) -> str:
    """The path of `field` inside one item (upstream listops' prefix rules)."""
    if field == "$item" or field.startswith(("$item.", "$item[")):
        return field[len("$item") :].lstrip(".")
    ref = _with_root(field)
    for base in bases:
        base = _with_root(base)
        # the base as text, then one pattern: a pattern compiled per base would fill `re`'s
        # cache (512 patterns) with the paths workflows write, each as large as its path
        m = _AFTER_BASE.match(ref, len(base)) if ref.startswith(base) else None
        if m is not None:
            return ref[m.end() :].lstrip(".")
    return field.removeprefix("$").removeprefix(".")


def _index(digits: str) -> int:
    """A list index as written; one too long for any list (or for int(), past 4300 digits)
    is `sys.maxsize`, which no item has either."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _INDEX_DIGITS else sys.maxsize


@dataclass(frozen=True)
class FieldPath:
    """A compiled field path; `get` reads it from one item."""

    text: str
    segments: tuple[str | int, ...]

    def get(self, item: Any) -> tuple[bool, Any]:
        """(found, value); a missing field, a bad index or a step into a scalar is not found."""
        value = item
        for seg in self.segments:
            if isinstance(seg, int):
                if not isinstance(value, list) or seg >= len(value):
                    return False, None
                value = value[seg]
            elif isinstance(value, dict) and seg in value:
                value = value[seg]
            else:
                return False, None
        return True, value


def field_path(raw: Any, bases: tuple[str, ...], where: str) -> FieldPath:
    """Compile a rule's `field`; `where` names the rule in error sentences."""
    wording = params.Wording(invalid=f"{where}: field must be a string, not {{kind}}")
    text = params.text({"field": raw}, "field", wording=wording).strip()
    template = _TEMPLATE.fullmatch(text)
    if template is not None:
        text = template.group(1)
    path = _relative(text, bases) if text else ""
    if path and not path.startswith("["):
        path = "." + path
    segments: list[str | int] = []
    pos = 0
    for m in _SEGMENT.finditer(path):
        if m.start() != pos:
            break
        segments.append(m.group(1) if m.group(1) is not None else _index(m.group(2)))
        pos = m.end()
    if pos != len(path):
        raise NodeError(f"{where}: field '{text}' is not a valid path (at '{path[pos:]}')")
    return FieldPath(text, tuple(segments))


# -- values ---------------------------------------------------------------------------------------


def as_number(value: Any) -> int | float | None:
    """The number a value or numeric string (surrounding spaces allowed) denotes, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    return parse_number(value.strip()) if isinstance(value, str) else None


def coerce_value(raw: Any) -> Any:
    """A rule value written as text, read as upstream's listops reads it; non-strings are kept."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    number = parse_number(text)
    if number is not None:
        return number
    flag = as_bool(text)
    if flag is not None:
        return flag
    return None if text.lower() in ("null", "nil") else text


def rule_value(raw: Any, resolver: Resolver, where: str) -> Any:
    """Resolve references in a rule value, then coerce it. A value that is exactly one
    reference keeps the referenced value as it is: data is never re-read as rule text."""
    if not isinstance(raw, str) or "$" not in raw:
        return coerce_value(raw)
    text = raw.strip()
    try:
        if _SINGLE_REFERENCE.fullmatch(text):
            return resolver.resolve_value(text)
        return coerce_value(resolver.resolve_value(raw))
    except ResolveError as exc:
        raise NodeError(f"{where}: value: {exc}") from exc


def equal(left: Any, right: Any) -> bool:
    """Reference 5.11 equality: null only equals null; then numeric, boolean-like, text."""
    if left is None or right is None:
        return left is None and right is None
    ln, rn = as_number(left), as_number(right)
    if ln is not None and rn is not None:
        return ln == rn
    lb, rb = as_bool(left), as_bool(right)
    if lb is not None and rb is not None:
        return lb == rb
    return render(left) == render(right)


def sign(left: Any, right: Any) -> int:
    """-1, 0 or 1 as `left` is smaller than, equal to or greater than `right`."""
    return int(left > right) - int(left < right)


def order(left: Any, right: Any) -> int:
    """Reference 5.11 "auto" order of two non-null values: -1, 0 or 1."""
    ln, rn = as_number(left), as_number(right)
    if ln is not None and rn is not None:
        return sign(ln, rn)
    lt, rt = as_time(left), as_time(right)
    if lt is not None and rt is not None:
        return sign(lt, rt)
    return sign(render(left).lower(), render(right).lower())


def operator_of(raw: Any) -> str:
    """The canonical symbol of a rule operator (the word forms and the expression aliases)."""
    try:
        return canonical_operator(raw)
    except ExpressionError:
        text = raw.strip().lower() if isinstance(raw, str) else render(raw)
        raise NodeError(f"unsupported operator: {text}") from None


def matches(left: Any, op: str, right: Any) -> bool:
    """Apply a canonical operator. An ordering comparison with null is false (null is neither
    greater nor smaller than a value)."""
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    if op in _ORDERING:
        if left is None or right is None:
            return False
        sign = order(left, right)
        return {">": sign > 0, "<": sign < 0, ">=": sign >= 0, "<=": sign <= 0}[op]
    return compare(left, op, right)  # contains / not contains: substring or list member


def rules_param(ctx: NodeContext, what: str) -> list[Any]:
    """The raw `rules` parameter as a list (a `$reference` to one is resolved, one object is a
    list of one); not given -> []."""
    rules = ctx.params.get("rules")
    if isinstance(rules, str) and rules.strip():
        try:
            rules = ctx.resolver.resolve_value(rules)
        except ResolveError as exc:
            raise NodeError(f"rules parameter: {exc}") from exc
    wording = params.Wording(
        invalid=f"rules parameter must be a list of {what} rules, not {{kind}}"
    )
    return params.array({"rules": rules}, "rules", lone=dict, wording=wording)


# -- dates ----------------------------------------------------------------------------------------


# Texts read as dates, kept: at most 4096 of at most KEPT_TIME_CHARS each (every common layout
# writes fewer; a longer text is read each time, and `dates.read` rejects most at once). These are
# data (every value a filter or sort compares): by count alone, the cache kept texts of any length.
KEPT_TIME_CHARS = 64


@lru_cache(maxsize=4096)
def _parse_time(text: str) -> datetime | None:
    return dates.read(text)


def as_time(value: Any) -> datetime | None:
    """The instant a date string in one of upstream's common layouts denotes, else None.
    Read without a location, as Go's time.Parse: naive times and zone abbreviations are UTC."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return _parse_time(text) if len(text) <= KEPT_TIME_CHARS else dates.read(text)
