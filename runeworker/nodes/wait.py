"""`wait` node (reference 5.9): parks the branch until a time, then the branch goes on.

Either a relative wait, `amount` (a number or numeric string, fractions honoured; default 1)
of `unit` (`seconds`, the default, `minutes`, `hours` or `days`), or an absolute `date_time`
(ISO 8601, e.g. `2026-01-31T09:00:00Z`; without an offset it is UTC), which wins when given.
The node computes `resume_at` (epoch milliseconds); the engine stores the frozen message as a
timer, publishes `waiting`, and on resume publishes `success` and routes on.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.errors import NodeError
from runeworker.nodes.lists import kind

UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
# beyond this a resume time is no longer a date (year 9999)
_MAX_MS = 253_402_300_799_000


def _amount(raw: Any) -> float:
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise NodeError(f"amount must be a number, not '{raw}'") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NodeError(f"amount must be a number, not {kind(raw)}")
    if not math.isfinite(value):
        raise NodeError(f"amount must be a finite number, not {raw}")
    if value < 0:
        raise NodeError("amount must be non-negative")
    return float(value)


def _unit(raw: Any) -> float:
    unit = "seconds" if raw is None or raw == "" else raw
    if not isinstance(unit, str) or unit.strip().lower() not in UNITS:
        names = ", ".join(UNITS)
        raise NodeError(f"invalid unit {unit}: use one of {names}")
    return UNITS[unit.strip().lower()]


def _absolute(raw: Any) -> int:
    if not isinstance(raw, str) or not raw.strip():
        raise NodeError(f"date_time must be an ISO 8601 date and time, not {kind(raw)}")
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise NodeError(
            f"date_time '{raw}' is not an ISO 8601 date and time (e.g. 2026-01-31T09:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round(when.timestamp() * 1000)


def resume_at(params: dict[str, Any], now_ms: int) -> int:
    """When the wait described by `params` ends, in epoch milliseconds."""
    date_time = params.get("date_time")
    if date_time is not None and date_time != "":
        return _absolute(date_time)
    amount = _amount(params.get("amount", 1))
    due = now_ms + amount * _unit(params.get("unit")) * 1000
    if due > _MAX_MS:
        raise NodeError("the wait ends after the year 9999: amount is too large")
    return round(due)


@node("wait")
def wait(ctx: NodeContext) -> dict[str, Any]:
    """Output `{"resume_at": <epoch ms>}`; the engine adds the `timer_id`."""
    return {"resume_at": resume_at(ctx.params, time.time_ns() // 1_000_000)}
