"""The commit written by hand (runeworker/adapters/amqp_commit.py) on a live RabbitMQ: it applies
what the transaction holds, leaves pika's channel as pika's own `tx_commit` leaves it, holds a
pika RPC asked for meanwhile until its commit-ok, and fails as pika's does when the broker
closes the channel or the connection is lost before the answer."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from runeworker.adapters.amqp import Broker
from runeworker.adapters.amqp_commit import commit
from runeworker.adapters.amqp_frames import FrameWriter
from runeworker.adapters.amqp_reader import FrameReader

WORK = f"commit-work.{os.getpid()}"
OUT = f"commit-out.{os.getpid()}"
PROPS = pika.BasicProperties(content_type="application/json", delivery_mode=2)


@pytest.fixture
def url(amqp_url: str) -> Iterator[str]:
    conn = BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    for q in (WORK, OUT):
        ch.queue_declare(q)
        ch.queue_purge(q)
    yield amqp_url
    for q in (WORK, OUT):
        ch.queue_delete(q)
    conn.close()


def depth(url: str, queue: str) -> int:
    conn = BlockingConnection(pika.URLParameters(url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def fill(url: str, n: int) -> None:
    conn = BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for i in range(n):
        ch.basic_publish("", WORK, f'{{"n": {i}}}'.encode(), PROPS)
    conn.close()


class Consumer:
    """A transactional channel consuming WORK through a FrameReader, with a FrameWriter."""

    def __init__(self, url: str, prefetch: int) -> None:
        self.conn = BlockingConnection(pika.URLParameters(url))
        self.ch: BlockingChannel = self.conn.channel()
        self.ch.tx_select()
        self.tags: list[int] = []
        number = self.ch.channel_number
        self.reader = FrameReader(
            self.conn._impl,
            self.ch,
            lambda _q, tag, _again, _body, _props: self.tags.append(tag),
            lambda: self.conn._request_channel_dispatch(-number),
        )
        self.writer = FrameWriter(self.ch._impl)
        self.ch.basic_qos(prefetch_count=prefetch)
        tag = self.ch._impl._generate_consumer_tag()
        self.reader.follow(tag, WORK)
        self.ch.basic_consume(WORK, lambda *_: None, consumer_tag=tag)

    def wait_for(self, n: int) -> None:
        for _ in range(100):
            if len(self.tags) >= n:
                return
            self.conn.process_data_events(time_limit=0.05)
        raise AssertionError(f"{len(self.tags)} of {n} deliveries came")

    def commit(self) -> None:
        commit(self.ch, self.writer, self.reader)

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()


@pytest.fixture
def no_pika_commit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """pika's own tx_commit counted and refused: a commit that goes through it fails."""
    calls: list[int] = []

    def refused(self: BlockingChannel) -> Any:
        calls.append(1)
        raise AssertionError("pika's tx_commit was used")

    monkeypatch.setattr(BlockingChannel, "tx_commit", refused)
    return calls


def test_a_commit_by_hand_applies_the_publishes_and_acks(
    url: str, no_pika_commit: list[int]
) -> None:
    fill(url, 3)
    c = Consumer(url, prefetch=3)
    try:
        c.wait_for(3)
        for i in range(2):
            c.writer.publish("", OUT, f"out {i}".encode(), PROPS)
        c.writer.ack(c.tags[0])
        c.writer.ack(c.tags[1])
        c.commit()
        assert depth(url, OUT) == 2  # visible from another connection once committed
        impl = c.ch._impl
        assert impl._blocking is None and not c.reader.awaiting_commit
        assert not no_pika_commit
    finally:
        c.close()
    assert depth(url, WORK) == 1  # the third, never acked, back in its queue


def test_what_is_not_committed_is_not_applied(url: str, no_pika_commit: list[int]) -> None:
    fill(url, 2)
    c = Consumer(url, prefetch=2)
    try:
        c.wait_for(2)
        c.writer.publish("", OUT, b"committed", PROPS)
        c.writer.ack(c.tags[0])
        c.commit()
        c.writer.publish("", OUT, b"never committed", PROPS)
        c.writer.ack(c.tags[1])
        c.conn.process_data_events(time_limit=0.2)  # sent, but the commit never comes
        assert depth(url, OUT) == 1
    finally:
        c.close()
    assert depth(url, OUT) == 1
    assert depth(url, WORK) == 1


def test_many_commits_then_pikas_own_calls_as_before(url: str, no_pika_commit: list[int]) -> None:
    fill(url, 40)
    c = Consumer(url, prefetch=10)
    try:
        done = 0
        while done < 40:
            c.wait_for(1)
            batch, c.tags = c.tags, []
            for tag in batch:
                c.writer.publish("", OUT, b"{}", PROPS)
                c.writer.ack(tag)
            c.commit()
            done += len(batch)
        frames = c.conn._impl.frames_received
        c.ch.basic_qos(prefetch_count=5)  # a pika RPC after the commits: answered
        assert c.conn._impl.frames_received == frames + 1
        c.ch.tx_rollback()  # and pika's own transaction calls on the same channel
        assert c.ch.is_open
    finally:
        c.close()
    assert depth(url, OUT) == 40
    assert depth(url, WORK) == 0


