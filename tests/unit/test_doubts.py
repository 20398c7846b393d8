"""A child's commit in doubt as kept in the store (runeworker/child/doubts.py), on the
in-memory store of tests/unit/stubbroker.py: the lease is renewed while the child waits, at
most every RENEW_EVERY seconds, and a stopping child hands it over."""

from __future__ import annotations

import os
import socket

import msgspec
import pytest
from stubbroker import MemoryDoubts, Message, StubBroker, StubStore

from runeworker.child import doubts as doubts_module
from runeworker.child.doubts import ADOPT_EVERY, RENEW_EVERY, DoubtBook, Resender
from runeworker.child.hooks import NoHooks
from runeworker.child.receipts import ReceiptBook
from runeworker.errors import StateError


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
    assert store.doubts.kept == {} and not book.open and book.kept is False


def test_what_could_not_be_kept_is_kept_at_the_next_renewal() -> None:
    store = StubStore()
    book = DoubtBook(store.doubts, lease=60)
    store.fail("doubts")
    book.in_doubt(b"messages")
    assert book.open and not book.kept and store.doubts.kept == {}
    book.renew()
    assert book.kept and store.doubts.kept == {book.doubt_id: b"messages"}


class _Drops(MemoryDoubts):
    """The in-memory doubt store, counting the drops by id; `drop_fails` makes them fail."""

    def __init__(self, store: StubStore) -> None:
        super().__init__(store)
        self.drops: list[str] = []
        self.drop_fails = False

    def drop(self, doubt_id: str) -> None:
        if self.drop_fails:
            raise StateError("Redis at 127.0.0.1:6379 did not answer")
        self.drops.append(doubt_id)
        super().drop(doubt_id)


def test_the_doubt_id_names_the_host_and_process() -> None:
    book = DoubtBook(StubStore().doubts)
    host, pid, tail = book.doubt_id.split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert len(tail) == 12 and int(tail, 16) >= 0
    assert book.kept is False and not book.open


def test_orphans_are_looked_for_at_once_then_every_adopt_every_seconds_16_at_a_time() -> None:
    store = StubStore()
    book = DoubtBook(store.doubts, lease=60)
    for i in range(20):
        store.doubts.keep(f"other:{i}", b"packed", 0)  # their lease ran out
    store.doubts.keep(book.doubt_id, b"mine", 0)  # this child's own is never its orphan
    first = book.orphans(5.0)
    assert [i for i, _ in first] == [f"other:{i}" for i in range(16)]
    assert book.orphans(5.0 + ADOPT_EVERY - 0.5) == []
    assert [i for i, _ in book.orphans(5.0 + ADOPT_EVERY)] == [f"other:{i}" for i in range(16, 20)]


def test_an_adopted_orphan_is_dropped_once() -> None:
    store = StubStore()
    doubts = _Drops(store)
    book = DoubtBook(doubts, lease=60)
    book.adopting("other:1")
    book.adopted("other:1")
    book.resolved()  # this child's own resend: the orphan is not dropped again
    assert doubts.drops == ["other:1"]
    book.adopting("other:2")
    book.resolved()  # its resend failed, then this child's committed: dropped with it
    assert doubts.drops == ["other:1", "other:2"]


def test_a_child_that_never_renewed_renews_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    store = StubStore()
    monkeypatch.setattr(doubts_module.time, "monotonic", lambda: 5.0)
    book = DoubtBook(store.doubts, lease=60)
    store.fail("doubts")
    book.in_doubt(b"messages")  # Redis down: kept in memory
    book.keep_alive()
    assert book.kept and store.doubts.kept == {book.doubt_id: b"messages"}


def test_what_redis_did_not_take_is_told(caplog: pytest.LogCaptureFixture) -> None:
    store = StubStore()
    book = DoubtBook(store.doubts, lease=60)
    with caplog.at_level("WARNING", logger="runeworker.worker"):
        store.fail("doubts")
        book.in_doubt(b"messages")
        book.renew()
        store.fail("doubts")
        book.renew()
    assert [r.getMessage() for r in caplog.records] == [
        "commit in doubt not kept in Redis yet (kept in memory): stub: Redis is gone (doubts keep)",
        "lease of the kept commit in doubt not renewed: stub: Redis is gone (doubts renew)",
    ]
    assert book.kept  # kept: the renewal failed, the copy stays


