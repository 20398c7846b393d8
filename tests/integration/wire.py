"""Helpers for the worker wire tests: a worker child in a thread, a test-side AMQP client that
plays the Rune API and the status/completion consumers, a local HTTP server, workflow builders
and the key-by-key contracts of docs/WIRE.md sections 3-5."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions

from runeworker.child.worker import Worker
from runeworker.config import load_config

EXECUTION = "workflow.execution"
RESUME = "workflow.resume"
STATUS = "workflow.node.status"
COMPLETION = "workflow.completion"
MIRROR = "workflow.worker.initiated"
DEAD = "runeworker.dead-letter"
TAP = "tap"  # the test's own copy of what the worker publishes to workflows/workflow.execution
EXCHANGE = "workflows"
RUNE_QUEUES = (EXECUTION, RESUME, STATUS, COMPLETION, MIRROR)

NANOS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
# Exact key sets of docs/WIRE.md 4.1 (every status), 5 (every completion) and 3.1 (the next-node
# messages the worker publishes, plus runeworker's own `branch_token`, and `started_at_ms` in the
# messages of a single-branch execution).
BASE_STATUS = {"workflow_id", "execution_id", "node_id", "node_name"} | {
    "status",
    "executed_at",
    "duration_ms",
}
BASE_COMPLETION = {"workflow_id", "execution_id", "status"} | {
    "final_context",
    "completed_at",
    "total_duration_ms",
}
NEXT_KEYS = (
    {"workflow_id", "execution_id", "current_node", "workflow_definition"}
    | {"workflow_version", "workflow_version_id", "accumulated_context"}
    | {"from_node", "is_worker_initiated", "branch_token", "started_at_ms"}
)


# -- workflows and master messages ------------------------------------------------------------


def node(node_id: str, type_: str, name: str | None = None, **params: Any) -> dict[str, Any]:
    """A node of a definition; `name` defaults to the id."""
    out: dict[str, Any] = {"id": node_id, "name": name or node_id, "type": type_}
    if type_ == "ManualTrigger":
        out["trigger"] = True
    out["parameters"] = params
    return out


def edge(src: str, dst: str, edge_id: str | None = None) -> dict[str, Any]:
    return {"id": edge_id or f"{src}-{dst}", "src": src, "dst": dst}


def http(node_id: str, url: str) -> dict[str, Any]:
    return node(node_id, "http", url=url, method="GET")


def master(
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    context: dict[str, Any] | None = None,
    current: str = "trigger",
) -> dict[str, Any]:
    """The start message exactly as the Rune API builds it (only its keys), with a fresh
    execution id; the definition carries keys the worker must keep (`notes`, edge `label`)."""
    return {
        "workflow_id": "42",
        "workflow_version": 3,
        "workflow_version_id": 17,
        "execution_id": str(uuid.uuid4()),
        "current_node": current,
        "workflow_definition": {"nodes": nodes, "edges": edges, "notes": "kept as is"},
        "accumulated_context": context or {},
    }


def log_chain() -> dict[str, Any]:
    """Trigger -> one log node `Say`, started at the trigger."""
    start, say = node("trigger", "ManualTrigger", "Start"), node("say", "log", "Say", message="hi")
    return master([start, say], [edge("trigger", "say")])


# -- the worker -------------------------------------------------------------------------------


@dataclass
class RunningWorker:
    worker: Worker
    thread: threading.Thread
    exit_code: list[int] = field(default_factory=list)


@contextlib.contextmanager
def running_worker(
    amqp_url: str, redis_url: str, prefix: str, scheduler_lock: str | None = None, **extra: Any
) -> Iterator[RunningWorker]:
    """A Worker in a thread, yielded once it consumes `workflow.execution`; stopped and joined
    (and checked to have stopped) afterwards."""
    overrides = {"broker.url": amqp_url, "redis.url": redis_url, "redis.key_prefix": prefix}
    overrides.update(extra)
    worker = Worker(load_config(None, env={}, overrides=overrides), scheduler_lock=scheduler_lock)
    worker.parking.grace = 0.2  # a resent delivery without a receipt waits (child/receipts.py)
    rw = RunningWorker(worker, threading.Thread(target=lambda: None))
    rw.thread = threading.Thread(target=lambda: rw.exit_code.append(worker.run()), daemon=True)
    rw.thread.start()
    try:
        wait_consumed(amqp_url, rw)
        yield rw
    finally:
        worker.stop()
        rw.thread.join(15)
    assert not rw.thread.is_alive(), "the worker did not stop within 15 s"
    assert rw.exit_code == [0], f"worker exit code {rw.exit_code}"


def wait_consumed(amqp_url: str, rw: RunningWorker, timeout: float = 15.0) -> None:
    """Until the worker's consumer is registered on the execution queue."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert rw.thread.is_alive(), f"the worker thread ended: exit code {rw.exit_code}"
            ch = conn.channel()
            try:
                ok = ch.queue_declare(EXECUTION, passive=True)
                if ok.method.consumer_count >= 1:
                    return
                ch.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass  # not declared yet (404 closes the channel)
            conn.sleep(0.05)
        raise AssertionError(f"no consumer on {EXECUTION} after {timeout} s")
    finally:
        conn.close()


