"""wait and resume through the executor and the embedded runner (upstream:
services/rune-worker/pkg/nodes/custom/wait/wait_node.go, pkg/messaging/resume_consumer.go;
docs/WIRE.md section 7)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from flowkit import TRIGGER, Run, definition, drive, fire_timers, n, start, step
from statecases import Meanwhile

from runeworker.engine.executor import EARLY_RESUME_GRACE_MS, Executor
from runeworker.engine.local import LocalRunner
from runeworker.engine.messages import StackFrame, decode_execution, encode
from runeworker.engine.outbox import Outbox
from runeworker.engine.state import MemoryStore, Verdict
from runeworker.errors import NodeError
from runeworker.nodes.wait import resume_at

FRAME = StackFrame("s", "ex-1_s_0", 0, 2)


def waiting_flow(successors: bool = True, **params: Any) -> bytes:
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": params}
    nodes = [pause, n("after", value="$Pause.timer_id")] if successors else [pause]
    return definition(nodes, [("e1", "pause", "after")] if successors else [])


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_wait_publishes_running_and_waiting_and_parks() -> None:
    """As upstream's TestExecutorExecuteWaitNodePublishesWaitingStatusOnly: running + waiting,
    no next message, no completion; the frozen message is stored as a timer (docs/WIRE.md
    section 7), holding the branch's one child token."""
    store = MemoryStore()
    msg = msgspec.structs.replace(
        start(waiting_flow(amount=2, unit="minutes"), "pause", {"$x": 1}),
        lineage_stack=[FRAME], from_node="before",
    )  # fmt: skip
    run, before = Run(), now_ms()
    result = step(Executor(store), msg, run)
    assert run.trail == [("Pause", "running"), ("Pause", "waiting")]
    assert (result.messages, result.completion) == ([], None)
    output = run.statuses[1].output
    assert isinstance(output, dict) and set(output) == {"resume_at", "timer_id"}
    assert before + 120_000 <= output["resume_at"] <= now_ms() + 120_000
    assert store.next_due() == output["resume_at"]
    [timer] = store.claim_due(output["resume_at"], 10, 1000)
    assert timer.timer_id == output["timer_id"]
    frozen = decode_execution(timer.payload)
    assert (frozen.current_node, frozen.is_worker_initiated, frozen.from_node) == (
        "pause", True, "before")  # fmt: skip
    assert frozen.accumulated_context == {"$x": 1, "$Pause": output}
    assert frozen.lineage_stack == [FRAME]
    assert frozen.ghost is msgspec.UNSET and frozen.branch_token != msg.branch_token
    assert bytes(frozen.workflow_definition) == bytes(msg.workflow_definition)


def test_resume_succeeds_and_routes_on() -> None:
    """As upstream's resume_consumer_test.go, plus from_node: success with the frozen output and
    re-resolved parameters, duration 0; the next message has from_node = the wait node, lineage
    and the flag."""
    executor, run = Executor(MemoryStore()), Run()
    msg = msgspec.structs.replace(
        start(waiting_flow(amount="$n", unit="minutes"), "pause", {"$n": 2}), lineage_stack=[FRAME]
    )
    step(executor, msg, run)
    waiting = run.statuses[1].output
    assert isinstance(waiting, dict)
    [resumed] = fire_timers(executor, run, waiting["resume_at"])
    success = resumed.statuses[0]
    assert resumed.report.outcome == "success"
    assert (success.status, success.output, success.duration_ms) == ("success", waiting, 0)
    assert success.parameters == {"amount": 2, "unit": "minutes"}
    assert (success.all_used_input_keys, success.total_items) == (msgspec.UNSET, 2)
    [nxt] = resumed.messages
    assert (nxt.current_node, nxt.from_node, nxt.is_worker_initiated) == ("after", "pause", True)
    assert nxt.lineage_stack == [FRAME]
    assert run.trail[-2:] == [("AFTER", "running"), ("AFTER", "success")]
    assert run.completion.final_context["$AFTER"] == {"value": waiting["timer_id"]}


def test_resume_without_successors_completes() -> None:
    executor, run = Executor(MemoryStore()), Run()
    step(executor, start(waiting_flow(successors=False, amount=0), "pause", {"$x": 1}), run)
    [resumed] = fire_timers(executor, run, now_ms())
    assert resumed.messages == []
    waiting = run.statuses[1].output
    assert run.completion.status == "completed"
    assert run.completion.final_context == {"$x": 1, "$Pause": waiting}


