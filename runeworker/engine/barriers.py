"""Barriers (aggregator, merge) and wait timers: their types and the in-memory implementation.

The protocol methods are part of `runeworker.engine.state.StateStore`; `MemoryFlow` is the half
of `MemoryStore` that implements them (the Redis form is `runeworker.adapters.redis_flow`). Both
pass the shared table in tests/unit/statecases.py.

Idempotence. Every arrival names its branch token. A barrier records the token of the arrival
that decided it (released, won or expired); a redelivered copy of that arrival gets the same
decision again, and so does a redelivered merge arrival that was counted before the decision
(`waiting`: a replay after a crash must report what the lost step reported); any other
arrival after the decision gets `closed`, or `timed_out` when the decision was `expired`: such
an arrival may have been admitted before the halt that the expiry causes was recorded, and
must not report the merge as anything but failed (`runeworker.engine.flow`). Results are kept
by item index (aggregator) or parent node (merge), so a redelivered arrival overwrites its own
slot and is never counted twice. A ghost (no payload) never overwrites a real result.

Holding the execution open. An arrival that waits parks a token that keeps its execution open
while the barrier waits: a `wait_for_all` merge its timer's token
(`runeworker.engine.merge_timer`), an aggregator the barrier's hold token (`aggregate_hold`),
which no message carries, and only when its own advance would otherwise leave its execution
with no live token (`StateStore.advance` decides it, atomically). The arrival that decides the
barrier retires it (`StateStore.retire`) before its own advance. A split that runeworker fans
out makes every branch token live at once, and a branch that will not reach the aggregator
sends a ghost there, so while an arrival waits a sibling is live and no hold is parked: such
executions write what they wrote before holds existed, and a runeworker without holds (a
rolling upgrade) may release their barriers. The hold is for split branches that a Go worker
fanned out, which join the execution one at a time, when they are consumed: without it, an
execution whose only live branch was a waiting arrival ended there (docs/WIRE.md section 12.1).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

import msgspec

from runeworker.errors import state_lost


class BarrierState(StrEnum):
    """What one arrival at a barrier did."""

    WAITING = "waiting"  # counted; the barrier still waits for others
    RELEASED = "released"  # this arrival opened the barrier (or won a wait_for_any merge)
    CLOSED = "closed"  # another arrival already decided the barrier: this one is absorbed
    EXPIRED = "expired"  # merge: this arrival came after first arrival + timeout
    # merge: another arrival (or the merge's timer) decided the barrier as expired: this one
    # is absorbed, and the merge has failed (under `halt` the execution has, or is about to)
    TIMED_OUT = "timed_out"


class Barrier(msgspec.Struct, frozen=True):
    """Outcome of one arrival. On RELEASED, `keys` and `results` hold the non-ghost payloads:
    aggregator keys are item indexes (as strings) in index order; merge keys are parent node
    ids in sorted order (the engine orders them by the merge's incoming edges)."""

    state: BarrierState
    arrived: int
    keys: list[str] = msgspec.field(default_factory=list)
    results: list[bytes] = msgspec.field(default_factory=list)
    first_ms: int = 0  # merge: when its first arrival came


class MergeRule(msgspec.Struct, frozen=True):
    """How a merge opens: after `expected` distinct parents (wait_for_all) or at the first
    arrival with data (`any`); an arrival with data later than `timeout_ms` after the first
    arrival expires the barrier (0 = no timeout)."""

    expected: int
    any: bool = False
    timeout_ms: int = 0


# The outcome of a release that carried no data (every arrival was a ghost): a merge then
# routes like a dead path (`runeworker.engine.flow`), so a step foresees it apart.
DEAD = "dead"


def outcome(barrier: Barrier) -> str:
    """The key of `barrier` in a foresight (`StateStore.arrive`): its state, or `DEAD` for a
    release without data."""
    if barrier.state is BarrierState.RELEASED and not barrier.results:
        return DEAD
    return barrier.state.value


class AggregateArrival(msgspec.Struct, frozen=True):
    """Item `index` of a split of `total` arriving at its aggregator (`StateStore.aggregate`).
    `hold`: the barrier's hold token (`aggregate_hold`), which an arrival that waits parks when
    nothing else of its execution is live, and the arrival that releases the barrier retires
    ("" for none)."""

    split_id: str
    scope: str
    index: int
    total: int
    payload: bytes | None
    hold: str = ""


# The prefix of a hold token (`aggregate_hold`): no message carries one, and an advance adds
# one to the live set only when no other token would be live (`StateStore.advance`).
HOLD = "hold:"


def aggregate_hold(split_id: str, scope: str) -> str:
    """The hold token of the aggregator barrier of one run of a split (`split_id` in `scope`):
    an arrival that waits there names it as its child, and its advance parks it only when
    nothing else of the execution would be live (once parked, later waiting arrivals find it
    live and park nothing more), so the execution stays open while the barrier waits even
    when no branch is live meanwhile (split branches that a Go worker fanned out join one at a
    time, docs/WIRE.md section 12.1); the arrival that releases the barrier retires it
    (`StateStore.retire`, not a step; recorded as advanced when it was never parked), before
    its own advance. Derived from the barrier alone, so a redelivered arrival names the same
    one; tokens are kept per execution, so the execution id is no part of it."""
    name = msgspec.json.encode([split_id, scope])
    return HOLD + hashlib.blake2b(name, digest_size=10).hexdigest()


class Park(msgspec.Struct, frozen=True):
    """A merge's timeout timer as its arrival schedules it (`StateStore.arrive`): its id and
    the resume message it fires (`runeworker.engine.merge_timer`)."""

    timer_id: str
    payload: bytes


class MergeArrival(msgspec.Struct, frozen=True):
    """`parent` arriving at a merge (`StateStore.merge_arrive`). `timer_token`: the token of the
    merge's timeout timer (`runeworker.engine.merge_timer`), retired by the arrival that
    decides the barrier ("" when the merge has no timer). `park`: given when the arrival also
    handles the timer itself (see `parked`), in the same atomic call on a store that can:
    the arrival that decides the barrier cancels it, and a waiting one schedules it (a RUN,
    not yet due) and parks its token."""

    merge_id: str
    scope: str
    parent: str
    payload: bytes | None
    rule: MergeRule
    now_ms: int
    timer_token: str = ""
    park: Park | None = None


Arrival = AggregateArrival | MergeArrival

# The parent a merge's firing timer arrives as (`runeworker.engine.merge_timer.fire`): never a
# node id (an arrival without `from_node` is refused before it reaches the barrier). Only an
# arrival that waited arms the timer, so a timer that finds no barrier begun finds it lost:
# `merge_arrive` raises `StateLost` instead of beginning it with an arrival no branch made.
TIMER_PARENT = ""


def parked(arrival: MergeArrival, barrier: Barrier) -> list[str]:
    """The children of a waiting arrival that parks the timer's token: that token while the
    timer is not due (first arrival + timeout), none once it is (a redelivery of an arrival
    counted long ago: the timer armed then fires or has fired)."""
    if arrival.now_ms < barrier.first_ms + arrival.rule.timeout_ms:
        return [arrival.timer_token]
    return []


def foreseen_children(
    arrival: Arrival, barrier: Barrier, foreseen: dict[str, list[str]]
) -> list[str] | None:
    """The children `StateStore.arrive` advances the token with: `foreseen[outcome]`, and for
    a waiting merge arrival that handles its timer (`MergeArrival.park`) always `parked`; None
    when the outcome was not foreseen (the caller advances)."""
    if (
        isinstance(arrival, MergeArrival)
        and arrival.park is not None
        and barrier.state is BarrierState.WAITING
    ):
        return parked(arrival, barrier)
    return foreseen.get(outcome(barrier))


class Timer(NamedTuple):
    timer_id: str
    payload: bytes  # the message to fire; empty when it is gone (evicted, flushed): lost


@dataclass
class _Aggregate:
    results: dict[int, bytes | None] = field(default_factory=dict)
    decided_by: str = ""


@dataclass
class _Merge:
    data: dict[str, bytes | None] = field(default_factory=dict)
    first_ms: int = 0
    decision: tuple[BarrierState, str, str] | None = None  # (state, token, parent)
    waited: set[str] = field(default_factory=set)  # tokens of arrivals answered WAITING


class MemoryFlow:
    """In-memory barriers and timers (one process: `runeworker run` and tests). Thread-safe."""

    def __init__(self) -> None:
        self._flow_lock = threading.Lock()
        self._aggregates: dict[tuple[str, str, str], _Aggregate] = {}
        self._merges: dict[tuple[str, str, str], _Merge] = {}
        self._timers: dict[str, int] = {}  # timer id -> due (ms)
        self._leases: dict[str, int] = {}  # claimed timer id -> lease deadline (ms)
        self._payloads: dict[str, bytes] = {}
        self._owned: dict[str, set[str]] = {}  # execution id -> ids of its timers

    # -- aggregator -------------------------------------------------------------------------

    def aggregate(
        self,
        execution_id: str,
        split_id: str,
        scope: str,
        index: int,
        total: int,
        token: str,
        payload: bytes | None,
    ) -> Barrier:
        """Record the result of item `index` of `total` (None: a ghost) and release once."""
        with self._flow_lock:
            agg = self._aggregates.setdefault((execution_id, split_id, scope), _Aggregate())
            if agg.decided_by:
                if agg.decided_by == token:
                    return _collected(agg, total)
                return Barrier(BarrierState.CLOSED, len(agg.results))
            if payload is not None or index not in agg.results:
                agg.results[index] = payload
            if len(agg.results) < total:
                return Barrier(BarrierState.WAITING, len(agg.results))
            agg.decided_by = token
            return _collected(agg, total)

    # -- merge ------------------------------------------------------------------------------

    def merge_arrive(
        self,
        execution_id: str,
        merge_id: str,
        scope: str,
        parent: str,
        token: str,
        payload: bytes | None,
        rule: MergeRule,
        now_ms: int,
    ) -> Barrier:
        """Record the arrival of `parent` (None payload: a ghost) at a merge barrier."""
        with self._flow_lock:
            key = (execution_id, merge_id, scope)
            if parent == TIMER_PARENT and key not in self._merges:
                raise state_lost(execution_id, "barrier", f"merge {merge_id}")
            m = self._merges.setdefault(key, _Merge())
            if m.decision is not None:
                state, by, winner = m.decision
                if by == token:
                    return self._decided(m, state, winner)
                if token in m.waited:
                    late = BarrierState.WAITING
                elif state is BarrierState.EXPIRED:
                    late = BarrierState.TIMED_OUT
                else:
                    late = BarrierState.CLOSED
                return Barrier(late, len(m.data), first_ms=m.first_ms)
            if not m.first_ms:
                m.first_ms = now_ms
            elif payload is not None and 0 < rule.timeout_ms < now_ms - m.first_ms:
                # only an arrival with data expires a barrier: a ghost is never late
                m.decision = (BarrierState.EXPIRED, token, parent)
                return Barrier(BarrierState.EXPIRED, len(m.data), first_ms=m.first_ms)
            if payload is not None or parent not in m.data:
                m.data[parent] = payload
            if rule.any and payload is not None:
                m.decision = (BarrierState.RELEASED, token, parent)
            elif len(m.data) >= rule.expected:
                m.decision = (BarrierState.RELEASED, token, "")
            else:
                m.waited.add(token)
                return Barrier(BarrierState.WAITING, len(m.data), first_ms=m.first_ms)
            return self._decided(m, BarrierState.RELEASED, m.decision[2])

    @staticmethod
    def _decided(m: _Merge, state: BarrierState, winner: str) -> Barrier:
        if state is not BarrierState.RELEASED:
            return Barrier(state, len(m.data), first_ms=m.first_ms)
        names = [winner] if winner else sorted(m.data)
        pairs = [(p, m.data[p]) for p in names]
        return Barrier(
            BarrierState.RELEASED,
            len(m.data),
            [p for p, v in pairs if v is not None],
            [v for _, v in pairs if v is not None],
            m.first_ms,
        )

    # -- timers -----------------------------------------------------------------------------

    def schedule(self, timer_id: str, due_ms: int, payload: bytes, *, owner: str = "") -> None:
        """Store `payload` to be fired at `due_ms` (scheduling the same id again replaces it);
        `owner`'s failure lists the timer for cancelling (`timers_of`)."""
        with self._flow_lock:
            if owner:
                self._owned.setdefault(owner, set()).add(timer_id)
            self._payloads[timer_id] = payload
            self._leases.pop(timer_id, None)
            self._timers[timer_id] = due_ms

    def claim_due(self, now_ms: int, limit: int, lease_ms: int) -> list[Timer]:
        """Lease up to `limit` due timers (earliest first) until `now_ms + lease_ms`."""
        with self._flow_lock:
            due = sorted((at, tid) for tid, at in self._timers.items() if at <= now_ms)[:limit]
            claimed: list[Timer] = []
            for _, tid in due:
                del self._timers[tid]
                payload = self._payloads.get(tid)
                if payload is not None:
                    self._leases[tid] = now_ms + lease_ms
                # an id without its payload (lost) is dropped, returned with an empty one
                claimed.append(Timer(tid, payload or b""))
            return claimed

    def release_expired(self, now_ms: int) -> int:
        """Return timers whose lease ran out (their claimer died) to the due set."""
        with self._flow_lock:
            expired = [tid for tid, until in self._leases.items() if until <= now_ms]
            for tid in expired:
                del self._leases[tid]
                self._timers[tid] = now_ms
            return len(expired)

    def ack_timer(self, timer_id: str) -> None:
        """The timer's payload was published: forget it, unless it was scheduled again since
        it was claimed (no longer leased: a resume that came early schedules its own timer
        again, `Turn._resume_early`, possibly before the scheduler acknowledges the firing)."""
        with self._flow_lock:
            if self._leases.pop(timer_id, None) is not None:
                self._payloads.pop(timer_id, None)

    def cancel_timer(self, timer_id: str) -> None:
        """Forget a timer whether it is due, leased or not yet due."""
        with self._flow_lock:
            self._timers.pop(timer_id, None)
            self._leases.pop(timer_id, None)
            self._payloads.pop(timer_id, None)

    def timers_of(self, execution_id: str) -> set[str]:
        """Ids of the timers ever scheduled for `execution_id` (fired or not)."""
        with self._flow_lock:
            return set(self._owned.get(execution_id, ()))

    def next_due(self) -> int | None:
        """Due time (ms) of the earliest scheduled timer, None when there is none."""
        with self._flow_lock:
            return min(self._timers.values(), default=None)


def _collected(agg: _Aggregate, total: int) -> Barrier:
    indexes = [i for i in range(total) if agg.results.get(i) is not None]
    results = [r for i in indexes if (r := agg.results[i]) is not None]
    return Barrier(BarrierState.RELEASED, len(agg.results), [str(i) for i in indexes], results)
