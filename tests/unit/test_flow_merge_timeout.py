"""The timeout of a wait_for_all merge is enforced on time by a timer (engine.merge_timer): the
merge fails when the timer fires while its barrier still waits; a merge that opens in time
cancels the timer and retires its token."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from flowkit import TRIGGER, Run, definition, drive, fire_timers, n, start, step

from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner
from runeworker.engine.merge_timer import timer_of
from runeworker.engine.messages import NodeStatusMessage, decode_execution, encode
from runeworker.engine.state import MemoryStore, Timer, Verdict

TIMED_OUT = "node Merge (merge) failed: merge Merge timed out after 0.2 s: 1 of 2 branches arrived"


def behind_a_wait(seconds: float, timeout: float = 0.2, **policy: Any) -> bytes:
    """quick -> merge and pause(`seconds`) -> merge, the merge with `timeout` seconds."""
    pause: dict[str, Any] = {"id": "pause", "name": "Pause", "type": "wait"}
    pause["parameters"] = {"amount": seconds}
    merge: dict[str, Any] = {"id": "merge", "name": "Merge", "type": "merge"}
    merge["parameters"] = {"timeout": timeout}
    if policy:
        merge["error"] = policy
    nodes = [TRIGGER, pause, n("quick"), merge, n("end")]
    edges = [("e1", "trigger", "pause"), ("e2", "trigger", "quick"), ("e3", "pause", "merge"),
             ("e4", "quick", "merge"), ("e5", "merge", "end")]  # fmt: skip
    return definition(nodes, edges)


class RecordingStore(MemoryStore):
    """A MemoryStore that writes each timer it hands out into `events`."""

    def __init__(self, events: list[tuple[str, str]]) -> None:
        super().__init__()
        self.events = events

    def claim_due(self, now_ms: int, limit: int, lease_ms: int) -> list[Timer]:
        claimed = super().claim_due(now_ms, limit, lease_ms)
        self.events += [("timer", t.timer_id) for t in claimed]
        return claimed


def test_merge_fails_on_time_and_the_halt_cancels_the_parked_wait() -> None:
    """The merge fails when its own timer fires, `timeout` after the first arrival, not when the
    wait ends; the halt completes the execution at once and cancels the wait's timer, so the
    runner never sleeps towards it and the wait's branch never runs."""
    seen: list[tuple[float, NodeStatusMessage]] = []
    events: list[tuple[str, str]] = []
    slept: list[float] = []

    def on_status(status: NodeStatusMessage) -> None:
        seen.append((time.monotonic() - began, status))
        events.append((status.node_name, status.status))

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    store = RecordingStore(events)
    began = time.monotonic()
    done = LocalRunner(Executor(store), on_status, sleep=sleep).run(
        start(behind_a_wait(3600), "trigger")
    )
    [(at, failed)] = [(t, s) for t, s in seen if s.node_name == "Merge" and s.status == "failed"]
    # not before its timeout: due times are whole milliseconds (the first arrival's, floored),
    # so the timer may fire up to 1 ms before 0.2 s after the first arrival, which a fast
    # start reaches less than 1 ms after `began`
    assert at >= 0.2 - 0.001
    # only the merge's timer fired; the hour-long wait was cancelled, never slept towards
    assert [e for e in events if e[0] == "timer"] == [
        ("timer", timer_of("ex-1", "merge", "").timer_id)
    ]
    assert all(s < 60 for s in slept) and store.next_due() is None
    assert msgspec.json.decode(encode(failed))["error"]["message"] == TIMED_OUT.split(": ", 1)[1]
    assert done is not None and (done.status, done.failure_reason) == ("halted", TIMED_OUT)
    assert [s.status for _, s in seen if s.node_name == "Pause"] == ["running", "waiting"]
    assert not [s for _, s in seen if s.node_name == "END"]


