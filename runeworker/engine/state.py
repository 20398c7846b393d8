"""The state-store protocol (exactly one completion per execution) and its in-memory form.

Every execution message carries a branch token. A step first *admits* its token, then
*advances* it: the parent token leaves the live set and the child tokens (one per published
next message) enter it, in one atomic, idempotent operation. The advance that empties the
live set closes the execution and is the only one that publishes the completion.

Idempotence is what makes redelivery safe: the outcome of an advance is recorded under the
parent token, so a message redelivered after a crash (state written, broker commit lost)
replays the same outcome instead of counting twice. Child tokens are derived from the
parent token, so the replayed next messages carry the same tokens.

The first failure (a `halted` or `failed` branch) closes the execution at once, whatever other
branches are still live: its advance returns the closing transition, the live set is dropped,
and every later message of the execution is CANCELLED (nothing of it runs, nothing closes the
execution a second time). The closing transition names the execution's timers (`schedule` with
an owner), which the step then cancels: a sibling parked in a wait or a merge barrier neither
delays the completion nor runs later (a timer already being fired is absorbed by its own
CANCELLED admission).

The protocol also holds the flow-control state (see `runeworker.engine.barriers`): the
aggregator and merge barriers and the wait timers.

State the store must hold can be lost: evicted by a Redis whose `maxmemory-policy` evicts,
expired (`redis.key_ttl`), gone with a flushed or replaced Redis. A step that finds it missing
is told so (`runeworker.errors.StateLost`) instead of being run against a fresh state, which
would strand its execution or complete it wrongly, without a word. Only the root token (the
API's start message), a joining token, a replayed dead letter (`anew`) and a single-branch
execution's step (whose start `begin` recorded: a peer planned its first steps without the
protocol) open an unknown execution; any other token names an execution that must be known.
An execution known, not ended, with no live branch left has lost its branch tokens; a barrier
it began and no longer finds is lost (`runeworker.adapters.redis_flow`). An execution that
ended keeps the mark of it (and its closing record), so that a late message of it is told
apart from a lost one: stale or cancelled as before, never a second completion. The store
keeps the token that found the loss live, marked lost by it, until a failure is recorded for
it: the step fails the execution with an `advance` that brings the failure
(`runeworker.engine.executor.Turn._lost`); a redelivery of that step is told the same, before
the failure and after it (the failure then replays).

The Redis implementation (`runeworker.adapters.redis_state`) follows the same protocol; the tests in
tests/unit/test_state.py, tests/unit/test_flow_state.py and tests/integration/test_redis_state.py
run one shared table against both.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from enum import StrEnum
from typing import Protocol

import msgspec

from runeworker.engine.barriers import (
    HOLD,
    AggregateArrival,
    Arrival,
    Barrier,
    BarrierState,
    MemoryFlow,
    MergeRule,
    Timer,
    foreseen_children,
    parked,
)
from runeworker.engine.messages import COMPLETED, NodeExecutionMessage
from runeworker.errors import state_lost

__all__ = [
    "JOINING",
    "Admission",
    "Arrived",
    "Barrier",
    "BarrierState",
    "Failure",
    "MemoryStore",
    "MergeRule",
    "Settlement",
    "StateStore",
    "Timer",
    "Transition",
    "Verdict",
    "attempt_key",
    "child_token",
    "child_tokens",
    "joining_token",
    "message_token",
    "now_ns",
    "opens_unknown",
    "record_arrival",
    "root_token",
    "state_lost",
]


class Verdict(StrEnum):
    """What to do with a delivered branch."""

    RUN = "run"  # the token is live (or opens a new execution): execute the node
    REPLAY = "replay"  # the token already advanced: execute again, advance() replays the outcome
    CANCELLED = "cancelled"  # a branch halted or failed the execution: drop this one
    STALE = "stale"  # unknown token of a known execution: not ours to run


class Admission(msgspec.Struct):
    verdict: Verdict
    steps: int  # steps this execution has taken so far (the max-steps guard reads it)


class Failure(msgspec.Struct):
    status: str  # "halted" or "failed"
    reason: str
    context: bytes  # JSON of the context the failing branch had


class Transition(msgspec.Struct):
    """Outcome of one advance; `closed` is true for exactly one advance per execution."""

    closed: bool
    status: str = COMPLETED
    failure_reason: str = ""
    started_at_ns: int = 0
    # when closed: the JSON contexts to merge into final_context, in finishing order.
    # For a failure: only the failing branch's context. The caller's own leaf context
    # is included too (it was passed in).
    contexts: list[bytes] = msgspec.field(default_factory=list)
    # when a failure closed: the ids of the execution's timers, for the step to cancel
    timers: list[str] = msgspec.field(default_factory=list)


class Settlement(msgspec.Struct):
    """Outcome of `StateStore.settle`: the verdict on the token, and the transition (None when
    the execution is at its step limit: nothing was recorded)."""

    verdict: Verdict
    transition: Transition | None


class Arrived(msgspec.Struct):
    """Outcome of `StateStore.arrive`. `barrier` is None when nothing was recorded: the token
    is stale or cancelled (`transition`: what absorbing it recorded, as `settle` does), or the
    execution is at its step limit (`transition` None). Otherwise `transition` is the token's
    advance when the barrier's outcome was foreseen, None when the caller advances itself."""

    verdict: Verdict
    barrier: Barrier | None
    transition: Transition | None


