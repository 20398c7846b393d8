"""Metric updates of a worker's hot path, summed in memory and written after commits.

In multiprocess mode every prometheus-client update takes a lock, checks the process id (a
system call) and writes the memory-mapped file; a node costs about eight updates. A worker
child calls `start()` once; from then on `inc` and `observe` only add to in-memory sums, and
`flush()` writes one update per series and per histogram bucket. The child calls `flush_due()`
after each broker commit, which writes at most every FLUSH_EVERY seconds (writing at every
commit cost about 3% of a child's CPU per node: deploy/PERFORMANCE.md), and `flush()` when it
has no backlog (a batch smaller than it could be, a poll that brought nothing) and while a
blocking node runs. So at low load a scrape sees a step as soon as it is committed; under load,
the counts of steps committed at most FLUSH_EVERY seconds before; of a step not committed yet
at most that it started (a blocking node, once its `running` status is committed). The
in-flight gauge's +1/-1 of a quick node cancel out, and a blocking node shows as in flight
while it runs.

Without `start()` (the supervisor, tests, tools) every update is written at once.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import Any

FLUSH_EVERY = 1.0  # seconds between the writes of `flush_due`

_incs: dict[Any, float] = {}  # metric child (Counter/Gauge) -> amount to add
_observed: dict[Any, list[float]] = {}  # Histogram child -> observations
_buffering = False
_next_flush = 0.0  # monotonic time from which `flush_due` writes


def start() -> None:
    """Sum updates in memory until `flush` (a worker child, after fork)."""
    global _buffering
    _buffering = True


def stop() -> None:
    """Write what is pending and go back to writing every update at once."""
    global _buffering
    flush()
    _buffering = False


def inc(child: Any, amount: float = 1.0) -> None:
    """`child.inc(amount)`, now or at the next flush."""
    if _buffering:
        _incs[child] = _incs.get(child, 0.0) + amount
    else:
        child.inc(amount)


def observe(child: Any, value: float) -> None:
    """`child.observe(value)`, now or at the next flush."""
    if _buffering:
        found = _observed.get(child)
        if found is None:
            _observed[child] = [value]
        else:
            found.append(value)
    else:
        child.observe(value)


def flush_due() -> None:
    """`flush` when FLUSH_EVERY seconds have passed since the last one."""
    if time.monotonic() >= _next_flush:
        flush()


def flush() -> None:
    """Write the pending sums: one update per series, one per histogram bucket hit."""
    global _next_flush
    _next_flush = time.monotonic() + FLUSH_EVERY
    if _incs:
        incs = list(_incs.items())
        _incs.clear()
        for child, amount in incs:
            if amount:  # the in-flight gauge's +1 and -1 of one step cancel out
                child.inc(amount)
    if _observed:
        observed = list(_observed.items())
        _observed.clear()
        for child, values in observed:
            _observe_all(child, values)


def _observe_all(child: Any, values: list[float]) -> None:
    """Like `observe` for each value, with one write to the sum and one per bucket. Uses the
    histogram's value slots (prometheus-client 0.19-0.2x); without them, one observe each."""
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            child.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1  # the first bucket with value <= bound (+Inf last)
    total.inc(sum(values))
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
