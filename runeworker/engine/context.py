"""The accumulated context, decoded lazily.

An execution message carries every earlier node's output, and a step usually reads one or
two of them. The message decoder keeps each top-level context value as `msgspec.Raw` (still
JSON bytes); `LazyContext` decodes a value the first time it is read and keeps the result.
Values nobody read are re-emitted byte for byte when the next message is encoded (msgspec
writes `Raw` verbatim and reads a dict subclass without calling its Python methods), so the
cost of a step no longer grows with the size of the context it does not touch.

Every read path (`[]`, `get`, `values`, `items`, iteration, `dict(...)`, `copy`) returns
decoded values; only the encoder sees raw bytes. A value nested deeper than
`runeworker.engine.depth.MAX_DEPTH` is never decoded: reading it raises `DepthError`, which
fails the node that reads it.

A step copies the context once (`runeworker.engine.flow.updated_context`). CPython copies a
dict subclass that overrides `__iter__`, as this one must, entry by entry through Python
(about 30 µs for the 400 entries of a 500-node workflow's late steps on the project's VM); a
plain dict is copied by a C loop, several times faster. So the message decoder's context
(`LazyContext.over`) keeps the plain dict it was made from while its own entries still are that
dict's, and its copies (plain LazyContexts) start from it; every method that changes its entries
drops it.

The next message writes the context again. When the decoder knows the context's bytes (kept by
`runeworker.engine.known_contexts` for a large context) and it has many small entries, the
step's copy is an `ExtendedContext`: as long as the step only adds keys, `spliced` gives those
bytes followed by the added entries, which is what encoding the copy entry by entry writes,
without writing each entry again (deploy/PERFORMANCE.md, "a long workflow's context spliced").
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Any, Self, SupportsIndex

import msgspec

from runeworker.engine import depth
from runeworker.errors import UnreadableError

_decode = msgspec.json.decode
_encode_json = msgspec.json.encode
# one level of a JSON value, its members left as bytes: scanning past a member is several times
# cheaper than building it (a 64 KB `$input`: ~0.35 ms against ~2.9 ms for all of it)
_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
# below this size a value is decoded whole and kept (one decode, reused by later reads);
# `descend` pays off for large values only
PART_MIN_BYTES = 4096


def descend(raw: msgspec.Raw, segments: tuple[str | int, ...], what: str) -> tuple[bool, Any]:
    """(True, the value at `segments` inside the JSON `raw`), decoding only that value and
    one level of each object or array on the way; (False, None) when the path does not lead
    to a value (the caller decodes the whole value and reports why). A value found that cannot
    be read raises `UnreadableError` naming `what` (runeworker.engine.depth)."""
    value = raw
    for seg in segments:
        first = bytes(memoryview(value)[:1])
        if isinstance(seg, int):
            if first != b"[":
                return False, None
            items = _ARRAY.decode(value)
            if seg >= len(items):
                return False, None
            value = items[seg]
        else:
            if first != b"{":
                return False, None
            fields = _OBJECT.decode(value)
            if seg not in fields:
                return False, None
            value = fields[seg]
    return True, depth.read(value, what)  # untrusted input: see runeworker.engine.depth


class LazyContext(dict[str, Any]):
    """A dict whose `msgspec.Raw` values are decoded on first read.

    A value read keeps its bytes: the dict still holds the `Raw` (the encoder writes it
    verbatim, so a step that only reads `$input` does not re-encode it into the next message)
    and the decoded value is cached beside it, tied to that very `Raw` object. Decoded values
    are therefore read-only: a change made in place would not reach the next message (no
    node does that; an output is a new object, set with `ctx[key] = ...`)."""

    __slots__ = ("_decoded", "_unreadable")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decoded: dict[str, tuple[msgspec.Raw, Any]] = {}
        self._unreadable: set[str] = set()  # keys whose bytes a read failed on

    @staticmethod
    def over(source: dict[str, Any], prefix: bytes | None = None) -> LazyContext:
        """A LazyContext with the entries of the plain dict `source`, which it keeps to copy
        from: the caller hands `source` over and never changes it again. `prefix`: the JSON
        encoding of `source` without its closing brace, when it is known (the copies then
        encode by splicing: `spliced`)."""
        ctx = _Sourced(source)
        ctx._source = source
        ctx._prefix = prefix
        return ctx

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if type(value) is not msgspec.Raw:
            return value
        cached = self._decoded.get(key)
        if cached is not None and cached[0] is value:
            return cached[1]
        try:
            decoded = depth.read(value, f"context value {key}")
        except UnreadableError:  # too deep, or a number out of range
            self._unreadable.add(key)
            raise
        self._decoded[key] = (value, decoded)
        return decoded

    @property
    def any_unreadable(self) -> bool:
        """True when a read of some key failed: its value nests too deeply, or holds a number
        out of range (runeworker.engine.depth)."""
        return bool(self._unreadable)

    def mark_unreadable(self, key: str) -> None:
        """A read of a part of `key`'s value failed (`descend`): the value counts as one that
        cannot be read."""
        self._unreadable.add(key)

    def unreadable(self, key: str) -> bool:
        """True when a read of `key` failed, and it still holds the bytes that failed."""
        return key in self._unreadable and type(dict.get(self, key)) is msgspec.Raw

    def undecoded(self, key: str) -> Any:
        """The `Raw` bytes of a large value nobody has read yet (at least PART_MIN_BYTES), else
        its value (decoded if need be): for a reader that wants one part of it (`descend`)."""
        value = dict.__getitem__(self, key)
        if type(value) is msgspec.Raw and len(value) >= PART_MIN_BYTES:
            cached = self._decoded.get(key)
            if cached is None or cached[0] is not value:
                return value
        return self[key]

    def decoded(self, key: str) -> bool:
        """True when `key`'s bytes were read whole (and could be: `depth.read` checked them)."""
        cached = self._decoded.get(key)
        return cached is not None and cached[0] is dict.__getitem__(self, key)

    def raw(self, key: str) -> Any:
        """The value as stored: the `Raw` bytes of a value from the message (read or not),
        else the value set since."""
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self:
            return default
        return self[key]

    def __eq__(self, other: object) -> bool:
        self.decode_all()
        if isinstance(other, LazyContext):
            other.decode_all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __iter__(self) -> Iterator[str]:
        # overriding __iter__ makes dict(ctx) and {**ctx} go through __getitem__
        return dict.__iter__(self)

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        self.decode_all()
        return dict.values(self)

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        self.decode_all()
        return dict.items(self)

    def copy(self) -> LazyContext:
        """A shallow copy that keeps undecoded values undecoded (and the decoded ones)."""
        return self._copied(LazyContext(dict.items(self)))

    def _copied(self, other: LazyContext) -> LazyContext:
        other._decoded.update(self._decoded)
        other._unreadable.update(self._unreadable)
        return other

    def decode_all(self) -> None:
        """Replace every `Raw` by its value (for the views, which must not show bytes)."""
        for key, value in dict.items(self):
            if type(value) is msgspec.Raw:
                dict.__setitem__(self, key, self[key])


