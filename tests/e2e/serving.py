"""Helpers for the `runeworker serve` end-to-end tests: the real command in its own process group,
the Rune side of the wire (start messages in, completions out) and the broker's own view of the
vhost through rabbitmqctl."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
import psutil
from prometheus_client.parser import text_string_to_metric_families

from runeworker.adapters.amqp import typed_queues
from runeworker.config import BrokerConfig
from runeworker.engine.local import start_message
from runeworker.engine.messages import encode
from runeworker.supervisor.systemd import NOTIFY_VARIABLES

EXECUTION = "workflow.execution"
COMPLETION = "workflow.completion"
STATUS = "workflow.node.status"
EXCHANGE = "workflows"
PURGED = (EXECUTION, COMPLETION, "workflow.resume", STATUS,
          "workflow.worker.initiated", "runeworker.dead-letter")  # fmt: skip

T = TypeVar("T")
QueueType = Literal["classic", "quorum"]  # `broker.queue_type`


def wait_until(check: Callable[[], T], what: str, timeout: float = 15.0, poll: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)
    return result


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    """A TOML file of `sections` (JSON literals are valid TOML for strings and numbers)."""
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
        for name, table in sections.items()
    )
    path.write_text(text)


def log_chain(length: int) -> bytes:
    """A workflow of `length` log nodes n1 -> n2 -> ...; at DEBUG so the log stays small."""
    nodes = [
        {"id": f"n{i}", "name": f"n{i}", "type": "log",
         "parameters": {"message": f"step {i}", "level": "debug"}}
        for i in range(1, length + 1)
    ]  # fmt: skip
    edges = [{"id": f"e{i}", "src": f"n{i}", "dst": f"n{i + 1}"} for i in range(1, length)]
    return json.dumps({"nodes": nodes, "edges": edges}).encode()


def vhost_of(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).path[1:])


def _ctl_json(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", *args, "--formatter", "json"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return list(json.loads(out)) if out.strip() else []


def consumers(vhost: str) -> list[dict[str, Any]]:
    """`rabbitmqctl list_consumers`: queue_name, prefetch_count, channel_pid of each consumer."""
    return _ctl_json("list_consumers", "-p", vhost, "queue_name", "prefetch_count", "channel_pid")


def execution_prefetches(vhost: str) -> list[int]:
    """The prefetch of every consumer of the execution queue, sorted."""
    return sorted(c["prefetch_count"] for c in consumers(vhost) if c["queue_name"] == EXECUTION)


def worker_connections(vhost: str) -> list[tuple[str, int]]:
    """(name, negotiated heartbeat in s) of the vhost's connections named `runeworker`."""
    rows = _ctl_json("list_connections", "name", "vhost", "timeout", "client_properties")
    mark = ["connection_name", "longstr", "runeworker"]
    return sorted(
        (r["name"], r["timeout"])
        for r in rows
        if r["vhost"] == vhost and mark in r["client_properties"]
    )


