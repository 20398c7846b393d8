"""`edit` node: sets fields on `$json` (or on a target), item by item for arrays (
upstream services/rune-worker/pkg/nodes/custom/edit/edit_node.go, RFC-007).

Parameters: `mode` (`assignments`, the default, keeps the source fields; `keep_only` starts
from an empty object; other values act as `assignments`), `target_path` (or the legacy
`array_path`) and `assignments`, a list of `{"name", "value", "type"}`.

Source: with a target path, the context value at that dot path, tried as written and then with
`$` in front (`baby` -> `$baby`; brackets and node ids work there, as in any reference);
otherwise `$json` (missing = `{}`). An object is edited once; an array is edited per element
(each must be an object). Inside the values `$json` is the object being edited (the target or
the element), never the assignments already applied.

Values (the node resolves them itself, so typed values survive, unlike Go, which pre-resolved them
as text):

* exactly one `{{ expression }}` (blanks around allowed) -> the expression's value, JSON type
  kept. Expressions are JavaScript, as upstream's goja: `runeworker.nodes.javascript` (every
  context key a global, 100 ms of CPU per value, a memory cap, no I/O);
* text with `{{ }}` blocks -> each block evaluated and rendered into the text;
* text without `{{` -> ordinary references: a whole `$ref` keeps its type, `$refs` in text are
  rendered; other JSON values (numbers, objects, ...) are resolved the same way.

Values from the context are never evaluated again, so data cannot inject expressions.
`type` (default `string`, also when not text) casts the value: `string` (JSON text for objects
and arrays), `number`, `boolean` (`true/yes/1/false/no/0`, numbers are true unless 0) or `json`
(parses text). `name` is a dot path; missing objects on the way are created.

The node as a whole is bounded by `worker.node_timeout` (counted from its start): each value
looks at it before it is resolved, and an expression's 100 ms become what is left of it when
that is less, so many values (assignments times items) each under 100 ms fail the node with
`apply assignments at index I: resolve value for 'NAME': stopped at the node time limit of N s
(worker.node_timeout)` instead of running until the supervisor kills the child.
"""

from __future__ import annotations

import math
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import msgspec

from runeworker.engine import depth
from runeworker.engine.context import LazyContext
from runeworker.engine.registry import NodeContext, TimeLimit, node
from runeworker.engine.resolver import Resolver, json_kind, render
from runeworker.errors import DepthError, NodeError, RuneworkerError
from runeworker.nodes import params
from runeworker.nodes.expression import parse_number
from runeworker.nodes.javascript import Budget, JavaScript, Template

JSON_KEY = "$json"
CREDENTIAL_KEY = "$credential"
_SAFE_INT = 2**53


@dataclass(frozen=True)
class Assignment:
    """One `{name, value, type}` entry; `template` is set when `value` has `{{ }}` blocks."""

    name: str
    value: Any
    type: str
    template: Template | None


# -- casts ------------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    shown = text if len(text) <= 60 else text[:60] + "..."
    return msgspec.json.encode(shown).decode()


