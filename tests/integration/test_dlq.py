"""`runeworker dlq list | show | replay` against dead letters a real worker produced.

Each test gets its own dead-letter queue (`broker.dead_letter_queue`), filled by a worker in a
thread with three bad messages, and the worker is stopped before the command runs, so the queue
holds exactly those three.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pytest
from wire import EXECUTION, edge, master, node, running_worker

from runeworker.commands.dlq import DeadLetterQueue, dlq

pytestmark = pytest.mark.integration

SECRET = "dlq-s3cret-token"
HEADER = "   #  ID            FAILED AT             QUEUE                 EXECUTION"


@dataclass
class Dead:
    """The test's dead-letter queue and the raw bodies it holds, in order."""

    queue: str
    overrides: dict[str, Any]
    bodies: list[bytes]
    execution_ids: list[str]


def depth(amqp_url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def take_all(amqp_url: str, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Consume every message of `queue`: (body, headers) in queue order."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        out: list[tuple[bytes, dict[str, Any]]] = []
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((body, dict(props.headers or {})))
    finally:
        conn.close()


@pytest.fixture
def dead(
    amqp_url: str, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Dead]:
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    queue = f"dlq-test-{uuid.uuid4().hex[:8]}"
    overrides = {"broker.url": amqp_url, "broker.dead_letter_queue": queue}
    garbage = b'{"workflow_id": "' + queue.encode() + b'", oops'
    alien = master([node("t", "teleport", to="mars")], [], current="t")
    alien["workflow_definition"]["nodes"][0]["credentials"] = {
        "type": "token",
        "values": {"token": SECRET},
    }
    alien["accumulated_context"] = {"$input": {"echo": f"token is {SECRET}"}}
    loop = master(
        [node("a", "log", message="a"), node("b", "log", message="b")],
        [edge("a", "b"), edge("b", "a")],
        current="a",
    )
    bodies = [garbage, json.dumps(alien).encode(), json.dumps(loop).encode()]
    extra = {"broker.dead_letter_queue": queue}
    with running_worker(amqp_url, redis_url, redis_prefix, **extra) as rw:
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            ch = conn.channel()
            for body in bodies:
                ch.basic_publish("", EXECUTION, body, pika.BasicProperties(delivery_mode=2))
            while depth(amqp_url, queue) < 3:
                assert rw.thread.is_alive()
                conn.sleep(0.05)
        finally:
            conn.close()
    yield Dead(queue, overrides, bodies, ["-", alien["execution_id"], loop["execution_id"]])
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        conn.channel().queue_delete(queue)
    finally:
        conn.close()


def run(
    capsys: pytest.CaptureFixture[str], dead: Dead, command: str, **args: Any
) -> tuple[int, str, str]:
    ns = argparse.Namespace(config=None, dlq_command=command, limit=1000)
    ns.id, ns.all, ns.to = args.pop("id", None), args.pop("all", False), args.pop("to", None)
    for key, value in args.items():
        setattr(ns, key, value)
    code = dlq(ns, dead.overrides)
    out, err = capsys.readouterr()
    return code, out, err


def listed(out: str) -> list[list[str]]:
    """The rows of `dlq list`: #, id, failed at, queue, execution, bytes, reason."""
    lines = out.splitlines()
    assert lines[0].startswith(HEADER), lines[0]
    return [line.split(None, 6) for line in lines[1:]]


def test_list_shows_one_line_per_message_without_consuming(
    capsys: pytest.CaptureFixture[str], amqp_url: str, dead: Dead
) -> None:
    code, out, err = run(capsys, dead, "list")
    assert (code, err) == (0, "")
    rows = listed(out)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert all(re.fullmatch(r"[0-9a-f]{12}", r[1]) for r in rows)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[2]) for r in rows)
    assert [r[3] for r in rows] == [EXECUTION] * 3
    assert [r[4] for r in rows] == dead.execution_ids
    assert [int(r[5]) for r in rows] == [len(b) for b in dead.bodies]
    assert rows[0][6].startswith("decode node execution message: JSON is malformed")
    assert rows[1][6] == "failed to create node of type teleport"
    assert rows[2][6] == "invalid workflow: cycle: a -> b -> a"
    assert depth(amqp_url, dead.queue) == 3
    assert run(capsys, dead, "list") == (0, out, "")  # same ids, same order: nothing moved
    code, out, _ = run(capsys, dead, "list", limit=2)
    assert len(listed(out.rsplit("\n", 2)[0])) == 2
    assert out.endswith("(first 2 of 3 messages; see --limit)\n")
    assert [b for b, _h in take_all(amqp_url, dead.queue)] == dead.bodies


