"""`Broker` (runeworker/adapters/amqp.py) once its connection to the real RabbitMQ is lost:
every later call is a BrokerError, which the worker loop handles (reconnect, or a drain without
a connection), never a pika internal error that would end the child with a traceback."""

from __future__ import annotations

import socket

import pytest

from runeworker.adapters.amqp import Broker
from runeworker.errors import BrokerError


def test_polling_a_connection_lost_at_an_earlier_poll_is_a_broker_error(amqp_url: str) -> None:
    """The worker meets this when a stop and the loss of its connection come together: the
    loop breaks out on `stopping` before it closes the broker, and the drain polls once more
    (seen in CI: pika's closed loop raised ValueError("Timeout closed before call"))."""
    broker = Broker([amqp_url])
    broker.connect()
    try:
        broker._conn._impl._transport._sock.shutdown(socket.SHUT_RDWR)  # the peer is gone
        with pytest.raises(BrokerError, match="connection to RabbitMQ lost"):
            broker.poll(0)  # pika reads the end of the stream here
        for _ in range(2):
            with pytest.raises(BrokerError, match="connection to RabbitMQ lost"):
                broker.poll(0)
        broker.stop_consuming()  # the drain's other calls on a lost connection do not raise
    finally:
        broker.close()
