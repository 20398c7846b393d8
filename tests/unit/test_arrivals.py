"""Barrier arrivals taken in one store call (`runeworker.engine.ledger.Arriving`,
`StateStore.arrive`): how many calls a workflow with parallel branches makes, and what an
arrival does when its token turns out stale, cancelled or at the step limit, or when the step
ends otherwise than it foresaw."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
import pytest
from flowkit import Run, definition, drive, n, start, step

from runeworker.bench.workload import Workload
from runeworker.engine.barriers import AggregateArrival
from runeworker.engine.executor import Executor
from runeworker.engine.ledger import Arriving
from runeworker.engine.merge_timer import PARK_IN_ARRIVAL_MAX_BYTES, in_arrival, timer_of
from runeworker.engine.messages import NodeExecutionMessage
from runeworker.engine.state import MemoryStore, StateStore, Verdict, root_token

# a fans out to b and c, which meet at the merge m (wait for all, no timeout), then d
JOINED = definition(
    [n("a"), n("b"), n("c"), n("m", "merge", timeout=0), n("d")],
    [("e0", "a", "b"), ("e1", "a", "c"), ("e2", "b", "m"), ("e3", "c", "m"), ("e4", "m", "d")],
)


class Counting:
    """A StateStore that counts the calls of each method (each is one Redis round trip)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.store, name)
        if not callable(call):
            return call

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return call(*args, **kwargs)

        return counted


def branch_workflow_calls(store: type[Counting], context_bytes: int) -> dict[str, int]:
    """The store calls of one run of the bench's branch workflow (15 steps, completed)."""
    work = Workload.build(8, context_bytes, "branches")
    counting = store(MemoryStore())
    executor = Executor(counting)  # type: ignore[arg-type]
    run = drive(msgspec.json.decode(work.start("ex-1"), type=NodeExecutionMessage),
                executor=executor)  # fmt: skip
    assert run.completion.status == "completed"
    assert len(run.results) == 15
    return dict(counting.calls)


def test_the_bench_branch_workflow_takes_one_store_call_per_step() -> None:
    """runeworker bench --shape branches: n1 fans out to n2 and n3, they meet at the merge n4
    (wait for all, 300 s timeout), n5 splits 4 items for n6, the aggregator n7 collects them,
    n8 ends. 15 steps, 15 store calls: the 6 barrier arrivals take one `arrive` each, the
    merge's timer included (scheduled and its token parked by the waiting arrival, cancelled
    by the releasing one). Before arrivals were taken in one call, the same workflow made 30
    store calls (admit, barrier, advance apart)."""
    assert branch_workflow_calls(Counting, 1024) == {
        "settle": 9,  # n1, n2, n3, n5, n6 x 4, n8
        "arrive": 6,  # n4 x 2, n7 x 4
    }


class Unparking(Counting):
    """A store that cannot take a merge's timer in the arrival, as a Redis Cluster."""

    parks_in_arrival = False


@pytest.mark.parametrize(
    ("store", "context_bytes"),
    [(Unparking, 1024), (Counting, 2 * PARK_IN_ARRIVAL_MAX_BYTES)],
    ids=["store-that-cannot", "resume-message-too-large"],
)
def test_the_merge_timer_apart_takes_three_calls_more(
    store: type[Counting], context_bytes: int
) -> None:
    """The same workflow on a store that schedules timers apart (a Redis Cluster), or with a
    resume message too large to send with every arrival: the merge's waiting arrival
    schedules the timer, then advances to park its token; the releasing arrival cancels it."""
    assert branch_workflow_calls(store, context_bytes) == {
        "settle": 9,
        "arrive": 6,
        "schedule": 1,  # the merge's timeout timer, armed by the waiting arrival
        "advance": 1,  # that arrival: it parks the timer's token after scheduling the timer
        "cancel_timer": 1,  # the releasing arrival: the timer has no job left
    }


def test_an_arrival_at_the_step_limit_fails_the_merge_at_the_limit() -> None:
    """The merge's second arrival is the execution's fifth step with max_steps 4: nothing of
    it is recorded, and the step fails at the limit as any step does."""
    run = drive(start(JOINED, "a"), executor=Executor(MemoryStore(), max_steps=4))
    # the first arrival ran and waited; the second fails without `running`, as a settled step
    # at the limit does (the limit is known before anything of it is published)
    assert run.trail[-3:] == [("M", "running"), ("M", "waiting"), ("M", "failed")]
    assert ("M", "success") not in run.trail and ("D", "running") not in run.trail
    assert run.completion.status == "failed"
    assert "exceeded the maximum of 4 steps" in run.completion.failure_reason


def test_a_stale_arrival_publishes_nothing_and_records_nothing() -> None:
    store = MemoryStore()
    executor, run = Executor(store), Run()
    opened = step(executor, start(JOINED, "a"), run)
    [to_b, _] = opened.messages
    [arrival] = step(executor, to_b, run).messages
    stale = msgspec.structs.replace(arrival, branch_token="not-a-token")
    result = step(executor, stale, Run())
    assert (result.statuses, result.messages, result.completion) == ([], [], None)
    assert (result.report.verdict, result.report.outcome) == (Verdict.STALE, "skipped")
    assert result.report.ledger == "arriving"
    # the barrier did not count it: the real arrival still waits
    waited = step(executor, arrival, run)
    assert [s.status for s in waited.statuses] == ["waiting"]  # `running` went to the callback
    assert waited.report.verdict is Verdict.RUN


