"""Crafted byte streams read by `FrameReader` (runeworker/adapters/amqp_reader.py) and by pika's
own reading, side by side, each on a live consuming connection: the deliveries handed on, the
error raised and the bytes and frames counted must be the same. Well-formed deliveries must
also be read by the reader at once (in `pending` before any `poll`); malformed ones (a frame cut
short, a content header or body frame that is not what must follow, a frame end missing) are
pika's to refuse, the way pika refuses them.

The frames are the ones AMQP 0-9-1 describes (section 4.2.3: type, channel, payload size,
payload, frame-end 0xCE; 4.2.6: a method, its content header, body frames adding up to the
header's body size), made with pika's own marshalling where they are well-formed."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingConnection
from pika.spec import Basic, BasicProperties

from runeworker.adapters.amqp import Broker
from runeworker.adapters.amqp_reader import FrameReader

QUEUE = "reader-streams"
PROPS = BasicProperties(content_type="application/json", delivery_mode=2)
HEARTBEAT = struct.pack(">BHI", 8, 0, 0) + b"\xce"


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def deliver(
    channel: int, consumer: str, tag: int = 1, redelivered: bool = False, exchange: str = ""
) -> bytes:
    method = Basic.Deliver(consumer, tag, redelivered, exchange, QUEUE)
    return pika.frame.Method(channel, method).marshal()


def header(channel: int, size: int, props: BasicProperties = PROPS) -> bytes:
    return pika.frame.Header(channel, size, props).marshal()


def delivery(
    channel: int,
    consumer: str,
    tag: int,
    body: bytes,
    props: BasicProperties = PROPS,
    piece: int = 10,
    redelivered: bool = False,
) -> bytes:
    """One whole delivery, its body in frames of at most `piece` bytes."""
    bodies = [frame(3, channel, body[i : i + piece]) for i in range(0, len(body), piece)]
    return b"".join(
        [deliver(channel, consumer, tag, redelivered), header(channel, len(body), props), *bodies]
    )


def delivery_payload(consumer: str, tag: int) -> bytes:
    """The payload of a basic.deliver method frame (class 60, method 60) up to its bits."""
    name = consumer.encode()
    return struct.pack(">HHB", 60, 60, len(name)) + name + struct.pack(">QB", tag, 0)


# A case: the reads the socket gives, made for a channel number and a consumer tag.
Reads = Callable[[int, str], list[bytes]]


WELL_FORMED: dict[str, Reads] = {
    "empty body, nothing after": lambda n, c: [delivery(n, c, 1, b"")],
    "one-byte body": lambda n, c: [delivery(n, c, 1, b"1")],
    "two body frames": lambda n, c: [delivery(n, c, 1, b"0123456789abcde")],
    "a body frame of 0 bytes inside": lambda n, c: [
        deliver(n, c) + header(n, 4) + frame(3, n, b"ab") + frame(3, n, b"") + frame(3, n, b"cd")
    ],
    "redelivered": lambda n, c: [delivery(n, c, 1, b"{}", redelivered=True)],
    "no properties at all": lambda n, c: [delivery(n, c, 1, b"{}", BasicProperties())],
    "headers": lambda n, c: [
        delivery(n, c, 1, b"{}", BasicProperties(headers={"x-death": [{"count": 2}]}))
    ],
    "an exchange named": lambda n, c: [
        deliver(n, c, 1, exchange="rune.exchange") + header(n, 2) + frame(3, n, b"{}")
    ],
    # RabbitMQ closing the connection: pika answers it; what follows is read as pika would
    "connection.close, then a delivery": lambda n, c: [
        pika.frame.Method(0, pika.spec.Connection.Close(320, "CONNECTION_FORCED", 0, 0)).marshal()
        + delivery(n, c, 1, b"{}")
    ],
    "two, then half of a third": lambda n, c: [
        delivery(n, c, 1, b"one") + delivery(n, c, 2, b"two") + delivery(n, c, 3, b"three")[:30],
        delivery(n, c, 3, b"three")[30:],
    ],
    "read a byte at a time": lambda n, c: [
        bytes([b]) for b in delivery(n, c, 1, b"0123456789abcdefghij-tail")
    ],
}

LEFT_TO_PIKA: dict[str, Reads] = {
    # basic.deliver cut short: pika fails to decode it
    "deliver ends after the consumer tag": lambda n, c: [
        frame(1, n, delivery_payload(c, 1)[:-9]) + header(n, 2) + frame(3, n, b"{}")
    ],
    "deliver ends after the delivery tag": lambda n, c: [
        frame(1, n, delivery_payload(c, 1)[:-1]) + header(n, 2) + frame(3, n, b"{}")
    ],
    "deliver ends after the delivery tag, nothing after it": lambda n, c: [
        frame(1, n, delivery_payload(c, 1)[:-1])
    ],
    "deliver without exchange and routing key": lambda n, c: [
        frame(1, n, delivery_payload(c, 1)) + header(n, 2) + frame(3, n, b"{}")
    ],
    "deliver without routing key": lambda n, c: [
        frame(1, n, delivery_payload(c, 1) + b"\x00") + header(n, 2) + frame(3, n, b"{}")
    ],
    # (pika reads the bytes there are: a delivery, by pika's path)
    "deliver whose routing key is cut short": lambda n, c: [
        frame(1, n, delivery_payload(c, 1) + b"\x00\x05abcd") + header(n, 2) + frame(3, n, b"{}")
    ],
    # the content header
    "content header of 0 bytes": lambda n, c: [deliver(n, c) + frame(2, n, b"")],
    "content header of 10 bytes": lambda n, c: [
        deliver(n, c) + frame(2, n, struct.pack(">HHQ", 60, 0, 2)[:10]) + frame(3, n, b"{}")
    ],
    "content header without its property flags": lambda n, c: [
        deliver(n, c) + frame(2, n, struct.pack(">HHQ", 60, 0, 2)) + frame(3, n, b"{}")
    ],
    "content header cut inside its property list": lambda n, c: [
        deliver(n, c) + frame(2, n, header(n, 2)[7:-2]) + frame(3, n, b"{}")
    ],
    "content header whose headers table holds an unknown field type": lambda n, c: [
        deliver(n, c)
        + frame(2, n, struct.pack(">HHQHI", 60, 0, 2, 0x2000, 4) + b"\x01kZ\x00")
        + frame(3, n, b"{}")
    ],
    "content header on another channel": lambda n, c: [
        deliver(n, c) + header(n + 1, 2) + frame(3, n, b"{}")
    ],
    "body frame where the content header belongs": lambda n, c: [
        deliver(n, c) + frame(3, n, b"\x00\x3c\x00\x00" + bytes(12)) + frame(3, n, b"{}")
    ],
    "content header of class 90": lambda n, c: [
        deliver(n, c) + frame(2, n, struct.pack(">HHQH", 90, 0, 2, 0)) + frame(3, n, b"{}")
    ],
    "content header without its frame end": lambda n, c: [
        deliver(n, c) + header(n, 2)[:-1] + b"\x00" + frame(3, n, b"{}")
    ],
    # the body frames
    "body frame on another channel": lambda n, c: [
        deliver(n, c) + header(n, 2) + frame(3, n + 1, b"{}")
    ],
    "body frame longer than the body": lambda n, c: [
        deliver(n, c) + header(n, 2) + frame(3, n, b"{}!")
    ],
    "body frame without its frame end": lambda n, c: [
        deliver(n, c) + header(n, 2) + frame(3, n, b"{}")[:-1] + b"\x00"
    ],
    "method frame without its frame end": lambda n, c: [deliver(n, c)[:-1] + b"\x00"],
    # a tx.commit-ok no commit sent by hand waits for (runeworker/adapters/amqp_commit.py)
    "a commit-ok nothing waits for": lambda n, c: [frame(1, n, struct.pack(">HH", 90, 21))],
    "a commit-ok with a byte too many": lambda n, c: [frame(1, n, struct.pack(">HHB", 90, 21, 0))],
    # a second basic.deliver while pika assembles the first (its content comes after both)
    "a delivery begun by pika, another, then the first one's content": lambda n, c: [
        deliver(n, c, 1) + HEARTBEAT,
        delivery(n, c, 2, b"second"),
        header(n, 5) + frame(3, n, b"first"),
    ],
}


@dataclass(frozen=True)
class Outcome:
    """What a stream left: deliveries (tag, body, redelivered, headers, content type), the
    error raised (type and message), and the bytes (when no error was: the reader counts them
    as they come, pika each frame once whole) and frames counted."""

    deliveries: list[tuple[Any, ...]]
    error: str
    counted: tuple[int, int]


@pytest.fixture
def vhost(amqp_url: str) -> Iterator[str]:
    conn = BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.queue_declare(QUEUE)
    ch.queue_purge(QUEUE)
    yield amqp_url
    ch.queue_delete(QUEUE)
    conn.close()


@dataclass
class Consuming:
    """A Broker consuming QUEUE, fed crafted bytes in place of its socket's."""

    broker: Broker
    feed: Callable[[bytes], None]
    woken: list[int]

    @property
    def reader(self) -> FrameReader:
        assert self.broker._reader is not None
        return self.broker._reader


