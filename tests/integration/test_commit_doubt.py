"""Commits in doubt on RabbitMQ and Redis (runeworker/child/receipts.py): a worker child whose
connection goes through a loopback proxy (tests/integration/amqpcut.py) that cuts the commit
of the first step of a 3-node chain, and the Rune side reading what came out.

Each test fails without the resend or without the receipts: the partial commit (acks applied,
next message lost) stops the execution at n1 for good; the full commit and the lost commit
make a step run twice (two `success` statuses with different bytes, or two completions)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest
import redis
from amqpcut import CommitCutter
from wire import EXECUTION, RunningWorker, Wire, edge, master, node, running_worker, vhost_of

from runeworker.adapters.amqp import Broker
from runeworker.errors import BrokerError, CommitInDoubt


@pytest.fixture
def cutter() -> Iterator[CommitCutter]:
    proxy = CommitCutter()
    yield proxy
    proxy.close()


@pytest.fixture(params=["classic", "quorum"])
def queue_type(request: pytest.FixtureRequest) -> str:
    """Classic queues: an AMQP transaction per step; quorum: publisher confirms."""
    return str(request.param)


@pytest.fixture
def url(request: pytest.FixtureRequest, queue_type: str) -> str:
    name = "quorum_amqp_url" if queue_type == "quorum" else "amqp_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def proxied(
    url: str, queue_type: str, redis_url: str, redis_prefix: str, cutter: CommitCutter
) -> Iterator[RunningWorker]:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{cutter.port}"
    through = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    settings = {"broker.retry_delay": 0.05, "broker.retry_delay_max": 0.2,
                "broker.queue_type": queue_type}  # fmt: skip
    with running_worker(through, redis_url, redis_prefix, **settings) as rw:
        yield rw


@pytest.fixture
def wire(url: str, proxied: RunningWorker) -> Iterator[Wire]:
    """The Rune side, straight to RabbitMQ; the only worker is the proxied one."""
    w = Wire(url)
    yield w
    w.close()


def chain() -> dict[str, Any]:
    """A start message of t -> n1 -> n2 -> n3 (log nodes), at n1."""
    nodes = [node("t", "ManualTrigger")]
    nodes += [node(f"n{i}", "log", message=f"step {i}") for i in (1, 2, 3)]
    return master(nodes, [edge("t", "n1"), edge("n1", "n2"), edge("n2", "n3")], current="n1")


def run_cut(wire: Wire, cutter: CommitCutter, mode: str, lose: tuple[str, ...] = ()) -> str:
    """Publish a chain with the cut armed; returns its execution id once it completed."""
    start = chain()
    eid = str(start["execution_id"])
    cutter.arm(mode, EXECUTION, lose)
    wire.publish_api(start)
    wire.completion(eid, timeout=20)
    assert cutter.cut.is_set() and cutter.connections >= 2  # cut, and the worker came back
    wire.no_second_completion(eid, settle=1.5)
    return eid


def steps(wire: Wire, eid: str) -> Counter[tuple[str, str]]:
    """(node, status) of each distinct success/failed status: a step run twice counts 2, the
    same message read twice (a resend) counts 1."""
    distinct = {g.raw: g.body for g in wire.statuses(eid)}
    return Counter(
        (b["node_id"], b["status"]) for b in distinct.values() if b["status"] != "running"
    )


EXPECTED = Counter({("n1", "success"): 1, ("n2", "success"): 1, ("n3", "success"): 1})


def test_acks_applied_and_the_next_message_lost(
    proxied: RunningWorker, wire: Wire, cutter: CommitCutter
) -> None:
    """The commit of n1's step reaches the broker without its next message and the client
    never hears back: the resend puts n2's message on the queue."""
    eid = run_cut(wire, cutter, "after", lose=(EXECUTION,))
    assert steps(wire, eid) == EXPECTED
    # n1's statuses came twice, the same bytes: one message delivered twice
    raws = Counter(g.raw for g in wire.statuses(eid))
    assert sorted(raws.values()) == [1, 1, 1, 1, 2, 2]


