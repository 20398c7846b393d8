"""Merge arrivals around the merge's own timeout, as broker and Redis failovers interleave them
(the cluster suite's broker-node-kill and Sentinel scenarios, deploy/SCALING.md).

A late arrival that races the timeout timer (`test_an_arrival_admitted_before_...`):

The interleaving: the merge's timer fires and decides the barrier as expired; before its step
records the halt (its advance), the late branch's arrival is admitted (the execution has not
failed yet) and finds the barrier decided. Before the fix the arrival reported the merge
`success` (`_merge_ignored`) after its `failed`; the arrival belongs to a halted execution and
must publish nothing, as it does when it is admitted after the halt. (An arrival admits its
token and reaches the barrier in one atomic call, `StateStore.arrive`, so the window is the
timer's, between its barrier call and its advance.)

The interleaving is forced, not waited for: a store wrapper runs the late arrival's whole step
when the timer's step reaches its advance. It runs against the in-memory store and the real
Redis (the Lua scripts the workers run; those variants are marked `integration`). It lives with
the unit tests so that mutation testing of the step modules runs its in-memory variants.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flowkit import TRIGGER, Run, definition, drive, n, start, step

from runeworker.adapters.redis_state import RedisStore
from runeworker.engine.executor import Executor
from runeworker.engine.merge_timer import timer_of
from runeworker.engine.messages import decode_execution
from runeworker.engine.state import MemoryStore, StateStore, Timer, Transition, Verdict

REDIS_URL = "redis://127.0.0.1:6379/0"


def joined(policy: dict[str, Any] | None = None) -> bytes:
    """trigger -> quick -> merge and trigger -> pause (60 s) -> merge; merge (timeout 0.2 s)
    -> end: the cluster suite's merge-timeout workflow with a longer wait."""
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 60}}
    merge: dict[str, Any] = {"id": "merge", "name": "Merge", "type": "merge"}
    merge["parameters"] = {"wait_mode": "wait_for_all", "timeout": 0.2}
    if policy:
        merge["error"] = policy
    nodes = [TRIGGER, pause, n("quick"), merge, n("end")]
    edges = [("e1", "trigger", "pause"), ("e2", "trigger", "quick"), ("e3", "pause", "merge"),
             ("e4", "quick", "merge"), ("e5", "merge", "end")]  # fmt: skip
    return definition(nodes, edges)