def test_redelivered_wait_schedules_one_timer() -> None:
    store = MemoryStore()
    executor, run = Executor(store), Run()
    msg = start(waiting_flow(amount=1), "pause")
    first, again = step(executor, msg, run), step(executor, msg, run)
    assert (first.report.verdict, again.report.verdict) == (Verdict.RUN, Verdict.REPLAY)
    ids = [s.output["timer_id"] for s in run.statuses if isinstance(s.output, dict)]
    assert len(set(ids)) == 1
    assert len(store.claim_due(now_ms() + 5_000, 10, 1000)) == 1


def test_resume_of_a_node_that_is_not_a_wait_fails() -> None:
    run = Run()
    step(Executor(MemoryStore()), start(waiting_flow(), "after"), run, resumed=True)
    assert run.trail == [("AFTER", "failed")]
    assert run.completion.status == "failed"
    assert (
        run.completion.failure_reason == "resume message names node after, which is not a wait node"
    )


def test_merge_after_a_wait_opens() -> None:
    """The resumed branch tells the merge where it comes from (Go sends no from_node)."""
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 0.05}}
    merge = {"id": "merge", "name": "Merge", "type": "merge"}
    nodes = [TRIGGER, pause, n("quick"), merge, n("end")]
    edges = [("e1", "trigger", "pause"), ("e2", "trigger", "quick"), ("e3", "pause", "merge"),
             ("e4", "quick", "merge"), ("e5", "merge", "end")]  # fmt: skip
    statuses: list[Any] = []
    done = LocalRunner(on_status=statuses.append).run(start(definition(nodes, edges), "trigger"))
    assert done is not None and done.status == "completed"
    released = [s.output for s in statuses if s.node_name == "Merge" and s.status == "success"]
    assert [o["_merge_sources"] for o in released] == [["pause", "quick"]]
    assert set(done.final_context) == {"$Pause", "$QUICK", "$Merge", "$END"}


def test_local_runner_sleeps_until_the_timer() -> None:
    """Upstream's e2e/wait_e2e_test.go in one process: waiting, then (after the wait) success and
    the completion."""
    slept: list[float] = []
    runner = LocalRunner(on_status=lambda s: None, sleep=slept.append)  # no real sleeping
    done = runner.run(start(waiting_flow(amount=30, unit="seconds"), "pause"))
    assert done is not None and done.status == "completed"
    assert len(slept) == 1 and 29.0 < slept[0] <= 30.0


def test_local_runner_sleeps_towards_a_far_timer_in_steps_time_sleep_can_take() -> None:
    """`runeworker run` of a wait until the year 2400 (more than the ~292 years time.sleep can
    take in one call, OverflowError) sleeps a day at a time, the whole delay in all."""
    slept: list[float] = []
    runner = LocalRunner(on_status=lambda s: None, sleep=slept.append)  # no real sleeping
    begun = now_ms()
    done = runner.run(start(waiting_flow(date_time="2400-01-01T00:00:00Z"), "pause"))
    assert done is not None and done.status == "completed"
    assert max(slept) == 86_400.0
    assert abs(sum(slept) * 1000 - (13_569_465_600_000 - begun)) < 60_000


def test_halt_while_waiting_completes_when_the_timer_fires() -> None:
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 0.01}}
    nodes = [TRIGGER, pause, n("stop", "flow.fail"), n("after")]
    edges = [("e1", "trigger", "pause"), ("e2", "trigger", "stop"), ("e3", "pause", "after")]
    statuses: list[Any] = []
    done = LocalRunner(on_status=statuses.append).run(start(definition(nodes, edges), "trigger"))
    assert done is not None and (done.status, done.failure_reason) == (
        "halted", "node STOP (stop) failed: refused None")  # fmt: skip
    assert [(s.node_name, s.status) for s in statuses if s.node_name == "AFTER"] == []


NOW = 1_700_000_000_000


@pytest.mark.parametrize(("params", "due"), [
    ({}, NOW + 1000),
    ({"amount": 2, "unit": "minutes"}, NOW + 120_000),
    ({"amount": "1.5", "unit": "Hours"}, NOW + 5_400_000),
    ({"amount": 0.25, "unit": "seconds"}, NOW + 250),
    ({"amount": 3, "unit": "days"}, NOW + 259_200_000),
    ({"date_time": "2030-01-01T00:00:00Z", "amount": 5}, 1_893_456_000_000),
    ({"date_time": "2030-01-01T01:00:00+01:00"}, 1_893_456_000_000),
    ({"date_time": "2030-01-01T00:00:00"}, 1_893_456_000_000),
    ({"date_time": "2020-01-01T00:00:00Z"}, NOW),  # past: at once
])  # fmt: skip
def test_resume_time(params: dict[str, Any], due: int) -> None:
    """Numeric strings and the absolute `date_time` form are accepted (the Go node refuses both)."""
    assert resume_at(params, NOW) == due


