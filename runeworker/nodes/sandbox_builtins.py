"""Values, methods and functions of the sandboxed expression language (see `sandbox`).

Every loop over data runs in chunks with a budget check between them, and every produced
string or array is measured before (or right after, when measuring first costs as much as
building) it exists, so huge inputs end in a clear error within the time budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import msgspec

from runeworker.engine.resolver import a_json_kind, render
from runeworker.nodes.expression import parse_number
from runeworker.nodes.sandbox_syntax import SandboxError

CHUNK = 4096
_SAFE_INT = 2**53


class Budget(Protocol):
    """What a builtin needs from the running evaluation."""

    max_length: int

    def tick(self) -> None:
        """Raise SandboxError when the time budget is spent."""


# -- values -----------------------------------------------------------------------------------


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness over JSON values: null, false, 0 and "" are false."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str):
        return bool(value)
    return True


def number_result(value: int | float) -> int | float:
    """A JS number as the closest JSON-friendly Python value: integral floats become ints
    (10 * 25.5 is 255, as JSON.stringify writes it) and ints beyond 2**53 become floats."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SandboxError("arithmetic result is not a finite number")
        return int(value) if value.is_integer() and abs(value) <= _SAFE_INT else value
    if abs(value) > _SAFE_INT:
        try:
            return float(value)
        except OverflowError:
            raise SandboxError("arithmetic result is not a finite number") from None
    return value


kind = a_json_kind  # JSON type name with its article, for error sentences


