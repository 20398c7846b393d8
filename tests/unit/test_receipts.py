"""Receipts and commits in doubt (runeworker/child/receipts.py) on the in-memory broker and
store: what the loop does when a commit fails with an unknown outcome, and with a second copy
of a delivery whose step is already published. tests/integration/test_commit_doubt.py has the
same outcomes on RabbitMQ and Redis, the commit cut by a loopback proxy."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from typing import Any

import pytest
from stubbroker import Message, StubBroker, StubStore
from test_worker_loop import Recorder, chain, decoded, make_worker, run_until_idle

from runeworker.adapters.amqp import (
    COMPLETION_QUEUE,
    MIRROR_QUEUE,
    REPLAYED_HEADER,
    RESENT_HEADER,
    STATUS_QUEUE,
    Delivery,
)
from runeworker.child import receipts as receipts_module
from runeworker.child.doubts import DoubtBook, Resender
from runeworker.child.hooks import NoHooks
from runeworker.child.receipts import (
    Parking,
    Receipt,
    ReceiptBook,
    Receipts,
    receipt_of,
)
from runeworker.engine.messages import decode_execution
from runeworker.errors import StateError
from runeworker.supervisor.children import EXIT_OK

QUEUE = "workflow.execution"


def terminal(broker: StubBroker) -> Counter[tuple[str, str, str]]:
    """(execution, node, status) of every success/failed status waiting, counted."""
    return Counter(
        (s["execution_id"], s["node_id"], s["status"])
        for s in decoded(broker.waiting(STATUS_QUEUE))
        if s["status"] in ("success", "failed")
    )


def distinct(messages: list[Message]) -> int:
    return len({m.body for m in messages})


def fail_commit_number(hooks: Recorder, broker: StubBroker, n: int, **doubt: Any) -> None:
    """Make the n-th commit after the first counted one (1 = the next) end in doubt."""
    count = [0]

    def after() -> None:
        count[0] += 1
        if count[0] == n:
            broker.doubt(**doubt)

    hooks.after_commit = after


def test_acks_applied_and_the_next_message_lost_still_completes(
    broker: StubBroker, store: StubStore
) -> None:
    """What a quorum queue's dying leader did in the cluster suite: the commit of n1's step
    applied the ack and the statuses, and lost the next message. Without the resend the
    execution stops at n1 for good."""
    broker.enqueue(QUEUE, chain("ex-1"))
    hooks = Recorder()
    fail_commit_number(hooks, broker, 1, lose=(QUEUE,))  # commit 1 = the mirror's
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    steps = terminal(broker)
    assert set(steps) == {("ex-1", f"n{i}", "success") for i in (1, 2, 3)}
    # n1's statuses were applied and are published again: the same bytes twice, one step
    assert steps[("ex-1", "n1", "success")] == 2 and steps[("ex-1", "n2", "success")] == 1
    statuses = broker.waiting(STATUS_QUEUE)
    assert distinct(statuses) == len(statuses) - 2  # running and success of n1
    assert hooks.count("reconnect") == 1 and hooks.count("delivery", QUEUE, "duplicate") == 0


def test_a_commit_applied_in_full_is_published_again_and_the_copy_runs_nothing(
    broker: StubBroker, store: StubStore
) -> None:
    """The commit of n1's step was applied in full, then the connection went before its
    commit-ok: the resend puts a second copy of n2's message on the queue (same bytes), and
    n2's receipt, written when n2's step committed, makes that copy publish nothing."""
    broker.enqueue(QUEUE, chain("ex-1"))
    hooks = Recorder()
    fail_commit_number(hooks, broker, 1)
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    steps = terminal(broker)
    assert steps == Counter({("ex-1", "n1", "success"): 2, ("ex-1", "n2", "success"): 1,
                             ("ex-1", "n3", "success"): 1})  # fmt: skip
    assert hooks.count("delivery", QUEUE, "duplicate") == 1


def test_a_redelivered_copy_of_a_published_step_publishes_nothing(
    broker: StubBroker, store: StubStore
) -> None:
    """A committed ack lost with a broker node: the finished step is delivered again. Without
    receipts its copy ran again, down to a second completion."""
    broker.enqueue(QUEUE, chain("ex-1", length=1))
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    before = len(broker.waiting(STATUS_QUEUE))
    broker.enqueue(QUEUE, chain("ex-1", length=1), redelivered=True)
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert len(broker.waiting(STATUS_QUEUE)) == before
    assert hooks.count("delivery", QUEUE, "duplicate") == 1
    assert broker.waiting(QUEUE) == [] and broker.unacked == 0


def test_a_replayed_dead_letter_runs_again(broker: StubBroker, store: StubStore) -> None:
    """`runeworker dlq replay` asks for the step to run again: no receipt stops it."""
    body = chain("ex-1", length=1)
    broker.enqueue(QUEUE, body)
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    broker.enqueue(QUEUE, body, headers={REPLAYED_HEADER: True})
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert hooks.count("delivery", QUEUE, "duplicate") == 0
    assert terminal(broker)[("ex-1", "n1", "success")] == 2


def test_receipts_are_written_once_committed_and_only_then(
    broker: StubBroker, store: StubStore
) -> None:
    """A receipt says the step's outcome is published: none for a step whose transaction was
    lost before its commit (its delivery runs again), one for each committed step."""
    for i in range(3):
        broker.enqueue(QUEUE, chain(f"ex-{i}", length=1))
    broker.fail("poll")  # the first batch is handled, then the connection goes
    run_until_idle(make_worker(broker, store, settings={"broker.batch_max": 3}), broker)
    expected = {receipt_of(QUEUE, decode_execution(chain(f"ex-{i}", length=1))) for i in range(3)}
    assert store.receipts_kept == expected
    assert sorted(c["execution_id"] for c in decoded(broker.waiting(COMPLETION_QUEUE))) == [
        "ex-0", "ex-1", "ex-2"
    ]  # fmt: skip


def test_a_store_failure_on_the_receipts_waits_for_redis_and_writes_them_later(
    broker: StubBroker, store: StubStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receipts stay due while the child waits for Redis to take writes, connected to
    RabbitMQ (no reconnection, which would hand its deliveries back as attempts)."""
    monkeypatch.setattr(receipts_module, "RECEIPTS_EVERY", 0.0)  # written when first idle
    broker.enqueue(QUEUE, chain("ex-1", length=2))
    store.fail("receipts")
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert hooks.count("state_error") == 1 and hooks.count("reconnect") == 0
    assert broker.connections == 1
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert set(terminal(broker).values()) == {1}


