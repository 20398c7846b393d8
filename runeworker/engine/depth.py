"""How deep JSON from outside may nest: one limit, checked where such JSON enters a step.

JSON arrives nested as deep as its author likes: an HTTP response, a node's parameters, the
input the API puts in the context, a value a node computes. Python walks nested values by
recursion (the resolver, masking, the nodes), and msgspec's encoder and decoder count nesting
against the same interpreter recursion limit, so a value nested some hundreds of levels deep
could raise `RecursionError` wherever it is touched, and did: a traceback in `runeworker run`,
a rejected message in `serve`, where the node's error policy was never applied.

The rule is `MAX_DEPTH` levels of arrays and objects (the value itself is level 1):

* a node's output deeper than that fails the node (`Executor._run`), and so does a parameter
  (the resolver); an HTTP response body is checked before it is decoded (`nodes/http.py`);
* a context value is checked when a step first decodes it (`LazyContext`), so input from the
  API that is too deep fails the node that reads it, under that node's error policy;
* the completion's final context, and masking, replace a deeper value by `PLACEHOLDER`.

The same goes for a value that is JSON but that no double can hold (`1e999`: Go's decoder, and
RTES's serde_json, refuse it; msgspec raises `ValidationError`): a context value is only
checked for its syntax when the message is decoded, so `read` turns that error into an
`UnreadableError` that fails the node reading the value, and the completion's final context
replaces it by `UNREADABLE` where it has to decode it (a value nobody read passes through as the
bytes it arrived as, which `unpublishable` checks). msgspec reads an integer of any length as
a Python int, which no double holds from 309 digits: `decode` refuses it the same way
(`ValidationError`, only looked for when the text holds a run of 309 digits), and a node's
output holding one fails the node (`problem`). `number_problem` finds such a number in JSON
text that nobody decodes whole (a workflow definition, whose types skip `notes` and unknown
keys; a context value published as its bytes): C-speed byte operations only, unless the text
holds a run of 200 digits or what looks like a number with an exponent of three digits. A
few numbers a double holds RTES's serde_json reads as infinite (`1.7976931348623158e308`:
runeworker/engine/rtes_numbers.py): what is published as its bytes stands in for them as well
(`unpublishable`, `number_problem(rtes=True)`), an integer of that kind is read as the double
it is (`decode`, as Go reads every number), and a node's output holding one fails the node.
So does the one number of a double's range that serde_json misreads whatever its size, an
integer part of u64::MAX + 1 to + 4 with a fraction (`18446744073709551616.1`).

Everything a step publishes is then at most a few levels deeper than `MAX_DEPTH` (a status
wraps an output in one object): that also keeps statuses readable by RTES, whose serde_json
refuses JSON nested 128 levels deep (`services/rtes/src/infra/messaging.rs` decodes with
`serde_json::from_slice`, whose `remaining_depth` counts down from 128 and fails at 0: at most
`RTES_DEPTH` levels). What is published as the bytes it arrived as is checked as bytes: the
definition in the mirror (`{}` when deeper than the mirror may hold), context values in the
mirror and the completion, and a large value a node read only in part in the status's
`used_inputs` (`PLACEHOLDER` or `UNREADABLE`). Whole messages still go through msgspec first;
one too deep for it to decode at all is refused as bad input (`messages.decode_execution`).
"""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any, Final

import msgspec

from runeworker.engine.rtes_numbers import MISREAD as _MISREAD
from runeworker.engine.rtes_numbers import serde_refuses
from runeworker.errors import DepthError, UnreadableError

MAX_DEPTH: Final = 100
TOO_DEEP: Final = f"nested deeper than {MAX_DEPTH} levels"
PLACEHOLDER: Final = f"({TOO_DEEP})"
UNREADABLE: Final = "(a JSON value that cannot be read)"
# the deepest nesting RTES's serde_json reads (see the module doc)
RTES_DEPTH: Final = 127

