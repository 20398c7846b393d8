"""The shared behaviour table of `StateStore`: every case runs against MemoryStore
(tests/unit/test_state.py, tests/unit/test_flow_state.py) and RedisStore
(tests/integration/test_redis_state.py). CASES cover branch tokens, FLOW_CASES the barriers
and wait timers.

A case is a function taking a fresh store; it asserts exact Admissions and Transitions.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, cast

import msgspec

from runeworker.engine.barriers import (
    TIMER_PARENT,
    AggregateArrival,
    MergeArrival,
    Park,
    aggregate_hold,
)
from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, decode_execution, encode
from runeworker.engine.outbox import Outbox
from runeworker.engine.state import (
    JOINING,
    Admission,
    Arrived,
    Barrier,
    BarrierState,
    Failure,
    MergeRule,
    Settlement,
    StateStore,
    Timer,
    Transition,
    Verdict,
    child_token,
    record_arrival,
    root_token,
)
from runeworker.errors import StateLost

Case = Callable[[StateStore], None]

T0 = 1_700_000_000_123_456_789  # above 2**53: a store that passes it through a double rounds it
T1 = T0 + 1_000_000_007
OPEN = Transition(closed=False)
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    """Add the decorated function to CASES under `name`."""

    def add(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return add


def ctx(name: str) -> bytes:
    return f'{{"${name}":{{"ok":true}}}}'.encode()


def done(contexts: list[bytes], started: int = T0) -> Transition:
    return Transition(True, "completed", "", started, contexts)


def fan_out(store: StateStore, ex: str, n: int) -> list[str]:
    """Admit and advance the root into `n` children; returns their tokens."""
    root = root_token(ex)
    assert store.admit(ex, root, T0) == Admission(Verdict.RUN, 0)
    kids = [child_token(root, i, f"leaf{i}") for i in range(n)]
    assert store.advance(ex, root, kids, None, None, T1) == OPEN
    return kids


@case("linear_chain")
def linear_chain(store: StateStore) -> None:
    root = root_token("ex")
    assert store.admit("ex", root, T0) == Admission(Verdict.RUN, 0)
    mid = child_token(root, 0, "mid")
    assert store.advance("ex", root, [mid], None, None, T0) == OPEN
    assert store.admit("ex", mid, T1) == Admission(Verdict.RUN, 1)
    leaf = child_token(mid, 0, "leaf")
    assert store.advance("ex", mid, [leaf], None, None, T1) == OPEN
    assert store.admit("ex", leaf, T1) == Admission(Verdict.RUN, 2)
    assert store.advance("ex", leaf, [], ctx("leaf"), None, T1) == done([ctx("leaf")])
    assert store.admit("ex", leaf, T1) == Admission(Verdict.REPLAY, 3)


def _fan_out_in_order(order: tuple[int, ...]) -> Case:
    def run(store: StateStore) -> None:
        kids = fan_out(store, "ex", 3)
        for token in kids:
            assert store.admit("ex", token, T1) == Admission(Verdict.RUN, 1)
        results = [store.advance("ex", kids[i], [], ctx(f"b{i}"), None, T1) for i in order]
        assert results[:2] == [OPEN, OPEN]
        assert results[2] == done([ctx(f"b{i}") for i in order])

    return run


for _order in itertools.permutations(range(3)):
    CASES["fan_out_3_finish_" + "".join(map(str, _order))] = _fan_out_in_order(_order)


@case("nested_fan_out")
def nested_fan_out(store: StateStore) -> None:
    a, b = fan_out(store, "ex", 2)
    a1, a2 = child_token(a, 0, "a1"), child_token(a, 1, "a2")
    assert store.advance("ex", a, [a1, a2], None, None, T1) == OPEN
    assert store.advance("ex", a1, [], ctx("a1"), None, T1) == OPEN
    assert store.advance("ex", b, [], ctx("b"), None, T1) == OPEN
    assert store.advance("ex", a2, [], ctx("a2"), None, T1) == done(
        [ctx("a1"), ctx("b"), ctx("a2")]
    )
    assert store.admit("ex", a2, T1) == Admission(Verdict.REPLAY, 5)


@case("replay_open_advance")
def replay_open_advance(store: StateStore) -> None:
    a, b = fan_out(store, "ex", 2)
    a1 = child_token(a, 0, "a1")
    assert store.advance("ex", a, [a1], None, None, T1) == OPEN
    assert store.admit("ex", a, T1) == Admission(Verdict.REPLAY, 2)
    # a redelivered `a` re-executes and replays: the same child, never counted twice
    assert store.advance("ex", a, [a1], None, None, T1) == OPEN
    assert store.admit("ex", a1, T1) == Admission(Verdict.RUN, 2)
    assert store.advance("ex", b, [], ctx("b"), None, T1) == OPEN
    assert store.advance("ex", a1, [], ctx("a1"), None, T1) == done([ctx("b"), ctx("a1")])


@case("replay_closing_advance")
def replay_closing_advance(store: StateStore) -> None:
    (only,) = fan_out(store, "ex", 1)
    first = store.advance("ex", only, [], ctx("x"), None, T1)
    assert first == done([ctx("x")])
    # the recorded outcome wins even when the re-execution produced another context
    assert store.advance("ex", only, [], ctx("other"), None, T1) == first
    assert store.advance("ex", only, [], ctx("x"), None, T1) == first
    assert store.admit("ex", only, T1) == Admission(Verdict.REPLAY, 2)


@case("replay_root_after_close")
def replay_root_after_close(store: StateStore) -> None:
    (only,) = fan_out(store, "ex", 1)
    assert store.advance("ex", only, [], ctx("x"), None, T1) == done([ctx("x")])
    root = root_token("ex")
    assert store.admit("ex", root, T1) == Admission(Verdict.REPLAY, 2)
    assert store.advance("ex", root, [only], None, None, T1) == OPEN


@case("stale_token")
def stale_token(store: StateStore) -> None:
    (only,) = fan_out(store, "ex", 1)
    assert store.admit("ex", "intruder", T1) == Admission(Verdict.STALE, 1)
    assert store.advance("ex", "intruder", ["x"], ctx("i"), None, T1) == OPEN
    assert store.admit("ex", "intruder", T1) == Admission(Verdict.STALE, 1)
    assert store.admit("ex", "x", T1) == Admission(Verdict.STALE, 1)
    assert store.advance("ex", only, [], ctx("o"), None, T1) == done([ctx("o")])


@case("joining_tokens")
def joining_tokens(store: StateStore) -> None:
    """A message without a token that names a parent (`message_token`: a Go worker's next
    message, or one of upstream's merge tests feeding a merge, services/rune-worker/e2e/
    merge_e2e_test.go) is a branch no step foresaw: its joining token opens an unknown
    execution, joins an open one (settle and arrive admit the same way), never comes back
    once advanced, is stale once the execution ended and cancelled after a failure; any
    other unknown token stays stale."""
    first, second, late = (JOINING + name for name in ("a", "b", "c"))
    assert store.admit("ex", first, T0) == Admission(Verdict.RUN, 0)
    park = child_token(first, 0, "park")
    assert store.advance("ex", first, [park], None, None, T0) == OPEN
    assert store.admit("ex", "intruder", T1) == Admission(Verdict.STALE, 1)
    assert store.admit("ex", second, T1) == Admission(Verdict.RUN, 1)
    assert store.settle("ex", second, [], ctx("b"), None, T1, 100) == Settlement(Verdict.RUN, OPEN)
    assert store.admit("ex", second, T1) == Admission(Verdict.REPLAY, 2)
    assert store.advance("ex", park, [], ctx("p"), None, T1) == done([ctx("b"), ctx("p")])
    assert store.admit("ex", late, T1) == Admission(Verdict.STALE, 3)
    assert store.settle("ex", late, [], ctx("c"), None, T1, 100) == Settlement(
        Verdict.STALE, OPEN)  # fmt: skip
    assert store.admit("ex", first, T1) == Admission(Verdict.REPLAY, 3)
    a, _b = fan_out(store, "ex-2", 2)
    halt = Failure("halted", "stop", ctx("a"))
    assert store.advance("ex-2", a, [], None, halt, T1).closed
    assert store.admit("ex-2", late, T1) == Admission(Verdict.CANCELLED, 2)


@case("halt_cancels_siblings")
def halt_cancels_siblings(store: StateStore) -> None:
    """The first failure closes the execution at once: its siblings, live or not yet
    delivered, are cancelled and record nothing; it never closes a second time."""
    a, b, c = fan_out(store, "ex", 3)
    halt = Failure("halted", "node stop halted the workflow", ctx("a"))
    closing = store.advance("ex", a, [child_token(a, 0, "next")], None, halt, T1)
    assert closing == Transition(True, "halted", "node stop halted the workflow", T0, [ctx("a")])
    assert store.admit("ex", child_token(a, 0, "next"), T1) == Admission(Verdict.CANCELLED, 2)
    assert store.admit("ex", b, T1) == Admission(Verdict.CANCELLED, 2)
    assert store.advance("ex", b, [], None, None, T1) == OPEN
    # c was already running when a halted: its children are dropped, its leaf is not merged
    assert store.advance("ex", c, [child_token(c, 0, "more")], ctx("c"), None, T1) == OPEN
    assert store.admit("ex", child_token(c, 0, "more"), T1) == Admission(Verdict.CANCELLED, 2)
    assert store.advance("ex", a, [], None, halt, T1) == closing  # a replay of the halt
    assert store.admit("ex", a, T1) == Admission(Verdict.REPLAY, 2)
    assert store.admit("ex", c, T1) == Admission(Verdict.CANCELLED, 2)


@case("failure_names_the_timers_of_its_execution")
def failure_names_the_timers_of_its_execution(store: StateStore) -> None:
    """The closing transition of a failure lists every timer scheduled for the execution
    (fired or not, so a redelivered step cancels again), and only those."""
    a, b = fan_out(store, "ex", 2)
    store.schedule("wait-b", 10**13, b"frozen b", owner="ex")
    store.schedule("merge-m", 10**13, b"frozen m", owner="ex")
    store.schedule("other", 10**13, b"frozen o", owner="ex-2")
    store.schedule("plain", 10**13, b"frozen p")
    assert store.advance("ex", b, [], ctx("b"), None, T1) == OPEN  # no timers while open
    failed = store.advance("ex", a, [], None, Failure("failed", "http 500", ctx("a")), T1)
    assert failed == Transition(True, "failed", "http 500", T0, [ctx("a")], ["merge-m", "wait-b"])
    assert store.advance("ex", a, [], None, None, T1) == failed  # the replay names them too
    ok = fan_out(store, "ex-2", 1)[0]  # a completing execution names none
    assert store.advance("ex-2", ok, [], ctx("ok"), None, T1) == done([ctx("ok")])


@case("settle_admits_and_advances_at_once")
def settle_admits_and_advances_at_once(store: StateStore) -> None:
    """settle = admit + advance: run, replay of the recorded transition, stale, and the step
    limit (nothing recorded, the verdict still told: the caller fails the step at the limit and
    advances it)."""
    a, b = fan_out(store, "ex", 2)
    nxt = child_token(a, 0, "next")
    assert store.settle("ex", a, [nxt], None, None, T1, 100) == Settlement(Verdict.RUN, OPEN)
    assert store.settle("ex", a, [nxt], None, None, T1, 100) == Settlement(Verdict.REPLAY, OPEN)
    assert store.settle("ex", "nope", [], ctx("x"), None, T1, 100) == Settlement(
        Verdict.STALE, OPEN)  # fmt: skip
    assert store.settle("ex", b, [], ctx("b"), None, T1, 2) == Settlement(Verdict.RUN, None)
    assert store.admit("ex", b, T1) == Admission(Verdict.RUN, 2)  # the limit recorded nothing
    assert store.settle("ex", b, [], ctx("b"), None, T1, 100) == Settlement(Verdict.RUN, OPEN)
    assert store.settle("ex", b, [], ctx("b"), None, T1, 2) == Settlement(Verdict.REPLAY, None)
    closing = store.settle("ex", nxt, [], ctx("next"), None, T1, 100)
    assert closing == Settlement(Verdict.RUN, done([ctx("b"), ctx("next")]))
    assert store.settle("ex", nxt, [], ctx("again"), None, T1, 100) == Settlement(
        Verdict.REPLAY, closing.transition)  # fmt: skip


@case("settle_opens_an_unknown_execution")
def settle_opens_an_unknown_execution(store: StateStore) -> None:
    root = root_token("ex")
    closing = store.settle("ex", root, [], ctx("root"), None, T0, 100)
    assert closing == Settlement(Verdict.RUN, done([ctx("root")], T0))
    assert store.started_at("ex") == T0


@case("settle_absorbs_a_cancelled_branch")
def settle_absorbs_a_cancelled_branch(store: StateStore) -> None:
    a, b = fan_out(store, "ex", 2)
    halt = Failure("halted", "node stop halted the workflow", ctx("a"))
    halted = Transition(True, "halted", "node stop halted the workflow", T0, [ctx("a")])
    assert store.settle("ex", a, [], None, halt, T1, 100) == Settlement(Verdict.RUN, halted)
    # b ran before it knew: its children, leaf and failure are dropped, nothing closes again
    late = Failure("failed", "too late", ctx("b"))
    cancelled = store.settle("ex", b, [child_token(b, 0, "x")], ctx("b"), late, T1, 100)
    assert cancelled == Settlement(Verdict.CANCELLED, OPEN)
    assert store.admit("ex", child_token(b, 0, "x"), T1) == Admission(Verdict.CANCELLED, 2)
    # the step limit does not matter to a cancelled branch
    assert store.settle("ex", b, [], ctx("b"), None, T1, 1) == Settlement(Verdict.CANCELLED, OPEN)
    assert store.settle("ex", a, [], None, halt, T1, 100) == Settlement(Verdict.REPLAY, halted)


@case("first_failure_wins")
def first_failure_wins(store: StateStore) -> None:
    a, b = fan_out(store, "ex", 2)
    first = store.advance("ex", a, [], None, Failure("failed", "http 500", ctx("a")), T1)
    assert first == Transition(True, "failed", "http 500", T0, [ctx("a")])
    late = Failure("halted", "too late", ctx("b"))
    assert store.advance("ex", b, [], None, late, T1) == OPEN
    assert store.settle("ex", b, [], None, late, T1, 100) == Settlement(Verdict.CANCELLED, OPEN)


@case("failure_of_only_branch_closes")
def failure_of_only_branch_closes(store: StateStore) -> None:
    root = root_token("ex")
    assert store.admit("ex", root, T0) == Admission(Verdict.RUN, 0)
    failure = Failure("failed", "unknown node type", ctx("root"))
    expected = Transition(True, "failed", "unknown node type", T0, [ctx("root")])
    assert store.advance("ex", root, [child_token(root, 0, "x")], None, failure, T1) == expected
    assert store.admit("ex", root, T1) == Admission(Verdict.REPLAY, 1)


@case("steps_and_start_time")
def steps_and_start_time(store: StateStore) -> None:
    token = root_token("ex")
    assert store.admit("ex", token, T0) == Admission(Verdict.RUN, 0)
    assert store.admit("ex", token, T0 + 5) == Admission(Verdict.RUN, 0)
    for step in range(1, 6):
        nxt = child_token(token, 0, f"n{step}")
        assert store.advance("ex", token, [nxt], None, None, T1 + step) == OPEN
        assert store.advance("ex", token, [nxt], None, None, T1 + step) == OPEN  # replay
        token = nxt
        assert store.admit("ex", token, T1 + step) == Admission(Verdict.RUN, step)
    assert store.advance("ex", token, [], b"{}", None, T1 + 9) == done([b"{}"], T0)


@case("single_branch_start_time")
def single_branch_start_time(store: StateStore) -> None:
    """`begin` records a single-branch execution's start once: a redelivered first step does
    not move it. Such an execution has no branch tokens at all."""
    assert store.started_at("ex-single") == 0
    store.begin("ex-single", T0)
    store.begin("ex-single", T1)
    assert store.started_at("ex-single") == T0
    assert store.admit("ex-other", root_token("ex-other"), T1) == Admission(Verdict.RUN, 0)
    assert store.started_at("ex-other") == T1  # begun on the full protocol: admit's record
    store.begin("ex-other", T0)
    assert store.started_at("ex-other") == T0  # begin's own record comes first


@case("advanced_token_never_live_again")
def advanced_token_never_live_again(store: StateStore) -> None:
    """A late replay that names an already advanced token as a child (e.g. a retired merge
    timer) must not make it live again: the execution still closes."""
    ex = "ex-retired"
    a, b = fan_out(store, ex, 2)
    assert store.advance(ex, a, [], ctx("a"), None, T1) == OPEN  # `a` advanced (done)
    late = child_token(b, 0, "x")
    assert store.advance(ex, b, [a, late], None, None, T1) == OPEN  # only `late` becomes live
    assert store.admit(ex, a, T1) == Admission(Verdict.REPLAY, 3)
    assert store.advance(ex, late, [], ctx("late"), None, T1) == done([ctx("a"), ctx("late")])


@case("advance_without_admit_opens")
def advance_without_admit_opens(store: StateStore) -> None:
    """The root opens an unknown execution in an advance as in an admission (a token derived
    from a parent does not: `lost_execution_is_told_and_failed_once`)."""
    root = root_token("ex")
    assert store.advance("ex", root, [], ctx("t"), None, T1) == done([ctx("t")], T1)
    assert store.admit("ex", root, T0) == Admission(Verdict.REPLAY, 1)


@case("executions_isolated")
def executions_isolated(store: StateStore) -> None:
    root = root_token("ex")  # the same root token in every execution
    one, two = child_token(root, 0, "one"), child_token(root, 0, "two")
    for ex, kid in (("ex-1", one), ("ex-2", two)):
        assert store.admit(ex, root, T0) == Admission(Verdict.RUN, 0)
        assert store.advance(ex, root, [kid], None, None, T0) == OPEN
    assert store.admit("ex-2", one, T1) == Admission(Verdict.STALE, 1)
    assert store.advance("ex-1", one, [], ctx("1"), None, T1) == done([ctx("1")])
    assert store.admit("ex-2", two, T1) == Admission(Verdict.RUN, 1)
    assert store.advance("ex-2", two, [], ctx("2"), None, T1) == done([ctx("2")])


@case("binary_safe_contexts")
def binary_safe_contexts(store: StateStore) -> None:
    kids = fan_out(store, "ex", 3)
    blobs = [b"", '{"s":"\u00e9\u4e2d"}'.encode(), b"\x00\xff\r\n\x80"]
    results = [
        store.advance("ex", k, [], blob, None, T1) for k, blob in zip(kids, blobs, strict=True)
    ]
    assert results == [OPEN, OPEN, done(blobs)]
    assert store.advance("ex", kids[2], [], b"x", None, T1) == done(blobs)


@case("concurrent_leaves_close_once")
def concurrent_leaves_close_once(store: StateStore) -> None:
    kids = fan_out(store, "ex", 16)
    results: list[Transition] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(kids) * 2, timeout=10)

    def finish(token: str) -> None:
        barrier.wait()  # start all advances together, each token delivered twice
        outcome = store.advance("ex", token, [], token.encode(), None, T1)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=finish, args=(k,)) for k in kids + kids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 32
    closed = [r for r in results if r.closed]
    # one token closes; its second delivery replays that same outcome
    assert len(closed) == 2
    assert closed[0] == closed[1]
    assert sorted(closed[0].contexts) == sorted(k.encode() for k in kids)
    assert store.admit("ex", kids[0], T1) == Admission(Verdict.REPLAY, 17)


@case("retired_token_never_becomes_live")
def retired_token_never_becomes_live(store: StateStore) -> None:
    """A token retired before any advance made it live (a merge's timer token, retired by the
    deciding arrival while the waiting one has not advanced yet) stays out of the live set."""
    a, b = fan_out(store, "ex", 2)
    timer = child_token("merge-timer:t", 0, "merge")
    assert store.retire("ex", timer, T1) == OPEN  # not live: recorded, no step counted
    assert store.admit("ex", a, T1) == Admission(Verdict.RUN, 1)
    assert store.advance("ex", a, [timer], None, None, T1) == OPEN  # the late park: skipped
    assert store.advance("ex", b, [], ctx("b"), None, T1) == done([ctx("b")])
    assert store.retire("ex", timer, T1) == OPEN  # again: its record
    assert store.admit("ex", timer, T1) == Admission(Verdict.REPLAY, 3)


@case("retire_advances_a_live_token")
def retire_advances_a_live_token(store: StateStore) -> None:
    a, b = fan_out(store, "ex", 2)
    timer = child_token("merge-timer:t", 0, "merge")
    assert store.advance("ex", a, [timer], None, None, T1) == OPEN
    assert store.retire("ex", timer, T1) == OPEN
    assert store.admit("ex", timer, T1) == Admission(Verdict.REPLAY, 3)
    assert store.advance("ex", b, [], ctx("b"), None, T1) == done([ctx("b")])
    # the last live token: retiring it closes the execution, and replays that
    [c] = fan_out(store, "ex-2", 1)
    assert store.retire("ex-2", c, T1) == done([])
    assert store.retire("ex-2", c, T1) == done([])
    # an unknown execution: nothing recorded, the token opens it later as usual
    assert store.retire("ex-3", "root", T1) == OPEN
    assert store.admit("ex-3", "root", T1) == Admission(Verdict.RUN, 0)


@case("retire_uncounted_is_no_step")
def retire_uncounted_is_no_step(store: StateStore) -> None:
    """An aggregator's hold token never runs: retiring it live (`counted=False`) records it as
    advanced without counting a step; retiring it again replays; the last live token retired
    uncounted still closes the execution. (The hold is parked by the advance of the only
    live token, `a`; a joining token `b` joins while it is live.)"""
    (a,) = fan_out(store, "ex", 1)
    hold = aggregate_hold("split", "")
    assert store.advance("ex", a, [hold], None, None, T1) == OPEN
    assert store.admit("ex", hold, T1) == Admission(Verdict.RUN, 2)
    b = JOINING + "b"
    assert store.admit("ex", b, T1) == Admission(Verdict.RUN, 2)
    assert store.retire("ex", hold, T1, counted=False) == OPEN
    assert store.admit("ex", hold, T1) == Admission(Verdict.REPLAY, 2)  # no step counted
    assert store.retire("ex", hold, T1, counted=False) == OPEN  # again: its record
    assert store.admit("ex", b, T1) == Admission(Verdict.RUN, 2)
    assert store.advance("ex", b, [hold], ctx("b"), None, T1) == done([ctx("b")])
    [c] = fan_out(store, "ex-2", 1)
    assert store.retire("ex-2", c, T1, counted=False) == done([])
    assert store.admit("ex-2", c, T1) == Admission(Verdict.REPLAY, 1)


# -- barriers and timers (tests/unit/test_flow_state.py, tests/integration/test_redis_state.py) --

FLOW_CASES: dict[str, Case] = {}


def flow_case(name: str) -> Callable[[Case], Case]:
    """Add the decorated function to FLOW_CASES under `name`."""

    def add(fn: Case) -> Case:
        FLOW_CASES[name] = fn
        return fn

    return add


def item(i: int) -> bytes:
    return f'{{"item":{i}}}'.encode()


WAITING = BarrierState.WAITING
RELEASED = BarrierState.RELEASED
CLOSED = BarrierState.CLOSED
EXPIRED = BarrierState.EXPIRED
NOW = 1_700_000_000_000  # epoch ms


def agg(
    store: StateStore, index: int, token: str, payload: bytes | None, total: int = 3
) -> Barrier:
    return store.aggregate("ex", "split", "", index, total, token, payload)


@flow_case("aggregate_releases_once_in_item_order")
def aggregate_releases_once_in_item_order(store: StateStore) -> None:
    assert agg(store, 2, "t2", item(2)) == Barrier(WAITING, 1)
    assert agg(store, 0, "t0", item(0)) == Barrier(WAITING, 2)
    released = Barrier(RELEASED, 3, ["0", "1", "2"], [item(0), item(1), item(2)])
    assert agg(store, 1, "t1", item(1)) == released
    # the releasing arrival redelivered releases again; any other arrival is absorbed
    assert agg(store, 1, "t1", item(1)) == released
    assert agg(store, 2, "t2", item(2)) == Barrier(CLOSED, 3)
    assert agg(store, 1, "t1-again", item(1)) == Barrier(CLOSED, 3)


@flow_case("aggregate_redelivery_counts_once")
def aggregate_redelivery_counts_once(store: StateStore) -> None:
    for _ in range(3):
        assert agg(store, 0, "t0", item(0), total=2) == Barrier(WAITING, 1)
    # a second path of the same item overwrites its slot, never counts as another item
    assert agg(store, 0, "t0-b", b'"other"', total=2) == Barrier(WAITING, 1)
    done = agg(store, 1, "t1", item(1), total=2)
    assert done == Barrier(RELEASED, 2, ["0", "1"], [b'"other"', item(1)])


@flow_case("aggregate_ghosts_count_without_results")
def aggregate_ghosts_count_without_results(store: StateStore) -> None:
    assert agg(store, 0, "t0", item(0)) == Barrier(WAITING, 1)
    assert agg(store, 0, "g0", None) == Barrier(WAITING, 1)  # never overwrites a result
    assert agg(store, 1, "g1", None) == Barrier(WAITING, 2)
    assert agg(store, 1, "t1", item(1)) == Barrier(WAITING, 2)  # a result replaces a ghost
    assert agg(store, 2, "g2", None) == Barrier(RELEASED, 3, ["0", "1"], [item(0), item(1)])


@flow_case("aggregate_only_ghosts_releases_empty")
def aggregate_only_ghosts_releases_empty(store: StateStore) -> None:
    assert agg(store, 0, "g0", None, total=2) == Barrier(WAITING, 1)
    assert agg(store, 1, "g1", None, total=2) == Barrier(RELEASED, 2)
    assert agg(store, 1, "g1", None, total=2) == Barrier(RELEASED, 2)


@flow_case("aggregate_scopes_and_executions_isolated")
def aggregate_scopes_and_executions_isolated(store: StateStore) -> None:
    runs = [("ex", "split", "ex_outer_0"), ("ex", "split", "ex_outer_1"), ("ex-2", "split", "")]
    runs.append(("ex", "other", ""))
    for ex, split, scope in runs:
        assert store.aggregate(ex, split, scope, 0, 2, "t0", item(0)) == Barrier(WAITING, 1)
    for ex, split, scope in runs:
        released = store.aggregate(ex, split, scope, 1, 2, "t1", item(1))
        assert released == Barrier(RELEASED, 2, ["0", "1"], [item(0), item(1)])


@flow_case("aggregate_runs_keep_their_own_results")
def aggregate_runs_keep_their_own_results(store: StateStore) -> None:
    runs = [("ex", "split", "", 0), ("ex-2", "split", "", 10), ("ex", "other", "outer_1", 20)]
    for ex, split, scope, base in runs:
        token = f"{ex}/{split}/{scope}/0"
        waiting = store.aggregate(ex, split, scope, 0, 2, token, item(base))
        assert waiting == Barrier(WAITING, 1)
    for ex, split, scope, base in runs:
        token = f"{ex}/{split}/{scope}/1"
        released = store.aggregate(ex, split, scope, 1, 2, token, item(base + 1))
        assert released == Barrier(RELEASED, 2, ["0", "1"], [item(base), item(base + 1)])


def arrive(
    store: StateStore,
    parent: str,
    token: str,
    payload: bytes | None,
    rule: MergeRule,
    now: int = NOW,
    scope: str = "",
) -> Barrier:
    return store.merge_arrive("ex", "merge", scope, parent, token, payload, rule, now)


ALL2 = MergeRule(expected=2)


@flow_case("merge_wait_for_all")
def merge_wait_for_all(store: StateStore) -> None:
    assert arrive(store, "b", "tb", ctx("b"), ALL2) == Barrier(WAITING, 1, first_ms=NOW)
    later = NOW + 5
    assert arrive(store, "b", "tb", ctx("b"), ALL2, later) == Barrier(WAITING, 1, first_ms=NOW)
    released = Barrier(RELEASED, 2, ["a", "b"], [ctx("a"), ctx("b")], NOW)
    assert arrive(store, "a", "ta", ctx("a"), ALL2, later) == released
    assert arrive(store, "a", "ta", ctx("a"), ALL2, later) == released
    assert arrive(store, "b", "tb2", ctx("b"), ALL2, later) == Barrier(CLOSED, 2, first_ms=NOW)


@flow_case("merge_replays_waiting_to_an_arrival_counted_before_the_release")
def merge_replays_waiting_to_an_arrival_counted_before_the_release(store: StateStore) -> None:
    assert arrive(store, "b", "tb", ctx("b"), ALL2) == Barrier(WAITING, 1, first_ms=NOW)
    released = Barrier(RELEASED, 2, ["a", "b"], [ctx("a"), ctx("b")], NOW)
    assert arrive(store, "a", "ta", ctx("a"), ALL2) == released
    # b's step crashed after counting: its redelivery reports what the lost step reported
    assert arrive(store, "b", "tb", ctx("b"), ALL2) == Barrier(WAITING, 2, first_ms=NOW)


@flow_case("merge_ghost_parents_count")
def merge_ghost_parents_count(store: StateStore) -> None:
    rule = MergeRule(expected=3)
    assert arrive(store, "a", "ga", None, rule) == Barrier(WAITING, 1, first_ms=NOW)
    assert arrive(store, "b", "tb", ctx("b"), rule) == Barrier(WAITING, 2, first_ms=NOW)
    assert arrive(store, "b", "gb", None, rule) == Barrier(WAITING, 2, first_ms=NOW)
    assert arrive(store, "c", "gc", None, rule) == Barrier(RELEASED, 3, ["b"], [ctx("b")], NOW)


@flow_case("merge_only_ghosts_releases_empty")
def merge_only_ghosts_releases_empty(store: StateStore) -> None:
    for rule in (ALL2, MergeRule(expected=2, any=True)):
        scope = "any" if rule.any else "all"
        assert arrive(store, "a", "ga", None, rule, scope=scope) == Barrier(
            WAITING, 1, first_ms=NOW
        )
        assert arrive(store, "b", "gb", None, rule, scope=scope) == Barrier(
            RELEASED, 2, first_ms=NOW
        )


@flow_case("merge_wait_for_any")
def merge_wait_for_any(store: StateStore) -> None:
    rule = MergeRule(expected=3, any=True)
    assert arrive(store, "a", "ga", None, rule) == Barrier(WAITING, 1, first_ms=NOW)
    won = Barrier(RELEASED, 2, ["b"], [ctx("b")], NOW)
    assert arrive(store, "b", "tb", ctx("b"), rule) == won
    assert arrive(store, "c", "tc", ctx("c"), rule) == Barrier(CLOSED, 2, first_ms=NOW)
    assert arrive(store, "b", "tb", ctx("b"), rule) == won


@flow_case("merge_timeout")
def merge_timeout(store: StateStore) -> None:
    rule = MergeRule(expected=3, timeout_ms=1000)
    assert arrive(store, "a", "ta", ctx("a"), rule) == Barrier(WAITING, 1, first_ms=NOW)
    assert arrive(store, "b", "tb", ctx("b"), rule, NOW + 1000) == Barrier(WAITING, 2, first_ms=NOW)
    assert arrive(store, "x", "gx", None, rule, NOW + 5000, "ghost") == Barrier(
        WAITING, 1, first_ms=NOW + 5000
    )
    late = Barrier(EXPIRED, 2, first_ms=NOW)
    assert arrive(store, "c", "tc", ctx("c"), rule, NOW + 1001) == late
    assert arrive(store, "c", "tc", ctx("c"), rule, NOW + 9000) == late
    # another arrival after the expiry: absorbed, and told the merge failed
    timed_out = Barrier(BarrierState.TIMED_OUT, 2, first_ms=NOW)
    assert arrive(store, "c", "tc2", ctx("c"), rule, NOW + 9000) == timed_out
    assert arrive(store, "y", "gy", None, rule, NOW + 9000) == timed_out  # a ghost too
    # an arrival counted before the expiry still replays what it reported then
    assert arrive(store, "b", "tb", ctx("b"), rule, NOW + 9000) == Barrier(WAITING, 2, first_ms=NOW)


@flow_case("merge_timeout_of_one_millisecond")
def merge_timeout_of_one_millisecond(store: StateStore) -> None:
    rule = MergeRule(expected=3, timeout_ms=1)
    assert arrive(store, "a", "ta", ctx("a"), rule) == Barrier(WAITING, 1, first_ms=NOW)
    assert arrive(store, "b", "tb", ctx("b"), rule, NOW + 1) == Barrier(WAITING, 2, first_ms=NOW)
    late = Barrier(EXPIRED, 2, first_ms=NOW)
    assert arrive(store, "c", "tc", ctx("c"), rule, NOW + 2) == late


@flow_case("merge_timer_at_a_barrier_never_begun_finds_it_lost")
def merge_timer_at_a_barrier_never_begun_finds_it_lost(store: StateStore) -> None:
    """Only an arrival that waited arms a merge's timer: a timer (`TIMER_PARENT`) that finds
    no barrier finds it lost, and records nothing. Begun by the timer, the barrier would count
    an arrival no branch made (a real one would open it a parent early) or wait for ever."""
    fired = MergeRule(expected=1 << 30, timeout_ms=1)
    for _ in range(2):  # and its redelivery
        raises_lost(lambda: arrive(store, TIMER_PARENT, "timer", b"null", fired, 1 << 52), "ex",
                    "barrier")  # fmt: skip
    # nothing was begun: the first real arrival begins the barrier at its own time
    first = arrive(store, "a", "ta", ctx("a"), ALL2, NOW + 7)
    assert first == Barrier(WAITING, 1, first_ms=NOW + 7)
    released = Barrier(RELEASED, 2, ["a", "b"], [ctx("a"), ctx("b")], NOW + 7)
    assert arrive(store, "b", "tb", ctx("b"), ALL2, NOW + 8) == released
    # a timer at a barrier begun, then decided, is absorbed
    assert arrive(store, TIMER_PARENT, "timer", b"null", fired, 1 << 52) == Barrier(
        CLOSED, 2, first_ms=NOW + 7)  # fmt: skip
    # and one at a barrier begun and waiting decides it as expired
    assert arrive(store, "a", "ta2", ctx("a"), ALL2, NOW, "s") == Barrier(WAITING, 1, first_ms=NOW)
    assert arrive(store, TIMER_PARENT, "timer2", b"null", fired, 1 << 52, "s") == Barrier(
        EXPIRED, 1, first_ms=NOW)  # fmt: skip


@flow_case("concurrent_arrivals_release_once")
def concurrent_arrivals_release_once(store: StateStore) -> None:
    total = 12
    results: list[Barrier] = []
    lock = threading.Lock()
    barrier = threading.Barrier(total * 2, timeout=10)

    def deliver(i: int) -> None:
        barrier.wait()  # every item delivered twice, all at once
        outcome = store.aggregate("ex", "split", "", i, total, f"t{i}", item(i))
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=deliver, args=(i % total,)) for i in range(total * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    released = [r for r in results if r.state is RELEASED]
    assert len(results) == total * 2
    assert len(released) in (1, 2)  # the releasing arrival, and maybe its own copy
    assert released[0] == Barrier(
        RELEASED, total, [str(i) for i in range(total)], [item(i) for i in range(total)]
    )
    assert all(r == released[0] for r in released)


@flow_case("timers_fire_due_ones_in_order")
def timers_fire_due_ones_in_order(store: StateStore) -> None:
    assert store.next_due() is None
    store.schedule("late", NOW + 60_000, b"L")
    store.schedule("second", NOW - 10, b"S")
    store.schedule("first", NOW - 20, b"F")
    assert store.next_due() == NOW - 20
    assert store.claim_due(NOW, 100, 30_000) == [Timer("first", b"F"), Timer("second", b"S")]
    assert store.claim_due(NOW, 100, 30_000) == []  # leased, not due again
    assert store.next_due() == NOW + 60_000
    store.ack_timer("first")
    store.ack_timer("second")
    assert store.release_expired(NOW + 10**9) == 0  # acknowledged timers are gone for good
    assert store.claim_due(NOW + 60_000, 100, 30_000) == [Timer("late", b"L")]
    store.schedule("empty", NOW, b"")  # the payload comes back as it was stored
    assert store.claim_due(NOW, 100, 30_000) == [Timer("empty", b"")]


@flow_case("timers_batch_limit")
def timers_batch_limit(store: StateStore) -> None:
    for i in range(5):
        store.schedule(f"t{i}", NOW + i, f"p{i}".encode())
    assert [t.timer_id for t in store.claim_due(NOW + 10, 2, 1000)] == ["t0", "t1"]
    assert [t.timer_id for t in store.claim_due(NOW + 10, 2, 1000)] == ["t2", "t3"]
    assert [t.timer_id for t in store.claim_due(NOW + 10, 2, 1000)] == ["t4"]


@flow_case("timer_of_a_dead_claimer_fires_once")
def timer_of_a_dead_claimer_fires_once(store: StateStore) -> None:
    store.schedule("t", NOW, b"frozen")
    assert store.claim_due(NOW, 100, 30_000) == [Timer("t", b"frozen")]
    # the claimer dies without acknowledging: nothing fires while its lease holds
    assert store.release_expired(NOW + 29_999) == 0
    assert store.claim_due(NOW + 29_999, 100, 30_000) == []
    assert store.release_expired(NOW + 30_000) == 1
    assert store.next_due() == NOW + 30_000
    assert store.claim_due(NOW + 30_000, 100, 30_000) == [Timer("t", b"frozen")]
    store.ack_timer("t")
    assert store.release_expired(NOW + 10**9) == 0
    assert store.claim_due(NOW + 10**9, 100, 30_000) == []


@flow_case("timers_cancel_and_reschedule")
def timers_cancel_and_reschedule(store: StateStore) -> None:
    store.schedule("due", NOW, b"d")
    store.schedule("leased", NOW, b"l")
    store.schedule("moved", NOW, b"old")
    store.schedule("moved", NOW + 100, b"new")  # scheduling again replaces
    store.cancel_timer("due")
    assert store.claim_due(NOW, 100, 1000) == [Timer("leased", b"l")]
    store.cancel_timer("leased")
    assert store.release_expired(NOW + 5000) == 0
    assert store.claim_due(NOW + 100, 100, 1000) == [Timer("moved", b"new")]
    store.cancel_timer("never-scheduled")
    assert store.next_due() is None


@flow_case("timer_rescheduled_while_leased_keeps_its_new_due_time")
def timer_rescheduled_while_leased_keeps_its_new_due_time(store: StateStore) -> None:
    store.schedule("t", NOW, b"old")
    assert store.claim_due(NOW, 100, 1000) == [Timer("t", b"old")]
    store.schedule("t", NOW + 100_000, b"new")  # the lease of the old one is void
    assert store.release_expired(NOW + 5000) == 0
    assert store.next_due() == NOW + 100_000
    assert store.claim_due(NOW + 5000, 100, 1000) == []
    assert store.claim_due(NOW + 100_000, 100, 1000) == [Timer("t", b"new")]


@flow_case("timer_scheduled_again_while_it_fires_survives_the_ack")
def timer_scheduled_again_while_it_fires_survives_the_ack(store: StateStore) -> None:
    """A resume that came before its wait parked schedules the same timer again a second
    later (`Turn._resume_early`), which may happen before the scheduler that fired it
    acknowledges the firing: the acknowledgement must not take the new timer's payload (it
    did: the id stayed due without a payload, and the claim dropped it, so the wait never
    resumed; seen with `runeworker serve`)."""
    store.schedule("t", NOW, b"frozen")
    assert store.claim_due(NOW, 100, 30_000) == [Timer("t", b"frozen")]
    store.schedule("t", NOW + 1_000, b"frozen")  # the early resume, before the ack
    store.ack_timer("t")
    assert store.next_due() == NOW + 1_000
    assert store.claim_due(NOW + 1_000, 100, 30_000) == [Timer("t", b"frozen")]
    store.ack_timer("t")
    assert store.release_expired(NOW + 10**9) == 0
    assert store.claim_due(NOW + 10**9, 100, 30_000) == []


@flow_case("timers_acknowledged_or_cancelled_twice")
def timers_acknowledged_or_cancelled_twice(store: StateStore) -> None:
    store.schedule("fired", NOW, b"f")
    assert store.claim_due(NOW, 100, 1000) == [Timer("fired", b"f")]
    store.ack_timer("fired")
    store.ack_timer("fired")  # a retried acknowledgement
    store.ack_timer("never-scheduled")
    store.schedule("later", NOW + 500, b"l")
    store.cancel_timer("later")
    assert store.next_due() is None  # gone at once, not only when it would have been due
    store.cancel_timer("later")
    assert store.release_expired(NOW + 10**9) == 0
    assert store.claim_due(NOW + 10**9, 100, 1000) == []


# -- arrivals: admit, barrier and advance in one call (`StateStore.arrive`) --------------------


def items(n: int) -> tuple[list[str], list[bytes]]:
    return [str(i) for i in range(n)], [item(i) for i in range(n)]


def at_aggregator(index: int, payload: bytes | None, total: int = 3) -> AggregateArrival:
    return AggregateArrival("split", "", index, total, payload)


def at_merge(parent: str, payload: bytes | None, timer: str = "", timeout_ms: int = 0,
             now: int = 1_700_000_000_000) -> MergeArrival:  # fmt: skip
    return MergeArrival("merge", "", parent, payload, MergeRule(2, False, timeout_ms), now, timer)


@flow_case("arrive_admits_records_and_advances_at_once")
def arrive_admits_records_and_advances_at_once(store: StateStore) -> None:
    """Three items reach their aggregator: the waiting ones are absorbed (advanced without
    children), the last one releases and continues into the foreseen child; a redelivered
    arrival replays; an unknown token records nothing."""
    a, b, c = fan_out(store, "ex", 3)
    nxt = child_token(c, 0, "after")
    foresight = {"waiting": [], "closed": [], "released": [nxt], "dead": [nxt]}
    first = store.arrive("ex", a, T1, 100, at_aggregator(0, item(0)), foresight)
    assert first == Arrived(Verdict.RUN, Barrier(WAITING, 1), OPEN)
    assert store.admit("ex", a, T1) == Admission(Verdict.REPLAY, 2)  # a advanced
    again = store.arrive("ex", a, T1, 100, at_aggregator(0, item(0)), foresight)
    assert again == Arrived(Verdict.REPLAY, Barrier(WAITING, 1), OPEN)
    stale = store.arrive("ex", "nope", T1, 100, at_aggregator(1, item(9)), foresight)
    assert stale == Arrived(Verdict.STALE, None, OPEN)
    assert store.arrive("ex", b, T1, 100, at_aggregator(1, item(1)), foresight) == Arrived(
        Verdict.RUN, Barrier(WAITING, 2), OPEN)  # fmt: skip
    last = store.arrive("ex", c, T1, 100, at_aggregator(2, item(2)), foresight)
    assert last == Arrived(Verdict.RUN, Barrier(RELEASED, 3, *items(3)), OPEN)
    assert store.admit("ex", nxt, T1) == Admission(Verdict.RUN, 4)
    # the releasing arrival replays its release; any other arrival is closed
    replayed = store.arrive("ex", c, T1, 100, at_aggregator(2, item(2)), foresight)
    assert replayed == Arrived(Verdict.REPLAY, Barrier(RELEASED, 3, *items(3)), OPEN)
    late = child_token(root_token("ex"), 9, "late")
    assert store.advance("ex", nxt, [late], None, None, T1) == OPEN
    # (absorbed: the execution's last live token, so its advance closes the execution)
    assert store.arrive("ex", late, T1, 100, at_aggregator(1, item(1)), foresight) == Arrived(
        Verdict.RUN, Barrier(CLOSED, 3), done([]))  # fmt: skip
    # an arrival may open an execution (its first message): the start is the arrival's time
    opened = store.arrive("ex-2", root_token("ex-2"), T1, 100, at_aggregator(0, None, 2), {})
    assert opened == Arrived(Verdict.RUN, Barrier(WAITING, 1), None)
    assert store.started_at("ex-2") == T1


@flow_case("arrive_keeps_executions_barriers_and_scopes_apart")
def arrive_keeps_executions_barriers_and_scopes_apart(store: StateStore) -> None:
    """Arrivals at the same index or parent of other barriers each wait: none counts for
    another execution, split, merge or scope."""
    tokens = {ex: iter(fan_out(store, ex, 6)) for ex in ("ex", "ex-2")}
    aggregators = [("ex", "split", ""), ("ex-2", "split", ""), ("ex", "other", ""),
                   ("ex", "split", "outer_1")]  # fmt: skip
    # distinct items and parents: arrivals wrongly sharing a barrier would count each other
    for i, (ex, split, scope) in enumerate(aggregators):
        arrival = AggregateArrival(split, scope, i, 4, item(i))
        got = store.arrive(ex, next(tokens[ex]), T1, 100, arrival, {"waiting": []})
        assert got.barrier == Barrier(WAITING, 1), (ex, split, scope)
    merges = [("ex", "merge", ""), ("ex-2", "merge", ""), ("ex", "other", ""),
              ("ex", "merge", "outer_1")]  # fmt: skip
    for i, (ex, merge, scope) in enumerate(merges):
        arrival = MergeArrival(merge, scope, f"p{i}", ctx("a"), MergeRule(4), NOW)
        got = store.arrive(ex, next(tokens[ex]), T1, 100, arrival, {"waiting": []})
        assert got.barrier == Barrier(WAITING, 1, first_ms=NOW), (ex, merge, scope)


@flow_case("a_merge_deciding_retires_its_live_timer_as_a_step")
def a_merge_deciding_retires_its_live_timer_as_a_step(store: StateStore) -> None:
    """The arrival that releases a merge retires the merge's timer token when it is still live
    (the timer never fired) and counts it as one step, as the timer's own step would have
    been; without a timer nothing more is counted."""
    steps = {}
    for ex, with_timer in (("ex", True), ("ex-2", False)):
        a, b, timer = fan_out(store, ex, 3)
        token = timer if with_timer else ""
        nxt = child_token(b, 0, "after")
        store.arrive(ex, a, T1, 100, at_merge("a", ctx("a"), timer=token), {"waiting": []})
        got = store.arrive(
            ex, b, T1, 100, at_merge("b", ctx("b"), timer=token), {"released": [nxt]}
        )
        assert got.barrier is not None and got.barrier.state is RELEASED
        steps[ex] = store.admit(ex, nxt, T1).steps
        if with_timer:  # retired: a late firing of the timer is no step
            assert store.admit(ex, timer, T1).verdict is not Verdict.RUN
    assert steps == {"ex": 4, "ex-2": 3}


@flow_case("arrive_leaves_an_outcome_not_foreseen_to_the_caller")
def arrive_leaves_an_outcome_not_foreseen_to_the_caller(store: StateStore) -> None:
    a, b = fan_out(store, "ex", 2)
    waiting = store.arrive("ex", a, T1, 100, at_merge("a", None), {"released": ["x"]})
    assert waiting == Arrived(Verdict.RUN, Barrier(WAITING, 1, first_ms=NOW), None)
    assert store.admit("ex", a, T1) == Admission(Verdict.RUN, 1)  # still live: not advanced
    assert store.advance("ex", a, [], None, None, T1) == OPEN
    # every arrival a ghost: the release has no data ("dead"), which was not foreseen either
    dead = store.arrive("ex", b, T1, 100, at_merge("b", None), {"released": ["x"]})
    assert dead.transition is None and dead.barrier is not None
    assert dead.barrier.state is RELEASED and dead.barrier.results == []
    assert store.advance("ex", b, [], ctx("b"), None, T1) == done([ctx("b")])


@flow_case("arrive_at_the_step_limit_records_nothing")
def arrive_at_the_step_limit_records_nothing(store: StateStore) -> None:
    a, _ = fan_out(store, "ex", 2)
    foresight: dict[str, list[str]] = {"waiting": []}
    assert store.arrive("ex", a, T1, 1, at_aggregator(0, item(0)), foresight) == Arrived(
        Verdict.RUN, None, None)  # fmt: skip
    counted = store.arrive("ex", a, T1, 100, at_aggregator(0, item(0)), foresight)
    assert counted == Arrived(Verdict.RUN, Barrier(WAITING, 1), OPEN)  # the first counted none


@flow_case("arrive_absorbs_a_cancelled_branch")
def arrive_absorbs_a_cancelled_branch(store: StateStore) -> None:
    a, b = fan_out(store, "ex", 2)
    halt = Failure("halted", "node stop halted the workflow", ctx("a"))
    assert store.settle("ex", a, [], None, halt, T1, 100).verdict is Verdict.RUN
    cancelled = store.arrive("ex", b, T1, 100, at_aggregator(0, item(0), 2), {"waiting": []})
    assert cancelled == Arrived(Verdict.CANCELLED, None, OPEN)
    # nothing arrived: the barrier still waits for both items
    assert agg(store, 1, "probe", item(1), total=2) == Barrier(WAITING, 1)


@flow_case("arrive_retires_the_merge_timer_token_when_it_decides")
def arrive_retires_the_merge_timer_token_when_it_decides(store: StateStore) -> None:
    """The deciding arrival retires the merge's timer token, whether the waiting arrival
    parked it already (ex) or parks it only afterwards (ex-2): the execution completes."""
    for ex, late_park in (("ex", False), ("ex-2", True)):
        a, b = fan_out(store, ex, 2)
        timer = child_token("merge-timer:t", 0, "merge")
        nxt = child_token(b, 0, "after")
        waiting = store.arrive(ex, a, T1, 100, at_merge("a", ctx("a"), timer, 60_000), {})
        assert waiting.transition is None and waiting.barrier is not None
        if not late_park:
            assert store.advance(ex, a, [timer], None, None, T1) == OPEN
            assert store.admit(ex, timer, T1).verdict is Verdict.RUN  # live until decided
        released = store.arrive(
            ex, b, T1, 100, at_merge("b", ctx("b"), timer, 60_000), {"released": [nxt]}
        )
        assert released.transition == OPEN and released.barrier is not None
        assert released.barrier.keys == ["a", "b"]
        if late_park:
            assert store.advance(ex, a, [timer], None, None, T1) == OPEN
        assert store.admit(ex, timer, T1).verdict is Verdict.REPLAY
        # a third branch reaching the decided merge is closed (it did not decide it)
        third = child_token(nxt, 0, "third")
        assert store.advance(ex, nxt, [third], None, None, T1) == OPEN
        closed = store.arrive(ex, third, T1, 100, at_merge("c", ctx("c"), timer, 60_000), {})
        assert closed.barrier is not None and closed.barrier.state is CLOSED
        assert store.advance(ex, third, [], ctx("after"), None, T1) == done([ctx("after")])


def at_held_aggregator(index: int, total: int = 3, scope: str = "") -> AggregateArrival:
    """An arrival at the aggregator of `split` that names the barrier's hold token."""
    hold = aggregate_hold("split", scope)
    return AggregateArrival("split", scope, index, total, item(index), hold)