def test_receipts_of_many_batches_go_in_one_write_and_before_the_child_stops(
    broker: StubBroker, store: StubStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a commit the child finds no delivery yet (the next ones are on their way):
    that is no reason to write the receipts, one round trip per batch. They wait until
    RECEIPTS_EVERY old (here longer than the test), and a stopping child writes them."""
    monkeypatch.setattr(receipts_module, "RECEIPTS_EVERY", 60.0)
    writes: list[int] = []
    receipts = store.receipts

    def counted(record: list[Receipt], check: list[Receipt]) -> list[bool]:
        writes.append(len(record))
        return receipts(record, check)

    monkeypatch.setattr(store, "receipts", counted)
    broker.enqueue(QUEUE, chain("ex-1", length=4))
    run_until_idle(make_worker(broker, store, Recorder()), broker)
    assert len(broker.committed) >= 4  # a batch per step: each next message came after a commit
    assert writes == [4]  # the drain's
    assert {node for _, node in store.receipts_kept} == {f"{QUEUE}|{t}" for t in _tokens(broker)}


def _tokens(broker: StubBroker) -> set[str]:
    """`<token>|<node>` of every message the worker consumed from QUEUE (its receipts)."""
    consumed = [json.loads(m.body) for tx in broker.committed for m in tx.to(QUEUE)]
    first = {"root|n1"}
    return first | {f"{m['branch_token']}|{m['current_node']}" for m in consumed}


def test_stopping_with_a_commit_in_doubt_publishes_it_before_exit(
    broker: StubBroker, store: StubStore
) -> None:
    """Asked to stop while the connection is down after a doubtful commit: the drain connects
    once more and publishes the commit again, or the next message of a step whose ack was
    applied would be lost."""
    broker.enqueue(QUEUE, chain("ex-1", length=2))

    class StopAfterTheStep(Recorder):
        def on_node_done(self, node_type: str, outcome: str, seconds: float) -> None:
            super().on_node_done(node_type, outcome, seconds)
            broker.doubt(lose=(QUEUE,))  # the step's own commit
            worker.stop()

    worker = make_worker(broker, store, StopAfterTheStep())
    assert worker.run() == EXIT_OK
    assert [m.routing_key for m in broker.resent].count(QUEUE) == 1
    assert [m["current_node"] for m in decoded(broker.waiting(QUEUE))] == ["n2"]


def test_stopping_with_the_mirror_commit_in_doubt_publishes_it_before_exit(
    broker: StubBroker, store: StubStore
) -> None:
    """A batch's mirror copies are committed on their own, before its steps. That commit ended
    in doubt, with the copy lost, and the child was asked to stop: no delivery was acked in it,
    so no receipt is doubted, only its messages are kept. The drain still publishes them
    again (RTES learns of an execution from its mirror), and the start message goes back to
    the queue unstepped."""
    broker.enqueue(QUEUE, chain("ex-1", length=2))  # a start message: mirrored first
    worker = make_worker(broker, store, Recorder())
    first = [True]

    def doubt_the_mirror() -> None:
        if first:
            first.clear()
            broker.doubt(lose=(MIRROR_QUEUE,))
            worker.stop()

    broker.before_commit = doubt_the_mirror
    assert worker.run() == EXIT_OK
    assert [m.routing_key for m in broker.resent] == [MIRROR_QUEUE]
    assert [m["execution_id"] for m in decoded(broker.waiting(MIRROR_QUEUE))] == ["ex-1"]
    assert [m["current_node"] for m in decoded(broker.waiting(QUEUE))] == ["n1"]
    assert broker.waiting(STATUS_QUEUE) == []


def test_the_receipt_names_queue_token_and_node() -> None:
    msg = decode_execution(chain("ex-9"))
    assert receipt_of(QUEUE, msg) == ("ex-9", f"{QUEUE}|root|n1")
    receipts = Receipts()
    receipts.acked(("e", "a"))
    receipts.in_doubt()
    receipts.acked(("e", "b"))
    receipts.discarded()
    assert receipts.doubted == [("e", "a")] and receipts.due == []
    receipts.resent()
    receipts.acked(("e", "c"))
    receipts.committed()
    assert receipts.due == [("e", "a"), ("e", "c")] and receipts.open == []


def test_with_publisher_confirms_the_receipt_comes_before_the_ack(
    store: StubStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Confirm mode (quorum queues): the receipts are written as soon as the publishes are
    sent, before the confirms and the acks, so a copy a new queue leader hands out finds its
    receipt. A receipt that cannot be written does not stop the commit: it stays due and is
    written with the next one."""
    broker = StubBroker(confirm=True)
    broker.enqueue(QUEUE, chain("ex-1", length=2))
    n1 = receipt_of(QUEUE, decode_execution(chain("ex-1", length=2)))
    hooks = Recorder()
    count = [0]
    kept_at_ack: list[bool] = []

    def after() -> None:  # after the mirror's commit: the step's receipt write fails
        count[0] += 1
        if count[0] == 1:
            store.fail("receipts")
        kept_at_ack.append(n1 in store.receipts_kept)

    hooks.after_commit = after
    with caplog.at_level(logging.WARNING, logger="runeworker"):
        run_until_idle(make_worker(broker, store, hooks), broker)
    assert [r.getMessage() for r in caplog.records] == [
        "receipts not written yet: stub: Redis is gone (receipts)"
    ]
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert set(terminal(broker).values()) == {1}  # no step ran twice
    assert hooks.count("state_error") == 0 and hooks.count("reconnect") == 0
    assert n1 in store.receipts_kept and kept_at_ack[1] is False and kept_at_ack[-1] is True


def test_the_receipts_of_a_commit_in_doubt_are_written_before_reconnecting(
    broker: StubBroker, store: StubStore
) -> None:
    """Other children may get the deliveries of a commit in doubt while this one reconnects
    and waits to publish it again; the receipts must be there first."""
    broker.enqueue(QUEUE, chain("ex-1", length=2))
    seen_at_reconnect: list[bool] = []
    n1 = receipt_of(QUEUE, decode_execution(chain("ex-1", length=2)))

    class AtReconnect(Recorder):
        def on_reconnect(self) -> None:
            super().on_reconnect()
            seen_at_reconnect.append(n1 in store.receipts_kept)

    hooks = AtReconnect()
    fail_commit_number(hooks, broker, 1, lose=(QUEUE,))
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert seen_at_reconnect == [True]
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]


