"""Workflow definitions seen before, skipped when an execution message is decoded.

Every message of an execution carries the whole workflow definition, the same bytes at every
step, and `decode_execution` keeps it as `msgspec.Raw`. msgspec still has to scan it to find
where it ends: about 0.5 µs per KB, so a 500-node workflow (79 KB of definition) spent more
on scanning it than on the rest of its step, and the cost per node grew with the size of the
workflow (deploy/PERFORMANCE.md, "Issue 16: the cost per node of large workflows").

`KnownDefinitions` keeps the last few large definitions it was shown. Decoding a message, it
finds the `"workflow_definition"` key, and when one of the kept definitions follows it byte for
byte (a memcmp), it decodes the message with that value replaced by a marker, a JSON string
holding a random number drawn per process, and puts the kept definition in its place.

Why the result is the message's own: the marker is a complete JSON value put in place of
another complete JSON value (the kept bytes parsed as one when they were first seen), so the
message with the marker parses exactly when the message itself does, with the same structure.
If the marker comes out as the top-level `workflow_definition`, the bytes replaced were that
field's value; no message can hold the marker by itself without knowing the process's random
number. Anything else (the key first found inside a context value, a duplicate key, a message
that does not decode) falls back to decoding the message as it came, which also gives the error
its exact position.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol, TypeVar

import msgspec

_KEY = b'"workflow_definition"'
_BLANK = b" \t\r\n"
# definitions shorter than this are scanned faster than they are looked up
MIN_BYTES = 2048
KEPT = 8
# the kept copies together stay under this (a message may be 16 MB, `broker.max_message_bytes`)
MAX_TOTAL_BYTES = 8 << 20


class _HasDefinition(Protocol):
    workflow_definition: msgspec.Raw


M = TypeVar("M", bound=_HasDefinition)


class KnownDefinitions:
    """The last `KEPT` definitions of at least `MIN_BYTES` (own copies, not views of the
    messages they came in), most recently used first, at most `MAX_TOTAL_BYTES` of them."""

    def __init__(
        self, kept: int = KEPT, min_bytes: int = MIN_BYTES, max_total: int = MAX_TOTAL_BYTES
    ) -> None:
        self.kept = kept
        self.min_bytes = min_bytes
        self.max_total = max_total
        self._marker = f'"runeworker-definition-{secrets.token_hex(16)}"'.encode()
        # replaced whole, never changed in place: node threads may decode at the same time
        self._defs: tuple[msgspec.Raw, ...] = ()

    def decode(self, data: bytes, decode: Callable[[bytes], M]) -> M | None:
        """`decode(data)` with a kept definition skipped, or None when none of them is the
        message's (the caller then decodes it as it came, and shows it with `remember`)."""
        if not self._defs or len(data) < self.min_bytes:
            return None
        at = value_at(data, _KEY)
        if at < 0:
            return None
        for raw in self._defs:
            if data.startswith(raw, at):  # a Raw is a buffer: compared in place
                break
        else:
            return None
        view = memoryview(data)
        spliced = b"".join((view[:at], self._marker, view[at + len(raw) :]))
        try:
            msg = decode(spliced)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
            return None
        if bytes(msg.workflow_definition) != self._marker:
            return None
        msg.workflow_definition = raw
        if raw is not self._defs[0]:
            self._defs = (raw, *(d for d in self._defs if d is not raw))
        return msg

    def remember(self, msg: _HasDefinition) -> None:
        """Keep the definition of a message decoded as it came, when it is large; the message
        then holds the kept copy."""
        definition = msg.workflow_definition
        size = len(definition)
        if not self.min_bytes <= size <= self.max_total:
            return
        own = msgspec.Raw(bytes(definition))
        msg.workflow_definition = own
        kept, total = [own], size
        for raw in self._defs[: self.kept - 1]:
            total += len(raw)
            if total > self.max_total:
                break
            kept.append(raw)
        self._defs = tuple(kept)


def value_at(data: bytes, key: bytes, found: int | None = None) -> int:
    """Where the value of the key `key` (quoted) starts: of the first one in `data`, or of the
    one found at `found`; -1 when there is none (or it is not followed by a colon and a
    value)."""
    at = data.find(key) if found is None else found
    if at < 0:
        return -1
    at += len(key)
    end = len(data)
    while at < end and data[at] in _BLANK:
        at += 1
    if at >= end or data[at] != 0x3A:  # ':'
        return -1
    at += 1
    while at < end and data[at] in _BLANK:
        at += 1
    return at if at < end else -1