@flow_case("arrive_parks_the_aggregator_hold_until_the_release")
def arrive_parks_the_aggregator_hold_until_the_release(store: StateStore) -> None:
    """Split branches that join one at a time, none live in between (a Go worker's fan-out:
    joining tokens, docs/WIRE.md section 12.1): the first waiting arrival, with nothing else
    live, parks the barrier's hold token (later ones find it live), so the execution stays
    open and the next branch joins it; the releasing arrival
    retires the hold (no step of its own) before its own advance; the execution completes
    once, when the branch after the aggregator ends. Without the hold, the first waiting
    arrival closed the execution and the others found it ended (stale)."""
    hold = aggregate_hold("split", "")
    joins = [JOINING + f"item{i}" for i in range(3)]
    waiting = {"waiting": [hold], "closed": []}
    first = store.arrive("ex", joins[0], T1, 100, at_held_aggregator(0), waiting)
    assert first == Arrived(Verdict.RUN, Barrier(WAITING, 1), OPEN)
    assert store.admit("ex", hold, T1) == Admission(Verdict.RUN, 1)  # parked: live
    again = store.arrive("ex", joins[0], T1, 100, at_held_aggregator(0), waiting)
    assert again == Arrived(Verdict.REPLAY, Barrier(WAITING, 1), OPEN)  # a redelivery
    second = store.arrive("ex", joins[1], T1, 100, at_held_aggregator(1), waiting)
    assert second == Arrived(Verdict.RUN, Barrier(WAITING, 2), OPEN)  # joined: still open
    nxt = child_token(joins[2], 0, "after")
    last = store.arrive(
        "ex", joins[2], T1, 100, at_held_aggregator(2), {**waiting, "released": [nxt]}
    )
    assert last == Arrived(Verdict.RUN, Barrier(RELEASED, 3, *items(3)), OPEN)
    assert store.admit("ex", hold, T1) == Admission(Verdict.REPLAY, 3)  # retired, uncounted
    replayed = store.arrive(
        "ex", joins[2], T1, 100, at_held_aggregator(2), {**waiting, "released": [nxt]}
    )
    assert replayed == Arrived(Verdict.REPLAY, Barrier(RELEASED, 3, *items(3)), OPEN)
    assert store.advance("ex", nxt, [], ctx("after"), None, T1) == done([ctx("after")], T1)
    # the execution ended: a late branch of it is stale, and opens nothing
    late = store.arrive("ex", JOINING + "item9", T1, 100, at_held_aggregator(1), waiting)
    assert late == Arrived(Verdict.STALE, None, OPEN)

    # ex-2: the release comes between the barrier half of a waiting arrival and its advance
    # (an admitted step: `record_arrival`, then `advance`): the hold it parks afterwards was
    # retired already and stays out, so the execution completes at its last branch
    a, b = fan_out(store, "ex-2", 2)
    assert store.admit("ex-2", a, T1).verdict is Verdict.RUN
    held = AggregateArrival("split", "", 0, 2, item(0), hold)
    assert record_arrival(store, "ex-2", a, Verdict.RUN, T1, held) == Barrier(WAITING, 1)
    releasing = AggregateArrival("split", "", 1, 2, item(1), hold)
    released = store.arrive("ex-2", b, T1, 100, releasing, {**waiting, "released": []})
    assert released == Arrived(Verdict.RUN, Barrier(RELEASED, 2, *items(2)), OPEN)
    assert store.advance("ex-2", a, [hold], None, None, T1) == done([])
    assert store.admit("ex-2", hold, T1) == Admission(Verdict.REPLAY, 3)

    # ex-3: a failure closes an execution whose barrier waits, hold and all, at once (the
    # first branch parked the hold, nothing else being live; the failing one joined then)
    a, b = JOINING + "f0", JOINING + "f1"
    assert store.arrive("ex-3", a, T1, 100, at_held_aggregator(0, 2), waiting).transition == OPEN
    assert store.admit("ex-3", hold, T1).verdict is Verdict.RUN
    halt = Failure("halted", "node x halted", ctx("b"))
    assert store.advance("ex-3", b, [], None, halt, T1) == Transition(
        True, "halted", "node x halted", T1, [ctx("b")]
    )
    assert store.admit("ex-3", hold, T1).verdict is Verdict.CANCELLED