def test_first_deliveries_are_not_looked_up(broker: StubBroker) -> None:
    """Only a delivery flagged redelivered or resent can be a copy: a run without faults makes
    no lookup per batch, and writes its receipts in few calls (here: once, when idle)."""
    calls: list[tuple[int, int]] = []

    class Counting(StubStore):
        def receipts(self, record: list[Receipt], check: list[Receipt]) -> list[bool]:
            calls.append((len(record), len(check)))
            return super().receipts(record, check)

    store = Counting()
    for i in range(6):
        broker.enqueue(QUEUE, chain(f"ex-{i}", length=1))
    run_until_idle(make_worker(broker, store, settings={"broker.batch_max": 2}), broker)
    assert all(checked == 0 for _, checked in calls)  # nothing looked up
    assert sum(written for written, _ in calls) == 6 and len(store.receipts_kept) == 6
    # three batches: at most one write each (RECEIPTS_EVERY passed) and one when idle
    assert 1 <= len(calls) <= 4


@pytest.mark.parametrize("copy", ["resent", "redelivered"])
def test_a_copy_waits_while_its_original_runs_elsewhere(broker: StubBroker, copy: str) -> None:
    """The copy a resend queues right behind an applied original reaches another child while
    the original's step runs: no receipt yet. It waits its grace and finds the receipt the
    original's child wrote meanwhile; run at once, the step would have run twice (the
    cluster suite saw it). So does a broker's redelivery of a commit in doubt: the broker
    hands the deliveries on as it closes the connection, and the child whose commit it was
    claims their receipts only once its commit has failed (seen in the faults suite's
    `connections` scenario: two statuses of one step)."""
    body = chain("ex-1", length=1)
    original = receipt_of(QUEUE, decode_execution(body))

    class OriginalElsewhere(StubStore):
        def receipts(self, record: list[Receipt], check: list[Receipt]) -> list[bool]:
            found = super().receipts(record, check)
            if check:  # right after this lookup, the original's child commits
                self.receipts_kept.add(original)
            return found

    store = OriginalElsewhere()
    if copy == "resent":
        broker.enqueue(QUEUE, body, headers={RESENT_HEADER: True})
    else:
        broker.enqueue(QUEUE, body, redelivered=True)
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert hooks.count("delivery", QUEUE, "duplicate") == 1
    assert broker.waiting(STATUS_QUEUE) == [] and broker.waiting(COMPLETION_QUEUE) == []


