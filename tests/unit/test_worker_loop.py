"""The consume loop of a worker child (`runeworker.child.worker.Worker`) on the in-memory broker
and store of `stubbroker.py`: which deliveries share a transaction, what a rejected delivery
publishes, what drain hands back, what a lost connection or store costs, and what the loop
reports to its hooks. The same loop against RabbitMQ and Redis is tested in tests/integration.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from stubbroker import Message, StubBroker, StubStore, Transaction

from runeworker.adapters.amqp import COMPLETION_QUEUE, MIRROR_QUEUE, RESENT_HEADER, STATUS_QUEUE
from runeworker.child.hooks import DeliveryOutcome
from runeworker.child.receipts import receipt_of
from runeworker.child.scheduler import HostLock
from runeworker.child.worker import Worker
from runeworker.config import load_config
from runeworker.engine.executor import Executor
from runeworker.engine.messages import decode_execution, encode_execution
from runeworker.engine.registry import NodeContext, node
from runeworker.engine.state import MemoryStore, Verdict, child_token
from runeworker.metrics.subscriber import WorkerMetrics
from runeworker.supervisor.children import EXIT_OK, EXIT_RECYCLE
from runeworker.supervisor.liveness import ChildState

QUEUE = "workflow.execution"
RESUME = "workflow.resume"
DEAD = "runeworker.dead-letter"


class Crash(BaseException):
    """What a node that kills its process looks like to the loop: nothing catches it."""


crashes: list[str] = []


@node("test.crash")
def _crash(ctx: NodeContext) -> dict[str, Any]:
    crashes.append(ctx.execution_id)
    raise Crash(ctx.execution_id)


# set by a test to let `test.slow` end (it gives up after 10 s)
slow_node_may_end = threading.Event()


@node("test.slow", blocking=True)
def _slow(ctx: NodeContext) -> dict[str, Any]:
    return {"let_go": slow_node_may_end.wait(timeout=10.0)}


class Recorder:
    """A hooks subscriber that writes down every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.after_commit: Callable[[], None] | None = None
        self.idles = 0  # not an event: how often the loop waits is timing, not behaviour

    def count(self, *event: Any) -> int:
        return sum(1 for e in self.events if e[: len(event)] == event)

    def on_ready(self, queues: Iterable[str], node_types: Iterable[str]) -> None:
        self.events.append(("ready", tuple(queues)))

    def on_delivery(self, queue: str, outcome: DeliveryOutcome) -> None:
        self.events.append(("delivery", queue, outcome))

    def on_inflight(self, delta: int) -> None:
        self.events.append(("inflight", delta))

    def on_node_done(self, node_type: str, outcome: str, seconds: float) -> None:
        self.events.append(("node", node_type, outcome))

    def on_completion(self, status: str) -> None:
        self.events.append(("completion", status))

    def on_commit(self, seconds: float) -> None:
        self.events.append(("commit",))
        if self.after_commit is not None:
            self.after_commit()

    def on_idle(self) -> None:
        self.idles += 1

    def on_reconnect(self) -> None:
        self.events.append(("reconnect",))

    def on_state_error(self) -> None:
        self.events.append(("state_error",))

    def on_state_lost(self, what: str) -> None:
        self.events.append(("state_lost", what))

    def on_doubt(self, event: str) -> None:
        self.events.append(("doubt", event))

    def on_stop(self) -> None:
        self.events.append(("stop",))


def message(
    execution_id: str, node_type: str = "log", pad: int = 0, *, initiated: bool = False
) -> bytes:
    """A start message as the Rune API publishes it, aimed at a node with no successor
    (`initiated`: as a worker publishes it instead, which is not mirrored)."""
    trigger = {"id": "trigger", "name": "Start", "type": "ManualTrigger", "trigger": True}
    say = {"id": "say", "name": "Say", "type": node_type, "parameters": {"message": "hi"}}
    doc = {
        "workflow_id": "wf-1",
        "execution_id": execution_id,
        "current_node": "say",
        "workflow_definition": {
            "nodes": [trigger, say],
            "edges": [{"id": "e", "src": "trigger", "dst": "say"}],
        },
        "accumulated_context": {"pad": "x" * pad} if pad else {},
    }
    if initiated:
        doc["is_worker_initiated"] = True
    return json.dumps(doc).encode()


def chain(execution_id: str, length: int = 3) -> bytes:
    """A start message of trigger -> n1 -> ... -> n<length>, all log nodes."""
    nodes: list[dict[str, Any]] = [
        {"id": "t", "name": "T", "type": "ManualTrigger", "trigger": True}
    ]
    edges = []
    for i in range(1, length + 1):
        params = {"message": f"step {i}"}
        nodes.append({"id": f"n{i}", "name": f"N{i}", "type": "log", "parameters": params})
        edges.append({"id": f"e{i}", "src": nodes[i - 1]["id"], "dst": f"n{i}"})
    definition = {"nodes": nodes, "edges": edges}
    doc = {"workflow_id": "wf", "execution_id": execution_id, "current_node": "n1",
           "workflow_definition": definition, "accumulated_context": {}}  # fmt: skip
    return json.dumps(doc).encode()


def make_worker(
    broker: StubBroker,
    store: StubStore,
    hooks: Any = None,
    *,
    scheduler_lock: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Worker:
    """A worker on the stubs; reconnects at once (no backoff to wait for)."""
    overrides = {"broker.retry_delay": 0, "broker.retry_delay_max": 0, **(settings or {})}
    cfg = load_config(None, env={}, overrides=overrides)
    worker = Worker(cfg, broker=broker, store=store, hooks=hooks, scheduler_lock=scheduler_lock)
    worker.parking.grace = 0.01  # a resent copy waits once, briefly (runeworker/child/receipts.py)
    return worker


def well_formed(receipts: Iterable[Any]) -> None:
    """Every receipt written names an execution and a step (runeworker/child/receipts.py)."""
    for receipt in receipts:
        assert isinstance(receipt, tuple) and len(receipt) == 2 and all(receipt), receipt


def run_until_idle(worker: Worker, broker: StubBroker) -> None:
    """Run the loop until every queue it consumes is empty and nothing is unacked."""
    broker.on_idle = worker.stop
    assert worker.run() == EXIT_OK


def decoded(messages: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(m.body) for m in messages]


def acked_batches(broker: StubBroker) -> list[list[str]]:
    """Per transaction that acked something: the execution ids of its completions."""
    return [
        [c["execution_id"] for c in decoded(tx.to(COMPLETION_QUEUE))]
        for tx in broker.committed
        if tx.acked
    ]


# -- batching and suspect isolation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefetch", "batch_max", "batches"),
    [(10, 2, [2, 2, 1]), (3, 32, [3, 2]), (10, 1, [1, 1, 1, 1, 1])],
)
def test_buffered_deliveries_share_a_transaction_up_to_batch_max(
    broker: StubBroker, store: StubStore, prefetch: int, batch_max: int, batches: list[int]
) -> None:
    for i in range(5):
        broker.enqueue(QUEUE, message(f"ex-{i}"))
    settings = {"broker.prefetch": prefetch, "broker.batch_max": batch_max}
    worker = make_worker(broker, store, settings=settings)
    run_until_idle(worker, broker)
    assert [len(tx.acked) for tx in broker.committed if tx.acked] == batches
    # each transaction carries the completions of exactly the deliveries it acks
    assert [len(ids) for ids in acked_batches(broker)] == batches
    assert [c["execution_id"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == [
        f"ex-{i}" for i in range(5)
    ]
    assert {c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))} == {"completed"}
    assert broker.waiting(QUEUE) == [] and broker.unacked == 0 and broker.unroutable == []


def test_a_redelivered_message_gets_a_transaction_of_its_own(
    broker: StubBroker, store: StubStore
) -> None:
    """A redelivery may be the poison that killed a child: sharing a transaction, its next
    crash would roll back the work of the deliveries around it. (Without a receipt it first
    waits its grace, `Parking`, while the deliveries behind it go on.)"""
    broker.enqueue(QUEUE, message("ex-1"))
    broker.enqueue(QUEUE, message("ex-2"), redelivered=True)
    broker.enqueue(QUEUE, message("ex-3"))
    broker.enqueue(QUEUE, message("ex-4"))
    run_until_idle(make_worker(broker, store), broker)
    assert acked_batches(broker) == [["ex-1"], ["ex-3", "ex-4"], ["ex-2"]]


@node("test.busy")
def _busy(ctx: NodeContext) -> dict[str, Any]:
    time.sleep(0.2)  # an inline node (not `blocking`) that takes a while
    return {}


class Beats:
    """A liveness board that writes down every beat and note in full."""

    def __init__(self) -> None:
        self.beats: list[tuple[int, ChildState, int, float | None]] = []
        self.notes: list[tuple[int, str]] = []

    def beat(self, slot: int, state: ChildState, handled: int = 0, at: float | None = None) -> None:
        self.beats.append((slot, state, handled, at))

    def note(self, slot: int, text: str) -> None:
        self.notes.append((slot, text))