@flow_case("arrive_parks_the_aggregator_hold_only_when_nothing_else_is_live")
def arrive_parks_the_aggregator_hold_only_when_nothing_else_is_live(store: StateStore) -> None:
    """A split that runeworker fans out records every branch token live at once, so while an
    arrival waits some sibling token is live: the hold token is never parked (the execution's
    live set holds what it held before holds existed) and the execution completes once, at
    the end of the branch after the release. The hold parks only when the waiting arrival's
    own advance would leave nothing live (ex-2), whichever way the token is advanced."""
    hold = aggregate_hold("split", "")
    a, b, c = fan_out(store, "ex", 3)
    nxt = child_token(c, 0, "after")
    foresight = {"waiting": [hold], "closed": [], "released": [nxt], "dead": [nxt]}
    first = store.arrive("ex", a, T1, 100, at_held_aggregator(0), foresight)
    assert first == Arrived(Verdict.RUN, Barrier(WAITING, 1), OPEN)
    assert store.admit("ex", hold, T1) == Admission(Verdict.STALE, 2)  # b and c live: no hold
    again = store.arrive("ex", a, T1, 100, at_held_aggregator(0), foresight)
    assert again == Arrived(Verdict.REPLAY, Barrier(WAITING, 1), OPEN)  # parks nothing either
    assert store.admit("ex", hold, T1) == Admission(Verdict.STALE, 2)
    second = store.arrive("ex", b, T1, 100, at_held_aggregator(1), foresight)
    assert second == Arrived(Verdict.RUN, Barrier(WAITING, 2), OPEN)  # c is live
    assert store.admit("ex", hold, T1) == Admission(Verdict.STALE, 3)
    last = store.arrive("ex", c, T1, 100, at_held_aggregator(2), foresight)
    assert last == Arrived(Verdict.RUN, Barrier(RELEASED, 3, *items(3)), OPEN)
    # the release retires the hold all the same: never live, it is recorded as advanced
    assert store.admit("ex", hold, T1) == Admission(Verdict.REPLAY, 4)
    assert store.admit("ex", nxt, T1) == Admission(Verdict.RUN, 4)
    assert store.advance("ex", nxt, [], ctx("after"), None, T1) == done([ctx("after")])
    assert store.admit("ex", nxt, T1) == Admission(Verdict.REPLAY, 5)  # no uncounted step

    # ex-2: an advance that names the hold among its children (an admitted step's waiting
    # arrival) parks it only when nothing else would be live; other children always go live
    a, b = fan_out(store, "ex-2", 2)
    assert store.advance("ex-2", a, [hold], None, None, T1) == OPEN  # b is live
    assert store.admit("ex-2", hold, T1) == Admission(Verdict.STALE, 2)
    kid = child_token(b, 0, "next")
    assert store.advance("ex-2", b, [hold, kid], None, None, T1) == OPEN  # kid is live
    assert store.admit("ex-2", hold, T1) == Admission(Verdict.STALE, 3)
    assert store.advance("ex-2", kid, [hold], None, None, T1) == OPEN  # nothing else: parked
    assert store.admit("ex-2", hold, T1) == Admission(Verdict.RUN, 4)
    assert store.retire("ex-2", hold, T1, counted=False) == done([])


