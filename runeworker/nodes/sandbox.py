"""A small, safe expression language for `{{ }}` blocks (replaces the Go worker's goja JavaScript).

Nothing is ever handed to Python's `eval`/`exec` and no Python attribute is ever read: the
syntax tree of `sandbox_syntax` is interpreted over plain JSON values (None, bool, int, float,
str, list, dict). The language is a JavaScript subset:

* literals: numbers, `'single'` / `"double"` strings (JS escapes), `true`, `false`, `null`
  (`undefined` is read as null), array literals `[a, b]`;
* variables: `$name` is the context key `$name` (`$json`, `$input`, `$item`, `$Node_Name`, ...);
  a `-` belongs to the name only when the joined name is a context key (`$Node-Name`);
* `.name`, `["name"]`, `[0]`; a missing property is null (JS would say undefined), reading a
  property of null is an error; `.length` of strings and arrays;
* `+` adds numbers and concatenates as soon as one side is a string (the other side rendered:
  null -> "null", objects and arrays as JSON); `- * / %` on numbers (numeric strings and booleans
  are converted as in JS; null, NaN-producing text and division by zero are errors, not NaN);
* `== !=` are the conditional node's loose equality, `=== !==` strict (same JSON type and value,
  arrays and objects compared by content); `< <= > >=` compare strings as text, else numbers;
* `&& ||` short-circuit and return an operand, `!`, unary `-` / `+`, `a ? b : c`, parentheses;
  truthiness is JavaScript's: null, false, 0, "" are false, everything else (also "0", [] and {})
  is true;
* methods: strings `toUpperCase() toLowerCase() trim() includes(x) split(sep[, limit])`, arrays
  `includes(x) join([sep])`; functions `Math.round/floor/ceil/abs/min/max`, `String(x)`,
  `Number(x)`, `JSON.stringify(x[, null, indent])`, `JSON.parse(text)`.

Limits (`Limits`): a deadline checked at every node visit and every 4096 items of a loop
(`expression timeout or cancelled`, the Go text), a maximum length of produced strings and arrays
(`expression result too large`), a maximum nesting depth (100, so never a RecursionError) and a
maximum expression length (parsing is outside the time budget). Names starting with `__`, and names
starting with `_` used on anything but an object, are refused; on objects `_id`-style keys are
ordinary data.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runeworker.engine.resolver import render
from runeworker.errors import NodeError
from runeworker.nodes.expression import compare
from runeworker.nodes.sandbox_builtins import (
    call_function,
    call_method,
    js_truthy,
    number_result,
    strict_equal,
    to_js_number,
    too_large,
)
from runeworker.nodes.sandbox_syntax import (
    MAX_DEPTH,
    Access,
    Call,
    Chain,
    Cond,
    Expr,
    Index,
    IsRoot,
    Literal,
    Logic,
    Method,
    Prefix,
    Prop,
    Root,
    SandboxError,
    parse,
)

__all__ = ["Expression", "Limits", "SandboxError", "Template", "js_truthy", "to_js_number"]

Lookup = Callable[[str], Any]
TIMEOUT_TEXT = "expression timeout or cancelled"
_TEXT_ORDER: dict[str, Callable[[str, str], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """Budget of one evaluation: seconds, produced string/array length, nesting depth, and
    the length of an expression's text (parsing is linear but outside the time budget)."""

    timeout: float = 0.1
    max_length: int = 1_000_000
    max_depth: int = MAX_DEPTH
    max_source: int = 100_000


