"""`merge` node (upstream services/rune-worker/pkg/nodes/custom/merge/): joins parallel branches.

Parameters: `wait_mode` (`wait_for_all`, the default: one arrival from every distinct parent
node; `wait_for_any`: the first arrival with data wins, the others are ignored), `timeout`
(seconds, a number or numeric string; missing, zero or negative means 300) and `mode` (`append`,
accepted and unused, as in the Go worker). The node only checks and normalises them; the engine
(runeworker/engine/flow.py) runs the barrier and merges the contexts.
"""

from __future__ import annotations

from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.errors import NodeError
from runeworker.nodes import params

WAIT_MODES = ("wait_for_all", "wait_for_any")
DEFAULT_TIMEOUT = 300.0


_TIMEOUT = params.Wording(invalid="timeout must be a number of seconds, not {got}")


# The longest timeout kept: its timer, due that long after the first arrival, comes after the
# year 9999 whenever it started, which is never for a workflow. A longer one (1e300 s: "no
# timeout" written as a number) is read as this one: beyond it the timer's milliseconds
# overflow (1e308 seconds is infinite milliseconds), which failed the step as an engine bug.
MAX_TIMEOUT = 253_402_300_799


def timeout_seconds(raw: Any) -> float:
    """The `timeout` parameter in seconds; anything not positive means the default, anything
    past MAX_TIMEOUT means MAX_TIMEOUT (the merge waits, its timer due in no calendar's year)."""
    seconds = params.duration({"timeout": raw}, "timeout", DEFAULT_TIMEOUT, wording=_TIMEOUT)
    return min(seconds, MAX_TIMEOUT)


@node("merge")
def merge(ctx: NodeContext) -> dict[str, Any]:
    """Output the normalised settings `{"mode", "wait_mode", "timeout"}` for the engine."""
    # a value that is not a string is the default, as upstream's parseMergeParams reads it
    wait_mode = params.text(ctx.params, "wait_mode", "wait_for_all", other="default")
    if wait_mode not in WAIT_MODES:
        raise NodeError(f"unsupported wait_mode: {wait_mode} (use wait_for_all or wait_for_any)")
    mode = params.text(ctx.params, "mode", "append", other="default")
    return {
        "mode": mode,
        "wait_mode": wait_mode,
        "timeout": timeout_seconds(ctx.params.get("timeout")),
    }