@flow_case("arrive_released_by_an_earlier_version_completes")
def arrive_released_by_an_earlier_version_completes(store: StateStore) -> None:
    """A rolling upgrade: hosts sharing the queue run this version and an earlier runeworker,
    which names no hold token and so retires none (its arrivals have `hold` ""). In a split
    that runeworker fanned out, arrivals that this version takes wait without parking the
    hold, so a release by the earlier version leaves nothing behind and the execution
    completes once (ex); the other way round (a rollback) too (ex-2)."""
    hold = aggregate_hold("split", "")
    for ex, earlier in (("ex", {2}), ("ex-2", {0, 1})):
        tokens = fan_out(store, ex, 3)
        nxt = child_token(tokens[2], 0, "after")
        for i, token in enumerate(tokens):
            if i in earlier:  # as an earlier version calls it
                arrival = at_aggregator(i, item(i))
                foresight = {"waiting": [], "closed": [], "released": [nxt], "dead": [nxt]}
            else:
                arrival = at_held_aggregator(i)
                foresight = {"waiting": [hold], "closed": [], "released": [nxt], "dead": [nxt]}
            arrived = store.arrive(ex, token, T1, 100, arrival, foresight)
            assert arrived.transition == OPEN, (ex, i)
        assert arrived.barrier == Barrier(RELEASED, 3, *items(3))
        assert store.admit(ex, hold, T1).verdict is not Verdict.RUN, ex  # never live
        assert store.advance(ex, nxt, [], ctx("after"), None, T1) == done([ctx("after")]), ex


