"""`runeworker serve` as a real process against the real RabbitMQ and Redis: children killed,
drained, rolled, scaled and recycled under load, and what the supervisor shows to Prometheus and
systemd.

Every test starts the real command (`python -m runeworker serve -c FILE`) in its own process
group, plays the Rune API on the wire (start messages in, completions out) and checks the
broker's own view with rabbitmqctl. Each test purges the Rune queues first and has its own Redis
prefix; the process group is SIGKILLed afterwards whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
from serving import (
    EXECUTION,
    Forwarder,
    Rune,
    Serve,
    execution_prefetches,
    free_port,
    log_chain,
    queue_counts,
    samples,
    serve_env,
    vhost_of,
    wait_until,
    worker_connections,
    write_config,
)

pytestmark = pytest.mark.e2e

GRACEFUL = 10.0


class Start(Protocol):
    def __call__(
        self, env: dict[str, str] | None = None, *, urls_in_file: bool = False,
        python_args: tuple[str, ...] = ("-m", "runeworker"), **sections: dict[str, Any],
    ) -> Serve: ...  # fmt: skip


def config_for(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The test defaults (2 children, quick restarts, metrics on a free port) plus `sections`."""
    values: dict[str, dict[str, Any]] = {
        "worker": {"processes": 2, "timeout": 30.0, "graceful_timeout": GRACEFUL},
        "supervisor": {"restart_backoff": 0.1, "restart_backoff_max": 1.0},
        "metrics": {"listen": "127.0.0.1:0", "directory": str(tmp_path / "metrics")},
        "logging": {"format": "text", "level": "INFO"},
    }
    for name, table in sections.items():
        values.setdefault(name, {}).update(table)
    return values


@pytest.fixture
def start(tmp_path: Path, amqp_url: str, redis_url: str, redis_prefix: str) -> Iterator[Start]:
    """start(env=..., **config sections) -> a running `serve`; its process group is killed at
    the end. Later calls reuse the Redis prefix (a restart of the same deployment).
    `urls_in_file`: the broker and Redis URLs in the config file, not in the environment (which
    would override the file), so that a reload can change them."""
    started: list[Serve] = []
    config = tmp_path / "runeworker.toml"

    def _start(
        env: dict[str, str] | None = None,
        *,
        urls_in_file: bool = False,
        python_args: tuple[str, ...] = ("-m", "runeworker"),
        **sections: dict[str, Any],
    ) -> Serve:
        full_env = serve_env(amqp_url, redis_url, redis_prefix, **(env or {}))
        if urls_in_file:
            sections.setdefault("broker", {}).setdefault("url", full_env.pop("RABBITMQ_URL"))
            sections.setdefault("redis", {}).setdefault("url", full_env.pop("REDIS_URL"))
        write_config(config, config_for(tmp_path, **sections))
        started.append(Serve(tmp_path, config, full_env, python_args))
        return started[-1]

    try:
        yield _start
    finally:
        for serve in started:
            serve.kill()


def workers(serve: Serve, n: int, without: set[int] | None = None) -> set[int]:
    """Wait until exactly `n` worker children consume, none of them in `without`."""

    def check() -> set[int]:
        pids = serve.workers()
        return pids if len(pids) == n and not pids & (without or set()) else set()

    return wait_until(check, f"{n} workers (excluding {sorted(without or ())})", timeout=20)


def exactly_once(rune: Rune, ids: list[str]) -> None:
    statuses = rune.statuses(ids)
    wrong = {eid: s for eid, s in statuses.items() if s != ["completed"]}
    assert not wrong, f"{len(wrong)} of {len(ids)} without exactly one completion: {wrong}"


def queue_is_empty(amqp_url: str, rune: Rune) -> None:
    assert rune.message_count(EXECUTION) == 0
    assert queue_counts(vhost_of(amqp_url))[EXECUTION] == (0, 0)  # (ready, unacknowledged)


def scrape(serve: Serve) -> str:
    status, text = serve.get("/metrics")
    assert status == 200, text
    return text


def restarts(serve: Serve) -> dict[str, float]:
    """runeworker_child_restarts_total by reason, from /metrics."""
    found = samples(scrape(serve), "runeworker_child_restarts_total")
    return {dict(labels)["reason"]: value for labels, value in found.items() if value}


# --- 1. a child killed under load -------------------------------------------------------------


