"""`split` and `aggregator` nodes (upstream services/rune-worker/pkg/nodes/custom/split/,
custom/aggregator/;
services/rune-worker/rfcs/RFC-004-split-aggregate.md).

`split` turns `input_array` (usually a whole-value reference such as `"$Fetch_Users.body"`, or a
literal list) into `_split_items`; the engine (runeworker/engine/flow.py) fans the branch out,
one message per item and next node, each with `$item` and a lineage frame. `aggregator` closes
the split: the engine records each branch's result in a barrier and the last arrival continues
with `{"aggregated": [results in item order], "_aggregator_processed_count": N}`.
"""

from __future__ import annotations

from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.nodes import params

# upstream's sentences (services/rune-worker/pkg/nodes/custom/split/split_node.go)
_INPUT = params.Wording(
    missing="missing required parameter: input_array",
    invalid="input_array must be an array/slice, got {kind}",
)


@node("split", required=("input_array",))
def split(ctx: NodeContext) -> dict[str, Any]:
    """Output `{"_split_items": [...]}`: the list to fan out."""
    items = params.array(ctx.params, "input_array", required=True, wording=_INPUT)
    return {"_split_items": items}


@node("aggregator")
def aggregator(ctx: NodeContext) -> dict[str, Any]:
    """No parameter is used (`timeout` is accepted and ignored): the engine owns the barrier."""
    return {}