@flow_case("arrive_replayed_never_expires_a_merge")
def arrive_replayed_never_expires_a_merge(store: StateStore) -> None:
    a, _ = fan_out(store, "ex", 2)
    foresight: dict[str, list[str]] = {"waiting": []}
    first = store.arrive("ex", a, T1, 100, at_merge("a", ctx("a"), timeout_ms=10), foresight)
    assert first == Arrived(Verdict.RUN, Barrier(WAITING, 1, first_ms=NOW), OPEN)
    late = at_merge("a", ctx("a"), timeout_ms=10, now=NOW + 60_000)
    again = store.arrive("ex", a, T1, 100, late, foresight)
    assert again == Arrived(Verdict.REPLAY, Barrier(WAITING, 1, first_ms=NOW), OPEN)


def at_parking_merge(
    parent: str, payload: bytes | None, park: Park, now: int = NOW, expected: int = 2
) -> MergeArrival:
    """An arrival that hands the merge's 60 s timer to the store (`MergeArrival.park`)."""
    timer = child_token("merge-timer:" + park.timer_id, 0, "merge")
    rule = MergeRule(expected, False, 60_000)
    return MergeArrival("merge", "", parent, payload, rule, now, timer, park)


@flow_case("arrive_parks_and_cancels_the_merge_timer")
def arrive_parks_and_cancels_the_merge_timer(store: StateStore) -> None:
    """A merge arrival with its timer (`MergeArrival.park`), on a store that takes it in the
    arrival: the waiting RUN schedules the timer (due at first arrival + timeout, listed for
    its execution's failure) and parks its token, without a foresight for `waiting`; the
    deciding arrival retires the token and cancels the timer; a replay schedules nothing, nor
    does a waiting arrival once the timer is due. A store that cannot (a Redis Cluster)
    refuses the park, so a step never counts on it."""
    park = Park("timer-ex", b"resume ex")
    timer = at_parking_merge("a", None, park).timer_token
    if not store.parks_in_arrival:
        a, _ = fan_out(store, "ex", 2)
        try:
            store.arrive("ex", a, T1, 100, at_parking_merge("a", ctx("a"), park), {})
        except ValueError:
            return
        raise AssertionError("a store that cannot park took a park")
    a, b = fan_out(store, "ex", 2)
    nxt = child_token(b, 0, "after")
    foresight = {"closed": [], "released": [nxt]}
    waiting = store.arrive("ex", a, T1, 100, at_parking_merge("a", ctx("a"), park), foresight)
    assert waiting == Arrived(Verdict.RUN, Barrier(WAITING, 1, first_ms=NOW), OPEN)
    assert store.admit("ex", timer, T1) == Admission(Verdict.RUN, 2)  # parked: live
    assert store.next_due() == NOW + 60_000
    # the replay of the waiting arrival gets its recorded advance and schedules nothing
    store.cancel_timer(park.timer_id)
    again = store.arrive("ex", a, T1, 100, at_parking_merge("a", ctx("a"), park), foresight)
    assert again == Arrived(Verdict.REPLAY, Barrier(WAITING, 1, first_ms=NOW), OPEN)
    assert store.next_due() is None
    store.schedule(park.timer_id, NOW + 60_000, park.payload, owner="ex")
    released = store.arrive("ex", b, T1, 100, at_parking_merge("b", ctx("b"), park), foresight)
    assert released == Arrived(
        Verdict.RUN, Barrier(RELEASED, 2, ["a", "b"], [ctx("a"), ctx("b")], NOW), OPEN
    )
    assert store.next_due() is None  # cancelled by the decision
    assert store.admit("ex", timer, T1).verdict is Verdict.REPLAY  # retired
    assert store.advance("ex", nxt, [], ctx("after"), None, T1) == done([ctx("after")])

    # ex-2: the waiting arrival's timer is listed for the execution's failure
    a, b = fan_out(store, "ex-2", 2)
    park2 = Park("timer-ex-2", b"resume ex-2")
    parked = store.arrive("ex-2", a, T1, 100, at_parking_merge("a", None, park2), {})
    assert parked.transition == OPEN
    halt = Failure("failed", "http 500", ctx("b"))
    failed = store.advance("ex-2", b, [], None, halt, T1)
    assert failed == Transition(True, "failed", "http 500", T0, [ctx("b")], ["timer-ex-2"])
    claimed = store.claim_due(NOW + 60_000, 10, 1000)
    assert claimed == [Timer("timer-ex-2", b"resume ex-2")]

    # ex-3: a ghost waits when the timer is due (first arrival + timeout, to the ms): it
    # parks nothing and does not schedule the timer again
    a, b, _ = fan_out(store, "ex-3", 3)
    park3 = Park("timer-ex-3", b"resume ex-3")
    first = store.arrive("ex-3", a, T1, 100, at_parking_merge("a", None, park3, NOW, 3), {})
    assert first.transition == OPEN and store.next_due() == NOW + 60_000
    store.cancel_timer(park3.timer_id)  # (as if it fired)
    late = at_parking_merge("b", None, park3, NOW + 60_000, 3)
    assert store.arrive("ex-3", b, T1, 100, late, {}) == Arrived(
        Verdict.RUN, Barrier(WAITING, 2, first_ms=NOW), OPEN
    )
    assert store.next_due() is None


