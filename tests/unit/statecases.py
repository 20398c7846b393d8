"""The shared behaviour table of `StateStore`: every case runs against MemoryStore
(tests/unit/test_state.py) and RedisStore (tests/integration/test_redis_state.py).

A case is a function taking a fresh store; it asserts exact Admissions and Transitions.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from runeworker.engine.state import (
    Admission,
    Failure,
    StateStore,
    Transition,
    Verdict,
    child_token,
    root_token,
)

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


@case("halt_cancels_siblings")
def halt_cancels_siblings(store: StateStore) -> None:
    a, b, c = fan_out(store, "ex", 3)
    halt = Failure("halted", "node stop halted the workflow", ctx("a"))
    assert store.advance("ex", a, [child_token(a, 0, "next")], None, halt, T1) == OPEN
    assert store.admit("ex", child_token(a, 0, "next"), T1) == Admission(Verdict.STALE, 2)
    assert store.admit("ex", b, T1) == Admission(Verdict.CANCELLED, 2)
    assert store.advance("ex", b, [], None, None, T1) == OPEN
    # c was already running when a halted: its children are dropped, its leaf is not merged
    assert store.admit("ex", c, T1) == Admission(Verdict.CANCELLED, 3)
    closing = store.advance("ex", c, [child_token(c, 0, "more")], ctx("c"), None, T1)
    assert closing == Transition(True, "halted", "node stop halted the workflow", T0, [ctx("a")])
    assert store.advance("ex", c, [], None, None, T1) == closing


@case("first_failure_wins")
def first_failure_wins(store: StateStore) -> None:
    a, b = fan_out(store, "ex", 2)
    assert store.advance("ex", a, [], None, Failure("failed", "http 500", ctx("a")), T1) == OPEN
    late = Failure("halted", "too late", ctx("b"))
    closing = store.advance("ex", b, [], None, late, T1)
    assert closing == Transition(True, "failed", "http 500", T0, [ctx("a")])


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


@case("advance_without_admit_opens")
def advance_without_admit_opens(store: StateStore) -> None:
    assert store.advance("ex", "t", [], ctx("t"), None, T1) == done([ctx("t")], T1)
    assert store.admit("ex", "t", T0) == Admission(Verdict.REPLAY, 1)


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
