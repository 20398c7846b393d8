"""One worker child: connect after fork, consume, execute one node per delivery, commit.

Each delivery becomes one atomic step: the statuses, the next messages or the completion,
any dead-letter copy and the ack are published in one AMQP transaction. Several buffered
deliveries are handled back to back and committed together (`broker.batch_max`), which
keeps the broker round trips per node below one under load.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from types import FrameType

import psutil

from runeworker import metrics
from runeworker.adapters.amqp import (
    COMPLETION_QUEUE,
    MIRROR_QUEUE,
    REPLAYED_HEADER,
    STATUS_QUEUE,
    Broker,
    Delivery,
)
from runeworker.adapters.redis_state import RedisStore
from runeworker.child.scheduler import POLL_SECONDS, HostLock, Scheduler
from runeworker.child.stepper import Stepper
from runeworker.config import Config, mask_url, to_node_settings
from runeworker.engine.executor import Executor
from runeworker.engine.messages import (
    NodeStatusMessage,
    decode_execution,
    encode,
    masked_mirror,
)
from runeworker.engine.outbox import Outbox
from runeworker.engine.rejection import reject
from runeworker.errors import BrokerError, MessageError, StateError
from runeworker.metrics import tally
from runeworker.supervisor.children import EXIT_BOOT_FAILED, EXIT_OK, EXIT_RECYCLE
from runeworker.supervisor.liveness import ChildState, Liveness

log = logging.getLogger("runeworker.worker")

_BOOT_ATTEMPTS = 5


class Worker:
    """The consume loop of one child process."""

    def __init__(
        self,
        cfg: Config,
        board: Liveness | None = None,
        slot: int = 0,
        *,
        scheduler_lock: str | None = None,
    ) -> None:
        """`scheduler_lock`: path of the host lock; the child holding it also fires due wait
        timers. None = this worker never runs the scheduler."""
        self.cfg = cfg
        self.board = board
        self.slot = slot
        self.stopping = False
        self.handled = 0
        self.recycle_reason = ""
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
        self.executor = Executor(
            self.store, settings=to_node_settings(cfg), max_steps=cfg.worker.max_steps
        )
        self.stepper = Stepper(self.executor)
        self.scheduler = Scheduler(self.store, self._publish_resume, commit=self._commit)
        self._lock = HostLock(scheduler_lock) if scheduler_lock else None
        self._next_tick = 0.0
        self.limit = _jittered(cfg.worker.max_messages, cfg.worker.max_messages_jitter)
        self._process = psutil.Process()
        self._step_started = 0.0

    # -- lifecycle ----------------------------------------------------------------------

    def run(self) -> int:
        """Boot, consume until asked to stop (or recycle), drain; returns the exit code."""
        self._beat(ChildState.BOOTING)
        if not self._boot():
            return EXIT_BOOT_FAILED
        metrics.prime(
            queues=[self.cfg.broker.queue, self.cfg.broker.resume_queue],
            node_types=self.executor.specs,
        )
        self._beat(ChildState.READY)
        tally.start()
        while not self.stopping:
            try:
                self._serve()
            except (BrokerError, StateError) as exc:
                if self.stopping:
                    break
                log.warning("connection lost (%s); reconnecting", exc)
                metrics.broker_reconnect()
                self.broker.close()
                self._reconnect()
        self._drain()
        return EXIT_RECYCLE if self.recycle_reason else EXIT_OK

    def _reconnect(self) -> None:
        """Retry, with backoff, until RabbitMQ and Redis both answer or we are asked to stop:
        consuming again while Redis is down would only hand every delivery back."""
        delay = self.cfg.broker.retry_delay
        while not self.stopping:
            self._sleep(delay)
            if self._connect():
                return
            delay = min(delay * 2, self.cfg.broker.retry_delay_max)

    def _boot(self) -> bool:
        delay = self.cfg.broker.retry_delay
        for attempt in range(1, _BOOT_ATTEMPTS + 1):
            if self._connect():
                return True
            if self.stopping:
                return False
            log.warning(
                "boot attempt %d/%d failed; retrying in %.1fs", attempt, _BOOT_ATTEMPTS, delay
            )
            self._sleep(delay)
            delay = min(delay * 2, self.cfg.broker.retry_delay_max)
        return False

    def _connect(self) -> bool:
        b = self.cfg.broker
        try:
            if not self.store.ping():
                raise StateError(f"Redis at {mask_url(self.cfg.redis.url)} does not answer")
            self.broker.connect()
            bound = [b.queue, b.resume_queue, STATUS_QUEUE, COMPLETION_QUEUE, MIRROR_QUEUE]
            self.broker.declare(bound, b.dead_letter_queue)
            self.broker.consume([b.queue, b.resume_queue], b.prefetch)
        except (BrokerError, StateError) as exc:
            log.warning("%s", exc)
            self.broker.close()
            return False
        log.info(
            "child %d consuming %s (prefetch %d) on %s",
            os.getpid(),
            b.queue,
            b.prefetch,
            mask_url(b.url),
        )
        return True

    def stop(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        """Ask the loop to drain (SIGTERM handler; tests call it directly)."""
        self.stopping = True

    def _drain(self) -> None:
        """Stop consuming, hand buffered deliveries back, close. In-flight work is already
        committed: the loop only checks `stopping` between steps."""
        self._beat(ChildState.DRAINING)
        try:
            self.broker.stop_consuming()
            self.broker.poll(0)  # deliveries already on the wire land in `pending`
            tags = [d.tag for d in self.broker.pending]
            if tags:
                self.broker.requeue(tags)
                self.broker.commit()
                log.info("handed %d prefetched deliveries back", len(tags))
        except BrokerError as exc:
            log.info("drain without a connection (%s); the broker requeues unacked work", exc)
        self.broker.close()
        self.stepper.close()
        self.store.close()
        tally.stop()

    # -- the loop -----------------------------------------------------------------------

    def _serve(self) -> None:
        pending = self.broker.pending
        batch_max = self.cfg.broker.batch_max
        while not self.stopping:
            self._beat(ChildState.READY)
            self._tick_scheduler()
            if not pending:
                self.broker.poll(POLL_SECONDS)
                self._check_parent()
                continue
            done = 0
            while pending and done < batch_max and not self.stopping:
                # A redelivered message may be poison that kills this process: it gets a
                # transaction of its own, so that its crash cannot roll back other work.
                suspect = pending[0].redelivered
                if suspect and done:
                    break
                self._handle(pending.popleft())
                done += 1
                if suspect:
                    break
            self._commit()
            self._after(done)

    def _handle(self, d: Delivery) -> None:
        metrics.delivery(d.queue, "consumed")
        metrics.message_handled()
        metrics.inflight(1)
        self._step_started = time.monotonic()
        try:
            cap = self.cfg.broker.max_message_bytes
            if cap and len(d.body) > cap:
                reason = f"message of {len(d.body)} bytes exceeds broker.max_message_bytes {cap}"
                self._publish_rejection(d, reject(self.executor, d.body, reason))
                return
            try:
                msg = decode_execution(d.body)
            except MessageError as exc:
                self._publish_rejection(d, reject(self.executor, d.body, str(exc)))
                return
            limit = self.cfg.broker.max_deliveries
            # delivery n counts n - 1 redeliveries: the one after `limit` failed ones is refused
            if d.redelivered and self.store.count_attempt(d.body) >= limit:
                reason = f"message was delivered {limit} times without completing; poison"
                self._publish_rejection(d, reject(self.executor, d.body, reason, msg))
                return
            if not msg.is_worker_initiated:
                self.broker.publish(MIRROR_QUEUE, masked_mirror(msg))
            try:
                resumed = d.queue == self.cfg.broker.resume_queue
                replayed = bool(d.headers.get(REPLAYED_HEADER))
                outbox = self.stepper.run(
                    msg, self._publish_running, self._idle, resumed, replayed=replayed
                )
            except (BrokerError, StateError):
                raise
            except Exception as exc:  # an engine bug fails this message, never the child
                log.exception("step of execution %s failed", msg.execution_id)
                reason = f"cannot execute node {msg.current_node}: {type(exc).__name__}: {exc}"
                self._publish_rejection(d, reject(self.executor, d.body, reason))
                return
            if outbox.dead_letter:
                self._dead_letter(d, outbox.dead_letter)
            self._publish_result(outbox)
            self.broker.ack(d.tag)
            metrics.delivery(d.queue, "acked")
        finally:
            self._step_started = 0.0
            metrics.inflight(-1)

    def _publish_running(self, status: NodeStatusMessage, blocking: bool) -> None:
        self.broker.publish(STATUS_QUEUE, encode(status))
        if blocking:  # the node may block: its `running` must be visible before side effects
            self._commit()

    def _commit(self) -> None:
        """Commit the transaction, after the state writes the steps in it kept back."""
        self.store.flush()
        metrics.commit_observed(self.broker.commit())
        tally.flush()  # metrics count what is committed

    def _publish_result(self, outbox: Outbox) -> None:
        for status in outbox.statuses:
            self.broker.publish(STATUS_QUEUE, encode(status))
        for nxt in outbox.messages:
            self.broker.publish(self.cfg.broker.queue, encode(nxt))
        if outbox.completion is not None:
            self.broker.publish(COMPLETION_QUEUE, encode(outbox.completion))
            metrics.completion(outbox.completion.status)
        report = outbox.report
        if report.outcome:
            metrics.node_done(report.node_type or "unknown", report.outcome, report.seconds)

    def _publish_rejection(self, d: Delivery, outbox: Outbox) -> None:
        log.error("rejected delivery from %s: %s", d.queue, outbox.dead_letter)
        self._dead_letter(d, outbox.dead_letter)
        self._publish_result(outbox)
        self.broker.ack(d.tag)
        metrics.delivery(d.queue, "rejected")

    def _dead_letter(self, d: Delivery, reason: str) -> None:
        headers = {
            "x-runeworker-reason": reason[:1000],
            "x-runeworker-queue": d.queue,
            "x-runeworker-redelivered": d.redelivered,
            "x-runeworker-failed-at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.broker.publish(
            self.cfg.broker.dead_letter_queue,
            d.body,
            exchange="",
            headers=headers,
            content_type=d.content_type,  # the raw bytes, as they came
        )
        metrics.delivery(d.queue, "dead_lettered")

    # -- housekeeping -------------------------------------------------------------------

    def _tick_scheduler(self) -> None:
        """Fire due wait timers, at most every POLL_SECONDS, if this child holds the lock.
        Runs between batches, so its transaction holds nothing else."""
        now = time.monotonic()
        if self._lock is None or now < self._next_tick:
            return
        self._next_tick = now + POLL_SECONDS
        if self._lock.acquire():
            self.scheduler.tick()

    def _publish_resume(self, body: bytes) -> None:
        self.broker.publish(self.cfg.broker.resume_queue, body)

    def _idle(self) -> None:
        """Called while a node runs: serve heartbeats, report liveness from the step start
        (a node stuck for longer than `worker.timeout` lets the supervisor kill us)."""
        self.broker.poll(0)
        self._beat(ChildState.BUSY)

    def _after(self, done: int) -> None:
        self.handled += done
        if self.limit and self.handled >= self.limit:
            self._recycle(f"handled {self.handled} messages (max_messages {self.limit})")
        limit_mb = self.cfg.worker.max_memory_mb
        if limit_mb and self._process.memory_info().rss > limit_mb * 1024 * 1024:
            self._recycle(f"RSS above max_memory_mb {limit_mb}")

    def _recycle(self, reason: str) -> None:
        log.info("child %d recycling: %s", os.getpid(), reason)
        self.recycle_reason = reason
        self.stopping = True

    def _beat(self, state: ChildState) -> None:
        if self.board is None:
            return
        at = self._step_started if state is ChildState.BUSY else None
        self.board.beat(self.slot, state, self.handled, at=at)

    def _check_parent(self) -> None:
        if self.board is not None and os.getppid() == 1:
            log.error("supervisor is gone; stopping")
            self.stopping = True

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            self._beat(ChildState.BOOTING)
            time.sleep(min(0.2, seconds))


def _jittered(limit: int, jitter: float) -> int:
    """`max_messages` plus up to `jitter` of it, so children do not all recycle at once."""
    if limit <= 0:
        return 0
    return limit + random.randint(0, int(limit * jitter))


def child_main(
    cfg: Config, board: Liveness, slot: int, *, scheduler_lock: str | None = None
) -> int:
    """Entry point of a forked child (the supervisor's target; serve binds `scheduler_lock`)."""
    worker = Worker(cfg, board, slot, scheduler_lock=scheduler_lock)
    signal.signal(signal.SIGTERM, worker.stop)
    return worker.run()
