"""`wait` node (upstream services/rune-worker/pkg/nodes/custom/wait/; docs/WIRE.md section 7): parks
the branch until a time, then the branch goes on.

Either a relative wait, `amount` (a number or numeric string, fractions honoured; default 1)
of `unit` (`seconds`, the default, `minutes`, `hours` or `days`), or an absolute `date_time`
(ISO 8601, e.g. `2026-01-31T09:00:00Z`, or one of upstream's common date layouts; without an
offset it is UTC), which wins when given; a time already past resumes at once (`resume_at` is
then the time of the step). Parameters are read by `runeworker.nodes.params`,
`date_time` by the one date parser (`runeworker.nodes.dates`, `common_and_iso_8601`).
The node computes `resume_at` (epoch milliseconds); the engine stores the frozen message as a
timer, publishes `waiting`, and on resume publishes `success` and routes on.
"""

from __future__ import annotations

import time
from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.errors import NodeError
from runeworker.nodes import dates
from runeworker.nodes import params as p

UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
# beyond this a resume time is no longer a date (year 9999)
_MAX_MS = 253_402_300_799_000
_NAMES = ", ".join(UNITS)
# upstream's sentences (services/rune-worker/pkg/nodes/custom/wait/wait_node.go)
_AMOUNT = p.Wording(
    invalid="amount must be a number, not {got}", below="amount must be non-negative"
)
_UNIT = p.Wording(invalid=f"invalid unit {{shown}}: use one of {_NAMES}")
_DATE_TIME = p.Wording(
    invalid="date_time '{shown}' is not an ISO 8601 date and time (e.g. 2026-01-31T09:00:00Z)",
    type="date_time must be an ISO 8601 date and time, not {kind}",
)


def resume_at(params: dict[str, Any], now_ms: int) -> int:
    """When the wait described by `params` ends, in epoch milliseconds."""
    when = p.date(params, "date_time", layouts=dates.common_and_iso_8601(), wording=_DATE_TIME)
    if when is not None:
        # a time already past is now: the resume of a wait due at once may overtake the wait's
        # step, and is retried for a grace period after `resume_at` (`Turn._resume_early`)
        return max(round(when.timestamp() * 1000), now_ms)
    amount = p.number(params, "amount", 1.0, minimum=0, wording=_AMOUNT)
    unit = p.text(params, "unit", "seconds", wording=_UNIT)
    if unit.strip().lower() not in UNITS:
        raise NodeError(f"invalid unit {unit}: use one of {_NAMES}")
    due = now_ms + amount * UNITS[unit.strip().lower()] * 1000
    if due > _MAX_MS:
        raise NodeError("the wait ends after the year 9999: amount is too large")
    return round(due)


@node("wait")
def wait(ctx: NodeContext) -> dict[str, Any]:
    """Output `{"resume_at": <epoch ms>}`; the engine adds the `timer_id`."""
    return {"resume_at": resume_at(ctx.params, time.time_ns() // 1_000_000)}
