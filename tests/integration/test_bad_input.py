"""The bad-input corpus (badinput.py) on the wire, against the real RabbitMQ and Redis.

A worker in a thread gets every case, each followed by a well-formed workflow. For every case:
the worker survives, the error names what is wrong, a `failed` completion is published exactly
when the execution can be identified, the raw message is dead-lettered exactly when it is bad
input (a failing node is an ordinary `halted` execution), and nothing is requeued. A node that
kills its own process runs under a real `runeworker serve`: the poison protection executes it
`broker.max_deliveries` times, then dead-letters it with a `failed` completion.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
from badinput import (
    CASES,
    INPUT,
    NODE,
    REFUSED,
    SECRET,
    UNREADABLE,
    Case,
    Env,
    closed_port,
    dumps,
    good,
    message,
)
from wire import (
    COMPLETION,
    DEAD,
    EXECUTION,
    STATUS,
    Got,
    Wire,
    check_status,
    node,
    rabbit_queues,
    running_worker,
    vhost_of,
)

pytestmark = pytest.mark.integration

OPTIONAL_STATUS_KEYS = {"parameters", "all_used_input_keys", "used_inputs"}


@dataclass
class Sent:
    case: Case
    env: Env
    body: bytes


def new_env(name: str, port: int) -> Env:
    return Env(str(uuid.uuid4()), f"mark-{uuid.uuid4().hex[:8]}-{name}", port)


def dead_copies(wire: Wire, body: bytes) -> list[Got]:
    return [g for g in wire.got[DEAD] if g.raw == body]


def has(text: str, words: tuple[str, ...]) -> bool:
    return all(w.lower() in text.lower() for w in words)


def settled(wire: Wire, sent: list[Sent], goods: list[str]) -> bool:
    """Every outcome the corpus expects has arrived."""
    for s in sent:
        eid = s.env.execution_id
        if s.case.kind != NODE and not dead_copies(wire, s.body):
            return False
        if s.case.kind != UNREADABLE and not wire.completions(eid):
            return False
    return all(wire.completions(eid) for eid in goods)


def problems_of(wire: Wire, s: Sent) -> list[str]:
    """What is wrong with the outcome of one case (empty when it is right)."""
    case, eid = s.case, s.env.execution_id
    out: list[str] = []
    copies = dead_copies(wire, s.body)
    wanted = 0 if case.kind == NODE else 1
    if len(copies) != wanted:
        out.append(f"{len(copies)} dead-letter copies, expected {wanted}")
    for got in copies:
        reason = str(got.headers.get("x-runeworker-reason"))
        if not has(reason, case.words) or SECRET in reason:
            out.append(f"dead-letter reason {reason!r} does not name {case.words}")
        if got.headers.get("x-runeworker-queue") != EXECUTION:
            out.append(f"dead-letter headers {got.headers}")
    if case.kind == UNREADABLE:  # nothing names the execution (nor its id with a suffix)
        named = [g.body for q in (STATUS, COMPLETION) for g in wire.got[q]]
        if any(eid in str(body.get("execution_id")) for body in named):
            out.append("a status or completion names an unidentifiable execution")
        return out
    done = [g.body for g in wire.completions(eid)]
    status = "halted" if case.kind == NODE else "failed"
    if [c["status"] for c in done] != [status]:
        return [*out, f"completions {[c['status'] for c in done]}, expected [{status}]"]
    if not has(done[0]["failure_reason"], case.words) or SECRET in json.dumps(done[0]):
        out.append(f"failure_reason {done[0]['failure_reason']!r} does not name {case.words}")
    statuses = [g.body for g in wire.statuses(eid)]
    expected = ["running", "failed"] if case.kind in (NODE, REFUSED) else ["failed"]
    if [(st["node_id"], st["status"]) for st in statuses] != [(case.node_id, e) for e in expected]:
        return [*out, f"statuses {[(st['node_id'], st['status']) for st in statuses]}"]
    failed = statuses[-1]
    check_status(failed, "failed", {"error"} | (set(failed) & OPTIONAL_STATUS_KEYS))
    if not has(failed["error"]["message"], case.words) or SECRET in json.dumps(failed):
        out.append(f"failed status error {failed['error']!r} does not name {case.words}")
    return out


def test_the_corpus_is_large_and_named_uniquely() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) >= 40
    assert {c.kind for c in CASES} == {UNREADABLE, INPUT, REFUSED, NODE}


def test_every_bad_input_gets_a_clear_error_and_nothing_is_lost(
    amqp_url: str, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runeworker")
    port = closed_port()
    with running_worker(amqp_url, redis_url, redis_prefix) as rw:
        wire = Wire(amqp_url)
        try:
            sent: list[Sent] = []
            goods: list[str] = []
            for case in CASES:
                env = new_env(case.name, port)
                sent.append(Sent(case, env, case.build(env)))
                wire.publish_api(sent[-1].body)
                ok = new_env("good", port)
                goods.append(ok.execution_id)
                wire.publish_api(good(ok))
            wire.wait("every case handled", lambda: settled(wire, sent, goods), timeout=120)
            wire.no_second_completion(goods[-1], settle=1.0)  # late duplicates would show now
            assert rw.thread.is_alive() and rw.exit_code == []
            problems = {s.case.name: problems_of(wire, s) for s in sent}
            assert {name: p for name, p in problems.items() if p} == {}
            for eid in goods:
                done = [g.body for g in wire.completions(eid)]
                assert [c["status"] for c in done] == ["completed"], done
            good_ids = [eid.encode() for eid in goods]
            assert [g for g in wire.got[DEAD] if any(e in g.raw for e in good_ids)] == []
            depth = rabbit_queues(vhost_of(amqp_url))[EXECUTION]["messages"]
            assert depth == 0  # every delivery acked once; nothing requeued
        finally:
            wire.close()
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "connection lost" in m or "step of execution" in m]


# -- a node that kills its own process, under `runeworker serve` --------------------------------


def write_config(path: Path, amqp_url: str, redis_url: str, prefix: str) -> None:
    tables: dict[str, dict[str, Any]] = {
        "broker": {"url": amqp_url, "max_deliveries": 3, "prefetch": 4, "retry_delay": 0.2},
        "redis": {"url": redis_url, "key_prefix": prefix},
        "worker": {"processes": 1, "graceful_timeout": 5.0},
        "supervisor": {"restart_backoff": 0.1, "restart_backoff_max": 0.5, "crash_limit": 100},
        "metrics": {"listen": ""},
        "logging": {"level": "INFO", "format": "text"},
    }
    path.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
            for name, table in tables.items()
        )
    )


@pytest.fixture
def serve(
    tmp_path: Path, amqp_url: str, redis_url: str, redis_prefix: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`runeworker serve` with the corpus's node types loaded through the environment hook."""
    config = tmp_path / "runeworker.toml"
    write_config(config, amqp_url, redis_url, redis_prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNEWORKER_", "RABBITMQ_"))}
    here = str(Path(__file__).parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    env["RUNEWORKER_EXTRA_NODE_MODULES"] = "badinput"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runeworker", "serve", "-c", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_consumer(amqp_url, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


def wait_consumer(amqp_url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"serve exited with {proc.returncode}"
            ch = conn.channel()
            try:
                if ch.queue_declare(EXECUTION, passive=True).method.consumer_count:
                    return
                ch.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass  # not declared yet
            conn.sleep(0.1)
        raise AssertionError(f"no consumer on {EXECUTION} after {timeout} s")
    finally:
        conn.close()


@pytest.mark.parametrize(
    "headers",
    [None, {"x-delivery-count": 0}],  # a classic queue keeps a publisher's count as it is
    ids=["plain", "publisher_delivery_count"],
)
def test_a_node_that_kills_its_process_is_poison_after_max_deliveries(
    tmp_path: Path, amqp_url: str, serve: subprocess.Popen[bytes], headers: dict[str, Any] | None
) -> None:
    attempts = tmp_path / "attempts"
    wire = Wire(amqp_url)
    try:
        before = new_env("good", 0)
        wire.publish_api(good(before))
        env = new_env("poison", 0)
        body = dumps(message(env, [node("a", "test.exit", file=str(attempts))]))
        wire.ch.basic_publish(
            "", EXECUTION, body, pika.BasicProperties(delivery_mode=2, headers=headers)
        )
        after = [new_env("good", 0) for _ in range(3)]
        for e in after:
            wire.publish_api(good(e))
        done = wire.completion(env.execution_id, timeout=90)
        assert done["status"] == "failed"
        assert done["failure_reason"] == (
            "message was delivered 3 times without completing; poison"
        )
        for e in (before, *after):
            assert wire.completion(e.execution_id, timeout=30)["status"] == "completed"
        pids = attempts.read_text().split()
        assert len(pids) == 3 and len(set(pids)) == 3  # three children died, one each
        wire.wait("the dead letter", lambda: bool(dead_copies(wire, body)))
        [copy] = dead_copies(wire, body)
        assert copy.headers["x-runeworker-reason"] == done["failure_reason"]
        assert copy.headers["x-runeworker-redelivered"] is True
        statuses = [(g.body["node_id"], g.body["status"]) for g in wire.statuses(env.execution_id)]
        assert statuses[-1] == ("a", "failed")
        wire.no_second_completion(env.execution_id)
        assert serve.poll() is None, "the supervisor exited"
        assert rabbit_queues(vhost_of(amqp_url))[EXECUTION]["messages"] == 0
    finally:
        wire.close()
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(20) == 0
    # each child ended by the node backed off its replacement, none stopped the supervisor
    crashes = (tmp_path / "serve.log").read_text().count("failed after it was ready: exit 70")
    assert crashes == 3, (tmp_path / "serve.log").read_text()
