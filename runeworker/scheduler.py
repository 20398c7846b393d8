"""The timer scheduler: publishes the frozen messages of due wait timers to `workflow.resume`.

A tick (reference 2.10, made crash-safe): expired leases go back to the due set, up to `batch`
due timers are leased (moved from `scheduler:timers` to `scheduler:processing`, their payload
staying in `scheduler:payloads`), their payloads are published verbatim and committed in one
AMQP transaction, and only then acknowledged (forgotten). A scheduler that dies between the
claim and the acknowledgement leaves its timers leased: when the lease runs out, the next tick
of any scheduler fires them. Nothing is lost, and in normal operation nothing fires twice.

`scheduler_main` is the entry point of the scheduler child process the supervisor forks.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from runeworker.amqp import Broker
from runeworker.config import Config, mask_url
from runeworker.engine.state import Timer
from runeworker.errors import BrokerError, StateError
from runeworker.liveness import ChildState, Liveness
from runeworker.redis_state import RedisStore

log = logging.getLogger("runeworker.scheduler")

# the exit codes of runeworker.worker, which the supervisor understands
EXIT_OK = 0
EXIT_BOOT_FAILED = 3
BATCH = 100
LEASE_MS = 30_000
POLL_SECONDS = 0.5
_BOOT_ATTEMPTS = 5


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
    ) -> None:
        self.store = store
        self.publish = publish
        self.commit = commit
        self.batch = batch
        self.lease_ms = lease_ms

    def tick(self, now: int | None = None) -> int:
        """One round: sweep expired leases, claim due timers, publish, commit, acknowledge.
        Returns how many timers fired. A publish failure leaves the unpublished timers leased
        (the sweep retries them once the lease runs out) and is re-raised."""
        now = now_ms() if now is None else now
        swept = self.store.release_expired(now)
        if swept:
            log.warning("%d timer(s) whose scheduler died before firing them are due again", swept)
        published: list[str] = []
        failure: BrokerError | None = None
        for timer in self.store.claim_due(now, self.batch, self.lease_ms):
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


class SchedulerProcess:
    """The loop of the scheduler child: connect, tick every `POLL_SECONDS`, reconnect."""

    def __init__(self, cfg: Config, board: Liveness | None = None, slot: int = 0) -> None:
        self.cfg = cfg
        self.board = board
        self.slot = slot
        self.stopping = False
        self.fired = 0
        b = cfg.broker
        self.broker = Broker(
            b.url,
            exchange=b.exchange,
            heartbeat=b.heartbeat,
            connection_attempts=b.connection_attempts,
            retry_delay=b.retry_delay,
        )
        self.store = RedisStore.from_url(
            cfg.redis.url,
            prefix=cfg.redis.key_prefix,
            ttl_seconds=cfg.redis.key_ttl,
            socket_timeout=cfg.redis.socket_timeout,
        )
        self.scheduler = Scheduler(self.store, self._publish, commit=self.broker.commit)

    def _publish(self, body: bytes) -> None:
        self.broker.publish(self.cfg.broker.resume_queue, body)

    def stop(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        """Finish the current tick and exit (SIGTERM handler)."""
        self.stopping = True

    def run(self) -> int:
        """Boot, tick until asked to stop; returns the exit code."""
        self._beat(ChildState.BOOTING)
        if not self._boot():
            return EXIT_BOOT_FAILED
        delay = self.cfg.broker.retry_delay
        while not self.stopping:
            self._beat(ChildState.READY)
            try:
                self.fired += self.scheduler.tick()
                self.broker.poll(POLL_SECONDS)  # serves heartbeats while it waits
                delay = self.cfg.broker.retry_delay
            except (BrokerError, StateError) as exc:
                log.warning("scheduler lost a connection (%s); reconnecting in %.1fs", exc, delay)
                self.broker.close()
                self._sleep(delay)
                delay = min(delay * 2, self.cfg.broker.retry_delay_max)
                self._connect()
            if self.board is not None and os.getppid() == 1:
                log.error("supervisor is gone; stopping")
                self.stopping = True
        self._beat(ChildState.DRAINING)
        self.broker.close()
        self.store.close()
        return EXIT_OK

    def _boot(self) -> bool:
        delay = self.cfg.broker.retry_delay
        for attempt in range(1, _BOOT_ATTEMPTS + 1):
            if self._connect():
                return True
            if self.stopping:
                return False
            log.warning("scheduler boot attempt %d/%d failed", attempt, _BOOT_ATTEMPTS)
            self._sleep(delay)
            delay = min(delay * 2, self.cfg.broker.retry_delay_max)
        return False

    def _connect(self) -> bool:
        b = self.cfg.broker
        try:
            if not self.store.ping():
                raise StateError(f"Redis at {mask_url(self.cfg.redis.url)} does not answer")
            self.broker.connect()
            # declared here too, so that timers firing before any worker ran are not dropped
            self.broker.declare([b.resume_queue], b.dead_letter_queue)
        except (BrokerError, StateError) as exc:
            log.warning("%s", exc)
            self.broker.close()
            return False
        log.info("scheduler %d publishing due timers to %s", os.getpid(), b.resume_queue)
        return True

    def _beat(self, state: ChildState) -> None:
        if self.board is not None:
            self.board.beat(self.slot, state, self.fired)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            self._beat(ChildState.BOOTING)
            time.sleep(min(0.2, seconds))


def scheduler_main(cfg: Config, board: Liveness, slot: int) -> int:
    """Entry point of the forked scheduler child (a supervisor target like `child_main`)."""
    process = SchedulerProcess(cfg, board, slot)
    signal.signal(signal.SIGTERM, process.stop)
    return process.run()
