"""The kept connection that runs the store's scripts (runeworker/adapters/redis_eval.py), on the
real Redis: a flushed script cache, a connection the server dropped, a fork, threads."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from runeworker.adapters.redis_state import RedisStore
from runeworker.engine.state import Admission, Verdict, child_token, root_token

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def store() -> Iterator[RedisStore]:
    prefix = f"rwtest:{uuid.uuid4().hex}:"
    made = RedisStore.from_url(REDIS_URL, prefix=prefix, ttl_seconds=600)
    yield made
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()
    made.close()


def _open(store: RedisStore, ex: str) -> str:
    """Open `ex` with one child token live; returns it."""
    root = root_token(ex)
    assert store.admit(ex, root, 1) == Admission(Verdict.RUN, 0)
    child = child_token(root, 0, "next")
    store.advance(ex, root, [child], None, None, 2)
    return child


def _kept_client_id(store: RedisStore) -> int:
    conn = store._eval._conn
    assert conn is not None
    conn.send_command("CLIENT", "ID")
    return int(conn.read_response())


def _closed(store: RedisStore) -> bool:
    try:
        return bool(store._eval._conn.can_read())
    except redis.ConnectionError:
        return True


def test_every_script_call_of_a_process_goes_over_one_connection(store: RedisStore) -> None:
    child = _open(store, "ex")
    first = _kept_client_id(store)
    for _ in range(20):
        assert store.admit("ex", child, 3) == Admission(Verdict.RUN, 1)
    assert _kept_client_id(store) == first


def test_a_flushed_script_cache_is_loaded_again(store: RedisStore) -> None:
    child = _open(store, "ex")
    redis.Redis.from_url(REDIS_URL).script_flush()
    assert store.admit("ex", child, 3) == Admission(Verdict.RUN, 1)


def test_a_connection_the_server_dropped_is_made_again(store: RedisStore) -> None:
    child = _open(store, "ex")
    killed = _kept_client_id(store)
    admin = redis.Redis.from_url(REDIS_URL)
    assert admin.client_kill_filter(_id=killed) == 1
    deadline = time.monotonic() + 5
    while not _closed(store):  # the server's close reaches the socket
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert store.admit("ex", child, 3) == Admission(Verdict.RUN, 1)
    assert _kept_client_id(store) != killed
    admin.close()


def test_a_forked_child_uses_its_own_connection(store: RedisStore) -> None:
    """A store made before a fork (the supervisor's children) never shares the parent's
    socket: parent and child call at the same time and each reads its own replies."""
    tokens = [_open(store, f"ex-{i}") for i in range(2)]
    parent_id = _kept_client_id(store)
    pid = os.fork()
    if pid == 0:  # the child: exits 0 only when every reply was its own
        code = 1
        try:
            for _ in range(300):
                if store.admit("ex-1", tokens[1], 3) != Admission(Verdict.RUN, 1):
                    break
            else:
                code = 0 if _kept_client_id(store) != parent_id else 2
        finally:
            os._exit(code)
    for _ in range(300):
        assert store.admit("ex-0", tokens[0], 3) == Admission(Verdict.RUN, 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _kept_client_id(store) == parent_id


def test_threads_share_the_connection_one_call_at_a_time(store: RedisStore) -> None:
    tokens = {f"ex-{i}": _open(store, f"ex-{i}") for i in range(4)}
    wrong: list[object] = []

    def calls(ex: str) -> None:
        for _ in range(200):
            got = store.admit(ex, tokens[ex], 3)
            if got != Admission(Verdict.RUN, 1):
                wrong.append(got)

    threads = [threading.Thread(target=calls, args=(ex,)) for ex in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_arguments_reach_the_script_as_redis_py_would_send_them(store: RedisStore) -> None:
    """hiredis packs the command (redis_eval._send_command): text in UTF-8, binary bytes,
    integers beyond 64 bits, floats as repr() writes them, the same bytes redis-py sends; a
    bool goes to redis-py, which refuses it."""
    echo = store._client.register_script("return ARGV")
    args = ["é ü", b"\x00\xff\r\n", 2**70, -3, 0.1, 1e-7, "", b""]
    sent = store._eval(echo, ["k"], args)
    assert sent == [b"\xc3\xa9 \xc3\xbc", b"\x00\xff\r\n", b"1180591620717411303424", b"-3",
                    b"0.1", b"1e-07", b"", b""]  # fmt: skip
    assert sent == store._client.evalsha(echo.sha, 1, "k", *args)  # redis-py's own packing
    with pytest.raises(redis.DataError, match="bool"):
        store._eval(echo, ["k"], [True])