class StateStore(Protocol):
    """Shared execution state. Implementations must make each call atomic."""

    # whether `arrive` takes a merge arrival's `park` (schedules and cancels the merge's timer
    # in its own atomic call); the step schedules and cancels it by calls of its own otherwise
    parks_in_arrival: bool

    def admit(self, execution_id: str, token: str, now_ns: int, *, anew: bool = False) -> Admission:
        """Check a delivered token; opens the execution when it is unknown and the token may
        open it (`opens_unknown`: the root, a joining token, a single-branch execution's
        step, or `anew`: a replayed dead letter), raises `StateLost` otherwise, and when the
        execution is known, has not ended and has no live branch left. A joining token
        (`message_token`: a message without a token that names a parent) becomes live
        when the execution is open (a branch live, no failure) and the token never advanced;
        in an execution that ended it is stale. `advance`, `settle` and `arrive` admit the
        same way (without `anew`: a replayed dead letter is admitted first)."""
        ...

    def advance(
        self,
        execution_id: str,
        token: str,
        children: list[str],
        leaf_context: bytes | None,
        failure: Failure | None,
        now_ns: int,
    ) -> Transition:
        """Replace `token` by `children`. `leaf_context` is given when the branch ends
        normally (no children); `failure` when it ends the execution: the first failure
        closes it at once (its transition names the execution's timers to cancel); a token
        that is not live (a sibling of a failure, or stale) records nothing. A child that
        advanced before never becomes live again. A hold token among `children`
        (`runeworker.engine.barriers.HOLD`: a waiting aggregator arrival's) becomes live only
        when no other token would be, that is when the advance would otherwise close the
        execution; else it is left out, and nothing records it. `settle` and `arrive` advance
        the same way, inside their atomic call. Raises `StateLost` as `admit`
        does, unless `failure` is given: the failure of a token whose execution's state is
        lost is recorded (that is how the step fails it)."""
        ...

    def settle(
        self,
        execution_id: str,
        token: str,
        children: list[str],
        leaf_context: bytes | None,
        failure: Failure | None,
        now_ns: int,
        max_steps: int,
        *,
        anew: bool = False,
    ) -> Settlement:
        """`admit` and `advance` in one atomic call, for a step that ran its node before
        knowing the verdict (a quick node of an execution with parallel branches): RUN and
        REPLAY advance as `advance` does; STALE and CANCELLED record nothing; a RUN or
        REPLAY at `max_steps` records nothing and returns no transition: the caller fails the
        step at the limit and advances it (see `runeworker.engine.ledger.Settled`).
        `StateLost` as for `advance`, `anew` as for `admit`."""
        ...

    def arrive(
        self,
        execution_id: str,
        token: str,
        now_ns: int,
        max_steps: int,
        arrival: Arrival,
        foreseen: dict[str, list[str]],
    ) -> Arrived:
        """A barrier arrival in one atomic call: admit the token as `settle` does (STALE and
        CANCELLED record nothing but the absorbing of a cancelled live token; at `max_steps`
        nothing is recorded), record the arrival (`aggregate` or `merge_arrive`; a REPLAY
        never expires a merge), retire the merge's timer token when the arrival decided the
        barrier (released or expired) and the aggregator's hold token when it released it
        (`AggregateArrival.hold`, not counted as a step; recorded as advanced when it was
        never parked, so that a waiting arrival advanced later does not park it), and advance
        the token with `foreseen[outcome]` as its children when the barrier's outcome
        (`runeworker.engine.barriers.outcome`) is a key of `foreseen` (no leaf, no failure, a
        hold token among them as `advance` says; a REPLAY gets the recorded advance). `StateLost`
        as for `admit`, and when the barrier was begun and is gone. A merge
        arrival with a `park` (only when `parks_in_arrival`) also cancels the merge's timer
        when it decided the barrier, schedules it when it waits as a RUN before the timer is
        due (the timer stored before its token is live), and a waiting one is always
        advanced, with `runeworker.engine.barriers.parked` as its children."""
        ...

    def retire(
        self, execution_id: str, token: str, now_ns: int, *, counted: bool = True
    ) -> Transition:
        """Retire `token` for good, whether or not it is live yet: a live token advances
        without children; a token not yet live is recorded as advanced, so that the advance
        that would add it later leaves it out (a token that advanced never becomes live again).
        For a token that a concurrent step adds: a merge's timer token or an aggregator's hold
        token, retired by the arrival that decides the barrier while a waiting arrival may not
        have advanced yet (`runeworker.engine.merge_timer`). `counted`: whether retiring a
        live token counts as one of the execution's steps (a timer token's firing would have
        been one; a hold token never runs, and is not). An unknown execution records
        nothing."""
        ...

    def count_attempt(self, body: bytes) -> int:
        """Count one more delivery of a redelivered message (poison detection)."""
        ...

    def spare_attempts(self, bodies: list[bytes]) -> None:
        """The next redelivery of each of `bodies` is no attempt of its own: their handling
        was cut by our own hand (a drain, a reload roll, a recycle), not by the message. A
        flag, not a credit: sparing twice before the next redelivery spares it once."""
        ...

    def begin(self, execution_id: str, now_ns: int) -> None:
        """Record the start of a single-branch execution (`runeworker.engine.ledger`); the
        first record wins, so a redelivered first step keeps the original start."""
        ...

    def started_at(self, execution_id: str) -> int:
        """Start time (epoch ns) recorded by `begin`, else by `admit`; 0 when unknown."""
        ...

    def flush(self) -> None:
        """Make the writes `begin` may keep back durable. A worker calls it before it
        commits a step: a later step of the execution may run as soon as that commit lands."""
        ...

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
        """Record the result of item `index` of a split of `total` items (None: a ghost, which
        never overwrites a result); released exactly once, when every index has arrived.
        `scope` tells apart the runs of a split nested in another split's branches."""
        ...

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
        """Record the arrival of `parent` at a merge (None: a ghost); see `MergeRule`. The
        merge's timer arrives as `runeworker.engine.barriers.TIMER_PARENT`, and raises
        `StateLost` when it finds no barrier begun (the arrival that armed it had begun one)."""
        ...

    def schedule(self, timer_id: str, due_ms: int, payload: bytes, *, owner: str = "") -> None:
        """Store a timer that fires `payload` at `due_ms` (epoch ms). `owner`: the execution
        it belongs to, whose failure lists it for cancelling (see `advance`)."""
        ...

    def claim_due(self, now_ms: int, limit: int, lease_ms: int) -> list[Timer]:
        """Lease due timers to the caller until `now_ms + lease_ms`; `ack_timer` forgets them.
        A due timer whose payload is gone (lost) is forgotten and returned with an empty
        payload, for the caller to tell."""
        ...

    def release_expired(self, now_ms: int) -> int:
        """Make leased timers whose lease ran out due again; returns how many."""
        ...

    def ack_timer(self, timer_id: str) -> None:
        """Forget a fired timer and its payload, unless it was scheduled again since its
        claim (then it is no longer leased, and fires again as scheduled)."""
        ...

    def cancel_timer(self, timer_id: str) -> None:
        """Forget a timer in any state."""
        ...

    def next_due(self) -> int | None:
        """Due time (epoch ms) of the earliest scheduled timer, None when there is none."""
        ...


