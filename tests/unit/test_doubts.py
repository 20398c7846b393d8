"""A child's commit in doubt as kept in the store (runeworker/child/doubts.py), on the
in-memory store of tests/unit/stubbroker.py: the lease is renewed while the child waits, at
most every RENEW_EVERY seconds, and a stopping child hands it over."""

from __future__ import annotations

import pytest
from stubbroker import StubStore

from runeworker.child import doubts as doubts_module
from runeworker.child.doubts import RENEW_EVERY, DoubtBook


def test_the_lease_is_renewed_every_renew_every_seconds_while_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = StubStore()
    clock = [1000.0]
    monkeypatch.setattr(doubts_module.time, "monotonic", lambda: clock[0])
    book = DoubtBook(store.doubts, lease=60)
    book.keep_alive()  # nothing in doubt: nothing to renew
    assert store.doubts.kept == {}
    book.in_doubt(b"messages")
    book.renew()  # the connection attempt
    assert store.doubts.leases[book.doubt_id] == 60_000
    store.doubts.now_ms = 5_000
    clock[0] += RENEW_EVERY - 1
    book.keep_alive()
    assert store.doubts.leases[book.doubt_id] == 60_000  # renewed too recently
    clock[0] += 1
    book.keep_alive()
    assert store.doubts.leases[book.doubt_id] == 65_000
    book.renew(handing_over=True)
    assert store.doubts.leases[book.doubt_id] == 5_000  # any child's at once
    book.resolved()
    assert store.doubts.kept == {} and not book.open


def test_what_could_not_be_kept_is_kept_at_the_next_renewal() -> None:
    store = StubStore()
    book = DoubtBook(store.doubts, lease=60)
    store.fail("doubts")
    book.in_doubt(b"messages")
    assert book.open and not book.kept and store.doubts.kept == {}
    book.renew()
    assert book.kept and store.doubts.kept == {book.doubt_id: b"messages"}
