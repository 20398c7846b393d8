"""RabbitMQ's flow control against `runeworker serve`, on a private RabbitMQ node (an alarm or a
consumer_timeout set on the shared broker would hit every other test using it):

- a memory alarm: RabbitMQ sends `connection.blocked` and stops reading the socket of every
  connection that publishes, so a child's commit waits until the alarm clears. The pool must
  wait without being killed as hung (nor crash-loop into `supervisor.crash_limit`), say so
  (log, `/readyz`, `runeworker_children{state="blocked"}`, `runeworker_broker_blocked_total`)
  and go on afterwards with every execution completed exactly once. On quorum queues
  (publisher confirms) too, with the alarm held past the confirm wait's deadline;
- the delivery acknowledgement timeout (`consumer_timeout`): a delivery left unacknowledged
  that long makes RabbitMQ close the channel and every delivery of it runs again. Deliveries
  that waited behind long steps are handed back before they get there; a close that happens
  anyway (the broker's timeout lower than `broker.consumer_timeout` says) is named at once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from serving import (
    EXECUTION,
    STATUS,
    QueueType,
    Rune,
    Serve,
    log_chain,
    samples,
    serve_env,
    wait_until,
    write_config,
)

from runeworker.adapters.amqp import Endpoint
from tests.faults.services import PrivateRabbit, Rabbit

pytestmark = pytest.mark.e2e

MIRROR = "workflow.worker.initiated"
DEAD_LETTER = "runeworker.dead-letter"


@pytest.fixture(scope="module")
def private_rabbit() -> Iterator[PrivateRabbit]:
    node = PrivateRabbit()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def vhost(private_rabbit: PrivateRabbit) -> Iterator[tuple[Rabbit, str]]:
    """(the private node's rabbitmqctl, the URL of a fresh vhost on it)."""
    with private_rabbit.rabbit.vhost() as url:
        yield private_rabbit.rabbit, url


@pytest.fixture
def serving(
    tmp_path: Path, vhost: tuple[Rabbit, str], redis_url: str, redis_prefix: str
) -> Iterator[Any]:
    """start(**sections) -> `runeworker serve` on the private vhost; killed afterwards."""
    started: list[Serve] = []

    def start(**sections: dict[str, Any]) -> Serve:
        values: dict[str, dict[str, Any]] = {
            "worker": {"processes": 2, "timeout": 3.0, "graceful_timeout": 5.0},
            "supervisor": {"restart_backoff": 0.1, "restart_backoff_max": 1.0},
            "metrics": {"listen": "127.0.0.1:0", "directory": str(tmp_path / "metrics")},
            "logging": {"format": "text", "level": "INFO"},
        }
        for name, table in sections.items():
            values.setdefault(name, {}).update(table)
        config = tmp_path / "runeworker.toml"
        write_config(config, values)
        started.append(Serve(tmp_path, config, serve_env(vhost[1], redis_url, redis_prefix)))
        return started[-1]

    try:
        yield start
    finally:
        for serve in started:
            serve.kill()


@pytest.fixture
def queue_type() -> QueueType:
    """`broker.queue_type` of the test (a test parametrizes it to run on quorum queues)."""
    return "classic"


@pytest.fixture
def rune(vhost: tuple[Rabbit, str], queue_type: QueueType) -> Iterator[Rune]:
    client = Rune(vhost[1], queue_type)
    try:
        yield client
    finally:
        client.close()


def metric(serve: Serve, name: str, **labels: str) -> float:
    status, text = serve.get("/metrics")
    assert status == 200, text
    return sum(samples(text, name, **labels).values())


# the quorum run's heartbeat: its confirm wait's deadline is then Endpoint.confirm_timeout's
# floor of 30 s, which the alarm outlasts
QUORUM_HEARTBEAT = 5


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_memory_alarm_holds_the_pool_without_kills_and_nothing_is_lost_or_repeated(
    vhost: tuple[Rabbit, str], serving: Any, rune: Rune, queue_type: QueueType
) -> None:
    """Children blocked in their commit for four times `worker.timeout`. `crash_limit` 2 stands
    for a pool at least as large as its crash limit (10 by default): before, every blocked
    child was killed as hung after `worker.timeout`, each kill counted toward the crash limit,
    and the supervisor exited 1.

    On quorum queues the commit waits for publisher confirms, and the alarm lasts past that
    wait's deadline. Before, every confirm wait lasted its whole second (pika's loop did not
    return at the last confirm): once the alarm had filled each child's prefetch nothing else
    ended it, one commit a second, and nothing completed in the minute after the alarm; and
    the deadline, running while the broker read nothing, dropped the connection after 30 s,
    handing its deliveries back as attempts."""
    ctl, _url = vhost
    quorum = queue_type == "quorum"
    broker = {"queue_type": queue_type, "heartbeat": QUORUM_HEARTBEAT} if quorum else {}
    serve = serving(supervisor={"crash_limit": 2, "crash_window": 60.0}, broker=broker)
    held = 4 * 3.0
    if quorum:
        held = Endpoint("amqp://", heartbeat=QUORUM_HEARTBEAT).confirm_timeout + 3.0
    serve.wait_log("ready: 2 children", 30)
    ids = rune.publish(log_chain(100), 100)
    wait_until(lambda: rune.message_count(MIRROR) >= len(ids), "every execution started", 30)
    ctl.ctl("set_vm_memory_high_watermark", "0.000001")
    try:
        serve.wait_log("blocks this child's publishes: low on memory", 20)
        assert rune.done(ids) < len(ids), "every execution ended before the alarm: no test"
        blocked_at = time.monotonic()
        wait_until(lambda: "pool RabbitMQ at" in serve.log(), "the pool's line", 10)
        status, body = serve.get("/readyz")
        assert status == 503 and "blocks publishes: low on memory" in body, body
        assert "***@" in body and "guest:guest" not in body  # the password stays masked
        assert metric(serve, "runeworker_children", state="blocked") >= 1
        assert metric(serve, "runeworker_broker_blocked_total") >= 1
        while time.monotonic() < blocked_at + held:  # the alarm lasts; the pool must too
            assert serve.proc.poll() is None, serve.log()[-3000:]
            time.sleep(0.5)
        log = serve.log()
        assert "no heartbeat" not in log, log[-3000:]
        assert "connection lost" not in log, log[-3000:]  # nothing handed back, nor in doubt
        assert metric(serve, "runeworker_child_restarts_total") == 0
        children = set(re.findall(r"worker\[(\d+)\]: RabbitMQ at .* blocks this child", log))
        assert log.count("blocks this child's publishes") == len(children)  # once per child
        statuses = rune.message_count(STATUS)
    finally:
        ctl.ctl("set_vm_memory_high_watermark", "0.4")
    # the work goes on at once: each step publishes its statuses (nobody reads them here)
    wait_until(lambda: rune.message_count(STATUS) >= statuses + 1000, "steps after the alarm", 10)
    rune.wait_done(ids, 60)
    log = serve.log()
    assert "connection lost" not in log and "outcome unknown" not in log, log[-3000:]
    wrong = {eid: s for eid, s in rune.statuses(ids).items() if s != ["completed"]}
    assert not wrong, f"{len(wrong)} of {len(ids)} without exactly one completion: {wrong}"
    assert rune.message_count(DEAD_LETTER) == 0
    assert rune.message_count(EXECUTION) == 0
    serve.wait_log("RabbitMQ no longer blocks this child")
    wait_until(lambda: serve.get("/readyz")[0] == 200, "/readyz 200 again")
    assert metric(serve, "runeworker_children", state="blocked") == 0


class SlowServer:
    """An HTTP endpoint answering after `delay` seconds; counts the calls."""

    def __init__(self, delay: float) -> None:
        calls: list[float] = []
        self.calls = calls

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                calls.append(time.monotonic())
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/slow"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def workflow(self) -> bytes:
        nodes = [
            {"id": "h", "name": "slow", "type": "http",
             "parameters": {"method": "GET", "url": self.url, "timeout": 60}},
            {"id": "l", "name": "after", "type": "log",
             "parameters": {"message": "done", "level": "debug"}},
        ]  # fmt: skip
        return json.dumps({"nodes": nodes, "edges": [{"id": "e", "src": "h", "dst": "l"}]}).encode()


@pytest.fixture
def consumer_timeout(vhost: tuple[Rabbit, str]) -> Iterator[Callable[[float], None]]:
    """set(seconds): the private node's consumer_timeout, looked at every second (the
    channel's tick, 60 s by default); read by channels opened afterwards. Set back afterwards."""
    ctl, _url = vhost

    def set_to(seconds: float) -> None:
        ctl.ctl("eval", f"application:set_env(rabbit, consumer_timeout, {int(seconds * 1000)}), "
                "application:set_env(rabbit, channel_tick_interval, 1000).")  # fmt: skip

    try:
        yield set_to
    finally:
        ctl.ctl("eval", "application:set_env(rabbit, consumer_timeout, 1800000), "
                "application:set_env(rabbit, channel_tick_interval, 60000).")  # fmt: skip


@pytest.fixture
def slow() -> Iterator[SlowServer]:
    server = SlowServer(3.0)
    try:
        yield server
    finally:
        server.close()


def test_deliveries_waiting_behind_long_steps_are_handed_back_before_the_ack_timeout(
    consumer_timeout: Callable[[float], None], serving: Any, rune: Rune, slow: SlowServer
) -> None:
    """One child takes fourteen executions whose first node is a 3 s http call: the last
    waits 39 s for the others, then runs, past the broker's 40 s. Before, RabbitMQ closed the
    channel, every delivery of it ran again (http calls repeated) and counted as an attempt.
    Now those that waited 40 - 2 x 5 s go back to the queue unstarted, spared from the count."""
    consumer_timeout(40.0)
    serve = serving(
        worker={"processes": 1, "timeout": 5.0},
        broker={"consumer_timeout": 40.0, "prefetch": 20},
    )
    serve.wait_log("ready: 1 children", 30)
    ids = rune.publish(slow.workflow(), 14)
    rune.wait_done(ids, 120)
    wrong = {eid: s for eid, s in rune.statuses(ids).items() if s != ["completed"]}
    assert not wrong, f"{len(wrong)} of {len(ids)} without exactly one completion: {wrong}"
    log = serve.log()
    assert "acknowledgement" not in log, log[-3000:]
    assert len(slow.calls) == len(ids), f"{len(slow.calls)} http calls for {len(ids)} executions"
    assert "deliveries back unstarted" in log
    assert metric(serve, "runeworker_ack_timeouts_total") == 0
    assert rune.message_count(DEAD_LETTER) == 0


def test_an_acknowledgement_timeout_is_named_while_the_node_runs(
    consumer_timeout: Callable[[float], None], serving: Any, rune: Rune
) -> None:
    """`broker.consumer_timeout = 0` says the broker has none, but it closes the channel after
    6 s: the child must say so, naming consumer_timeout, when it happens (not "connection lost
    (not connected to RabbitMQ)" once the node ends), and count it."""
    consumer_timeout(6.0)
    server = SlowServer(12.0)
    try:
        serve = serving(worker={"processes": 1, "timeout": 30.0}, broker={"consumer_timeout": 0})
        serve.wait_log("ready: 1 children", 30)
        start = time.monotonic()
        rune.publish(server.workflow(), 1)
        serve.wait_log("stayed unacknowledged longer than its consumer_timeout", 11)
        assert time.monotonic() - start < 11.5  # while the 12 s call still runs
        line = next(x for x in serve.log().splitlines() if "stayed unacknowledged" in x)
        assert "PRECONDITION_FAILED" in line and "worker.timeout" in line, line
        wait_until(lambda: metric(serve, "runeworker_ack_timeouts_total") >= 1, "the metric", 5)
    finally:
        server.close()