# -- the test side of the wire ----------------------------------------------------------------


@dataclass
class Got:
    """One message read from a queue."""

    queue: str
    raw: bytes
    content_type: str | None
    delivery_mode: int | None
    headers: dict[str, Any]
    body: Any  # parsed JSON, None when the bytes are not JSON


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # the bad-input corpus nests JSON 10,000 deep
        return None


class Wire:
    """The Rune API (publishes start messages) and the status/completion consumers, reading
    with basic_get into per-queue lists; tests filter by execution id."""

    def __init__(self, amqp_url: str) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.ch = self.conn.channel()
        # A copy of the worker's next-node messages (same exchange and routing key).
        self.tap = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(self.tap, EXCHANGE, routing_key=EXECUTION)
        self.got: dict[str, list[Got]] = {q: [] for q in (STATUS, COMPLETION, MIRROR, DEAD, TAP)}
        self.lock = threading.Lock()

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError):
            self.conn.close()

    def publish_api(self, body: bytes | dict[str, Any]) -> None:
        """As the API: default exchange, persistent, no content type."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        props = pika.BasicProperties(delivery_mode=2)
        self.ch.basic_publish("", EXECUTION, data, props)

    def publish_exchange(self, body: dict[str, Any]) -> None:
        props = pika.BasicProperties(delivery_mode=2)
        self.ch.basic_publish(EXCHANGE, EXECUTION, json.dumps(body).encode(), props)

    def add(self, queue: str, props: pika.BasicProperties, raw: bytes) -> None:
        got = Got(
            queue, raw, props.content_type, props.delivery_mode, props.headers or {}, _parse(raw)
        )
        with self.lock:
            self.got[queue].append(got)

    def drain(self) -> None:
        for queue in self.got:
            name = self.tap if queue == TAP else queue
            while True:
                method, props, raw = self.ch.basic_get(name, auto_ack=True)
                if method is None:
                    break
                self.add(queue, props, raw)

    def wait(self, what: str, ready: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if ready():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.conn.sleep(0.02)

    def of(self, queue: str, execution_id: str) -> list[Got]:
        with self.lock:
            return [g for g in self.got[queue] if _eid(g.body) == execution_id]

    def statuses(self, execution_id: str) -> list[Got]:
        return self.of(STATUS, execution_id)

    def completions(self, execution_id: str) -> list[Got]:
        return self.of(COMPLETION, execution_id)

    def completion(self, execution_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """The completion of the execution (waited for), checked key by key."""
        self.wait(
            f"the completion of {execution_id}",
            lambda: bool(self.completions(execution_id)),
            timeout,
        )
        got = self.completions(execution_id)[0]
        check_published(got)
        check_completion(got.body)
        return dict(got.body)

    def no_second_completion(self, execution_id: str, settle: float = 1.0) -> None:
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            self.drain()
            self.conn.sleep(0.05)
        self.drain()
        count = len(self.completions(execution_id))
        assert count == 1, f"{count} completions for execution {execution_id}"


def _eid(body: Any) -> Any:
    return body.get("execution_id") if isinstance(body, dict) else None


def drain_from(amqp_url: str, wire: Wire, queue: str) -> None:
    """Read `queue` into `wire` from a connection of our own (safe from another thread)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        while True:
            method, props, raw = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return
            wire.add(queue, props, raw)
    finally:
        conn.close()


