"""The timer scheduler against the in-memory store (upstream:
services/rune-worker/pkg/scheduler/scheduler.go, made crash-safe; docs/WIRE.md section 7): due
timers fire verbatim, once, in batches; a failed publish or a dead scheduler loses none."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from runeworker.child.scheduler import HostLock, Scheduler, now_ms
from runeworker.engine.state import MemoryStore
from runeworker.errors import BrokerError

NOW = 1_700_000_000_000


class Broker:
    """Records publishes and commits; fails the publishes listed in `fail`."""

    def __init__(self, store: MemoryStore, fail: tuple[bytes, ...] = ()) -> None:
        self.store = store
        self.fail = set(fail)
        self.sent: list[bytes] = []
        self.committed: list[bytes] = []
        self.pending_at_commit: list[int | None] = []

    def publish(self, body: bytes) -> None:
        if body in self.fail:
            raise BrokerError(f"cannot publish to workflow.resume: {body!r} refused")
        self.sent.append(body)

    def commit(self) -> None:
        # nothing may be acknowledged before the publishes are committed
        self.pending_at_commit.append(len(self.store._payloads))
        self.committed += self.sent[len(self.committed) :]


def scheduled(*timers: tuple[str, int]) -> MemoryStore:
    store = MemoryStore()
    for timer_id, due in timers:
        store.schedule(timer_id, due, f'{{"timer":"{timer_id}"}}'.encode())
    return store


def test_due_timers_fire_verbatim_and_are_forgotten() -> None:
    """As upstream's pkg/scheduler/scheduler_test.go: due timers published and dropped; future
    timers untouched."""
    store = scheduled(("b", NOW - 5), ("a", NOW - 10), ("later", NOW + 1000))
    broker = Broker(store)
    assert Scheduler(store, broker.publish, commit=broker.commit).tick(NOW) == 2
    assert broker.committed == [b'{"timer":"a"}', b'{"timer":"b"}']
    assert broker.pending_at_commit == [3]
    assert store._payloads == {"later": b'{"timer":"later"}'}
    assert store.next_due() == NOW + 1000
    assert Scheduler(store, broker.publish, commit=broker.commit).tick(NOW) == 0


def test_batch_limit() -> None:
    store = scheduled(*((f"t{i}", NOW - 100 + i) for i in range(5)))
    broker = Broker(store)
    scheduler = Scheduler(store, broker.publish, commit=broker.commit, batch=2)
    assert [scheduler.tick(NOW) for _ in range(4)] == [2, 2, 1, 0]
    assert broker.committed == [f'{{"timer":"t{i}"}}'.encode() for i in range(5)]


def test_failed_publish_stays_leased_and_fires_after_the_lease() -> None:
    store = scheduled(("ok", NOW - 2), ("bad", NOW - 1))
    broker = Broker(store, fail=(b'{"timer":"bad"}',))
    scheduler = Scheduler(store, broker.publish, commit=broker.commit, lease_ms=5000)
    with pytest.raises(BrokerError, match="refused"):
        scheduler.tick(NOW)
    assert broker.committed == [b'{"timer":"ok"}']  # the one before it still went out
    broker.fail.clear()
    assert scheduler.tick(NOW + 4999) == 0  # leased: not fired twice
    assert scheduler.tick(NOW + 5000) == 1
    assert broker.committed == [b'{"timer":"ok"}', b'{"timer":"bad"}']
    assert scheduler.tick(NOW + 10**9) == 0


def test_failed_commit_fires_again_after_the_lease() -> None:
    store = scheduled(("t", NOW))
    broker = Broker(store)

    def refuse() -> None:
        raise BrokerError("transaction commit failed: connection lost")

    with pytest.raises(BrokerError, match="commit failed"):
        Scheduler(store, broker.publish, commit=refuse, lease_ms=100).tick(NOW)
    again = Scheduler(store, broker.publish, commit=broker.commit, lease_ms=100)
    assert again.tick(NOW + 100) == 1
    assert again.tick(NOW + 10**6) == 0


def test_timer_of_a_dead_scheduler_fires_exactly_once() -> None:
    """A scheduler that claimed a timer and died without acknowledging it (a Go scheduler loses
    such a timer)."""
    store = scheduled(("t", NOW))
    assert [t.timer_id for t in store.claim_due(NOW, 100, 30_000)] == ["t"]  # ...and dies
    broker = Broker(store)
    survivor = Scheduler(store, broker.publish, commit=broker.commit, lease_ms=30_000)
    assert survivor.tick(NOW + 29_999) == 0
    assert survivor.tick(NOW + 30_000) == 1
    assert [survivor.tick(NOW + 60_000 * i) for i in range(2, 5)] == [0, 0, 0]
    assert broker.committed == [b'{"timer":"t"}']


def test_a_timer_whose_message_is_gone_is_told_and_the_others_still_fire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = scheduled(("a", NOW - 10), ("c", NOW - 1))
    store.schedule("lost", NOW - 5, b"")  # its payload evicted: nothing to fire
    broker, lost = Broker(store), []
    scheduler = Scheduler(
        store, broker.publish, commit=broker.commit, on_lost=lambda: lost.append(1)
    )
    with caplog.at_level("WARNING", logger="runeworker.scheduler"):
        assert scheduler.tick(NOW) == 2
    assert broker.committed == [b'{"timer":"a"}', b'{"timer":"c"}'] and lost == [1]
    assert [r.getMessage() for r in caplog.records] == [
        "state lost (evicted or expired?): timer lost is due but its resume message is gone "
        "from Redis; the wait or merge timeout it held never resumes, and its execution does "
        "not complete unless another branch ends it (deploy/RUNBOOK.md, RuneworkerStateLost)"
    ]


def test_leases_swept_are_told(caplog: pytest.LogCaptureFixture) -> None:
    store = scheduled(("a", NOW - 10), ("b", NOW - 5))
    store.claim_due(NOW - 60_000, 10, 1)  # leased long ago by a scheduler that died
    store.claim_due(NOW, 10, 1)
    with caplog.at_level("WARNING", logger="runeworker.scheduler"):
        Scheduler(store, Broker(store).publish).tick(NOW + 10)
    assert caplog.records[0].getMessage() == (
        "2 timer(s) leased and never acknowledged (their scheduler died, or its commit or "
        "Redis failed) are due again"
    )


def test_now_is_whole_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    got = now_ms()
    assert type(got) is int and before <= got <= time.time_ns() // 1_000_000


def test_one_holder_of_the_host_lock_at_a_time(tmp_path: Path) -> None:
    path = str(tmp_path / "scheduler.lock")
    first, second = HostLock(path), HostLock(path)
    assert first.acquire() and first.held and first.acquire()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # the owner's alone
    open_before = len(os.listdir("/proc/self/fd"))
    assert not second.acquire() and not second.held
    assert len(os.listdir("/proc/self/fd")) == open_before  # the refused try's file closed
    first.release()
    assert not first.held and second.acquire()
    second.release()


def test_a_lock_that_cannot_be_opened_is_told_once_until_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "run" / "scheduler.lock")  # its directory missing
    lock = HostLock(path)
    with caplog.at_level("ERROR", logger="runeworker.scheduler"):
        assert not lock.acquire() and not lock.acquire()
        (tmp_path / "run").mkdir()
        assert lock.acquire()
        lock.release()
        (tmp_path / "run" / "scheduler.lock").unlink()
        (tmp_path / "run").rmdir()
        assert not lock.acquire()
    told = f"cannot open the scheduler lock {path}: No such file or directory"
    assert [r.getMessage() for r in caplog.records] == [told, told]