def test_each_step_of_a_batch_beats_from_its_own_start(
    broker: StubBroker, store: StubStore
) -> None:
    """The supervisor kills a child whose last beat is older than worker.timeout. A batch beat
    once, at its start, and an inline step beat not at all: three steps of 0.2 s in a batch
    looked like one of 0.6 s, so a node stopped in time by worker.node_timeout after another
    slow one in the batch still got its child killed as hung. Now a step whose last beat is
    older than BEAT_SHARE of worker.timeout (0.1 s of 2 s here) beats from its start."""
    for i in range(3):
        broker.enqueue(QUEUE, message(f"ex-{i}", "test.busy"))
    board = Beats()
    cfg = load_config(None, env={}, overrides={"broker.retry_delay": 0, "worker.timeout": 2.0})
    worker = Worker(cfg, board, broker=broker, store=store)  # type: ignore[arg-type]
    run_until_idle(worker, broker)
    assert acked_batches(broker) == [["ex-0", "ex-1", "ex-2"]]
    # one from each later step's start (the first follows the batch's own beat at once)
    starts = [b[3] for b in board.beats if b[1] is ChildState.BUSY]
    assert len(starts) in (2, 3), board.beats
    gaps = [b - a for a, b in itertools.pairwise(starts)]  # type: ignore[operator]
    assert all(gap >= 0.19 for gap in gaps), gaps


# -- rejection ----------------------------------------------------------------------------------


def rejected(broker: StubBroker) -> Transaction:
    """The one transaction of a run whose only delivery was rejected."""
    acking = [tx for tx in broker.committed if tx.acked]
    assert len(acking) == 1, acking
    return acking[0]


def test_oversized_delivery_is_dead_lettered_failed_and_acked(
    broker: StubBroker, store: StubStore
) -> None:
    body = message("ex-big", pad=2000)
    broker.enqueue(QUEUE, body)
    hooks = Recorder()
    run_until_idle(
        make_worker(broker, store, hooks, settings={"broker.max_message_bytes": 1000}), broker
    )
    tx = rejected(broker)
    [copy] = tx.to(DEAD)
    assert copy.body == body and copy.exchange == ""
    reason = copy.headers["x-runeworker-reason"]
    assert f"message of {len(body)} bytes exceeds broker.max_message_bytes 1000" == reason
    assert copy.headers["x-runeworker-queue"] == QUEUE
    assert [(s["node_id"], s["status"]) for s in decoded(tx.to(STATUS_QUEUE))] == [
        ("say", "failed")
    ]
    assert [(c["execution_id"], c["status"]) for c in decoded(tx.to(COMPLETION_QUEUE))] == [
        ("ex-big", "failed")
    ]
    assert tx.to(MIRROR_QUEUE) == []  # the node never ran
    outcomes = [e[2] for e in hooks.events if e[0] == "delivery"]
    assert outcomes == ["consumed", "dead_lettered", "rejected"]
    assert hooks.count("completion", "failed") == 1


def test_undecodable_delivery_is_dead_lettered_and_acked_without_status(
    broker: StubBroker, store: StubStore
) -> None:
    broker.enqueue(QUEUE, b"\xffnot json at all", headers={"origin": "api"})
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    tx = rejected(broker)
    [copy] = tx.to(DEAD)
    assert copy.body == b"\xffnot json at all"
    assert copy.headers["x-runeworker-reason"] == (
        "decode node execution message: JSON is malformed: invalid character (byte 0)"
    )
    assert copy.headers["x-runeworker-redelivered"] is False
    assert tx.to(STATUS_QUEUE) == [] and tx.to(COMPLETION_QUEUE) == []  # execution unknown
    assert store.receipts_kept == set()  # a message that cannot be read leaves no receipt
    assert hooks.count("delivery", QUEUE, "rejected") == 1
    assert hooks.count("completion") == 0