def to_js_number(value: Any, what: str) -> int | float:
    """JS `Number(x)` without NaN: numbers, booleans, numeric text ("" is 0); else an error."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return number_result(value)  # huge ints become floats, as every JS number is
    if isinstance(value, str):
        text = value.strip()
        number = 0 if text == "" else parse_number(text)
        if number is not None:
            return number_result(number)
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise SandboxError(f"{what}: cannot convert '{shown}' to a number")
    raise SandboxError(f"{what}: expected a number but got {kind(value)}")


def strict_equal(left: Any, right: Any) -> bool:
    """`===`: same JSON type and value; arrays and objects compare by content (JS would
    compare identity, which JSON data does not have)."""
    if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    if isinstance(left, str):
        return bool(left == right)
    # Encoded in C, so deeply nested data cannot exhaust the Python stack.
    return _canonical(left) == _canonical(right)


def _canonical(value: Any) -> bytes:
    try:
        return msgspec.json.encode(value, order="sorted")
    except RecursionError:
        raise SandboxError("value is nested too deeply to compare") from None


def chunks(items: list[Any], budget: Budget) -> Iterator[list[Any]]:
    """`items` in slices of CHUNK, checking the time budget before each."""
    for start in range(0, len(items), CHUNK):
        budget.tick()
        yield items[start : start + CHUNK]


def too_large(size: int, budget: Budget) -> SandboxError:
    return SandboxError(f"expression result too large ({size} > {budget.max_length})")


# -- methods ----------------------------------------------------------------------------------


def _arity(name: str, args: list[Any], low: int, high: int) -> None:
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise SandboxError(f"{name}() takes {want} argument(s), got {len(args)}")


def _split(s: str, args: list[Any], budget: Budget) -> list[str]:
    _arity("split", args, 0, 2)
    if not args or args[0] is None:
        return [s]
    sep = render(args[0])
    count = len(s) if sep == "" else s.count(sep) + 1
    if count > budget.max_length:
        raise too_large(count, budget)
    parts = list(s) if sep == "" else s.split(sep)
    budget.tick()
    if len(args) == 2 and args[1] is not None:
        parts = parts[: max(0, int(to_js_number(args[1], "split() limit")))]
    return parts


def _string_includes(s: str, args: list[Any], budget: Budget) -> bool:
    _arity("includes", args, 1, 1)
    return render(args[0]) in s


def _no_args(fn: Callable[[str], str], name: str) -> Callable[[str, list[Any], Budget], str]:
    def method(s: str, args: list[Any], budget: Budget) -> str:
        _arity(name, args, 0, 0)
        return fn(s)

    return method


def _join(items: list[Any], args: list[Any], budget: Budget) -> str:
    _arity("join", args, 0, 1)
    sep = "," if not args or args[0] is None else render(args[0])
    pieces: list[str] = []
    size = 0
    for chunk in chunks(items, budget):
        texts = ["" if v is None else render(v) for v in chunk]
        size += sum(map(len, texts)) + len(sep) * len(texts)
        if size > budget.max_length + len(sep):
            raise too_large(size - len(sep), budget)
        pieces.append(sep.join(texts))
    return sep.join(pieces)


def _array_includes(items: list[Any], args: list[Any], budget: Budget) -> bool:
    _arity("includes", args, 1, 1)
    return any(any(strict_equal(v, args[0]) for v in chunk) for chunk in chunks(items, budget))


Method = Callable[[Any, list[Any], Budget], Any]
_STRING_METHODS: dict[str, Method] = {
    "toUpperCase": _no_args(str.upper, "toUpperCase"),
    "toLowerCase": _no_args(str.lower, "toLowerCase"),
    "trim": _no_args(str.strip, "trim"),
    "includes": _string_includes,
    "split": _split,
}
_ARRAY_METHODS: dict[str, Method] = {"includes": _array_includes, "join": _join}


def call_method(target: Any, name: str, args: list[Any], budget: Budget) -> Any:
    """`target.name(args)` for the few methods strings and arrays have."""
    table = (
        _STRING_METHODS
        if isinstance(target, str)
        else _ARRAY_METHODS
        if isinstance(target, list)
        else {}
    )
    method = table.get(name)
    if method is None:
        known = ", ".join(sorted(table)) or "none"
        raise SandboxError(f"{kind(target)} has no method '{name}' (available: {known})")
    return method(target, args, budget)


# -- functions --------------------------------------------------------------------------------


def _math(name: str, args: list[Any]) -> int | float:
    numbers = [to_js_number(_present(a, f"Math.{name}()"), f"Math.{name}()") for a in args]
    if name in ("min", "max"):
        if not numbers:
            raise SandboxError(f"Math.{name}() needs at least one argument")
        return number_result(min(numbers) if name == "min" else max(numbers))
    _arity(f"Math.{name}", args, 1, 1)
    x = numbers[0]
    if name == "abs":
        return number_result(abs(x))
    if name == "floor":
        return number_result(math.floor(x))
    if name == "ceil":
        return number_result(math.ceil(x))
    return number_result(math.floor(x + 0.5))  # JS rounds halves up: Math.round(-2.5) == -2


def _present(value: Any, what: str) -> Any:
    if value is None:
        raise SandboxError(f"{what}: expected a number but got null (a missing value?)")
    return value


def _stringify(args: list[Any], budget: Budget) -> str:
    _arity("JSON.stringify", args, 1, 3)
    try:
        data = msgspec.json.encode(args[0])
    except RecursionError:
        raise SandboxError("JSON.stringify: value is nested too deeply") from None
    if len(args) == 3 and args[2] is not None:
        indent = int(to_js_number(args[2], "JSON.stringify() indent"))
        data = msgspec.json.format(data, indent=min(max(indent, 0), 10))
    if len(data) > budget.max_length:
        raise too_large(len(data), budget)
    return data.decode()


def _json_parse(args: list[Any]) -> Any:
    _arity("JSON.parse", args, 1, 1)
    if not isinstance(args[0], str):
        raise SandboxError(f"JSON.parse: expected a string but got {kind(args[0])}")
    try:
        return msgspec.json.decode(args[0])
    except msgspec.DecodeError as exc:
        raise SandboxError(f"JSON.parse: {exc}") from None
    except RecursionError:
        raise SandboxError("JSON.parse: JSON is nested too deeply") from None


def call_function(func: str, args: list[Any], budget: Budget) -> Any:
    """A built-in function call (the parser admits only the known names)."""
    if func.startswith("Math."):
        return _math(func[5:], args)
    if func == "String":
        _arity("String", args, 0, 1)
        return render(args[0]) if args else ""
    if func == "Number":
        _arity("Number", args, 0, 1)
        return 0 if not args or args[0] is None else to_js_number(args[0], "Number()")
    if func == "JSON.stringify":
        return _stringify(args, budget)
    return _json_parse(args)
