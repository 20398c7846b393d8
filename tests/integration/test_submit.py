"""`runeworker submit` against the real RabbitMQ and Redis, with a real Worker in a thread.

Every test uses its own execution and resume queue names, so a start message left on a queue
by one test (no worker running) is never picked up by the worker of another.
"""

from __future__ import annotations

import io
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from runeworker.child.worker import Worker
from runeworker.cli import main
from runeworker.commands.submit import submit
from runeworker.config import Config, load_config

pytestmark = pytest.mark.integration

HELLO_INPUT = '{"name": "Ada", "age": 36}'
START_KEYS = {
    "workflow_id",
    "workflow_version",
    "workflow_version_id",
    "execution_id",
    "current_node",
    "workflow_definition",
    "accumulated_context",
}
HALTING = {
    "nodes": [
        {"id": "t", "name": "Start", "type": "ManualTrigger", "trigger": True},
        {"id": "a", "name": "First", "type": "log", "parameters": {"message": "ok"}},
        {"id": "b", "name": "Broken", "type": "log", "parameters": {"message": "{{ $input.x.y }}"}},
        {"id": "c", "name": "Never", "type": "log", "parameters": {"message": "never"}},
    ],
    "edges": [
        {"id": "e1", "src": "t", "dst": "a"},
        {"id": "e2", "src": "a", "dst": "b"},
        {"id": "e3", "src": "b", "dst": "c"},
    ],
}
INVALID = {
    "nodes": [
        {"id": "t", "name": "Start", "type": "ManualTrigger", "trigger": True},
        {"id": "a", "name": "First", "type": "nosuchtype"},
    ],
    "edges": [{"id": "e1", "src": "t", "dst": "a"}, {"id": "e2", "src": "a", "dst": "zz"}],
}
RECORDER = "workflow.completion.recorder"


@pytest.fixture
def cfg(amqp_url: str, redis_url: str, redis_prefix: str) -> Iterator[Config]:
    tag = uuid.uuid4().hex[:8]
    overrides = {
        "broker.url": amqp_url,
        "broker.queue": f"workflow.execution.{tag}",
        "broker.resume_queue": f"workflow.resume.{tag}",
        "redis.url": redis_url,
        "redis.key_prefix": redis_prefix,
    }
    config = load_config(None, env={}, overrides=overrides)
    yield config
    with channel(amqp_url) as ch:
        ch.queue_delete(config.broker.queue)
        ch.queue_delete(config.broker.resume_queue)


class channel:
    """A short-lived connection and channel to inspect the broker."""

    def __init__(self, url: str) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(url))

    def __enter__(self) -> Any:
        return self.conn.channel()

    def __exit__(self, *_exc: object) -> None:
        if self.conn.is_open:
            self.conn.close()


@pytest.fixture
def worker(cfg: Config) -> Iterator[Worker]:
    w = Worker(cfg)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(w.run()), daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(timeout=20)
    assert not thread.is_alive(), "worker did not stop"
    assert codes == [0]


