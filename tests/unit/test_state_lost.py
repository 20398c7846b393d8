"""A step whose execution's state is gone from the store (evicted, expired, flushed) fails the
execution loudly, once: a `failed` status for its node, a `failed` completion saying "state
lost (evicted or expired?)", a dead-letter copy, an ERROR log line naming the execution, its
workflow and the node, and `Report.lost` (counted as `runeworker_state_lost_total`).

Before: the step opened the execution again with its token as the only live branch and ran on;
its siblings were then stale (dropped without a word) and the execution either never completed
or completed without them. The store's side is the shared table (statecases.LOST_CASES); here
the executor's, on the in-memory store whose records are taken as Redis would evict them.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from flowkit import Run, definition, n, start, step

from runeworker.engine.executor import Executor
from runeworker.engine.flow import Failure
from runeworker.engine.messages import NodeExecutionMessage
from runeworker.engine.state import MemoryStore, Transition, Verdict

# b and c in parallel after a, joined by a merge, then d
FAN = definition(
    [n("a"), n("b"), n("c"), n("join", "merge", wait_mode="wait_for_all"), n("d")],
    [("e1", "a", "b"), ("e2", "a", "c"), ("e3", "b", "join"), ("e4", "c", "join"),
     ("e5", "join", "d")],
)  # fmt: skip
REASON = "state lost (evicted or expired?)"


def first_steps(
    store: MemoryStore, execution_id: str = "ex-1"
) -> tuple[Executor, list[NodeExecutionMessage], Run]:
    executor = Executor(store)
    run = Run()
    out = step(executor, start(FAN, "a", execution_id=execution_id), run)
    assert [m.current_node for m in out.messages] == ["b", "c"]
    return executor, out.messages, run


def test_a_step_of_an_evicted_execution_fails_it_once(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    executor, (to_b, to_c), run = first_steps(store)
    store._executions.pop("ex-1")  # evicted: every record of the execution
    with caplog.at_level(logging.ERROR, logger="runeworker.executor"):
        told = step(executor, to_b, run)
    assert told.messages == []
    assert [(s.node_id, s.status) for s in told.statuses] == [("b", "failed")]
    error = told.statuses[0].error
    assert error is not None and error.message.startswith(REASON)
    assert told.completion is not None and told.completion.status == "failed"
    reason = told.completion.failure_reason
    assert isinstance(reason, str) and reason.startswith(REASON + " at node B (b): ")
    assert "no record of execution ex-1" in reason
    assert told.dead_letter == reason
    assert (told.report.lost, told.report.outcome) == ("execution", "failed")
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    lost = reason.removeprefix(REASON + " at node B (b): ")
    assert line == (
        f"{REASON}: execution ex-1 of workflow wf-1, node b (flow.echo): {lost}; "
        "the execution fails (deploy/RUNBOOK.md, RuneworkerStateLost)"
    )
    assert told.statuses[0].duration_ms == 0
    # the sibling comes after: cancelled, nothing published, no second completion
    after = step(executor, to_c, run)
    assert (after.statuses, after.messages, after.completion) == ([], [], None)
    assert after.report.verdict is Verdict.CANCELLED and not after.report.lost
    assert [c.status for c in run.completions] == ["failed"]
    # `runeworker dlq replay` of such a message (the state gone since): it runs again, as the
    # operator asked (runeworker/commands/dlq.py), and is not failed as lost
    other, _, _ = first_steps(store, "ex-2")
    store._executions.pop("ex-2")
    replayed = other.step(msgspec.structs.replace(to_b, execution_id="ex-2"), None, replayed=True)
    assert replayed.report.lost == "" and replayed.dead_letter == ""
    assert [m.current_node for m in replayed.messages] == ["join"]
    # and one that cannot run (it names a node its definition lacks) fails for that reason,
    # its execution opened by the replay, not found lost
    store._executions.pop("ex-2")
    nowhere = msgspec.structs.replace(to_b, execution_id="ex-2", current_node="gone")
    refused = other.step(nowhere, None, replayed=True)
    assert refused.report.lost == "" and refused.completion is not None
    assert refused.completion.status == "failed"
    assert refused.completion.failure_reason == (
        "current_node gone not found in workflow definition"
    )


def test_evicted_branch_tokens_fail_the_execution_at_the_merge() -> None:
    """b reaches the merge normally; the live branch tokens are then evicted; c's arrival
    finds an execution with no live branch that has not ended: lost."""
    store = MemoryStore()
    executor, (to_b, to_c), run = first_steps(store)
    [b_join] = step(executor, to_b, run).messages
    assert step(executor, b_join, run).completion is None  # waits at the merge
    [c_join] = step(executor, to_c, run).messages
    store._executions["ex-1"].live.clear()
    told = step(executor, c_join, run)
    assert told.report.lost == "branches"
    assert told.completion is not None and told.completion.status == "failed"
    assert "live branch tokens of execution ex-1 are gone" in str(told.completion.failure_reason)
    assert [(s.node_id, s.status) for s in told.statuses] == [("join", "failed")]


def test_the_redelivery_of_a_step_that_found_the_loss_fails_the_same_way() -> None:
    """The step that found the loss is redelivered (its commit lost): it is told again, and
    publishes what the first attempt did (the failure it recorded replays), not the node's
    run and its next messages."""
    store = MemoryStore()
    executor, (to_b, _), run = first_steps(store)
    store._executions.pop("ex-1")
    first = step(executor, to_b, run)
    again = step(executor, to_b, run)
    assert first.completion is not None and again.completion is not None
    same = ("status", "failure_reason", "final_context")
    assert [getattr(again.completion, k) for k in same] == [
        getattr(first.completion, k) for k in same
    ]
    assert [(s.node_id, s.status, s.error) for s in again.statuses] == [
        (s.node_id, s.status, s.error) for s in first.statuses
    ]
    assert again.messages == []
    assert (again.dead_letter, again.report.lost) == (first.dead_letter, "execution")


def test_a_message_rejected_for_itself_still_tells_the_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A message that cannot run (here: it names a node its workflow lacks) fails its
    execution anyway, with its own reason; that the execution's state was lost too is told
    (the ERROR line, `Report.lost`), and the failure is recorded once as for any loss."""
    store = MemoryStore()
    executor, (to_b, to_c), run = first_steps(store)
    store._executions.pop("ex-1")
    bad = msgspec.structs.replace(to_b, current_node="nowhere")
    with caplog.at_level(logging.ERROR, logger="runeworker.executor"):
        told = step(executor, bad, run)
    assert told.report.lost == "execution"
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert ", node nowhere (unknown): " in line  # a node the workflow lacks has no type
    assert told.completion is not None and told.completion.status == "failed"
    assert told.completion.failure_reason == told.dead_letter
    assert "current_node nowhere not found" in told.dead_letter
    assert step(executor, to_c, run).completion is None  # cancelled: one completion


