"""Condition expressions shared by the conditional, switch and list nodes (upstream
services/rune-worker/pkg/nodes/custom/conditional/, custom/switch/).

The grammar is the Go worker's, with its defects fixed (upstream's evaluator expanded data as
templates and split on operators inside quotes):

* `or` / `||` (lowest), `and` / `&&`, then `not` / `!` (highest); parentheses group.
* A comparison is `left OP right` with OP the first of `>=`, `<=`, `==`, `!=`, `>`, `<`,
  `contains` present in it (as Go picks it), but operators inside quotes, `{{ }}` or a word are
  text; an expression without operator is the truthiness of its single operand.
* Operands: `'quoted'` / `"quoted"` literal, `{{ X }}` (the braces are stripped), `$reference`
  (typed value, so data is never re-parsed as expression text), number, `true`/`false`,
  `null`/`nil`, else the text itself (interpolated when an `interpolate` hook is given).
* Truthiness: null, false, "", "false", "0" and the number zero (int or float) are false.

Parsing is pure and cached (a long expression is parsed under the node's time limit, when given
one); evaluation reads data only through the `lookup` and `interpolate` callables (a node timing
its evaluation gives them wrapped by `TimeLimit.timed`).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

from runeworker.engine.registry import TimeLimit
from runeworker.engine.resolver import render
from runeworker.errors import NodeError, ResolveError

Lookup = Callable[[str], Any]
Interpolate = Callable[[str], Any]


class ExpressionError(NodeError):
    """An expression that cannot be parsed or evaluated (a node failure)."""


# Aliases accepted by the structured form and the switch (upstream's switch evaluator), to canonical
# symbols.
_OPERATORS: dict[str, str] = {
    "==": "==", "eq": "==", "is equal to": "==",
    "!=": "!=", "ne": "!=", "is not equal to": "!=",
    ">": ">", "gt": ">", "is greater than": ">",
    "<": "<", "lt": "<", "is less than": "<",
    ">=": ">=", "gte": ">=", "is greater than or equal to": ">=",
    "<=": "<=", "lte": "<=", "is less than or equal to": "<=",
    "contains": "contains",
    "not_contains": "not contains", "not contains": "not contains",
}  # fmt: skip
_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le,
}  # fmt: skip
# Go's search order for the operator of a comparison.
_PRIORITY = (">=", "<=", "==", "!=", ">", "<", "contains")
# Longest first, so ">=" is never read as ">".
_SYMBOLS = (">=", "<=", "==", "!=", "&&", "||", ">", "<")
_WORD_KINDS = {"and": "and", "or": "or", "&&": "and", "||": "or", "contains": "op"}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_SHORT_INTEGER = 300  # characters: an integer literal this long is well inside a double's range


# -- values -----------------------------------------------------------------------------------


def canonical_operator(op: Any) -> str:
    """The canonical symbol of a comparison operator or alias; unknown ones raise."""
    canon = _OPERATORS.get(op.strip().lower()) if isinstance(op, str) else None
    if canon is None:
        raise ExpressionError(f"unsupported operator '{render(op)}'")
    return canon


def parse_number(text: str) -> int | float | None:
    """The number a decimal literal denotes (int when integral in form), else None. A literal
    beyond a double's range is no number, as Go's strconv.ParseFloat refuses it (ErrRange)."""
    if not _NUMBER.fullmatch(text):
        return None
    if _INTEGER.fullmatch(text):
        if len(text) > _SHORT_INTEGER:
            # int() refuses text of more than 4300 digits (sys.get_int_max_str_digits)
            if not math.isfinite(float(text)):
                return None
            digits = text.lstrip("+-").lstrip("0") or "0"
            text = "-" + digits if text.startswith("-") else digits
        return int(text)
    value = float(text)
    return value if math.isfinite(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_number(value: Any) -> int | float:
    """A number, or the number a numeric string (or its rendering) denotes; else raises."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = render(value)
    number = parse_number(text)
    if number is None:
        raise ExpressionError(f"cannot convert '{text}' to number")
    return number


