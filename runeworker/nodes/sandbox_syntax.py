"""Tokenizer, syntax tree and parser of the sandboxed expression language (see `sandbox`).

The parser is recursive descent for nesting (parentheses, ternaries, brackets, arguments) and
iterative for everything that can be long without being deep: a run of operators of one
precedence level becomes one `Chain`/`Logic` node, a run of prefix operators one `Prefix` node,
and `a.b[0].c()` one `Access` node. The interpreter therefore recurses only as deep as the
real nesting, which `max_depth` bounds, so no input can raise RecursionError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from runeworker.errors import NodeError

MAX_DEPTH = 100
IsRoot = Callable[[str], bool]


class SandboxError(NodeError):
    """An expression that cannot be parsed or evaluated, or that broke a limit."""


# -- syntax tree ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Root:
    """A `$name` variable: a context key."""

    name: str  # with the leading "$"


@dataclass(frozen=True, slots=True)
class ArrayLit:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Prop:
    name: str


@dataclass(frozen=True, slots=True)
class Index:
    key: Expr


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    args: tuple[Expr, ...]


Step: TypeAlias = Prop | Index | Method


@dataclass(frozen=True, slots=True)
class Access:
    base: Expr
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Prefix:
    ops: tuple[str, ...]  # applied right to left
    operand: Expr


@dataclass(frozen=True, slots=True)
class Chain:
    """`first op1 x1 op2 x2 ...`, all operators of one precedence level, left-associative."""

    first: Expr
    rest: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # "&&" or "||"
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Cond:
    test: Expr
    then: Expr
    other: Expr


@dataclass(frozen=True, slots=True)
class Call:
    """A built-in function: `Math.round`, `String`, `Number`, `JSON.stringify`, ..."""

    func: str
    args: tuple[Expr, ...]


Expr: TypeAlias = Literal | Root | ArrayLit | Access | Prefix | Chain | Logic | Cond | Call

# Binary precedence levels, lowest first (JavaScript's order).
LEVELS: dict[str, int] = {
    "||": 1, "&&": 2,
    "==": 3, "!=": 3, "===": 3, "!==": 3,
    "<": 4, "<=": 4, ">": 4, ">=": 4,
    "+": 5, "-": 5,
    "*": 6, "/": 6, "%": 6,
}  # fmt: skip
PREFIX = frozenset({"!", "-", "+"})
NAMESPACES: dict[str, frozenset[str]] = {
    "Math": frozenset({"round", "floor", "ceil", "abs", "min", "max"}),
    "JSON": frozenset({"stringify", "parse"}),
}
FUNCTIONS = frozenset({"String", "Number"})
KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None, "undefined": None}

# -- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num | str | root | ident | op | end
    value: Any
    pos: int


_PUNCT = sorted(
    ["===", "!==", "==", "!=", "<=", ">=", "&&", "||", *"<>+-*/%!?:.,()[]"], key=len, reverse=True
)
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_PART = re.compile(r"[A-Za-z0-9_]+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_SAFE_INT = 2**53


def _number(text: str) -> int | float:
    if text.isdigit():
        value = int(text)
        return value if value <= _SAFE_INT else float(value)
    return float(text)


def _string(src: str, start: int) -> tuple[str, int]:
    """The value of the quoted literal at `start` and the index just past it."""
    quote, i, n = src[start], start + 1, len(src)
    out: list[str] = []
    while i < n:
        c = src[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and i + 1 < n:
            e = src[i + 1]
            if e in "ux":
                width = 4 if e == "u" else 2
                digits = src[i + 2 : i + 2 + width]
                if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise SandboxError(f"bad \\{e} escape at position {i}")
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            out.append(_ESCAPES.get(e, e))
            i += 2
            continue
        out.append(c)
        i += 1
    raise SandboxError(f"unterminated string starting at position {start}")


def _root_name(src: str, start: int, is_root: IsRoot) -> tuple[str, int]:
    """`$name` at `start`. A `-` joins name parts only when the joined name is a known root,
    so `$Node-Name.x` reaches the context key `$Node-Name` while `$count-1` subtracts."""
    m = _NAME_PART.match(src, start + 1)
    if m is None:
        raise SandboxError(f"expected a name after '$' at position {start}")
    end = best = m.end()
    while end < len(src) and src[end] == "-":
        part = _NAME_PART.match(src, end + 1)
        if part is None:
            break
        end = part.end()
        if is_root(src[start + 1 : end]):
            best = end
    return src[start:best], best


def tokenize(src: str, is_root: IsRoot) -> list[Token]:
    """The tokens of `src`, ending with an `end` token."""
    toks: list[Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif c in "'\"":
            text, end = _string(src, i)
            toks.append(Token("str", text, i))
            i = end
        elif c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            m = _NUMBER.match(src, i)
            assert m is not None
            if m.end() < n and (src[m.end()].isalnum() or src[m.end()] in "_$"):
                raise SandboxError(f"bad number at position {i}")
            toks.append(Token("num", _number(m.group()), i))
            i = m.end()
        elif c == "$":
            name, i_end = _root_name(src, i, is_root)
            toks.append(Token("root", name, i))
            i = i_end
        elif (m := _WORD.match(src, i)) is not None:
            toks.append(Token("ident", m.group(), i))
            i = m.end()
        else:
            op = next((p for p in _PUNCT if src.startswith(p, i)), None)
            if op is None:
                hint = " (assignment is not supported)" if c == "=" else ""
                raise SandboxError(f"unexpected character {c!r} at position {i}{hint}")
            toks.append(Token("op", op, i))
            i += len(op)
    toks.append(Token("end", None, n))
    return toks


# -- parser -----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, src: str, is_root: IsRoot, max_depth: int) -> None:
        self.src = src
        self.toks = tokenize(src, is_root)
        self.pos = 0
        self.depth = 0
        self.max_depth = max_depth

    def peek(self) -> Token:
        return self.toks[self.pos]

    def next(self) -> Token:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def at(self, op: str) -> bool:
        tok = self.toks[self.pos]
        return tok.kind == "op" and tok.value == op

    def expect(self, op: str) -> None:
        if not self.at(op):
            raise self.error(f"expected '{op}'")
        self.pos += 1

    def error(self, what: str) -> SandboxError:
        tok = self.peek()
        found = "the end" if tok.kind == "end" else f"{tok.value!r} at position {tok.pos}"
        return SandboxError(f"{what} but found {found}")

    def parse(self) -> Expr:
        if self.peek().kind == "end":
            raise SandboxError("empty expression")
        tree = self.expression()
        if self.peek().kind != "end":
            raise self.error("expected the end of the expression")
        return tree

    def expression(self) -> Expr:
        """A ternary (the lowest precedence); every nested expression enters here."""
        self.depth += 1
        if self.depth > self.max_depth:
            raise SandboxError(f"expression is nested too deeply (limit {self.max_depth})")
        try:
            test = self.binary(1)
            if not self.at("?"):
                return test
            self.pos += 1
            then = self.expression()
            self.expect(":")
            return Cond(test, then, self.expression())
        finally:
            self.depth -= 1

    def binary(self, min_level: int) -> Expr:
        left = self.unary()
        while (level := self._level()) >= min_level:
            rest: list[tuple[str, Expr]] = []
            while self._level() == level:
                op = self.next().value
                rest.append((op, self.binary(level + 1)))
            if level <= 2:
                left = Logic(rest[0][0], (left, *(e for _, e in rest)))
            else:
                left = Chain(left, tuple(rest))
        return left

    def _level(self) -> int:
        tok = self.peek()
        return LEVELS.get(tok.value, 0) if tok.kind == "op" else 0

    def unary(self) -> Expr:
        ops: list[str] = []
        while self.peek().kind == "op" and self.peek().value in PREFIX:
            ops.append(self.next().value)
        operand = self.postfix()
        return Prefix(tuple(ops), operand) if ops else operand

    def postfix(self) -> Expr:
        base = self.primary()
        steps: list[Step] = []
        while True:
            if self.at("."):
                self.pos += 1
                tok = self.next()
                if tok.kind not in ("ident", "root"):
                    self.pos -= 1
                    raise self.error("expected a property name after '.'")
                if self.at("("):
                    steps.append(Method(tok.value, self.arguments()))
                else:
                    steps.append(Prop(tok.value))
            elif self.at("["):
                self.pos += 1
                steps.append(Index(self.expression()))
                self.expect("]")
            else:
                break
        return Access(base, tuple(steps)) if steps else base

    def arguments(self) -> tuple[Expr, ...]:
        self.expect("(")
        args: list[Expr] = []
        while not self.at(")"):
            args.append(self.expression())
            if not self.at(")"):
                self.expect(",")
        self.pos += 1
        return tuple(args)

    def primary(self) -> Expr:
        tok = self.peek()
        if tok.kind in ("num", "str"):
            self.pos += 1
            return Literal(tok.value)
        if tok.kind == "root":
            self.pos += 1
            return Root(tok.value)
        if tok.kind == "ident":
            return self.identifier()
        if self.at("("):
            self.pos += 1
            inner = self.expression()
            self.expect(")")
            return inner
        if self.at("["):
            self.pos += 1
            items: list[Expr] = []
            while not self.at("]"):
                items.append(self.expression())
                if not self.at("]"):
                    self.expect(",")
            self.pos += 1
            return ArrayLit(tuple(items))
        raise self.error("expected a value")

    def identifier(self) -> Expr:
        tok = self.next()
        name = tok.value
        if name in KEYWORDS:
            return Literal(KEYWORDS[name])
        if name in FUNCTIONS:
            return Call(name, self.arguments())
        if name in NAMESPACES:
            self.expect(".")
            member = self.next()
            if member.kind != "ident" or member.value not in NAMESPACES[name]:
                known = ", ".join(sorted(NAMESPACES[name]))
                raise SandboxError(f"{name}.{member.value} is not available (known: {known})")
            return Call(f"{name}.{member.value}", self.arguments())
        raise SandboxError(
            f"unknown name '{name}' at position {tok.pos} (context values are written $name)"
        )


def parse(src: str, is_root: IsRoot | None = None, max_depth: int = MAX_DEPTH) -> Expr:
    """The syntax tree of expression `src`; raises SandboxError with the position on bad syntax.

    `is_root(name)` says whether `$name` is a context key (used only to read `-` in names).
    """
    return _Parser(src, is_root or (lambda name: False), max_depth).parse()