def record_arrival(
    store: StateStore,
    execution_id: str,
    token: str,
    verdict: Verdict,
    now_ns: int,
    arrival: Arrival,
) -> Barrier:
    """The barrier half of `StateStore.arrive`, for a token admitted with `verdict`: the
    arrival recorded (`aggregate` or `merge_arrive`; a REPLAY never expires a merge), and the
    merge's timer token retired when the arrival decided the barrier (the aggregator's hold
    token when it released it, not counted as a step), before the token's own advance, so
    that retiring never closes the execution; with a `park`, the timer cancelled then, or
    scheduled when the arrival waits as a RUN before it is due. `MemoryStore.arrive` runs it
    under its lock; an admitted step (`runeworker.engine.flow.Step.arrive`) runs it on its
    own."""
    if isinstance(arrival, AggregateArrival):
        a = arrival
        barrier = store.aggregate(
            execution_id, a.split_id, a.scope, a.index, a.total, token, a.payload
        )
        if a.hold and barrier.state is BarrierState.RELEASED:
            store.retire(execution_id, a.hold, now_ns, counted=False)
        return barrier
    m = arrival
    rule = m.rule
    if verdict is Verdict.REPLAY:
        rule = msgspec.structs.replace(rule, timeout_ms=0)
    barrier = store.merge_arrive(
        execution_id, m.merge_id, m.scope, m.parent, token, m.payload, rule, m.now_ms
    )
    decided = barrier.state in (BarrierState.RELEASED, BarrierState.EXPIRED)
    if m.timer_token and decided:
        store.retire(execution_id, m.timer_token, now_ns)
    park = m.park
    if park is not None:
        if decided:
            store.cancel_timer(park.timer_id)
        elif (
            barrier.state is BarrierState.WAITING and verdict is Verdict.RUN and parked(m, barrier)
        ):
            due = barrier.first_ms + m.rule.timeout_ms
            store.schedule(park.timer_id, due, park.payload, owner=execution_id)
    return barrier


