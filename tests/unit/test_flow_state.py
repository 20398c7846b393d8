"""The shared barrier and timer table (statecases.FLOW_CASES) against the in-memory store."""

from __future__ import annotations

import pytest
from statecases import FLOW_CASES, INTERLEAVINGS

from runeworker.engine.state import MemoryStore


def test_flow_table_is_complete() -> None:
    assert len(FLOW_CASES) == 34


@pytest.mark.parametrize("name", sorted(FLOW_CASES))
def test_memory_flow(name: str) -> None:
    FLOW_CASES[name](MemoryStore())


@pytest.mark.parametrize("name", sorted(INTERLEAVINGS))
def test_memory_interleaving(name: str) -> None:
    INTERLEAVINGS[name](MemoryStore())


def test_fired_and_cancelled_timers_leave_nothing_behind() -> None:
    # `runeworker run` keeps one MemoryStore for a whole execution: a timer it is done with must
    # not stay in memory (looked at from inside: the protocol cannot see a leak).
    store = MemoryStore()
    store.schedule("fired", 0, b"f")
    store.schedule("cancelled", 10, b"c")
    store.schedule("leased", 0, b"l")
    assert [t.timer_id for t in store.claim_due(0, 2, 1000)] == ["fired", "leased"]
    store.ack_timer("fired")
    store.cancel_timer("cancelled")
    store.cancel_timer("leased")
    assert (store._timers, store._leases, store._payloads) == ({}, {}, {})