def test_list_of_an_empty_queue(capsys: pytest.CaptureFixture[str], amqp_url: str) -> None:
    empty = Dead(f"dlq-empty-{uuid.uuid4().hex[:8]}", {}, [], [])
    empty.overrides = {"broker.url": amqp_url, "broker.dead_letter_queue": empty.queue}
    assert run(capsys, empty, "list") == (0, f"{empty.queue} is empty\n", "")
    assert run(capsys, empty, "replay", all=True) == (
        0,
        f"{empty.queue} is empty: nothing to replay\n",
        "",
    )


def test_show_prints_headers_and_body_with_credentials_masked(
    capsys: pytest.CaptureFixture[str], amqp_url: str, dead: Dead
) -> None:
    _code, out, _err = run(capsys, dead, "list")
    ident = listed(out)[1][1]
    code, by_id, err = run(capsys, dead, "show", id=ident)
    assert (code, err) == (0, "")
    assert run(capsys, dead, "show", id="#2") == (0, by_id, "")
    assert SECRET not in by_id
    head, _, body = by_id.partition("body:\n")
    assert head.splitlines()[:3] == [
        f"id: {ident} (#2 of 3 in {dead.queue})",
        f"execution: {dead.execution_ids[1]}",
        f"bytes: {len(dead.bodies[1])}",
    ]
    headers = json.loads(head.partition("headers: ")[2])
    assert set(headers) == {
        "x-runeworker-reason",
        "x-runeworker-queue",
        "x-runeworker-redelivered",
        "x-runeworker-failed-at",
    }
    assert headers["x-runeworker-reason"] == "failed to create node of type teleport"
    shown = json.loads(body)
    expected = json.loads(dead.bodies[1])
    expected["workflow_definition"]["nodes"][0]["credentials"]["values"] = {"token": "***"}
    expected["accumulated_context"]["$input"]["echo"] = "token is ***"
    assert shown == expected
    assert body == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    code, garbage, _ = run(capsys, dead, "show", id="1")
    assert garbage.endswith("body:\n" + dead.bodies[0].decode() + "\n")
    assert depth(amqp_url, dead.queue) == 3


def test_show_of_a_missing_message(capsys: pytest.CaptureFixture[str], dead: Dead) -> None:
    assert run(capsys, dead, "show", id="0123456789ab") == (
        1,
        "",
        f"error: no message 0123456789ab in {dead.queue}\n",
    )
    assert run(capsys, dead, "show", id="#4")[0] == 1


def test_replay_moves_one_message_back_to_its_queue(
    capsys: pytest.CaptureFixture[str], amqp_url: str, dead: Dead
) -> None:
    _code, out, _err = run(capsys, dead, "list")
    rows = listed(out)
    take_all(amqp_url, EXECUTION)  # nothing of an earlier test may be mistaken for ours
    code, out, err = run(capsys, dead, "replay", id=rows[2][1])
    assert (code, err) == (0, "")
    assert out == f"replayed {rows[2][1]} to {EXECUTION} (execution {dead.execution_ids[2]})\n"
    # raw, without the dead-letter headers, marked as put back by hand
    assert take_all(amqp_url, EXECUTION) == [(dead.bodies[2], {"x-runeworker-replayed": True})]
    remaining = take_all(amqp_url, dead.queue)
    assert [b for b, _h in remaining] == dead.bodies[:2]