# -- two workers' steps interleaved on one store (tests/unit/test_flow_state.py,
# tests/integration/test_redis_state.py) --------------------------------------------------------

INTERLEAVINGS: dict[str, Case] = {}


def interleaving(name: str) -> Callable[[Case], Case]:
    """Add the decorated function to INTERLEAVINGS under `name`."""

    def add(fn: Case) -> Case:
        INTERLEAVINGS[name] = fn
        return fn

    return add


class Unparked:
    """The store as a step sees it when the store cannot take a merge's timer in the arrival
    (a Redis Cluster; a resume message over `PARK_IN_ARRIVAL_MAX_BYTES` takes the same path):
    the step schedules and cancels the timer by calls of its own."""

    parks_in_arrival = False

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class Meanwhile:
    """The store as one worker's step sees it, except that its first call of `method` first
    runs `other` (another worker's step on the same store) to its end: an interleaving of two
    workers made deterministic. Every call goes to the real store."""

    def __init__(self, store: StateStore, method: str, other: Callable[[], None]) -> None:
        self._store, self._method, self._other = store, method, other

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._store, name)
        if name != self._method or self._other is None:
            return call

        def first(*args: Any, **kwargs: Any) -> Any:
            other, self._other = self._other, None
            other()
            return call(*args, **kwargs)

        return first


