"""The ledger modes of a step (runeworker.engine.ledger), seen from what the steps publish and
what the state store records: the execution's start time behind `total_duration_ms` in each
mode, where that start comes from when the message carries one, the step limit counted from the
first step, where a settled step's `running` status goes, and the times the store is given."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from flowkit import TRIGGER, Run, definition, drive, n, start, step

from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeStatusMessage, rfc3339
from runeworker.engine.state import Admission, Failure, MemoryStore, Settlement, Transition

# every shape starts at a node with two or more ways out, except the chains
CHAIN = definition([n("a"), n("b")], [("e0", "a", "b")])
FAILING_CHAIN = definition([n("a"), n("b", "flow.fail")], [("e0", "a", "b")])
FAN = definition([n("a"), n("b"), n("c")], [("e0", "a", "b"), ("e1", "a", "c")])
TRIGGERED_FAN = definition(
    [TRIGGER, n("b"), n("c")], [("e0", "trigger", "b"), ("e1", "trigger", "c")]
)
EPOCH = 1_700_000_000_000_000_000
# the archivist writes total_duration_ms into the API's Postgres column `executions.
# total_duration_ms`, an INTEGER (services/api/migrations/versions/
# 2026_03_10_1447_ba3dde446818_initial_schema.py); a larger value fails its UPDATE, and the
# archivist requeues the completion for ever (services/archivist/src/consumer.py)
PG_INTEGER_MAX = 2**31 - 1
DAY_MS = 86_400_000


class Clock:
    """Epoch ns, 250 ms later at every reading; remembers its readings."""

    def __init__(self) -> None:
        self.readings: list[int] = []

    def __call__(self) -> int:
        self.readings.append(EPOCH + 250_000_000 * (len(self.readings) + 1))
        return self.readings[-1]


@pytest.mark.parametrize(
    ("defn", "first", "mode", "status"),
    [
        (CHAIN, "a", "single-branch", "completed"),
        (FAILING_CHAIN, "a", "single-branch", "halted"),
        (FAN, "a", "settled", "completed"),
        (TRIGGERED_FAN, "trigger", "admitted", "completed"),
    ],
)
def test_the_total_duration_runs_from_the_first_step(
    defn: bytes, first: str, mode: str, status: str
) -> None:
    """Whichever ledger keeps the token, the completion's `total_duration_ms` runs from a
    clock reading of the execution's first step to the closing step's."""
    store, clock = MemoryStore(), Clock()
    executor, run = Executor(store, clock=clock), Run()
    opened = step(executor, start(defn, first), run)
    assert opened.report.ledger == mode
    first_step = list(clock.readings)
    drive(*opened.messages, executor=executor, run=run)
    assert run.completion.status == status
    started = store.started_at("ex-1")
    assert started in first_step
    assert run.completion.total_duration_ms == (clock.readings[-1] - started) // 1_000_000
    assert run.completion.total_duration_ms >= 250  # the clock moved on after the first step
    assert run.completion.completed_at == rfc3339(clock.readings[-1])  # the closing reading


@pytest.mark.parametrize(
    ("started_at_ms", "source"),
    [
        (EPOCH // 1_000_000 - 60_000, "message"),  # the store is not asked
        (1, "message"),  # any positive time is a time
        (0, "store"),  # 0 is no time: what the first step recorded
        (msgspec.UNSET, "store"),  # a peer dropped the key: likewise
        (msgspec.UNSET, "nowhere"),  # ... and the store lost the record: unknown, 0
        (EPOCH // 1_000_000 + 3_600_000, "message"),  # a worker whose clock runs ahead: 0
    ],
)
def test_a_single_branch_execution_ends_with_the_start_its_messages_carry(
    started_at_ms: Any, source: str
) -> None:
    """The closing step of a single-branch execution reads the start from its message's
    `started_at_ms` when there is one; the store's record is only the fallback. To tell the
    two apart, a closing step that must not ask the store runs against one that never saw
    the first step."""
    store, clock = MemoryStore(), Clock()
    executor, run = Executor(store, clock=clock), Run()
    first = step(executor, start(CHAIN, "a"), run)  # reads the clock once to begin
    assert clock.readings[0] == store.started_at("ex-1")
    if source != "store":
        executor = Executor(MemoryStore(), clock=clock)
    last = msgspec.structs.replace(first.messages[0], started_at_ms=started_at_ms)
    done = step(executor, last, run).completion
    assert done is not None and done.status == "completed"
    if source == "nowhere":
        assert done.total_duration_ms == 0
        return
    started = started_at_ms * 1_000_000 if source == "message" else clock.readings[0]
    measured = max(0, (clock.readings[-1] - started) // 1_000_000)
    assert done.total_duration_ms == min(measured, PG_INTEGER_MAX)  # 1: decades, capped
    assert (done.total_duration_ms > 0) == (started < clock.readings[-1])


@pytest.mark.parametrize(
    ("defn", "trail", "status"),
    [
        # one node, one step allowed: it runs (single-branch)
        (definition([n("a")]), [("A", "running"), ("A", "success")], "completed"),
        # three nodes, one step allowed: the first runs (settled), the next fails at the limit
        (FAN, [("A", "running"), ("A", "success"), ("B", "failed")], "failed"),
    ],
)
def test_the_step_limit_counts_the_first_step_as_one(
    defn: bytes, trail: list[tuple[str, str]], status: str
) -> None:
    run = drive(start(defn, "a"), executor=Executor(MemoryStore(), max_steps=1))
    assert run.trail == trail
    assert run.completion.status == status


def test_a_settled_step_hands_its_running_status_to_the_caller_once_it_stands() -> None:
    """A quick node of parallel branches runs before its token's verdict: its `running`
    status is held back, then handed to `on_running` (not blocking: it is committed with
    the step) when the verdict lets it stand, and dropped with the rest when it does not."""
    executor = Executor(MemoryStore())
    handed: list[tuple[str, str, bool]] = []

    def on_running(status: NodeStatusMessage, blocking: bool) -> None:
        handed.append((status.node_name, status.status, blocking))

    first = executor.step(start(FAN, "a"), on_running)
    assert first.report.ledger == "settled"
    assert handed == [("A", "running", False)]
    assert [(s.node_name, s.status) for s in first.statuses] == [("A", "success")]
    handed.clear()
    stale = msgspec.structs.replace(first.messages[0], branch_token="not-a-token")
    dropped = executor.step(stale, on_running)
    assert (handed, dropped.statuses, dropped.messages) == ([], [], [])


class IntegerTimes(MemoryStore):
    """A MemoryStore that refuses a time that is no integer, as Redis refuses None
    (runeworker/adapters/redis_state.py sends every time as a script argument)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[str, int]] = []

    def _time(self, call: str, now_ns: Any) -> None:
        if type(now_ns) is not int:
            raise TypeError(f"{call}: now_ns {now_ns!r} is no integer")
        self.times.append((call, now_ns))

    def admit(self, execution_id: str, token: str, now_ns: int, *, anew: bool = False) -> Admission:
        self._time("admit", now_ns)
        return super().admit(execution_id, token, now_ns, anew=anew)

    def advance(
        self,
        execution_id: str,
        token: str,
        children: list[str],
        leaf_context: bytes | None,
        failure: Failure | None,
        now_ns: int,
    ) -> Transition:
        self._time("advance", now_ns)
        return super().advance(execution_id, token, children, leaf_context, failure, now_ns)

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
        self._time("settle", now_ns)
        return super().settle(
            execution_id, token, children, leaf_context, failure, now_ns, max_steps, anew=anew
        )

    def begin(self, execution_id: str, now_ns: int) -> None:
        self._time("begin", now_ns)
        super().begin(execution_id, now_ns)


