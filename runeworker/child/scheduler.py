"""The timer scheduler: publishes the frozen messages of due wait timers to `workflow.resume`.

A tick (services/rune-worker/pkg/scheduler/scheduler.go made crash-safe; docs/WIRE.md section 7):
expired leases go back to the due set, up to `batch` due timers are leased (moved from
`scheduler:timers` to `scheduler:processing`, their payload staying in `scheduler:payloads`), their
payloads are published verbatim and committed in one AMQP transaction, and only then acknowledged
(forgotten). A scheduler that dies between the claim and the acknowledgement leaves its timers
leased: when the lease runs out, the next tick of any scheduler fires them. Nothing is lost, and in
normal operation nothing fires twice. A timer whose resume was committed but not acknowledged (the
commit in doubt, Redis lost or the child killed after it) fires twice: the receiving child looks
up the receipt of every resume message, so the second copy publishes nothing
(runeworker/child/receipts.py).

The scheduler runs inside a worker child: the child holding the host lock (`HostLock`) ticks
it between deliveries, through its own transactional channel. One per supervisor, no extra
process, and a dead holder's lock is released by the kernel. A holder whose node blocks (http,
smtp, agent) lets the lock go while the node runs, so that another child fires the timers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from runeworker.engine.state import Timer
from runeworker.errors import BrokerError

log = logging.getLogger("runeworker.scheduler")

BATCH = 100
LEASE_MS = 30_000
POLL_SECONDS = 0.5


class TimerStore(Protocol):
    """The timer half of `runeworker.engine.state.StateStore`."""

    def release_expired(self, now_ms: int) -> int: ...

    def claim_due(self, now_ms: int, limit: int, lease_ms: int) -> list[Timer]: ...

    def ack_timer(self, timer_id: str) -> None: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Scheduler:
    """Fires due timers through `publish`; `commit` (if given) makes the publishes durable
    before the timers are acknowledged."""

    def __init__(
        self,
        store: TimerStore,
        publish: Callable[[bytes], None],
        *,
        commit: Callable[[], object] | None = None,
        batch: int = BATCH,
        lease_ms: int = LEASE_MS,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """`on_lost`: called for each due timer whose resume message is gone (counted as
        `runeworker_state_lost_total{what="timer"}`)."""
        self.store = store
        self.publish = publish
        self.commit = commit
        self.batch = batch
        self.lease_ms = lease_ms
        self.on_lost = on_lost

    def tick(self, now: int | None = None) -> int:
        """One round: sweep expired leases, claim due timers, publish, commit, acknowledge.
        Returns how many timers fired. A publish failure leaves the unpublished timers leased
        (the sweep retries them once the lease runs out) and is re-raised."""
        now = now_ms() if now is None else now
        swept = self.store.release_expired(now)
        if swept:
            log.warning(
                "%d timer(s) leased and never acknowledged (their scheduler died, or its commit "
                "or Redis failed) are due again",
                swept,
            )
        published: list[str] = []
        failure: BrokerError | None = None
        for timer in self.store.claim_due(now, self.batch, self.lease_ms):
            if not timer.payload:
                self._lost(timer.timer_id)
                continue
            try:
                self.publish(timer.payload)
            except BrokerError as exc:
                failure = exc
                break
            published.append(timer.timer_id)
        if published and self.commit is not None:
            self.commit()
        for timer_id in published:
            self.store.ack_timer(timer_id)
        if failure is not None:
            raise failure
        return len(published)

    def _lost(self, timer_id: str) -> None:
        """A due timer whose resume message is gone from Redis (its payloads hash evicted or
        flushed): nothing can be fired, and which execution it belonged to is gone with it."""
        log.error(
            "state lost (evicted or expired?): timer %s is due but its resume message is gone "
            "from Redis; the wait or merge timeout it held never resumes, and its execution "
            "does not complete unless another branch ends it (deploy/RUNBOOK.md, "
            "RuneworkerStateLost)",
            timer_id,
        )
        if self.on_lost is not None:
            self.on_lost()


class HostLock:
    """An exclusive, non-blocking `flock` on a file: whoever holds it runs the scheduler.

    The supervisor hands every child the same path, so exactly one child of the host ticks
    the scheduler at a time. The kernel releases the lock when its holder dies (even by
    SIGKILL), and another child takes over on its next attempt; timers it had leased fire
    again once their lease runs out."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._warned = False  # the lock file could not be opened (said once until it can)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # its directory deleted or unwritable: no scheduler here, no crash
            if not self._warned:
                log.error("cannot open the scheduler lock %s: %s", self.path, exc.strerror or exc)
                self._warned = True
            return False
        self._warned = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