@pytest.mark.parametrize(("params", "error"), [
    ({"amount": -1}, "amount must be non-negative"),
    ({"amount": "soon"}, "amount must be a number, not 'soon'"),
    ({"amount": True}, "amount must be a number, not boolean"),
    ({"unit": "wk"}, "invalid unit wk: use one of seconds, minutes, hours, days"),
    ({"date_time": "tomorrow"},
     "date_time 'tomorrow' is not an ISO 8601 date and time (e.g. 2026-01-31T09:00:00Z)"),
    ({"date_time": 5}, "date_time must be an ISO 8601 date and time, not number"),
    ({"amount": 1e300}, "the wait ends after the year 9999: amount is too large"),
])  # fmt: skip
def test_bad_wait_parameters(params: dict[str, Any], error: str) -> None:
    with pytest.raises(NodeError) as info:
        resume_at(params, NOW)
    assert str(info.value) == error


def test_bad_parameter_fails_the_node() -> None:
    run = drive(start(waiting_flow(amount="soon"), "pause"))
    assert run.trail == [("Pause", "running"), ("Pause", "failed")]
    assert msgspec.json.decode(encode(run.statuses[1]))["error"]["message"] == (
        "amount must be a number, not 'soon'")  # fmt: skip
    assert run.completion.status == "halted"


def test_waits_inside_split_branches_come_back_to_the_aggregator() -> None:
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": "$item"}}
    agg = {"id": "agg", "name": "Agg", "type": "aggregator"}
    nodes = [n("split", "split", input_array=[0.03, 0.01, 0.02]), pause, n("x", value="$item"), agg]
    edges = [("e1", "split", "pause"), ("e2", "pause", "x"), ("e3", "x", "agg")]
    statuses: list[Any] = []
    done = LocalRunner(on_status=statuses.append).run(start(definition(nodes, edges), "split"))
    assert done is not None and done.status == "completed"
    resumed = [s.item_index for s in statuses if s.node_name == "Pause" and s.status == "success"]
    # in the order the timers fell due: each is due its amount after its wait ran, so on a
    # loaded machine a later wait can fall due after a longer earlier one; the waiting
    # statuses tell when each was due
    due = {s.item_index: s.output["resume_at"] for s in statuses if s.status == "waiting"}
    assert sorted(resumed) == sorted(due) == [0, 1, 2]
    assert [due[i] for i in resumed] == sorted(due.values())
    assert done.final_context == {  # nothing of the branches but what they aggregated
        "$SPLIT": {"_split_items": [0.03, 0.01, 0.02]},
        "$Agg": {
            "aggregated": [{"value": 0.03}, {"value": 0.01}, {"value": 0.02}],
            "_aggregator_processed_count": 3,
        },
    }


@pytest.mark.parametrize("params", [{"amount": 0}, {"date_time": "2020-01-01T00:00:00Z"}])
def test_a_resume_that_overtakes_the_wait_step_comes_back_and_completes(
    params: dict[str, Any],
) -> None:
    """A wait due at once: another child's scheduler claims the timer and its resume step runs
    between the wait step's schedule and its advance (made deterministic with `Meanwhile`).
    The resume finds the token not parked yet: nothing is published, the timer is scheduled
    again, and once the step has parked the token the second firing resumes the wait and the
    execution completes (before: the resume was dropped and no completion ever came). A
    `date_time` long past resumes at once as well: its `resume_at` is the step's time, so the
    grace after it holds (before: it was the past time itself, the grace long over, and the
    early resume was dropped)."""
    store = MemoryStore()
    early: list[Outbox] = []

    def resume_meanwhile() -> None:
        [timer] = store.claim_due(now_ms() + 10, 10, 60_000)
        store.ack_timer(timer.timer_id)
        early.append(Executor(store).step(decode_execution(timer.payload), resumed=True))

    run = Run()
    pausing = Executor(Meanwhile(store, "advance", resume_meanwhile))  # type: ignore[arg-type]
    step(pausing, start(waiting_flow(**params), "pause"), run)
    [overtaken] = early
    assert overtaken.report.verdict is Verdict.STALE
    assert (overtaken.statuses, overtaken.messages, overtaken.completion) == ([], [], None)
    assert run.trail == [("Pause", "running"), ("Pause", "waiting")] and not run.completions
    again = store.next_due()
    assert again is not None and again > now_ms() - 1_000  # scheduled anew, not the old due time
    fire_timers(Executor(store), run, again)
    assert run.trail[2:] == [("Pause", "success"), ("AFTER", "running"), ("AFTER", "success")]
    assert run.completion.status == "completed"