def test_a_commit_applied_in_full_runs_no_step_twice(
    proxied: RunningWorker, wire: Wire, cutter: CommitCutter, queue_type: str
) -> None:
    """Applied in full, commit-ok lost: n2's message reaches the queue twice (the commit and
    the resend); n2's receipt makes the second copy publish nothing."""
    eid = run_cut(wire, cutter, "after")
    assert steps(wire, eid) == EXPECTED
    if queue_type == "quorum":
        return  # the cut came with the first confirm: n2's message may be on the queue once
    tapped = Counter(g.raw for g in wire.got["tap"] if g.body.get("execution_id") == eid)
    assert sorted(tapped.values()) == [1, 2]  # n2 twice (the same bytes), n3 once


def test_a_lost_commit_is_published_once_and_its_redelivery_dropped(
    proxied: RunningWorker, wire: Wire, cutter: CommitCutter, queue_type: str
) -> None:
    """Nothing applied: the resend publishes n1's outcome, and n1's delivery, redelivered
    with the connection, finds its receipt and publishes nothing."""
    eid = run_cut(wire, cutter, "before")
    assert steps(wire, eid) == EXPECTED
    if queue_type == "classic":  # confirm mode: n1's statuses went out before the cut
        assert Counter(g.raw for g in wire.statuses(eid)).most_common(1)[0][1] == 1


@pytest.mark.parametrize("confirm", [False, True], ids=["transaction", "confirms"])
def test_a_transaction_the_broker_closed_before_its_commit_is_not_in_doubt(
    amqp_url: str, confirm: bool
) -> None:
    """The broker closes the connection while a batch runs (a fault, a node going down) and
    discards its open transaction. The commit reads that before it sends anything and fails
    as never sent: nothing is kept to publish again (a resend would publish the outcome of
    deliveries that other children may be running again already). Sending the commit first
    would have raised in doubt. With publisher confirms (quorum queues) nothing was sent
    before the commit either."""
    queue = f"doubt.closed.{uuid.uuid4().hex[:8]}"
    side = pika.BlockingConnection(pika.URLParameters(amqp_url))
    side.channel().queue_declare(queue)
    side.close()
    broker = Broker([amqp_url], confirm=confirm)
    broker.connect()
    try:
        broker.publish(queue, b'{"step": "outcome"}', exchange="")
        subprocess.run(
            ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost_of(amqp_url), "test"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        time.sleep(0.5)  # the close frame is on its way to the client
        with pytest.raises(BrokerError) as raised:
            broker.commit()
        assert not isinstance(raised.value, CommitInDoubt)
        assert "before the commit" in str(raised.value)
        assert broker.in_doubt == []
    finally:
        broker.close()
    side = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = side.channel()
        assert channel.queue_declare(queue, passive=True).method.message_count == 0
        channel.queue_delete(queue)
    finally:
        side.close()


def test_a_child_gone_before_its_resend_leaves_the_commit_to_another(
    url: str,
    queue_type: str,
    redis_url: str,
    redis_prefix: str,
    proxied: RunningWorker,
    wire: Wire,
    cutter: CommitCutter,
) -> None:
    """The commit of n1's step is applied without n2's message, and the broker stays out of
    the child's reach until it stops: its resend never happens, and its memory goes with it.
    The commit was kept in Redis (runeworker/child/doubts.py) and handed over as the child
    stopped: a second worker publishes it again, and the execution completes, each step once."""
    cutter.refuse_after_cut = True
    start = chain()
    eid = str(start["execution_id"])
    cutter.arm("after", EXECUTION, (EXECUTION,))
    wire.publish_api(start)
    assert cutter.cut.wait(15)
    kept = redis.Redis.from_url(redis_url)
    messages = f"{redis_prefix}{{doubts}}:messages"
    deadline = time.monotonic() + 10
    while kept.hlen(messages) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kept.hlen(messages) == 1
    proxied.worker.stop()
    proxied.thread.join(15)
    assert proxied.exit_code == [0] and kept.hlen(messages) == 1  # stopped without resending
    with running_worker(url, redis_url, redis_prefix, **{"broker.queue_type": queue_type}):
        wire.completion(eid, timeout=20)
        wire.no_second_completion(eid, settle=1.0)
    assert steps(wire, eid) == EXPECTED
    assert kept.hlen(messages) == 0
    kept.close()