class _Derived(LazyContext):
    """A LazyContext that keeps something derived from its entries (`_Sourced`: the dict it was
    made from; `ExtendedContext`: its known bytes) and forgets it (`_forget`) when they change.
    Each subclass sets its own `__setitem__`; every other way to change the entries is here."""

    __slots__ = ()

    def _forget(self) -> None:
        raise NotImplementedError

    def __delitem__(self, key: str) -> None:
        self._forget()
        dict.__delitem__(self, key)

    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]
        self._forget()
        dict.update(self, other)
        return self

    def pop(self, *args: Any) -> Any:
        self._forget()
        return dict.pop(self, *args)

    def popitem(self) -> tuple[str, Any]:
        self._forget()
        return dict.popitem(self)

    def clear(self) -> None:
        self._forget()
        dict.clear(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._forget()
        dict.update(self, *args, **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._forget()
        return dict.setdefault(self, key, default)


class _Sourced(_Derived):
    """A decoded message's context (`LazyContext.over`): it keeps the plain dict it was made
    from while its entries are still that dict's, and is copied from it (the copy is a plain
    LazyContext, or an `ExtendedContext` when its bytes are known). Every way to change the
    entries forgets the dict; `decode_all` only swaps a value for its own decoding, which leaves
    the entries what they were. The copies a step writes to pay for no overrides (plain
    LazyContexts), except those whose bytes are known (`ExtendedContext`: a long workflow's)."""

    __slots__ = ("_prefix", "_source")
    _source: dict[str, Any] | None
    _prefix: bytes | None  # the encoding of `_source` without its closing brace, if known

    def copy(self) -> LazyContext:
        source = self._source
        if source is None:
            return super().copy()
        if self._prefix is not None and _splices(len(source), len(self._prefix)):
            return self._copied(ExtendedContext(source, self._prefix))
        return self._copied(LazyContext(source))

    def _forget(self) -> None:
        self._source = None

    def __setitem__(self, key: str, value: Any) -> None:
        self._source = None
        dict.__setitem__(self, key, value)


# Splicing copies the known bytes once more (about 0.03 ns per byte here) and a fixed ~1 us,
# and saves writing each entry again (about 55 ns): worth it for many small entries (a long
# workflow's outputs), not for a few large ones (a 64 KB `$input`: deploy/PERFORMANCE.md).
SPLICE_BYTES_PER_ENTRY = 1800
SPLICE_FIXED_BYTES = 33_000


def _splices(entries: int, size: int) -> bool:
    return entries * SPLICE_BYTES_PER_ENTRY > size + SPLICE_FIXED_BYTES


class ExtendedContext(_Derived):
    """A copy of a decoded context whose encoding is known (`_Sourced` with a prefix), as a
    step extends it: while the only changes are keys added (or set again once added), its
    encoding is the known bytes, then the added entries (`spliced`). Setting a key it was
    copied with, or any other change, forgets the known bytes."""

    __slots__ = ("_added", "_prefix")

    def __init__(self, source: dict[str, Any], prefix: bytes) -> None:
        super().__init__(source)
        self._prefix: bytes | None = prefix
        self._added: dict[str, None] = {}  # the keys set since the copy, in order

    def _forget(self) -> None:
        self._prefix = None

    def __setitem__(self, key: str, value: Any) -> None:
        if self._prefix is not None and key not in self._added:
            if dict.__contains__(self, key):
                self._prefix = None  # a value it was copied with changes
            else:
                self._added[key] = None
        dict.__setitem__(self, key, value)

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        # copied (`copy`, `deepcopy`) or pickled as a plain LazyContext: rebuilt entry by entry
        # through `__setitem__`, a copy of this class would take every key for an added one
        # (and share this one's `_added`), and splice them after the known bytes again
        reduced = self.copy().__reduce_ex__(protocol)
        assert isinstance(reduced, tuple)  # a dict subclass reduces to a tuple
        return (LazyContext, (), *reduced[2:])


def spliced(context: Any) -> msgspec.Raw | None:
    """The JSON encoding of `context` when it is a copy of a decoded context whose bytes are
    known and only keys were added to it: those bytes, then the added entries, as one
    `msgspec.Raw` (what `msgspec.json.encode(context)` writes, byte for byte, as long as no
    value it was copied with was read with `values`/`items`, which decode them in place; then
    the same values as their original bytes). None otherwise: encode it as usual."""
    if type(context) is not ExtendedContext:  # the caller may check this first, cheaper
        return None
    prefix = context._prefix
    if prefix is None:
        return None
    added = context._added
    if not added:
        return msgspec.Raw(prefix + b"}")
    tail = _encode_json({key: dict.__getitem__(context, key) for key in added})
    separator = b"," if len(prefix) > 1 else b""
    return msgspec.Raw(b"".join((prefix, separator, memoryview(tail)[1:])))


def lazy(context: Mapping[str, Any] | None) -> LazyContext:
    """A LazyContext over `context` (the raw values of a decoded message, or plain values)."""
    if context is None:
        return LazyContext()
    if isinstance(context, LazyContext):
        return context.copy()
    return LazyContext(context)