def test_an_arrival_after_a_halt_publishes_nothing() -> None:
    halting = definition(
        [n("a"), n("b", "flow.fail"), n("c"), n("m", "merge", timeout=0), n("d")],
        [("e0", "a", "b"), ("e1", "a", "c"), ("e2", "b", "m"), ("e3", "c", "m"), ("e4", "m", "d")],
    )
    store = MemoryStore()
    executor, run = Executor(store), Run()
    to_b, to_c = step(executor, start(halting, "a"), run).messages
    [arrival] = step(executor, to_c, run).messages
    failed = step(executor, to_b, run)
    assert failed.completion is not None and failed.completion.status == "halted"
    result = step(executor, arrival, Run())
    assert (result.statuses, result.messages, result.completion) == ([], [], None)
    assert result.report.verdict is Verdict.CANCELLED


def test_a_step_that_ends_otherwise_than_it_foresaw_is_refused() -> None:
    """The arrival advanced the token with the foreseen children; closing it with others
    would publish messages whose tokens are not live: a bug, raised, never published."""
    store = MemoryStore()
    msg = start(JOINED, "m")
    token = root_token(msg.execution_id)
    ledger = Arriving(store, msg, token, lambda: 1, 100)
    arrived = ledger.arrive(AggregateArrival("s", "", 0, 2, b"1"), {"waiting": []})
    assert arrived.verdict is Verdict.RUN and arrived.transition is not None
    with pytest.raises(RuntimeError) as refused:
        ledger.close(["x"], None, None, 2)
    expected = "the m arrival of execution ex-1 ended otherwise than its foresight"
    assert str(refused.value) == expected
    with pytest.raises(RuntimeError) as leaf:  # a leaf it did not foresee
        ledger.close([], b"{}", None, 2)
    assert str(leaf.value) == expected
    again = Arriving(store, msg, token, lambda: 1, 100)
    again.arrive(AggregateArrival("s", "", 0, 2, b"1"), {"waiting": []})
    assert again.close([], None, None, 2) == (None, arrived.transition)


class Clock:
    """Epoch ns, 250 ms later at every reading."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.now += 250_000_000
        return self.now


def test_an_aggregator_that_fails_before_it_arrives_is_settled_with_its_leaf() -> None:
    """An aggregator outside any split fails before it reaches a barrier; under `ignore` it
    routes on (no edge: the branch ends, its context a leaf). Its token is settled (admitted
    and advanced with that leaf) in one call: the completion holds the branch's context."""
    defn = definition([n("a"), n("g", "aggregator", error={"type": "ignore"})], [("e0", "a", "g")])
    run = drive(start(defn, "a", {"$input": {"k": 1}}), executor=Executor(MemoryStore()))
    assert run.trail[-2:] == [("G", "running"), ("G", "failed")]
    assert run.results[-1].report.ledger == "arriving"
    assert run.completion.final_context == {"$input": {"k": 1}, "$A": {"value": None}}


def test_a_first_message_at_a_failing_aggregator_opens_its_execution_at_that_step() -> None:
    """The start message names the aggregator, which fails (no split) and routes on under
    `ignore`: the settle that opens the execution records its start, which the completion's
    `total_duration_ms` counts from."""
    defn = definition([n("g", "aggregator", error={"type": "ignore"}), n("b")], [("e0", "g", "b")])
    run = drive(start(defn, "g"), executor=Executor(MemoryStore(), clock=Clock()))
    assert run.trail[-2:] == [("B", "running"), ("B", "success")]
    assert run.completion.total_duration_ms > 0


def test_a_resume_message_over_the_limit_is_not_parked_in_the_arrival() -> None:
    """The resume message holds the definition too: a small context with a definition that
    takes the message over PARK_IN_ARRIVAL_MAX_BYTES keeps the separate calls; a known large
    context does so without encoding the message."""
    timer = timer_of("ex-1", "m", "")
    store = MemoryStore()
    small = msgspec.Raw(msgspec.json.encode({"nodes": [], "edges": []}))
    notes = "x" * PARK_IN_ARRIVAL_MAX_BYTES
    large = msgspec.Raw(msgspec.json.encode({"nodes": [], "notes": notes}))
    context = {"$input": {"a": 1}}
    for defined, parks in ((small, True), (large, False)):
        msg = NodeExecutionMessage("wf", "ex-1", "m", defined, accumulated_context=context)
        park = in_arrival(store, timer, msg, context)
        assert (park is not None) is parks
        if park is not None:
            resumed = msgspec.json.decode(park.payload, type=NodeExecutionMessage)
            assert resumed.branch_token == timer.token and resumed.is_worker_initiated is True
            assert park.timer_id == timer.timer_id
    msg = NodeExecutionMessage("wf", "ex-1", "m", small, accumulated_context=context)
    assert in_arrival(store, timer, msg, context, PARK_IN_ARRIVAL_MAX_BYTES + 1) is None
    assert in_arrival(store, None, msg, context) is None
