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
bytes it arrived as).

Everything a step publishes is then at most a few levels deeper than `MAX_DEPTH` (a status
wraps an output in one object): that also keeps statuses readable by RTES, whose serde_json
refuses JSON nested deeper than 128 levels (`services/rtes/src/infra/messaging.rs` decodes
with `serde_json::from_slice`). Whole messages still go through msgspec first; one too deep
for it to decode at all is refused as bad input (`messages.decode_execution`).
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from runeworker.errors import DepthError, UnreadableError

MAX_DEPTH: Final = 100
TOO_DEEP: Final = f"nested deeper than {MAX_DEPTH} levels"
PLACEHOLDER: Final = f"({TOO_DEEP})"
UNREADABLE: Final = "(a JSON value that cannot be read)"

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


def json_exceeds(raw: bytes | msgspec.Raw | str) -> bool:
    """True when the JSON text `raw` (valid JSON) nests arrays and objects deeper than
    `MAX_DEPTH`. No recursion whatever the depth, and C-speed string operations only, except
    for a text nested between half the limit and the limit (checked bracket by bracket)."""
    if len(raw) <= _SHALLOW_BYTES:  # too short to hold MAX_DEPTH + 1 bracket pairs
        return False
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:  # brackets in strings count too
        return False
    structure = data.translate(None, _NOT_STRUCTURE)
    if b"\\" in structure:  # escaped quotes and backslashes do not delimit strings
        structure = structure.replace(b"\\\\", b"").replace(b'\\"', b"").replace(b"\\", b"")
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
        if rounds > MAX_DEPTH:
            return True
        shorter = rest.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(rest):
            return False  # unbalanced: not JSON, which its decoding reports
        rest = shorter
    return 2 * rounds > MAX_DEPTH and _levels_exceed(structure)


def _levels_exceed(structure: bytes) -> bool:
    """The exact count over brackets alone (strings removed)."""
    level = 0
    for byte in structure:
        if byte in _OPENERS:
            level += 1
            if level > MAX_DEPTH:
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
    msgspec raises for text that is not JSON. A lone surrogate escape (`"\\ud800"`, as
    JavaScript's JSON.stringify and some HTTP APIs write half of an emoji) reads as U+FFFD, as
    Go's encoding/json reads it: the text is JSON, only msgspec refuses it."""
    if json_exceeds(raw):
        raise DepthError(f"{what} is {TOO_DEEP}")
    try:
        return _decode(raw)
    except RecursionError:  # a deep stack already: below the limit, still too deep here
        raise DepthError(f"{what} is {TOO_DEEP}") from None
    except msgspec.DecodeError:
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
        mended = LONE_SURROGATE.sub(_replacement_character, data)
        if mended == data:
            raise
        return _decode(mended)


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
