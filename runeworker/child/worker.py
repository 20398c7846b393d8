"""One worker child: connect after fork, consume, execute one node per delivery, commit.

Each delivery becomes one atomic step: the statuses, the next messages or the completion,
any dead-letter copy and the ack are published in one AMQP transaction. Several buffered
deliveries are handled back to back and committed together (`broker.batch_max`), which
keeps the broker round trips per node below one under load.

Bringing RabbitMQ and Redis up and waiting for them is `runeworker.child.services`; keeping and
publishing again a commit whose outcome is unknown, `runeworker.child.doubts`.

The broker, the state store and the observers of the loop are injected
(`runeworker.child.ports`, `runeworker.child.hooks`): `child_main` wires RabbitMQ, Redis and
the Prometheus subscriber; the unit tests wire in-memory stand-ins and a recorder.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections import deque
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
    Endpoint,
    delivery_count,
)
from runeworker.adapters.redis_state import RedisStore
from runeworker.child.doubts import DoubtBook, Resender
from runeworker.child.hooks import NoHooks, WorkerHooks
from runeworker.child.ports import TransactionalBroker, WorkerStore
from runeworker.child.receipts import Parking, Receipt, ReceiptBook, receipt_of, resent
from runeworker.child.scheduler import POLL_SECONDS, HostLock, Scheduler
from runeworker.child.services import Services, handshake_timeout, redis_timeouts
from runeworker.child.stepper import Stepper
from runeworker.config import Config, to_node_settings
from runeworker.engine.executor import Executor
from runeworker.engine.messages import (
    NodeExecutionMessage,
    NodeStatusMessage,
    decode_execution,
    encode,
    encode_execution,
    masked_mirror,
)
from runeworker.engine.outbox import Outbox
from runeworker.engine.registry import NO_METER, Meter
from runeworker.engine.rejection import reject
from runeworker.engine.state import Verdict
from runeworker.errors import BrokerError, CommitInDoubt, MessageError, StateError
from runeworker.metrics import NodeMeter
from runeworker.metrics.subscriber import WorkerMetrics
from runeworker.supervisor.children import EXIT_BOOT_FAILED, EXIT_OK, EXIT_RECYCLE
from runeworker.supervisor.liveness import ChildState, Liveness

log = logging.getLogger("runeworker.worker")

RSS_CHECK_EVERY = 1.0  # seconds between two looks at the RSS (`worker.max_memory_mb`)
# A step's beat may be this share of worker.timeout older than its start (a beat costs 4 K
# instructions: not one per step): worker.node_timeout's 80 % plus this stays under the timeout.
BEAT_SHARE = 0.05


class Worker:
    """The consume loop of one child process."""

    def __init__(
        self,
        cfg: Config,
        board: Liveness | None = None,
        slot: int = 0,
        *,
        scheduler_lock: str | None = None,
        broker: TransactionalBroker | None = None,
        store: WorkerStore | None = None,
        hooks: WorkerHooks | None = None,
        meter: Meter = NO_METER,
    ) -> None:
        """`scheduler_lock`: path of the host lock; the child holding it also fires due wait
        timers. None = this worker never runs the scheduler. `broker` and `store` default to
        RabbitMQ and Redis as `cfg` describes them; `hooks` (the loop's observer) to none;
        `meter` (where nodes report their own measurements) to nowhere."""
        self.cfg = cfg
        self.board = board
        self.slot = slot
        self.stopping = False
        self.handled = 0
        self.recycle_reason = ""
        self.hooks: WorkerHooks = hooks or NoHooks()
        self.broker: TransactionalBroker = broker or Broker.of(
            cfg.broker, handshake_timeout=handshake_timeout(cfg.worker.timeout)
        )
        self.store: WorkerStore = store or RedisStore.from_config(
            cfg.redis, **redis_timeouts(cfg.redis.socket_timeout, cfg.worker.timeout)
        )
        self.executor = Executor(
            self.store,
            settings=to_node_settings(cfg),
            max_steps=cfg.worker.max_steps,
            meter=meter,
        )
        self.stepper = Stepper(self.executor)
        self.scheduler = Scheduler(
            self.store, self._publish_resume, commit=self._commit, on_lost=self._timer_lost
        )
        self._lock = HostLock(scheduler_lock) if scheduler_lock else None
        self._next_tick = 0.0
        self.limit = _jittered(cfg.worker.max_messages, cfg.worker.max_messages_jitter)
        self._process = psutil.Process()
        self._next_rss_check = 0.0  # `worker.max_memory_mb`: the first batch is checked
        self._step_started = 0.0
        # what the last beat said (the supervisor times a child from it); a step beats at its
        # start when that is older than BEAT_SHARE of worker.timeout (a batch beats once)
        self._beaten_at = 0.0
        self._beat_after = BEAT_SHARE * cfg.worker.timeout
        self._current: Delivery | None = None  # the delivery whose step runs now
        self._spared: Delivery | None = None  # the in-flight delivery already spared
        self.book = ReceiptBook(self.store)  # steps whose outcome is published
        self.receipts = self.book.state
        self.parking = Parking()  # possible copies waiting for their original's receipt
        # a commit in doubt kept in Redis until resent, and other children's left there
        # (`doubts`); what this child does with them (`resender`); RabbitMQ and Redis brought
        # up and waited for (`services`)
        self.doubts = DoubtBook(self.store.doubts)
        self.resender = Resender(
            self.broker, self.book, self.doubts, self.hooks, retry_delay=cfg.broker.retry_delay
        )
        self.services = Services(
            cfg,
            self.broker,
            self.store,
            self.hooks,
            self.doubts,
            slot=slot,
            beat=self._beat,
            note=self._note,
            stopping=lambda: self.stopping,
            check_parent=self._check_parent,
            before_consuming=self.resender.resend,
        )
        # A quorum queue's new leader may hand out again, unflagged, a message whose delivery
        # by the old leader it never learnt of: there every delivery is looked up.
        self._quorum = cfg.broker.queue_type == "quorum"
        self._look_up_all = self._quorum
        # RabbitMQ's flow control (runeworker/adapters/amqp.py): when an alarm blocked our
        # publishes (0: not blocked), and the deliveries of the batch being stepped
        self._blocked_at = 0.0
        self._batch: list[Delivery] = []
        self._batch_spared = False
        self._ack_timeout_told = False
        # a delivery buffered longer than this may reach the broker's consumer_timeout before
        # its step is acknowledged (one step to wait for, its own to run): it is handed back
        acks = cfg.broker.consumer_timeout
        self._stale_after = acks - 2 * cfg.worker.timeout if acks else 0.0
        self.broker.watch_flow(self._on_flow)
        self._commits = 0  # commits done: which steps of a batch Redis failed are committed
        # delivery tag -> its attempt count, while its batch may be stepped again (a step
        # Redis refused runs again on the same delivery: one attempt, counted once)
        self._counted: dict[int, int] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def run(self) -> int:
        """Connect, consume until asked to stop (or recycle), drain; returns the exit code."""
        self._beat(ChildState.BOOTING)
        if not self.services.connect():
            return EXIT_OK  # asked to stop before RabbitMQ and Redis ever answered
        self.hooks.on_ready(
            [self.cfg.broker.queue, self.cfg.broker.resume_queue], self.executor.specs
        )
        self._beat(ChildState.READY)
        while not self.stopping:
            try:
                self._serve()
            except (BrokerError, StateError) as exc:
                if self.broker.ack_timeout is not None:
                    self._acks_timed_out()
                self.receipts.discarded()  # a commit in doubt has moved them on already
                self.parking.clear()  # their tags die with the connection
                self._counted.clear()
                self.book.write_quietly()  # before the broker is back, if Redis answers
                if isinstance(exc, StateError):  # a step, the attempt count or the scheduler
                    self.hooks.on_state_error()
                if self.stopping:
                    break
                log.warning("connection lost (%s); reconnecting", exc)
                self.hooks.on_reconnect()
                self.broker.close()
                self.services.connect()
        self._drain()
        return EXIT_RECYCLE if self.recycle_reason else EXIT_OK

    def stop(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        """Ask the loop to drain (SIGTERM handler; tests call it directly)."""
        self.stopping = True

    def _drain(self) -> None:
        """Stop consuming, hand buffered deliveries back, close. In-flight work is already
        committed: the loop only checks `stopping` between steps. What is handed back comes
        back redelivered: it is spared first, so that drains never make a healthy message
        look like poison (`broker.max_deliveries`)."""
        self._beat(ChildState.DRAINING)
        self.broker.pending.extend(self.parking.take_all())  # handed back with the rest
        try:
            self.broker.stop_consuming()
            self.broker.poll(0)  # deliveries already on the wire land in `pending`
            handed = list(self.broker.pending)
            if handed:
                self._spare([d.body for d in handed])
                self.broker.requeue([d.tag for d in handed])
                self.broker.commit()
                for d in handed:
                    self.hooks.on_delivery(d.queue, "requeued")
                log.info("handed %d prefetched deliveries back", len(handed))
        except BrokerError as exc:
            log.info("drain without a connection (%s); the broker requeues unacked work", exc)
        # stopped while a commit was in doubt: one last try (with publisher confirms its
        # receipts are written before the confirms, so only the kept copy says so)
        if self.receipts.doubted or self.doubts.open:
            self.resender.settle_before_exit()
        self.book.write_quietly()  # the last commits' receipts, not yet written
        self.broker.close()
        self.stepper.close()
        self.store.close()
        self.hooks.on_stop()

    # -- the loop -----------------------------------------------------------------------

    def _serve(self) -> None:
        pending = self.broker.pending
        batch_max = self.cfg.broker.batch_max
        full = min(batch_max, self.cfg.broker.prefetch)  # a batch this size: a backlog, maybe
        while not self.stopping:
            self._beat(ChildState.READY)
            now = time.monotonic()
            self._tick_scheduler(now)
            self.resender.adopt()
            self.parking.release(pending)
            if not pending:
                # idle: the due receipts are written once RECEIPTS_EVERY old, not at once
                # (the commit just freed the prefetch: the next deliveries are on their way)
                wait = self.parking.wait_seconds(POLL_SECONDS)
                due_in = self.book.due_in()
                if due_in == 0:
                    try:
                        self.book.look_up([], write=True)
                    except StateError as exc:  # kept due; nothing else to hold meanwhile
                        self.hooks.on_state_error()
                        self.services.wait_for_writes(str(exc), 0)
                        continue
                elif due_in is not None:
                    wait = min(wait, due_in)
                self.broker.poll(wait)
                if not pending:  # nothing came: what was committed may be reported now
                    self.hooks.on_idle()
                self._check_parent()
                continue
            if self._stale_after and pending[0].at and now - pending[0].at > self._stale_after:
                self._hand_back_stale(now)
                continue
            batch = self._batch = _batch(pending, batch_max)
            self._batch_spared = False
            done = self._run_batch(batch)
            if done is None:
                continue  # parked, or Redis refused a write and took it back
            if len(batch) < full:  # no backlog: what was committed may be reported now
                self.hooks.on_idle()
            self._after(done)

    def _run_batch(self, batch: list[Delivery]) -> int | None:
        """Step `batch` and commit; returns how many were stepped. None when its first
        delivery waits (`Parking`), or when Redis refused a write or did not answer
        (StateError): then the open transaction is rolled back, the deliveries not committed
        go back to the front of `pending`, still unacknowledged, and they run again once
        Redis takes writes (`Services.wait_for_writes`). Handing them back to RabbitMQ
        instead would count each as an attempt (`broker.max_deliveries`: healthy work
        dead-lettered as poison after a full or read-only Redis) and spin the children
        through reconnections as long as Redis refuses."""
        pending = self.broker.pending
        finished: list[tuple[Delivery, int]] = []  # each stepped delivery, commits before
        try:
            read = [self._read(d) for d in batch]
            keys = [self._receipt(d, got) for d, got in zip(batch, read, strict=True)]
            seen = self.book.look_up([k if self._look_up_all or self._to_look_up(d) else None
                                      for d, k in zip(batch, keys, strict=True)])  # fmt: skip
            first = batch[0]  # a possible copy is alone in its batch (`_batch`)
            if (
                keys[0] is not None
                and _may_be_a_copy(first)
                and self.parking.park(first, found=seen[0])
            ):
                return None  # its original may still be claiming its receipt: it waits, once
            _copies_within(keys, seen)
            self._mirror([got for got, dup in zip(read, seen, strict=True) if not dup])
            done = 0
            stale_after = self._stale_after
            for d, got, key, dup in zip(batch, read, keys, seen, strict=True):
                if self.stopping:  # asked to stop between two steps: the rest goes back
                    pending.extendleft(reversed(batch[done:]))
                    break
                if stale_after and d.at and time.monotonic() - d.at > stale_after:
                    # long steps before it (blocking nodes): the rest is handed back after
                    # this batch's commit (`_hand_back_stale`), before their acks are late
                    pending.extendleft(reversed(batch[done:]))
                    break
                self._handle(d, got, key, dup)
                finished.append((d, self._commits))
                done += 1
            self._commit()
        except StateError as exc:
            # a blocking node's `running` commits the steps before it in the batch: those
            # are done; the rest (the one that failed included) is stepped again
            committed = {id(d) for d, commits in finished if commits < self._commits}
            self.handled += len(committed)  # done: `_after` never sees this batch
            queued = {id(d) for d in pending}
            again = [d for d in batch if id(d) not in committed and id(d) not in queued]
            self._refused(again, exc)
            return None
        self._counted.clear()
        return done

    def _refused(self, again: list[Delivery], exc: StateError) -> None:
        """Redis failed a step of the batch: roll its transaction back, keep `again` (the
        deliveries it did not commit) for a second run, and wait until Redis takes writes."""
        self.broker.rollback()  # BrokerError: the connection went too; `run` reconnects
        self.receipts.discarded()  # their deliveries run again
        self.broker.pending.extendleft(reversed(again))
        self.hooks.on_state_error()
        self.services.wait_for_writes(str(exc), len(again))

    def _to_look_up(self, d: Delivery) -> bool:
        """Whether the step of `d` may already be published (`_may_be_a_copy`). Any resume
        message may be: a timer whose resume was committed fires again when its scheduler
        could not acknowledge it (a commit in doubt, which the resend publishes anyway; Redis
        lost or the child killed after the commit): it stays leased and fires once more when
        the lease runs out, and its resumed wait would run on and complete a second time."""
        return _may_be_a_copy(d) or d.queue == self.cfg.broker.resume_queue

    def _receipt(self, d: Delivery, msg: NodeExecutionMessage | str) -> Receipt | None:
        """The receipt a delivery's step leaves; None for a message that cannot be read and a
        replayed dead letter (replaying asks for the step to run again)."""
        if isinstance(msg, str) or d.headers.get(REPLAYED_HEADER):
            return None
        return receipt_of(d.queue, msg)

    def _read(self, d: Delivery) -> NodeExecutionMessage | str:
        """The message of a delivery, or why it cannot be read (too large, undecodable)."""
        cap = self.cfg.broker.max_message_bytes
        if cap and len(d.body) > cap:
            return f"message of {len(d.body)} bytes exceeds broker.max_message_bytes {cap}"
        try:
            return decode_execution(d.body)
        except MessageError as exc:
            return str(exc)
        except Exception as exc:  # a decoder bug fails this message, never the child
            log.exception("cannot read a delivery of %s", d.queue)
            return f"cannot read message: {type(exc).__name__}: {exc}"

    def _mirror(self, read: list[NodeExecutionMessage | str]) -> None:
        """Mirror the start messages of a batch and commit the mirrors on their own. RTES
        learns of an execution from its mirror and drops the statuses of one it does not know,
        and RabbitMQ makes a transaction visible queue by queue, so the mirror must be
        committed before the transaction holding the first statuses (docs/WIRE.md section 6).
        One commit per batch, not per start message."""
        mirrored = False
        for msg in read:
            if not isinstance(msg, str) and not msg.is_worker_initiated:
                self.broker.publish(MIRROR_QUEUE, masked_mirror(msg))
                mirrored = True
        if mirrored:
            self._commit()

    def _handle(
        self, d: Delivery, msg: NodeExecutionMessage | str, key: Receipt | None, seen: bool
    ) -> None:
        """One delivery's step; `key` is its receipt, `seen` whether it has one already."""
        self.hooks.on_delivery(d.queue, "consumed")
        self.hooks.on_inflight(1)
        self._step_started = now = time.monotonic()
        if self.board is not None and now - self._beaten_at > self._beat_after:
            # worker.timeout counts from this step's start, not from the batch's (an inline
            # step beat not at all: after a slow one its child was killed, however soon
            # worker.node_timeout would have stopped it)
            self._beat(ChildState.BUSY)
        self._current = d
        try:
            if seen and not isinstance(msg, str):
                log.info(
                    "delivery of node %s of execution %s from %s: its step's outcome is "
                    "already published; acked, nothing published again",
                    msg.current_node,
                    msg.execution_id,
                    d.queue,
                )
                self.broker.ack(d.tag)
                self.hooks.on_delivery(d.queue, "duplicate")
                return
            if isinstance(msg, str):
                self._publish_rejection(d, reject(self.executor, d.body, msg))
                return
            if d.redelivered and self._attempts(d) >= self.cfg.broker.max_deliveries:
                limit = self.cfg.broker.max_deliveries
                reason = f"message was delivered {limit} times without completing; poison"
                self._publish_rejection(d, reject(self.executor, d.body, reason, msg))
                return
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
            if outbox.report.verdict is Verdict.STALE:
                # nothing published, and the token may become live yet: a resume that came
                # before its wait parked is fired again, the same bytes (`Turn._resume_early`)
                key = None
            elif resumed and outbox.report.verdict is Verdict.REPLAY and self._first_copy(d):
                key = None  # the outcome is the other step's: it may not be committed yet
                self._fired_again(d, msg)
                return
            if outbox.dead_letter:
                self._dead_letter(d, outbox.dead_letter)
            self._publish_result(outbox)
            self.broker.ack(d.tag)
            self.hooks.on_delivery(d.queue, "acked")
        finally:
            if key is not None and not seen:  # acked in the open transaction (or it is lost)
                self.receipts.acked(key)
            self._step_started = 0.0
            self._current = None
            self.hooks.on_inflight(-1)

    def _first_copy(self, d: Delivery) -> bool:
        """Whether `d` is the first delivery of its message: neither flagged `redelivered` nor
        published again after a commit in doubt, on a classic queue (a quorum queue's new
        leader may hand out a copy unflagged)."""
        return not (self._quorum or _may_be_a_copy(d))

    def _fired_again(self, d: Delivery, msg: NodeExecutionMessage) -> None:
        """A timer fired a second time (`Scheduler`: its first resume was committed, its
        acknowledgement was not) and the first resume's step already ran, in another child,
        its receipt not written yet: its outcome is that step's to publish (a failed commit
        of it is redelivered, flagged, and replays it). Acked; nothing published."""
        log.info(
            "resume of node %s of execution %s: its timer fired again after its step was "
            "taken; acked, nothing published",
            msg.current_node,
            msg.execution_id,
        )
        self.broker.ack(d.tag)
        self.hooks.on_delivery(d.queue, "duplicate")

    def _attempts(self, d: Delivery) -> int:
        """The failed deliveries before this redelivered one: delivery n counts n - 1, so the
        one after `broker.max_deliveries` failed ones is refused. A quorum queue counts them
        itself (`x-delivery-count`, kept by the queue across nodes and reconnections); a
        classic queue only flags a redelivery, and the count is kept in Redis (an
        `x-delivery-count` there came with the message from its publisher: no count at all)."""
        counted = delivery_count(d.headers) if self._quorum else None
        if counted is not None:
            return counted
        if (known := self._counted.get(d.tag)) is not None:  # stepped again after a refusal
            return known
        counted = self._counted[d.tag] = self.store.count_attempt(d.body)
        return counted

    def _publish_running(self, status: NodeStatusMessage, blocking: bool) -> None:
        self.broker.publish(STATUS_QUEUE, encode(status))
        if blocking:  # the node may block: its `running` must be visible before side effects
            self._commit()

    def _commit(self) -> None:
        """Commit the transaction, after the state writes the steps in it kept back."""
        self.store.flush()
        try:
            seconds = self.broker.commit(self._confirmed)
        except CommitInDoubt:
            self.resender.in_doubt()  # kept, and its deliveries' receipts claimed
            raise
        self._commits += 1
        self.hooks.on_commit(seconds)  # observers count what is committed

    def _confirmed(self, before_acks: bool) -> None:
        """The commit's publishes are this child's to deliver: its receipts are due. With
        publisher confirms they are written at once, before the confirms: a quorum queue's
        new leader hands out again, unflagged, deliveries the old one made, and a copy may
        reach another child while this one still waits for its confirms (should they fail,
        the commit is in doubt and sent again). Redis not answering does not stop the commit:
        the receipts stay due. After a transaction, within RECEIPTS_EVERY
        (its ack is lost only with the broker node, which takes longer to come back)."""
        self.book.committed()
        if before_acks and self.receipts.due:
            try:
                self.book.look_up([], write=True)
            except StateError as exc:  # kept due, written later: the commit goes on
                log.warning("receipts not written yet: %s", exc)

    def _publish_result(self, outbox: Outbox) -> None:
        for status in outbox.statuses:
            self.broker.publish(STATUS_QUEUE, encode(status))
        for nxt in outbox.messages:
            self.broker.publish(self.cfg.broker.queue, encode_execution(nxt))
        if outbox.completion is not None:
            self.broker.publish(COMPLETION_QUEUE, encode(outbox.completion))
            self.hooks.on_completion(outbox.completion.status)
        report = outbox.report
        if report.outcome:
            self.hooks.on_node_done(report.node_type or "unknown", report.outcome, report.seconds)
        if report.lost:
            self.hooks.on_state_lost(report.lost)

    def _publish_rejection(self, d: Delivery, outbox: Outbox) -> None:
        log.error("rejected delivery from %s: %s", d.queue, outbox.dead_letter)
        self._dead_letter(d, outbox.dead_letter)
        self._publish_result(outbox)
        self.broker.ack(d.tag)
        self.hooks.on_delivery(d.queue, "rejected")

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
        self.hooks.on_delivery(d.queue, "dead_lettered")

    # -- RabbitMQ's back-pressure -------------------------------------------------------
    # Kept with the loop: an alarm shifts the clock of the step in flight and spares the batch
    # being stepped, a consumer_timeout close names the delivery that ran: the loop's own
    # state, written at every step.

    def _on_flow(self, blocked: str | None) -> None:
        """RabbitMQ blocks our publishes (a memory or disk alarm: `blocked` says which), says so
        again every second while it lasts, or lifted the block (None). Called inside pika's
        I/O loop, usually in the middle of a commit that waits for the broker to read it: the
        child beats BLOCKED meanwhile, so that the supervisor neither kills it as hung nor
        counts it toward the crash limit, and keeps its deliveries (nothing is redelivered,
        nothing counts as an attempt); the commit goes through once the alarm clears."""
        now = time.monotonic()
        if blocked is None:
            if not self._blocked_at:
                return
            seconds, self._blocked_at = now - self._blocked_at, 0.0
            if self._step_started:  # a node's clock (worker.timeout) leaves the block out
                self._step_started += seconds
            self._note("")
            self._beat(ChildState.BUSY if self._step_started else ChildState.READY)
            self.hooks.on_flow(False)
            log.info("RabbitMQ no longer blocks this child's publishes (%.1f s)", seconds)
            return
        self._beat(ChildState.BLOCKED)
        self.doubts.keep_alive()  # a commit in doubt stays this child's while it waits
        if self.stopping and not self._batch_spared:
            # asked to stop while blocked: the drain may run out of time and kill us; what we
            # hold comes back then, and must not count as attempts (`_spare`)
            self._batch_spared = True
            self._spare([d.body for d in (*self._batch, *self.broker.pending)])
        if self._blocked_at:
            return
        self._blocked_at = now
        where = getattr(self.broker, "node", None) or Endpoint.of(self.cfg.broker).where
        self._note(f"RabbitMQ at {where} blocks publishes: {blocked} (a resource alarm)")
        self.hooks.on_flow(True)
        log.warning(
            "RabbitMQ at %s blocks this child's publishes: %s (a memory or disk alarm, "
            "`rabbitmqctl status`); its commit waits and its deliveries stay unacknowledged "
            "until the alarm clears: nothing is lost or run again",
            where,
            blocked,
        )

    def _acks_timed_out(self) -> None:
        """RabbitMQ closed the channel because a delivery stayed unacknowledged for its
        consumer_timeout: every delivery of the channel goes back to the queue. Said once per
        close; those this child buffered and never started are spared from the attempt
        count (a delivery whose step ran is not: a node that always runs past the timeout
        must end dead-lettered, not loop)."""
        self._tell_ack_timeout()
        self._ack_timeout_told = False  # the next close is said again
        self._spare([d.body for d in self.broker.pending])

    def _tell_ack_timeout(self) -> None:
        if self._ack_timeout_told:
            return
        self._ack_timeout_told = True
        self.hooks.on_ack_timeout()
        current = self._current
        running = (
            f"; a node had been running for {time.monotonic() - self._step_started:.0f} s"
            if self._step_started
            else ""
        )
        log.error(
            "RabbitMQ closed the channel: a delivery stayed unacknowledged longer than its "
            "consumer_timeout (%s)%s. Every delivery of this child goes back to the queue and "
            "its step runs again. Keep RabbitMQ's consumer_timeout above twice worker.timeout "
            "(%g s) and set broker.consumer_timeout to it (now %g s)%s",
            self.broker.ack_timeout,
            running,
            self.cfg.worker.timeout,
            self.cfg.broker.consumer_timeout,
            f"; delivery from {current.queue}" if current is not None else "",
        )

    def _hand_back_stale(self, now: float) -> None:
        """Hand back the buffered deliveries that arrived more than `consumer_timeout - 2 x
        worker.timeout` ago: their steps could end past RabbitMQ's consumer_timeout, which
        closes the channel and sends every delivery of it round again (the steps they waited
        behind were long). They come back at once, to any child, with a fresh clock, spared
        from the attempt count. Between batches: the transaction holds nothing else."""
        pending = self.broker.pending
        stale = [d for d in pending if d.at and now - d.at > self._stale_after]
        for d in stale:
            pending.remove(d)
        self._spare([d.body for d in stale])
        self.broker.requeue([d.tag for d in stale])
        self.broker.commit()
        for d in stale:
            self.hooks.on_delivery(d.queue, "requeued")
        log.warning(
            "handed %d deliveries back unstarted: they waited here %.0f s, and their steps "
            "could end past RabbitMQ's consumer_timeout (broker.consumer_timeout %g s)",
            len(stale),
            now - min(d.at for d in stale),
            self.cfg.broker.consumer_timeout,
        )

    def _spare(self, bodies: list[bytes]) -> None:
        try:
            self.store.spare_attempts(bodies)
        except StateError as exc:  # then a later redelivery counts: never worse than before
            self.hooks.on_state_error()
            log.warning(
                "could not spare %d deliveries from the attempt count: %s", len(bodies), exc
            )

    # -- housekeeping -------------------------------------------------------------------

    def _tick_scheduler(self, now: float) -> None:
        """Fire due wait timers, at most every POLL_SECONDS, if this child holds the lock.
        Runs between batches, so its transaction holds nothing else."""
        if self._lock is None or now < self._next_tick:
            return
        self._next_tick = now + POLL_SECONDS
        if self._lock.acquire():
            self.scheduler.tick()

    def _publish_resume(self, body: bytes) -> None:
        self.broker.publish(self.cfg.broker.resume_queue, body)

    def _timer_lost(self) -> None:
        self.hooks.on_state_lost("timer")

    def _idle(self) -> None:
        """Called while a node runs: serve heartbeats, report liveness from the step start
        (a node stuck for longer than `worker.timeout` lets the supervisor kill us), let go
        of the scheduler's host lock (timers fire in another child meanwhile). Asked to
        stop meanwhile, the step goes on, but its delivery is spared at once: should the
        drain deadline kill us before it commits, the redelivery is no attempt of its own."""
        if self._lock is not None and self._lock.held:
            # a node that blocks must not hold back the host's timers: another child takes
            # the scheduler at its next tick, this one takes it back once free if none did
            self._lock.release()
        self.broker.poll(0)
        if self.broker.ack_timeout is not None:  # said now, not when the node ends
            self._tell_ack_timeout()
        self.hooks.on_idle()  # the node's own `running` commit shows it in flight
        self._beat(ChildState.BUSY)
        current = self._current
        if self.stopping and current is not None and current is not self._spared:
            self._spared = current
            self._spare([current.body])
            log.info("stopping while a node runs: it finishes, or its delivery comes back")

    def _after(self, done: int) -> None:
        self.handled += done
        if self.limit and self.handled >= self.limit:
            self._recycle(f"handled {self.handled} messages (max_messages {self.limit})")
        limit_mb = self.cfg.worker.max_memory_mb
        if limit_mb and (now := time.monotonic()) >= self._next_rss_check:
            # reading the RSS costs about 15 us (/proc): once per RSS_CHECK_EVERY, not per batch
            self._next_rss_check = now + RSS_CHECK_EVERY
            if self._process.memory_info().rss > limit_mb * 1024 * 1024:
                self._recycle(f"RSS above max_memory_mb {limit_mb}")

    def _recycle(self, reason: str) -> None:
        log.info("child %d recycling: %s", os.getpid(), reason)
        self.recycle_reason = reason
        self.stopping = True

    def _beat(self, state: ChildState) -> None:
        if self.board is None:
            return
        at = self._step_started if state is ChildState.BUSY else 0.0
        self._beaten_at = at or time.monotonic()
        self.board.beat(self.slot, state, self.handled, at=self._beaten_at)

    def _check_parent(self) -> None:
        if self.board is not None and os.getppid() == 1:
            log.error("supervisor is gone; stopping")
            self.stopping = True

    def _note(self, text: str) -> None:
        if self.board is not None:
            self.board.note(self.slot, text)


def _jittered(limit: int, jitter: float) -> int:
    """`max_messages` plus up to `jitter` of it, so children do not all recycle at once."""
    if limit <= 0:
        return 0
    return limit + random.randint(0, int(limit * jitter))


def _copies_within(keys: list[Receipt | None], seen: list[bool]) -> None:
    """Two deliveries of one message in a batch (a resent copy behind the original): the
    later one is the copy."""
    named = [k for k in keys if k is not None]
    if len(set(named)) == len(named):
        return
    first: set[Receipt] = set()
    for i, k in enumerate(keys):
        if k is not None:
            seen[i] = seen[i] or k in first
            first.add(k)


def _may_be_a_copy(d: Delivery) -> bool:
    """A delivery whose step may already be published: the broker delivered it before, or a
    worker published it again after a commit in doubt. Only these are checked for a
    receipt; any other delivery is the first of its message."""
    return d.redelivered or resent(d)


def _batch(pending: deque[Delivery], batch_max: int) -> list[Delivery]:
    """The next deliveries to step in one transaction: up to `batch_max`, but a redelivered
    one alone (it may be poison that kills this process: its crash must not roll back the
    work of the deliveries around it), and so a resent one (it may wait: `Parking`)."""
    batch = [pending.popleft()]
    if _may_be_a_copy(batch[0]):
        return batch
    while pending and len(batch) < batch_max and not _may_be_a_copy(pending[0]):
        batch.append(pending.popleft())
    return batch


def child_main(
    cfg: Config, board: Liveness, slot: int, *, scheduler_lock: str | None = None
) -> int:
    """Entry point of a forked child (the supervisor's target; serve binds `scheduler_lock`)."""
    try:
        worker = Worker(
            cfg,
            board,
            slot,
            scheduler_lock=scheduler_lock,
            hooks=WorkerMetrics(),
            meter=NodeMeter(),
        )
    except StateError as exc:  # a Redis Cluster none of whose nodes answers (from_config)
        log.error("cannot start: %s", exc)
        return EXIT_BOOT_FAILED
    try:  # this child's sample files, while it boots: a failure is a boot failure (backoff)
        metrics.prime(
            queues=(cfg.broker.queue, cfg.broker.resume_queue), node_types=worker.executor.specs
        )
    except OSError as exc:  # the metrics directory deleted, unwritable or full
        log.error("cannot start: cannot write the metrics directory: %s", exc)
        return EXIT_BOOT_FAILED
    signal.signal(signal.SIGTERM, worker.stop)
    return worker.run()