def test_sigkill_of_a_child_under_load_loses_and_duplicates_nothing(
    start: Start, rune: Rune, amqp_url: str
) -> None:
    serve = start()
    rune.wait_consumers(2)
    first = workers(serve, 2)
    # The queue is FIFO: every first node runs before any second one, so the first
    # completion comes after ~2850 of the 3000 steps; 30 steps is early, with every prefetch
    # full, and leaves room for a loaded machine that keeps this test process from sending
    # the signal (with 600 steps a CI run sharing the cores saw a completion first)
    ids = rune.publish(log_chain(20), 150)
    rune.wait_steps(30)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert rune.done(ids) == 0, "completions before the kill: the test proves little"
    replacement = workers(serve, 2, without={victim}) - first
    assert len(replacement) == 1
    rune.wait_done(ids, timeout=60, settle=3.0)
    exactly_once(rune, ids)
    queue_is_empty(amqp_url, rune)
    assert re.search(rf"child {victim} \(slot \d+\) crashed: signal 9", serve.log())
    assert restarts(serve) == {"crash": 1}
    # The victim most likely died inside a step: its in-flight gauge must go with it.
    assert list(samples(scrape(serve), "runeworker_inflight_nodes").values()) == [0]


# --- 2. SIGTERM under load, then a fresh serve ---------------------------------------------------


def test_sigterm_under_load_drains_and_a_restart_finishes_every_execution(
    start: Start, rune: Rune, amqp_url: str
) -> None:
    serve = start()
    rune.wait_consumers(2)
    # FIFO: the first completion comes after ~4350 of the 4500 steps; the children go on
    # stepping until the supervisor's SIGTERM reaches them, hundreds of steps on a fast worker
    # and more while a loaded machine keeps this test process from sending the signal (with
    # chains of 20, a loaded CI run once saw a completion before the drain)
    ids = rune.publish(log_chain(30), 150)
    rune.wait_steps(50)  # of 4500
    serve.send(signal.SIGTERM)
    assert serve.wait(GRACEFUL + 5) == 0
    # The supervisor logs every SIGKILL at the graceful timeout (a log line, not a clock).
    assert "still running after the graceful timeout" not in serve.log(), "the drain needed SIGKILL"
    assert rune.done(ids) == 0, "completions before SIGTERM: the test proves little"
    assert rune.consumer_count() == 0
    # Nothing is held by a dead connection: what was not done is ready for the next worker.
    assert queue_counts(vhost_of(amqp_url))[EXECUTION][1] == 0

    again = start()
    rune.wait_done(ids, timeout=90, settle=3.0)
    exactly_once(rune, ids)
    queue_is_empty(amqp_url, rune)
    assert again.proc.poll() is None


# --- 3. SIGHUP reloads the prefetch ------------------------------------------------------------


def test_sighup_rolls_children_onto_the_new_prefetch(
    start: Start, rune: Rune, amqp_url: str, tmp_path: Path
) -> None:
    vhost = vhost_of(amqp_url)
    serve = start(broker={"prefetch": 1})
    rune.wait_consumers(2)
    old = workers(serve, 2)
    assert execution_prefetches(vhost) == [1, 1]
    write_config(serve.config, config_for(tmp_path, broker={"prefetch": 7}))
    serve.send(signal.SIGHUP)
    new = workers(serve, 2, without=old)
    rune.wait_consumers(2)
    wait_until(lambda: execution_prefetches(vhost) == [7, 7], "prefetch 7 on both consumers",
               timeout=20, poll=0.2)  # fmt: skip
    assert serve.workers() == new
    assert "config reloaded (generation 1)" in serve.log()
    assert serve.log().count("(prefetch 7)") == 2


# `serve` that sends itself a reload and a scale-up as it starts, before the supervisor's
# handlers are installed (whose default actions end and stop a process)
SIGNALS_WHILE_STARTING = """
import os, signal, sys
import runeworker.commands.serve as command
from runeworker.cli import main
real = command.serve
def serve(*args, **kwargs):
    for sig in (signal.SIGHUP, signal.SIGTTIN):
        os.kill(os.getpid(), sig)
    return real(*args, **kwargs)
command.serve = serve
sys.exit(main(sys.argv[1:]))
"""


