"""Readable reasons for exceptions raised deep inside the SDKs (anyio exception groups,
httpx errors wrapping socket errors wrapping errno)."""

from __future__ import annotations


def describe(exc: BaseException) -> str:
    """The innermost cause's message: `Connection refused`, not `Connection error.`."""
    root = exc
    for _ in range(32):  # a chain is a few links long; bounded against cycles
        if isinstance(root, BaseExceptionGroup) and root.exceptions:
            root = root.exceptions[0]
            continue
        nxt = root.__cause__ or (None if root.__suppress_context__ else root.__context__)
        if nxt is None:
            break
        root = nxt
    if isinstance(root, OSError) and isinstance(root.strerror, str) and root.strerror:
        return root.strerror
    text = str(root).strip() or str(exc).strip()
    return text or type(root).__name__
