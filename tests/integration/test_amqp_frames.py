"""The frames `FrameWriter` (runeworker/adapters/amqp_frames.py) writes are the bytes pika's own
`basic_publish` and `basic_ack` write, and RabbitMQ takes them: bodies empty, small and longer
than a frame, properties with and without headers, one channel after another."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from runeworker.adapters.amqp import Broker
from runeworker.adapters.amqp_frames import _JOINED_MAX, FrameWriter, joined

QUEUE = f"frames.{os.getpid()}"


@pytest.fixture
def channel(amqp_url: str) -> Iterator[BlockingChannel]:
    # a small frame_max, so that a few KB of body span several frames
    params = pika.URLParameters(amqp_url)
    params.frame_max = 4096
    conn = BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare(QUEUE, auto_delete=True)
    yield ch
    if conn.is_open:
        conn.close()


def captured(ch: BlockingChannel, write: Any, *args: Any, **kwargs: Any) -> bytes:
    """What `write(*args, **kwargs)` hands to the connection's transport."""
    conn = ch._impl.connection
    out: list[bytes] = []
    emit = conn._adapter_emit_data
    conn._adapter_emit_data = out.append
    try:
        write(*args, **kwargs)
    finally:
        conn._adapter_emit_data = emit
    return b"".join(out)


PROPS = [
    pika.BasicProperties(content_type="application/json", delivery_mode=2),
    pika.BasicProperties(delivery_mode=2),
    pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        headers={"x-runeworker-resent": True, "x-death": [{"count": 3, "queue": "q"}]},
    ),
]
BODIES = [b"", b"{}", b"x" * 4088, b"y" * 4089, bytes(range(256)) * 50]


@pytest.mark.parametrize("props", PROPS, ids=["json", "no-type", "headers"])
def test_publish_frames_are_pikas_bytes(channel: BlockingChannel, props: Any) -> None:
    impl = channel._impl
    writer = FrameWriter(impl)
    for body in BODIES:
        for exchange, key in (("", ""), ("", QUEUE), ("rune", "workflow.node.status")):
            ours = captured(channel, writer.publish, exchange, key, body, props)
            pikas = captured(
                channel, impl.basic_publish, exchange, key, body, props, mandatory=True
            )
            assert ours == pikas, (exchange, key, len(body))
    assert len(writer._headers) == (0 if props.headers else 1)  # kept once by value
    assert len(writer._methods) == 3  # one per exchange and routing key


def test_properties_that_differ_per_message_are_not_all_kept(channel: BlockingChannel) -> None:
    impl = channel._impl
    writer = FrameWriter(impl)
    for i in range(100):
        props = pika.BasicProperties(delivery_mode=2, message_id=f"m{i}")
        ours = captured(channel, writer.publish, "", QUEUE, b"{}", props)
        assert ours == captured(
            channel, impl.basic_publish, "", QUEUE, b"{}", props, mandatory=True
        )
    assert len(writer._headers) == 32


def test_routing_keys_past_the_kept_ones_are_still_pikas_bytes(channel: BlockingChannel) -> None:
    impl = channel._impl
    writer = FrameWriter(impl)
    for i in range(300):
        key = f"{QUEUE}.{i}"
        ours = captured(channel, writer.publish, "", key, b"{}", PROPS[0])
        assert ours == captured(
            channel, impl.basic_publish, "", key, b"{}", PROPS[0], mandatory=True
        )
    assert len(writer._methods) == 256


