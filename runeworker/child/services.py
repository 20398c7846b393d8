"""RabbitMQ and Redis as one child waits for them: bringing both up, and holding on while Redis
refuses writes.

A child consumes only once both answer (consuming while Redis is down would only hand every
delivery back): `Services.connect` tries both, with the backoff of `broker.retry_delay`, until
they answer or the child is asked to stop. A Redis that stops taking writes while the child
consumes is waited for without letting go of RabbitMQ (`Services.wait_for_writes`): the
deliveries of the refused step stay with the child, unacknowledged, so a full or read-only Redis
never counts attempts of healthy messages (`broker.max_deliveries`).

Waiting for a dependency is not a crash: the child beats WAITING, with a note saying what it
waits for (the supervisor shows it in sd_notify STATUS and `/readyz`), and logs one line when
what it waits for changes, not one per attempt. No single try may outlast the supervisor's
patience: a RabbitMQ handshake and a Redis command are bounded by a third of `worker.timeout`
(`handshake_timeout`, `redis_timeouts`), and the child beats between tries. Meanwhile a commit
in doubt stays this child's (runeworker/child/doubts.py: its lease is renewed).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable

from runeworker.adapters.amqp import (
    COMPLETION_QUEUE,
    MIRROR_QUEUE,
    STATUS_QUEUE,
    Endpoint,
    describe,
)
from runeworker.adapters.redis_connect import eviction_warning, redis_where
from runeworker.child.doubts import DoubtBook
from runeworker.child.hooks import WorkerHooks
from runeworker.child.ports import TransactionalBroker, WorkerStore
from runeworker.config import Config
from runeworker.errors import BrokerError, StateError
from runeworker.supervisor.liveness import ChildState

log = logging.getLogger("runeworker.worker")

HANDSHAKE_TIMEOUT = 15.0  # pika's default for bringing up one connection (`stack_timeout`)
REDIS_CONNECT_TIMEOUT = 5.0  # the store's default for bringing up one Redis connection


def handshake_timeout(worker_timeout: float) -> float:
    """How long one try of a RabbitMQ node may take in a child: pika's 15 s, but at most a
    third of `worker.timeout`. The child beats only between tries, and the supervisor kills a
    child without a beat for `worker.timeout` as hung; a broker that takes the connection and
    never answers must leave the child waiting, not killed."""
    return min(HANDSHAKE_TIMEOUT, worker_timeout / 3)


def redis_timeouts(socket_timeout: float, worker_timeout: float) -> dict[str, float]:
    """How long a child waits for one Redis command and for a connection: `redis.socket_timeout`
    and redis-py's 5 s, but at most a third of `worker.timeout`, as for a RabbitMQ handshake.
    A Redis that holds a command (paused, swapping, a network that drops packets) must leave
    the child waiting and beating (`Services.wait_for_writes`), not killed as hung: a kill
    counts an attempt of the healthy message it was stepping (`broker.max_deliveries`)."""
    third = worker_timeout / 3
    return {
        "socket_timeout": min(socket_timeout, third),
        "socket_connect_timeout": min(REDIS_CONNECT_TIMEOUT, third),
    }


class Services:
    """One child's connection to RabbitMQ and Redis, and its waits for them."""

    def __init__(
        self,
        cfg: Config,
        broker: TransactionalBroker,
        store: WorkerStore,
        hooks: WorkerHooks,
        doubts: DoubtBook,
        *,
        slot: int,
        beat: Callable[[ChildState], None],
        note: Callable[[str], None],
        stopping: Callable[[], bool],
        check_parent: Callable[[], None],
        before_consuming: Callable[[], None],
    ) -> None:
        """`doubts`: this child's commit in doubt, whose lease a wait renews. `slot`: the child's
        slot (the one in slot 0 tells the eviction warning). `beat` and `note`: the child's
        liveness (`Liveness.beat`, `Liveness.note`); `stopping`: whether the child was asked
        to stop; `check_parent`: asks it to stop when the supervisor is gone;
        `before_consuming`: runs once connected, before consuming (the resend of a commit in
        doubt: `Resender.resend`)."""
        self.cfg = cfg
        self.broker = broker
        self.store = store
        self.hooks = hooks
        self.doubts = doubts
        self.slot = slot
        self._beat = beat
        self._note = note
        self._stopping = stopping
        self._check_parent = check_parent
        self._before_consuming = before_consuming
        self._policy_told = False  # the eviction warning (`_tell_eviction`), slot 0 only

    def connect(self) -> bool:
        """Connect, retrying with backoff until RabbitMQ and Redis both answer (consuming while
        Redis is down would only hand every delivery back) or we are asked to stop.

        Waiting for a dependency is not a crash: the child stays alive in state WAITING with a
        note saying what it waits for (the supervisor shows it in sd_notify STATUS and
        `/readyz`), and logs one line when what it waits for changes, not one per attempt."""
        delay = self.cfg.broker.retry_delay
        waiting_for = ""
        while not self._stopping():
            self.doubts.renew()  # a commit in doubt stays this child's while it waits
            state = ChildState.WAITING if waiting_for else ChildState.BOOTING
            problem = self._attempt(functools.partial(self._alive, state))
            if problem is None:
                if waiting_for:
                    log.info("%s answers again", waiting_for)
                    self._note("")
                return True
            what, detail = problem
            if what != waiting_for:
                log.warning("waiting for %s: %s", what, detail)
                waiting_for = what
            self._note(f"waiting for {what}: {detail}")
            self._sleep(delay, ChildState.WAITING)
            delay = min(delay * 2, self.cfg.broker.retry_delay_max)
        return False

    def _attempt(self, before_each: Callable[[], bool]) -> tuple[str, str] | None:
        """One attempt; None when consuming, else (what does not answer, why). `before_each`
        runs before the try of each RabbitMQ node (`Endpoint.connect`)."""
        b = self.cfg.broker
        # PING answers on a full or read-only Redis: a write tells (`write_problem`)
        if (unanswered := self.store.ping_problem() or self.store.write_problem()) is not None:
            self.hooks.on_state_error()
            return f"Redis at {redis_where(self.cfg.redis)}", unanswered
        try:
            self.broker.connect(before_each)
            bound = [b.queue, b.resume_queue, STATUS_QUEUE, COMPLETION_QUEUE, MIRROR_QUEUE]
            self.broker.declare(bound, b.dead_letter_queue)
            self._before_consuming()
            self.broker.consume([b.queue, b.resume_queue], b.prefetch)
        except BrokerError as exc:
            self.broker.close()
            cause = exc.__cause__
            where = Endpoint.of(b).where
            return f"RabbitMQ at {where}", describe(cause) if cause else str(exc)
        except StateError as exc:  # the receipts of a resent commit
            self.broker.close()
            self.hooks.on_state_error()
            return f"Redis at {redis_where(self.cfg.redis)}", str(exc)
        # past booting from here: the supervisor must not count a kill after this line (which
        # operators and tests read as ready) as a boot failure
        self._beat(ChildState.READY)
        if self.slot == 0 and not self._policy_told:
            self._policy_told = True
            self._tell_eviction()
        log.info(
            "child %d consuming %s (prefetch %d) on %s",
            os.getpid(),
            b.queue,
            b.prefetch,
            getattr(self.broker, "node", None) or Endpoint.of(b).where,
        )
        return None

    def _tell_eviction(self) -> None:
        """Warn when the Redis given may evict runeworker's keys (`maxmemory-policy` other
        than `noeviction`: `eviction_warning`). Said by the child in slot 0 once connected
        (one line per pool; again when that child is replaced, after a reload that moved
        Redis, say), not by the supervisor: a thread of its own there could hold a lock
        (the import lock, a logging handler's) while a child is forked, which would hang the
        child for good. One INFO call; start-up goes on whatever it says."""
        found = self.store.memory_policy()
        if found is None:
            return
        warning = eviction_warning(redis_where(self.cfg.redis), *found)
        if warning:
            log.warning("%s", warning)

    def wait_for_writes(self, detail: str, held: int) -> None:
        """Stay connected to RabbitMQ (heartbeats served, deliveries kept) in state WAITING,
        with a note saying why (`/readyz`, sd_notify STATUS), until Redis answers and takes
        a write again, with the backoff of `broker.retry_delay`; one line when the wait
        begins, one when it ends."""
        where = f"Redis at {redis_where(self.cfg.redis)}"
        log.warning(
            "waiting for %s: %s; the %d deliveries of the step stay with this child, "
            "unacknowledged, and run again once it takes writes",
            where,
            detail,
            held,
        )
        delay = self.cfg.broker.retry_delay
        while not self._stopping():
            self._note(f"waiting for {where}: {detail}")
            self._hold(delay)
            problem = self.store.ping_problem() or self.store.write_problem()
            if problem is None:
                log.info("%s answers again", where)
                self._note("")
                return
            if problem != detail:
                self.hooks.on_state_error()
            detail = problem
            delay = min(delay * 2, self.cfg.broker.retry_delay_max)

    def _hold(self, seconds: float) -> None:
        """Wait `seconds` in state WAITING, serving the broker connection (heartbeats; what
        it delivers meanwhile is buffered in `pending`)."""
        deadline = time.monotonic() + seconds
        while not self._stopping():
            self._beat(ChildState.WAITING)
            self.doubts.keep_alive()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.broker.poll(min(0.2, left))
            self._check_parent()

    def _alive(self, state: ChildState) -> bool:
        """Beat `state` between two blocking tries; False once asked to stop."""
        self._beat(state)
        return not self._stopping()

    def _sleep(self, seconds: float, state: ChildState) -> None:
        """Wait `seconds` without a connection (between connection attempts), beating
        `state`; a child whose supervisor is gone stops waiting (`check_parent`), as `_hold`
        does, rather than retry unsupervised until RabbitMQ and Redis answer again."""
        deadline = time.monotonic() + seconds
        while not self._stopping() and time.monotonic() < deadline:
            self._beat(state)
            self.doubts.keep_alive()  # a commit in doubt stays this child's while it waits
            time.sleep(min(0.2, seconds))
            self._check_parent()