def test_replay_all_to_another_queue_keeps_the_order(
    capsys: pytest.CaptureFixture[str], amqp_url: str, dead: Dead
) -> None:
    target = f"replayed-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        conn.channel().queue_declare(target, auto_delete=False)
        code, out, err = run(capsys, dead, "replay", all=True, to=target)
        assert (code, err) == (0, "")
        assert [line.split()[3] for line in out.splitlines()] == [target] * 3
        assert [b for b, _h in take_all(amqp_url, target)] == dead.bodies
        assert depth(amqp_url, dead.queue) == 0
    finally:
        conn.channel().queue_delete(target)
        conn.close()


def test_messages_another_client_takes_meanwhile_are_named_not_passed_over_in_silence(
    capsys: pytest.CaptureFixture[str],
    amqp_url: str,
    dead: Dead,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message another channel fetches unacked while a command browses (two `dlq replay
    --all`, or a `dlq list` beside one, in two terminals) is invisible to basic.get: `replay
    --all` replayed the others, exited 0 and said nothing of it (500 dead letters, two replays
    and a list at once: 161 left behind); `list` blamed --limit, or said the queue was empty."""
    target = f"replayed-{uuid.uuid4().hex[:8]}"
    note = (
        f"note: 1 of the 3 messages in {dead.queue} could not be fetched, {{}}: another client "
        "holds them (a dlq list, show or replay still running?) or took them meanwhile\n"
    )
    other = pika.BlockingConnection(pika.URLParameters(amqp_url))
    holding: list[Any] = []
    browsing = DeadLetterQueue._browsing

    @contextlib.contextmanager
    def taken_meanwhile(self: DeadLetterQueue) -> Iterator[Any]:
        with browsing(self) as (ch, total, letters):  # counted: 3
            if not holding:  # the other client holds one message at a time
                held = other.channel()
                assert held.basic_get(dead.queue, auto_ack=False)[0] is not None
                holding.append(held)
            yield ch, total, letters

    monkeypatch.setattr(DeadLetterQueue, "_browsing", taken_meanwhile)
    try:
        other.channel().queue_declare(target)
        code, out, err = run(capsys, dead, "list")
        assert (code, len(listed(out)), err) == (0, 2, note.format("not listed"))
        holding.pop().close()  # the held message goes back
        code, out, err = run(capsys, dead, "replay", all=True, to=target)
        assert (code, len(out.splitlines()), err) == (0, 2, note.format("not replayed"))
        holding.pop().close()
        assert [b for b, _h in take_all(amqp_url, dead.queue)] == dead.bodies[:1]
    finally:
        other.channel().queue_delete(target)
        other.close()


def test_replay_all_checks_the_target_of_a_message_its_first_pass_did_not_see(
    capsys: pytest.CaptureFixture[str],
    amqp_url: str,
    dead: Dead,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between the pass that checks the targets and the pass that replays, another client
    takes the first message and a message naming a missing queue is dead-lettered: the replay
    stops before it, says why, and leaves it (and what follows) in the queue."""
    stray = b"stray"
    headers = {"x-runeworker-reason": "test", "x-runeworker-queue": "no-such-queue"}
    browsing = DeadLetterQueue._browsing
    calls: list[int] = []

    @contextlib.contextmanager
    def changed_between_passes(self: DeadLetterQueue) -> Iterator[Any]:
        calls.append(1)
        if len(calls) == 2:
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            try:
                ch = conn.channel()
                method, _props, _body = ch.basic_get(dead.queue, auto_ack=True)
                assert method is not None
                ch.basic_publish("", dead.queue, stray, pika.BasicProperties(headers=headers))
            finally:
                conn.close()
        with browsing(self) as found:
            yield found

    monkeypatch.setattr(DeadLetterQueue, "_browsing", changed_between_passes)
    take_all(amqp_url, EXECUTION)
    code, out, err = run(capsys, dead, "replay", all=True)
    assert code == 2 and len(out.splitlines()) == 2, out
    assert err == (
        "error: queue no-such-queue does not exist; the messages after it were not replayed\n"
    )
    assert [b for b, _h in take_all(amqp_url, EXECUTION)] == dead.bodies[1:]
    assert [b for b, _h in take_all(amqp_url, dead.queue)] == [stray]


def test_replay_refuses_what_it_cannot_do_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], amqp_url: str, dead: Dead
) -> None:
    assert run(capsys, dead, "replay", all=True, to="no-such-queue") == (
        2,
        "",
        "error: queue no-such-queue does not exist\n",
    )
    usage = "error: give either a message id (or #index) or --all\n"
    assert run(capsys, dead, "replay") == (2, "", usage)
    assert run(capsys, dead, "replay", id="#1", all=True) == (2, "", usage)
    assert run(capsys, dead, "replay", id="#1", to=dead.queue)[0] == 2
    # `--to "$QUEUE"` with QUEUE unset replayed to the message's own queue, as without --to
    empty = "error: --to needs a queue name (got an empty one)\n"
    assert run(capsys, dead, "replay", all=True, to="") == (2, "", empty)
    assert run(capsys, dead, "replay", id="#1", to=" ") == (2, "", empty)
    assert run(capsys, dead, "replay", id="#9")[0] == 1
    assert [b for b, _h in take_all(amqp_url, dead.queue)] == dead.bodies


