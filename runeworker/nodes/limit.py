"""`limit` node: keeps the first `count` items of a list (reference 5.11).

`count` is a whole number: an integer, an integral float or a string of digits. The list is
`input_array` (raw, see `runeworker.nodes.lists`), by default `$json`.
Output: `$json` (the kept items), `count`, `original_count`.
"""

from __future__ import annotations

import re
from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.errors import NodeError
from runeworker.nodes.lists import JSON_KEY, array_input

_INTEGER = re.compile(r"[+-]?[0-9]+")


def count_of(raw: Any) -> int:
    """The `count` parameter as an int >= 0; anything else raises NodeError."""
    count: int | None = None
    if isinstance(raw, bool):
        count = None  # JSON true is not a count
    elif isinstance(raw, int):
        count = raw
    elif isinstance(raw, float) and raw.is_integer():
        count = int(raw)
    elif isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
        count = int(raw.strip())
    if count is None:
        raise NodeError("count parameter is required")
    if count < 0:
        raise NodeError("count must be zero or greater")
    return count


@node("limit", required=("count",), raw=("input_array",))
def run(ctx: NodeContext) -> dict[str, Any]:
    """Keep the first `count` items; output `{"$json": kept, "count": n, "original_count": m}`."""
    count = count_of(ctx.params.get("count"))
    source = array_input(ctx)
    kept = source.items[:count]
    return {JSON_KEY: kept, "count": len(kept), "original_count": len(source.items)}