def _finite(value: int | float, what: str) -> int | float:
    """A number as JSON writes it: integral floats become ints (10 * 25.5 is 255), ints beyond
    2**53 floats; NaN and the infinities have no JSON form and fail."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NodeError(f"{what}: {render(value)} is not a finite number")
        return int(value) if value.is_integer() and abs(value) <= _SAFE_INT else value
    if abs(value) > _SAFE_INT:
        try:
            return float(value)
        except OverflowError:
            raise NodeError(f"{what}: the number is too large") from None
    return value


def _to_number(value: Any) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(value, "cast to number")
    if isinstance(value, str):
        number = parse_number(value.strip())
        if number is None:
            raise NodeError(f"cast to number: parsing {_quoted(value)}: invalid syntax")
        return _finite(number, "cast to number")
    raise NodeError(f"cannot cast {json_kind(value)} to number")


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        flag = params.as_bool(value)  # the boolean words every node reads
        if flag is None:
            raise NodeError(f"cannot cast string '{value}' to boolean")
        return flag
    raise NodeError(f"cannot cast {json_kind(value)} to boolean")


def _to_json(value: Any) -> Any:
    if isinstance(value, float):
        return _finite(value, "cast to json")
    if not isinstance(value, str):
        return value  # already JSON data (Go's JSON round trip changes nothing)
    try:
        return depth.decode(value, "the JSON text")
    except msgspec.DecodeError as exc:
        raise NodeError(f"cast to json: {exc}") from None
    except DepthError as exc:
        raise NodeError(f"cast to json: {exc}") from None


def cast(value: Any, type_: str) -> Any:
    """Convert `value` to `type_` (string, number, boolean or json); raises NodeError."""
    if type_ == "string":
        return render(value)
    if type_ == "number":
        return _to_number(value)
    if type_ == "boolean":
        return _to_boolean(value)
    if type_ == "json":
        return _to_json(value)
    raise NodeError(f"unsupported target type '{type_}'")


# -- paths ------------------------------------------------------------------------------------


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """`obj[a][b]... = value` for the dot path `a.b...`, creating missing objects.

    Objects on the way are copied before they change: they may be shared with the context.
    """
    keys = path.split(".")
    if any(not key for key in keys):
        raise NodeError(f"path '{path}' has an empty key")
    current = obj
    for key in keys[:-1]:
        child = current.get(key)
        if key in current and not isinstance(child, dict):
            raise NodeError(f"cannot set property '{key}' on non-object")
        copy = dict(child) if isinstance(child, dict) else {}
        current[key] = copy
        current = copy
    current[keys[-1]] = value


def _walk(context: Mapping[str, Any], path: str) -> Any:
    """Go's dot-path lookup: every segment a key of an object; raises KeyError."""
    value: Any = context
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(key)
        value = value[key]
    return value


def _target(ctx: NodeContext, path: str) -> Any:
    try:
        value = _walk(ctx.context, path)
    except KeyError:
        ref = path if path.startswith("$") else "$" + path
        try:
            value = ctx.resolver.lookup(ref)
        except RuneworkerError as exc:
            raise NodeError(f"get target path '{path}': {exc}") from exc
    if value is None:
        raise NodeError(f"target path '{path}' resolved to nil")
    return value


_PATH = params.Wording(invalid="{name} must be a dot path string, not {shown}")
_ASSIGNMENTS = params.Wording(
    missing="assignments are required",
    invalid="assignments must be a list of {{name, value, type}} objects",
)
_NAME = params.Wording(missing="assignment name is required")


def _path_param(ctx: NodeContext) -> str:
    for key in ("target_path", "array_path"):
        path = params.text(ctx.params, key, wording=_PATH).strip()
        if path:
            return path
    return ""


# -- assignments ------------------------------------------------------------------------------


def _assignments(ctx: NodeContext) -> list[Assignment]:
    raw = params.array(ctx.params, "assignments", required=True, wording=_ASSIGNMENTS)
    if not raw:
        raise NodeError("assignments are required")
    out: list[Assignment] = []
    for i, entry in enumerate(raw, 1):
        if not isinstance(entry, dict):
            raise NodeError(f"assignment {i} must be an object with name, value and type")
        name = params.text(entry, "name", required=True, other="default", wording=_NAME)
        # a `type` that is not a string is `string`, as upstream's `.(string)` reads it
        type_ = params.text(entry, "type", "string", other="default").strip().lower()
        value = entry.get("value")
        template = Template.parse(value) if isinstance(value, str) else None
        out.append(Assignment(name, value, type_, template))
    return out


@dataclass
class _Plan:
    """What every edited object shares: the assignments, the mode, the node's context, its
    time limit (worker.node_timeout, looked at once per value) and its JavaScript engine
    (made on the first expression: a run without one needs none)."""

    ctx: NodeContext
    assignments: list[Assignment]
    keep_only: bool
    limit: TimeLimit
    js: JavaScript | None = field(default=None)

    def engine(self) -> JavaScript:
        if self.js is None:
            sources = _sources(self.ctx.context)
            if self.ctx.credentials:
                sources[CREDENTIAL_KEY] = self.ctx.credentials
            self.js = JavaScript(sources)
        return self.js


