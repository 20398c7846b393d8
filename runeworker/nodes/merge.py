"""`merge` node (reference 5.8): joins parallel branches.

Parameters: `wait_mode` (`wait_for_all`, the default: one arrival from every distinct parent
node; `wait_for_any`: the first arrival with data wins, the others are ignored), `timeout`
(seconds, a number or numeric string; missing, zero or negative means 300) and `mode` (`append`,
accepted and unused, as in the Go worker). The node only checks and normalises them; the engine
(runeworker/engine/flow.py) runs the barrier and merges the contexts.
"""

from __future__ import annotations

import math
from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.errors import NodeError
from runeworker.nodes.lists import kind

WAIT_MODES = ("wait_for_all", "wait_for_any")
DEFAULT_TIMEOUT = 300.0


def timeout_seconds(raw: Any) -> float:
    """The `timeout` parameter in seconds; anything not positive means the default."""
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise NodeError(f"timeout must be a number of seconds, not '{raw}'") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NodeError(f"timeout must be a number of seconds, not {kind(raw)}")
    if not math.isfinite(value):
        raise NodeError(f"timeout must be a finite number of seconds, not {raw}")
    return float(value) if value > 0 else DEFAULT_TIMEOUT


@node("merge")
def merge(ctx: NodeContext) -> dict[str, Any]:
    """Output the normalised settings `{"mode", "wait_mode", "timeout"}` for the engine."""
    wait_mode = ctx.params.get("wait_mode") or "wait_for_all"
    if wait_mode not in WAIT_MODES:
        raise NodeError(f"unsupported wait_mode: {wait_mode} (use wait_for_all or wait_for_any)")
    mode = ctx.params.get("mode") or "append"
    return {
        "mode": mode,
        "wait_mode": wait_mode,
        "timeout": timeout_seconds(ctx.params.get("timeout")),
    }
