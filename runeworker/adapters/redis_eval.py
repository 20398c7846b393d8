"""The store's Lua scripts, run on one connection the process keeps.

Every step of a workflow with parallel branches makes one or two script calls
(`runeworker.adapters.redis_state`), so the client's own cost per call counts: redis-py's
`Script.__call__` goes through `Redis.evalsha`, `execute_command`, a pool checkout and return
and its observability hooks for each call, about 30 µs of CPU more than sending the command on a
connection kept for the purpose (deploy/PERFORMANCE.md, "Issue 16: one store call per arrival").
`Evaluator` sends EVALSHA on a connection it takes from the client's pool once (lazily, so a
store made before a fork connects in the process that uses it), behind a lock (the scheduler
thread and node threads share the store). Before each command it checks the connection as a
pool checkout does (a socket with something to read was closed by the server: made again), and
it follows the connection's retry policy on a connection error or timeout (disconnect, then as
configured; the store's clients retry none), so a restarted server or a Sentinel failover (the
pool's connections find the new master) is handled as before. A NOSCRIPT reply (a restarted or
flushed server) loads the script and sends it again.

The command is packed by hiredis' `pack_command` directly, the bytes redis-py's packer makes
(tests/integration/test_redis_eval.py compares them) without its per-argument type checks,
which cost more than the packing once a call carries a few hundred receipts
(runeworker/child/receipts.py); anything hiredis cannot pack goes through redis-py's packer.

A Redis Cluster routes each call by its keys' slot: there the scripts keep redis-py's `Script`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.connection import ConnectionPool
from redis.exceptions import ConnectionError, NoScriptError

pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command
except ImportError:  # redis-py without its hiredis extra
    pack_command = None


class Evaluator:
    """Runs registered scripts by EVALSHA on a kept connection (see the module doc)."""

    def __init__(self, client: redis.Redis | RedisCluster) -> None:
        self._pool: ConnectionPool | None = None
        if not isinstance(client, RedisCluster):
            self._pool = client.connection_pool
        self._lock = threading.Lock()
        # a redis.connection.Connection (or Sentinel's); redis-py leaves its methods untyped
        self._conn: Any = None
        self._pid = os.getpid()  # the process the lock and the connection belong to

    def __call__(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The reply of `script` run with `keys` and `args`; redis-py's errors as they come."""
        if self._pool is None:
            return script(keys=list(keys), args=list(args))
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        if self._pid != os.getpid():
            # first call in a forked child, which starts with only the forking thread: the
            # parent's connection is its socket, and its lock may have been held by another of
            # its threads at the fork
            self._lock, self._conn, self._pid = threading.Lock(), None, os.getpid()
        with self._lock:
            conn = self._connection()
            return conn.retry.call_with_retry(
                lambda: self._send(conn, script, command), lambda _error: conn.disconnect()
            )

    def close(self) -> None:
        """Give the kept connection back to the pool (the client's `close` closes it)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pool is not None and self._pid == os.getpid():
                self._pool.release(conn)

    def _connection(self) -> Any:
        """The kept connection, taken from the pool on first use in this process."""
        assert self._pool is not None
        if self._conn is None:
            self._conn = self._pool.get_connection()
        return self._conn

    @staticmethod
    def _send(conn: Any, script: Script, command: tuple[Any, ...]) -> Any:
        # what a pool checkout does: a connection with something to read before a command was
        # closed by the server (idle timeout, restart, CLIENT KILL) and is made again
        conn.connect()
        try:
            stale = conn.can_read()
        except (ConnectionError, OSError):
            stale = True
        if stale:
            conn.disconnect()
            conn.connect()
        _send_command(conn, command)
        try:
            return conn.read_response()
        except NoScriptError:  # the server lost its script cache: load it, then again
            conn.send_command("SCRIPT", "LOAD", script.script)
            conn.read_response()
            conn.send_command(*command)
            return conn.read_response()


def _send_command(conn: Any, command: tuple[Any, ...]) -> None:
    """`conn.send_command(*command)`, packed by hiredis when it can: str, bytes and numbers
    in UTF-8, as redis-py's own encoder does (a bool, which redis-py refuses, or a memoryview
    go through redis-py)."""
    if pack_command is None or conn.encoder.encoding != "utf-8":
        conn.send_command(*command)
        return
    for arg in command:
        if type(arg) not in _PACKED:
            conn.send_command(*command)
            return
    conn.send_packed_command([pack_command(command)])


_PACKED = frozenset((str, bytes, int, float))