@pytest.mark.parametrize(
    ("defn", "first", "calls"),
    [
        (CHAIN, "a", {"begin"}),  # single-branch
        (FAN, "a", {"settle"}),  # settled
        (TRIGGERED_FAN, "trigger", {"admit", "advance", "settle"}),  # admitted, then settled
    ],
)
def test_every_store_call_gets_a_reading_of_the_clock(
    defn: bytes, first: str, calls: set[str]
) -> None:
    store, clock = IntegerTimes(), Clock()
    run = drive(start(defn, first), executor=Executor(store, clock=clock))
    assert len(run.completions) == 1
    assert calls <= {call for call, _ in store.times}  # MemoryStore.settle calls admit too
    assert all(now in clock.readings for _, now in store.times)


def test_a_failure_at_the_step_limit_is_closed_with_a_clock_reading() -> None:
    """A settled step at the limit is taken again the admitted way (`advance`)."""
    store, clock = IntegerTimes(), Clock()
    run = drive(start(FAN, "a"), executor=Executor(store, clock=clock, max_steps=1))
    assert run.completion.status == "failed"
    assert "advance" in {call for call, _ in store.times}
    assert all(now in clock.readings for _, now in store.times)


@pytest.mark.parametrize(("days", "capped"), [(24, False), (30, True)])
def test_the_total_duration_never_exceeds_what_the_archivist_can_store(
    days: int, capped: bool
) -> None:
    """An execution that waited weeks closes after more than 2**31 - 1 ms; the Go worker never
    reports that much (it writes 0 after a wait), runeworker caps it at the column's maximum.
    24 days fit the column and are reported as measured; 30 days do not."""
    store, clock = MemoryStore(), Clock()
    executor, run = Executor(store, clock=clock), Run()
    first = step(executor, start(CHAIN, "a"), run)
    begun_ms = EPOCH // 1_000_000 - days * DAY_MS
    last = msgspec.structs.replace(first.messages[0], started_at_ms=begun_ms)
    done = step(executor, last, run).completion
    assert done is not None and done.status == "completed"
    measured = clock.readings[-1] // 1_000_000 - begun_ms
    assert (measured > PG_INTEGER_MAX) == capped
    assert done.total_duration_ms == min(measured, PG_INTEGER_MAX)