def test_merge_that_opens_in_time_completes_once() -> None:
    store = MemoryStore()
    completions: list[Any] = []
    runner = LocalRunner(Executor(store))
    statuses: list[NodeStatusMessage] = []
    runner.on_status = statuses.append
    completions.append(runner.run(start(behind_a_wait(0.05, timeout=30), "trigger")))
    [done] = completions
    assert done is not None and done.status == "completed"
    assert [(s.node_name, s.status) for s in statuses if s.node_name == "END"] == [
        ("END", "running"), ("END", "success")]  # fmt: skip
    assert store.next_due() is None  # the merge's timer was cancelled at the release


def test_redelivered_first_arrival_arms_one_timer_and_fires_once() -> None:
    store = MemoryStore()
    executor, run = Executor(store), Run()
    opened = step(executor, start(behind_a_wait(60), "trigger"), run)
    driven = drive(*opened.messages, executor=executor, run=run)
    [arrival] = driven.messages[-1:]
    assert (arrival.current_node, arrival.from_node) == ("merge", "quick")
    first, again = driven.results[-1], step(executor, arrival, run)
    assert (first.report.verdict, again.report.verdict) == (Verdict.RUN, Verdict.REPLAY)
    later = time.time_ns() // 1_000_000 + 1_000
    timers = store.claim_due(later, 10, 60_000)  # the pause's timer is due in 60 s
    assert [t.timer_id for t in timers] == [timer_of("ex-1", "merge", "").timer_id]
    fired = step(executor, decode_execution(timers[0].payload), run, resumed=True)
    assert run.trail[-1] == ("Merge", "failed")
    # the halt closes the execution at once and cancels the pause's timer
    assert fired.completion is not None and fired.completion.status == "halted"
    assert store.next_due() is None
    # a redelivered fire replays the same decision: no message, the same completion (its
    # first attempt's commit may have been lost)
    lost = Run()  # the redelivery's run: what it publishes replaces what the lost commit held
    again = step(executor, decode_execution(timers[0].payload), lost, resumed=True)
    assert (again.report.verdict, again.messages) == (Verdict.REPLAY, [])
    assert again.completion is not None
    same = ("status", "failure_reason", "final_context")
    assert [getattr(again.completion, k) for k in same] == [
        getattr(fired.completion, k) for k in same]  # fmt: skip
    assert lost.trail == [("Merge", "failed")]
    assert fire_timers(executor, run, later + 60_000) == []  # nothing left to fire
    assert (run.completion.status, run.completion.failure_reason) == ("halted", TIMED_OUT)


def test_timer_firing_after_the_release_is_absorbed() -> None:
    store = MemoryStore()
    executor, run = Executor(store), Run()
    opened = step(executor, start(behind_a_wait(60), "trigger"), run)
    drive(*opened.messages, executor=executor, run=run)  # the pause parks, the merge waits
    now = time.time_ns() // 1_000_000
    [armed] = store.claim_due(now + 1_000, 10, 60_000)  # leased: the release cannot cancel it
    fire_timers(executor, run, now + 61_000)  # the pause resumes, the merge opens
    assert run.completion.status == "completed"
    late = step(executor, decode_execution(armed.payload), run, resumed=True)
    assert (late.statuses, late.messages, late.completion) == ([], [], None)
    assert len(run.completions) == 1 and run.trail.count(("END", "success")) == 1


def test_ignore_policy_routes_on_when_the_timer_fires() -> None:
    store = MemoryStore()
    executor, run = Executor(store), Run()
    opened = step(executor, start(behind_a_wait(60, type="ignore"), "trigger"), run)
    drive(*opened.messages, executor=executor, run=run)  # the pause parks, the merge waits
    now = time.time_ns() // 1_000_000
    [armed] = store.claim_due(now + 1_000, 10, 60_000)
    fired = step(executor, decode_execution(armed.payload), run, resumed=True)
    assert [m.current_node for m in fired.messages] == ["end"]
    drive(*fired.messages, executor=executor, run=run)
    fire_timers(executor, run, now + 61_000)  # the late branch finds the merge decided
    assert run.outputs("Merge")[-1] == {"_merge_ignored": True}
    assert run.completion.status == "completed"
    assert run.trail.count(("END", "success")) == 1