def test_a_broker_error_names_the_url_without_its_password(
    capsys: pytest.CaptureFixture[str], amqp_url: str, dead: Dead
) -> None:
    wrong = amqp_url.replace("guest:guest@", "guest:wr0ng-Passw0rd@")
    bad = Dead(dead.queue, {**dead.overrides, "broker.url": wrong}, [], [])
    code, out, err = run(capsys, bad, "list")
    assert (code, out) == (2, "")
    assert err.startswith("error: cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:5672/")
    assert "wr0ng-Passw0rd" not in err


def test_a_broker_that_refuses_the_connection_is_said_to(
    capsys: pytest.CaptureFixture[str], dead: Dead
) -> None:
    """pika's connect error prints nothing: the line ended in a bare `AMQPConnectionError`."""
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = f"amqp://guest:s3cret-pw@127.0.0.1:{port}/"
    bad = Dead(
        dead.queue, {**dead.overrides, "broker.url": closed, "broker.retry_delay": 0.1}, [], []
    )
    code, out, err = run(capsys, bad, "list")
    assert (code, out) == (2, "")
    assert err == (
        f"error: cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:{port}/: "
        "ConnectionRefusedError: [Errno 111] Connection refused\n"
    )


@pytest.fixture
def dead_letter(
    amqp_url: str, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[bytes], Dead]]:
    """Dead-letters one body through a worker into a queue of its own; the queues are deleted
    afterwards."""
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    queues: list[str] = []

    def one(body: bytes) -> Dead:
        queue = f"dlq-test-{uuid.uuid4().hex[:8]}"
        queues.append(queue)
        extra = {"broker.dead_letter_queue": queue}
        with running_worker(amqp_url, redis_url, redis_prefix, **extra):
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            try:
                props = pika.BasicProperties(delivery_mode=2)
                conn.channel().basic_publish("", EXECUTION, body, props)
                deadline = time.monotonic() + 30
                while depth(amqp_url, queue) < 1:
                    assert time.monotonic() < deadline, "not dead-lettered"
                    conn.sleep(0.05)
            finally:
                conn.close()
        return Dead(queue, {"broker.url": amqp_url, "broker.dead_letter_queue": queue}, [body], [])

    yield one
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        for queue in queues:
            conn.channel().queue_delete(queue)
    finally:
        conn.close()