def consuming(url: str, by_hand: bool) -> Consuming:
    broker = Broker(url)
    broker.read_by_hand = by_hand
    broker.connect()
    broker.consume([QUEUE], prefetch=10)
    impl = broker._connection()._impl
    woken: list[int] = []
    if by_hand:
        reader = broker._reader
        assert reader is not None
        wake = reader._wake

        def counted_wake() -> None:
            woken.append(1)
            wake()

        reader._wake = counted_wake
        return Consuming(broker, reader.on_data, woken)
    return Consuming(broker, impl._on_data_available, woken)


def outcome(url: str, by_hand: bool, reads: Reads, at_once: bool | None = None) -> Outcome:
    """What `reads` leave on a fresh consuming connection; `at_once`: whether the deliveries
    must be (True) or none may be (False) in `pending` before pika's dispatch."""
    c = consuming(url, by_hand)
    broker = c.broker
    impl = broker._connection()._impl
    before = impl.bytes_received, impl.frames_received
    error = ""
    try:
        for data in reads(broker.channel.channel_number, broker._tags[0]):
            c.feed(data)
    except Exception as exc:  # compared with what pika raised
        error = f"{type(exc).__name__}: {exc}"
    if at_once:  # read by the reader: in `pending` before pika's dispatch
        assert broker.pending and not error, "not read at once"
        assert c.woken, "poll's wait not ended"
    elif at_once is False:
        assert not broker.pending, "read by the reader, not left to pika"
    if not error:
        try:
            broker.poll(0)  # what pika read is handed on by its BlockingChannel
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    got = [(d.tag, d.body, d.redelivered, d.headers, d.content_type) for d in broker.pending]
    counted = (0 if error else impl.bytes_received - before[0], impl.frames_received - before[1])
    with contextlib.suppress(Exception):  # a connection a malformed stream left half-read
        broker.close()
    return Outcome(got, error, counted)