def test_on_quorum_queues_an_unflagged_copy_is_found_too() -> None:
    """A quorum queue's new leader hands out again, without the redelivered flag, a message
    whose delivery by the dead leader was never replicated; with quorum queues every delivery
    is looked up. (On a classic queue such a copy would run: the test's second half.)"""
    for queue_type, runs in (("quorum", 1), ("classic", 2)):
        broker, store = StubBroker(confirm=queue_type == "quorum"), StubStore()
        settings = {"broker.queue_type": queue_type}
        body = chain("ex-1", length=1)
        broker.enqueue(QUEUE, body)
        run_until_idle(make_worker(broker, store, settings=settings), broker)
        broker.enqueue(QUEUE, body)  # the same message again, not flagged
        run_until_idle(make_worker(broker, store, settings=settings), broker)
        assert terminal(broker)[("ex-1", "n1", "success")] == runs, queue_type


class _DoubtThenStop(Recorder):
    """The step's own commit ends in doubt with its next message lost (its ack applied), the
    broker stays away for the drain's three tries, and the child stops: what a child killed
    before its resend leaves (its messages gone with its memory)."""

    def __init__(self, broker: StubBroker) -> None:
        super().__init__()
        self.broker = broker
        self.worker: Any = None

    def on_node_done(self, node_type: str, outcome: str, seconds: float) -> None:
        super().on_node_done(node_type, outcome, seconds)
        if self.worker.handled == 0:
            self.broker.doubt(lose=(QUEUE,))
            self.broker.fail("connect", 3)
            self.worker.stop()


