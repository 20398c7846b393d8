"""RabbitMQ's back-pressure on a worker child's loop (`runeworker.child.worker.Worker`), on the
in-memory broker of `stubbroker.py`: a resource alarm that blocks the child's publishes
(connection.blocked), a channel closed for an acknowledgement timeout (consumer_timeout), and
buffered deliveries handed back before they could reach it. What each must keep: nothing lost,
nothing run twice that had not started, no attempt counted for work the child cut itself, the
supervisor told the child is blocked rather than hung, and one clear line per event. The same
behaviour against a real RabbitMQ: tests/e2e/test_flow_control.py (minutes, not seconds).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
from stubbroker import StubBroker, StubStore
from test_worker_loop import QUEUE, Recorder, decoded, message, run_until_idle

from runeworker.adapters.amqp import COMPLETION_QUEUE
from runeworker.child.worker import Worker
from runeworker.config import load_config
from runeworker.engine.registry import NodeContext, node
from runeworker.supervisor.children import EXIT_OK
from runeworker.supervisor.liveness import ChildState

ACK_TEXT = (
    "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value "
    "used: 1800000 ms. This timeout value can be configured, see consumers doc guide to learn more"
)


class Told(Recorder):
    """Recorder that also writes down flow and acknowledgement-timeout events."""

    def on_flow(self, blocked: bool) -> None:
        self.events.append(("flow", blocked))

    def on_ack_timeout(self) -> None:
        self.events.append(("ack_timeout",))


SLOT = 3  # the child's place on the board in these tests


class Board:
    """A liveness board that writes down every beat (state, `at`) and every note of SLOT."""

    def __init__(self) -> None:
        self.beats: list[tuple[ChildState, float | None]] = []
        self.notes: list[str] = []

    def beat(self, slot: int, state: ChildState, handled: int = 0, at: float | None = None) -> None:
        assert slot == SLOT
        self.beats.append((state, at))

    def note(self, slot: int, text: str) -> None:
        assert slot == SLOT
        self.notes.append(text)


def worker_on(
    broker: StubBroker,
    store: StubStore,
    hooks: Any,
    board: Board | None = None,
    settings: dict[str, Any] | None = None,
) -> Worker:
    overrides = {"broker.retry_delay": 0, "broker.retry_delay_max": 0, **(settings or {})}
    cfg = load_config(None, env={}, overrides=overrides)
    return Worker(cfg, board, SLOT, broker=broker, store=store, hooks=hooks)  # type: ignore[arg-type]


def tell(broker: StubBroker, blocked: str | None) -> None:
    """RabbitMQ's connection.blocked (`blocked`: why) or connection.unblocked (None), as the
    listener the worker gave the broker hears it."""
    assert broker.flow is not None
    broker.flow(blocked)


def completions(broker: StubBroker) -> dict[str, list[str]]:
    """Execution id -> the statuses of its completions, in order."""
    out: dict[str, list[str]] = {}
    for c in decoded(broker.waiting(COMPLETION_QUEUE)):
        out.setdefault(c["execution_id"], []).append(c["status"])
    return out


def lines(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


# -- a resource alarm (connection.blocked) ------------------------------------------------------


@pytest.mark.parametrize("connected_to", [None, "rabbit-2.example:5672"])
@pytest.mark.parametrize("initiated", [True, False])
def test_an_alarm_during_a_commit_beats_blocked_and_the_commit_goes_through_when_it_clears(
    broker: StubBroker,
    store: StubStore,
    caplog: pytest.LogCaptureFixture,
    connected_to: str | None,
    initiated: bool,
) -> None:
    """RabbitMQ blocks the child's publishes in the middle of a commit and says so again every
    second while the alarm lasts: the child beats BLOCKED (the supervisor neither kills it as
    hung nor counts a crash), notes where and why once, with the URL's password masked, and
    once the alarm clears goes on as if nothing happened: no delivery handed back, none run
    twice, one line each way. The node named is the one the child is connected to when the
    broker knows it (`Broker.node`), else the configured URL. Start messages are mirrored in a
    commit of their own before the batch's (`initiated` False): the alarm comes in that one,
    before any step ran."""
    caplog.set_level(logging.INFO, logger="runeworker")
    if connected_to is not None:
        broker.node = connected_to  # type: ignore[attr-defined]
    for i in range(3):
        broker.enqueue(QUEUE, message(f"ex-{i}", initiated=initiated))

    def alarm() -> None:
        if broker.committed:  # the first commit only
            return
        for _ in range(3):
            tell(broker, "memory")
        time.sleep(0.05)
        tell(broker, None)
        tell(broker, None)  # said twice: the second changes nothing

    broker.before_commit = alarm
    hooks, board = Told(), Board()
    url = "amqp://runner:s3cret@rabbit.example:5672/rune"
    worker = worker_on(broker, store, hooks, board, {"broker.url": url})
    run_until_idle(worker, broker)
    assert completions(broker) == {f"ex-{i}": ["completed"] for i in range(3)}
    assert broker.connections == 1 and broker.rollbacks == 0
    assert [tx.requeued for tx in broker.committed] == ([[]] if initiated else [[], []])
    assert [e for e in hooks.events if e[0] == "flow"] == [("flow", True), ("flow", False)]
    where = connected_to or "amqp://runner:***@rabbit.example:5672/rune"
    assert board.notes == [f"RabbitMQ at {where} blocks publishes: memory (a resource alarm)", ""]
    states = [state for state, _ in board.beats]
    blocked = states.index(ChildState.BLOCKED)
    assert states.count(ChildState.BLOCKED) == 3  # each time RabbitMQ says so
    # no step was running during the commit: ready again, not busy
    assert states[blocked + 3] is ChildState.READY
    assert lines(caplog, logging.WARNING, "blocks this child's publishes") == [
        f"RabbitMQ at {where} blocks this child's publishes: memory (a memory or disk alarm, "
        "`rabbitmqctl status`); its commit waits and its deliveries stay unacknowledged until "
        "the alarm clears: nothing is lost or run again"
    ]
    [lifted] = lines(caplog, logging.INFO, "no longer blocks this child's publishes")
    found = re.fullmatch(
        r"RabbitMQ no longer blocks this child's publishes \((\d+\.\d) s\)", lifted
    )
    assert found is not None and 0.0 <= float(found[1]) < 5.0, lifted
    assert "s3cret" not in caplog.text


_alarmed: dict[str, Any] = {}


@node("test.alarmed")
def _alarmed_node(ctx: NodeContext) -> dict[str, Any]:
    """An inline node during which RabbitMQ raises and lifts an alarm for 0.3 s."""
    _alarmed["started"] = time.monotonic()
    broker = _alarmed["broker"]
    tell(broker, "disk")
    time.sleep(0.3)
    tell(broker, None)
    return {}


def test_the_time_a_step_spends_blocked_does_not_count_toward_worker_timeout(
    broker: StubBroker, store: StubStore
) -> None:
    """The supervisor kills a child whose step's beat is older than worker.timeout. Time
    blocked by a resource alarm is RabbitMQ's, not the node's: once the alarm clears, the
    step beats BUSY from its start moved on by the time blocked."""
    _alarmed["broker"] = broker
    broker.enqueue(QUEUE, message("ex-1", "test.alarmed", initiated=True))
    hooks, board = Told(), Board()
    run_until_idle(worker_on(broker, store, hooks, board), broker)
    assert completions(broker) == {"ex-1": ["completed"]}
    states = [state for state, _ in board.beats]
    blocked = states.index(ChildState.BLOCKED)
    state, at = board.beats[blocked + 1]
    assert state is ChildState.BUSY
    assert at is not None and 0.25 < at - _alarmed["started"] < 5.0, (at, _alarmed["started"])
    # the BLOCKED beat says when it was made, not when the step started
    [(_, blocked_at)] = [b for b in board.beats if b[0] is ChildState.BLOCKED]
    assert blocked_at is not None and blocked_at >= _alarmed["started"]
    assert "blocks publishes: disk" in board.notes[0] and board.notes[1] == ""


def test_asked_to_stop_while_blocked_spares_what_it_holds_once(
    broker: StubBroker, store: StubStore
) -> None:
    """A drain may run out of time while an alarm holds the commit, and the child is then
    killed: what it holds comes back redelivered and must not count as attempts. Spared once,
    however often RabbitMQ repeats the block; the drain spares what it hands back."""
    bodies = [message(f"ex-{i}", initiated=True) for i in range(4)]
    for body in bodies:
        broker.enqueue(QUEUE, body)
    hooks = Told()
    worker = worker_on(broker, store, hooks, settings={"broker.prefetch": 4, "broker.batch_max": 2})

    def alarm() -> None:
        if broker.committed:
            return
        worker.stop()  # SIGTERM
        for _ in range(3):
            tell(broker, "memory")
        tell(broker, None)

    broker.before_commit = alarm
    assert worker.run() == EXIT_OK
    assert store.spared == [bodies, bodies[2:]]
    assert [len(tx.acked) for tx in broker.committed] == [2, 0]
    assert [len(tx.requeued) for tx in broker.committed] == [0, 2]


def test_asked_to_stop_before_any_batch_and_blocked_during_the_drain(
    broker: StubBroker, store: StubStore
) -> None:
    """SIGTERM as soon as the child consumes, and an alarm holds the drain's commit that hands
    the buffered deliveries back: they are spared by the drain and again by the block (a flag:
    twice is once), and nothing fails for want of a batch stepped."""
    bodies = [message(f"ex-{i}", initiated=True) for i in range(2)]
    for body in bodies:
        broker.enqueue(QUEUE, body)
    hooks = Told()
    worker = worker_on(broker, store, hooks)

    def stop_at_once(queues: Any, node_types: Any) -> None:
        Recorder.on_ready(hooks, queues, node_types)
        broker.poll(0)  # the deliveries already on the wire
        worker.stop()

    hooks.on_ready = stop_at_once  # type: ignore[method-assign]

    def alarm() -> None:
        tell(broker, "disk")
        tell(broker, None)

    broker.before_commit = alarm
    assert worker.run() == EXIT_OK
    assert store.spared == [bodies, bodies]
    assert [len(tx.requeued) for tx in broker.committed] == [2]
    assert [e for e in hooks.events if e[0] == "flow"] == [("flow", True), ("flow", False)]


# -- an acknowledgement timeout (consumer_timeout) ------------------------------------------------

_closes: dict[str, Any] = {"left": 0}


def _close_once_more() -> bool:
    if _closes["left"] <= 0:
        return False
    _closes["left"] -= 1
    _closes["broker"].time_out_acks(ACK_TEXT)
    return True


@node("test.ack-timeout", blocking=True)
def _ack_timeout_blocking(ctx: NodeContext) -> dict[str, Any]:
    if _close_once_more():
        time.sleep(0.6)  # the loop serves the connection meanwhile (`_idle`, every 0.25 s)
    return {}


@node("test.ack-timeout-inline")
def _ack_timeout_inline(ctx: NodeContext) -> dict[str, Any]:
    _close_once_more()
    return {}


@pytest.mark.parametrize(
    ("node_type", "closes"),
    [("test.ack-timeout", 1), ("test.ack-timeout", 2), ("test.ack-timeout-inline", 1)],
)
def test_an_acknowledgement_timeout_is_told_once_per_close_and_spares_what_never_started(
    broker: StubBroker,
    store: StubStore,
    caplog: pytest.LogCaptureFixture,
    node_type: str,
    closes: int,
) -> None:
    """RabbitMQ closes the channel of a delivery left unacknowledged for its consumer_timeout
    and sends every delivery of it round again. The child says so once per close, naming
    consumer_timeout and worker.timeout (while a blocking node still runs: not when it ends),
    and reconnects. The deliveries it had buffered and never started do not count as
    attempts; the one whose step ran does (a node that always outlives the timeout must end
    dead-lettered, not loop). Every execution completes once."""
    caplog.set_level(logging.INFO, logger="runeworker")
    _closes.update(left=closes, broker=broker)
    bodies = [message("ex-0", node_type, initiated=True)]
    bodies += [message(f"ex-{i}", initiated=True) for i in (1, 2)]
    for body in bodies:
        broker.enqueue(QUEUE, body)
    hooks = Told()
    settings = {"broker.prefetch": 3, "broker.batch_max": 1, "worker.timeout": 7.0}
    run_until_idle(worker_on(broker, store, hooks, settings=settings), broker)
    assert completions(broker) == {f"ex-{i}": ["completed"] for i in range(3)}
    assert hooks.count("ack_timeout") == closes
    assert hooks.count("reconnect") == closes
    assert broker.connections == closes + 1
    # ex-0 ran `closes` times before the one that completed; the others never started
    assert store.count_attempt(bodies[0]) == closes + 1
    assert store.count_attempt(bodies[1]) == 1
    assert store.count_attempt(bodies[2]) == 1
    told = lines(caplog, logging.ERROR, "stayed unacknowledged longer than its consumer_timeout")
    assert len(told) == closes
    for line in told:
        found = re.fullmatch(
            r"RabbitMQ closed the channel: a delivery stayed unacknowledged longer than its "
            r"consumer_timeout \((?P<text>.*)\)(?P<running>; a node had been running for \d+ s)?"
            r"\. Every delivery of this child goes back to the queue and its step runs again\. "
            r"Keep RabbitMQ's consumer_timeout above twice worker\.timeout \(7 s\) and set "
            r"broker\.consumer_timeout to it \(now 1800 s\)(?P<from>; delivery from .*)?",
            line,
        )
        assert found is not None, line
        assert found["text"] == ACK_TEXT
        if node_type == "test.ack-timeout":  # told while the node ran (seconds ago, not 1e9)
            assert found["running"] in [f"; a node had been running for {n} s" for n in range(5)]
            assert found["from"] == f"; delivery from {QUEUE}"
        else:  # told once the publish failed, the step over
            assert found["running"] is None and found["from"] is None
    assert (
        lines(caplog, logging.WARNING, "connection lost")
        == [f"connection lost (RabbitMQ closed the channel: {ACK_TEXT}); reconnecting"] * closes
    )


def test_an_acknowledgement_timeout_before_any_step_is_told_without_a_delivery(
    broker: StubBroker, store: StubStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The channel closed for an acknowledgement timeout before the child stepped anything:
    its first deliveries buffered, the close read at the batch's first publish (the mirror
    copy of a start message, before any step). Told once, with no node running and no
    delivery named; the child reconnects and every execution completes once."""
    caplog.set_level(logging.INFO, logger="runeworker")
    for i in range(2):
        broker.enqueue(QUEUE, message(f"ex-{i}"))  # start messages: mirrored before their steps
    hooks = Told()
    worker = worker_on(broker, store, hooks)

    def close_at_once(queues: Any, node_types: Any) -> None:
        Recorder.on_ready(hooks, queues, node_types)
        broker.poll(0)  # the first deliveries buffered
        broker.time_out_acks(ACK_TEXT)

    hooks.on_ready = close_at_once  # type: ignore[method-assign]
    run_until_idle(worker, broker)
    assert completions(broker) == {"ex-0": ["completed"], "ex-1": ["completed"]}
    assert hooks.count("ack_timeout") == 1
    assert broker.connections == 2
    told = lines(caplog, logging.ERROR, "stayed unacknowledged longer than its consumer_timeout")
    assert told == [
        f"RabbitMQ closed the channel: a delivery stayed unacknowledged longer than its "
        f"consumer_timeout ({ACK_TEXT}). Every delivery of this child goes back to the queue "
        f"and its step runs again. Keep RabbitMQ's consumer_timeout above twice worker.timeout "
        f"(60 s) and set broker.consumer_timeout to it (now 1800 s)"
    ]