class _Run:
    """One evaluation: holds the lookup, the deadline and the size limit."""

    def __init__(self, lookup: Lookup, limits: Limits) -> None:
        self.lookup = lookup
        self.max_length = limits.max_length
        self.deadline = time.monotonic() + limits.timeout

    def tick(self) -> None:
        """Raise once the time budget is spent (called at every node and loop chunk)."""
        if time.monotonic() > self.deadline:
            raise SandboxError(TIMEOUT_TEXT)

    def sized(self, value: Any) -> Any:
        """`value`, unless it is a string or array longer than the limit."""
        if isinstance(value, str | list) and len(value) > self.max_length:
            raise too_large(len(value), self)
        return value

    def eval(self, node: Expr) -> Any:
        self.tick()
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Root):
            return self.lookup(node.name)
        if isinstance(node, Access):
            return self.access(node)
        if isinstance(node, Chain):
            return self.chain(node)
        if isinstance(node, Logic):
            return self.logic(node)
        if isinstance(node, Prefix):
            return self.prefix(node)
        if isinstance(node, Cond):
            return self.eval(node.then if js_truthy(self.eval(node.test)) else node.other)
        if isinstance(node, Call):
            args = [self.eval(a) for a in node.args]
            return self.sized(call_function(node.func, args, self))
        return self.sized([self.eval(item) for item in node.items])  # ArrayLit

    def logic(self, node: Logic) -> Any:
        value = None
        for item in node.items:
            value = self.eval(item)
            if js_truthy(value) == (node.op == "||"):
                return value
        return value

    def prefix(self, node: Prefix) -> Any:
        value = self.eval(node.operand)
        for op in reversed(node.ops):
            if op == "!":
                value = not js_truthy(value)
            elif op == "-":
                value = number_result(-to_js_number(value, "unary '-'"))
            else:
                value = to_js_number(value, "unary '+'")
        return value

    def chain(self, node: Chain) -> Any:
        left = self.eval(node.first)
        for op, operand in node.rest:
            left = self.binary(op, left, self.eval(operand))
        return left

    def binary(self, op: str, left: Any, right: Any) -> Any:
        if op == "+":
            return self.plus(left, right)
        if op in ("-", "*", "/", "%"):
            return _arithmetic(op, left, right)
        if op in ("===", "!=="):
            return strict_equal(left, right) == (op == "===")
        if isinstance(left, str) and isinstance(right, str) and op in _TEXT_ORDER:
            return _TEXT_ORDER[op](left, right)
        try:
            return compare(left, op, right)
        except NodeError as exc:  # the shared evaluator's own error type
            raise SandboxError(f"operator '{op}': {exc}") from exc

    def plus(self, left: Any, right: Any) -> Any:
        if isinstance(left, str) or isinstance(right, str) or _is_container(left, right):
            a, b = render(left), render(right)
            if len(a) + len(b) > self.max_length:
                raise too_large(len(a) + len(b), self)
            return a + b
        return _arithmetic("+", left, right)

    def access(self, node: Access) -> Any:
        value = self.eval(node.base)
        for step in node.steps:
            self.tick()
            if isinstance(step, Prop):
                value = _property(value, step.name)
            elif isinstance(step, Index):
                value = _property(value, self.eval(step.key))
            else:
                value = self.method(value, step)
        return value

    def method(self, target: Any, step: Method) -> Any:
        _check_name(step.name, target)
        if target is None:
            raise SandboxError(f"cannot call '{step.name}()' on null")
        args = [self.eval(a) for a in step.args]
        return self.sized(call_method(target, step.name, args, self))


def _is_container(left: Any, right: Any) -> bool:
    return isinstance(left, list | dict) or isinstance(right, list | dict)


def _arithmetic(op: str, left: Any, right: Any) -> int | float:
    what = f"operator '{op}'"
    a, b = to_js_number(_not_null(left, what), what), to_js_number(_not_null(right, what), what)
    if op == "+":
        return number_result(a + b)
    if op == "-":
        return number_result(a - b)
    if op == "*":
        return number_result(a * b)
    if b == 0:
        raise SandboxError(f"{what}: division by zero")
    if op == "/":
        return number_result(a / b)
    if isinstance(a, int) and isinstance(b, int):
        rest = abs(a) % abs(b)
        return -rest if a < 0 else rest  # JS: the remainder takes the sign of the dividend
    return number_result(math.fmod(a, b))


def _not_null(value: Any, what: str) -> Any:
    if value is None:
        raise SandboxError(f"{what}: expected a number but got null (a missing value?)")
    return value