FAN_IN = msgspec.json.encode(
    {
        "nodes": [
            {"id": k, "name": k, "type": "log", "parameters": {"message": k}}
            for k in ("n1", "n2", "n3", "n5")
        ]
        + [{"id": "n4", "name": "n4", "type": "merge", "parameters": {}}],  # 300 s timeout
        "edges": [
            {"id": f"e{i}", "src": s, "dst": d}
            for i, (s, d) in enumerate(
                [("n1", "n2"), ("n1", "n3"), ("n2", "n4"), ("n3", "n4"), ("n4", "n5")]
            )
        ],
    }
)


def _wire(msg: NodeExecutionMessage) -> NodeExecutionMessage:
    return decode_execution(encode(msg))  # exactly what a worker decodes


def _merge_arrivals_interleaved(store: StateStore, method: str) -> list[Outbox]:
    """n1 fans out to n2 and n3, which meet at the merge n4 (wait for all, with its default
    timeout, so a waiting arrival parks the merge's timer token), then n5. Worker A takes the
    arrival from n2 and worker B the one from n3; B's whole step runs inside A's, before A's
    first `method` call on the store. A schedules the merge's timer by calls of its own
    (`Unparked`: on a store that takes it in the arrival, nothing of A's step comes between its
    arrival and its advance); B's store may take it. Returns every step's outbox, n5's
    last."""
    executor = Executor(store)
    start = NodeExecutionMessage("wf", "ex", "n1", msgspec.Raw(FAN_IN), 0, 0, {})
    opened = executor.step(_wire(start))
    to_left, to_right = (_wire(m) for m in opened.messages)
    [left] = executor.step(to_left).messages
    [right] = executor.step(to_right).messages
    other: list[Outbox] = []
    unparked = cast(StateStore, Unparked(store))
    meanwhile = Meanwhile(
        unparked, method, lambda: other.append(Executor(store).step(_wire(right)))
    )
    waited = Executor(cast(StateStore, meanwhile)).step(_wire(left))
    [released] = other
    # A: the barrier waited (`running` stays among the statuses: no on_running callback)
    assert [s.status for s in waited.statuses] == ["running", "waiting"]
    assert released.statuses[-1].status == "success"  # B: then it released
    [last] = released.messages
    return [opened, waited, released, executor.step(_wire(last))]


@interleaving("merge_released_before_the_waiting_arrival_advances")
def merge_released_before_the_waiting_arrival_advances(store: StateStore) -> None:
    """A's merge_arrive says waiting and A arms the timer; B decides the barrier, cancels the
    timer and retires its token; only then does A's advance park the token. The execution
    still completes once, when n5 ends, and no timer is left."""
    outboxes = _merge_arrivals_interleaved(store, "advance")
    completions = [o.completion for o in outboxes if o.completion is not None]
    assert [c.status for c in completions] == ["completed"]
    assert outboxes[-1].completion is completions[0]
    assert store.next_due() is None


@interleaving("merge_released_before_the_waiting_arrival_arms_its_timer")
def merge_released_before_the_waiting_arrival_arms_its_timer(store: StateStore) -> None:
    """B decides the barrier (and cancels a timer not armed yet) between A's merge_arrive and
    A's schedule. The execution completes when n5 ends; the timer A arms afterwards fires
    into a decided barrier and a retired token: it publishes nothing."""
    outboxes = _merge_arrivals_interleaved(store, "schedule")
    assert [o.completion is not None for o in outboxes] == [False, False, False, True]
    due = store.next_due()
    assert due is not None
    [timer] = store.claim_due(due, 10, 60_000)
    store.ack_timer(timer.timer_id)
    fired = Executor(store).step(decode_execution(timer.payload), None, True)
    assert (fired.statuses, fired.messages, fired.completion) == ([], [], None)
    assert fired.report.verdict is Verdict.REPLAY
    assert store.next_due() is None


# -- state lost: evicted, expired, flushed (tests/unit/test_state.py,
# tests/integration/test_redis_state.py) --
#
# A case takes the store and `evict(execution_id, part)`, which takes from the store what a
# Redis that evicts (or expires, or is flushed) would: `all` of the execution's state, its
# `live` branch tokens alone, or its `barriers` with every trace of them (on Redis their marks
# in the execution's meta too: a store that lost those would otherwise report the loss there).

Evict = Callable[[str, str], None]
LostCase = Callable[[StateStore, Evict], None]
LOST_CASES: dict[str, LostCase] = {}


def redis_evictor(client: Any, prefix: str) -> Evict:
    """`evict` on a Redis or a Redis Cluster (`client`, keys under `prefix`): the execution's
    keys deleted as eviction deletes them (they share one hash tag, so one slot)."""

    def evict(execution_id: str, part: str) -> None:
        base = f"{prefix}exec:{{{execution_id}}}:"
        if part == "all":
            keys = list(client.scan_iter(match=base + "*"))
            assert keys, f"no key of execution {execution_id} to evict"
            client.delete(*keys)
        elif part == "barriers":
            keys = [
                k for kind in ("node:", "split:") for k in client.scan_iter(match=base + kind + "*")
            ]
            assert keys, f"no barrier of execution {execution_id} to evict"
            client.delete(*keys)
            marks = [f for f in client.hkeys(base + "branches:meta")
                     if f.startswith((b"node:", b"split:"))]  # fmt: skip
            if marks:
                client.hdel(base + "branches:meta", *marks)
        else:
            client.delete(base + "branches:live")

    return evict


def lost_case(name: str) -> Callable[[LostCase], LostCase]:
    """Add the decorated function to LOST_CASES under `name`."""

    def add(fn: LostCase) -> LostCase:
        LOST_CASES[name] = fn
        return fn

    return add


LOST = Failure("failed", "state lost", ctx("lost"))


def failed_lost(started: int) -> Transition:
    return Transition(True, "failed", "state lost", started, [ctx("lost")])


def raises_lost(call: Callable[[], object], execution_id: str, what: str) -> None:
    try:
        call()
    except StateLost as lost:
        assert (lost.execution_id, lost.what) == (execution_id, what), lost
        assert execution_id in str(lost), lost
    else:
        raise AssertionError(f"no StateLost({what!r}) for {execution_id}")


def aggregate_arrival() -> AggregateArrival:
    return AggregateArrival("split", "", 0, 2, item(0))


@lost_case("only_a_token_that_may_open_an_unknown_execution_opens_it")
def only_a_token_that_may_open_an_unknown_execution_opens_it(
    store: StateStore, evict: Evict
) -> None:
    """The root, a joining token, a replayed dead letter (`anew`) and a step of an execution
    whose single-branch start was recorded open an unknown execution; a token derived from a
    parent does not: that parent advanced in the store, whose record of it is gone. Every call
    but an advance with a failure says so, and goes on saying so until that failure is
    recorded (and again when the step that found it is redelivered: the failure replays);
    the failure closes the execution once."""
    derived = child_token(root_token("ex"), 0, "a")
    # an advance without an admission first is told as well
    raises_lost(lambda: store.advance("ex-0", derived, [], ctx("a"), None, T0), "ex-0",
                "execution")  # fmt: skip
    raises_lost(lambda: store.admit("ex", derived, T0), "ex", "execution")
    raises_lost(lambda: store.admit("ex", derived, T1), "ex", "execution")
    raises_lost(lambda: store.settle("ex", derived, [], ctx("a"), None, T1, 100), "ex", "execution")
    raises_lost(lambda: store.advance("ex", derived, [], ctx("a"), None, T1), "ex", "execution")
    raises_lost(
        lambda: store.arrive("ex", derived, T1, 100, aggregate_arrival(), {}), "ex", "execution"
    )
    assert store.advance("ex", derived, [], None, LOST, T1) == failed_lost(T0)
    # its redelivery (the step's commit lost) is told again, and replays the failure
    raises_lost(lambda: store.admit("ex", derived, T1), "ex", "execution")
    assert store.advance("ex", derived, [], None, LOST, T1) == failed_lost(T0)
    sibling = child_token(root_token("ex"), 1, "b")
    assert store.admit("ex", sibling, T1) == Admission(Verdict.CANCELLED, 1)
    # a settled step's failure is recorded the same way
    other = child_token(root_token("ex-settled"), 0, "a")
    raises_lost(lambda: store.settle("ex-settled", other, [], None, None, T0, 9), "ex-settled",
                "execution")  # fmt: skip
    settled = store.settle("ex-settled", other, [], None, LOST, T1, 9)
    assert settled == Settlement(Verdict.RUN, failed_lost(T0))
    # tokens that may open one
    assert store.admit("ex-root", root_token("ex-root"), T0) == Admission(Verdict.RUN, 0)
    joining = JOINING + "0123456789abcdef0123"
    assert store.admit("ex-join", joining, T0) == Admission(Verdict.RUN, 0)
    assert store.admit("ex-anew", derived, T0, anew=True) == Admission(Verdict.RUN, 0)
    anew = store.settle("ex-anew-2", derived, [], ctx("a"), None, T0, 9, anew=True)
    assert anew == Settlement(Verdict.RUN, done([ctx("a")], T0))
    store.begin("ex-begun", T0)
    store.flush()
    assert store.admit("ex-begun", derived, T1) == Admission(Verdict.RUN, 0)