def test_each_method_frame_and_content_header_is_marshalled_once(
    channel: BlockingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's point: pika marshals a routing key's method frame and a set of properties'
    content header the first time only; the later publishes reuse the bytes kept."""
    writer = FrameWriter(channel._impl)
    marshalled: list[str] = []
    for kind in (pika.frame.Method, pika.frame.Header):

        def counted(self: Any, marshal: Any = kind.marshal) -> bytes:
            marshalled.append(type(self).__name__)
            return bytes(marshal(self))

        monkeypatch.setattr(kind, "marshal", counted)
    sent = [captured(channel, writer.publish, "", QUEUE, body, PROPS[0]) for body in BODIES]
    assert marshalled == ["Method", "Header"]
    monkeypatch.undo()
    impl = channel._impl
    assert sent == [
        captured(channel, impl.basic_publish, "", QUEUE, body, PROPS[0], mandatory=True)
        for body in BODIES
    ]


def test_ack_frames_are_pikas_bytes(channel: BlockingChannel) -> None:
    writer = FrameWriter(channel._impl)
    for tag in (1, 2, 255, 65536, 2**40 + 7):
        ours = captured(channel, writer.ack, tag)
        assert ours == captured(channel, channel._impl.basic_ack, tag)


def test_rabbitmq_delivers_what_the_writer_published(channel: BlockingChannel) -> None:
    writer = FrameWriter(channel._impl)
    channel.tx_select()
    for body in BODIES:
        writer.publish("", QUEUE, body, PROPS[2])
    channel.tx_commit()
    got = []
    for _ in BODIES:
        method, props, body = channel.basic_get(QUEUE)
        assert method is not None
        got.append((body, props.content_type, props.headers))
        writer.ack(method.delivery_tag)
    channel.tx_commit()
    assert got == [(b, "application/json", PROPS[2].headers) for b in BODIES]
    assert channel.queue_declare(QUEUE, passive=True).method.message_count == 0
    # and the acks were applied: nothing comes back when the channel closes
    channel.close()


def test_what_is_queued_goes_out_in_one_send(channel: BlockingChannel) -> None:
    """Fifty publishes and the commit: one `send` of the socket (pika sends one per buffer),
    and RabbitMQ takes every message, in order. Larger ones are joined into buffers of about
    128 KB at most."""
    writer = FrameWriter(channel._impl)
    transport = channel._impl.connection._transport
    sends: list[int] = []
    send = transport._sigint_safe_send

    def counted(sock: Any, data: bytes) -> int:
        sends.append(len(data))
        return int(send(sock, data))

    transport._sigint_safe_send = counted
    channel.tx_select()
    sends.clear()
    writer.publish("", QUEUE, b"alone", PROPS[0])  # its buffer and the commit's: one send
    channel.tx_commit()
    assert len(sends) == 1
    assert channel.basic_get(QUEUE, auto_ack=True)[2] == b"alone"
    sends.clear()
    bodies = [str(i).encode() * (i + 1) for i in range(50)]
    for body in bodies:
        writer.publish("", QUEUE, body, PROPS[0])
    channel.tx_commit()
    assert len(sends) == 1
    assert [channel.basic_get(QUEUE, auto_ack=True)[2] for _ in bodies] == bodies
    sends.clear()
    large = [bytes([i]) * 40_000 for i in range(10)]
    for body in large:
        writer.publish("", QUEUE, body, PROPS[0])
    channel.tx_commit()
    assert 3 <= len(sends) < 20 and max(sends) < _JOINED_MAX + 41_000
    assert [channel.basic_get(QUEUE, auto_ack=True)[2] for _ in large] == large


def test_buffers_are_joined_into_pieces_of_about_128_kb() -> None:
    most = _JOINED_MAX
    assert joined([]) == []
    assert joined([b"a", b"b", b"c"]) == [b"abc"]
    # a piece ends with the buffer that brings it to `most` bytes or more
    a, b, c = b"a" * (most - 1), b"b", b"c"
    assert joined([a, b, c]) == [a + b, c]
    assert joined([a[1:], b, c, b"d"]) == [a[1:] + b + c, b"d"]
    assert joined([b"x" * most, a, b, c]) == [b"x" * most, a + b, c]
    assert joined([b"x" * (3 * most), c]) == [b"x" * (3 * most), c]  # a buffer is never cut
    assert joined([b"12", b"34", b"5"], most=2) == [b"12", b"34", b"5"]


def test_the_sends_are_joined_once_per_connection(channel: BlockingChannel) -> None:
    """A second writer on the connection (another channel, a channel opened again) finds the
    transport's sends joined already and leaves them so."""
    FrameWriter(channel._impl)
    transport = channel._impl.connection._transport
    produce = transport._produce
    FrameWriter(channel.connection.channel()._impl)
    assert transport._produce is produce


def test_a_closed_channel_refuses_like_pika(channel: BlockingChannel) -> None:
    writer = FrameWriter(channel._impl)
    number = channel.channel_number
    channel.close()
    refused = f"channel {number} is not open; cannot publish or ack"
    with pytest.raises(pika.exceptions.ChannelWrongStateError, match=refused):
        writer.publish("", QUEUE, b"{}", PROPS[0])
    with pytest.raises(pika.exceptions.ChannelWrongStateError, match=refused):
        writer.ack(1)


def test_a_closed_connection_refuses_like_pika(channel: BlockingChannel) -> None:
    """The channel object still says open when the connection under it is closing."""
    impl = channel._impl
    writer = FrameWriter(impl)
    impl.connection._set_connection_state(impl.connection.CONNECTION_CLOSING)
    try:
        with pytest.raises(
            pika.exceptions.ConnectionWrongStateError, match=r"^connection to RabbitMQ is not open$"
        ):
            writer.publish("", QUEUE, b"{}", PROPS[0])
    finally:
        impl.connection._set_connection_state(impl.connection.CONNECTION_OPEN)


def test_the_broker_writes_on_each_new_channel(amqp_url: str) -> None:
    """A reconnect opens a new channel: the writer follows it (channel number, frame size)."""
    broker = Broker([amqp_url])
    broker.connect()
    try:
        first = broker._queued()
        assert broker._queued() is first
        broker.close()
        broker.connect()
        second = broker._queued()
        assert second is not first and second.channel is broker.channel._impl
    finally:
        broker.close()