def write(tmp_path: Path, name: str, doc: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def statuses(lines: list[str]) -> list[tuple[str, str]]:
    """(node name, status) of every status line (the lines between the id and the outcome)."""
    return [(line.split()[1], line.split()[2]) for line in lines[1:-1]]


def run_submit(cfg: Config, workflow: str, **kwargs: Any) -> tuple[int, list[str]]:
    out = io.StringIO()
    args = {"input_arg": None, "wait": True, "timeout": 30.0, **kwargs}
    code = submit(
        workflow, args.pop("input_arg"), args.pop("wait"), args.pop("timeout"), cfg, out, **args
    )
    return code, out.getvalue().splitlines()


def test_wait_hello_completes(cfg: Config, worker: Worker) -> None:
    code, lines = run_submit(cfg, "hello", input_arg=HELLO_INPUT)
    assert code == 0
    assert uuid.UUID(lines[0]).version == 4
    assert statuses(lines) == [
        ("Greet", "running"),
        ("Greet", "success"),
        ("IsAdult", "running"),
        ("IsAdult", "success"),
        ("Welcome", "running"),
        ("Welcome", "success"),
    ]
    assert "Hello, Ada! You are 36." in lines[2]
    assert lines[-1].startswith("workflow completed in ")


def test_wait_halting_workflow_exits_1(cfg: Config, worker: Worker, tmp_path: Path) -> None:
    code, lines = run_submit(cfg, write(tmp_path, "halting", HALTING), input_arg="{}")
    assert code == 1
    assert statuses(lines) == [
        ("First", "running"),
        ("First", "success"),
        ("Broken", "running"),
        ("Broken", "failed"),
    ]
    assert lines[-1].startswith("workflow halted in ")
    assert "node Broken (b) failed" in lines[-1]


@pytest.mark.parametrize(("first_successor", "current"), [(False, "trigger"), (True, "greet")])
def test_no_wait_publishes_like_the_api(
    cfg: Config, amqp_url: str, first_successor: bool, current: str
) -> None:
    code, lines = run_submit(
        cfg, "hello", input_arg=HELLO_INPUT, wait=False, first_successor=first_successor
    )
    assert code == 0
    assert len(lines) == 1
    with channel(amqp_url) as ch:
        method, props, body = ch.basic_get(cfg.broker.queue, auto_ack=True)
        assert method is not None, "no start message on the execution queue"
        assert (method.exchange, method.routing_key) == ("", cfg.broker.queue)
        assert props.content_type is None
        assert props.delivery_mode == 2
        assert ch.basic_get(cfg.broker.queue, auto_ack=True)[0] is None
    msg = json.loads(body)
    assert set(msg) == START_KEYS
    assert msg["execution_id"] == lines[0]
    assert (msg["workflow_id"], msg["workflow_version"], msg["workflow_version_id"]) == (
        "hello",
        0,
        0,
    )
    assert msg["current_node"] == current
    inputs = {"name": "Ada", "age": 36}
    assert msg["accumulated_context"] == {"$input": inputs, "$trigger": inputs}
    assert [n["id"] for n in msg["workflow_definition"]["nodes"]][:2] == ["trigger", "greet"]


@pytest.mark.parametrize("first_successor", [False, True])
def test_an_official_template_is_submitted_as_the_web_app_converts_it(
    cfg: Config, worker: Worker, first_successor: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """tests/templates/maintenance-window-check.json as shipped: converted, published, run."""
    template = Path(__file__).resolve().parents[1] / "templates" / "maintenance-window-check.json"
    code, lines = run_submit(cfg, str(template), first_successor=first_successor)
    assert code == 0, capsys.readouterr().err
    steps = statuses(lines)
    assert steps[:6] == [
        ("dateTimeNow", "running"),
        ("dateTimeNow", "success"),
        ("dateTimeParse", "running"),
        ("dateTimeParse", "success"),
        ("If", "running"),
        ("If", "success"),
    ]
    assert steps[6:] in (
        [("Log", "running"), ("Log", "success")],
        [("Log_2", "running"), ("Log_2", "success")],
    )
    assert lines[-1].startswith("workflow completed in ")
    assert "a Rune template, converted as the Rune web app does" in capsys.readouterr().err


def test_invalid_workflow_exits_2_with_every_problem(
    cfg: Config, amqp_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run_submit(cfg, write(tmp_path, "invalid", INVALID))
    assert code == 2
    assert lines == []
    assert capsys.readouterr().err.splitlines() == [
        "invalid workflow: node a: node type 'nosuchtype' is not registered",
        "invalid workflow: edge e2 points to node 'zz', which does not exist",
    ]
    with channel(amqp_url) as ch, pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(cfg.broker.queue, passive=True)  # never declared: nothing published
    assert exc.value.reply_code == 404


@pytest.mark.parametrize(
    ("doc", "input_arg", "error"),
    [
        (None, "[1]", "error: --input must be a JSON object"),
        (None, "@missing.json",
         "error: --input @missing.json: cannot read the file: No such file or directory"),
        ({}, None, "error: the input is neither a workflow definition (an object with 'nodes') "
                   "nor an execution message (an object with 'workflow_definition')"),
    ],
    ids=["input_not_an_object", "input_file_missing", "no_workflow"],
)  # fmt: skip
def test_what_cannot_be_read_is_named_as_run_names_it_not_as_an_invalid_workflow(
    cfg: Config,
    amqp_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    doc: dict[str, Any] | None,
    input_arg: str | None,
    error: str,
) -> None:
    """A bad --input read `invalid workflow: --input must be a JSON object`, and a file that
    is no workflow `invalid workflow: workflow_definition: Object missing required field`."""
    workflow = "hello" if doc is None else write(tmp_path, "flow", doc)
    code, lines = run_submit(cfg, workflow, input_arg=input_arg)
    assert (code, lines) == (2, [])
    assert capsys.readouterr().err.splitlines() == [error]
    with channel(amqp_url) as ch, pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare(cfg.broker.queue, passive=True)  # nothing published


def test_timeout_without_worker_exits_3(cfg: Config, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code, lines = run_submit(cfg, "hello", input_arg=HELLO_INPUT, timeout=0.5)
    elapsed = time.monotonic() - started
    assert code == 3
    assert elapsed >= 0.5  # waited the whole timeout (no upper bound: a loaded machine is slow)
    assert len(lines) == 1
    err = capsys.readouterr().err
    assert f"no completion of execution {lines[0]} within 0.5 s" in err


def test_broker_error_exits_2_with_masked_url(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"amqp://guest:s3cret@127.0.0.1:{port}/"
    overrides = {"broker.url": url, "broker.connection_attempts": 1, "broker.retry_delay": 0.0}
    code, lines = run_submit(load_config(None, env={}, overrides=overrides), "hello")
    assert code == 2
    assert lines == []
    err = capsys.readouterr().err
    assert f"cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:{port}/" in err
    assert "s3cret" not in err


def test_a_broker_that_never_answers_fails_submit_at_the_command_handshake_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A listener that takes the connection and sends nothing: one try gives up after
    `COMMAND_HANDSHAKE_TIMEOUT` (5 s), not pika's 15 s, and says what happened in words."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)  # the kernel completes the TCP handshake; nobody ever reads or writes
        port = mute.getsockname()[1]
        url = f"amqp://guest:s3cret@127.0.0.1:{port}/"
        overrides = {"broker.url": url, "broker.connection_attempts": 1, "broker.retry_delay": 0.0}
        started = time.monotonic()
        code, lines = run_submit(load_config(None, env={}, overrides=overrides), "hello")
        waited = time.monotonic() - started
    assert code == 2
    assert lines == []
    err = capsys.readouterr().err
    assert (
        f"cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:{port}/: no AMQP handshake "
        "within 5 s (the broker took the connection and did not answer)"
    ) in err
    assert "AddressFamily" not in err and "s3cret" not in err
    assert 4.5 < waited < 14.0  # pika's own stack timeout would take 15 s


class Recorder(threading.Thread):
    """An archivist-like consumer: its own durable queue bound to `workflow.completion`."""

    def __init__(self, url: str, exchange: str) -> None:
        super().__init__(daemon=True)
        self.url, self.exchange = url, exchange
        self.ready, self.halt = threading.Event(), threading.Event()
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()

    def run(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.url))
        ch = conn.channel()
        ch.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        ch.queue_declare(RECORDER, durable=True)
        ch.queue_purge(RECORDER)
        ch.queue_bind(RECORDER, self.exchange, routing_key="workflow.completion")
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(RECORDER, self._on_message)
        self.ready.set()
        while not self.halt.is_set():
            conn.process_data_events(time_limit=0.1)
        ch.queue_delete(RECORDER)
        conn.close()

    def _on_message(self, ch: Any, method: Any, _props: Any, body: bytes) -> None:
        self.received.put(json.loads(body))
        ch.basic_ack(method.delivery_tag)

    def completion_of(self, execution_id: str, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.received.get(timeout=left)
            except queue.Empty:
                break
            if msg["execution_id"] == execution_id:
                return msg
        raise AssertionError(f"recorder got no completion of {execution_id}")


def test_wait_takes_copies_and_steals_nothing(cfg: Config, amqp_url: str, worker: Worker) -> None:
    recorder = Recorder(amqp_url, cfg.broker.exchange)
    recorder.start()
    try:
        assert recorder.ready.wait(10), "recorder did not start"
        code, lines = run_submit(cfg, "hello", input_arg=HELLO_INPUT)
        assert code == 0
        done = recorder.completion_of(lines[0], within=10)
        assert done["status"] == "completed"
    finally:
        recorder.halt.set()
        recorder.join(timeout=10)
    assert not recorder.is_alive()
    # The queues RTES consumes (declared by the worker) still hold every message of the run.
    with channel(amqp_url) as ch:
        assert [m["status"] for m in drained(ch, "workflow.completion", lines[0])] == ["completed"]
        assert len(drained(ch, "workflow.node.status", lines[0])) == 6


def drained(ch: Any, queue_name: str, execution_id: str) -> list[dict[str, Any]]:
    """Every message of `execution_id` on `queue_name`; empties the (session-wide) queue."""
    found: list[dict[str, Any]] = []
    while True:
        method, _props, body = ch.basic_get(queue_name, auto_ack=True)
        if method is None:
            return found
        msg = json.loads(body)
        if msg["execution_id"] == execution_id:
            found.append(msg)


def test_cli_submit_uses_config_layers(
    cfg: Config, amqp_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    monkeypatch.setenv("RUNEWORKER_BROKER_URL", amqp_url)
    code = main(["submit", "hello", "--input", HELLO_INPUT, "--queue", cfg.broker.queue])
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    with channel(amqp_url) as ch:
        method, _props, body = ch.basic_get(cfg.broker.queue, auto_ack=True)
    assert method is not None
    assert printed == [json.loads(body)["execution_id"]]


def test_cli_submit_config_error_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.toml"
    assert main(["submit", "hello", "-c", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"config error: {missing}: cannot read the config file")
