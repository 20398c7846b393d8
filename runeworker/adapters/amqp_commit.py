"""A transaction's commit without pika's RPC machinery.

pika's `BlockingChannel.tx_commit` goes through `Channel._rpc`: it builds a `Tx.Commit` object
and a frame object and marshals them, registers one-shot callbacks for the reply in the
callback manager (each add and each lookup checking its prefix and key), and wraps the wait
in a `_CallbackResult`; when the `tx.commit-ok` arrives pika decodes it into objects and looks
the callbacks up again. A child commits once per batch, and that machinery is 40 to 60 µs of the
120 to 140 µs of CPU pika spends on a commit (deploy/PERFORMANCE.md, "Issue 16: the commit without
pika's RPC machinery").

`commit` writes the fixed 12-byte `tx.commit` frame behind the queued publishes and acks
(runeworker/adapters/amqp_frames.py) and has the connection's `FrameReader`
(runeworker/adapters/amqp_reader.py) take its `commit-ok`. Everything else stays pika's:

- the wait is the BlockingChannel's own (`_flush_output`): it sends what is queued, reads and
  handles every other frame (deliveries, a `basic.return`, heartbeats, `connection.blocked`),
  runs pika's timers, and ends on the commit-ok, on the channel's close (raising
  `ChannelClosedByBroker` with the broker's reason, as `tx_commit` does) or on the connection's
  loss (raising its error);
- the channel is marked as waiting for a synchronous reply as `Channel._rpc` marks it
  (`_blocking`), so a pika RPC asked for meanwhile is queued and sent after the commit-ok,
  which clears the mark as pika's reply callback does (`_on_synchronous_complete`); a channel
  the broker closes drains that queue as pika does.

When the reader does not read this channel (pika's own path, `Broker.read_by_hand` False) or
pika is waiting for a reply of its own, the commit is pika's `tx_commit`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pika.exceptions

if TYPE_CHECKING:
    from runeworker.adapters.amqp_frames import FrameWriter
    from runeworker.adapters.amqp_reader import FrameReader


def commit(channel: Any, writer: FrameWriter, reader: FrameReader | None) -> None:
    """Commit the transaction of `channel` (a BlockingChannel in transaction mode) whose
    publishes and acks `writer` queued; returns once RabbitMQ answered commit-ok. Raises
    what `BlockingChannel.tx_commit` raises when the channel or the connection closes first."""
    impl = channel._impl  # pika's Channel: untyped internals
    if reader is None or reader.channel is not impl or impl._blocking is not None:
        channel.tx_commit()
        return
    writer.commit()  # the channel or the connection closed: ChannelWrongStateError, as pika's
    impl._blocking = "Tx.Commit"
    reader.awaiting_commit = True
    channel._flush_output(lambda: not reader.awaiting_commit)
    if reader.awaiting_commit:  # the channel closed without the broker closing it
        reader.awaiting_commit = False
        raise pika.exceptions.ChannelWrongStateError(
            f"channel {impl.channel_number} closed before the commit was answered"
        )