def test_a_reload_or_scaling_sent_while_serve_starts_is_acted_on(start: Start, rune: Rune) -> None:
    """Held from `main` on (runeworker/cli.py) until the supervisor's handlers take them."""
    serve = start(python_args=("-c", SIGNALS_WHILE_STARTING))
    serve.wait_log("scaling up to 3 children")
    rune.wait_consumers(3)
    assert "received SIGHUP" in serve.log()
    serve.send(signal.SIGTERM)
    assert serve.wait(GRACEFUL + 10) == 0


# `serve` that sends itself a drain as it starts, before the supervisor's handlers are installed
TERM_WHILE_STARTING = """
import os, signal, sys
import runeworker.commands.serve as command
from runeworker.cli import main
real = command.serve
def serve(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
command.serve = serve
sys.exit(main(sys.argv[1:]))
"""


def test_a_drain_sent_while_serve_starts_stops_it_cleanly(start: Start) -> None:
    """Held from `main` on like the commands above: the supervisor drains (nothing to drain
    yet) and exits 0, where the default action ended the process by the signal (-15)."""
    serve = start(python_args=("-c", TERM_WHILE_STARTING))
    assert serve.wait(GRACEFUL + 10) == 0
    assert "received SIGTERM" in serve.log()


def test_readyz_probes_the_redis_a_reload_moved_the_children_to(
    start: Start, rune: Rune, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    relay = Forwarder(port, _port_of(redis_url))  # the old address of the same Redis
    relay.open()
    try:
        moved = redis_url.replace(f":{_port_of(redis_url)}/", f":{port}/")
        serve = start(urls_in_file=True, redis={"url": moved})
        rune.wait_consumers(2)
        old = workers(serve, 2)
        wait_until(lambda: serve.get("/readyz") == (200, "ready"), "/readyz 200")
        sections = config_for(tmp_path, redis={"url": redis_url})
        broker_url = re.search(r'url = "(amqp://[^"]+)"', serve.config.read_text())
        assert broker_url is not None
        sections["broker"] = {"url": broker_url.group(1)}
        write_config(serve.config, sections)
        serve.send(signal.SIGHUP)
        workers(serve, 2, without=old)
        serve.wait_log("reload: redis.url changed")
        wait_until(lambda: serve.log().count("exited (reload)") == 2, "the old children gone")
        relay.close()  # the old address is retired: nothing uses it any more
        ids = rune.publish(log_chain(2), 3)
        rune.wait_done(ids, timeout=30, settle=0.5)
        exactly_once(rune, ids)
        assert serve.get("/readyz") == (200, "ready")
    finally:
        relay.close()


# --- 4. SIGTTIN / SIGTTOU ----------------------------------------------------------------------


def test_ttin_and_ttou_change_children_and_consumers(
    start: Start, rune: Rune, amqp_url: str
) -> None:
    vhost = vhost_of(amqp_url)
    serve = start()
    rune.wait_consumers(2)
    two = workers(serve, 2)
    serve.send(signal.SIGTTIN)
    three = workers(serve, 3)
    assert two < three
    rune.wait_consumers(3)
    assert len(execution_prefetches(vhost)) == 3
    for wanted in (2, 1):  # one at a time: two pending SIGTTOUs would merge into one
        serve.send(signal.SIGTTOU)
        serve.wait_log(f"scaling down to {wanted} children")
    one = workers(serve, 1)
    assert one == {min(two, key=serve.spawned().index)}  # the newest children go first
    rune.wait_consumers(1)
    assert len(execution_prefetches(vhost)) == 1


# --- 5. a node slower than the heartbeat -------------------------------------------------------


class SlowServer:
    """127.0.0.1 HTTP server that takes `seconds` to answer each GET."""

    def __init__(self, seconds: float) -> None:
        self.hits: list[str] = []
        self.arrived = threading.Event()
        self.seconds = seconds  # read per request: a test may speed the server up
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits.append(self.path)
                owner.arrived.set()
                time.sleep(owner.seconds)  # the slowness is the point of the test
                data = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def workflow(self) -> bytes:
        """One http node calling this server."""
        node = {"id": "slow", "name": "slow", "type": "http",
                "parameters": {"url": f"{self.url}/slow", "method": "GET"}}  # fmt: skip
        return json.dumps({"nodes": [node], "edges": []}).encode()


def test_node_slower_than_the_heartbeat_completes_once_on_the_same_connection(
    start: Start, rune: Rune, amqp_url: str
) -> None:
    server = SlowServer(4.0)
    try:
        serve = start(broker={"heartbeat": 1})
        rune.wait_consumers(2)
        pids = workers(serve, 2)
        connections = worker_connections(vhost_of(amqp_url))
        assert [timeout for _name, timeout in connections] == [1, 1]  # negotiated: 1 s
        ids = rune.publish(server.workflow(), 1)
        rune.wait_done(ids, timeout=30, settle=2.0)
    finally:
        server.close()
    exactly_once(rune, ids)
    assert server.hits == ["/slow"]
    log = serve.log()
    assert "connection lost" not in log
    assert "reconnect" not in log
    assert serve.workers() == pids
    assert worker_connections(vhost_of(amqp_url)) == connections


def test_a_node_that_would_outlast_worker_timeout_fails_in_time_instead_of_being_killed(
    start: Start, rune: Rune, amqp_url: str
) -> None:
    """`worker.node_timeout` unset: an http node that retries a server slower than the node
    may be (`retry` 3, its own `timeout` 60 s) is stopped at 80 % of `worker.timeout` (3 s)
    and fails as a node does, under its error policy (halt by default). Before, the default
    was no limit: the supervisor killed the child as hung after 3 s, the message came back,
    and it was dead-lettered as poison after `broker.max_deliveries` kills. So is a node that
    spends CPU (an edit of 100 JavaScript values of 50 ms each, every one under its own
    100 ms: 5 s in all), whose error edge then runs; before, it was killed the same way."""
    server = SlowServer(30.0)
    node = {"id": "slow", "name": "slow", "type": "http",
            "parameters": {"url": f"{server.url}/slow", "method": "GET", "retry": "3",
                           "timeout": 60}}  # fmt: skip
    busy = "{{ (() => { const t = Date.now(); while (Date.now() - t < 50) {} return 1 })() }}"
    cpu = {"nodes": [{"id": "busy", "name": "busy", "type": "edit",
                      "parameters": {"assignments": [{"name": f"v{i}", "value": busy}
                                                     for i in range(100)]},
                      "error": {"type": "branch", "error_edge": "on_error"}},
                     {"id": "handler", "name": "Handler", "type": "log",
                      "parameters": {"message": "$error.message"}}],
           "edges": [{"id": "on_error", "src": "busy", "dst": "handler"}]}  # fmt: skip
    try:
        serve = start(worker={"timeout": 3.0, "processes": 1}, broker={"max_deliveries": 2})
        rune.wait_consumers(1)
        pids = workers(serve, 1)
        ids = rune.publish(json.dumps({"nodes": [node], "edges": []}).encode(), 1)
        ids += rune.publish(json.dumps(cpu).encode(), 1)
        rune.wait_done(ids, timeout=30, settle=1.0)
    finally:
        server.close()
    assert rune.statuses(ids) == {ids[0]: ["halted"], ids[1]: ["completed"]}
    reason = rune.completions[ids[0]][0]["failure_reason"]
    assert "stopped at the node time limit of 2.4 s" in reason, reason
    handled = rune.completions[ids[1]][0]["final_context"]["$Handler"]["message"]
    assert re.fullmatch(
        r"resolve value for 'v[0-9]+': stopped at the node time limit of 2\.4 s "
        r"\(worker\.node_timeout\)",
        handled,
    ), handled
    assert server.hits == ["/slow"]  # one attempt, cut at the limit: not run again
    assert serve.workers() == pids and "timeout" not in restarts(serve)
    assert rune.message_count("runeworker.dead-letter") == 0
    queue_is_empty(amqp_url, rune)


def test_sigterm_while_a_slow_node_runs_lets_it_finish_and_commit(
    start: Start, rune: Rune, amqp_url: str
) -> None:
    server = SlowServer(3.0)
    try:
        serve = start()
        rune.wait_consumers(2)
        ids = rune.publish(server.workflow(), 1)
        assert server.arrived.wait(15), "the http node never called the server"
        serve.send(signal.SIGTERM)
        assert serve.wait(GRACEFUL + 5) == 0
        assert "still running after the graceful timeout" not in serve.log(), (
            "the drain needed SIGKILL"
        )
        rune.wait_done(ids, timeout=5, settle=1.0)  # committed before the child exited
    finally:
        server.close()
    exactly_once(rune, ids)
    assert server.hits == ["/slow"]  # finished, not abandoned and redelivered
    queue_is_empty(amqp_url, rune)


def test_drains_that_cut_a_slow_node_never_make_its_message_poison(
    start: Start, rune: Rune, amqp_url: str
) -> None:
    """Three restarts whose drains each had to kill a child in the middle of one slow HTTP
    call: with `max_deliveries = 2` the message would be dead-lettered as poison if a cut by
    our own hand counted as an attempt."""
    server = SlowServer(30.0)
    settings: dict[str, Any] = {
        "worker": {"graceful_timeout": 1.0},
        "broker": {"max_deliveries": 2},
    }
    try:
        ids = rune.publish(server.workflow(), 1)
        for cycle in range(3):
            server.arrived.clear()
            serve = start(**settings)
            assert server.arrived.wait(20), f"cycle {cycle}: the http node never called"
            serve.send(signal.SIGTERM)
            assert serve.wait(15) == 3  # EXIT_DRAIN_FORCED: the child was killed mid-call
            assert "stopping while a node runs" in serve.log()
        server.seconds = 0.0
        serve = start(**settings)
        rune.wait_done(ids, timeout=30, settle=1.0)
    finally:
        server.close()
    exactly_once(rune, ids)
    assert len(server.hits) == 4
    assert rune.message_count("runeworker.dead-letter") == 0
    queue_is_empty(amqp_url, rune)


# --- 6. recycling ------------------------------------------------------------------------------


def test_children_over_max_memory_recycle_and_work_still_completes(
    start: Start, rune: Rune, amqp_url: str
) -> None:
    serve = start(worker={"max_memory_mb": 1})  # every child is over it after one message
    ids = rune.publish(log_chain(3), 5)
    rune.wait_done(ids, timeout=60, settle=2.0)
    exactly_once(rune, ids)
    log = serve.log()
    pattern = r"child (\d+) recycling: RSS above max_memory_mb 1"
    recycled = {int(p) for p in re.findall(pattern, log)}
    assert recycled
    wait_until(lambda: not recycled & serve.workers(), "the recycled children to exit")
    for pid in recycled:  # "exited: recycle", or "exited (memory): recycle" after the backstop
        serve.wait_log_match(rf"child {pid} (\(slot \d+\) )?exited( \(memory\))?: recycle")
    assert len(serve.spawned()) > 2
    queue_is_empty(amqp_url, rune)


def test_children_recycle_after_max_messages(start: Start, rune: Rune, amqp_url: str) -> None:
    serve = start(
        worker={"max_messages": 5, "max_messages_jitter": 0.0},
        broker={"prefetch": 1},  # one delivery per step, so a child stops at exactly 5
    )
    rune.wait_consumers(2)
    ids = rune.publish(log_chain(5), 10)  # 50 deliveries
    rune.wait_done(ids, timeout=60, settle=2.0)
    exactly_once(rune, ids)
    log = serve.log()
    counts = re.findall(r"recycling: handled (\d+) messages \(max_messages (\d+)\)", log)
    assert counts and set(counts) == {("5", "5")}
    # 50 deliveries, 5 per child: at least 8 children were replaced (two may be part way).
    assert len(counts) >= 8
    recycled = [int(p) for p in re.findall(r"child (\d+) recycling", log)]
    wait_until(lambda: serve.log().count(": recycle") >= len(recycled), "the recycled exits")
    assert not set(recycled) & serve.workers()
    assert restarts(serve) == {"recycle": len(recycled)}
    queue_is_empty(amqp_url, rune)


# --- 7. /metrics, /healthz, /readyz -------------------------------------------------------------


def test_metrics_count_every_node_and_completion(start: Start, rune: Rune) -> None:
    n, k = 10, 4
    serve = start()
    rune.wait_consumers(2)
    pids = workers(serve, 2)
    assert serve.get("/healthz") == (200, "ok")
    wait_until(lambda: serve.get("/readyz") == (200, "ready"), "/readyz 200")
    ids = rune.publish(log_chain(k), n)
    rune.wait_done(ids, timeout=60, settle=1.0)
    exactly_once(rune, ids)
    status, text = serve.get("/metrics")
    assert status == 200
    nodes = samples(text, "runeworker_node_executions_total", type="log", outcome="success")
    assert list(nodes.values()) == [n * k]  # one series: the children's files are summed
    assert sum(samples(text, "runeworker_node_executions_total", outcome="failed").values()) == 0
    completed = samples(text, "runeworker_completions_total", status="completed")
    assert list(completed.values()) == [n]
    acked = samples(text, "runeworker_deliveries_total", queue=EXECUTION, outcome="acked")
    [acked_total] = acked.values()
    assert acked_total >= n * k
    rss = {
        dict(labels)["pid"]: v for labels, v in samples(text, "runeworker_child_rss_bytes").items()
    }
    assert set(rss) >= {str(p) for p in pids}
    assert set(rss) == {str(p) for p in serve.children()}
    assert all(v > 1024 * 1024 for v in rss.values())


def _healthz(base: str) -> int:
    with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
        return int(resp.status)


def test_sighup_moves_the_metrics_endpoint_to_every_interface_on_the_same_port(
    start: Start, tmp_path: Path
) -> None:
    port = free_port()
    serve = start(metrics={"listen": f"127.0.0.1:{port}"})
    serve.wait_log(f"metrics on http://127.0.0.1:{port}/metrics")
    write_config(serve.config, config_for(tmp_path, metrics={"listen": f":{port}"}))
    serve.send(signal.SIGHUP)
    serve.wait_log("config reloaded")
    assert "keeping the metrics endpoint" not in serve.log()
    serve.wait_log(f"metrics on http://0.0.0.0:{port}/metrics")
    assert _healthz(f"http://127.0.0.1:{port}") == 200


def test_sighup_applies_a_metrics_move_that_failed_before(start: Start, tmp_path: Path) -> None:
    serve = start()
    serve.wait_log("metrics on http://127.0.0.1:")
    with socket.socket() as taken:  # another process holds the port the operator wants
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_config(serve.config, config_for(tmp_path, metrics={"listen": f"127.0.0.1:{port}"}))
        serve.send(signal.SIGHUP)
        serve.wait_log("reload: keeping the metrics endpoint on 127.0.0.1:0")
    serve.send(signal.SIGHUP)  # the port is free now: the same config, reloaded again
    serve.wait_log(f"metrics on http://127.0.0.1:{port}/metrics")
    assert _healthz(f"http://127.0.0.1:{port}") == 200


# --- 8. sd_notify ------------------------------------------------------------------------------


class NotifySocket:
    """A stand-in for systemd's notify socket (a filesystem AF_UNIX datagram socket)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.lines: list[str] = []

    def wait_for(self, line: str, timeout: float = 20.0) -> list[str]:
        """Receive datagrams until `line` arrives; returns every line so far."""

        def seen() -> bool:
            with contextlib.suppress(TimeoutError):
                self.lines.extend(self.sock.recv(4096).decode().split("\n"))
            return line in self.lines

        wait_until(seen, f"{line!r} on the notify socket", timeout, poll=0)
        return self.lines

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_ready_after_children_connect_and_stopping_on_sigterm(
    start: Start, rune: Rune
) -> None:
    path = f"/tmp/rw-notify-{uuid.uuid4().hex[:12]}.sock"  # AF_UNIX paths are short
    notify = NotifySocket(path)
    try:
        serve = start(env={"NOTIFY_SOCKET": path})
        lines = notify.wait_for("READY=1")
        assert rune.consumer_count() == 2  # READY=1 only once both children consume
        assert lines[-2:] == ["READY=1", "STATUS=2 children ready"]
        serve.wait_log("ready: 2 children")  # logged just after the datagram went out
        serve.send(signal.SIGTERM)
        assert notify.wait_for("STOPPING=1")[-2:] == ["STOPPING=1", "STATUS=stopping"]
        assert serve.wait(GRACEFUL + 5) == 0
    finally:
        notify.close()
        os.unlink(path)


# --- 9. start-up while a dependency is down; a kill storm ---------------------------------------


def _port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.mark.parametrize("down", ["RabbitMQ", "Redis"])
def test_a_dependency_down_at_start_is_waited_for_not_a_crash(
    start: Start, rune: Rune, amqp_url: str, redis_url: str, down: str
) -> None:
    port = free_port()
    real = amqp_url if down == "RabbitMQ" else redis_url
    relay = Forwarder(port, _port_of(real))
    moved = real.replace(f":{_port_of(real)}/", f":{port}/")
    env = {"RABBITMQ_URL": moved} if down == "RabbitMQ" else {"REDIS_URL": moved}
    path = f"/tmp/rw-notify-{uuid.uuid4().hex[:12]}.sock"
    notify = NotifySocket(path)
    try:
        env["NOTIFY_SOCKET"] = path
        serve = start(env=env, broker={"retry_delay": 0.1, "retry_delay_max": 0.2})
        lines = notify.wait_for("READY=1")  # up, and saying what it waits for
        status = [ln for ln in lines if ln.startswith("STATUS=")][-1]
        assert status.startswith(f"STATUS=waiting for {down} at ")
        assert status.endswith("(0 of 2 children ready)")
        # the reason, as deploy/RUNBOOK.md promises it (it read `AMQPConnectionError` for
        # RabbitMQ and `no answer to PING` for Redis)
        assert "Connection refused" in status, status
        code, body = serve.get("/readyz")
        assert code == 503 and body.startswith(f"not ready: waiting for {down} at ")
        waiting = samples(scrape(serve), "runeworker_children", state="waiting")
        assert list(waiting.values()) == [2.0]
        time.sleep(1.0)  # several attempts at 0.1-0.2 s: still one line per child
        said = [ln for ln in serve.log().splitlines() if f"waiting for {down} at " in ln]
        assert sum("runeworker.worker[" in ln for ln in said) == 2
        assert sum("runeworker.supervisor[" in ln and "pool waiting" in ln for ln in said) == 1
        assert "crashed" not in serve.log() and len(serve.spawned()) == 2
        assert "Traceback" not in serve.log()  # pika's own connection tracebacks stay quiet
        relay.open()
        wait_until(lambda: serve.get("/readyz") == (200, "ready"), "/readyz 200", timeout=20)
        wait_until(lambda: serve.log().count("answers again") == 2, "both children connected")
        ids = rune.publish(log_chain(3), 5)
        rune.wait_done(ids, timeout=60, settle=0.5)
        exactly_once(rune, ids)
    finally:
        notify.close()
        os.unlink(path)
        relay.close()


def test_a_kill_storm_is_replaced_at_once(start: Start, rune: Rune) -> None:
    serve = start(
        worker={"processes": 2},
        supervisor={"restart_backoff": 30.0, "restart_backoff_max": 30.0, "crash_limit": 2},
    )
    rune.wait_consumers(2)
    killed: set[int] = set()
    for _ in range(10):  # ten SIGKILLs of ready children: none of them a boot failure
        victim = min(workers(serve, 2, without=killed))
        os.kill(victim, signal.SIGKILL)
        killed.add(victim)
    workers(serve, 2, without=killed)
    rune.wait_consumers(2)
    assert serve.proc.poll() is None
    assert "restarting in" not in serve.log()
    ids = rune.publish(log_chain(3), 10)
    rune.wait_done(ids, timeout=60, settle=0.5)
    exactly_once(rune, ids)
    assert restarts(serve).get("crash") == 10


def test_a_broker_that_accepts_but_never_answers_is_waited_for_not_a_crash(start: Start) -> None:
    """A broker that takes the TCP connection but never speaks AMQP (hung, or a TCP proxy in
    front of a dead node) is a dependency that does not answer, like a refused port: one try
    takes at most a third of `worker.timeout` (`handshake_timeout` in
    runeworker/child/services.py), and the child beats between tries and sees a stop."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(64)  # the kernel completes the handshakes; nobody ever answers
        url = f"amqp://guest:guest@127.0.0.1:{mute.getsockname()[1]}/"
        serve = start(env={"RABBITMQ_URL": url}, worker={"timeout": 3.0},
                      broker={"retry_delay": 0.1, "retry_delay_max": 0.2})  # fmt: skip
        serve.wait_log("spawned child")
        time.sleep(5.0)  # past worker.timeout (pika alone would take 3 x 15 s per connect here)
        assert "no heartbeat" not in serve.log()
        assert "restarting in" not in serve.log()
        serve.send(signal.SIGTERM)
        assert serve.wait(GRACEFUL + 5) == 0


# --- operations review ------------------------------------------------------------------------


def test_a_deleted_metrics_directory_is_created_again_and_children_keep_serving(
    start: Start, rune: Rune, tmp_path: Path
) -> None:
    """`rm -r` of the metrics directory (or a tmpfiles cleaner) while serving: the supervisor
    creates it again, a child spawned after it counts there, a running child does not crash on
    the scheduler lock, and work still completes. Before, every new child crashed on its
    first sample file right after it was ready, and was replaced at once, forever."""
    serve = start(worker={"processes": 2})
    directory = tmp_path / "metrics"
    first = workers(serve, 2)
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()
    serve.wait_log("was deleted: created it again")
    assert directory.is_dir()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    replaced = workers(serve, 2, without={victim})
    ids = rune.publish(log_chain(3), 20)
    rune.wait_done(ids, timeout=60, settle=0.5)
    exactly_once(rune, ids)
    assert replaced & first == first - {victim}  # the other child lived on
    assert len(serve.spawned()) == 3, serve.log()
    assert "failed" not in serve.log()
    fresh = (replaced - first).pop()
    assert (directory / f"counter_{fresh}.db").exists()
    text = scrape(serve)
    assert sum(samples(text, "runeworker_completions_total").values()) >= 1


def test_a_child_that_cannot_write_the_metrics_directory_is_a_boot_failure(
    start: Start, tmp_path: Path
) -> None:
    """A child that cannot create its sample files fails while it boots, says why, and backs
    off into the crash limit (exit 1, systemd restarts the service, which prepares the
    directory again), instead of crashing after it was ready and being replaced at once."""
    serve = start(
        worker={"processes": 1},
        supervisor={"restart_backoff": 0.1, "restart_backoff_max": 0.2, "crash_limit": 3},
    )
    serve.wait_log("consuming")
    # a file where the directory was: the supervisor cannot create it again, children fail
    directory = tmp_path / "metrics"
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()
    directory.write_text("")
    os.kill(min(serve.workers()), signal.SIGKILL)
    assert serve.wait(30) == 1
    log = serve.log()
    assert "cannot start: cannot write the metrics directory" in log
    assert "crashes within" in log
    assert "is gone and cannot be created" in log
    assert log.count("is gone and cannot be created") == 1
    assert "Traceback" not in log


def test_a_wrong_redis_password_is_said_not_taken_for_a_redis_that_does_not_answer(
    start: Start, tmp_path: Path
) -> None:
    """A Redis that refuses the password read `waiting for Redis at ...: no answer to PING`,
    as if it were down; the reason is Redis's own answer now, and the password is in no log
    line, no status and no `/readyz` answer."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--requirepass", "right-pw-1b2c", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"redis://:wrong-pw-9x8y@127.0.0.1:{port}/0"
        wait_until(lambda: _answers(port), f"redis-server on {port}")
        serve = start(env={"REDIS_URL": url}, broker={"retry_delay": 0.1, "retry_delay_max": 0.2})
        serve.wait_log("pool waiting for Redis")
        said = [ln for ln in serve.log().splitlines() if "waiting for Redis at " in ln]
        assert said and all("invalid username-password pair" in ln for ln in said), said
        code, body = serve.get("/readyz")
        assert code == 503 and "invalid username-password pair" in body
        assert "wrong-pw-9x8y" not in serve.log() + body
    finally:
        server.kill()
        server.wait(10)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.sendall(b"PING\r\n")
        return bool(sock.recv(64))
    return False


# `serve` whose children fail just after they report ready (an uncaught exception, exit 1)
FAILS_ONCE_READY = """
import sys
from runeworker.cli import main
from runeworker.metrics.subscriber import WorkerMetrics
def on_ready(self, queues, node_types):
    raise RuntimeError("broken right after ready")
WorkerMetrics.on_ready = on_ready
sys.exit(main(sys.argv[1:]))
"""


def test_children_that_fail_on_their_own_once_ready_back_off(start: Start) -> None:
    """A child that exits with an error (not a signal) just after it was ready was replaced at
    once, like one the OOM killer took: a fault every child meets (a metrics directory it
    cannot write was one) forked four children a second, forever. Such exits back off; they do
    not count toward `supervisor.crash_limit` (a poison message ends three children before it
    is dead-lettered), and a SIGKILL is still replaced at once
    (`test_a_kill_storm_is_replaced_at_once`)."""
    serve = start(
        python_args=("-c", FAILS_ONCE_READY),
        worker={"processes": 1},
        supervisor={"restart_backoff": 0.2, "restart_backoff_max": 0.4, "crash_limit": 3},
    )
    time.sleep(5.0)
    assert serve.proc.poll() is None, "the supervisor stopped"
    log = serve.log()
    failed = log.count("failed after it was ready: exit 1")
    # backed off 0.2, 0.4, 0.4, ... s between spawns (at once, a child takes ~0.3 s to boot):
    # at least the crash limit's worth of them, and far fewer than at once
    assert 3 <= failed <= 10, log
    assert "restarting in 0.40 s" in log and "crashes within" in log
    assert "within 60.0 s: stopping" not in log  # the crash limit's line
    serve.send(signal.SIGTERM)
    assert serve.wait(20) == 0
