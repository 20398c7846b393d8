"""The timeout timer of a `wait_for_all` merge: enforces the merge's `timeout` on time.

A merge arrival that parks (barrier waiting) arms the timer: a resume message for the merge node,
due at first arrival + timeout, holding one live branch token so the execution stays open while
the merge waits. Timer id and token derive from (execution, merge, scope) only, so every waiting
arrival (and every redelivery of one) arms the same timer and adds the same token (live tokens
are a set). When the barrier opens (or a late arrival expires it), the timer is cancelled and its
token dropped. When the timer fires first, it decides the barrier as expired: the merge fails.

The deciding arrival retires the token (`StateStore.arrive`, in the same atomic call as the
arrival) before its own advance, so that retiring never closes the execution, and even when no
advance has added the token yet: the waiting arrival that parks it may run in another worker
and advance only after the decision (its arrival said `waiting`, then this one decided), and
that advance must not make it live, or no step would ever retire it and the execution would
never complete. A waiting arrival that schedules the timer only after the decider cancelled it
leaves a timer whose firing finds the token retired and the barrier decided: it publishes
nothing.

Where the store can (`StateStore.parks_in_arrival`: in memory, and one Redis server or Sentinel,
not a Cluster, whose timers live in another hash slot), the arrival hands the timer to
`StateStore.arrive` (`in_arrival`): the schedule, the advance that makes the token live and the
cancel are then parts of the arrival's own atomic call, so a merge with a timeout costs one
store call per arrival like any other barrier, not three for the one that waits and two for
the one that decides. Every arrival then carries the resume message, which the one that decides
does not need: above `PARK_IN_ARRIVAL_MAX_BYTES` the step schedules and cancels by calls of its
own as before.

The firing reuses `StateStore.merge_arrive`: an arrival with data later than the timeout expires
a waiting barrier and is `closed` once another arrival decided it, which is exactly the test the
timer needs; it passes a time far past any timeout, so the decision does not depend on the
clocks of the hosts agreeing. It arrives as `TIMER_PARENT`, which no branch is: only an arrival
that waited arms the timer, so a firing that finds no barrier begun finds it lost (evicted,
flushed) and the store raises `StateLost`, which fails the execution through the timer's token
(`runeworker.engine.executor.Turn`), instead of beginning the barrier with an arrival no branch
made, where a later branch would open it one parent early or it would wait for ever. Only the
timer's own token fires it: any other message on the resume queue at a merge (Go's merges arm
no timer) decides nothing, neither expiring a waiting barrier nor reporting one lost.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

import msgspec
from msgspec import UNSET

from runeworker.engine.barriers import TIMER_PARENT, Park
from runeworker.engine.messages import NodeExecutionMessage, encode, frames
from runeworker.engine.paths import merge_parents, scope_of
from runeworker.engine.state import (
    BarrierState,
    MergeRule,
    StateStore,
    child_token,
    derived_uuid,
)
from runeworker.engine.workflow import Workflow
from runeworker.errors import NodeError

_NAMESPACE = uuid.UUID("0d5c8e3a-7b41-4f2e-9a6d-3e8f1c2b7a90")
# "now" of a firing timer: later than first arrival + timeout for any real first arrival
_FIRED_MS = 1 << 52


class MergeTimer(NamedTuple):
    """A merge barrier's timer id and the branch token its resume message carries."""

    timer_id: str
    token: str


def timer_of(execution_id: str, merge_id: str, scope: str) -> MergeTimer:
    """The one timer of the merge barrier (`execution_id`, `merge_id`, `scope`)."""
    timer_id = derived_uuid(_NAMESPACE, f"{execution_id}/merge/{merge_id}/{scope}")
    return MergeTimer(timer_id, child_token("merge-timer:" + timer_id, 0, merge_id))


# the largest resume message an arrival carries for its store to schedule (`in_arrival`):
# every arrival of the merge sends it, and the one that decides sends it for nothing, so a
# larger one is scheduled by a call of its own, by the arrival that waits
PARK_IN_ARRIVAL_MAX_BYTES = 64 * 1024


def resume_message(msg: NodeExecutionMessage, context: dict[str, Any], timer: MergeTimer) -> bytes:
    """The message the timer fires: the arrival's, resumed at the merge with the timer's token."""
    frozen = msgspec.structs.replace(
        msg,
        accumulated_context=context,
        is_worker_initiated=True,
        branch_token=timer.token,
        ghost=UNSET,
    )
    return encode(frozen)


def in_arrival(
    store: StateStore,
    timer: MergeTimer | None,
    msg: NodeExecutionMessage,
    context: dict[str, Any],
    context_bytes: int = 0,
) -> Park | None:
    """The timer as the arrival hands it to `StateStore.arrive` (which then schedules and
    cancels it in the arrival's own atomic call, one round trip instead of three), or None:
    no timer, a store that cannot (a Redis Cluster keeps timers in another hash slot), or a
    resume message over `PARK_IN_ARRIVAL_MAX_BYTES` (`context_bytes`, the context's encoded
    size when known, spares encoding a message that large). Then the step calls `park` and
    `StateStore.cancel_timer` itself."""
    if timer is None or not store.parks_in_arrival:
        return None
    if context_bytes > PARK_IN_ARRIVAL_MAX_BYTES:
        return None
    payload = resume_message(msg, context, timer)
    if len(payload) > PARK_IN_ARRIVAL_MAX_BYTES:
        return None
    return Park(timer.timer_id, payload)


def park(
    store: StateStore,
    timer: MergeTimer,
    msg: NodeExecutionMessage,
    context: dict[str, Any],
    now_ms: int,
    due_ms: int,
    schedule: bool,
) -> str:
    """A waiting arrival: the token to keep live for the timer (scheduled when `schedule`; the
    same id again is replaced, same due time), or "" when the timer is due already (a
    redelivery of an arrival counted long ago: the timer armed then fires or has fired)."""
    if now_ms >= due_ms:
        return ""
    if schedule:
        payload = resume_message(msg, context, timer)
        store.schedule(timer.timer_id, due_ms, payload, owner=msg.execution_id)
    return timer.token


def fire(
    store: StateStore, wf: Workflow, msg: NodeExecutionMessage, token: str, timeout: float
) -> NodeError | None:
    """The timer of the merge `msg.current_node` fired: the error that fails the merge if its
    barrier still waited (decided as expired, again on a redelivery), None when an arrival
    decided it first (the timer's token is then absorbed). Only the barrier's own timer
    decides: a message on the resume queue with another token (a peer's or a hand's: Go's
    merges arm no timer) decides nothing. `StateLost` when the barrier is gone from the store
    (the arrival that parked the timer's token had begun it)."""
    node = wf.node(msg.current_node)
    ex, scope = msg.execution_id, scope_of(frames(msg))
    if token != timer_of(ex, node.id, scope).token:
        return None
    rule = MergeRule(expected=1 << 30, any=False, timeout_ms=1)
    barrier = store.merge_arrive(ex, node.id, scope, TIMER_PARENT, token, b"null", rule, _FIRED_MS)
    if barrier.state is not BarrierState.EXPIRED:
        return None
    expected = len(merge_parents(wf, node.id)) or 1
    return NodeError(
        f"merge {node.label} timed out after {timeout:g} s: "
        f"{barrier.arrived} of {expected} branches arrived"
    )