def test_a_decoder_that_breaks_fails_that_delivery_never_the_child(
    broker: StubBroker,
    store: StubStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in the decoder (an exception other than MessageError) is a message that cannot
    be read: dead-lettered with what broke, and the child goes on with the next one."""
    import runeworker.child.worker as worker_module

    def broken(body: bytes) -> Any:
        if body.startswith(b"BREAK"):
            raise IndexError("index out of range")
        return decode_execution(body)

    monkeypatch.setattr(worker_module, "decode_execution", broken)
    broker.enqueue(QUEUE, b"BREAK", headers={"origin": "api"})
    hooks = Recorder()
    with caplog.at_level(logging.INFO, logger="runeworker"):
        run_until_idle(make_worker(broker, store, hooks), broker)
    [logged] = [r for r in caplog.records if r.getMessage() == f"cannot read a delivery of {QUEUE}"]
    assert logged.exc_info is not None
    tx = rejected(broker)
    [copy] = tx.to(DEAD)
    assert copy.body == b"BREAK"
    assert copy.headers["x-runeworker-reason"] == (
        "cannot read message: IndexError: index out of range"
    )
    assert hooks.count("delivery", QUEUE, "rejected") == 1


def test_a_delivery_of_exactly_max_message_bytes_runs(broker: StubBroker, store: StubStore) -> None:
    body = message("ex-edge", pad=200)
    broker.enqueue(QUEUE, body)
    settings = {"broker.max_message_bytes": len(body)}
    run_until_idle(make_worker(broker, store, settings=settings), broker)
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert broker.waiting(DEAD) == []


def test_an_engine_bug_in_a_step_fails_that_execution_never_the_child(
    broker: StubBroker,
    store: StubStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception of the step other than a lost broker or store (a bug of the engine, not a
    node's error, which the executor reports itself) costs that delivery: dead-lettered with
    what broke, its reason clipped to 1000 characters, the bytes and content type as they came;
    a `failed` status and completion; acked. The next delivery runs."""
    caplog.set_level(logging.INFO, logger="runeworker")
    body = message("ex-bug")
    broker.queues.setdefault(QUEUE, deque()).append(Message(body, "", QUEUE, {}, "text/plain"))

    broker.enqueue(QUEUE, message("ex-next"))
    hooks = Recorder()
    worker = make_worker(broker, store, hooks)
    step = worker.stepper.run

    def buggy(msg: Any, *args: Any, **kwargs: Any) -> Any:
        if msg.execution_id == "ex-bug":
            raise RuntimeError("engine bug " + "x" * 2000)
        return step(msg, *args, **kwargs)

    monkeypatch.setattr(worker.stepper, "run", buggy)
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"  # nine hours ahead: the failure time is UTC, not local
    time.tzset()
    try:
        run_until_idle(worker, broker)
    finally:
        if zone is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = zone
        time.tzset()
    [copy] = broker.waiting(DEAD)
    assert copy.body == body and copy.content_type == "text/plain"
    reason = copy.headers["x-runeworker-reason"]
    assert reason.startswith("cannot execute node say: RuntimeError: engine bug xxx")
    assert len(reason) == 1000
    failed_at = datetime.strptime(copy.headers["x-runeworker-failed-at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(failed_at.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=5)
    assert copy.headers["x-runeworker-queue"] == QUEUE
    statuses = {c["execution_id"]: c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))}
    assert statuses == {"ex-bug": "failed", "ex-next": "completed"}
    failed = [s for s in decoded(broker.waiting(STATUS_QUEUE)) if s["status"] == "failed"]
    assert [(s["execution_id"], s["node_id"]) for s in failed] == [("ex-bug", "say")]
    assert broker.unacked == 0 and broker.connections == 1
    [logged] = [r for r in caplog.records if r.getMessage() == "step of execution ex-bug failed"]
    assert logged.exc_info is not None and logged.levelno == logging.ERROR
    [said] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rejected ")]
    assert said.startswith(f"rejected delivery from {QUEUE}: cannot execute node say: Runtime")


@pytest.mark.parametrize(("queue_type", "refused"), [("quorum", True), ("classic", False)])
def test_a_quorum_queues_delivery_count_decides_and_a_classic_queue_ignores_it(
    broker: StubBroker, store: StubStore, queue_type: str, refused: bool
) -> None:
    """A quorum queue counts deliveries itself (`x-delivery-count`): at max_deliveries failed
    ones the next is refused as poison, Redis not asked. On a classic queue that header came
    from the publisher and counts nothing: the count is Redis's (this is its first)."""
    body = message("ex-counted")
    broker.enqueue(QUEUE, body, redelivered=True, headers={"x-delivery-count": 3})
    settings = {"broker.queue_type": queue_type, "broker.max_deliveries": 3}
    run_until_idle(make_worker(broker, store, settings=settings), broker)
    [completion] = decoded(broker.waiting(COMPLETION_QUEUE))
    assert completion["status"] == ("failed" if refused else "completed")
    assert len(broker.waiting(DEAD)) == (1 if refused else 0)
    # asked of Redis only on the classic queue: this is the quorum queue's count's first look
    assert store.count_attempt(body) == (1 if refused else 2)


def test_poison_is_refused_after_max_deliveries(broker: StubBroker, store: StubStore) -> None:
    """A node that kills its child: each crash loses the connection and its transaction, the
    broker redelivers; the delivery after `max_deliveries` failed ones is refused."""
    crashes.clear()
    body = message("ex-poison", node_type="test.crash")
    broker.enqueue(QUEUE, body)
    for _ in range(3):
        with pytest.raises(Crash):
            make_worker(broker, store).run()
        broker.close()  # the child died: its connection goes, the delivery comes back
    assert crashes == ["ex-poison"] * 3
    # each attempt committed its mirror before the step (docs/WIRE.md section 6), nothing else
    assert [len(tx.to(MIRROR_QUEUE)) for tx in broker.committed] == [1, 1, 1]
    assert all(tx.published == tx.to(MIRROR_QUEUE) and not tx.acked for tx in broker.committed)
    assert broker.waiting(STATUS_QUEUE) == []
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert crashes == ["ex-poison"] * 3  # not run a fourth time
    tx = rejected(broker)
    [copy] = tx.to(DEAD)
    assert copy.body == body
    assert copy.headers["x-runeworker-reason"] == (
        "message was delivered 3 times without completing; poison"
    )
    assert copy.headers["x-runeworker-redelivered"] is True
    # the failure is built from the message as read (its node's name from the definition)
    statuses = decoded(broker.waiting(STATUS_QUEUE))
    assert [(s["node_name"], s["status"]) for s in statuses] == [("Say", "failed")]
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["failed"]
    assert broker.waiting(QUEUE) == [] and broker.unacked == 0
    # every attempt was mirrored, the refused one too (RTES then records its failed status)
    assert len(broker.waiting(MIRROR_QUEUE)) == 4
    assert hooks.count("delivery", QUEUE, "dead_lettered") == 1
    assert hooks.count("delivery", QUEUE, "rejected") == 1


class LookUps(StubStore):
    """StubStore that writes down what each receipt look-up asks about."""

    def __init__(self) -> None:
        super().__init__()
        self.checked: list[int] = []  # the number of receipts each call looked up

    def receipts(self, record: list[Any], check: list[Any]) -> list[bool]:
        if check:
            self.checked.append(len(check))
        return super().receipts(record, check)


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_copy_behind_its_original_in_one_batch_publishes_nothing(
    broker: StubBroker, queue_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A quorum queue's new leader may hand out again, unflagged, a message the old one
    delivered: every delivery there is looked up in Redis, and of two deliveries of one message
    in a batch the later is the copy, acked with nothing published. On a classic queue an
    unflagged delivery is a first one: no Redis round trip for it (the same message published
    twice by its publisher also runs once when both share a batch)."""
    caplog.set_level(logging.INFO, logger="runeworker")
    store = LookUps()
    original = message("ex-1", initiated=True)
    for body in (original, message("ex-2", initiated=True), original):
        broker.enqueue(QUEUE, body)
    hooks = Recorder()
    settings = {"broker.queue_type": queue_type, "broker.batch_max": 3}
    run_until_idle(make_worker(broker, store, hooks, settings=settings), broker)
    completions = [c["execution_id"] for c in decoded(broker.waiting(COMPLETION_QUEUE))]
    assert sorted(completions) == ["ex-1", "ex-2"]
    assert hooks.count("delivery", QUEUE, "duplicate") == 1
    assert acked_batches(broker) == [["ex-1", "ex-2"]]
    assert (
        f"delivery of node say of execution ex-1 from {QUEUE}: its step's outcome is already "
        "published; acked, nothing published again"
    ) in [r.getMessage() for r in caplog.records]
    assert store.checked == ([3] if queue_type == "quorum" else [])


# -- drain --------------------------------------------------------------------------------------


def test_drain_hands_prefetched_deliveries_back(broker: StubBroker, store: StubStore) -> None:
    for i in range(5):  # next-node messages: no mirror commit ahead of the batch
        broker.enqueue(QUEUE, message(f"ex-{i}", initiated=True))
    hooks = Recorder()
    worker = make_worker(
        broker, store, hooks, settings={"broker.prefetch": 5, "broker.batch_max": 2}
    )
    hooks.after_commit = worker.stop  # SIGTERM during the first batch
    assert worker.run() == EXIT_OK
    assert [len(tx.acked) for tx in broker.committed] == [2, 0]
    assert [len(tx.requeued) for tx in broker.committed] == [0, 3]
    back = broker.waiting(QUEUE)
    assert [json.loads(m.body)["execution_id"] for m in back] == ["ex-2", "ex-3", "ex-4"]
    assert all(m.redelivered for m in back)
    assert broker.unacked == 0 and store.closed
    assert hooks.count("delivery", QUEUE, "requeued") == 3
    assert hooks.events[-1] == ("stop",)
    assert broker.polls[-1] == 0  # the drain takes what is on the wire without waiting


def test_a_drain_without_a_connection_leaves_the_requeue_to_the_broker(
    broker: StubBroker, store: StubStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection is gone when the drain starts: nothing can be handed back, and the
    broker requeues what was unacknowledged as the connection closes. Said, not raised."""
    caplog.set_level(logging.INFO, logger="runeworker")
    for i in range(3):
        broker.enqueue(QUEUE, message(f"ex-{i}", initiated=True))
    hooks = Recorder()
    worker = make_worker(broker, store, hooks, settings={"broker.batch_max": 1})
    hooks.after_commit = worker.stop
    broker.fail("stop_consuming")
    assert worker.run() == EXIT_OK
    assert [len(tx.requeued) for tx in broker.committed] == [0]
    assert len(broker.waiting(QUEUE)) == 2 and broker.unacked == 0
    assert (
        "drain without a connection (stub: connection lost during stop_consuming); the broker "
        "requeues unacked work"
    ) in [r.getMessage() for r in caplog.records]


_held_may_end = threading.Event()


@node("test.held", blocking=True)
def _held(ctx: NodeContext) -> dict[str, Any]:
    return {"let_go": _held_may_end.wait(timeout=10.0)}


def test_asked_to_stop_while_a_node_runs_it_finishes_and_its_delivery_is_spared_once(
    broker: StubBroker, store: StubStore, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM while a blocking node runs: the node finishes and its step commits, the
    delivery buffered behind it goes back. Should the drain deadline kill the child first, the
    running node's redelivery must not count as an attempt: it is spared at once, once,
    however often the loop serves the connection meanwhile."""
    caplog.set_level(logging.INFO, logger="runeworker")
    _held_may_end.clear()
    held, behind = message("ex-held", "test.held", initiated=True), message("ex-behind")
    broker.enqueue(QUEUE, held)
    broker.enqueue(QUEUE, behind)
    overrides = {"broker.retry_delay": 0, "broker.prefetch": 2, "broker.batch_max": 1}
    board = Beats()
    cfg = load_config(None, env={}, overrides=overrides)
    worker = Worker(cfg, board, broker=broker, store=store)  # type: ignore[arg-type]

    def sigterm_then_let_go() -> None:
        time.sleep(0.3)
        worker.stop()
        time.sleep(0.8)  # the loop serves the connection about three times meanwhile
        _held_may_end.set()

    threading.Thread(target=sigterm_then_let_go, daemon=True).start()
    assert worker.run() == EXIT_OK
    assert store.spared == [[held], [behind]]
    [completion] = decoded(broker.waiting(COMPLETION_QUEUE))
    assert (completion["execution_id"], completion["status"]) == ("ex-held", "completed")
    assert [json.loads(m.body)["execution_id"] for m in broker.waiting(QUEUE)] == ["ex-behind"]
    said = [r.getMessage() for r in caplog.records]
    assert said.count("stopping while a node runs: it finishes, or its delivery comes back") == 1
    assert "handed 1 prefetched deliveries back" in said
    # meanwhile the loop served the connection without waiting on it, and beat BUSY from the
    # step's start (the supervisor's clock for worker.timeout)
    assert broker.polls.count(0) >= 4, broker.polls  # three or four while it ran, the drain's
    busy = [b[3] for b in board.beats if b[1] is ChildState.BUSY]
    assert len(busy) >= 3 and len(set(busy)) == 1, board.beats


class StopAtReady(Recorder):
    """Asks the worker to stop as soon as it consumes, once the prefetched deliveries are in
    its buffer: a drain that hands everything back."""

    worker: Worker | None = None

    def on_ready(self, queues: Iterable[str], node_types: Iterable[str]) -> None:
        super().on_ready(queues, node_types)
        assert self.worker is not None
        self.worker.broker.poll(0)  # the deliveries already on the wire
        self.worker.stop()


def test_drains_never_make_a_healthy_message_poison(broker: StubBroker, store: StubStore) -> None:
    """Handed back by more drains than `max_deliveries` allows (restarts, reload rolls), a
    message still runs: a drain's requeue is no attempt of the message's own."""
    body = message("ex-1")
    broker.enqueue(QUEUE, body)
    settings = {"broker.max_deliveries": 2}
    for _ in range(4):
        hooks = StopAtReady()
        hooks.worker = make_worker(broker, store, hooks, settings=settings)
        assert hooks.worker.run() == EXIT_OK
        assert hooks.count("delivery", QUEUE, "requeued") == 1
    [back] = broker.waiting(QUEUE)
    assert back.redelivered
    run_until_idle(make_worker(broker, store, settings=settings), broker)
    assert broker.waiting(DEAD) == []
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert store.count_attempt(body) == 1  # the real redeliveries still count


def test_a_spare_that_fails_only_costs_the_count(
    broker: StubBroker, store: StubStore, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(3):
        broker.enqueue(QUEUE, message(f"ex-{i}", initiated=True))
    store.fail("spare_attempts")
    hooks = Recorder()
    worker = make_worker(
        broker, store, hooks, settings={"broker.prefetch": 3, "broker.batch_max": 1}
    )
    hooks.after_commit = worker.stop
    assert worker.run() == EXIT_OK
    assert len(broker.waiting(QUEUE)) == 2  # handed back all the same
    assert hooks.count("state_error") == 1
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "could not spare 2 deliveries from the attempt count: stub: Redis is gone (spare_attempts)"
    ]


# -- atomicity and lost connections -------------------------------------------------------------


def test_a_commit_in_doubt_is_published_again_and_its_redelivery_publishes_nothing(
    broker: StubBroker, store: StubStore
) -> None:
    """The step's commit fails and applies nothing (the stub's `fail("commit")`); the worker
    cannot know that: once connected again it publishes the step's messages again, records
    its receipt, and the redelivered start message is acked without running or mirroring
    (tests/unit/test_receipts.py has the other outcomes of a commit in doubt)."""
    broker.enqueue(QUEUE, message("ex-1"))
    hooks = Recorder()
    armed = [True]

    def fail_the_steps_commit() -> None:  # the mirror's commit went through; the step's fails
        if armed.pop() if armed else False:
            broker.fail("commit")

    hooks.after_commit = fail_the_steps_commit
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert broker.connections == 2
    assert [c["execution_id"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["ex-1"]
    assert [s["status"] for s in decoded(broker.waiting(STATUS_QUEUE))] == ["running", "success"]
    assert len(broker.waiting(MIRROR_QUEUE)) == 1
    assert len(broker.resent) == 3  # running, success, the completion
    assert hooks.count("reconnect") == 1 and hooks.count("state_error") == 0
    # consumed twice, acked once by the step, once as a duplicate; the commits the loop
    # counts: the mirror's and the duplicate's (the resend commits before consuming)
    assert hooks.count("delivery", QUEUE, "consumed") == 2
    assert hooks.count("delivery", QUEUE, "duplicate") == 1 and hooks.count("commit") == 2
    assert broker.waiting(QUEUE) == [] and broker.unacked == 0


def test_a_state_error_in_a_step_is_counted_and_the_delivery_retried(
    broker: StubBroker, store: StubStore
) -> None:
    """The step is rolled back and run again on the same delivery once Redis takes writes:
    no reconnection, no redelivery (which would count as an attempt)."""
    broker.enqueue(QUEUE, message("ex-1"), redelivered=True)
    store.fail("count_attempt")
    store.fail("write")  # the first look after the failure: still refusing
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert hooks.count("state_error") == 2 and hooks.count("reconnect") == 0
    assert broker.connections == 1 and broker.rollbacks == 1
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert store.count_attempt(message("ex-1")) == 2  # only the retry counted an attempt


@node("test.quick-blocking", blocking=True)
def _quick_blocking(ctx: NodeContext) -> dict[str, Any]:
    """A node that declares `blocking` and returns at once: its `running` status commits the
    steps of the batch before it."""
    return {}


def test_a_state_error_after_a_blocking_nodes_commit_steps_again_only_what_it_did_not_commit(
    broker: StubBroker, store: StubStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch of three: a plain step, a blocking node (its `running` status commits the open
    transaction, the first step's outcome and ack with it) and another plain step; the batch's
    own commit then finds Redis refusing. The first step is done and stays so; the other two
    are rolled back and stepped again on the same deliveries once Redis takes writes: every
    execution completes once, nothing acked twice, no reconnection."""
    caplog.set_level(logging.INFO, logger="runeworker")
    broker.enqueue(QUEUE, message("ex-first", initiated=True))  # a batch before: counted on
    ids = ["ex-0", "ex-1", "ex-2"]
    kinds = ["log", "test.quick-blocking", "log"]
    hooks = Recorder()
    worker = make_worker(broker, store, hooks, settings={"broker.batch_max": 3})

    def after_commit() -> None:
        if len(broker.committed) == 1:  # ex-first's: then the batch of three arrives
            for eid, kind in zip(ids, kinds, strict=True):
                broker.enqueue(QUEUE, message(eid, kind, initiated=True))
        elif len(broker.committed) == 2:  # the blocking node's `running`: Redis now refuses
            store.fail("flush")

    hooks.after_commit = after_commit
    guard = threading.Timer(20.0, worker.stop)  # a lost step would leave the loop waiting
    guard.start()
    try:
        run_until_idle(worker, broker)
    finally:
        guard.cancel()
    assert hooks.count("state_error") == 1 and hooks.count("reconnect") == 0
    assert broker.connections == 1 and broker.rollbacks == 1
    completed = [c["execution_id"] for c in decoded(broker.waiting(COMPLETION_QUEUE))]
    assert sorted(completed) == [*ids, "ex-first"], completed
    assert acked_batches(broker) == [["ex-first"], ["ex-0"], ["ex-1", "ex-2"]]
    assert broker.unacked == 0 and broker.waiting(QUEUE) == []
    assert worker.handled == 4
    waited = [r.getMessage() for r in caplog.records if "waiting for Redis" in r.getMessage()]
    assert waited == [
        "waiting for Redis at redis://127.0.0.1:6379/0: stub: Redis is gone (flush); the 2 "
        "deliveries of the step stay with this child, unacknowledged, and run again once it "
        "takes writes"
    ]


def test_a_state_error_after_a_stale_delivery_went_back_to_the_buffer_keeps_it_there_once(
    broker: StubBroker, store: StubStore
) -> None:
    """A batch stops at a delivery buffered too long (`_hand_back_stale` hands it back after
    the commit), and that commit finds Redis refusing: the step before it runs again, and the
    stale one is in the buffer once, not twice (twice, it would be handed back twice)."""
    broker.enqueue(QUEUE, message("ex-0", initiated=True))
    broker.enqueue(QUEUE, message("ex-1", initiated=True), age=30.5)
    store.fail("flush")
    hooks = Recorder()
    settings = {"broker.consumer_timeout": 32.0, "worker.timeout": 1.0}
    run_until_idle(make_worker(broker, store, hooks, settings=settings), broker)
    assert hooks.count("state_error") == 1 and broker.connections == 1
    completed = [c["execution_id"] for c in decoded(broker.waiting(COMPLETION_QUEUE))]
    assert sorted(completed) == ["ex-0", "ex-1"]
    assert [len(tx.requeued) for tx in broker.committed if tx.requeued] == [1]
    assert hooks.count("delivery", QUEUE, "requeued") == 1


def test_a_redelivery_stepped_again_after_a_refused_commit_counts_one_attempt(
    broker: StubBroker, store: StubStore
) -> None:
    """The attempt of a redelivered message is counted once per delivery: stepped again on the
    same delivery because Redis refused its commit, it is not counted again."""
    body = message("ex-1", initiated=True)
    broker.enqueue(QUEUE, body, redelivered=True)
    store.fail("flush")
    run_until_idle(make_worker(broker, store), broker)
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert store.count_attempt(body) == 2  # this look and the one delivery's


def test_stopped_between_two_steps_the_batch_commits_what_ran_and_hands_back_the_rest(
    broker: StubBroker, store: StubStore
) -> None:
    """SIGTERM while a batch is stepped: the loop checks between steps, commits the steps that
    ran, and the drain hands the rest back in a transaction of its own."""
    broker.enqueue(QUEUE, message("ex-0", "test.sigterm", initiated=True))
    for i in (1, 2):
        broker.enqueue(QUEUE, message(f"ex-{i}", initiated=True))
    worker = make_worker(broker, store, settings={"broker.batch_max": 3})
    _sigterm["worker"] = worker
    assert worker.run() == EXIT_OK
    assert [len(tx.acked) for tx in broker.committed] == [1, 0]
    assert [len(tx.requeued) for tx in broker.committed] == [0, 2]
    assert acked_batches(broker) == [["ex-0"]]
    assert [json.loads(m.body)["execution_id"] for m in broker.waiting(QUEUE)] == ["ex-1", "ex-2"]


_sigterm: dict[str, Worker] = {}


@node("test.sigterm")
def _sigterm_node(ctx: NodeContext) -> dict[str, Any]:
    """An inline node during which the child is asked to stop."""
    _sigterm["worker"].stop()
    return {}


def test_a_replayed_dead_letter_leaves_no_receipt(broker: StubBroker, store: StubStore) -> None:
    """Replaying a dead letter asks for its step to run again: it is neither looked up nor
    does it leave a receipt that would make a later replay of it a duplicate."""
    broker.enqueue(QUEUE, message("ex-plain", initiated=True))
    replayed = message("ex-replayed", initiated=True)
    broker.enqueue(QUEUE, replayed, headers={"x-runeworker-replayed": True})
    run_until_idle(make_worker(broker, store), broker)
    completed = [c["execution_id"] for c in decoded(broker.waiting(COMPLETION_QUEUE))]
    assert sorted(completed) == ["ex-plain", "ex-replayed"]
    kept = {r for r in store.receipts_kept}
    assert receipt_of(QUEUE, decode_execution(message("ex-plain", initiated=True))) in kept
    assert receipt_of(QUEUE, decode_execution(replayed)) not in kept


def test_a_dead_letter_replayed_by_hand_replays_its_recorded_failure(
    broker: StubBroker, store: StubStore
) -> None:
    """`runeworker dlq replay` puts a dead letter back with the replayed header. The second
    step of an execution, refused as poison, failed the execution; replayed, it must not run on
    into a completion of its own: the step takes the execution's record and publishes the
    recorded failure again, nothing else."""
    first = Executor(store).step(decode_execution(chain("ex-r", length=2)))
    second = encode_execution(first.messages[0])  # node n2's message
    broker.enqueue(QUEUE, second, redelivered=True)
    settings = {"broker.max_deliveries": 1}
    run_until_idle(make_worker(broker, store, settings=settings), broker)
    [copy] = broker.waiting(DEAD)
    reason = copy.headers["x-runeworker-reason"]
    broker.queues[DEAD].clear()
    broker.enqueue(QUEUE, copy.body, headers={"x-runeworker-replayed": True})
    run_until_idle(make_worker(broker, store, settings=settings), broker)
    completions = decoded(broker.waiting(COMPLETION_QUEUE))
    assert [(c["status"], c["failure_reason"]) for c in completions] == [("failed", reason)] * 2
    assert broker.waiting(QUEUE) == [] and broker.waiting(DEAD) == []


def test_a_copy_whose_receipt_is_found_is_acked_at_once_not_parked(
    broker: StubBroker, store: StubStore
) -> None:
    """A resent copy (a commit in doubt sent again) whose step's receipt is in Redis is acked
    with nothing published, at once; only one whose receipt is missing waits its grace (its
    original may still be claiming it) while the deliveries behind it go on."""
    body = message("ex-1", initiated=True)
    store.receipts_kept.add(receipt_of(QUEUE, decode_execution(body)))
    broker.enqueue(QUEUE, body, headers={RESENT_HEADER: True})
    broker.enqueue(QUEUE, message("ex-2", initiated=True))
    hooks = Recorder()
    worker = make_worker(broker, store, hooks)
    worker.parking.grace = 5.0
    run_until_idle(worker, broker)
    outcomes = [e[1:] for e in hooks.events if e[0] == "delivery" and e[2] != "consumed"]
    assert outcomes == [(QUEUE, "duplicate"), (QUEUE, "acked")]
    assert acked_batches(broker) == [[], ["ex-2"]]


def test_a_node_missing_from_its_definition_is_reported_as_type_unknown(
    broker: StubBroker, store: StubStore
) -> None:
    """The node metrics are labelled by node type: a message whose current node is not in its
    workflow has none, and is counted under `unknown` rather than an empty label."""
    doc = json.loads(message("ex-x"))
    doc["current_node"] = "nowhere"
    broker.enqueue(QUEUE, json.dumps(doc).encode())
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert [e for e in hooks.events if e[0] == "node"] == [("node", "unknown", "failed")]
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["failed"]


@pytest.mark.parametrize(("over", "recycles"), [(0, False), (1, True)])
def test_a_child_recycles_only_above_max_memory_mb(
    broker: StubBroker, store: StubStore, over: int, recycles: bool
) -> None:
    """`worker.max_memory_mb` is a limit the RSS may reach: a child at exactly 64 MiB goes on,
    one byte more recycles."""
    broker.enqueue(QUEUE, message("ex-0", initiated=True))
    worker = make_worker(broker, store, settings={"worker.max_memory_mb": 64})
    worker._process = _CountedRss(rss=64 * 1024 * 1024 + over)  # type: ignore[assignment]
    broker.on_idle = worker.stop
    assert worker.run() == (EXIT_RECYCLE if recycles else EXIT_OK)
    assert worker.recycle_reason == ("RSS above max_memory_mb 64" if recycles else "")


@pytest.mark.parametrize("slot", [None, 2])
def test_the_board_sees_boot_ready_busy_and_draining_in_the_childs_slot(
    broker: StubBroker, store: StubStore, slot: int | None
) -> None:
    """What the supervisor reads of a child (runeworker/supervisor/liveness.py): its slot (0
    unless given), its state, how many deliveries it has handled, and when its current step
    started (BUSY) or when it last beat. A step beats BUSY only when the last beat is older
    than BEAT_SHARE of worker.timeout (1.5 s of 30 here): quick steps after a beat do not."""
    for i in range(3):  # 0.2 s each
        broker.enqueue(QUEUE, message(f"ex-{i}", "test.busy", initiated=True))
    board = Beats()
    cfg = load_config(None, env={}, overrides={"broker.retry_delay": 0, "broker.batch_max": 3})
    if slot is None:
        worker = Worker(cfg, board, broker=broker, store=store)  # type: ignore[arg-type]
    else:
        worker = Worker(cfg, board, slot, broker=broker, store=store)  # type: ignore[arg-type]
    before = time.monotonic()
    run_until_idle(worker, broker)
    assert {b[0] for b in board.beats} == {slot or 0}
    states = [b[1] for b in board.beats]
    assert all(isinstance(state, ChildState) for state in states), states
    assert states.count(ChildState.READY) >= 3  # at every turn of the loop
    assert states[0] is ChildState.BOOTING and ChildState.READY in states
    assert states[-1] is ChildState.DRAINING
    assert ChildState.BUSY not in states  # each step began within 1.5 s of the last beat
    assert board.beats[-1][2] == 3  # handled, as the drain beats
    # every other beat says when it was made
    assert all(b[3] is not None and b[3] >= before for b in board.beats)


def test_a_child_whose_supervisor_is_gone_stops(
    broker: StubBroker, store: StubStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child reparented to init (its supervisor killed) stops at its next idle moment rather
    than consume on unsupervised. Only a supervised child (one with a board) looks."""
    import runeworker.child.worker as worker_module

    monkeypatch.setattr(worker_module.os, "getppid", lambda: 1)
    cfg = load_config(None, env={}, overrides={"broker.retry_delay": 0})
    supervised = Worker(cfg, Beats(), broker=broker, store=store)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(worker_module.log, "error", lambda *a, **k: said.append(a[0] % a[1:]))
        said: list[str] = []
        assert supervised.run() == EXIT_OK  # nothing stops it but the check
        assert said == ["supervisor is gone; stopping"]
        said.clear()
        alone = make_worker(StubBroker(), store)
        run_until_idle(alone, alone.broker)  # type: ignore[arg-type]
        assert said == []


def test_max_messages_is_jittered_upward_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children started together recycle apart: each adds up to `max_messages_jitter` of the
    limit, never less than the limit; 0 stays 0 (no limit)."""
    import runeworker.child.worker as worker_module

    monkeypatch.setattr(worker_module.random, "randint", lambda low, high: high)
    assert worker_module._jittered(100, 0.25) == 125
    assert worker_module._jittered(1, 0.0) == 1
    assert worker_module._jittered(0, 0.5) == 0
    monkeypatch.setattr(worker_module.random, "randint", lambda low, high: low)
    assert worker_module._jittered(100, 0.25) == 100


def test_an_idle_child_writes_the_receipts_of_its_commits_once_they_are_due(
    broker: StubBroker, store: StubStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The receipts of a commit are written RECEIPTS_EVERY (0.1 s) after it, by a later batch or,
    with none coming, by the idle loop, which waits no longer than that; Redis failing then
    is counted and waited out, the receipts kept due (not only written at the drain)."""
    caplog.set_level(logging.INFO, logger="runeworker")
    broker.enqueue(QUEUE, message("ex-1", initiated=True))
    store.fail("receipts")
    hooks = Recorder()
    worker = make_worker(broker, store, hooks)
    kept: list[int] = []
    deadline = time.monotonic() + 0.6

    def idle() -> None:
        kept.append(len(store.receipts_kept))
        if time.monotonic() > deadline:
            worker.stop()

    broker.on_idle = idle
    assert worker.run() == EXIT_OK
    assert kept[0] == 0 and kept[-1] == 1, kept  # written while idle, before the drain
    assert hooks.count("state_error") == 1
    assert any(0 < t <= 0.1 for t in broker.polls), broker.polls  # waited until due, not longer
    waited = [r.getMessage() for r in caplog.records if "waiting for Redis" in r.getMessage()]
    assert waited[:1] == [
        "waiting for Redis at redis://127.0.0.1:6379/0: stub: Redis is gone (receipts); the 0 "
        "deliveries of the step stay with this child, unacknowledged, and run again once it "
        "takes writes"
    ], waited


@pytest.mark.parametrize("how", ["sigterm", "supervisor gone"])
@pytest.mark.parametrize("when", ["at boot", "after a refused commit"])
def test_a_child_waiting_for_redis_stops_when_asked_or_orphaned(
    broker: StubBroker, store: StubStore, monkeypatch: pytest.MonkeyPatch, how: str, when: str
) -> None:
    """Redis refuses writes, at boot (the connection's wait) or after a step (the wait that
    keeps the deliveries): SIGTERM, or the supervisor gone (the child reparented to init), ends
    the wait (WAITING on the board, in the child's slot) and the child drains rather than wait
    for Redis; its unacknowledged deliveries go back. Before, an orphan waiting at boot
    retried until Redis and RabbitMQ answered, then consumed unsupervised."""
    import runeworker.child.worker as worker_module

    broker.enqueue(QUEUE, message("ex-1", initiated=True))
    hooks = Recorder()
    if when == "at boot":
        store.fail("write", times=1000)  # Redis stays full: looked at every 0.05 s
    else:
        store.fail("flush")
        hooks.on_ready = lambda *_: store.fail("write", times=1000)  # type: ignore[method-assign]
    overrides = {"broker.retry_delay": 0.05, "broker.retry_delay_max": 0.05}
    board = Beats()
    cfg = load_config(None, env={}, overrides=overrides)
    worker = Worker(cfg, board, 2, broker=broker, store=store, hooks=hooks)  # type: ignore[arg-type]
    parent = [os.getppid()]
    monkeypatch.setattr(worker_module.os, "getppid", lambda: parent[0])
    if how == "sigterm":
        threading.Timer(0.3, worker.stop).start()
    else:
        threading.Timer(0.3, lambda: parent.__setitem__(0, 1)).start()
    started = time.monotonic()
    assert worker.run() == EXIT_OK
    assert time.monotonic() - started < 30  # not the 50 s the faults would last
    assert ChildState.WAITING in {b[1] for b in board.beats}
    assert {b[0] for b in board.beats} == {2}
    assert broker.waiting(COMPLETION_QUEUE) == []
    assert [json.loads(m.body)["execution_id"] for m in broker.waiting(QUEUE)] == ["ex-1"]


def test_the_scheduler_ticks_at_most_every_poll_seconds(
    broker: StubBroker, store: StubStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child holding the host lock fires due timers between batches, at most every
    POLL_SECONDS: not at every turn of the loop (each tick is a Redis round trip)."""
    ticks: list[float] = []
    release = store.release_expired

    def counted(now_ms: int) -> int:
        ticks.append(time.monotonic())
        return release(now_ms)

    monkeypatch.setattr(store, "release_expired", counted)
    worker = make_worker(broker, store, scheduler_lock=str(tmp_path / "scheduler.lock"))
    run_for(worker, broker, 0.6)
    assert 2 <= len(ticks) <= 5, len(ticks)  # 0.6 s at one per 0.25 s, not one per turn


def test_a_child_reads_its_own_rss(broker: StubBroker, store: StubStore) -> None:
    """With `worker.max_memory_mb` the child reads its own RSS (psutil): far below a limit of
    100 GB, it goes on."""
    broker.enqueue(QUEUE, message("ex-0", initiated=True))
    worker = make_worker(broker, store, settings={"worker.max_memory_mb": 100_000})
    run_until_idle(worker, broker)
    assert worker.recycle_reason == "" and worker.handled == 1


def test_a_child_recycles_after_max_messages_counting_every_step_of_a_batch(
    broker: StubBroker, store: StubStore, caplog: pytest.LogCaptureFixture
) -> None:
    """`worker.max_messages` (no jitter): a child that has stepped that many deliveries asks to
    be replaced once its batch is committed; the count is of steps, not batches."""
    caplog.set_level(logging.INFO, logger="runeworker")
    for i in range(5):
        broker.enqueue(QUEUE, message(f"ex-{i}", initiated=True))
    settings = {
        "broker.batch_max": 3,
        "worker.max_messages": 3,
        "worker.max_messages_jitter": 0.0,
    }
    worker = make_worker(broker, store, settings=settings)
    broker.on_idle = worker.stop
    assert worker.run() == EXIT_RECYCLE
    assert worker.handled == 3
    assert worker.recycle_reason == "handled 3 messages (max_messages 3)"
    said = [r.getMessage() for r in caplog.records]
    assert f"child {os.getpid()} recycling: handled 3 messages (max_messages 3)" in said
    assert acked_batches(broker) == [["ex-0", "ex-1", "ex-2"]]
    # the two it had buffered went back at the drain, unstarted
    assert [json.loads(m.body)["execution_id"] for m in broker.waiting(QUEUE)] == ["ex-3", "ex-4"]


def test_a_store_that_does_not_answer_at_boot_is_a_state_error(
    broker: StubBroker, store: StubStore
) -> None:
    broker.enqueue(QUEUE, message("ex-1"))
    store.fail("ping", times=2)
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert hooks.count("state_error") == 2 and hooks.count("reconnect") == 0
    assert broker.connections == 1  # RabbitMQ is only opened once Redis answers
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]


def test_a_state_error_in_the_scheduler_is_counted(
    broker: StubBroker, store: StubStore, tmp_path: Path
) -> None:
    store.fail("release_expired")
    hooks = Recorder()
    worker = make_worker(broker, store, hooks, scheduler_lock=str(tmp_path / "scheduler.lock"))
    run_until_idle(worker, broker)
    assert hooks.count("state_error") == 1 and hooks.count("reconnect") == 1


def test_hooks_see_one_step_in_order(broker: StubBroker, store: StubStore) -> None:
    broker.enqueue(QUEUE, message("ex-1"))
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert hooks.events == [
        ("ready", (QUEUE, "workflow.resume")),
        ("commit",),  # the mirror, before the step
        ("delivery", QUEUE, "consumed"),
        ("inflight", 1),
        ("completion", "completed"),
        ("node", "log", "success"),
        ("delivery", QUEUE, "acked"),
        ("inflight", -1),
        ("commit",),
        ("stop",),
    ]


def test_state_errors_reach_the_prometheus_counter(broker: StubBroker, store: StubStore) -> None:
    """runeworker_state_errors_total counts through the Prometheus subscriber (in-process
    metrics here; tests/unit/test_metrics.py covers the multiprocess aggregation)."""
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = value("runeworker_state_errors_total")
    acked = value("runeworker_deliveries_total", queue=QUEUE, outcome="acked")
    broker.enqueue(QUEUE, message("ex-1"), redelivered=True)
    store.fail("count_attempt")
    run_until_idle(make_worker(broker, store, WorkerMetrics()), broker)
    assert value("runeworker_state_errors_total") == before + 1
    assert value("runeworker_deliveries_total", queue=QUEUE, outcome="acked") == acked + 1
    assert Counter(tx.acked != [] for tx in broker.committed)[True] == 1


def forked(execution_id: str) -> bytes:
    """A message of an execution with two branches (every step of it goes through the state
    store) past its first step: at `say`, with the branch token the trigger's step gave it."""
    doc = json.loads(message(execution_id))
    other = {"id": "other", "name": "Other", "type": "log", "parameters": {"message": "too"}}
    doc["workflow_definition"]["nodes"].append(other)
    doc["workflow_definition"]["edges"].append({"id": "e2", "src": "trigger", "dst": "other"})
    doc.update(branch_token=child_token("root", 0, "say"), from_node="trigger")
    doc["is_worker_initiated"] = True
    return json.dumps(doc).encode()


def test_a_step_whose_execution_state_is_lost_fails_it_and_says_so(
    broker: StubBroker, store: StubStore
) -> None:
    """The store knows nothing of the execution its branch token says is running (evicted,
    expired, flushed). Before, the step opened it afresh and ran on, and the execution never
    completed (its other branch stale). Now: a `failed` status and completion saying so, a
    dead-letter copy, the loss counted (`on_state_lost`, runeworker_state_lost_total)."""
    from prometheus_client import REGISTRY

    def lost() -> float:
        return REGISTRY.get_sample_value("runeworker_state_lost_total", {"what": "execution"}) or 0

    broker.enqueue(QUEUE, forked("ex-lost"))
    broker.enqueue(QUEUE, forked("ex-lost-2"))
    hooks = Recorder()
    before = lost()
    run_until_idle(make_worker(broker, store, hooks, settings={"broker.batch_max": 1}), broker)
    for tx, execution_id in zip(
        [tx for tx in broker.committed if tx.acked], ["ex-lost", "ex-lost-2"], strict=True
    ):
        [copy] = tx.to(DEAD)
        reason = copy.headers["x-runeworker-reason"]
        assert reason.startswith("state lost (evicted or expired?) at node Say (say): "), reason
        assert [(s["node_id"], s["status"]) for s in decoded(tx.to(STATUS_QUEUE))] == [
            ("say", "failed")
        ]
        [done] = decoded(tx.to(COMPLETION_QUEUE))
        assert (done["execution_id"], done["status"], done["failure_reason"]) == (
            execution_id, "failed", reason
        )  # fmt: skip
    assert hooks.count("state_lost", "execution") == 2
    outcomes = [e[2] for e in hooks.events if e[0] == "delivery"]
    assert outcomes == ["consumed", "dead_lettered", "acked"] * 2
    broker.enqueue(QUEUE, forked("ex-lost-3"))
    run_until_idle(make_worker(broker, store, WorkerMetrics()), broker)
    assert lost() == before + 1


def test_a_due_timer_whose_message_is_gone_is_counted(
    broker: StubBroker, store: StubStore, tmp_path: Path
) -> None:
    store.schedule("t-gone", 0, b"frozen", owner="ex-1")
    store._payloads.pop("t-gone")  # as an evicted `scheduler:payloads` leaves it
    hooks = Recorder()
    worker = make_worker(broker, store, hooks, scheduler_lock=str(tmp_path / "scheduler.lock"))
    run_for(worker, broker, 0.6)
    assert hooks.count("state_lost", "timer") == 1
    assert [m for tx in broker.committed for m in tx.to(RESUME)] == []


@pytest.mark.parametrize(("prefetch", "seen_at_first_idle"), [(1, 0), (10, 1)])
def test_a_loop_without_backlog_writes_the_counts_of_what_it_committed(
    broker: StubBroker,
    store: StubStore,
    monkeypatch: pytest.MonkeyPatch,
    prefetch: int,
    seen_at_first_idle: int,
) -> None:
    """The Prometheus subscriber writes after a commit at most every FLUSH_EVERY seconds
    (runeworker/metrics/tally.py). A batch smaller than the prefetch (no backlog, as when one
    execution runs) is written right after its commit; a full one when a poll brings nothing
    (the second of the stub's empty polls below; `submit --wait` then a scrape, as the README
    shows, relies on the first)."""
    from prometheus_client import REGISTRY

    from runeworker.metrics import tally

    def acked() -> float:
        labels = {"queue": QUEUE, "outcome": "acked"}
        return REGISTRY.get_sample_value("runeworker_deliveries_total", labels) or 0.0

    monkeypatch.setattr(tally, "FLUSH_EVERY", 3600.0)
    tally.flush()  # the last write: now, so no commit of this test is due
    before = acked()
    seen: list[float] = []
    settings = {"broker.prefetch": prefetch}
    worker = make_worker(broker, store, WorkerMetrics(), settings=settings)
    broker.enqueue(QUEUE, message("ex-1"))

    def idle() -> None:  # the stub's empty polls: the second comes after the worker idled once
        seen.append(acked())
        if len(seen) == 2:
            worker.stop()

    broker.on_idle = idle
    assert worker.run() == EXIT_OK
    assert seen[:2] == [before + seen_at_first_idle, before + 1]  # (the drain polls again)


def test_a_blocking_node_lets_the_counts_be_written_while_it_runs(
    broker: StubBroker, store: StubStore
) -> None:
    """While a blocking node runs the loop reports idle (the Prometheus subscriber writes its
    counts then: the node's step shows in flight), on every wait for the node's thread. The
    node ends once the loop has reported idle three times while it ran."""
    broker.enqueue(QUEUE, message("ex-1", "test.slow", initiated=True))
    worker: Worker | None = None
    slow_node_may_end.clear()

    class DuringNode(Recorder):
        def on_idle(self) -> None:
            super().on_idle()
            assert worker is not None
            self.events.append(("idle", worker._current is not None))
            if self.count("idle", True) == 3:
                slow_node_may_end.set()

    hooks = DuringNode()
    worker = make_worker(broker, store, hooks)
    worker.stepper.idle_interval = 0.01
    run_until_idle(worker, broker)
    assert hooks.count("idle", True) >= 3
    assert hooks.count("node", "test.slow", "success") == 1
    [success] = [s for s in decoded(broker.waiting(STATUS_QUEUE)) if s["status"] == "success"]
    assert success["output"] == {"let_go": True}  # not the 10 s give-up


class _CountedRss:
    """Stands in for the child's psutil.Process: counts the looks at its RSS."""

    def __init__(self, rss: int) -> None:
        self.rss, self.looks = rss, 0

    def memory_info(self) -> Any:
        self.looks += 1
        return SimpleNamespace(rss=self.rss)


@pytest.mark.parametrize(("every", "looks"), [(3600.0, 1), (0.0, 3)])
def test_the_rss_is_read_at_most_once_per_rss_check_every(
    broker: StubBroker,
    store: StubStore,
    monkeypatch: pytest.MonkeyPatch,
    every: float,
    looks: int,
) -> None:
    """Reading the RSS costs a /proc read: with `worker.max_memory_mb` set the loop looks after
    the first batch, then once per RSS_CHECK_EVERY, not after every batch."""
    from runeworker.child import worker as worker_module

    monkeypatch.setattr(worker_module, "RSS_CHECK_EVERY", every)
    for i in range(3):
        broker.enqueue(QUEUE, message(f"ex-{i}", initiated=True))
    settings = {"broker.batch_max": 1, "worker.max_memory_mb": 64}
    worker = make_worker(broker, store, settings=settings)
    process = _CountedRss(rss=1024)
    worker._process = process  # type: ignore[assignment]
    run_until_idle(worker, broker)
    assert worker.handled == 3 and process.looks == looks
    # a child over the limit from the start recycles after its first batch
    over = make_worker(broker, store, settings=settings)
    over._process = _CountedRss(rss=65 * 1024 * 1024)  # type: ignore[assignment]
    for i in range(2):
        broker.enqueue(QUEUE, message(f"ex-{3 + i}", initiated=True))
    assert over.run() == EXIT_RECYCLE
    assert over.recycle_reason == "RSS above max_memory_mb 64" and over.handled == 1


# -- wait timers --------------------------------------------------------------------------------


def waiting(execution_id: str) -> bytes:
    """A start message at a wait of 0 s followed by a log node (docs/WIRE.md section 7)."""
    doc = json.loads(message(execution_id))
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 0}}
    doc["workflow_definition"]["nodes"].append(pause)
    doc["workflow_definition"]["edges"] = [
        {"id": "e1", "src": "trigger", "dst": "pause"},
        {"id": "e2", "src": "pause", "dst": "say"},
    ]
    doc["current_node"] = "pause"
    return json.dumps(doc).encode()


def run_for(worker: Worker, broker: StubBroker, seconds: float) -> None:
    """Run the loop for at least `seconds` (its scheduler ticks every POLL_SECONDS), stopping
    at the first idle moment after that."""
    deadline = time.monotonic() + seconds
    broker.on_idle = lambda: worker.stop() if time.monotonic() > deadline else None
    assert worker.run() == EXIT_OK


@pytest.mark.parametrize("fault", ["commit applied", "commit lost", "ack lost"])
def test_a_timer_fired_again_after_a_fault_resumes_its_wait_once(
    broker: StubBroker, store: StubStore, tmp_path: Path, fault: str
) -> None:
    """The scheduler's commit of a resume message is cut (applied or not, the resend publishes
    the message), or Redis does not answer its acknowledgement of the timer after the commit:
    the timer stays leased and fires again once its lease runs out (30 s; at the next tick
    here). That second resume message is a copy of a step already taken: it publishes
    nothing (before: the wait resumed twice, the log node ran twice and the execution got two
    completions; seen with `runeworker serve`, its commit cut by tests/integration/amqpcut.py)."""
    Executor(store).step(decode_execution(waiting("ex-1")))  # the wait step: its timer is due
    worker = make_worker(broker, store, scheduler_lock=str(tmp_path / "scheduler.lock"))
    worker.scheduler.lease_ms = 0
    if fault == "commit applied":
        broker.doubt()  # the scheduler's is the loop's first commit
    elif fault == "commit lost":
        broker.fail("commit")
    else:
        store.fail("ack_timer")
    run_for(worker, broker, 1.6)  # the tick of the fault, then two more
    fired = [m for tx in broker.committed for m in tx.to(RESUME)]
    assert len(fired) >= 2  # the timer did fire again
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    trail = [(s["node_id"], s["status"]) for s in decoded(broker.waiting(STATUS_QUEUE))]
    assert trail == [("pause", "success"), ("say", "running"), ("say", "success")]


def test_a_timer_fired_again_while_its_first_resume_runs_elsewhere_publishes_nothing(
    broker: StubBroker, store: StubStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The second firing of a timer (see above) may come before the first resume's receipt
    is written: Redis came back after longer than the lease, and both copies wait in the queue
    for two children. The first copy's step, taken by the other child, has advanced the
    wait's token: the second copy, a first delivery whose token already advanced, publishes
    nothing (a replay is for a delivery whose commit was lost: that one comes back flagged)."""
    Executor(store).step(decode_execution(waiting("ex-1")))
    [timer] = store.claim_due(time.time_ns() // 1_000_000 + 10, 10, 60_000)
    elsewhere = Executor(store).step(decode_execution(timer.payload), resumed=True)
    assert elsewhere.report.verdict is Verdict.RUN and len(elsewhere.messages) == 1
    broker.enqueue(RESUME, timer.payload)  # the second firing; no receipt of the first yet
    hooks = Recorder()
    worker = make_worker(broker, store, hooks, scheduler_lock=str(tmp_path / "scheduler.lock"))
    with caplog.at_level(logging.INFO, logger="runeworker"):
        run_until_idle(worker, broker)
    assert hooks.count("delivery", RESUME, "duplicate") == 1
    assert broker.waiting(STATUS_QUEUE) == [] and broker.waiting(QUEUE) == []
    well_formed(store.receipts_kept)  # the copy's outcome is the other step's: no receipt
    assert (
        "resume of node pause of execution ex-1: its timer fired again after its step was "
        "taken; acked, nothing published"
    ) in [r.getMessage() for r in caplog.records]
    # a copy flagged redelivered is the first one coming back: it replays the step's outcome
    broker.enqueue(RESUME, timer.payload, redelivered=True)
    run_until_idle(make_worker(broker, store), broker)
    trail = [(s["node_id"], s["status"]) for s in decoded(broker.waiting(STATUS_QUEUE))]
    assert trail == [("pause", "success"), ("say", "running"), ("say", "success")]
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]


def test_a_resume_scheduled_again_because_it_came_early_is_not_taken_for_a_copy(
    broker: StubBroker, store: StubStore, tmp_path: Path
) -> None:
    """A resume that overtakes its wait step (the token not parked yet) publishes nothing and
    schedules the same timer, the same bytes, a second later (`Turn._resume_early`). That
    second delivery is not a copy of a step taken: it resumes the wait."""
    scratch = MemoryStore()  # the wait step's timer, taken on a store of its own...
    Executor(scratch).step(decode_execution(waiting("ex-1")))
    [timer] = scratch.claim_due(time.time_ns() // 1_000_000 + 10, 10, 60_000)
    park = child_token("root", 0, "pause")
    store.admit("ex-1", "root", time.time_ns())  # ...on this one: scheduled, not yet advanced
    store.schedule(timer.timer_id, 0, timer.payload, owner="ex-1")

    class Advancing(Recorder):
        def on_node_done(self, node_type: str, outcome: str, seconds: float) -> None:
            super().on_node_done(node_type, outcome, seconds)
            if (node_type, outcome) == ("wait", "skipped"):  # the early resume: now it parks
                store.advance("ex-1", "root", [park], None, None, time.time_ns())

    hooks = Advancing()
    worker = make_worker(broker, store, hooks, scheduler_lock=str(tmp_path / "scheduler.lock"))
    run_for(worker, broker, 2.2)  # the early firing, then the second a second later
    assert hooks.count("node", "wait", "skipped") == 1
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert hooks.count("delivery", RESUME, "duplicate") == 0
    well_formed(store.receipts_kept)  # the early resume, its step not taken, left none


def test_a_blocking_node_hands_the_scheduler_to_another_child(
    broker: StubBroker, store: StubStore, tmp_path: Path
) -> None:
    """The child holding the host's scheduler lock fires the timers between its deliveries. A
    node that blocks (an http call of a minute) must not hold them back while other children
    are free: the child lets the lock go while the node runs, and takes it again at a later
    tick if no other child did (before: with `runeworker serve`, a wait of 1 s resumed after
    13 s, behind a 15 s http call in the lock holder, the other child idle)."""
    lock = str(tmp_path / "scheduler.lock")
    broker.enqueue(QUEUE, message("ex-1", "test.slow", initiated=True))
    worker: Worker | None = None
    taken: list[bool] = []
    slow_node_may_end.clear()

    class DuringNode(Recorder):
        def on_idle(self) -> None:
            super().on_idle()
            assert worker is not None
            if worker._current is not None and not taken:
                other = HostLock(lock)  # another child of the host, trying at its tick
                taken.append(other.acquire())
                other.release()
                slow_node_may_end.set()

    worker = make_worker(broker, store, DuringNode(), scheduler_lock=lock)
    worker.stepper.idle_interval = 0.01
    run_for(worker, broker, 0.8)  # the node, then a tick: the lock is this child's again
    assert taken == [True]
    assert worker._lock is not None and worker._lock.held


# -- the mirror ---------------------------------------------------------------------------------


def test_the_mirror_is_committed_before_any_status_of_its_execution(
    broker: StubBroker, store: StubStore
) -> None:
    """RTES drops statuses of an execution it has no mirror of, and RabbitMQ makes a
    transaction visible queue by queue: the mirror of a start message is committed on its own,
    before the transaction holding the step's statuses, even when several start messages share
    a batch. A worker-initiated message is not mirrored."""
    for i in range(4):
        broker.enqueue(QUEUE, message(f"ex-{i}"))
    nxt = json.loads(message("ex-next"))
    nxt["is_worker_initiated"] = True
    broker.enqueue(QUEUE, json.dumps(nxt).encode())
    run_until_idle(make_worker(broker, store, settings={"broker.batch_max": 32}), broker)
    mirrored_at: dict[str, int] = {}
    first_status_at: dict[str, int] = {}
    for n, tx in enumerate(broker.committed):
        for m in decoded(tx.to(MIRROR_QUEUE)):
            mirrored_at.setdefault(m["execution_id"], n)
        for st in decoded(tx.to(STATUS_QUEUE)):
            first_status_at.setdefault(st["execution_id"], n)
    assert sorted(mirrored_at) == [f"ex-{i}" for i in range(4)]
    assert sorted(first_status_at) == [*sorted(mirrored_at), "ex-next"]
    for execution_id, at in mirrored_at.items():
        assert at < first_status_at[execution_id], execution_id


def test_the_prometheus_subscriber_shows_a_blocking_node_in_flight_while_it_runs(
    broker: StubBroker, store: StubStore
) -> None:
    """WorkerMetrics sums the in-flight gauge's moves itself and hands them to the tally before
    it writes: a quick node's +1 and -1 never reach the gauge, a blocking node's +1 does while
    it runs, and its -1 once it is done."""
    from prometheus_client import REGISTRY

    def inflight() -> float:
        return REGISTRY.get_sample_value("runeworker_inflight_nodes") or 0.0

    broker.enqueue(QUEUE, message("ex-0"))  # a quick node first
    broker.enqueue(QUEUE, message("ex-1", "test.slow", initiated=True))
    worker: Worker | None = None
    slow_node_may_end.clear()
    seen: list[float] = []

    class Watching(WorkerMetrics):
        def on_idle(self) -> None:
            super().on_idle()
            assert worker is not None
            # three looks while the node runs; once it may end, it may still be running for a
            # few more idle calls on a loaded machine: those are not looked at
            if worker._current is not None and not slow_node_may_end.is_set():
                seen.append(inflight())
                if len(seen) == 3:
                    slow_node_may_end.set()

    before = inflight()
    worker = make_worker(broker, store, Watching())
    worker.stepper.idle_interval = 0.01
    run_until_idle(worker, broker)
    assert seen == [before + 1] * 3
    assert inflight() == before


def test_the_prometheus_subscriber_keeps_a_bounded_number_of_series(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Messages may name any node type (an unknown one fails the step): the subscriber counts
    each, but keeps the series of at most as many label sets as `metrics.Family` does. (The
    series are stand-ins: real junk labels would use up the process's label values.)"""
    from runeworker import metrics
    from runeworker.metrics import subscriber, tally

    counted: list[Any] = []
    monkeypatch.setattr(metrics, "node_series", lambda t, o: (f"{t}/{o}", None))
    monkeypatch.setattr(tally, "inc", lambda child, amount=1.0: counted.append(child))
    hooks = WorkerMetrics()
    for i in range(subscriber._KEPT + 50):
        hooks.on_node_done(f"junk-{i}", "failed", 0.001)
    hooks.on_node_done("junk-0", "failed", 0.001)  # kept: found again
    hooks.on_node_done(f"junk-{subscriber._KEPT + 1}", "failed", 0.001)  # not kept: made again
    assert len(hooks._nodes) == subscriber._KEPT == 4 * metrics.MAX_LABEL_VALUES
    assert len(counted) == subscriber._KEPT + 52
    assert counted[-2:] == ["junk-0/failed", f"junk-{subscriber._KEPT + 1}/failed"]