# Everything but brackets, quotes and backslashes: what is left of a JSON text is its
# structure, with the strings reduced to their quotes (and the brackets inside them).
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"\\')
_QUOTED = re.compile(rb'"[^"]*"')
_OPENERS = frozenset(b"[{")
# nesting MAX_DEPTH + 1 levels takes that many opening and closing brackets: a shorter text
# (in characters, or in bytes: a character is at least one) cannot
_SHALLOW_BYTES = 2 * MAX_DEPTH + 1
_encode = msgspec.json.encode
_decode = msgspec.json.decode
# A `\\uXXXX` escape of one half of a UTF-16 surrogate pair without its other half (after an
# even number of backslashes, so that it is an escape and not an escaped backslash before "u").
# msgspec refuses the text; Go's encoding/json reads such an escape as U+FFFD.
LONE_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*"
    rb"(\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def json_exceeds(raw: bytes | msgspec.Raw | str, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text `raw` (valid JSON) nests arrays and objects deeper than `limit`
    (`MAX_DEPTH`). No recursion whatever the depth, and C-speed string operations only, except
    for a text nested between half the limit and the limit (checked bracket by bracket)."""
    if len(raw) <= (_SHALLOW_BYTES if limit == MAX_DEPTH else 2 * limit + 1):
        return False  # too short to hold limit + 1 bracket pairs
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if data.count(b"[") + data.count(b"{") <= limit:  # brackets in strings count too
        return False
    # escaped backslashes and quotes do not delimit strings: taken out of the text itself, before
    # the letters go (`"\\n\\""` read as structure alone would end its string one quote early)
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(None, _NOT_STRUCTURE).replace(b"\\", b"")
    # strings: adjacent quotes first (empty strings, or two strings merged into one: nothing of
    # the structure lies between them), then whatever brackets the remaining strings hold
    structure = structure.replace(b'""', b"")
    if b'"' in structure:
        structure = _QUOTED.sub(b"", structure)
    # each round removes every innermost pair: one level of nesting, or two ("{[]}" loses
    # "[]", then "{}"), so `rounds` levels <= depth <= 2 * `rounds`
    rounds, rest = 0, structure
    while rest:
        rounds += 1
        if rounds > limit:
            return True
        shorter = rest.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(rest):
            return False  # unbalanced: not JSON, which its decoding reports
        rest = shorter
    return 2 * rounds > limit and _levels_exceed(structure, limit)


def _levels_exceed(structure: bytes, limit: int) -> bool:
    """The exact count over brackets alone (strings removed)."""
    level = 0
    for byte in structure:
        if byte in _OPENERS:
            level += 1
            if level > limit:
                return True
        else:
            level -= 1
    return False


def exceeds(value: Any) -> bool:
    """True when the JSON-like value `value` nests deeper than `MAX_DEPTH`."""
    if not isinstance(value, dict | list | tuple):
        return False
    try:
        return json_exceeds(_encode(value))
    except RecursionError:
        return True
    except (TypeError, ValueError, OverflowError):  # not JSON: its own encoding fails later
        return _walk_exceeds(value)


def problem(value: Any) -> str:
    """Why the JSON-like value `value` cannot be published as it is: "is nested deeper than 100
    levels", "holds a number no IEEE double holds (Number out of range - at `$.a`)", "holds a
    number RTES's serde_json refuses (...)" (an integer of 309 digits a double holds, which
    RTES reads as infinite: runeworker/engine/rtes_numbers.py), or "" (one encoding, and a walk
    only when the text holds a run of 309 digits)."""
    if not isinstance(value, dict | list | tuple):
        return _holds(out_of_range(value, rtes=True) if type(value) is int else "")
    try:
        data = _encode(value)
    except RecursionError:
        return f"is {TOO_DEEP}"
    except (TypeError, ValueError, OverflowError):  # not JSON: its own encoding fails later
        return f"is {TOO_DEEP}" if _walk_exceeds(value) else ""
    if json_exceeds(data):
        return f"is {TOO_DEEP}"
    found = ""
    if len(data) >= INT_DIGITS and holds_int_run(data):
        found = out_of_range(value, rtes=True)
    return _holds(found)


def _holds(found: str) -> str:
    """`problem`'s words for what `out_of_range` found."""
    if not found:
        return ""
    if found.startswith(RTES_OUT_OF_RANGE):
        return f"holds a number RTES's serde_json refuses ({found})"
    return f"holds a number no IEEE double holds ({found})"