def truthy(value: Any) -> bool:
    """Truthiness of a lone operand: null, false, "", "false", "0" and 0 / 0.0 are false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value not in ("", "false", "0")
    if _is_number(value):
        return bool(value != 0)
    return True


def _equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    lt, rt = render(left), render(right)
    ln, rn = parse_number(lt), parse_number(rt)
    if ln is not None and rn is not None:
        return ln == rn
    return lt == rt


def _contains(left: Any, right: Any) -> bool:
    if isinstance(left, list):
        return any(_equal(item, right) for item in left)
    return render(right) in render(left)


def compare(left: Any, op: str, right: Any) -> bool:
    """Apply a comparison operator (any accepted alias) to two resolved values."""
    canon = canonical_operator(op)
    if canon == "==":
        return _equal(left, right)
    if canon == "!=":
        return not _equal(left, right)
    if canon == "contains":
        return _contains(left, right)
    if canon == "not contains":
        return not _contains(left, right)
    return _ORDERING[canon](to_number(left), to_number(right))


def resolve_operand(text: str, lookup: Lookup, interpolate: Interpolate | None = None) -> Any:
    """The value an operand written as `text` denotes (upstream's switch evaluator, in its order of
    rules)."""
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    if s.startswith("{{") and s.endswith("}}"):
        s = s[2:-2].strip()
        if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
            return s[1:-1]
    if s.startswith("$"):
        try:
            return lookup(s)
        except ResolveError as exc:
            raise ExpressionError(str(exc)) from exc  # its sentence names the reference
    number = parse_number(s)
    if number is not None:
        return number
    if s in ("true", "false"):
        return s == "true"
    if s in ("null", "nil"):
        return None
    if interpolate is not None and "$" in s:
        try:
            return interpolate(s)
        except ResolveError as exc:
            raise ExpressionError(f"operand '{s}': {exc}") from exc
    return s


# -- syntax tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    """A token, or a whole operand (kind "operand", text = its source slice)."""

    kind: str  # word | quoted | template | op | and | or | bang | ( | ) | operand
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Compare:
    left: _Tok
    op: str
    right: _Tok
    source: str


@dataclass(frozen=True)
class _Truth:
    operand: _Tok


@dataclass(frozen=True)
class _Not:
    inner: _Expr


@dataclass(frozen=True)
class _Junction:
    any: bool  # True = or, False = and
    items: tuple[_Expr, ...]


_Expr: TypeAlias = _Compare | _Truth | _Not | _Junction


def _closing(src: str, opening: int, width: int, close: str, what: str) -> int:
    """Index just past `close`, searched after the opening token at `opening`."""
    end = src.find(close, opening + width)
    if end < 0:
        raise ExpressionError(f"expression has an unclosed {what} at position {opening}")
    return end + len(close)


def _word_end(src: str, i: int) -> int:
    """End of an unquoted word: whitespace, a parenthesis or an operator symbol stops it."""
    n = len(src)
    while i < n and not src[i].isspace() and src[i] not in "()":
        if any(src.startswith(sym, i) for sym in _SYMBOLS):
            break
        i += 1
    return i


def _stopped(src: str, i: int, limit: TimeLimit) -> ExpressionError:
    where = f"parsing the expression ({len(src)} characters) at position {i}"
    return ExpressionError(f"{where}: {limit.message()}")


def _tokenize(src: str, limit: TimeLimit | None = None) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(src)
    while i < n:
        if limit is not None and limit.passed():
            raise _stopped(src, i, limit)
        c = src[i]
        if c.isspace():
            i += 1
            continue
        if c in "()":
            end, kind = i + 1, c
        elif src.startswith("{{", i):
            end, kind = _closing(src, i, 2, "}}", "'{{'"), "template"
        elif c in "'\"":
            end, kind = _closing(src, i, 1, c, "quote"), "quoted"
        elif sym := next((s for s in _SYMBOLS if src.startswith(s, i)), None):
            end, kind = i + len(sym), _WORD_KINDS.get(sym, "op")
        elif c == "!":
            end, kind = i + 1, "bang"
        else:
            end = max(_word_end(src, i), i + 1)
            kind = _WORD_KINDS.get(src[i:end], "word")
        toks.append(_Tok(kind, src[i:end], i, end))
        i = end
    return toks


class _Parser:
    """Recursive descent over the tokens: or < and < not < comparison."""

    def __init__(self, src: str, limit: TimeLimit | None = None) -> None:
        self.src = src
        self.limit = limit
        self.toks = _tokenize(src, limit)
        self.pos = 0
        self.operands: list[_Tok] = []  # every operand, in source order, for `display`

    def _peek(self, offset: int = 0) -> _Tok | None:
        i = self.pos + offset
        return self.toks[i] if i < len(self.toks) else None

    def _where(self) -> str:
        tok = self._peek()
        return f"'{tok.text}' at position {tok.start}" if tok else "the end"

    def parse(self) -> _Expr:
        expr = self._junction(True)
        if self._peek() is not None:
            raise ExpressionError(f"unexpected {self._where()} in expression '{self.src}'")
        return expr

    def _junction(self, any_: bool) -> _Expr:
        kind = "or" if any_ else "and"
        items = [self._junction(False) if any_ else self._unary()]
        while (tok := self._peek()) is not None and tok.kind == kind:
            self.pos += 1
            items.append(self._junction(False) if any_ else self._unary())
        return items[0] if len(items) == 1 else _Junction(any_, tuple(items))

    def _unary(self) -> _Expr:
        tok, nxt = self._peek(), self._peek(1)
        # "not" is a keyword only in front of an operand, so "$x == not found" stays text.
        negation = tok is not None and (
            tok.kind == "bang" or (tok.kind, tok.text) == ("word", "not")
        )
        if negation and nxt is not None and nxt.kind not in ("and", "or", ")", "op"):
            self.pos += 1
            return _Not(self._unary())
        if tok is not None and tok.kind == "(":
            self.pos += 1
            inner = self._junction(True)
            close = self._peek()
            if close is None or close.kind != ")":
                raise ExpressionError(f"expected ')' but found {self._where()} in '{self.src}'")
            self.pos += 1
            return inner
        return self._comparison()

    def _comparison(self) -> _Expr:
        start = self.pos
        if self.limit is not None and self.limit.passed():
            tok = self._peek()
            raise _stopped(self.src, tok.start if tok else len(self.src), self.limit)
        while (tok := self._peek()) is not None and tok.kind not in ("and", "or", ")"):
            if tok.kind == "(":
                raise ExpressionError(
                    f"unexpected '(' at position {tok.start} in '{self.src}' "
                    "(quote text that contains parentheses)"
                )
            self.pos += 1
        span = self.toks[start : self.pos]
        if not span:
            raise ExpressionError(f"expected an operand but found {self._where()} in '{self.src}'")
        for sym in _PRIORITY:
            k = next((i for i, t in enumerate(span) if t.kind == "op" and t.text == sym), None)
            if k is not None:
                if k == 0 or k == len(span) - 1:
                    side = "left" if k == 0 else "right"
                    raise ExpressionError(f"missing {side} operand of '{sym}' in '{self.src}'")
                source = self.src[span[0].start : span[-1].end]
                return _Compare(self._operand(span[:k]), sym, self._operand(span[k + 1 :]), source)
        return _Truth(self._operand(span))

    def _operand(self, span: list[_Tok]) -> _Tok:
        start, end = span[0].start, span[-1].end
        operand = _Tok("operand", self.src[start:end], start, end)
        self.operands.append(operand)
        return operand


def _parse(text: str, limit: TimeLimit | None = None) -> tuple[_Expr, tuple[_Tok, ...]]:
    parser = _Parser(text, limit)
    try:
        tree = parser.parse()
    except RecursionError:
        raise ExpressionError("expression is nested too deeply") from None
    return tree, tuple(parser.operands)


# Parsed expressions kept: at most 1024, each of at most KEPT_EXPRESSION_CHARS (a parse costs
# about seven times its text: some 4 MB together at most); a longer one is parsed each time. By
# count alone, the cache kept expressions of any length (1024 of 16 KB: about 100 MB). A longer
# one looks at the node's time limit as it is parsed (3 s a megabyte: 16 MB took longer than
# worker.node_timeout's default).
KEPT_EXPRESSION_CHARS = 512
_parse_kept = lru_cache(maxsize=1024)(_parse)


# -- evaluation -------------------------------------------------------------------------------


class Expression:
    """A parsed expression string; `Expression(text)` raises ExpressionError on bad syntax, and
    when the parse of a long one passes `limit`."""

    def __init__(self, text: str, limit: TimeLimit | None = None) -> None:
        if not text.strip():
            raise ExpressionError("empty expression")
        self.text = text
        if len(text) <= KEPT_EXPRESSION_CHARS:
            self._tree, self._operands = _parse_kept(text)
        else:
            self._tree, self._operands = _parse(text, limit)
        self.operands = len(self._operands)  # how many operands it has

    def evaluate(self, lookup: Lookup, interpolate: Interpolate | None = None) -> bool:
        """The truth value; `and`/`or` short-circuit, so unneeded operands are not resolved."""
        return self._eval(self._tree, lookup, interpolate)

    def display(self, lookup: Lookup, interpolate: Interpolate | None = None) -> str:
        """The text with every resolvable reference operand replaced by its rendered value."""
        out: list[str] = []
        pos = 0
        for operand in self._operands:
            s = operand.text
            if not (s.startswith(("$", "{{")) or (interpolate is not None and "$" in s)):
                continue
            try:
                value = render(resolve_operand(s, lookup, interpolate))
            except NodeError:
                continue  # left as written: display is best effort
            out += (self.text[pos : operand.start], value)
            pos = operand.end
        out.append(self.text[pos:])
        return "".join(out)

    def _eval(self, expr: _Expr, lookup: Lookup, interpolate: Interpolate | None) -> bool:
        if isinstance(expr, _Junction):
            results = (self._eval(item, lookup, interpolate) for item in expr.items)
            return any(results) if expr.any else all(results)
        if isinstance(expr, _Not):
            return not self._eval(expr.inner, lookup, interpolate)
        if isinstance(expr, _Truth):
            return truthy(resolve_operand(expr.operand.text, lookup, interpolate))
        left = resolve_operand(expr.left.text, lookup, interpolate)
        right = resolve_operand(expr.right.text, lookup, interpolate)
        try:
            return compare(left, expr.op, right)
        except ExpressionError as exc:
            raise ExpressionError(f"{exc}, in the comparison {expr.source}") from exc


def evaluate(text: str, lookup: Lookup, interpolate: Interpolate | None = None) -> bool:
    """Parse (cached) and evaluate an expression string in one call."""
    return Expression(text).evaluate(lookup, interpolate)
