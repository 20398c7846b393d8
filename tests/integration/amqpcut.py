"""A loopback TCP proxy in front of RabbitMQ that cuts one transaction commit, for the tests of
commits in doubt (runeworker/child/receipts.py).

It reads the AMQP 0-9-1 frames both ways (a frame: type, channel, size, payload, 0xCE) and,
once armed, waits for the first transaction that publishes to `target`:

* `before`: the client's `tx.commit` is not forwarded; both sockets close. Nothing of the
  transaction is applied and the client cannot know it.
* `after`: the commit is forwarded, and the broker's `tx.commit-ok` is not: both sockets close
  when it arrives. The transaction is applied and the client cannot know it. With `lose`, the
  transaction's publishes to those routing keys are dropped on the way, which is what a
  RabbitMQ node dying during the commit did in the cluster suite (the acks applied, the
  publishes to the queue it led lost).

On a channel in confirm mode (runeworker with quorum queues) the commit point is the publish
to `target` and the broker's confirms: `before` cuts at that publish (what went before it is
applied), `after` (and `lose`) when the first confirm comes back.

New connections are proxied as they come, so the worker reconnects through it, unless
`refuse_after_cut` is set: then every connection after the cut is closed at once (the broker
stays out of the worker's reach, as for a child that dies before it could resend).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field

_METHOD, _HEADER, _BODY = 1, 2, 3
_BASIC_PUBLISH, _BASIC_ACK = (60, 40), (60, 80)
_TX_COMMIT, _TX_COMMIT_OK = (90, 20), (90, 21)
_CONFIRM_SELECT = (85, 10)
_PROTOCOL_HEADER = 8


@dataclass
class _Plan:
    mode: str  # "before" or "after"
    target: str  # the routing key whose transaction is cut
    lose: tuple[str, ...] = ()


@dataclass
class _Link:
    """One proxied connection: whether its transaction is cut, what is being dropped."""

    client: socket.socket
    server: socket.socket
    plan: _Plan | None = None  # set once this link's open transaction is the one to cut
    dropping: dict[int, int] = field(default_factory=dict)  # channel -> body bytes left
    awaiting_ok: bool = False
    confirm: bool = False  # the client selected publisher confirms

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class CommitCutter:
    """The proxy; `port` is where to point the worker."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.cut = threading.Event()  # set once a commit was cut
        self.connections = 0
        self.refuse_after_cut = False
        self._plan: _Plan | None = None
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode: str, target: str, lose: tuple[str, ...] = ()) -> None:
        """Cut the next transaction that publishes to `target` (see the module docstring)."""
        assert mode in ("before", "after")
        with self._lock:
            self._plan = _Plan(mode, target, lose)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        for link in self._links:
            link.close()

    # -- the pumps --------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refuse_after_cut and self.cut.is_set():
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            link = _Link(client, server)
            self._links.append(link)
            self.connections += 1
            threading.Thread(target=self._upstream, args=(link,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), daemon=True).start()

    def _upstream(self, link: _Link) -> None:
        """Client to broker: the protocol header, then frame by frame."""
        try:
            header = _read(link.client, _PROTOCOL_HEADER)
            link.server.sendall(header)
            while True:
                frame = _frame(link.client)
                if frame is None:
                    break
                out = self._from_client(link, frame)
                if out is None:  # cut before the commit
                    link.close()
                    return
                link.server.sendall(out)
        except OSError:
            pass
        link.close()

    def _downstream(self, link: _Link) -> None:
        try:
            while True:
                frame = _frame(link.server)
                if frame is None:
                    break
                if link.awaiting_ok and _method(frame) in (_TX_COMMIT_OK, _BASIC_ACK):
                    self.cut.set()
                    link.close()  # applied, and the client never hears of it
                    return
                link.client.sendall(frame)
        except OSError:
            pass
        link.close()

    def _from_client(self, link: _Link, frame: bytes) -> bytes | None:
        """The bytes to forward for one client frame (b"" to drop it, None to cut here)."""
        kind, channel = frame[0], struct.unpack(">H", frame[1:3])[0]
        left = link.dropping.get(channel)
        if left is not None and kind in (_HEADER, _BODY):  # the content of a dropped publish
            if kind == _HEADER:
                left = struct.unpack(">Q", frame[11:19])[0]
            else:
                left -= len(frame) - 8
            if left <= 0:
                del link.dropping[channel]
            else:
                link.dropping[channel] = left
            return b""
        method = _method(frame)
        if method == _BASIC_PUBLISH:
            key = _routing_key(frame)
            if link.plan is None:
                with self._lock:
                    if self._plan is not None and key == self._plan.target:
                        link.plan, self._plan = self._plan, None
            if link.plan is not None and key in link.plan.lose:
                link.dropping[channel] = -1  # this frame, its header and its body frames
                link.awaiting_ok = link.awaiting_ok or link.confirm
                return b""
            if link.plan is not None and key == link.plan.target and link.confirm:
                if link.plan.mode == "before":  # confirm mode: nothing of it reaches the queue
                    self.cut.set()
                    return None
                link.awaiting_ok = True  # cut at the broker's confirm
        elif method == _CONFIRM_SELECT:
            link.confirm = True
        elif method == _TX_COMMIT and link.plan is not None:
            if link.plan.mode == "before":
                self.cut.set()
                return None
            link.awaiting_ok = True
        return frame


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _frame(sock: socket.socket) -> bytes | None:
    """One whole frame, or None when the peer closed."""
    try:
        head = _read(sock, 7)
    except OSError:
        return None
    size = struct.unpack(">I", head[3:7])[0]
    return head + _read(sock, size + 1)


def _method(frame: bytes) -> tuple[int, int] | None:
    if frame[0] != _METHOD:
        return None
    cls, meth = struct.unpack(">HH", frame[7:11])
    return cls, meth


def _routing_key(frame: bytes) -> str:
    """basic.publish arguments: reserved short, exchange shortstr, routing-key shortstr."""
    pos = 11 + 2
    pos += 1 + frame[pos]
    return frame[pos + 1 : pos + 1 + frame[pos]].decode()