@lost_case("an_evicted_execution_is_failed_once")
def an_evicted_execution_is_failed_once(store: StateStore, evict: Evict) -> None:
    """Three branches live, then the execution's whole state gone: the first step to come
    finds it lost and fails it (even should the live set go again before it does); a sibling
    that comes meanwhile is stale, one that comes after the failure is cancelled; nothing
    closes it twice."""
    a, b, c = fan_out(store, "ex", 3)
    evict("ex", "all")
    raises_lost(lambda: store.admit("ex", a, T1), "ex", "execution")
    assert store.admit("ex", b, T1) == Admission(Verdict.STALE, 0)  # a fails it
    evict("ex", "live")
    assert store.admit("ex", b, T1) == Admission(Verdict.STALE, 0)  # still a's to tell
    assert store.advance("ex", a, [], None, LOST, T1) == failed_lost(T1)
    assert store.admit("ex", b, T1) == Admission(Verdict.CANCELLED, 1)
    cancelled = store.settle("ex", c, [], ctx("c"), None, T1, 100)
    assert cancelled == Settlement(Verdict.CANCELLED, OPEN)
    raises_lost(lambda: store.admit("ex-2", a, T1), "ex-2", "execution")  # another one


@lost_case("a_joining_branch_may_fail_an_execution_found_lost")
def a_joining_branch_may_fail_an_execution_found_lost(store: StateStore, evict: Evict) -> None:
    """An execution found lost by one step (kept live, to record its failure) is joined by a
    message without a token (a Go worker's branch), which fails it first: the step that found
    the loss, redelivered, is then cancelled like any sibling, not told the loss again."""
    a, _ = fan_out(store, "ex", 2)
    evict("ex", "all")
    raises_lost(lambda: store.admit("ex", a, T1), "ex", "execution")
    joining = JOINING + "0123456789abcdef0123"
    assert store.admit("ex", joining, T1).verdict is Verdict.RUN
    assert store.advance("ex", joining, [], None, LOST, T1).closed
    assert store.admit("ex", a, T1).verdict is Verdict.CANCELLED
    assert store.settle("ex", a, [], None, LOST, T1, 100).verdict is Verdict.CANCELLED


@lost_case("evicted_branch_tokens_are_lost_not_those_of_an_ended_execution")
def evicted_branch_tokens_are_lost_not_those_of_an_ended_execution(
    store: StateStore, evict: Evict
) -> None:
    """A running execution's record left, its live branch tokens gone: no branch is live in an
    execution that has not ended, which only a loss leaves; told to the first step, failed.
    But a late message of an execution that completed (its live set empty: closed, not lost)
    is stale, and one of a failed execution cancelled, as before: never a second completion."""
    [only] = fan_out(store, "ended", 1)
    assert store.advance("ended", only, [], ctx("x"), None, T1) == done([ctx("x")])
    stray = child_token(only, 0, "y")
    assert store.admit("ended", stray, T1) == Admission(Verdict.STALE, 2)
    evict("ended", "live")  # empty already: nothing changes
    assert store.settle("ended", stray, [], ctx("y"), None, T1, 100) == Settlement(
        Verdict.STALE, OPEN)  # fmt: skip
    c, d = fan_out(store, "failed", 2)
    assert store.advance("failed", c, [], None, LOST, T1).closed
    assert store.admit("failed", child_token(d, 0, "z"), T1) == Admission(Verdict.CANCELLED, 2)
    a, b = fan_out(store, "ex", 2)
    evict("ex", "live")
    raises_lost(lambda: store.settle("ex", a, [], ctx("a"), None, T1, 100), "ex", "branches")
    raises_lost(lambda: store.admit("ex", a, T1), "ex", "branches")
    assert store.admit("ex", b, T1) == Admission(Verdict.STALE, 1)
    settled = store.settle("ex", a, [], None, LOST, T1, 100)
    assert settled == Settlement(Verdict.RUN, failed_lost(T0))
    assert store.admit("ex", b, T1) == Admission(Verdict.CANCELLED, 2)


@lost_case("late_and_repeated_messages_of_healthy_executions_are_never_lost")
def late_and_repeated_messages_of_healthy_executions_are_never_lost(
    store: StateStore, evict: Evict
) -> None:
    """Nothing evicted: every redelivery, duplicate copy, late ghost, joining token or replayed
    dead letter of an execution that is running, completed through an aggregator, or failed,
    gets the verdict it got before state-lost detection (run, replay, stale or cancelled),
    never `StateLost` (a false positive would fail a healthy execution)."""
    # completed through an aggregator released by its last item
    a, b = fan_out(store, "ok", 2)
    nxt = child_token(b, 0, "after")
    foresight = {"waiting": [], "closed": [], "released": [nxt], "dead": [nxt]}
    first = store.arrive("ok", a, T1, 100, at_aggregator(0, item(0), 2), foresight)
    assert first == Arrived(Verdict.RUN, Barrier(WAITING, 1), OPEN)
    # the waiting arrival redelivered before and after the release
    again = store.arrive("ok", a, T1, 100, at_aggregator(0, item(0), 2), foresight)
    assert again.verdict is Verdict.REPLAY
    last = store.arrive("ok", b, T1, 100, at_aggregator(1, item(1), 2), foresight)
    assert last.verdict is Verdict.RUN and last.barrier is not None
    assert store.arrive("ok", a, T1, 100, at_aggregator(0, item(0), 2), foresight).verdict is (
        Verdict.REPLAY)  # fmt: skip
    assert store.advance("ok", nxt, [], ctx("after"), None, T1) == done([ctx("after")])
    # after the end: each step's redelivery replays, anything else of it is stale
    assert store.admit("ok", nxt, T1).verdict is Verdict.REPLAY
    assert store.settle("ok", nxt, [], ctx("after"), None, T1, 100).verdict is Verdict.REPLAY
    assert store.arrive("ok", b, T1, 100, at_aggregator(1, item(1), 2), foresight).verdict is (
        Verdict.REPLAY)  # fmt: skip
    ghost = child_token(a, 0, "ghost")
    assert store.admit("ok", ghost, T1).verdict is Verdict.STALE
    assert store.settle("ok", ghost, [], None, None, T1, 100).verdict is Verdict.STALE
    assert store.arrive("ok", ghost, T1, 100, at_aggregator(0, None, 2), foresight).verdict is (
        Verdict.STALE)  # fmt: skip
    assert store.advance("ok", ghost, [], None, None, T1) == OPEN
    joining = JOINING + "00112233445566778899"
    assert store.admit("ok", joining, T1).verdict is Verdict.STALE
    assert store.retire("ok", child_token(nxt, 0, "x"), T1) == OPEN
    assert store.admit("ok", nxt, T1, anew=True).verdict is Verdict.REPLAY  # dlq replay
    # a root redelivered after the end replays its fan-out
    assert store.admit("ok", root_token("ok"), T1).verdict is Verdict.REPLAY
    # failed under halt while a sibling ran: the sibling, its redelivery and its late children
    # are cancelled; the failure replays
    c, d = fan_out(store, "halt", 2)
    assert store.admit("halt", d, T1).verdict is Verdict.RUN
    halted = store.advance("halt", c, [], None, Failure("halted", "x", ctx("c")), T1)
    assert halted.closed
    assert store.settle("halt", d, [], ctx("d"), None, T1, 100).verdict is Verdict.CANCELLED
    assert store.admit("halt", d, T1).verdict is Verdict.CANCELLED
    assert store.admit("halt", child_token(d, 0, "e"), T1).verdict is Verdict.CANCELLED
    assert store.admit("halt", joining, T1).verdict is Verdict.CANCELLED
    assert store.advance("halt", c, [], None, Failure("halted", "x", ctx("c")), T1) == halted
    # a single-branch execution: its start recorded, then a step of it on the full protocol
    # (a replayed dead letter, a peer that plans it otherwise), then its redelivery
    store.begin("single", T0)
    store.flush()
    mid = child_token(child_token(root_token("single"), 0, "a"), 0, "b")
    assert store.admit("single", mid, T1) == Admission(Verdict.RUN, 0)
    assert store.advance("single", mid, [], ctx("b"), None, T1) == done([ctx("b")], T1)
    assert store.admit("single", mid, T1).verdict is Verdict.REPLAY


@lost_case("a_merge_timer_firing_at_a_barrier_gone_without_a_trace_fails_the_execution")
def a_merge_timer_firing_at_a_barrier_gone_without_a_trace_fails_the_execution(
    store: StateStore, evict: Evict
) -> None:
    """n2's arrival waits at the merge n4 and arms its timer; the barrier is then lost without
    a trace (no mark tells the loss). The timer fires: it must not begin the barrier with an
    arrival no branch made (a real arrival would then find it waiting and open it a parent
    early, or it would wait for ever while the timer's token was absorbed). The step fails the
    merge and the execution through the timer's token, once: `failed` status and completion,
    a dead letter naming the loss; n3's arrival, late, is cancelled."""
    executor = Executor(store)
    start = NodeExecutionMessage("wf", "ex", "n1", msgspec.Raw(FAN_IN), 0, 0, {})
    to_left, to_right = (_wire(m) for m in executor.step(_wire(start)).messages)
    [left] = executor.step(to_left).messages
    [right] = executor.step(to_right).messages
    waited = executor.step(_wire(left))
    assert [s.status for s in waited.statuses] == ["running", "waiting"]
    evict("ex", "barriers")
    due = store.next_due()
    assert due is not None
    [timer] = store.claim_due(due, 10, 60_000)
    fired = executor.step(decode_execution(timer.payload), None, True)
    store.ack_timer(timer.timer_id)
    assert [s.status for s in fired.statuses] == ["failed"]
    error = fired.statuses[0].error
    assert error is not None and "merge n4 barrier of execution ex is gone" in error.message
    assert fired.dead_letter and "state lost" in fired.dead_letter
    assert fired.completion is not None and fired.completion.status == "failed"
    assert "state lost" in (fired.completion.failure_reason or "")
    late = executor.step(_wire(right))
    assert (late.messages, late.completion) == ([], None)
    assert store.next_due() is None
