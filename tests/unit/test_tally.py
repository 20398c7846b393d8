"""runeworker.metrics.tally: buffered metric updates write exactly what direct updates write."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from runeworker.metrics import NODE_DURATION_BUCKETS, tally


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


@pytest.fixture
def buffering() -> Iterator[None]:
    tally.start()
    yield
    tally.stop()


VALUES = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.2, 7.5, 61.0, 0.0025]


def test_flush_writes_what_direct_updates_write(buffering: None) -> None:
    buffered, direct = CollectorRegistry(), CollectorRegistry()
    metrics = []
    for registry in (buffered, direct):
        counter = Counter("deliveries", "d", ["outcome"], registry=registry)
        histogram = Histogram("duration", "h", ["type"], buckets=NODE_DURATION_BUCKETS,
                              registry=registry)  # fmt: skip
        gauge = Gauge("inflight", "g", registry=registry)
        metrics.append((counter, histogram, gauge))
    (b_counter, b_hist, b_gauge), (d_counter, d_hist, d_gauge) = metrics
    before = samples(buffered)
    for value in VALUES:
        tally.inc(b_counter.labels("acked"))
        tally.observe(b_hist.labels("log"), value)
        tally.inc(b_gauge, 1)
        tally.inc(b_gauge, -1)
        d_counter.labels("acked").inc()
        d_hist.labels("log").observe(value)
    tally.inc(b_gauge, 1)
    d_gauge.inc(1)
    after_labels = samples(buffered)
    # nothing written yet beyond the series the labels() calls created (all at zero)
    assert all(v == 0 for k, v in after_labels.items() if k not in before)
    tally.flush()
    assert samples(buffered) == samples(direct)
    assert samples(buffered)[("duration_count", (("type", "log"),))] == len(VALUES)
    tally.flush()  # a second flush adds nothing
    assert samples(buffered) == samples(direct)


def test_without_start_every_update_is_written_at_once() -> None:
    registry = CollectorRegistry()
    counter = Counter("handled", "h", registry=registry)
    tally.inc(counter)
    assert samples(registry)[("handled_total", ())] == 1


def test_stop_writes_the_rest() -> None:
    registry = CollectorRegistry()
    counter = Counter("handled", "h", registry=registry)
    tally.start()
    tally.inc(counter, 3)
    assert samples(registry)[("handled_total", ())] == 0
    tally.stop()
    assert samples(registry)[("handled_total", ())] == 3
    tally.inc(counter)
    assert samples(registry)[("handled_total", ())] == 4


def test_flush_due_writes_at_most_every_flush_every(
    buffering: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(tally.time, "monotonic", lambda: now[0])
    registry = CollectorRegistry()
    counter = Counter("handled", "h", registry=registry)
    tally.flush()  # the last write: now
    tally.inc(counter)
    tally.flush_due()
    assert samples(registry)[("handled_total", ())] == 0  # written less than FLUSH_EVERY ago
    now[0] += tally.FLUSH_EVERY * 0.9
    tally.inc(counter)
    tally.flush_due()
    assert samples(registry)[("handled_total", ())] == 0
    now[0] += tally.FLUSH_EVERY * 0.1
    tally.flush_due()
    assert samples(registry)[("handled_total", ())] == 2
    tally.inc(counter)
    tally.flush_due()  # the write just now starts the next interval
    assert samples(registry)[("handled_total", ())] == 2
    tally.flush()  # an idle loop writes at once
    assert samples(registry)[("handled_total", ())] == 3
