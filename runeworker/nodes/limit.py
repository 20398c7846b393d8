"""`limit` node: keeps the first `count` items of a list (upstream
services/rune-worker/pkg/nodes/custom/limit/).

`count` is a whole number >= 0 (an integer, an integral float or the text of one), read by
`runeworker.nodes.params`. The list is
`input_array` (raw, see `runeworker.nodes.lists`), by default `$json`.
Output: `$json` (the kept items), `count`, `original_count`.
"""

from __future__ import annotations

from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.nodes import params
from runeworker.nodes.lists import JSON_KEY, array_input

# upstream's sentences (services/rune-worker/pkg/nodes/custom/limit/limit_node.go)
_COUNT = params.Wording(
    missing="count parameter is required",
    invalid="count parameter is required",
    below="count must be zero or greater",
)


def count_of(raw: Any) -> int:
    """The `count` parameter as an int >= 0; anything else raises NodeError."""
    return params.integer({"count": raw}, "count", required=True, minimum=0, wording=_COUNT)


@node("limit", required=("count",), raw=("input_array",))
def run(ctx: NodeContext) -> dict[str, Any]:
    """Keep the first `count` items; output `{"$json": kept, "count": n, "original_count": m}`."""
    count = count_of(ctx.params.get("count"))
    source = array_input(ctx)
    kept = source.items[:count]
    return {JSON_KEY: kept, "count": len(kept), "original_count": len(source.items)}