# -- deliveries handed back before they reach consumer_timeout ------------------------------------


@pytest.mark.parametrize("first_stale", [True, False])
def test_deliveries_buffered_too_long_go_back_unstarted_and_spared(
    broker: StubBroker, store: StubStore, caplog: pytest.LogCaptureFixture, first_stale: bool
) -> None:
    """A delivery buffered longer than consumer_timeout - 2 x worker.timeout (34 - 2 x 2 = 30
    s here) could end its step past RabbitMQ's consumer_timeout: it goes back to the queue
    unstarted, spared from the attempt count, in a commit of its own, while those around it
    run (one that waited 29.5 s too); it comes round again and runs once."""
    caplog.set_level(logging.INFO, logger="runeworker")
    ages = [30.5, 29.5, 0.0] if first_stale else [0.0, 30.5, 29.5]
    bodies = [message(f"ex-{i}", initiated=True) for i in range(3)]
    for body, age in zip(bodies, ages, strict=True):
        broker.enqueue(QUEUE, body, age=age)
    hooks = Told()
    settings = {"broker.consumer_timeout": 34.0, "worker.timeout": 2.0, "broker.prefetch": 3}
    run_until_idle(worker_on(broker, store, hooks, settings=settings), broker)
    stale = ages.index(30.5)
    fresh = [i for i in range(3) if i != stale]
    assert completions(broker) == {f"ex-{i}": ["completed"] for i in range(3)}
    acks = [
        [c["execution_id"] for c in decoded(tx.to(COMPLETION_QUEUE))] for tx in broker.committed
    ]
    handed = [tx for tx in broker.committed if tx.requeued]
    assert len(handed) == 1 and len(handed[0].requeued) == 1 and not handed[0].published
    assert acks[-1] == [f"ex-{stale}"]  # it ran last, once it came round again
    assert sorted(e for ids in acks[:-1] for e in ids) == [f"ex-{i}" for i in fresh]
    assert hooks.count("delivery", QUEUE, "requeued") == 1
    assert store.count_attempt(bodies[stale]) == 1  # its redelivery was spared
    assert lines(caplog, logging.WARNING, "deliveries back unstarted") == [
        "handed 1 deliveries back unstarted: they waited here 31 s, and their steps could end "
        "past RabbitMQ's consumer_timeout (broker.consumer_timeout 34 s)"
    ]


def test_without_a_consumer_timeout_nothing_is_handed_back(
    broker: StubBroker, store: StubStore
) -> None:
    """`broker.consumer_timeout = 0`: the broker has none, and a delivery may wait as long as
    it must."""
    broker.enqueue(QUEUE, message("ex-0", initiated=True), age=10_000.0)
    settings = {"broker.consumer_timeout": 0.0, "worker.timeout": 1.0}
    hooks = Told()
    run_until_idle(worker_on(broker, store, hooks, settings=settings), broker)
    assert completions(broker) == {"ex-0": ["completed"]}
    assert hooks.count("delivery", QUEUE, "requeued") == 0
    assert [len(tx.requeued) for tx in broker.committed] == [0]
