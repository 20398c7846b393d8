"""Deliveries read off pika's connection without pika's per-frame objects.

pika turns every inbound frame into objects before a consumer sees a delivery: it appends the
bytes read to its buffer and cuts each frame off the front (`Connection._on_data_available`:
one copy of everything still buffered per frame), decodes a `Basic.Deliver`, a `Header` with
its `BasicProperties` and a `Body` frame, looks for callbacks registered for each, assembles
the three on the channel, and the BlockingChannel queues the delivery as an event that
`process_data_events` hands to the callback later. It also reads the socket 4 KB at a time
(`_AsyncTransportBase._MAX_RECV_BYTES`): a batch of ten 3 KB deliveries is eight reads, each
through that whole chain. A 3 KB delivery cost 29.6 µs of CPU that way, 5.8 µs as read here
(deploy/PERFORMANCE.md, "Issue 16: deliveries read without pika's frame objects").

`FrameReader` takes the connection's inbound bytes in pika's place (it replaces
`_on_data_available` on the connection object) and reads the socket 64 KB at a time. For a
`basic.deliver` on its channel to one of the consumers it was told of, with the content header
and body frames right behind it, it reads the three frames in place (AMQP 0-9-1, section 4.2.3:
type, channel, payload size, payload, frame-end 0xCE; section 4.2.6: a content header, then body
frames that add up to its body size) and hands the delivery to its callback at once. The
`tx.commit-ok` of a commit sent by hand (runeworker/adapters/amqp_commit.py) is taken here too.
Every other frame (the commit-ok of a commit pika sent, heartbeats, `connection.blocked`, a
channel's close, a broker's `basic.cancel`, a `basic.return`, a delivery whose frames are
interleaved with another channel's or that arrives while pika is assembling one) is decoded by
pika and goes through pika's own `_process_frame`, in the order it came, so pika keeps the
connection's and the channel's state; while deliveries pika read wait for the BlockingChannel's
callback, the next ones go the same way, so that none overtakes another. A delivery's fields are
read only when its method frame holds all of them (consumer tag, delivery tag and bits,
exchange, routing key), its content header is one of class `basic` with its property flags, and
its body frames add up to the header's body size without going past it: anything else is pika's
to read and refuse, as it would without the reader
(tests/integration/test_amqp_reader_streams.py feeds both the same crafted bytes). The bytes
received are counted as they come, which pika's heartbeat checker reads as the connection being
alive (pika counts a frame once it is whole; a large delivery on a slow link would otherwise
count nothing until its last frame); frames are counted as pika counts them, and an end of
`process_data_events` is asked for as a BlockingChannel would for a delivery (`wake`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pika.exceptions
from pika import frame
from pika.spec import BasicProperties

# what the reader hands on for each delivery: queue, delivery tag, redelivered, body, properties
# (the same object for deliveries whose properties are the same bytes, without headers: not
# to be changed)
Deliver = Callable[[str, int, bool, bytes, BasicProperties], None]

RECV_BYTES = 64 * 1024  # read at a time from the socket (pika's 4 KB: see above)
_HEAD = struct.Struct(">BHI")  # frame type, channel, payload size
_FRAME_OVERHEAD = 8  # the head (7 bytes) and the frame-end octet
_FRAME_END = 0xCE
_METHOD, _HEADER, _BODY = 1, 2, 3
_METHOD_ID = struct.Struct(">I")  # class id << 16 | method id
_BASIC_DELIVER = 60 << 16 | 60
_BASIC_CANCEL = 60 << 16 | 30
_TX_COMMIT_OK = 90 << 16 | 21
_TAG_AND_BITS = struct.Struct(">QB")  # delivery tag, the octet whose bit 0 is `redelivered`
_CONTENT = struct.Struct(">HHQ")  # content header: class id, weight, body size
_BASIC_CLASS = 60
_KEPT_PROPERTIES = 64  # properties kept by their bytes (those without headers)


class FrameReader:
    """Reads what arrives on one pika connection (the `Connection` under a BlockingConnection)
    in pika's place, handing deliveries on `channel` to `deliver` (see the module's doc)."""

    def __init__(
        self, connection: Any, blocking: Any, deliver: Deliver, wake: Callable[[], None]
    ) -> None:
        self._conn = connection  # pika's Connection: untyped internals
        self.channel = blocking._impl  # pika's Channel of the consumers
        # deliveries pika read and the BlockingChannel holds for its callback: while there
        # are any, the reader leaves the next to pika as well, so that they keep their order
        self._held: Any = blocking._pending_events
        self._number: int = self.channel.channel_number
        self._deliver = deliver
        self._wake = wake
        self._consumers: dict[bytes, str] = {}  # consumer tag as sent -> its queue
        self._properties: dict[bytes, BasicProperties] = {}  # decoded, by their bytes
        # a tx.commit sent by hand whose commit-ok has not come (runeworker/adapters/amqp_commit.py)
        self.awaiting_commit = False
        self._rest = bytearray(connection._frame_buffer)  # a frame pika had begun to read
        connection._frame_buffer = b""
        connection._on_data_available = self.on_data
        transport = connection._transport  # None once the connection is lost
        if transport is not None:
            transport._MAX_RECV_BYTES = RECV_BYTES

    def follow(self, consumer_tag: str, queue: str) -> None:
        """Hand deliveries to `consumer_tag` (of `queue`) on at once."""
        self._consumers[consumer_tag.encode()] = queue

    def forget(self) -> None:
        """Leave every delivery to pika from now on (consumers being cancelled: pika rejects
        what still comes for them)."""
        self._consumers.clear()

    def on_data(self, data: bytes) -> None:
        """The bytes the socket gave: every whole frame in them is handled, the rest kept."""
        rest = self._rest
        buf: bytes | bytearray
        if rest:
            rest += data
            buf = rest
        else:
            buf = data
        size = len(buf)
        pos = 0
        conn = self._conn
        conn.bytes_received += len(data)  # as they come (see the module's doc)
        delivered = False
        head = _HEAD.unpack_from
        while size - pos >= _FRAME_OVERHEAD:
            kind, number, length = head(buf, pos)
            end = pos + length + _FRAME_OVERHEAD
            if end > size:
                break  # the rest of the frame is still on its way
            if buf[end - 1] != _FRAME_END:
                raise pika.exceptions.InvalidFrameError("Invalid FRAME_END marker")
            if kind == _METHOD and number == self._number and length >= 4:
                method = _METHOD_ID.unpack_from(buf, pos + 7)[0]
                if method == _BASIC_DELIVER and self._consumers:
                    taken = self._delivery(buf, pos, end, size)
                    if taken > 0:
                        pos = taken
                        delivered = True
                        continue
                    if taken == 0:
                        break  # its content is still on its way
                elif method == _TX_COMMIT_OK and self.awaiting_commit and length == 4:
                    pos = end
                    conn.frames_received += 1
                    self.awaiting_commit = False
                    self.channel._on_synchronous_complete(None)  # as pika's RPC reply would
                    continue
                elif method == _BASIC_CANCEL:  # the broker cancels a consumer: pika's to handle
                    self._consumers.clear()
            whole = bytes(buf[pos:end])
            pos = end
            conn._process_frame(frame.decode_frame(whole)[1])
        if pos >= size:
            rest.clear()
        elif buf is rest:
            del rest[:pos]
        else:
            self._rest = bytearray(memoryview(buf)[pos:])
        if delivered:
            self._wake()

    def _delivery(self, buf: bytes | bytearray, pos: int, end: int, size: int) -> int:
        """Read the delivery whose method frame spans buf[pos:end]: the offset after its last
        body frame once it is handed on; 0 when the buffer ends before it; -1 when pika is
        to read it (not one of ours, its content interleaved or malformed, pika assembling
        one, or deliveries pika read still held for the BlockingChannel's callback)."""
        at = pos + 11  # past the head and the method id
        tag_end = at + 1 + buf[at]
        consumer = bytes(buf[at + 1 : tag_end])
        queue = self._consumers.get(consumer)
        channel = self.channel
        # the method's fields after the consumer tag: delivery tag and bits, then the exchange
        # and the routing key (short strings); a frame too short for them is pika's to refuse
        exchange = tag_end + _TAG_AND_BITS.size
        payload_end = end - 1
        if (
            queue is None
            or self._held
            or exchange >= payload_end
            or not channel.is_open
            or channel._content_assembler._method_frame is not None
        ):
            return -1
        routing_key = exchange + 1 + buf[exchange]
        if routing_key >= payload_end or routing_key + 1 + buf[routing_key] > payload_end:
            return -1
        tag, bits = _TAG_AND_BITS.unpack_from(buf, tag_end)
        # the content header
        if size - end < _FRAME_OVERHEAD:
            return 0
        kind, number, length = _HEAD.unpack_from(buf, end)
        if kind != _HEADER or number != self._number or length < _CONTENT.size + 2:
            return -1
        header_end: int = end + length + _FRAME_OVERHEAD
        if header_end > size:
            return 0
        if buf[header_end - 1] != _FRAME_END:
            return -1
        class_id, _weight, body_size = _CONTENT.unpack_from(buf, end + 7)
        if class_id != _BASIC_CLASS:
            return -1
        # the body frames
        pieces: list[tuple[int, int]] = []
        left = body_size
        at = header_end
        while left > 0:
            if size - at < _FRAME_OVERHEAD:
                return 0
            kind, number, length = _HEAD.unpack_from(buf, at)
            if kind != _BODY or number != self._number or length > left:
                return -1
            frame_end = at + length + _FRAME_OVERHEAD
            if frame_end > size:
                return 0
            if buf[frame_end - 1] != _FRAME_END:
                return -1
            pieces.append((at + 7, frame_end - 1))
            left -= length
            at = frame_end
        encoded = bytes(buf[end + 7 + _CONTENT.size : header_end - 1])
        props = self._properties.get(encoded)
        if props is None:
            try:
                props = self._decode_properties(encoded)
            except Exception:  # a property list cut short, a table unreadable: pika's to refuse
                return -1
        if len(pieces) == 1 and isinstance(buf, bytes):
            start, stop = pieces[0]
            body = buf[start:stop]
        else:
            with memoryview(buf) as view:
                body = b"".join([view[start:stop] for start, stop in pieces])
        self._conn.frames_received += 2 + len(pieces)
        self._deliver(queue, tag, bool(bits & 1), body, props)
        return at

    def _decode_properties(self, encoded: bytes) -> BasicProperties:
        """A content header's property flags and list, decoded; kept by their bytes unless
        they hold headers (the flag 0x2000: a table that may differ per message)."""
        props = BasicProperties()
        props.decode(encoded)
        if props.headers is None and len(self._properties) < _KEPT_PROPERTIES:
            self._properties[encoded] = props
        return props
