"""basic.publish and basic.ack frames, marshalled with their constant parts kept.

pika marshals every publish from objects: a `Basic.Publish` method, the `BasicProperties` of
the content header, a frame object per part. That costs about 20 µs of CPU per publish on the
project's VM, and a worker publishes three or four messages per node (deploy/PERFORMANCE.md,
"Issue 16: publishing without pika's per-message marshalling"). A worker publishes to a few routing
keys with a few sets of properties, so `FrameWriter` has pika marshal each method frame and
each content header once, keeps the bytes, and per message only packs the body size into the
kept header and wraps the body in body frames (AMQP 0-9-1, section 4.2.3: type, channel,
payload size, payload, frame-end 0xCE; a body longer than the negotiated frame size minus 8
is split). A basic.ack and a tx.commit are each one fixed-size method frame.

The bytes are the ones pika would send (tests/integration/test_amqp_frames.py compares them)
and go out through pika's own connection (`_output_marshaled_frames`, which counts them for its
heartbeat checker), so pika still owns the socket and the channel's state (what arrives is
read by runeworker/adapters/amqp_reader.py, and pika's own path). Only these three frames of
the pika channel are written here, each behind the same state check pika makes (a closed
channel raises `ChannelWrongStateError`): `basic.publish`, `basic.ack` and the `tx.commit`
of runeworker/adapters/amqp_commit.py.

pika queues each write as a buffer of its own and sends them one `send` per buffer once the
socket is writable: four buffers per node (two statuses, the next message and the ack), a few
dozen system calls per commit of a batch. On a plain TCP connection the writer has them joined
first (`_join_sends`, into buffers of up to 128 KB): one `send` per commit of a batch of small
messages, and RabbitMQ reads one segment instead of many (deploy/PERFORMANCE.md, "Issue 16:
deliveries read without pika's frame objects"). A TLS connection keeps pika's sends: a write
OpenSSL asked to retry must be retried with the same buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import pika.exceptions
from pika import frame
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

_BODY = 3  # frame type of a content body
_FRAME_END = b"\xce"
_BODY_HEAD = struct.Struct(">BHI")  # type, channel, payload size
_BODY_SIZE = struct.Struct(">Q")
# basic.ack: method frame (type 1), payload 13 bytes: class 60, method 80, delivery tag, bits
_ACK = struct.Struct(">BHIHHQBB")
# tx.commit: method frame, payload 4 bytes: class 90, method 20
_COMMIT = struct.Struct(">BHIHHB")
# content headers kept per writer: a caller whose properties differ per message (a message id,
# a timestamp) gets its headers marshalled each time once this many are kept
_KEPT_HEADERS = 32
# method frames kept per writer (one per exchange and routing key: a handful in a worker)
_KEPT_METHODS = 256
# the most bytes joined into one buffer to send: a send the socket takes only in part leaves the
# rest of its buffer to be copied for the next (pika's `_produce`), so buffers stay this small
_JOINED_MAX = 128 * 1024
# offset of the body size in a marshalled content header: frame type (1), channel (2),
# payload size (4), class id (2), weight (2)
_SIZE_AT = 11


class FrameWriter:
    """Writes basic.publish and basic.ack on one open pika channel (the `Channel` under a
    BlockingChannel), keeping the marshalled method frames and content headers."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._connection: Any = channel.connection  # pika's Connection: untyped internals
        _join_sends(self._connection)
        self._number: int = channel.channel_number
        self._body_max: int = self._connection._body_max_length
        self._methods: dict[tuple[str, str, bool], bytes] = {}
        # content header split around the body size, by the properties' values
        self._headers: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        props: BasicProperties,
        mandatory: bool = True,
    ) -> None:
        """Queue one message's frames on the connection, as `Channel.basic_publish` does."""
        self._check_open()
        method = self._methods.get((exchange, routing_key, mandatory))
        if method is None:
            publish = Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
            method = frame.Method(self._number, publish).marshal()
            if len(self._methods) < _KEPT_METHODS:
                self._methods[(exchange, routing_key, mandatory)] = method
        size = len(body)
        head, tail = self._header(props)
        parts = [method, head, _BODY_SIZE.pack(size), tail]
        step = self._body_max
        number = self._number
        whole = memoryview(body) if size > step else body  # frames of a long body: no copies
        for start in range(0, size, step):
            chunk = whole[start : start + step]
            parts += (_BODY_HEAD.pack(_BODY, number, len(chunk)), chunk, _FRAME_END)
        self._connection._output_marshaled_frames([b"".join(parts)])

    def ack(self, delivery_tag: int) -> None:
        """Queue a basic.ack of one delivery, as `Channel.basic_ack` does."""
        self._check_open()
        data = _ACK.pack(1, self._number, 13, 60, 80, delivery_tag, 0, 0xCE)
        self._connection._output_marshaled_frames([data])

    def commit(self) -> None:
        """Queue a tx.commit behind everything queued before it (its commit-ok is read by
        runeworker/adapters/amqp_commit.py, not by pika's RPC machinery)."""
        self._check_open()
        data = _COMMIT.pack(1, self._number, 4, 90, 20, 0xCE)
        self._connection._output_marshaled_frames([data])

    def _header(self, props: BasicProperties) -> tuple[bytes, bytes]:
        """The content header of `props` around its body size. Properties without headers
        (a table, possibly large and never the same twice) are kept by their values, up to
        `_KEPT_HEADERS` of them."""
        if props.headers is not None:
            return _split(frame.Header(self._number, 0, props).marshal())
        key = tuple(props.__dict__.values())
        kept = self._headers.get(key)
        if kept is None:
            kept = _split(frame.Header(self._number, 0, props).marshal())
            if len(self._headers) < _KEPT_HEADERS:
                self._headers[key] = kept
        return kept

    def _check_open(self) -> None:
        if not self.channel.is_open:
            raise pika.exceptions.ChannelWrongStateError(
                f"channel {self._number} is not open; cannot publish or ack"
            )
        if not self._connection.is_open:
            raise pika.exceptions.ConnectionWrongStateError("connection to RabbitMQ is not open")


def _join_sends(connection: Any) -> None:
    """Have the plain TCP transport of `connection` send what is queued as one buffer (see
    the module's doc); once per transport."""
    transport: Any = connection._transport  # None once the connection is lost
    if type(transport).__name__ != "_AsyncPlaintextTransport" or getattr(
        transport, "_runeworker_joins", False
    ):
        return
    buffers = transport._tx_buffers  # pika's deque of buffers to send, never replaced
    produce = transport._produce

    def joined_produce() -> None:
        if len(buffers) > 1:
            pieces = joined(buffers)
            buffers.clear()
            buffers.extend(pieces)
        produce()

    transport._produce = joined_produce
    transport._runeworker_joins = True


def joined(buffers: Iterable[bytes], most: int = _JOINED_MAX) -> list[bytes]:
    """`buffers` joined in order into pieces of about `most` bytes: a piece ends with the
    buffer that brings it to `most` or more, so it passes `most` by less than its last buffer."""
    pieces: list[bytes] = []
    part: list[bytes] = []
    size = 0
    for buffer in buffers:
        part.append(buffer)
        size += len(buffer)
        if size >= most:
            pieces.append(b"".join(part))
            part, size = [], 0
    if part:
        pieces.append(b"".join(part))
    return pieces


def _split(header: bytes) -> tuple[bytes, bytes]:
    return header[:_SIZE_AT], header[_SIZE_AT + _BODY_SIZE.size :]