def _walk_exceeds(value: Any) -> bool:
    """`exceeds` for values msgspec cannot encode, by an explicit walk."""
    level, current = 0, [value]
    while current:
        level += 1
        if level > MAX_DEPTH:
            return True
        current = [
            child
            for item in current
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list | tuple)
        ]
    return False


def check(value: Any, what: str) -> None:
    """Raise `DepthError` ("<what> is nested deeper than 100 levels") when `value` is."""
    if exceeds(value):
        raise DepthError(f"{what} is {TOO_DEEP}")


def decode(raw: bytes | msgspec.Raw | str, what: str) -> Any:
    """Decode the JSON text `raw`; raises `DepthError` when it nests too deeply, and what
    msgspec raises for text that is not JSON (`ValidationError` for a number no double holds,
    an integer of 309 digits included). A lone surrogate escape (`"\\ud800"`, as
    JavaScript's JSON.stringify and some HTTP APIs write half of an emoji) reads as U+FFFD, as
    Go's encoding/json reads it: the text is JSON, only msgspec refuses it."""
    if json_exceeds(raw):
        raise DepthError(f"{what} is {TOO_DEEP}")
    try:
        value = _decode(raw)
    except RecursionError:  # a deep stack already: below the limit, still too deep here
        raise DepthError(f"{what} is {TOO_DEEP}") from None
    except msgspec.DecodeError:
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
        mended = LONE_SURROGATE.sub(_replacement_character, data)
        if mended == data:
            raise
        value = _decode(mended)
    # msgspec reads an integer of any length (see the module doc)
    if len(raw) >= INT_DIGITS and holds_int_run(raw):
        found = out_of_range(value)
        if found:
            raise msgspec.ValidationError(found)
        value = _overshot_as_floats(value)
    return value


def _overshot_as_floats(value: Any) -> Any:
    """`value` with each int that RTES's serde_json would read as infinite (309 digits a double
    holds: runeworker/engine/rtes_numbers.py) made the double it is, as Go's encoding/json
    reads every number: written back as that double's shortest digits, RTES reads it. Changed
    in place; walked without recursion."""
    if type(value) is int:
        return float(value) if _overshoots(value) else value
    stack = [value]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for k, v in list(pairs):
            if type(v) is int and _overshoots(v):
                item[k] = float(v)
            elif isinstance(v, dict | list):
                stack.append(v)
    return value


def published(raw: bytes | msgspec.Raw, what: str) -> Any:
    """The JSON text `raw` (a context value) decoded to be published as a value (masked
    first), or what stands for it where RTES could not read it, as for a value published as
    its bytes (`unpublishable`): `PLACEHOLDER` nested too deeply, `UNREADABLE` holding a
    number no double holds or one RTES's serde_json reads as infinite."""
    stand_in = unpublishable(raw)
    if stand_in is not None:
        return stand_in
    try:
        return read(raw, what)
    except DepthError:
        return PLACEHOLDER
    except UnreadableError:
        return UNREADABLE


def _replacement_character(m: re.Match[bytes]) -> bytes:
    """The escape of U+FFFD in place of a lone surrogate escape (the backslash pairs before it,
    which the match includes, are kept)."""
    return m.group(0)[: m.start(1) - m.start(0)] + rb"\ufffd"


def read(raw: bytes | msgspec.Raw, what: str) -> Any:
    """`decode` for JSON a message carried (a context value or a part of one), whose syntax
    msgspec already checked: `DepthError` when it nests too deeply, `UnreadableError` when
    msgspec cannot make a value of it (a number out of a double's range), naming `what`."""
    try:
        return decode(raw, what)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise UnreadableError(f"{what} cannot be read: {exc}") from None


