"""`Broker` in confirm mode (`broker.queue_type = "quorum"`, runeworker/adapters/amqp.py) against
the real RabbitMQ: how long a commit waits for its publisher confirms, and the publishes a queue
refuses (basic.nack), sent again until it takes them."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from runeworker.adapters.amqp import NACK_PAUSE, Broker

QUORUM = {"x-queue-type": "quorum"}


@pytest.fixture
def queue(quorum_amqp_url: str) -> Iterator[Callable[..., str]]:
    """declare(**arguments) -> the name of a new quorum queue with these arguments too;
    deleted afterwards."""
    names: list[str] = []
    side = pika.BlockingConnection(pika.URLParameters(quorum_amqp_url))
    channel = side.channel()

    def declare(**arguments: Any) -> str:
        name = f"confirms.{uuid.uuid4().hex[:8]}"
        channel.queue_declare(name, durable=True, arguments={**QUORUM, **arguments})
        names.append(name)
        return name

    try:
        yield declare
    finally:
        for name in names:
            channel.queue_delete(name)
        side.close()


def test_a_confirmed_commit_returns_at_its_last_confirm(
    quorum_amqp_url: str, queue: Callable[..., str]
) -> None:
    """Before, the wait for confirms lasted its whole second whatever the broker answered
    (pika's `process_data_events` returns early only for a BlockingChannel's own events): a
    child whose prefetch was all in one batch, so that no delivery ended the wait, made one
    commit a second (after a RabbitMQ alarm: nothing completed for a minute)."""
    name = queue()
    broker = Broker([quorum_amqp_url], confirm=True)
    broker.connect()
    try:
        took = []
        for i in range(10):
            for j in range(3):
                broker.publish(name, f'{{"commit": {i}, "n": {j}}}'.encode(), exchange="")
            took.append(broker.commit())
        assert not broker.in_doubt
    finally:
        broker.close()
    took.sort()
    assert took[len(took) // 2] < 0.2, f"seconds per confirmed commit: {took}"
    side = pika.BlockingConnection(pika.URLParameters(quorum_amqp_url))
    try:
        assert side.channel().queue_declare(name, passive=True).method.message_count == 30
    finally:
        side.close()


def test_publishes_a_full_queue_refuses_are_sent_again_until_it_takes_them(
    quorum_amqp_url: str, queue: Callable[..., str]
) -> None:
    """A queue past its `x-max-length` with `x-overflow = reject-publish` nacks what it cannot
    take; the commit sends those again, NACK_PAUSE apart (not as fast as the broker answers),
    and returns once all are confirmed, here as a slow consumer makes room."""
    name = queue(**{"x-max-length": 1, "x-overflow": "reject-publish"})
    side = pika.BlockingConnection(pika.URLParameters(quorum_amqp_url))
    filler = side.channel()
    filler.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):  # a quorum queue's limit is soft
        for n in range(10):
            filler.basic_publish("", name, f"before {n}".encode())
    side.close()
    bodies = [f'{{"n": {n}}}'.encode() for n in range(3)]
    got: list[bytes] = []
    done = threading.Event()

    def consume() -> None:
        reader = pika.BlockingConnection(pika.URLParameters(quorum_amqp_url))
        try:
            channel = reader.channel()
            while not done.is_set():
                method, _props, body = channel.basic_get(name, auto_ack=True)
                if method is not None:
                    got.append(body)
                reader.sleep(0.2)  # the queue stays full meanwhile
        finally:
            reader.close()

    broker = Broker([quorum_amqp_url], confirm=True)
    broker.connect()
    thread = threading.Thread(target=consume, daemon=True)
    try:
        for body in bodies:
            broker.publish(name, body, exchange="")
        thread.start()
        start = time.monotonic()
        broker.commit()
        took = time.monotonic() - start
        resent = broker._seq - len(bodies)  # the channel's publishes: these and their resends
        assert not broker.in_doubt
        deadline = time.monotonic() + 10
        while sum(body in got for body in bodies) < len(bodies) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        if thread.is_alive():
            thread.join(10)
        broker.close()
    assert resent > 0, "the queue refused nothing: no test"
    # each publish once: a refused one was not enqueued
    assert sorted(b for b in got if b in bodies) == sorted(bodies), got
    assert resent <= len(bodies) * (took / NACK_PAUSE + 1), f"{resent} resends in {took:.2f} s"