def _doubt_left_behind(broker: StubBroker, store: StubStore) -> str:
    """Run a child that stops with its commit in doubt unpublished; its id in the store."""
    broker.enqueue(QUEUE, chain("ex-1", length=2))
    hooks = _DoubtThenStop(broker)
    first = hooks.worker = make_worker(broker, store, hooks)
    assert first.run() == EXIT_OK
    assert [e for e in hooks.events if e[0] == "doubt"] == [
        ("doubt", "doubted"),
        ("doubt", "handed_over"),
    ]
    assert broker.waiting(QUEUE) == [] and broker.waiting(COMPLETION_QUEUE) == []
    assert list(store.doubts.kept) == [first.doubts.doubt_id]
    broker.in_doubt = []  # the first child's memory is gone with it
    return first.doubts.doubt_id


def _completed_once(broker: StubBroker, store: StubStore) -> None:
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    # n1's statuses were applied by the doubtful commit and come again, the same bytes
    steps = terminal(broker)
    assert steps == Counter({("ex-1", "n1", "success"): 2, ("ex-1", "n2", "success"): 1})
    statuses = broker.waiting(STATUS_QUEUE)
    assert distinct(statuses) == len(statuses) - 2
    assert store.doubts.kept == {} and store.doubts.leases == {}
    resent = [m for m in broker.resent if m.routing_key == QUEUE]
    assert len(resent) == 1 and resent[0].headers[RESENT_HEADER] is True


def test_a_commit_in_doubt_a_stopping_child_hands_over_is_published_by_the_next(
    broker: StubBroker, store: StubStore
) -> None:
    """The first child keeps its commit in doubt in the store and stops without publishing it,
    its lease ended; the next child publishes it again and drops it, and the execution
    completes, each step once."""
    doubt_id = _doubt_left_behind(broker, store)
    assert store.doubts.leases[doubt_id] <= store.doubts.now_ms  # handed over
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    _completed_once(broker, store)
    assert hooks.count("doubt") == hooks.count("doubt", "adopted") == 1


def test_a_commit_in_doubt_of_a_killed_child_waits_for_its_lease(
    broker: StubBroker, store: StubStore
) -> None:
    """A killed child hands nothing over: its lease runs as last renewed, and no child takes
    the commit before it ends."""
    doubt_id = _doubt_left_behind(broker, store)
    store.doubts.leases[doubt_id] = store.doubts.now_ms + 60_000  # what a kill leaves
    run_until_idle(make_worker(broker, store, Recorder()), broker)
    assert broker.waiting(COMPLETION_QUEUE) == [] and list(store.doubts.kept) == [doubt_id]
    store.doubts.now_ms += 60_000
    run_until_idle(make_worker(broker, store, Recorder()), broker)
    _completed_once(broker, store)


class Killed(BaseException):
    """The child's process ends here (a SIGKILL: nothing after it runs)."""