def root_token(execution_id: str) -> str:
    """Token of a master message (which carries none)."""
    return ROOT


ROOT = "root"


def opens_unknown(token: str, *, anew: bool = False, begun: bool = False) -> bool:
    """Whether `token` may open an execution the store knows nothing of: the root (the API's
    start message), a joining token (a branch of a Go worker's execution, which runeworker may
    not have seen yet), a replayed dead letter (`anew`: its state may have expired since, as
    `runeworker dlq` says), or a step of an execution whose single-branch start was recorded
    (`begun`: a peer took its first steps without the protocol). Any other token was derived
    from a parent that advanced in the store: its execution's record is lost."""
    return token == ROOT or token.startswith(JOINING) or anew or begun


# The prefix of a joining token (`message_token`): a branch the execution did not foresee, which
# joins it while it is open (`StateStore.admit`).
JOINING = "join:"


def message_token(msg: NodeExecutionMessage) -> str:
    """The branch token of `msg`. Its own when it carries one. A message without one is the
    root when it names no parent (the API's start message); one that names a parent
    (`from_node`: a next message a Go worker wrote, a Go worker's frozen wait, or a parent's
    arrival at a merge as upstream's merge tests publish them) is a branch of its own, which
    no runeworker step foresaw: its joining token (`joining_token`) is derived from its
    parent, node and lineage (a redelivery derives the same one), and it joins its execution
    while that is open. A step on the hot path reads `msg.branch_token or message_token(msg)`:
    a message that carries its token costs no call."""
    token = msg.branch_token
    if token:
        return token
    parent = msg.from_node
    if not parent:
        return root_token(msg.execution_id)
    stack = msg.lineage_stack
    return joining_token(parent, msg.current_node, [f.branch_id for f in stack] if stack else [])


