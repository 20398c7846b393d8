"""Deliveries `FrameReader` (runeworker/adapters/amqp_reader.py) reads are the ones pika's own
path hands on: the same bodies (empty, small, spanning several frames), headers, content
types, tags and redelivered flags, whatever sizes the socket gives the bytes in; frames it
does not read itself reach pika in order, and what it counts is what pika counts."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pika
import pika.exceptions
import pytest
import trustme
from pika.adapters.blocking_connection import BlockingConnection

from runeworker.adapters import amqp_reader
from runeworker.adapters.amqp import Broker, Delivery
from runeworker.adapters.amqp_reader import RECV_BYTES, FrameReader

QUEUE = f"reader.{os.getpid()}"
OTHER = f"reader-other.{os.getpid()}"
BIG = bytes(range(256)) * 1200  # 300 KB: three body frames at RabbitMQ's frame_max of 128 KB
MESSAGES: list[tuple[bytes, pika.BasicProperties]] = [
    (b"", pika.BasicProperties(content_type="application/json", delivery_mode=2)),
    (b"{}", pika.BasicProperties(delivery_mode=2)),
    (b'{"a": 1}' * 400, pika.BasicProperties(content_type="application/json")),
    (BIG, pika.BasicProperties(content_type="application/json", delivery_mode=2)),
    (
        b"{}",
        pika.BasicProperties(
            content_type="application/json",
            headers={"x-death": [{"count": 3, "queue": "q"}], "x-runeworker-resent": True},
        ),
    ),
    (b"plain", pika.BasicProperties(content_type="text/plain", headers={"n": 5})),
    (b"{}", pika.BasicProperties(content_type="application/json", delivery_mode=2)),
]


@pytest.fixture
def queues(amqp_url: str) -> Iterator[str]:
    conn = BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    for q in (QUEUE, OTHER):
        ch.queue_declare(q)
        ch.queue_purge(q)
    yield amqp_url
    ch.queue_delete(QUEUE)
    ch.queue_delete(OTHER)
    conn.close()


@pytest.fixture
def broker(queues: str) -> Iterator[Broker]:
    """A Broker consuming QUEUE (prefetch 10), its deliveries read by its reader."""
    consuming = Broker(queues)
    consuming.connect()
    consuming.consume([QUEUE], prefetch=10)
    yield consuming
    consuming.close()


def publish(url: str, queue: str, messages: list[tuple[bytes, pika.BasicProperties]]) -> None:
    conn = BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for body, props in messages:
        ch.basic_publish("", queue, body, props)
    conn.close()


def consumed(url: str, by_hand: bool) -> tuple[Broker, list[Any]]:
    """A broker consuming QUEUE and what it buffered of MESSAGES (the broker stays open:
    closing it hands the deliveries back, redelivered)."""
    broker = Broker(url)
    broker.read_by_hand = by_hand
    broker.connect()
    by_pika: list[bytes] = []
    if by_hand:  # every delivery read by the reader: pika's callback would see none
        broker._make_callback = lambda _q: lambda _c, _m, _p, body: by_pika.append(body)  # type: ignore[method-assign,assignment]
    broker.consume([QUEUE], prefetch=100)
    deadline = time.monotonic() + 30
    while len(broker.pending) < len(MESSAGES) and time.monotonic() < deadline:
        broker.poll(0.2)
    assert by_pika == []
    return broker, [_seen(d) for d in broker.pending]


def _seen(d: Delivery) -> tuple[Any, ...]:
    return (d.tag, d.queue, d.body, d.redelivered, d.headers, d.content_type)


def test_deliveries_are_pikas_whatever_the_reads(
    queues: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(queues, QUEUE, MESSAGES)
    broker, by_pika = consumed(queues, by_hand=False)
    broker.close()  # unacknowledged: each comes again, redelivered
    assert [(b, p.headers or {}, p.content_type) for b, p in MESSAGES] == [
        (body, headers, ctype) for _t, _q, body, _r, headers, ctype in by_pika
    ]
    assert [t for t, *_ in by_pika] == list(range(1, len(MESSAGES) + 1))
    again = [(t, q, body, True, h, c) for t, q, body, _r, h, c in by_pika]
    for recv_bytes in (RECV_BYTES, 7, 4093):  # the socket read this much at a time
        monkeypatch.setattr(amqp_reader, "RECV_BYTES", recv_bytes)
        broker, by_hand = consumed(queues, by_hand=True)
        assert recv_bytes == broker._connection()._impl._transport._MAX_RECV_BYTES
        assert by_hand == again, recv_bytes
        broker.close()


def test_the_socket_is_read_64_kb_at_a_time(broker: Broker) -> None:
    assert broker._connection()._impl._transport._MAX_RECV_BYTES == RECV_BYTES


def test_a_delivery_ends_the_wait_of_poll(queues: str, broker: Broker) -> None:
    broker.poll(0)
    publish(queues, QUEUE, MESSAGES[1:2])
    started = time.monotonic()
    broker.poll(20.0)
    assert len(broker.pending) == 1
    assert time.monotonic() - started < 15.0  # woken by the delivery, not the time limit


def test_deliveries_to_consumers_it_was_not_told_of_go_through_pika(
    queues: str, broker: Broker
) -> None:
    seen: list[bytes] = []
    broker.channel.basic_consume(OTHER, lambda _c, _m, _p, body: seen.append(body))
    publish(queues, OTHER, MESSAGES[:3])
    publish(queues, QUEUE, MESSAGES[6:7])
    deadline = time.monotonic() + 30
    while (len(seen) < 3 or not broker.pending) and time.monotonic() < deadline:
        broker.poll(0.2)
    assert seen == [body for body, _p in MESSAGES[:3]]
    assert [d.queue for d in broker.pending] == [QUEUE]


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def _delivery_frames(channel: int, consumer_tag: str, tag: int, body: bytes) -> list[bytes]:
    """basic.deliver, its content header (content type text/plain, one header) and bodies of
    at most 10 bytes: the frames RabbitMQ would send."""
    method = pika.frame.Method(
        channel,
        pika.spec.Basic.Deliver(consumer_tag, tag, True, "", QUEUE),
    ).marshal()
    props = pika.BasicProperties(content_type="text/plain", headers={"k": "v"})
    header = pika.frame.Header(channel, len(body), props).marshal()
    bodies = [_frame(3, channel, body[i : i + 10]) for i in range(0, len(body), 10)]
    return [method, header, *bodies]


def _feed(broker: Broker, data: bytes, step: int) -> list[tuple[Any, ...]]:
    reader = broker._reader
    assert reader is not None
    for i in range(0, len(data), step):
        reader.on_data(data[i : i + step])
    broker.poll(0)  # what pika read is handed on by its BlockingChannel
    got = [_seen(d) for d in broker.pending]
    broker.pending.clear()
    return got


def test_frames_split_or_interleaved_give_the_same_delivery(broker: Broker) -> None:
    """Crafted frames on a live connection: read by the reader in one piece, byte by byte,
    and with a heartbeat between the method frame and its content (pika's to assemble)."""
    number = broker.channel.channel_number
    consumer = broker._tags[0]
    frames = _delivery_frames(number, consumer, 999, b"0123456789abcdefghij-tail")
    expected = [(999, QUEUE, b"0123456789abcdefghij-tail", True, {"k": "v"}, "text/plain")]
    impl = broker._connection()._impl
    before = impl.bytes_received, impl.frames_received
    assert _feed(broker, b"".join(frames), len(b"".join(frames))) == expected
    assert _feed(broker, b"".join(frames), 1) == expected
    heartbeat = _frame(8, 0, b"")
    interleaved = b"".join([frames[0], heartbeat, *frames[1:]])
    assert _feed(broker, interleaved, 5) == expected
    total = 3 * len(b"".join(frames)) + len(heartbeat)
    assert impl.bytes_received - before[0] == total
    assert impl.frames_received - before[1] == 3 * len(frames) + 1


def test_deliveries_keep_their_order_when_pika_reads_one(broker: Broker) -> None:
    """A delivery left to pika waits for the BlockingChannel's dispatch: the ones after it
    wait with it rather than overtake it."""
    reader = broker._reader
    assert reader is not None
    number, consumer = broker.channel.channel_number, broker._tags[0]
    first = _delivery_frames(number, consumer, 1, b"first")
    interleaved = b"".join([first[0], _frame(8, 0, b""), *first[1:]])
    reader.on_data(interleaved)
    reader.on_data(b"".join(_delivery_frames(number, consumer, 2, b"second")))
    assert not broker.pending  # both held by pika until its dispatch
    broker.poll(0)
    assert [d.body for d in broker.pending] == [b"first", b"second"]
    broker.pending.clear()
    reader.on_data(b"".join(_delivery_frames(number, consumer, 3, b"third")))
    assert [d.body for d in broker.pending] == [b"third"]  # read at once again


def test_a_consumer_forgotten_leaves_its_deliveries_to_pika(broker: Broker) -> None:
    """What `stop_consuming` does before it cancels: the reader leaves the consumer's
    deliveries to pika (which rejects them once the cancel is sent)."""
    reader = broker._reader
    assert reader is not None
    consumer = broker._tags[0]
    reader.forget()
    number = broker.channel.channel_number
    reader.on_data(b"".join(_delivery_frames(number, consumer, 5, b"{}")))
    broker.poll(0)
    # pika's path: the BlockingChannel's callback, as before the reader was told of it
    assert [d.tag for d in broker.pending] == [5]


def test_a_consumer_the_broker_cancels_leaves_the_others_to_pika(queues: str) -> None:
    """A deleted queue: RabbitMQ cancels its consumer (basic.cancel), which pika handles; the
    reader then leaves every delivery to pika, and the other queue's still arrive, in order."""
    broker = Broker(queues)
    broker.connect()
    conn = BlockingConnection(pika.URLParameters(queues))
    try:
        broker.consume([QUEUE, OTHER], prefetch=10)
        reader = broker._reader
        assert reader is not None
        conn.channel().queue_delete(QUEUE)
        publish(queues, OTHER, MESSAGES[:3])
        deadline = time.monotonic() + 30
        while len(broker.pending) < 3 and time.monotonic() < deadline:
            broker.poll(0.2)
        assert [(d.queue, d.body) for d in broker.pending] == [(OTHER, b) for b, _ in MESSAGES[:3]]
        assert reader._consumers == {}
    finally:
        broker.close()
        conn.channel().queue_declare(QUEUE)
        conn.close()


def test_a_wrong_frame_end_is_refused_like_pika(broker: Broker) -> None:
    reader = broker._reader
    assert isinstance(reader, FrameReader)
    frames = _delivery_frames(broker.channel.channel_number, broker._tags[0], 1, b"{}")
    with pytest.raises(pika.exceptions.InvalidFrameError):
        reader.on_data(frames[0][:-1] + b"\x00")


class _TlsFront:
    """TLS on a loopback port, the plain bytes forwarded to RabbitMQ: a broker with a TLS
    listener (one thread per connection, pumping both ways)."""

    def __init__(self, context: ssl.SSLContext, upstream: tuple[str, int]) -> None:
        self.context = context
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError), contextlib.ExitStack() as stack:
            tls = stack.enter_context(self.context.wrap_socket(client, server_side=True))
            plain = stack.enter_context(socket.create_connection(self.upstream))
            while True:
                ready = [tls] if tls.pending() else select.select([tls, plain], [], [], 1)[0]
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (plain if sock is tls else tls).sendall(data)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def tls_url(queues: str, tmp_path: Path) -> Iterator[str]:
    """An amqps:// URL of the test vhost, through a TLS front whose CA the URL names."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    parts = urlsplit(queues)
    front = _TlsFront(server, (parts.hostname or "127.0.0.1", parts.port or 5672))
    options = quote(repr({"ca_certs": str(ca_file), "server_hostname": "127.0.0.1"}))
    yield (
        f"amqps://{parts.username}:{parts.password}@127.0.0.1:{front.port}{parts.path}"
        f"?ssl_options={options}"
    )
    front.close()


def test_over_tls_the_reader_reads_and_pika_sends(queues: str, tls_url: str) -> None:
    """On a TLS connection the reader reads the deliveries (the socket gives them one TLS
    record at a time) and the writer leaves pika's sends as they are."""
    publish(queues, QUEUE, MESSAGES)
    broker, got = consumed(tls_url, by_hand=True)
    try:
        transport = broker._connection()._impl._transport
        assert type(transport).__name__ == "_AsyncSSLTransport"
        assert [(body, headers, ctype) for _t, _q, body, _r, headers, ctype in got] == [
            (b, p.headers or {}, p.content_type) for b, p in MESSAGES
        ]
        for d in list(broker.pending):
            broker.publish(OTHER, d.body, exchange="")
            broker.ack(d.tag)
        broker.pending.clear()
        broker.commit()
        assert not getattr(transport, "_runeworker_joins", False)
    finally:
        broker.close()
    conn = BlockingConnection(pika.URLParameters(queues))
    ch = conn.channel()
    assert [ch.basic_get(OTHER, auto_ack=True)[2] for _ in MESSAGES] == [b for b, _ in MESSAGES]
    assert ch.queue_declare(QUEUE, passive=True).method.message_count == 0  # the acks applied
    conn.close()