def test_a_child_killed_right_after_its_commit_fell_in_doubt_leaves_it_to_another(
    broker: StubBroker, store: StubStore
) -> None:
    """The step's commit applies its acks and statuses and loses its next message; the child
    dies at its next write to Redis, the receipts of the doubtful commit. The messages are
    already kept in the store: once the lease ends the next child publishes them again and
    the execution completes, each step once. (Claiming the receipts first, a kill there
    left receipts saying n1 was published and nothing to publish n2's message: the execution
    never completed.)"""
    broker.enqueue(QUEUE, chain("ex-1", length=2))
    hooks = _DoubtThenStop(broker)
    first = hooks.worker = make_worker(broker, store, hooks)
    receipts = store.receipts

    def killed_at_the_claim(record: list[Receipt], check: list[Receipt]) -> list[bool]:
        if record and first.receipts.doubted:
            raise Killed
        return receipts(record, check)

    store.receipts = killed_at_the_claim  # type: ignore[method-assign]
    with pytest.raises(Killed):
        first.run()
    store.receipts = receipts  # type: ignore[method-assign]
    assert list(store.doubts.kept) == [first.doubts.doubt_id]
    assert store.receipts_kept == set()  # the kill came before the claim
    broker.in_doubt = []  # the first child's memory is gone with it
    store.doubts.now_ms += 60_000  # its lease, as last set, has ended
    run_until_idle(make_worker(broker, store, Recorder()), broker)
    _completed_once(broker, store)


def test_a_commit_in_doubt_is_kept_once_redis_answers_and_dropped_once_resent(
    broker: StubBroker, store: StubStore
) -> None:
    """Redis does not answer when the commit falls in doubt: the child keeps the messages in
    memory and keeps them in the store at its next renewal; after the resend nothing is left
    in the store. A commit that succeeds keeps nothing."""
    broker.enqueue(QUEUE, chain("ex-1", length=2))
    hooks = Recorder()
    kept: list[list[str]] = []
    worker = make_worker(broker, store, hooks)
    keep = store.doubts.keep

    def watched(doubt_id: str, packed: bytes, lease_ms: int) -> None:
        keep(doubt_id, packed, lease_ms)
        kept.append(list(store.doubts.kept))

    store.doubts.keep = watched  # type: ignore[method-assign]

    def after() -> None:
        if hooks.count("commit") == 1:  # the mirror's: the next one is n1's step
            broker.doubt(lose=(QUEUE,))
            store.fail("doubts", 1)  # the keep right after the commit

    hooks.after_commit = after
    run_until_idle(worker, broker)
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert kept == [[worker.doubts.doubt_id]]  # kept at the renewal, before reconnecting
    assert [e for e in hooks.events if e[0] == "doubt"] == [
        ("doubt", "doubted"),
        ("doubt", "resent"),
    ]
    assert store.doubts.kept == {} and hooks.count("reconnect") == 1


def test_an_adopted_commit_whose_resend_fails_is_dropped_after_the_next_resend(
    broker: StubBroker, store: StubStore
) -> None:
    """The adopting child's own resend of the orphan ends in doubt (applied in full): the
    orphan's messages stay in this child's doubt, go out again at its reconnect, and only
    then is the orphan dropped from the store, with this child's own kept copy."""
    _doubt_left_behind(broker, store)
    broker.doubt()  # the next commit: the adoption's
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    steps = terminal(broker)
    assert steps[("ex-1", "n2", "success")] == 1  # n2's message came twice: one ran
    assert store.doubts.kept == {} and hooks.count("reconnect") == 1


def test_redis_failing_at_the_look_for_orphans_stops_nothing(
    broker: StubBroker, store: StubStore
) -> None:
    """The look for other children's kept commits fails: the child consumes on, without a
    reconnect, and reports the state error."""
    broker.enqueue(QUEUE, chain("ex-1", length=2))
    store.fail("doubts", 1)  # the first look, before the first batch
    hooks = Recorder()
    run_until_idle(make_worker(broker, store, hooks), broker)
    assert [c["status"] for c in decoded(broker.waiting(COMPLETION_QUEUE))] == ["completed"]
    assert hooks.count("reconnect") == 0 and hooks.count("state_error") == 1