def joining_token(parent: str, node: str, branch_ids: list[str]) -> str:
    """The joining token of a message without a token from `parent` to `node` in the split
    branches `branch_ids` (its lineage's, outermost first): `message_token`, and a rejection
    that reads the message's ids from its bytes alone (`runeworker.engine.rejection`). Every
    part is escaped (a `\\` or `|` in an id, an empty branch id), so that two different
    messages of an execution never derive one token; ids without those give the names of
    the first version."""
    lineage = "|".join(_part(b) if b else "\\e" for b in branch_ids)
    name = f"{_part(parent)}|{_part(node)}|{lineage}"
    return JOINING + hashlib.blake2b(name.encode(), digest_size=10).hexdigest()


def _part(text: str) -> str:
    """`text` with `\\` and `|` escaped (one part of a joining token's name)."""
    if "|" in text or "\\" in text:
        return text.replace("\\", "\\\\").replace("|", "\\|")
    return text


def attempt_key(body: bytes) -> str:
    """Identity of a message for redelivery counting."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def child_token(parent: str, index: int, dst: str) -> str:
    """Deterministic token of the `index`-th next message of `parent`: a redelivered parent
    derives the same children, so they are never counted twice."""
    digest = hashlib.blake2b(f"{parent}|{index}|{dst}".encode(), digest_size=10)
    return digest.hexdigest()


def derived_uuid(namespace: uuid.UUID, name: str) -> str:
    """`str(uuid.uuid5(namespace, name))` (RFC 4122 section 4.3: SHA-1 of the namespace and
    the name, version and variant bits set), without building the `UUID` object on the way,
    which costs more than the hash."""
    h = hashlib.sha1(namespace.bytes + name.encode()).digest()
    x = (h[:6] + bytes(((h[6] & 0x0F) | 0x50, h[7], (h[8] & 0x3F) | 0x80)) + h[9:16]).hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def child_tokens(parent: str, dsts: list[str]) -> list[str]:
    """The tokens of the next messages of `parent`, one per destination in publishing order."""
    return [child_token(parent, i, dst) for i, dst in enumerate(dsts)]


class _Execution:
    __slots__ = (
        "contexts", "done", "ended", "failure", "live", "lost", "lost_by", "started_at_ns",
        "steps",
    )  # fmt: skip

    def __init__(self, token: str, now_ns: int) -> None:
        self.live: set[str] = {token}
        self.done: dict[str, Transition] = {}
        self.contexts: list[bytes] = []
        self.failure: Failure | None = None
        self.started_at_ns = now_ns
        self.steps = 0
        self.ended = False  # the last branch closed it (a failure is `failure`)
        self.lost = ""  # what of its state a step found lost (`StateLost.what`)
        self.lost_by = ""  # the token of that step


class MemoryStore(MemoryFlow):
    """In-process `StateStore` for `runeworker run` and tests. Thread-safe."""

    parks_in_arrival = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()  # settle = admit + advance under one hold
        self._executions: dict[str, _Execution] = {}
        self._attempts: dict[str, int] = {}
        self._spared: set[str] = set()  # whose next redelivery is no attempt (spare_attempts)
        self._started: dict[str, int] = {}

    def count_attempt(self, body: bytes) -> int:
        with self._lock:
            key = attempt_key(body)
            if key in self._spared:
                self._spared.discard(key)
                return self._attempts.get(key, 0)
            self._attempts[key] = self._attempts.get(key, 0) + 1
            return self._attempts[key]

    def spare_attempts(self, bodies: list[bytes]) -> None:
        with self._lock:
            self._spared.update(attempt_key(body) for body in bodies)

    def settle(
        self,
        execution_id: str,
        token: str,
        children: list[str],
        leaf_context: bytes | None,
        failure: Failure | None,
        now_ns: int,
        max_steps: int,
        *,
        anew: bool = False,
    ) -> Settlement:
        with self._lock:
            # the failure of a token whose state is lost is recorded, not refused
            admission = self._admission(execution_id, token, now_ns, anew, failure is not None)
            verdict = admission.verdict
            if verdict is Verdict.STALE:
                return Settlement(verdict, Transition(closed=False))
            if verdict is Verdict.CANCELLED:
                return Settlement(
                    verdict, self.advance(execution_id, token, [], None, None, now_ns)
                )
            if admission.steps >= max_steps:
                return Settlement(verdict, None)
            advanced = self.advance(execution_id, token, children, leaf_context, failure, now_ns)
            return Settlement(verdict, advanced)

    def arrive(
        self,
        execution_id: str,
        token: str,
        now_ns: int,
        max_steps: int,
        arrival: Arrival,
        foreseen: dict[str, list[str]],
    ) -> Arrived:
        with self._lock:
            admission = self.admit(execution_id, token, now_ns)
            verdict = admission.verdict
            if verdict is Verdict.STALE:
                return Arrived(verdict, None, Transition(closed=False))
            if verdict is Verdict.CANCELLED:
                absorbed = self.advance(execution_id, token, [], None, None, now_ns)
                return Arrived(verdict, None, absorbed)
            if admission.steps >= max_steps:
                return Arrived(verdict, None, None)
            barrier = record_arrival(self, execution_id, token, verdict, now_ns, arrival)
            children = foreseen_children(arrival, barrier, foreseen)
            if children is None:
                return Arrived(verdict, barrier, None)
            advanced = self.advance(execution_id, token, children, None, None, now_ns)
            return Arrived(verdict, barrier, advanced)

    def begin(self, execution_id: str, now_ns: int) -> None:
        with self._lock:
            self._started.setdefault(execution_id, now_ns)

    def flush(self) -> None:
        """Nothing is kept back in memory."""

    def started_at(self, execution_id: str) -> int:
        with self._lock:
            if execution_id in self._started:
                return self._started[execution_id]
            ex = self._executions.get(execution_id)
            return ex.started_at_ns if ex is not None else 0

    def _open(self, execution_id: str, token: str, now_ns: int, anew: bool) -> _Execution:
        """The execution, opened with `token` as its only live branch when it is unknown (and
        marked lost when the token may not open it: `opens_unknown`); a joining token
        (`message_token`) becomes live while the execution is open (a branch live, no
        failure) and the token never advanced."""
        ex = self._executions.get(execution_id)
        if ex is None:
            ex = self._executions[execution_id] = _Execution(token, now_ns)
            if not opens_unknown(token, anew=anew, begun=execution_id in self._started):
                ex.lost, ex.lost_by = "execution", token
        elif token.startswith(JOINING) and ex.live and ex.failure is None and token not in ex.done:
            ex.live.add(token)
        return ex

    def _lost(self, ex: _Execution, token: str) -> str:
        """What of the execution's state is lost, as far as `token` can tell ("" when nothing):
        its mark, for the token that found it (before its failure is recorded, or replaying
        it); its live branches, when none is left in an execution that has not ended (the
        token is then kept live, marked)."""
        recorded = token in ex.done
        if ex.lost and token == ex.lost_by:
            if recorded:
                return ex.lost
            if ex.failure is not None:
                return ""
            ex.live.add(token)  # kept live, even should the live set be lost in between
            return ex.lost
        if recorded or ex.failure is not None or token in ex.live or ex.lost:
            return ""
        if not ex.live and not ex.ended:
            ex.lost, ex.lost_by = "branches", token
            ex.live.add(token)
            return ex.lost
        return ""

    def admit(self, execution_id: str, token: str, now_ns: int, *, anew: bool = False) -> Admission:
        return self._admission(execution_id, token, now_ns, anew, False)

    def _admission(
        self, execution_id: str, token: str, now_ns: int, anew: bool, failing: bool
    ) -> Admission:
        """`admit`; a loss raises `StateLost` unless `failing` (the caller records a failure:
        the token is live then)."""
        with self._lock:
            ex = self._open(execution_id, token, now_ns, anew)
            lost = self._lost(ex, token)
            if lost and not failing:
                raise state_lost(execution_id, lost)
            if token in ex.done:
                return Admission(Verdict.REPLAY, ex.steps)
            if ex.failure is not None:
                return Admission(Verdict.CANCELLED, ex.steps)
            if token not in ex.live:
                return Admission(Verdict.STALE, ex.steps)
            return Admission(Verdict.RUN, ex.steps)

    def advance(
        self,
        execution_id: str,
        token: str,
        children: list[str],
        leaf_context: bytes | None,
        failure: Failure | None,
        now_ns: int,
    ) -> Transition:
        with self._lock:
            # advance without admit: an unknown execution opens with the token as its only
            # live one (if the token may open it), a joining token joins
            ex = self._open(execution_id, token, now_ns, False)
            lost = self._lost(ex, token)
            if lost and failure is None:
                raise state_lost(execution_id, lost)
            recorded = ex.done.get(token)
            if recorded is not None:
                return recorded
            if token not in ex.live:
                return Transition(closed=False)
            ex.steps += 1
            ex.live.discard(token)
            if failure is not None:
                # the first failure closes the execution at once; its siblings are cancelled
                ex.failure = failure
                ex.live.clear()
                timers = sorted(self.timers_of(execution_id))
                result = Transition(
                    True, failure.status, failure.reason, ex.started_at_ns, [failure.context],
                    timers,
                )  # fmt: skip
            else:
                # a token that already advanced never becomes live again; a hold token only
                # when nothing else would be live (`StateStore.advance`)
                ex.live.update(c for c in children if c not in ex.done and not c.startswith(HOLD))
                if not ex.live:
                    ex.live.update(c for c in children if c.startswith(HOLD) and c not in ex.done)
                if leaf_context is not None:
                    ex.contexts.append(leaf_context)
                result = Transition(closed=False)
                if not ex.live:
                    ex.ended = True
                    started = ex.started_at_ns
                    result = Transition(True, COMPLETED, "", started, list(ex.contexts))
            ex.done[token] = result
            return result

    def retire(
        self, execution_id: str, token: str, now_ns: int, *, counted: bool = True
    ) -> Transition:
        with self._lock:
            ex = self._executions.get(execution_id)
            if ex is None:
                return Transition(closed=False)
            if token in ex.done:
                return ex.done[token]
            if token in ex.live:
                retired = self.advance(execution_id, token, [], None, None, now_ns)
                if not counted:
                    ex.steps -= 1  # the advance counted one
                return retired
            ex.done[token] = Transition(closed=False)  # never live: `advance` skips it
            return ex.done[token]


def now_ns() -> int:
    return time.time_ns()