def _resender(broker: StubBroker, store: StubStore, doubts: MemoryDoubts) -> Resender:
    book = ReceiptBook(store)
    return Resender(broker, book, DoubtBook(doubts, lease=60), NoHooks(), retry_delay=0.5)


def test_adopting_drops_an_unreadable_orphan_and_publishes_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, broker = StubStore(), StubBroker()
    broker.connect()
    doubts = _Drops(store)
    good = msgspec.msgpack.encode([Message(b"{}", "workflows", "workflow.node.status", {})])
    doubts.keep("other:bad", b"\xc1 not msgpack", 0)
    doubts.keep("other:good", good, 0)
    resender = _resender(broker, store, doubts)
    with caplog.at_level("WARNING", logger="runeworker.worker"):
        resender.adopt()
    assert doubts.drops == ["other:bad", "other:good"] and doubts.kept == {}
    assert [m.routing_key for m in broker.resent] == ["workflow.node.status"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("dropping the commit in doubt other:bad kept in Redis: ")
    assert "not a packed commit in doubt" in messages[0]
    assert messages[1] == (
        "published again the 1 messages of a commit in doubt another child kept (other:good)"
    )


def test_redis_failing_while_adopting_is_told(caplog: pytest.LogCaptureFixture) -> None:
    store, broker = StubStore(), StubBroker()
    broker.connect()
    doubts = _Drops(store)
    doubts.keep("other:good", msgspec.msgpack.encode([]), 0)
    resender = _resender(broker, store, doubts)
    doubts.drop_fails = True
    with caplog.at_level("WARNING", logger="runeworker.worker"):
        resender.adopt()
        store.fail("doubts")
        resender.doubts._next_adopt = 0.0  # look again at once
        resender.adopt()
    assert [r.getMessage() for r in caplog.records] == [
        "the adopted commit in doubt other:good stays in Redis: "
        "Redis at 127.0.0.1:6379 did not answer",
        "published again the 0 messages of a commit in doubt another child kept (other:good)",
        "cannot look for commits in doubt other children kept: stub: Redis is gone (doubts take)",
    ]


def test_a_resend_with_only_receipts_in_doubt_is_told(caplog: pytest.LogCaptureFixture) -> None:
    store, broker = StubStore(), StubBroker()
    broker.connect()
    resender = _resender(broker, store, store.doubts)
    resender.receipts.doubted.append(("ex", "q|root|n"))
    with caplog.at_level("WARNING", logger="runeworker.worker"):
        resender.resend()
    assert [r.getMessage() for r in caplog.records] == [
        "a commit failed with its outcome unknown: published its 0 messages again; "
        "the 1 deliveries it acked count as done"
    ]
    assert store.receipts_kept == {("ex", "q|root|n")}


@pytest.mark.parametrize("redis_up", [True, False])
def test_a_stopping_child_tries_three_times_then_hands_over_or_says_what_is_lost(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, redis_up: bool
) -> None:
    store, broker = StubStore(), StubBroker()
    slept: list[float] = []
    monkeypatch.setattr(doubts_module.time, "sleep", slept.append)
    resender = _resender(broker, store, store.doubts)
    if not redis_up:  # neither kept when the commit failed nor when handing over
        store.fail("doubts", times=2)
    resender.doubts.in_doubt(b"messages")
    broker.fail("connect", times=3)
    with caplog.at_level("WARNING", logger="runeworker.worker"):
        resender.settle_before_exit()
    assert slept == [0.5, 1.0, 1.5]
    record = caplog.records[-1]
    said = "stopping with a commit in doubt, its messages could not be published again "
    if redis_up:
        assert (record.levelname, record.getMessage()) == (
            "WARNING",
            said + "(stub: connection lost during connect): they are kept in Redis, and the "
            "next child to look publishes them",
        )
        assert store.doubts.leases[resender.doubts.doubt_id] == store.doubts.now_ms
    else:
        assert (record.levelname, record.getMessage()) == (
            "ERROR",
            said + "nor kept in Redis (stub: connection lost during connect): the steps of "
            "its deliveries may be lost",
        )