def _sources(context: Mapping[str, Any]) -> dict[str, Any]:
    """Every context value for the engine, as its message bytes when it has them still."""
    if isinstance(context, LazyContext):
        return {key: context.raw(key) for key in context}
    return dict(context)


class _Scope:
    """One edited object: `$json` is that object, the rest is the context."""

    def __init__(self, plan: _Plan, item: dict[str, Any]) -> None:
        self.plan = plan
        ctx = plan.ctx
        self.resolver = Resolver(
            ChainMap({JSON_KEY: item}, ctx.context),  # type: ignore[arg-type]
            credentials=ctx.credentials,
            aliases=ctx.workflow.aliases,
        )
        self.item = item
        self._item_text: str | None = None

    def value(self, a: Assignment) -> Any:
        template = a.template
        if template is None:
            if monotonic() >= self.plan.limit.deadline:
                raise NodeError(self.plan.limit.message())
            return self.resolver.resolve_value(a.value)
        # the blocks of one value share it; cut to what is left of the node's time limit
        budget = Budget(limit=self.plan.limit)
        if template.whole:
            return self._evaluate(template.expression, budget)
        text = []
        for code, part in template.parts:
            if code:
                text.append(render(self._evaluate(part, budget)))
            else:
                text.append(render(self.resolver.resolve_value(part)))
        return "".join(text)

    def _evaluate(self, expression: str, budget: Budget) -> Any:
        if self._item_text is None:
            self._item_text = msgspec.json.encode(self.item).decode()
        return self.plan.engine().evaluate(expression, self._item_text, budget)


def _apply(plan: _Plan, item: dict[str, Any]) -> dict[str, Any]:
    scope = _Scope(plan, item)
    result: dict[str, Any] = {} if plan.keep_only else dict(item)
    try:
        for a in plan.assignments:
            try:
                value = scope.value(a)
            except RuneworkerError as exc:
                raise NodeError(f"resolve value for '{a.name}': {exc}") from exc
            try:
                value = cast(value, a.type)
            except NodeError as exc:
                raise NodeError(f"type cast for '{a.name}': {exc}") from exc
            try:
                set_path(result, a.name, value)
            except NodeError as exc:
                raise NodeError(f"set nested for '{a.name}': {exc}") from exc
    finally:
        plan.ctx.resolver.used_keys |= scope.resolver.used_keys
    return result


@node("edit", required=("assignments",), raw=("assignments", "target_path", "array_path"))
def run(ctx: NodeContext) -> dict[str, Any]:
    """Apply the assignments; output `{"$json": the edited object or array}`."""
    limit = ctx.time_limit()
    keep_only = params.text(ctx.params, "mode", other="render").strip().lower() == "keep_only"
    plan = _Plan(ctx, _assignments(ctx), keep_only, limit)
    try:
        return _edit(ctx, plan)
    finally:
        if plan.js is not None:  # the context values the expressions read
            ctx.resolver.used_keys |= plan.js.used - {CREDENTIAL_KEY}


def _edit(ctx: NodeContext, plan: _Plan) -> dict[str, Any]:
    path = _path_param(ctx)
    source = _target(ctx, path) if path else ctx.context.get(JSON_KEY)
    if source is None:
        source = {}
    if isinstance(source, dict):
        return {JSON_KEY: _apply(plan, source)}
    if not isinstance(source, list):
        raise NodeError("target data is neither map nor array")
    results = []
    for i, item in enumerate(source):
        if not isinstance(item, dict):
            raise NodeError(f"item at index {i} is not a map")
        try:
            results.append(_apply(plan, item))
        except NodeError as exc:
            raise NodeError(f"apply assignments at index {i}: {exc}") from exc
    return {JSON_KEY: results}