def _ctl_json(*args: str) -> Any:
    cmd = ["rabbitmqctl", "-q", *args, "--formatter", "json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, timeout=60).stdout)


def rabbit_queues(vhost: str) -> dict[str, dict[str, Any]]:
    """`rabbitmqctl list_queues` of the vhost: name -> {durable, arguments, messages}."""
    columns = ("name", "durable", "auto_delete", "arguments", "messages")
    return {q["name"]: q for q in _ctl_json("list_queues", "-p", vhost, *columns)}


def worker_connections(vhost: str) -> list[tuple[str, int]]:
    """(name, negotiated heartbeat) of the vhost's connections named `runeworker`."""
    named = ["connection_name", "longstr", "runeworker"]
    return [
        (c["name"], c["timeout"])
        for c in _ctl_json("list_connections", "name", "vhost", "timeout", "client_properties")
        if c["vhost"] == vhost and named in c["client_properties"]
    ]


def vhost_of(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).path[1:])


# -- contracts (docs/WIRE.md sections 3-5) ----------------------------------------------------


def check_published(got: Got) -> None:
    """What the worker publishes is JSON, persistent, with content type application/json."""
    assert got.content_type == "application/json", got
    assert got.delivery_mode == 2, got
    assert got.body is not None, f"not JSON: {got.raw[:200]!r}"


def check_status(st: dict[str, Any], status: str, extra: set[str]) -> None:
    """Exact key set (the base keys plus `extra`) and the types of docs/WIRE.md section 4.1."""
    assert set(st) == BASE_STATUS | extra, f"{status} status keys {sorted(st)}"
    assert st["status"] == status
    assert NANOS.match(st["executed_at"]), st["executed_at"]
    assert type(st["duration_ms"]) is int and st["duration_ms"] >= 0
    if status == "running":
        assert st["duration_ms"] == 0
    for key in ("workflow_id", "execution_id", "node_id", "node_name"):
        assert isinstance(st[key], str) and st[key], key


def check_completion(c: dict[str, Any]) -> None:
    """Exact key set and the types of docs/WIRE.md section 5."""
    extra = {"failure_reason"} if c["status"] in ("failed", "halted") else set()
    assert set(c) == BASE_COMPLETION | extra, f"completion keys {sorted(c)}"
    assert c["status"] in ("completed", "failed", "halted")
    assert isinstance(c["final_context"], dict)
    assert NANOS.match(c["completed_at"]), c["completed_at"]
    assert type(c["total_duration_ms"]) is int and c["total_duration_ms"] >= 0
    if extra:
        assert isinstance(c["failure_reason"], str) and c["failure_reason"]


def node_statuses(
    wire: Wire, execution_id: str, node_id: str, count: int = 0
) -> list[dict[str, Any]]:
    """The statuses of one node in arrival order (once `count` have arrived), each checked as
    published by the worker. A completion can be readable before the statuses committed with
    it: RabbitMQ makes a transaction visible queue by queue."""

    def mine() -> list[Got]:
        return [g for g in wire.statuses(execution_id) if g.body["node_id"] == node_id]

    wire.wait(f"{count} statuses of node {node_id}", lambda: len(mine()) >= count)
    for got in mine():
        check_published(got)
    return [g.body for g in mine()]


# -- a local HTTP server ----------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    headers: dict[str, str]


class JsonServer:
    """127.0.0.1 HTTP server answering `{"uuid": ..., "path": ...}`; `before` runs in the
    handler before it answers (the heartbeat test uses it to look at the queues)."""

    def __init__(self, before: Callable[[str], None] | None = None) -> None:
        self.hits: list[Hit] = []
        self.before = before
        self.uuid = str(uuid.uuid4())
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits.append(Hit(self.path, dict(self.headers.items())))
                if owner.before is not None:
                    owner.before(self.path)
                data = json.dumps({"uuid": owner.uuid, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