def test_a_redelivery_waits_its_shorter_grace_even_behind_a_resent_copy() -> None:
    """A resent copy waits 2 s, a redelivery 0.25 s: one parked after the other still comes
    out first, and each comes out once; a drain hands back what is parked in its order."""
    parking = Parking(grace=0.6, redelivered_grace=0.05)
    resent = Delivery(1, QUEUE, b"{}", False, headers={RESENT_HEADER: True})
    redelivered = Delivery(2, QUEUE, b"{}", True)
    assert parking.park(resent) and parking.park(redelivered)
    assert parking.wait_seconds(10.0) <= 0.05
    pending: deque[Delivery] = deque()
    time.sleep(0.06)
    parking.release(pending)
    assert list(pending) == [redelivered]
    assert not parking.park(redelivered)  # it waited: now it runs
    assert parking.take_all() == [resent] and parking.wait_seconds(10.0) == 10.0


def test_copies_that_find_their_receipt_after_waiting_leave_nothing_parked(
    broker: StubBroker,
) -> None:
    """A copy that waited its grace and then found its original's receipt is acked as a
    duplicate and never parked again: the parking must forget it then too. It remembered
    its tag until the connection closed, and a connection lives for months: one tag per such
    copy, for ever."""
    copies = 30
    bodies = [chain(f"ex-{i}", length=1) for i in range(copies)]
    originals = {receipt_of(QUEUE, decode_execution(body)) for body in bodies}

    class OriginalsElsewhere(StubStore):
        def receipts(self, record: list[Receipt], check: list[Receipt]) -> list[bool]:
            found = super().receipts(record, check)
            self.receipts_kept.update(r for r in check if r in originals)  # committed meanwhile
            return found

    for body in bodies:
        broker.enqueue(QUEUE, body, redelivered=True)
    worker = make_worker(broker, OriginalsElsewhere())
    worker.parking.redelivered_grace = 0.001
    hooks_seen: list[int] = []

    def idle() -> None:  # the connection is still open: nothing has cleared the parking
        hooks_seen.append(worker.parking.remembered)
        worker.stop()

    broker.on_idle = idle
    assert worker.run() == EXIT_OK
    assert len(broker.committed) >= copies  # each copy acked as a duplicate, alone
    assert broker.waiting(COMPLETION_QUEUE) == []
    assert hooks_seen[0] == 0


