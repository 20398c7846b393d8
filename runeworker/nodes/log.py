"""`log` node: writes one structured log line (upstream
services/rune-worker/pkg/nodes/custom/log/)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.nodes import params

_MESSAGE = params.Wording(missing="message parameter is required")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


@node("log", required=("message",))
def run(ctx: NodeContext) -> dict[str, Any]:
    message = params.text(ctx.params, "message", required=True, other="default", wording=_MESSAGE)
    # an unknown level is info, as upstream (services/rune-worker/pkg/nodes/custom/log/log_node.go)
    level = params.text(ctx.params, "level", "info", other="render").strip().lower()
    if level not in _LEVELS:
        level = "info"
    ctx.log.log(
        _LEVELS[level],
        "%s",
        ctx.resolver.mask(message),
        extra={
            "workflow_id": ctx.workflow_id,
            "execution_id": ctx.execution_id,
            "node_id": ctx.node.id,
        },
    )
    return {"message": message, "level": level, "logged_at": _logged_at(int(time.time()))}


_stamp: tuple[int, str] = (-1, "")


def _logged_at(secs: int) -> str:
    """UTC time of `secs` to the second, formatted once per second (strftime costs as much as
    the rest of the node)."""
    global _stamp
    stamp = _stamp  # one read: another thread may replace it meanwhile
    if stamp[0] != secs:
        stamp = _stamp = (secs, datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return stamp[1]