def test_a_pika_rpc_asked_while_waiting_goes_after_the_commit_ok(
    url: str, no_pika_commit: list[int]
) -> None:
    fill(url, 1)
    c = Consumer(url, prefetch=1)
    answered: list[Any] = []
    held: list[int] = []
    wait = c.ch._flush_output

    def wait_with_a_qos(*waiters: Callable[[], bool]) -> None:
        # RabbitMQ closes a channel that sends anything between tx.commit and commit-ok
        # (504 CHANNEL_ERROR): pika must hold this until the answer
        c.ch._impl.basic_qos(prefetch_count=7, callback=answered.append)
        held.append(len(c.ch._impl._blocked))
        wait(*waiters)

    try:
        c.wait_for(1)
        c.writer.publish("", OUT, b"{}", PROPS)
        c.writer.ack(c.tags[0])
        c.ch._flush_output = wait_with_a_qos
        c.commit()
        c.ch._flush_output = wait
        assert held == [1]  # queued while the commit waited
        for _ in range(50):  # (a wait may end early: the reader asked for it at a delivery)
            if answered:
                break
            c.conn.process_data_events(time_limit=0.05)
        assert len(answered) == 1 and isinstance(answered[0].method, pika.spec.Basic.QosOk)
        assert c.ch.is_open and c.ch._impl._blocking is None
    finally:
        c.close()
    assert depth(url, OUT) == 1


class Failed(NamedTuple):
    """A commit's error, and what was closed once it was raised."""

    error: Any
    channel_closed: bool
    connection_closed: bool


def failed_commit(url: str, by_hand: bool, trouble: Callable[[Consumer], None]) -> Failed:
    """The error of committing one delivery's transaction, which `trouble` sets up to fail; by
    hand (runeworker/adapters/amqp_commit.py) or by pika's own `tx_commit`."""
    fill(url, 1)
    c = Consumer(url, prefetch=1)
    try:
        c.wait_for(1)
        trouble(c)
        with pytest.raises(pika.exceptions.AMQPError) as caught:
            if by_hand:
                c.commit()
            else:
                c.ch.tx_commit()
        return Failed(caught.value, c.ch.is_closed, c.conn.is_closed)
    finally:
        c.close()


def to_a_missing_exchange(c: Consumer) -> None:
    """A publish to a missing exchange: RabbitMQ closes the channel (404) in place of the
    commit-ok."""
    c.writer.publish(f"missing.{os.getpid()}", OUT, b"{}", PROPS)


def cut_once_sent(c: Consumer) -> None:
    """A publish and an ack, and the connection cut (the socket shut) once they are sent."""
    c.writer.publish("", OUT, b"{}", PROPS)
    c.writer.ack(c.tags[0])
    wait = c.ch._flush_output

    def cut_then_wait(*waiters: Callable[[], bool]) -> None:
        c.conn._impl._transport._sock.shutdown(socket.SHUT_RDWR)
        wait(*waiters)

    c.ch._flush_output = cut_then_wait


def test_a_channel_the_broker_closes_fails_the_commit_as_pikas_does(url: str) -> None:
    pikas = failed_commit(url, False, to_a_missing_exchange)
    ours = failed_commit(url, True, to_a_missing_exchange)
    assert ours.channel_closed and pikas.channel_closed
    assert isinstance(ours.error, pika.exceptions.ChannelClosedByBroker)
    assert type(ours.error) is type(pikas.error)
    assert (ours.error.reply_code, ours.error.reply_text) == (
        pikas.error.reply_code,
        pikas.error.reply_text,
    )
    assert ours.error.reply_code == 404 and "missing." in ours.error.reply_text
    assert depth(url, OUT) == 0


def test_a_connection_lost_while_waiting_fails_the_commit_as_pikas_does(url: str) -> None:
    pikas = failed_commit(url, False, cut_once_sent)
    ours = failed_commit(url, True, cut_once_sent)
    assert ours.connection_closed and pikas.connection_closed
    assert type(ours.error) is type(pikas.error)
    assert isinstance(ours.error, pika.exceptions.AMQPConnectionError)
    # nothing was committed: a shut socket sends nothing more
    assert depth(url, OUT) == 0


def test_a_commit_on_a_closed_channel_is_refused_before_anything_is_sent(url: str) -> None:
    c = Consumer(url, prefetch=1)
    try:
        c.ch.close()
        sent = c.conn._impl.bytes_sent
        with pytest.raises(pika.exceptions.ChannelWrongStateError):
            c.commit()
        assert c.conn._impl.bytes_sent == sent
        assert not c.reader.awaiting_commit
    finally:
        c.close()