def _check_name(name: str, target: Any) -> None:
    if name.startswith("__") or (name.startswith("_") and not isinstance(target, dict)):
        raise SandboxError(f"access to '{name}' is not allowed")


def _property(value: Any, key: Any) -> Any:
    """`value[key]` with JavaScript's reading rules, except that missing is null."""
    name = key if isinstance(key, str) else render(key)
    _check_name(name, value)
    if value is None:
        raise SandboxError(f"cannot read property '{name}' of null")
    if isinstance(value, dict):
        return value.get(name)
    if isinstance(value, list | str):
        if name == "length":
            return len(value)
        index = _index(key)
        return value[index] if index is not None and index < len(value) else None
    return None


def _index(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    return key if isinstance(key, int) and key >= 0 else None


class Expression:
    """A parsed expression; `Expression(text)` raises SandboxError on bad syntax."""

    def __init__(self, text: str, is_root: IsRoot | None = None, limits: Limits = Limits()) -> None:
        self.text = text
        self.limits = limits
        if len(text) > limits.max_source:
            raise SandboxError(
                f"expression is too long ({len(text)} > {limits.max_source} characters)"
            )
        try:
            self.tree = parse(text.strip(), is_root, limits.max_depth)
        except RecursionError:  # a last guard: the depth limit keeps well below Python's
            raise SandboxError(f"expression is nested too deeply in '{text}'") from None

    def evaluate(self, lookup: Lookup) -> Any:
        """The value of the expression; `lookup("$name")` returns a context value or raises."""
        return self._within(_Run(lookup, self.limits))

    def _within(self, run: _Run) -> Any:
        try:
            return run.eval(self.tree)
        except RecursionError:
            raise SandboxError("expression is nested too deeply") from None


def _block_end(text: str, start: int) -> int:
    """Index of the `}}` closing a block whose content starts at `start` (quotes respected),
    or -1. An unterminated quote falls back to the first `}}`, where parsing reports it."""
    i, n, quote = start, len(text), ""
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "}" and text.startswith("}}", i):
            return i
        i += 1
    return text.find("}}", start)


@dataclass(frozen=True)
class Template:
    """A text with `{{ expression }}` blocks; literal parts are strings. All blocks of one
    text share one time budget."""

    parts: tuple[str | Expression, ...]
    limits: Limits = Limits()

    @classmethod
    def parse(
        cls, text: str, is_root: IsRoot | None = None, limits: Limits = Limits()
    ) -> Template | None:
        """The template of `text`, or None when it has no complete `{{ }}` block."""
        parts: list[str | Expression] = []
        pos = 0
        while (start := text.find("{{", pos)) >= 0:
            end = _block_end(text, start + 2)
            if end < 0:
                break
            if start > pos:
                parts.append(text[pos:start])
            parts.append(Expression(text[start + 2 : end], is_root, limits))
            pos = end + 2
        if not parts:
            return None
        if pos < len(text):
            parts.append(text[pos:])
        return cls(tuple(parts), limits)

    @property
    def single(self) -> Expression | None:
        """The expression when the text is exactly one block (blank text around it allowed)."""
        blocks = [p for p in self.parts if isinstance(p, Expression)]
        rest = [p for p in self.parts if isinstance(p, str)]
        return blocks[0] if len(blocks) == 1 and all(not s.strip() for s in rest) else None

    def evaluate(self, lookup: Lookup, literal: Callable[[str], Any] = lambda s: s) -> Any:
        """One block alone keeps its value's JSON type; otherwise every block's value is
        rendered into the text. `literal` maps the literal parts (e.g. resolves `$refs` in
        them); block results are never interpreted again."""
        run = _Run(lookup, self.limits)
        single = self.single
        if single is not None:
            return single._within(run)
        out: list[str] = []
        size = 0
        for part in self.parts:
            text = render(literal(part) if isinstance(part, str) else part._within(run))
            size += len(text)
            if size > run.max_length:
                raise too_large(size, run)
            out.append(text)
        return "".join(out)