# -- numbers no double holds ----------------------------------------------------------------------

# Every byte of a JSON text reduced to what matters for the size of a number: digits as "0",
# exponent letters as "e", "+" kept, everything else a space. A number no double holds (above
# 1.7976931348623157e308 in magnitude) has an exponent of three digits or more (`e309`,
# `e+0400`), or a run of 200 digits or more: 199 digits and an exponent of two (at most 99)
# stay below 1e300. JSON writes no leading zeros (`00012` is no number), so a run of digits is
# as long as the number is large.
_SHAPES = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x65 if b in b"eE" else 0x2B if b == 0x2B else 0x20
    for b in range(256)
)
_LONG_RUN = b"0" * 200
# `_unpublishable`'s first look in one translation: `_SHAPES`, and opening brackets as "["
_FIRST_LOOK = bytes(0x5B if b in b"[{" else s for b, s in enumerate(_SHAPES))
_EXPONENTS = (b"e000", b"e+000")
_DIGITS = frozenset(b"0123456789")
_MANTISSA = frozenset(b"0123456789.-")
_BEFORE_VALUE = frozenset(b":,[ \t\r\n")
_AFTER_VALUE = frozenset(b",]} \t\r\n")
_LOOKS = 32
# the shortest integer no double holds has 309 digits (1e308 < 1.8e308 < 1e309)
INT_DIGITS: Final = 309
_INT_RUN = b"0" * INT_DIGITS
# serde_json's one misreading of a number in a double's range that no size shows (an integer
# part of u64::MAX + 1 to + 4 with a fraction, `18446744073709551616.1`), looked for by its
# digits (`rtes_numbers.MISREAD`)
_MISREAD_BYTES = _MISREAD.encode()
# A run of n digits covers two bytes in a row of every (n - 1) // 2-th: without two digits in a
# row among those (a slice, a few bytes to look at), there is no such run.
_INT_STRIDE = (INT_DIGITS - 1) // 2
_LONG_STRIDE = (len(_LONG_RUN) - 1) // 2
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*")
# beyond this, an int is no double: float() of it raises OverflowError
_TOO_BIG = 2**1023
# how `out_of_range` names an int a double holds and RTES's serde_json refuses
RTES_OUT_OF_RANGE: Final = "Number out of range for RTES"


def _overshoots(number: int) -> bool:
    """Whether RTES's serde_json reads the int `number` (a double holds it) as infinite: only
    one past 2^1023 can be (runeworker/engine/rtes_numbers.py)."""
    return abs(number) > _TOO_BIG and serde_refuses(str(number))


