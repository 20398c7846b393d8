"""The accumulated context, decoded lazily.

An execution message carries every earlier node's output, and a step usually reads one or
two of them. The message decoder keeps each top-level context value as `msgspec.Raw` (still
JSON bytes); `LazyContext` decodes a value the first time it is read and keeps the result.
Values nobody read are re-emitted byte for byte when the next message is encoded (msgspec
writes `Raw` verbatim and reads a dict subclass without calling its Python methods), so the
cost of a step no longer grows with the size of the context it does not touch.

Every read path (`[]`, `get`, `values`, `items`, iteration, `dict(...)`, `copy`) returns
decoded values; only the encoder sees raw bytes.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Any

import msgspec

_decode = msgspec.json.decode


class LazyContext(dict[str, Any]):
    """A dict whose `msgspec.Raw` values are decoded on first read."""

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if type(value) is msgspec.Raw:
            value = _decode(value)
            dict.__setitem__(self, key, value)
        return value

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
        """A shallow copy that keeps undecoded values undecoded."""
        return LazyContext(dict.items(self))

    def decode_all(self) -> None:
        for key, value in dict.items(self):
            if type(value) is msgspec.Raw:
                dict.__setitem__(self, key, _decode(value))


def lazy(context: Mapping[str, Any] | None) -> LazyContext:
    """A LazyContext over `context` (the raw values of a decoded message, or plain values)."""
    if context is None:
        return LazyContext()
    if isinstance(context, LazyContext):
        return context.copy()
    return LazyContext(dict.items(context) if isinstance(context, dict) else context.items())