def test_a_stale_resume_long_after_its_due_time_is_dropped() -> None:
    """Past the grace period a stale resume was never the wait's to run: dropped, no timer."""
    store = MemoryStore()
    run = Run()
    step(Executor(store), start(waiting_flow(amount=0), "pause"), run)
    [timer] = store.claim_due(now_ms() + 10, 10, 60_000)
    store.ack_timer(timer.timer_id)
    late = time.time_ns() + (EARLY_RESUME_GRACE_MS + 5_000) * 1_000_000
    stale = msgspec.structs.replace(decode_execution(timer.payload), branch_token="not-parked")
    dropped = Executor(store, clock=lambda: late).step(stale, resumed=True)
    assert dropped.report.verdict is Verdict.STALE and dropped.statuses == []
    assert store.next_due() is None
    assert Executor(store).step(stale, resumed=True).report.verdict is Verdict.STALE
    assert store.next_due() is not None  # within the grace period it comes back


def _deeper_than_allowed(levels: int = 150) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"d": value}
    return value


def _resume_too_deep(executor: Executor, defn: bytes) -> dict[str, Any]:
    """The resume message (decoded JSON) of the wait `pause` of `defn`, parked and its timer
    claimed, with a frozen output nested deeper than allowed."""
    run = Run()
    step(executor, start(defn, "pause"), run)
    waiting = run.statuses[1].output
    assert isinstance(waiting, dict)
    [timer] = executor.store.claim_due(waiting["resume_at"], 10, 1000)
    executor.store.ack_timer(timer.timer_id)
    body: dict[str, Any] = msgspec.json.decode(timer.payload)
    body["accumulated_context"]["$Pause"]["resume_at"] = _deeper_than_allowed()
    return body


@pytest.mark.parametrize("early", [False, True])
def test_a_resume_whose_frozen_output_nests_too_deeply_fails_the_wait(early: bool) -> None:
    """Found by fuzzing: a resume message whose frozen `$<wait>` nests deeper than 100 levels let
    DepthError escape the step (the child turned it into `cannot execute node pause:
    DepthError: ...`). The wait fails under its error policy, as any node meeting such a value;
    a resume that comes before its wait parked (a token not parked) finds no timer to read in
    it and is dropped, as one whose frozen output is no object."""
    executor = Executor(MemoryStore())
    body = _resume_too_deep(executor, waiting_flow(amount=1, unit="seconds"))
    if early:
        body["branch_token"] = "not-parked"
    msg = decode_execution(msgspec.json.encode(body))
    result = executor.step(msg, lambda s, _b: None, resumed=True)
    if early:
        assert result.report.verdict is Verdict.STALE
        assert (result.statuses, result.messages, result.completion) == ([], [], None)
        assert executor.store.next_due() is None
        return
    [failed] = result.statuses
    assert failed.status == "failed" and failed.error is not msgspec.UNSET
    assert failed.error.message == "context value $Pause is nested deeper than 100 levels"
    assert result.completion is not None and result.completion.status == "halted"


@pytest.mark.parametrize("policy", ["ignore", "branch"])
def test_a_resume_whose_frozen_output_nests_too_deeply_follows_the_waits_policy(
    policy: str,
) -> None:
    """The wait's error policy applies as to any node's failure: `ignore` routes on along the
    wait's own edges, `branch` takes its error edge with `$error` naming the wait and what was
    wrong."""
    pause = {"id": "pause", "name": "Pause", "type": "wait",
             "parameters": {"amount": 1, "unit": "seconds"},
             "error": {"type": policy, "error_edge": "e_err"}}  # fmt: skip
    defn = definition(
        [pause, n("after"), n("handler", value="$error")],
        [("e1", "pause", "after"), ("e_err", "pause", "handler")],
    )
    executor = Executor(MemoryStore())
    body = _resume_too_deep(executor, defn)
    result = executor.step(
        decode_execution(msgspec.json.encode(body)), lambda s, _b: None, resumed=True
    )
    [failed] = result.statuses
    reason = "context value $Pause is nested deeper than 100 levels"
    assert failed.status == "failed" and failed.error.message == reason  # type: ignore[union-attr]
    [nxt] = result.messages
    assert nxt.current_node == ("after" if policy == "ignore" else "handler")
    if policy == "branch":
        assert nxt.accumulated_context["$error"] == {
            "node": "Pause", "node_id": "pause", "message": reason, "code": "NODE_EXECUTION_FAILED",
        }  # fmt: skip