def out_of_range(value: Any, where: str = "$", *, rtes: bool = False) -> str:
    """Where the decoded JSON value `value` holds an int no double holds, as msgspec names a
    number out of range (`Number out of range - at `$.a[0]``); "" when it holds none. With
    `rtes`, an int that RTES's serde_json refuses though a double holds it counts too
    (`Number out of range for RTES - at ...`; runeworker/engine/rtes_numbers.py). Walked
    without recursion; a float from JSON is always finite (and msgspec writes an infinite
    Python float as `null`; the shortest digits it writes of a finite one serde_json reads)."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if type(item) is int:
            if abs(item) > _TOO_BIG:
                try:
                    float(item)
                except OverflowError:
                    return f"Number out of range - at `{path}`"
                if rtes and _overshoots(item):
                    return f"{RTES_OUT_OF_RANGE} - at `{path}`"
        elif isinstance(item, dict):
            stack += ((v, f"{path}.{k}") for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack += ((v, f"{path}[{i}]") for i, v in enumerate(item))
    return ""


def holds_int_run(raw: bytes | msgspec.Raw | str) -> bool:
    """Whether the JSON text `raw` holds a run of digits as long as the shortest integer no
    double holds (in a string or not): C-speed, about 0.5 ms a megabyte."""
    if len(raw) < INT_DIGITS:
        return False
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if b"00" not in data[::_INT_STRIDE].translate(_SHAPES):
        return False
    return _INT_RUN in data.translate(_SHAPES)


# `unpublishable`'s verdicts on texts of at least `_REMEMBERED_BYTES`, by (length, hash): a
# value read only in part is published as its bytes in the `used_inputs` of every step that
# reads it (the same `$input` at each step of an execution), and hashing its bytes costs a
# fraction of checking them again (a 64 KB `$input` of records: about 0.1 ms a step, twice the
# cost of the rest of the step; deploy/PERFORMANCE.md). The hash is Python's SipHash of the bytes
# after a random prefix drawn per process: even with PYTHONHASHSEED fixed, no text can be made
# to take another's verdict. Cleared when full.
_SALT = secrets.token_bytes(16)
_REMEMBERED_BYTES = 2048
_REMEMBERED_MAX = 4096
_verdicts: dict[tuple[int, int, int], Any] = {}


def unpublishable(raw: bytes | msgspec.Raw, limit: int = MAX_DEPTH, keep: bool = False) -> Any:
    """`PLACEHOLDER` when the JSON text `raw` nests deeper than `limit` (`MAX_DEPTH`),
    `UNREADABLE` when it holds a number no double holds, else None: what stands for a value
    published as the bytes it arrived as (RTES's serde_json would refuse the message). The
    verdict is kept for a text of `_REMEMBERED_BYTES` or more, or any when `keep` (a text that
    comes again, such as a workflow's definition)."""
    if len(raw) < _REMEMBERED_BYTES and not keep:
        return _unpublishable(raw, limit)
    data = bytes(raw)
    key = (len(data), hash(_SALT + data), limit)
    try:
        return _verdicts[key]
    except KeyError:
        pass
    if len(_verdicts) >= _REMEMBERED_MAX:
        _verdicts.clear()
    verdict = _verdicts[key] = _unpublishable(data, limit)
    return verdict


def context_publishable(raw: bytes) -> bool:
    """True when no value of the context object `raw` (JSON text) is `unpublishable`: one
    check of the whole text, so that a completion checks its values one by one only when one
    of them may be."""
    return _unpublishable(raw, MAX_DEPTH + 1) is None


def _unpublishable(raw: bytes | msgspec.Raw, limit: int = MAX_DEPTH) -> Any:
    """`unpublishable` without the verdicts kept; `limit`: the nesting allowed (a whole
    context object, whose values may nest `MAX_DEPTH` levels, may nest one more)."""
    # the common case in a few C calls: too few brackets to nest too deeply, and none of the
    # shapes `number_problem` looks further at
    data = raw if type(raw) is bytes else bytes(raw)
    if len(data) < 5:  # "1e309" is the shortest number no double holds; too short to nest
        return None
    shapes = data.translate(_FIRST_LOOK, b"+")  # "e+000" reads "e000" here
    if len(data) > 2 * limit + 1 and shapes.count(b"[") > limit and json_exceeds(data, limit):
        return PLACEHOLDER
    if (_EXPONENTS[0] not in shapes and b"00" not in shapes[::_LONG_STRIDE]
            and _MISREAD_BYTES not in data):  # fmt: skip
        return None
    return UNREADABLE if number_problem(data, rtes=True) else None


def number_problem(raw: bytes | msgspec.Raw | str, *, rtes: bool = False) -> str:
    """What msgspec says of the first number no IEEE double holds in the JSON text `raw`
    (`Number out of range - at `$.notes``), or "" when it holds none (or is no JSON: its own
    decoding reports that). Strings holding such a number as text do not count. With `rtes`,
    a number RTES's serde_json refuses though a double holds it counts too
    (runeworker/engine/rtes_numbers.py): what RTES would drop a message for, where Go and
    msgspec read it (a workflow's definition is refused only for what Go refuses)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) < 5:  # "1e309" is the shortest
        return ""
    shapes = data.translate(_SHAPES)
    ints = _INT_RUN in shapes
    misread = rtes and _MISREAD_BYTES in data
    if not (ints or misread or _LONG_RUN in shapes or _large_exponent(data, shapes)):
        return ""
    try:
        value = _decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # a number out of range (ValidationError), or no JSON to msgspec (a lone surrogate)
        return _located(data, rtes)
    if ints and out_of_range(value):
        return _located(data, rtes)
    # with `rtes`, a number msgspec reads may still be one RTES refuses: one of 1e289 or more
    # has an exponent of three digits or a run of 200 digits (1e99 times 210 digits)
    if rtes and (ints or misread or _LONG_RUN in shapes or _large_exponent(data, shapes, None)):
        return _located(data, rtes)
    return ""


def _large_exponent(data: bytes, shapes: bytes, most: int | None = _LOOKS) -> bool:
    """Whether `data` holds what looks like a number with an exponent of three digits or more:
    the exponent's digits end where a JSON value may end, and its mantissa starts where one
    may start (a hex id such as `3e456f` or `"93e123-..."` in a string does not look so).
    Beyond `most` of them that do not, True: the decoder (C, about 3 ms a megabyte) tells
    faster than more looks (None: every one is looked at, about 1 µs each)."""
    looks = 0
    for exponent in _EXPONENTS:
        at = shapes.find(exponent)
        while at >= 0:
            looks += 1
            if most is not None and looks > most:
                return True
            start = at
            while start and data[start - 1] in _MANTISSA:
                start -= 1
            end = at + len(exponent)
            while end < len(data) and data[end] in _DIGITS:
                end += 1
            if (start < at and (not start or data[start - 1] in _BEFORE_VALUE)
                    and (end == len(data) or data[end] in _AFTER_VALUE)):  # fmt: skip
                return True
            at = shapes.find(exponent, at + 1)
    return False


class _Out:
    """A number no double holds, as `_located` reads it."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


def _refused(token: str, rtes: bool) -> bool:
    """Whether the number `token` is out of range: for a double, or with `rtes` for RTES."""
    if len(token) < 200 and "e" not in token and "E" not in token:
        # a double holds it, and RTES reads it (200 digits stay below 1e289) unless misread
        return rtes and _MISREAD in token and serde_refuses(token)
    return math.isinf(float(token)) or (rtes and serde_refuses(token))


def _number(token: str) -> Any:
    return _Out(token) if _refused(token, False) else 0  # its value does not matter


def _rtes_number(token: str) -> Any:
    return _Out(token) if _refused(token, True) else 0


def _located(data: bytes, rtes: bool = False) -> str:
    """`number_problem` once a number was found: which, and where (msgspec names neither the
    keys of an untyped object nor the number). Python's json, whose hooks see each number's
    text; by scanning when it cannot read the text."""
    hook = _rtes_number if rtes else _number
    try:
        value = json.loads(data, parse_int=hook, parse_float=hook)
    except (ValueError, RecursionError):
        return _scanned(data, rtes)
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, _Out):
            return f"Number out of range - at `{path}`: {_shown(item.token)}"
        if isinstance(item, dict):
            stack += ((v, f"{path}.{k}") for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack += ((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item))))
    return ""


def _shown(token: str) -> str:
    """A number as an error quotes it: a long one cut, with its length."""
    return token if len(token) <= 24 else f"{token[:12]}...{token[-4:]} ({len(token)} characters)"


def _scanned(data: bytes, rtes: bool = False) -> str:
    """`number_problem` by scanning the text with its strings blanked out: no decoding."""
    bare = _STRING.sub(b'""', data) if b'"' in data else data
    for m in _NUMBER.finditer(bare):
        token = m.group().decode("ascii")
        try:
            refused = _refused(token, rtes)
        except ValueError:  # no number after all (`1e`, `1.2.3`)
            continue
        if refused:
            return f"Number out of range: {_shown(token)}"
    return ""