class Recording(MemoryStore):
    """A MemoryStore that records each advance and each timer cancelled; `answer`, when set,
    is the transition the next advance returns instead of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.advances: list[tuple[Any, ...]] = []
        self.cancelled: list[str] = []
        self.answer: Transition | None = None

    def advance(self, *args: Any) -> Transition:
        self.advances.append(args)
        if self.answer is not None:
            return self.answer
        return super().advance(*args)

    def cancel_timer(self, timer_id: str) -> None:
        self.cancelled.append(timer_id)
        super().cancel_timer(timer_id)


NOW = 1_800_000_000_000_000_000
SECRET = "sk-live-lost-0123456789"


def test_the_loss_is_recorded_as_the_failure_of_the_branch_that_found_it() -> None:
    """One advance of the step's token: no children, no leaf, a `failed` failure with the
    reason and the message's own context, at the executor's clock; the timers the transition
    names are cancelled, and the completion takes its start, contexts and masking from it."""
    store = Recording()
    executor = Executor(store, clock=lambda: NOW)
    cred = {"type": "api_key", "values": {"key": SECRET}}
    defn = definition(
        [n("a"), {**n("b"), "credentials": cred}, n("c")], [("e1", "a", "b"), ("e2", "a", "c")]
    )  # b and c in parallel: the store keeps the execution's records
    opened = executor.step(start(defn, "a", {"$input": {"token": SECRET}}))
    to_b, _ = opened.messages
    store._executions.pop("ex-1")
    store.advances.clear()
    told = executor.step(to_b)
    assert told.completion is not None
    reason = told.completion.failure_reason
    assert isinstance(reason, str) and reason.startswith(REASON)
    [(execution_id, token, children, leaf, failure, now)] = store.advances
    assert (execution_id, token, children, leaf, now) == ("ex-1", to_b.branch_token, [], None, NOW)
    assert isinstance(failure, Failure) and (failure.status, failure.reason) == ("failed", reason)
    failing_context = msgspec.json.decode(failure.context)
    assert set(failing_context) == set(to_b.accumulated_context) == {"$input", "$A"}
    assert failing_context["$input"] == {"token": SECRET}
    assert told.completion.final_context["$input"] == {"token": "***"}  # masked

    store._executions.pop("ex-1")
    store.answer = Transition(
        True, "failed", reason, NOW - 5_000_000_000, [b'{"$k": "' + SECRET.encode() + b'"}'],
        ["timer-1", "timer-2"],
    )  # fmt: skip
    again = executor.step(to_b)
    assert store.cancelled == ["timer-1", "timer-2"]
    assert again.completion is not None
    assert again.completion.total_duration_ms == 5000
    assert again.completion.final_context == {"$k": "***"}


def test_a_loss_recorded_after_another_failure_publishes_no_completion() -> None:
    """The store says the execution had closed already (another step recorded its failure
    first): the step publishes its `failed` status and dead-letter copy, no completion."""
    store = Recording()
    executor, (to_b, _), _ = first_steps(store)
    store._executions.pop("ex-1")
    store.answer = Transition(False)
    told = executor.step(to_b)
    assert told.completion is None
    assert [s.status for s in told.statuses] == ["failed"] and told.dead_letter
    assert told.report.verdict is Verdict.RUN and told.report.lost == "execution"