def test_show_of_a_body_holding_a_lone_surrogate_escape(
    capsys: pytest.CaptureFixture[str], dead_letter: Callable[[bytes], Dead]
) -> None:
    """Python's json reads `\\ud83d` alone (the worker refuses it, tests/integration/badinput.py);
    `show` must print it, escaped as it came, instead of failing to write it."""
    m = master([node("a", "log", message="x")], [], current="a")
    m["workflow_definition"]["nodes"][0]["credentials"] = {
        "type": "token",
        "values": {"token": SECRET},
    }
    m["accumulated_context"] = {"$trigger": {"name": "MARK"}}
    body = json.dumps(m).encode().replace(b'"MARK"', b'"caf\\ud83d"')
    code, out, err = run(capsys, dead_letter(body), "show", id="1")
    assert (code, err) == (0, "")
    assert '"name": "caf\\ud83d"' in out and SECRET not in out
    assert json.loads(out.partition("body:\n")[2])["execution_id"] == m["execution_id"]


@pytest.mark.parametrize(
    "credential",
    [
        {"id": "c1", "type": "token", "values": [SECRET]},
        {"id": "c1", "type": "token", "values": f"token={SECRET}"},
        {"id": "c1", "type": "token", "token": SECRET},
        [SECRET],
    ],
    ids=["list_values", "text_values", "flat", "no_object"],
)
def test_show_masks_a_credential_of_the_wrong_shape(
    capsys: pytest.CaptureFixture[str], dead_letter: Callable[[bytes], Dead], credential: Any
) -> None:
    """A refused message's credential of any shape is masked as well."""
    m = master([node("a", "teleport", to="mars")], [], current="a")
    m["workflow_definition"]["nodes"][0]["credentials"] = credential
    code, out, err = run(capsys, dead_letter(json.dumps(m).encode()), "show", id="1")
    assert (code, err) == (0, "")
    assert SECRET not in out and "***" in out


def test_show_masks_the_credentials_of_a_definition_encoded_twice(
    capsys: pytest.CaptureFixture[str], dead_letter: Callable[[bytes], Dead]
) -> None:
    """A producer that sends `workflow_definition` as a JSON string (refused by the worker:
    "Expected `object`, got `str`") still sent its credentials: `show` masks them, short ones
    too, and shows the definition as the text it was."""
    m = master([node("a", "log", message="x")], [], current="a")
    m["workflow_definition"]["nodes"][0]["credentials"] = {
        "type": "basic_auth",
        "values": {"username": "ann", "password": SECRET, "pin": "s3c"},
    }
    m["workflow_definition"] = json.dumps(m["workflow_definition"])
    code, out, err = run(capsys, dead_letter(json.dumps(m).encode()), "show", id="1")
    assert (code, err) == (0, "")
    assert SECRET not in out and "s3c" not in out
    shown = json.loads(json.loads(out.partition("body:\n")[2])["workflow_definition"])
    assert shown["nodes"][0]["credentials"]["values"] == dict.fromkeys(
        ("username", "password", "pin"), "***"
    )


def test_show_masks_the_credentials_of_a_body_that_is_not_utf8(
    capsys: pytest.CaptureFixture[str], dead_letter: Callable[[bytes], Dead]
) -> None:
    """One Latin-1 byte in the context made `show` fall back to masking by key name, which
    left a `custom` credential's `custom_data` in clear."""
    m = master([node("a", "log", message="x")], [], current="a")
    m["workflow_definition"]["nodes"][0]["credentials"] = {
        "type": "custom",
        "values": {"custom_data": json.dumps({"k": SECRET})},
    }
    m["accumulated_context"] = {"$trigger": {"name": "MARK"}}
    body = json.dumps(m).encode().replace(b'"MARK"', b'"caf\xe9"')
    code, out, err = run(capsys, dead_letter(body), "show", id="1")
    assert (code, err) == (0, "")
    assert SECRET not in out
    assert '"custom_data": "***"' in out and '"name": "caf\\xe9"' in out