@pytest.mark.parametrize("name", list(WELL_FORMED))
def test_a_well_formed_stream_is_read_at_once_and_as_pika_reads_it(vhost: str, name: str) -> None:
    by_pika = outcome(vhost, False, WELL_FORMED[name])
    assert by_pika.deliveries and not by_pika.error
    assert outcome(vhost, True, WELL_FORMED[name], at_once=True) == by_pika


@pytest.mark.parametrize("name", list(LEFT_TO_PIKA))
def test_what_the_reader_leaves_to_pika_ends_as_without_the_reader(vhost: str, name: str) -> None:
    by_pika = outcome(vhost, False, LEFT_TO_PIKA[name])
    assert outcome(vhost, True, LEFT_TO_PIKA[name], at_once=False) == by_pika


def test_the_reads_are_counted_and_only_deliveries_end_polls_wait(vhost: str) -> None:
    """A heartbeat alone is counted (8 bytes, one frame) and does not end `poll`'s wait; two
    deliveries in one read end it once."""
    c = consuming(vhost, True)
    try:
        impl = c.broker._connection()._impl
        before = impl.bytes_received, impl.frames_received
        c.feed(HEARTBEAT)
        assert (impl.bytes_received - before[0], impl.frames_received - before[1]) == (8, 1)
        assert c.woken == []
        n, consumer = c.broker.channel.channel_number, c.broker._tags[0]
        c.feed(delivery(n, consumer, 1, b"a") + delivery(n, consumer, 2, b"b"))
        assert c.woken == [1]
        assert [d.body for d in c.broker.pending] == [b"a", b"b"]
    finally:
        c.broker.close()