class Interleaved:
    """A StateStore that runs `before()` once, when the advance of `token` reaches it."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.token = ""
        self.before: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def advance(self, execution_id: str, token: str, *args: Any) -> Transition:
        if token == self.token and self.before is not None:
            before, self.before = self.before, None
            before()
        return self.store.advance(execution_id, token, *args)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.node.get_closest_marker("integration") is None:
        pytest.fail("the Redis variant must be marked integration")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    prefix = f"rwtest:{uuid.uuid4().hex}:"
    yield RedisStore(client, prefix=prefix, ttl_seconds=600)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def _race(store: StateStore, policy: dict[str, Any] | None = None) -> Run:
    """Drive the execution to the point where both timers are due, then step the merge's timer
    with the late branch's arrival run inside it (see the module doc)."""
    race = Interleaved(store)
    executor, run = Executor(race), Run()  # type: ignore[arg-type]
    opened = step(executor, start(joined(policy), "trigger", execution_id=uuid.uuid4().hex), run)
    drive(*opened.messages, executor=executor, run=run)  # quick waits at the merge, pause parks
    eid = opened.messages[0].execution_id
    due: list[Timer] = store.claim_due(time.time_ns() // 1_000_000 + 61_000, 10, 60_000)
    merge_timer = timer_of(eid, "merge", "")
    [fire] = [t for t in due if t.timer_id == merge_timer.timer_id]
    [wake] = [t for t in due if t.timer_id != merge_timer.timer_id]
    for timer in due:
        store.ack_timer(timer.timer_id)
    resumed = step(executor, decode_execution(wake.payload), run, resumed=True)  # pause ends
    [late] = resumed.messages
    assert (late.current_node, late.from_node) == ("merge", "pause")
    arrived: list[Run] = []
    race.token = merge_timer.token
    race.before = lambda: arrived.append(drive(late, executor=executor, run=run))
    fired = step(executor, decode_execution(fire.payload), run, resumed=True)
    assert len(arrived) == 1  # the late arrival did run inside the timer's step
    drive(*fired.messages, executor=executor, run=run)  # what the timer's step routed to
    return run


@pytest.mark.integration
def test_an_arrival_admitted_before_the_timer_halts_the_execution_publishes_nothing(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="runeworker.executor"):
        run = _race(store)
    eid = run.statuses[0].execution_id
    dropped = f"node merge (merge) of execution {eid}: the execution halted while it ran; dropped"
    assert dropped in caplog.messages
    [cancelled] = [r for r in run.results if r.report.verdict is Verdict.CANCELLED]
    assert (cancelled.report.outcome, cancelled.report.node_type) == ("skipped", "merge")
    assert (cancelled.statuses, cancelled.messages, cancelled.completion) == ([], [], None)
    merge = [status for name, status in run.trail if name == "Merge"]
    # quick's arrival: running, waiting; the timer: failed; the late arrival: nothing
    assert merge == ["running", "waiting", "failed"]
    assert run.completion.status == "halted"
    assert not [s for s in run.statuses if s.node_name == "END"]


@pytest.mark.integration
def test_under_an_ignore_policy_the_late_arrival_is_still_absorbed_with_success(
    store: StateStore,
) -> None:
    """With `ignore` the timed-out merge routes on: the execution goes on, and the late
    arrival finds the merge decided, as an arrival after any decision does (`_merge_ignored`,
    like the loser of a wait_for_any race)."""
    run = _race(store, {"type": "ignore"})
    merge = [status for name, status in run.trail if name == "Merge"]
    # the late arrival's step ended inside the timer's step, so its statuses come first
    assert merge == ["running", "waiting", "running", "success", "failed"]
    assert run.outputs("Merge")[-1] == {"_merge_ignored": True}
    assert run.completion.status == "completed"


@pytest.mark.integration
def test_an_arrival_replayed_after_the_timeout_leaves_the_decision_to_the_timer(
    store: StateStore,
) -> None:
    """quick's arrival waited at the merge and its advance was recorded, but the transaction
    holding its step was lost (its batch aborted on a Redis failover or a lost broker node),
    so it is redelivered after the timeout: it replays `waiting`, and the timer fails the
    merge and halts the execution. Before the fix the replay expired the barrier itself: the
    merge reported `failed`, but the failure belonged to an advance already recorded (without
    it), so the execution completed as if nothing had failed."""
    now = [time.time_ns()]
    executor, run = Executor(store, clock=lambda: now[0]), Run()
    opened = step(executor, start(joined(), "trigger", execution_id=uuid.uuid4().hex), run)
    drive(*opened.messages, executor=executor, run=run)  # quick waits at the merge, pause parks
    [arrival] = [m for m in run.messages if m.current_node == "merge"]
    now[0] += 5_000_000_000  # redelivered 5 s later, past the 0.2 s timeout
    again = step(executor, arrival, run)
    assert [s.status for s in again.statuses] == ["waiting"]
    eid = arrival.execution_id
    due = store.claim_due(now[0] // 1_000_000 + 61_000, 10, 60_000)
    due.sort(key=lambda t: t.timer_id != timer_of(eid, "merge", "").timer_id)  # merge's first
    for timer in due:
        store.ack_timer(timer.timer_id)
        fired = step(executor, decode_execution(timer.payload), run, resumed=True)
        drive(*fired.messages, executor=executor, run=run)
    merge = [status for name, status in run.trail if name == "Merge"]
    assert merge == ["running", "waiting", "running", "waiting", "failed"]
    assert run.completion.status == "halted"
    assert "timed out" in run.completion.failure_reason