class _Clock:
    """time.monotonic of runeworker/child/receipts.py, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, now: float = 1000.0) -> None:
        self.now = now
        monkeypatch.setattr(receipts_module.time, "monotonic", lambda: self.now)


def test_parked_copies_come_out_when_their_grace_ends_in_the_order_parked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock(monkeypatch)
    parking = Parking(grace=2.0, redelivered_grace=0.25)
    resent = Delivery(7, QUEUE, b"{}", False, headers={RESENT_HEADER: True})
    first, second = Delivery(9, QUEUE, b"{}", True), Delivery(3, QUEUE, b"{}", True)
    for d in (resent, first, second):
        assert parking.park(d)
    assert parking.wait_seconds(10.0) == 0.25 and parking.wait_seconds(0.1) == 0.1
    assert parking.take_all() == [resent, first, second]  # a drain: the order parked
    for d in (resent, first, second):
        parking.park(d)
    pending = deque([Delivery(1, QUEUE, b"{}", False)])
    clock.now += 0.25  # the redeliveries' grace is over now, exactly
    parking.release(pending)
    assert [d.tag for d in pending] == [9, 3, 1]  # first, in the order they were parked
    assert parking.remembered == 3 and parking.wait_seconds(10.0) == 1.75
    clock.now += 1.75
    parking.release(pending)
    assert [d.tag for d in pending] == [7, 9, 3, 1]
    parking.clear()
    assert parking.remembered == 0


def test_receipts_of_two_commits_in_doubt_and_of_committed_ones_all_become_due() -> None:
    receipts = Receipts()
    a, b, c, d = (("ex", f"q|root|n{i}") for i in range(4))
    receipts.acked(a)
    receipts.in_doubt()
    receipts.acked(b)
    receipts.in_doubt()  # a second commit in doubt before the resend
    assert receipts.doubted == [a, b] and receipts.open == []
    receipts.acked(c)
    receipts.committed()
    receipts.acked(d)
    receipts.discarded()  # never sent: d's delivery runs again
    receipts.resent()
    assert receipts.due == [c, a, b] and receipts.doubted == [] and receipts.open == []


class _Kept:
    """The receipts a ReceiptBook writes, call by call (RedisStore.receipts' contract)."""

    def __init__(self) -> None:
        self.kept: set[Receipt] = set()
        self.calls: list[tuple[list[Receipt], list[Receipt]]] = []
        self.down = False

    def receipts(self, record: list[Receipt], check: list[Receipt]) -> list[bool]:
        if self.down:
            raise StateError("Redis at 127.0.0.1:6379 did not answer")
        self.calls.append((list(record), list(check)))
        self.kept.update(record)
        return [r in self.kept for r in check]


def test_due_receipts_wait_receipts_every_then_go_with_the_next_look_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock(monkeypatch, now=1024.0)
    every = 0.125  # a binary fraction: the clock's sums are exact
    monkeypatch.setattr(receipts_module, "RECEIPTS_EVERY", every)
    store = _Kept()
    book = ReceiptBook(store)
    r1, r2 = ("ex", "q|root|a"), ("ex", "q|root|b")
    assert book.due_in() is None and book.look_up([]) == [] and store.calls == []
    book.state.acked(r1)
    book.committed()
    assert book.due_in() == every
    clock.now += every / 2
    assert book.look_up([None]) == [False] and store.calls == []  # young: they may wait
    assert book.due_in() == every / 2
    book.state.acked(r2)
    book.committed()  # the oldest sets the time
    clock.now += every / 2  # exactly RECEIPTS_EVERY old: written with any look-up now
    assert book.due_in() == 0.0
    assert book.look_up([]) == [] and store.calls == [([r1, r2], [])]
    assert book.due_in() is None
    assert book.look_up([r1, None]) == [True, False] and store.calls[1] == ([], [r1])


def test_the_receipts_of_a_resend_are_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Made due by a resend, not by a commit of this book's: written at the next look-up,
    however recent the last commit."""
    clock = _Clock(monkeypatch)
    store = _Kept()
    book = ReceiptBook(store)
    assert book.look_up([]) == []
    book.state.doubted.append(("ex", "q|root|doubted"))
    book.state.resent()
    assert book.due_in() == 0.0
    assert book.look_up([]) == [] and store.calls == [([("ex", "q|root|doubted")], [])]
    book.state.acked(("ex", "q|root|c"))
    book.committed()
    assert book.look_up([], write=True) == [] and len(store.calls) == 2  # written when asked
    clock.now += 0.01
    broker, doubts = StubBroker(), DoubtBook(StubStore().doubts)
    resender = Resender(broker, book, doubts, NoHooks(), retry_delay=0.0)
    book.state.doubted.append(("ex", "q|root|d"))
    resender.resend()  # 0.01 s after the last commit: its receipts are written all the same
    assert store.calls[-1] == ([("ex", "q|root|d")], [])


def test_receipts_redis_did_not_take_are_told_and_kept_due(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Kept()
    book = ReceiptBook(store)
    book.state.doubted.append(("ex", "q|root|a"))
    store.down = True
    with caplog.at_level("WARNING", logger="runeworker.worker"):
        book.claim_doubted()
        book.state.acked(("ex", "q|root|b"))
        book.committed()
        book.write_quietly()
    assert [r.getMessage() for r in caplog.records] == [
        "receipts of a commit in doubt not written yet: Redis at 127.0.0.1:6379 did not answer",
        "receipts not written yet: Redis at 127.0.0.1:6379 did not answer",
    ]
    assert book.state.due == [("ex", "q|root|b")]
    store.down = False
    book.write_quietly()
    assert store.kept == {("ex", "q|root|b")} and book.state.due == []
    book.write_quietly()  # nothing due: no call
    assert len(store.calls) == 1