def test_properties_without_headers_are_decoded_once_by_their_bytes(vhost: str) -> None:
    """Deliveries whose content headers carry the same properties without headers share one
    decoded `BasicProperties`, kept by the property bytes (at most 64 sets of them);
    properties with headers are decoded for each delivery, so that no two deliveries share
    a headers table."""
    c = consuming(vhost, True)
    seen: list[BasicProperties] = []
    reader = c.reader
    deliver_to = reader._deliver

    def deliver_seen(queue: str, tag: int, again: bool, body: bytes, p: BasicProperties) -> None:
        seen.append(p)
        deliver_to(queue, tag, again, body, p)

    reader._deliver = deliver_seen
    try:
        n, consumer = c.broker.channel.channel_number, c.broker._tags[0]
        c.feed(delivery(n, consumer, 1, b"{}") + delivery(n, consumer, 2, b""))
        assert seen[0] is seen[1]
        flags_and_list = header(n, 0)[7 + 12 : -1]  # past the head, class, weight and body size
        assert list(reader._properties) == [flags_and_list]
        with_headers = BasicProperties(headers={"k": "v"})
        c.feed(b"".join(delivery(n, consumer, t, b"{}", with_headers) for t in (3, 4)))
        assert seen[2] is not seen[3]
        assert c.broker.pending[2].headers == c.broker.pending[3].headers == {"k": "v"}
        assert c.broker.pending[2].headers is not c.broker.pending[3].headers
        assert len(reader._properties) == 1
        for i in range(70):
            props = BasicProperties(content_type=f"type/{i}")
            c.feed(delivery(n, consumer, 10 + i, b"{}", props))
        assert len(reader._properties) == 64
        types = [d.content_type for d in list(c.broker.pending)[-70:]]
        assert types == [f"type/{i}" for i in range(70)]
    finally:
        c.broker.close()


def test_a_body_that_looks_like_a_cancel_leaves_the_consumers_followed(vhost: str) -> None:
    """Only a method frame on the channel is taken for a basic.cancel: a body frame whose first
    bytes read like one (class 60, method 30) changes nothing."""
    c = consuming(vhost, True)
    try:
        n, consumer = c.broker.channel.channel_number, c.broker._tags[0]
        cancel_like = b"\x00\x3c\x00\x1e" + bytes(8)
        c.feed(deliver(n, consumer, 1) + HEARTBEAT)  # pika assembles this one
        c.feed(header(n, len(cancel_like)) + frame(3, n, cancel_like))
        c.broker.poll(0)
        assert [d.body for d in c.broker.pending] == [cancel_like]
        assert c.reader._consumers == {consumer.encode(): QUEUE}
    finally:
        c.broker.close()
