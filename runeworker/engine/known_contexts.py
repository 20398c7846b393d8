"""Accumulated contexts seen before, reused when a later message of the same execution is decoded.

A step's next message carries the context the step arrived with plus the node's output. The
encoder writes the context from a dict that keeps its entries' order
(`runeworker.engine.context.LazyContext`), so the next message's context is this one's bytes
without the closing brace, then `,"$<node>":<output>` and the brace. Decoding reads every entry
again: about 0.33 µs per entry on the project's VM, 133 µs for the 401 entries of a 500-node
workflow's late steps, so the cost per node grew with the size of the workflow
(deploy/PERFORMANCE.md, "Issue 16: contexts seen before").

`KnownContexts` keeps, per execution, the last large context it decoded: its bytes without the
closing brace (the prefix) and its entries (a plain dict of `msgspec.Raw`). Decoding a message
of that execution, it finds the `"accumulated_context"` key that the kept prefix follows byte
for byte (a memcmp per key found: searched from a little before where it was in the last
message, then before that; a key of that name inside the definition or inside a context value
is passed over, as no such key can be followed by the whole context), and decodes the
message with the prefix replaced by `{` and one marker member (a key holding a random number
drawn per process, value `null`): the decoder then reads only the entries after the kept ones.
The context is the kept entries updated with those, in their order.

Why the result is the message's own: the prefix is `{` followed by whole members, replaced by
`{` followed by one whole member whose value (`null`) no byte can extend. A parser reads both
texts through the same states: where the prefix's last value ends the two go on with the same
bytes, except when that value is a number the message's next bytes extend (`1` then `.5`):
then the marker's `null` is followed by `.5`, which does not parse, and the message is decoded
as it came. So the spliced message parses exactly when the message parses into the same
structure. If the marker comes out as the first key of the top-level `accumulated_context`,
the replaced bytes were that value's first members; no message can hold
the marker by itself without knowing the process's random number. Inserting the kept members,
then the others one by one, gives what msgspec's decoding of all of them gives (a repeated key
keeps its first place and takes its last value). Each kept pair is consistent by construction:
the prefix is the encoding of the kept entries (checked against the message's bytes when it
is kept), or a kept pair's prefix followed by bytes just decoded into the entries added.

Anything else (no kept context for the execution, a prefix that differs, a message that does
not decode) falls back to decoding the message as it came. The kept entries of a context decoded
as it came still refer to the message's bytes (copying 400 `Raw`s costs more than the decoding
saved), the entries added later are copied out of theirs; the bytes each kept context holds
alive are counted against `MAX_TOTAL_BYTES`, the least recently used ones go first. When more
executions are in flight than fit (each comes back only after all the others, and finds its
context gone), keeping them is work in vain: after `IN_VAIN` kept in a row without a reuse,
only one in `SPARSE` is kept, in a budget `SPARSE` times smaller (the memory went for nothing
too), until one is reused again. The smaller budget finds a reuse as far back as the whole one
would: it holds one context in `SPARSE` of what the whole budget held, each standing for the
`SPARSE` contexts seen since the one before, so the oldest was kept as many contexts ago as the
whole budget's oldest was (at least one is kept, whatever its size).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, Protocol, TypeVar

import msgspec

from runeworker.engine.known_definitions import value_at

_KEY = b'"accumulated_context"'
_EXECUTION_KEY = b'"execution_id"'
_NULL = b"null"
_encode = msgspec.json.encode
# contexts shorter than this are decoded faster than they are looked up and kept (the break-even
# is about 8 KB: deploy/PERFORMANCE.md, "Issue 16: contexts seen before")
MIN_BYTES = 8192
# how far before where the key was in the execution's last message it is looked for first (the
# node ids before it may differ in length), before the bytes before that are searched
_NEAR = 256
# the bytes the kept contexts hold alive together (their messages' and their own)
MAX_TOTAL_BYTES = 16 << 20
# what one kept entry costs besides its bytes: its Raw, its key and its dict slot, rounded up
ENTRY_BYTES = 128
# after this many large contexts kept in a row without one of them being reused (more
# executions in flight than fit, each seen again only after the others), only one in SPARSE
# is kept, in a budget SPARSE times smaller: keeping one costs an encoding and a memcmp of
# it, and what the kept ones held before the switch stays in a child's RSS (64 KB contexts:
# 71 MB with 64 here and no smaller budget, 53 MB now; deploy/PERFORMANCE.md)
IN_VAIN = 16
SPARSE = 16


class _HasContext(Protocol):
    execution_id: str
    workflow_definition: msgspec.Raw
    accumulated_context: dict[str, msgspec.Raw] | None


M = TypeVar("M", bound=_HasContext)


class _Kept(NamedTuple):
    prefix: bytes  # the context's bytes without the closing brace
    entries: dict[str, msgspec.Raw]  # what the prefix decodes to; never changed
    cost: int  # the bytes it holds alive
    key_at: int  # where the `"accumulated_context"` key was in the message


class KnownContexts:
    """The last large context decoded for each of the most recently seen executions."""

    def __init__(self, min_bytes: int = MIN_BYTES, max_total: int = MAX_TOTAL_BYTES) -> None:
        self.min_bytes = min_bytes
        self.max_total = max_total
        self._marker = f"runeworker-context-{secrets.token_hex(16)}"
        self._head = b'{"' + self._marker.encode() + b'":' + _NULL
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._total = 0
        self._in_vain = 0  # contexts kept since one was last reused
        self._lock = threading.Lock()  # node threads may decode at the same time

    def decode(self, data: bytes, decode: Callable[[bytes], M]) -> M | None:
        """`decode(data)` with the execution's kept context skipped, or None when it has none
        or it does not apply (the caller then decodes the message as it came and shows it
        with `remember`). The context's values are valid UTF-8: the kept ones were checked
        before they were kept, the ones added are checked here (one that is not gives None,
        and the caller's own check names it)."""
        if not self._kept or len(data) < self.min_bytes:
            return None
        execution = _execution_id(data)
        with self._lock:
            kept = self._kept.get(execution) if execution is not None else None
        if kept is None:
            return None
        hit = _value_starting(data, kept.prefix, max(0, kept.key_at - _NEAR))
        if hit is None:
            return None
        found, at = hit
        end = at + len(kept.prefix)
        view = memoryview(data)
        try:
            msg = decode(b"".join((view[:at], self._head, view[end:])))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
            return None
        ctx = msg.accumulated_context
        if type(ctx) is not dict:
            return None
        items = iter(ctx.items())
        first = next(items, None)
        if first is None or first[0] != self._marker:
            return None
        self._in_vain = 0
        # out of the spliced copy of the message, which they would hold alive
        added = {key: value.copy() for key, value in items}
        for value in added.values():
            try:
                str(value, "utf-8")
            except UnicodeDecodeError:
                return None
        entries = kept.entries.copy()
        entries.update(added)
        msg.accumulated_context = entries
        rest = b"," + _encode(added)[1:] if added else b"}"
        if data.startswith(rest, end):  # written as this encoder writes: keep it
            # the longer prefix, the copied entries
            cost = kept.cost + 2 * (len(rest) - 1) + ENTRY_BYTES * len(added)
            self._keep(msg.execution_id, kept.prefix + rest[:-1], entries, cost, found)
        return msg

    def remember(self, data: bytes, msg: _HasContext) -> None:
        """Keep the context of a message decoded as it came, when it is large and its bytes in
        the message are the ones this encoder writes for it."""
        ctx = msg.accumulated_context
        if type(ctx) is not dict or not ctx:
            return
        if len(data) - len(msg.workflow_definition) < self.min_bytes:  # cheap bound first
            return
        self._in_vain += 1
        if self._in_vain > IN_VAIN and self._in_vain % SPARSE:
            return
        whole = _encode(ctx)
        if len(whole) < self.min_bytes:
            return
        # the encoder writes the context after the definition: looked for past it first
        hit = _value_starting(data, whole, len(msg.workflow_definition))
        if hit is None:
            return
        found = hit[0]
        # its entries refer to the message's bytes: those count
        cost = len(data) + len(whole) + ENTRY_BYTES * len(ctx)
        self._keep(msg.execution_id, whole[:-1], ctx, cost, found)

    def prefix_of(self, execution: str, entries: dict[str, msgspec.Raw]) -> bytes | None:
        """The kept bytes of `entries` without the closing brace, when `entries` is the very
        dict kept for `execution` (what `decode` or `remember` just kept for its message), else
        None. The encoder splices them into the next message (`runeworker.engine.context`)."""
        with self._lock:
            kept = self._kept.get(execution)
        return kept.prefix if kept is not None and kept.entries is entries else None

    def _keep(
        self, execution: str, prefix: bytes, entries: dict[str, msgspec.Raw], cost: int, at: int
    ) -> None:
        if cost > self.max_total:
            return
        # while none is reused, a budget SPARSE times smaller (the module doc says why)
        limit = self.max_total if self._in_vain <= IN_VAIN else self.max_total // SPARSE
        with self._lock:
            old = self._kept.pop(execution, None)
            if old is not None:
                self._total -= old.cost
            self._kept[execution] = _Kept(prefix, entries, cost, at)
            self._total += cost
            while self._total > limit and len(self._kept) > 1:
                _, dropped = self._kept.popitem(last=False)
                self._total -= dropped.cost


def _value_starting(data: bytes, expected: bytes, start: int) -> tuple[int, int] | None:
    """(where a `"accumulated_context"` key is, where its value starts) for the first such key
    from `start` on whose value starts with `expected`, else the first before `start`; None
    when there is none."""
    for lo, hi in ((start, len(data)), (0, start + len(_KEY) - 1)):
        found = data.find(_KEY, lo, hi)
        while found >= 0:
            at = value_at(data, _KEY, found)
            if at >= 0 and data.startswith(expected, at):
                return found, at
            found = data.find(_KEY, found + 1, hi)
    return None


def _execution_id(data: bytes) -> str | None:
    """The value of the first `"execution_id"` key when it is a plain string, else None (only
    which kept context to try depends on it)."""
    at = value_at(data, _EXECUTION_KEY)
    if at < 0 or data[at] != 0x22:  # '"'
        return None
    end = data.find(b'"', at + 1)
    text = data[at + 1 : end]
    if end < 0 or b"\\" in text:
        return None
    try:
        return text.decode()
    except UnicodeDecodeError:
        return None