def samples(text: str, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples `name` of a /metrics text whose labels include `labels`: labels -> value."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    }


def queue_counts(vhost: str) -> dict[str, tuple[int, int]]:
    """`rabbitmqctl list_queues`: name -> (messages_ready, messages_unacknowledged)."""
    rows = _ctl_json("list_queues", "-p", vhost, "name", "messages_ready",
                     "messages_unacknowledged")  # fmt: skip
    return {r["name"]: (r["messages_ready"], r["messages_unacknowledged"]) for r in rows}


class Serve:
    """`python -m runeworker serve -c CONFIG` in its own session; its output goes to a file.
    `python_args` replace `-m runeworker` (a launcher of the test's own)."""

    def __init__(
        self,
        directory: Path,
        config: Path,
        env: dict[str, str],
        python_args: tuple[str, ...] = ("-m", "runeworker"),
    ) -> None:
        self.dir = directory
        self.config = config
        self.log_path = directory / f"serve-{time.monotonic_ns()}.log"
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in kill())
        self.proc = subprocess.Popen(
            [sys.executable, *python_args, "serve", "-c", str(config)],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() reaches every child
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> set[int]:
        """Live (not zombie) children of the supervisor."""
        try:
            kids = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return set()
        out = set()
        for kid in kids:
            with contextlib.suppress(psutil.NoSuchProcess):
                if kid.status() != psutil.STATUS_ZOMBIE:
                    out.add(kid.pid)
        return out

    def workers(self) -> set[int]:
        """Live children that have logged that they consume (not the scheduler, nor one
        still booting)."""
        consuming = {int(p) for p in re.findall(r"child (\d+) consuming ", self.log())}
        return self.children() & consuming

    def metrics_base(self) -> str:
        """http://host:port of the metrics endpoint, from the log line announcing it."""
        pattern = re.compile(r"metrics on (http://[\d.]+:\d+)/metrics")
        found = wait_until(lambda: pattern.search(self.log()), "the metrics endpoint in the log")
        assert found is not None
        return found.group(1)

    def wait_log(self, text: str, timeout: float = 15.0) -> None:
        wait_until(lambda: text in self.log(), f"{text!r} in the serve log", timeout)

    def wait_log_match(self, pattern: str, timeout: float = 15.0) -> None:
        wait_until(lambda: re.search(pattern, self.log()), f"/{pattern}/ in the log", timeout)

    def spawned(self) -> list[int]:
        """The pids of every child the supervisor spawned, in spawn order."""
        return [int(p) for p in re.findall(r"spawned child (\d+)", self.log())]

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of a GET on the metrics endpoint."""
        try:
            with urllib.request.urlopen(self.metrics_base() + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def send(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve still running after {timeout} s") from None

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and children) and reap the supervisor."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log_file.close()


def serve_env(amqp_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """The environment of `serve`: ours without runeworker/systemd/prometheus variables."""
    dropped = {*NOTIFY_VARIABLES, "PROMETHEUS_MULTIPROC_DIR", "RUNTIME_DIRECTORY"}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNEWORKER_", "WORKFLOW_")) and k not in dropped
    }
    env.update(RABBITMQ_URL=amqp_url, REDIS_URL=redis_url, RUNEWORKER_REDIS_KEY_PREFIX=prefix)
    env.update(extra)
    return env


class Rune:
    """The Rune API and the completion consumer: publishes start messages, reads completions."""

    def __init__(self, amqp_url: str, queue_type: QueueType = "classic") -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.ch = self.conn.channel()
        # The same topology the worker declares (the same arguments: none, or with
        # `broker.queue_type = "quorum"` the type of the queues it types), so a start message
        # published before the first child is up is not dropped and neither declare fails.
        self.ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        typed = typed_queues(BrokerConfig(queue_type=queue_type))
        for queue in PURGED:
            self.ch.queue_declare(queue, durable=True, arguments=typed.get(queue))
            if queue != "runeworker.dead-letter":
                self.ch.queue_bind(queue, EXCHANGE, routing_key=queue)
            self.ch.queue_purge(queue)  # what an earlier, failed test may have left
        self.completions: dict[str, list[dict[str, Any]]] = {}

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError):
            self.conn.close()

    def publish(self, definition: bytes, count: int) -> list[str]:
        """Publish `count` start messages of `definition` as the API does; their execution ids."""
        ids = []
        props = pika.BasicProperties(delivery_mode=2)
        for _ in range(count):
            msg = start_message(definition)
            self.ch.basic_publish("", EXECUTION, encode(msg), props)
            ids.append(msg.execution_id)
        return ids

    def drain(self) -> None:
        """Read every completion waiting on the queue into `completions`."""
        while True:
            method, _props, raw = self.ch.basic_get(COMPLETION, auto_ack=True)
            if method is None:
                return
            body = json.loads(raw)
            self.completions.setdefault(body["execution_id"], []).append(body)

    def done(self, ids: list[str]) -> int:
        """How many of `ids` have at least one completion (after a drain)."""
        self.drain()
        return sum(1 for eid in ids if self.completions.get(eid))

    def wait_done(self, ids: list[str], timeout: float, settle: float = 2.0) -> None:
        """Until every id has a completion, then `settle` more seconds to catch duplicates."""
        deadline = time.monotonic() + timeout
        while (n := self.done(ids)) < len(ids):
            if time.monotonic() > deadline:
                raise AssertionError(f"{n} of {len(ids)} executions completed after {timeout} s")
            self.conn.sleep(0.05)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            self.drain()
            self.conn.sleep(0.1)
        self.drain()

    def statuses(self, ids: list[str]) -> dict[str, list[str]]:
        """The completion statuses of each id (exactly one `completed` is the goal)."""
        return {eid: [c["status"] for c in self.completions.get(eid, [])] for eid in ids}

    def wait_steps(self, steps: int, timeout: float = 30.0) -> None:
        """Until `steps` log steps are done: each publishes two statuses (running, success)."""

        def check() -> bool:
            self.conn.sleep(0.01)
            return self.message_count(STATUS) >= 2 * steps

        wait_until(check, f"{steps} steps done", timeout, poll=0)

    def consumer_count(self, queue: str = EXECUTION) -> int:
        return int(self.ch.queue_declare(queue, passive=True).method.consumer_count)

    def message_count(self, queue: str = EXECUTION) -> int:
        return int(self.ch.queue_declare(queue, passive=True).method.message_count)

    def wait_consumers(self, n: int, timeout: float = 20.0) -> None:
        """Until exactly `n` consumers are registered on the execution queue."""

        def check() -> bool:
            self.conn.sleep(0.05)
            return self.consumer_count() == n

        wait_until(check, f"{n} consumers on {EXECUTION}", timeout, poll=0)


def free_port() -> int:
    """A loopback port nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Forwarder:
    """A TCP relay from a loopback port to another one, opened on demand: until `open()` the
    port refuses connections, as a service that is down does."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self._server is not None:
            try:
                client, _ = self._server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        server, self._server = self._server, None
        for sock in [*([server] if server else []), *self._sockets]:
            with contextlib.suppress(OSError):  # wakes the accept(): close() alone does not
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