def test_without_a_reader_of_the_channel_the_commit_is_pikas(url: str) -> None:
    conn = BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.tx_select()
    writer = FrameWriter(ch._impl)
    calls: list[int] = []
    pikas = ch.tx_commit

    def counted() -> Any:
        calls.append(1)
        return pikas()

    ch.tx_commit = counted
    try:
        writer.publish("", OUT, b"{}", PROPS)
        commit(ch, writer, None)
        assert calls == [1]
        other = conn.channel()  # a reader of another channel is not this one's
        other_reader = FrameReader(conn._impl, other, lambda *_: None, lambda: None)
        writer.publish("", OUT, b"{}", PROPS)
        commit(ch, writer, other_reader)
        assert calls == [1, 1]
    finally:
        conn.close()
    assert depth(url, OUT) == 2


def test_the_commit_frame_is_pikas_bytes(url: str) -> None:
    conn = BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    impl = ch._impl
    out: list[bytes] = []
    emit = impl.connection._adapter_emit_data
    impl.connection._adapter_emit_data = out.append
    try:
        FrameWriter(impl).commit()
        ours = b"".join(out)
        assert ours == pika.frame.Method(impl.channel_number, pika.spec.Tx.Commit()).marshal()
        assert ours == struct.pack(">BHIHHB", 1, impl.channel_number, 4, 90, 20, 0xCE)
    finally:
        impl.connection._adapter_emit_data = emit
        conn.close()


def test_the_broker_commits_by_hand(url: str, no_pika_commit: list[int]) -> None:
    fill(url, 3)
    broker = Broker(url)
    broker.connect()
    try:
        broker.consume([WORK], prefetch=3)
        while len(broker.pending) < 3:
            broker.poll(0.05)
        for d in list(broker.pending):
            broker.publish(OUT, d.body, exchange="")
            broker.ack(d.tag)
        broker.commit()
        assert not no_pika_commit
    finally:
        broker.close()
    assert depth(url, OUT) == 3
    assert depth(url, WORK) == 0


def commit_ok(number: int) -> bytes:
    return pika.frame.Method(number, pika.spec.Tx.CommitOk()).marshal()


def test_the_commit_ok_and_what_follows_it_in_one_read(url: str) -> None:
    c = Consumer(url, prefetch=1)
    try:
        impl = c.ch._impl
        number = impl.channel_number
        consumer = next(iter(c.reader._consumers)).decode()
        body = b'{"after": "the commit-ok"}'
        props = pika.BasicProperties(content_type="application/json")
        delivery = b"".join(
            [
                pika.frame.Method(
                    number, pika.spec.Basic.Deliver(consumer, 7, False, "", WORK)
                ).marshal(),
                pika.frame.Header(number, len(body), props).marshal(),
                pika.frame.Body(number, body).marshal(),
            ]
        )
        impl._blocking = "Tx.Commit"  # as `commit` leaves it once the frame is sent
        c.reader.awaiting_commit = True
        frames = c.conn._impl.frames_received
        c.reader.on_data(commit_ok(number) + delivery)
        assert not c.reader.awaiting_commit and impl._blocking is None
        assert c.tags == [7]  # read in the same call, not left for the next read
        assert c.conn._impl.frames_received == frames + 4  # as pika counts them
    finally:
        c.close()


def test_the_commit_ok_of_a_commit_pika_sent_is_pikas(url: str) -> None:
    """With the reader installed, pika's own tx_commit (the fallback) gets its answer: the
    reader takes a commit-ok only while a commit by hand waits for it."""
    c = Consumer(url, prefetch=1)
    answered: list[Any] = []
    try:
        frames = c.conn._impl.frames_received
        c.ch._impl.tx_commit(answered.append)
        for _ in range(50):
            if answered:
                break
            c.conn.process_data_events(time_limit=0.05)
        assert len(answered) == 1 and isinstance(answered[0].method, pika.spec.Tx.CommitOk)
        assert c.conn._impl.frames_received == frames + 1
        assert c.ch._impl._blocking is None
    finally:
        c.close()


def test_a_commit_by_hand_counts_its_answer_once(url: str) -> None:
    c = Consumer(url, prefetch=1)
    try:
        frames = c.conn._impl.frames_received
        c.commit()  # an empty transaction: nothing but the commit-ok comes back
        assert c.conn._impl.frames_received == frames + 1
    finally:
        c.close()


def test_a_channel_closed_on_our_side_while_waiting_fails_the_commit(url: str) -> None:
    c = Consumer(url, prefetch=1)
    wait = c.ch._flush_output

    def closed_then_wait(*waiters: Callable[[], bool]) -> None:
        # the commit-ok left to pika (which waits for none), and the channel closed by pika
        # meanwhile without a broker's reason (as a connection's cleanup closes its channels)
        c.reader._number = -1
        reason = pika.exceptions.ChannelClosedByClient(200, "closed here")
        c.conn._impl.ioloop.call_later(0.2, lambda: c.ch._impl._on_close_meta(reason))
        wait(*waiters)

    try:
        c.ch._flush_output = closed_then_wait
        with pytest.raises(pika.exceptions.ChannelWrongStateError) as caught:
            c.commit()
        number = c.ch.channel_number
        assert str(caught.value) == f"channel {number} closed before the commit was answered"
        assert not c.reader.awaiting_commit
    finally:
        with contextlib.suppress(Exception):
            c.close()
