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

import msgspec
import pytest
from flowkit import Run, definition, n, start, step

from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage
from runeworker.engine.state import MemoryStore, Verdict

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
    assert line.startswith(REASON + ": execution ex-1 of workflow wf-1, node b (flow.echo)")
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


def test_a_message_rejected_for_itself_still_tells_the_loss() -> None:
    """A message that cannot run (here: it names a node its workflow lacks) fails its
    execution anyway, with its own reason; that the execution's state was lost too is told
    (the ERROR line, `Report.lost`), and the failure is recorded once as for any loss."""
    store = MemoryStore()
    executor, (to_b, to_c), run = first_steps(store)
    store._executions.pop("ex-1")
    bad = msgspec.structs.replace(to_b, current_node="nowhere")
    told = step(executor, bad, run)
    assert told.report.lost == "execution"
    assert told.completion is not None and told.completion.status == "failed"
    assert told.completion.failure_reason == told.dead_letter
    assert "current_node nowhere not found" in told.dead_letter
    assert step(executor, to_c, run).completion is None  # cancelled: one completion