@pytest.mark.parametrize("form", ["json", "not_json"])
def test_show_masks_the_password_of_every_url_the_message_carries(
    capsys: pytest.CaptureFixture[str], dead_letter: Callable[[bytes], Dead], form: str
) -> None:
    """A URL's password was masked in the node parameters only: one in the context, or in a
    body that is not JSON (a producer's broken message), was printed as it came."""
    m = master([node("a", "teleport", to="mars")], [], current="a")
    m["accumulated_context"] = {"$input": {"feed": f"https://ann:{SECRET}@feeds.example/x"}}
    body = json.dumps(m).encode()
    if form == "not_json":
        body = b"broken " + body[:-1]
    code, out, err = run(capsys, dead_letter(body), "show", id="1")
    assert (code, err) == (0, "")
    assert SECRET not in out and "https://ann:***@feeds.example/x" in out
    original = json.loads(body) if form == "json" else None
    if original is not None:  # the body is shown as it is otherwise
        assert json.loads(out.partition("body:\n")[2])["execution_id"] == original["execution_id"]


def test_list_and_show_escape_the_control_characters_a_message_carries(
    capsys: pytest.CaptureFixture[str], dead_letter: Callable[[bytes], Dead]
) -> None:
    """A dead letter is whatever a producer sent: an execution id holding a newline and an ESC
    sequence forged a line of `list` and drove the operator's terminal."""
    m = master([node("a", "teleport", to="mars")], [], current="a")
    m["execution_id"] = "ex\x1b[2J\n   2  forged"
    m["accumulated_context"] = {"$trigger": {"csi": "\x9b31m"}}
    dead = dead_letter(json.dumps(m).encode())
    code, out, err = run(capsys, dead, "list")
    assert (code, err) == (0, "")
    [row] = listed(out)
    assert row[4] == "ex\\x1b[2J\\n"
    code, out, err = run(capsys, dead, "show", id="1")
    assert (code, err) == (0, "")
    assert "\x1b" not in out and "\x9b" not in out
    assert "\nexecution: ex\\x1b[2J\\n   2  forged\n" in out
    assert json.loads(out.partition("body:\n")[2])["accumulated_context"] == {
        "$trigger": {"csi": "\x9b31m"}  # escaped as JSON: the same JSON
    }


def test_show_of_a_body_that_is_not_json_escapes_its_control_characters(
    capsys: pytest.CaptureFixture[str], dead_letter: Callable[[bytes], Dead]
) -> None:
    dead = dead_letter(b"garbage \x1b]0;title\x07\x1b[31m\r\nsecond line")
    code, out, err = run(capsys, dead, "show", id="1")
    assert (code, err) == (0, "")
    assert out.endswith("body:\ngarbage \\x1b]0;title\\x07\\x1b[31m\\r\nsecond line\n")


@pytest.mark.parametrize("command", ["list", "replay"])
def test_list_and_replay_hold_one_message_at_a_time_not_the_whole_queue(
    capsys: pytest.CaptureFixture[str],
    amqp_url: str,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """Oversized messages are dead-lettered whole (up to broker.max_message_bytes and beyond):
    listing or replaying 1000 of them must not hold 1000 bodies (`replay --all` held every
    body until it had checked every target queue)."""
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    queue = f"dlq-test-{uuid.uuid4().hex[:8]}"
    target = f"replayed-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        headers = {"x-runeworker-reason": "message too large", "x-runeworker-queue": EXECUTION}
        for _ in range(24):
            ch.basic_publish("", queue, b"x" * 2**20, pika.BasicProperties(headers=headers))
        dead = Dead(queue, {"broker.url": amqp_url, "broker.dead_letter_queue": queue}, [], [])
        ch.queue_declare(target)
        tracemalloc.start()
        try:
            if command == "list":
                code, out, err = run(capsys, dead, "list")
            else:
                code, out, err = run(capsys, dead, "replay", all=True, to=target)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (code, err) == (0, "")
        if command == "list":
            assert [row[5] for row in listed(out)] == [str(2**20)] * 24
            assert depth(amqp_url, queue) == 24
        else:
            assert len(out.splitlines()) == 24 and depth(amqp_url, queue) == 0
            assert depth(amqp_url, target) == 24
        assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB for 24 messages of 1 MiB"
    finally:
        conn.channel().queue_delete(queue)
        conn.channel().queue_delete(target)
        conn.close()
