"""Security over the wire: credentials stay out of everything published and logged, data is
never expanded as a template, the http node's deny list holds, and URL passwords are masked.

The capture is complete: a queue bound with `#` to the `workflows` exchange gets a copy of every
message the worker publishes there (statuses, completion, mirror, next messages); the dead-letter
queue, the only other destination, is read too; every log record of the process is kept at DEBUG.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from badinput import closed_port
from wire import DEAD, EXCHANGE, Wire, edge, http, master, node, running_worker

from runeworker.child.worker import Worker
from runeworker.config import load_config
from runeworker.supervisor.children import EXIT_OK

pytestmark = pytest.mark.integration

PASSWORD = "pw-Secret-4711"
TOKEN = "tok-Secret-0815"
API_KEY = "key-Secret-2342"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()  # as good as the password
SECRETS = (PASSWORD, TOKEN, API_KEY, BASIC)
TEMPLATE = "{{ $credential.password }}"


class EchoServer:
    """HTTP server on a loopback address answering every GET with the request headers as JSON
    (what an echo service or a verbose error page does); `redirect` sends a 302 instead."""

    def __init__(self, host: str = "127.0.0.1", redirect: str = "") -> None:
        self.hits: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits.append({"path": self.path, **dict(self.headers.items())})
                if redirect:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def echo(host: str = "127.0.0.1", redirect: str = "") -> Iterator[EchoServer]:
    server = EchoServer(host, redirect)
    try:
        yield server
    finally:
        server.close()


class Capture(Wire):
    """A Wire that also copies everything published to the `workflows` exchange."""

    def __init__(self, amqp_url: str) -> None:
        super().__init__(amqp_url)
        self.all = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(self.all, EXCHANGE, routing_key="#")
        self.everything: list[tuple[str, bytes]] = []

    def drain(self) -> None:
        super().drain()
        while True:
            method, _props, raw = self.ch.basic_get(self.all, auto_ack=True)
            if method is None:
                return
            self.everything.append((method.routing_key, raw))


def credential_workflow(url: str) -> dict[str, Any]:
    """Three http nodes, one per credential type, each putting its secret in a header through
    `{{ $credential.x }}`; the first also copies data that holds a template."""
    basic = node("basic", "http", url=f"{url}/basic", method="GET")
    basic["parameters"]["headers"] = {
        "X-Pass": TEMPLATE,
        "X-Note": "{{ $input.note }}",
        "X-Bare": "$input.bare",
    }
    basic["credentials"] = {
        "id": "c1",
        "name": "basic",
        "type": "basic_auth",
        "values": {"username": "alice", "password": PASSWORD},
    }
    token = node("token", "http", url=f"{url}/token", method="GET")
    token["parameters"]["headers"] = {"X-Token": "{{ $credential.token }}"}
    token["credentials"] = {"id": "c2", "type": "token", "values": {"token": TOKEN}}
    header = node("header", "http", url=f"{url}/header", method="GET")
    header["parameters"]["headers"] = {"X-Copy": "{{ $credential.value }}"}
    header["credentials"] = {
        "id": "c3",
        "type": "header",
        "values": {"field": "X-Api-Key", "value": API_KEY},
    }
    nodes = [node("trigger", "ManualTrigger", "Start"), basic, token, header]
    edges = [edge("trigger", "basic"), edge("basic", "token"), edge("token", "header")]
    data = {"$input": {"note": TEMPLATE, "bare": "$credential.password"}}
    return master(nodes, edges, data)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_no_credential_leaves_the_execution_payload(
    amqp_url: str, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with echo() as server, running_worker(amqp_url, redis_url, redis_prefix):
        wire = Capture(amqp_url)
        try:
            m = credential_workflow(server.url)
            wire.publish_api(m)
            done = wire.completion(m["execution_id"])
            wire.no_second_completion(m["execution_id"], settle=0.5)
        finally:
            wire.close()
    assert done["status"] == "completed", done
    # the nodes had the secrets, and data holding a template was sent as it is
    hits = {h["path"]: h for h in server.hits}
    assert hits["/basic"]["Authorization"] == f"Basic {BASIC}"
    assert hits["/basic"]["X-Pass"] == PASSWORD
    assert (hits["/basic"]["X-Note"], hits["/basic"]["X-Bare"]) == (
        TEMPLATE,
        "$credential.password",
    )
    assert (hits["/token"]["Authorization"], hits["/token"]["X-Token"]) == (
        f"Bearer {TOKEN}",
        TOKEN,
    )
    assert (hits["/header"]["X-Api-Key"], hits["/header"]["X-Copy"]) == (API_KEY, API_KEY)
    # every message published: only an execution message's definition may hold a secret
    kinds = {key for key, _raw in wire.everything}
    assert kinds == {
        "workflow.node.status",
        "workflow.completion",
        "workflow.worker.initiated",
        "workflow.execution",
    }
    assert wire.got[DEAD] == []
    for key, raw in wire.everything:
        body = json.loads(raw)
        if key == "workflow.execution":
            del body["workflow_definition"]
        assert leaks(json.dumps(body)) == [], (key, body)
    statuses = [json.loads(raw) for key, raw in wire.everything if key == "workflow.node.status"]
    basic = next(s for s in statuses if s["node_id"] == "basic" and s["status"] == "success")
    assert basic["parameters"]["headers"]["X-Note"] == TEMPLATE
    assert basic["output"]["body"]["headers"]["X-Pass"] == "***"
    # every log line, pika's included
    lines = [caplog.text] + [json.dumps(r.__dict__, default=str) for r in caplog.records]
    assert leaks("\n".join(lines)) == []


# A generated password with what JSON, repr and URLs escape: each of those forms is as good as
# the password itself.
SYMBOLS = 'pw"Sym\\bol s/\u00e9+1337'
SYMBOL_FORMS = (
    SYMBOLS,
    json.dumps(SYMBOLS, ensure_ascii=False)[1:-1],
    json.dumps(SYMBOLS)[1:-1],
    repr(SYMBOLS)[1:-1],
    quote(SYMBOLS, safe="!#$%&'()*+,/:;=?@[]~"),
    quote(SYMBOLS, safe=""),
    quote_plus(SYMBOLS),
)
URL_PASSWORD = "url-Pw-6502"


def symbol_forms(text: str) -> list[str]:
    return [f for f in SYMBOL_FORMS if f in text]


def test_secrets_leave_the_worker_in_no_escaped_form_and_url_passwords_in_no_error(
    amqp_url: str, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A credential rendered as JSON inside text, quoted by an error message, percent-encoded
    in a URL (the http error names it, an echo server returns it), or read by a switch rule
    that fails; a password written in a URL the http node fails to reach."""
    caplog.set_level(logging.DEBUG)
    # as `runeworker.logs.setup` holds it at any level (tests/unit/test_logs.py): urllib3 logs
    # each request line, query string included, at DEBUG
    caplog.set_level(logging.WARNING, logger="urllib3")
    cred = {"id": "c9", "type": "basic_auth", "values": {"username": "ann", "password": SYMBOLS}}
    port = closed_port()
    query = "?k={{ $credential.password }}"
    with echo() as server, running_worker(amqp_url, redis_url, redis_prefix):
        say = node("say", "log", message="as JSON: {{ $credential }}")
        back = node("back", "http", url=f"{server.url}/echo{query}", method="GET")
        route = node("route", "switch", rules=[
            {"value": "{{ $credential.password }}", "operator": ">", "compare": 1}
        ], routes=[])  # fmt: skip
        for n in (say, back, route):
            n["credentials"] = cred
        chain = [node("trigger", "ManualTrigger", "Start"), say, back, route]
        ok = master(chain, [edge("trigger", "say"), edge("say", "back"), edge("back", "route")])
        closed = node("call", "http", url=f"http://127.0.0.1:{port}/x{query}", method="GET")
        closed["credentials"] = cred
        refused = master([closed], [], current="call")
        bad_method = node("m", "http", url=server.url, method="{{ $credential.password }}")
        bad_method["credentials"] = cred
        refused_method = master([bad_method], [], current="m")
        literal = master(
            [http("u", f"http://ann:{URL_PASSWORD}@127.0.0.1:{port}/x")], [], current="u"
        )
        wire = Capture(amqp_url)
        try:
            for m in (ok, refused, refused_method, literal):
                wire.publish_api(m)
            done = {m["execution_id"]: wire.completion(m["execution_id"]) for m in
                    (ok, refused, refused_method, literal)}  # fmt: skip
            wire.drain()
        finally:
            wire.close()
    assert [d["status"] for d in done.values()] == ["completed", "halted", "halted", "halted"]
    assert [h["path"] for h in server.hits] == [f"/echo?k={SYMBOL_FORMS[4]}"]  # it was sent
    for key, raw in wire.everything:
        body = json.loads(raw)
        if key in ("workflow.execution", "workflow.worker.initiated"):
            del body["workflow_definition"]  # the credential travels there, as the API sent it
        assert symbol_forms(json.dumps(body)) == [], (key, body)
        assert URL_PASSWORD not in json.dumps(body), (key, body)
        assert symbol_forms(json.dumps(body, ensure_ascii=False)) == [], (key, body)
    # the URL password: not in the parameters, the error, the failure reason or any log line
    [running] = [
        g.body for g in wire.statuses(literal["execution_id"]) if g.body["status"] == "running"
    ]
    assert running["parameters"]["url"] == f"http://ann:***@127.0.0.1:{port}/x"
    [failed] = [
        g.body for g in wire.statuses(literal["execution_id"]) if g.body["status"] == "failed"
    ]
    shown = f"GET http://ann:***@127.0.0.1:{port}/x: Connection refused"
    assert failed["error"]["message"].endswith(shown)
    assert done[literal["execution_id"]]["failure_reason"].endswith(shown)
    lines = [caplog.text] + [json.dumps(r.__dict__, default=str) for r in caplog.records]
    assert symbol_forms("\n".join(lines)) == []
    assert URL_PASSWORD not in "\n".join(lines)
    assert "switch node route: rule 0 skipped: cannot convert '***' to number" in caplog.text


def halted_reason(wire: Wire, url: str) -> str:
    m = master([node("call", "http", url=url, method="GET")], [], current="call")
    wire.publish_api(m)
    done = wire.completion(m["execution_id"])
    assert done["status"] == "halted"
    [failed] = [g.body for g in wire.statuses(m["execution_id"]) if g.body["status"] == "failed"]
    assert failed["error"]["message"] in done["failure_reason"]
    return str(failed["error"]["message"])


def test_http_node_refuses_denied_networks_without_sending(
    amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    deny = {"nodes.http_deny_networks": ["169.254.0.0/16", "127.0.0.2/32"]}
    with (
        echo("127.0.0.2") as inner,
        echo(redirect=f"{inner.url}/secret") as hop,
        running_worker(amqp_url, redis_url, redis_prefix, **deny),
    ):
        wire = Wire(amqp_url)
        try:
            metadata = halted_reason(wire, "http://169.254.169.254/latest/meta-data/")
            direct = halted_reason(wire, f"{inner.url}/secret")
            redirected = halted_reason(wire, f"{hop.url}/go")
        finally:
            wire.close()
    assert metadata == (
        "destination 169.254.169.254 (169.254.169.254) is in the denied network 169.254.0.0/16"
    )
    assert direct == "destination 127.0.0.2 (127.0.0.2) is in the denied network 127.0.0.2/32"
    assert redirected == direct
    assert inner.hits == []  # neither directly nor through the redirect
    assert [h["path"] for h in hop.hits] == ["/go"]


def test_the_default_deny_list_covers_cloud_metadata() -> None:
    assert load_config(env={}).nodes.http_deny_networks[:1] == ["169.254.0.0/16"]


# -- passwords in URLs ---------------------------------------------------------------------------

BROKER_PW = "amqp-Pw-5150"
REDIS_PW = "redis-Pw-1999"


def boot_failure_logs(caplog: pytest.LogCaptureFixture, **overrides: Any) -> str:
    """Every log record of a worker that cannot connect, until it says what it waits for (it
    waits, it does not crash) and is asked to stop."""
    caplog.clear()
    settings = {
        "broker.connection_attempts": 1,
        "broker.retry_delay": 0.01,
        "broker.retry_delay_max": 0.01,
        **overrides,
    }
    worker = Worker(load_config(None, env={}, overrides=settings))
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(worker.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while "waiting for" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    thread.join(15)
    assert code == [EXIT_OK]
    return "\n".join([caplog.text] + [json.dumps(r.__dict__, default=str) for r in caplog.records])


def test_url_passwords_never_reach_the_logs(
    amqp_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_broker = amqp_url.replace("guest:guest@", f"guest:{BROKER_PW}@")
    assert wrong_broker != amqp_url
    text = boot_failure_logs(caplog, **{"broker.url": wrong_broker, "redis.url": redis_url})
    assert "waiting for RabbitMQ at amqp://guest:***@127.0.0.1:5672/" in text
    assert "ACCESS_REFUSED" in text and BROKER_PW not in text
    # a user Redis does not know: the default user of a test Redis takes any password
    wrong_redis = redis_url.replace("redis://", f"redis://nobody-rw:{REDIS_PW}@")
    text = boot_failure_logs(caplog, **{"broker.url": amqp_url, "redis.url": wrong_redis})
    assert "waiting for Redis at redis://nobody-rw:***@127.0.0.1:6379/0" in text
    assert REDIS_PW not in text


def check_config(broker_url: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """`runeworker check-config` in a process of its own, the URLs in the Go variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNEWORKER_", "RABBITMQ_"))}
    env.update({"RABBITMQ_URL": broker_url, "REDIS_URL": redis_url})
    return subprocess.run(
        [sys.executable, "-m", "runeworker", "check-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("broker_url", "redis_url"),
    [
        (f"amqp://rune:{BROKER_PW}@rabbit:5672/%2F", f"redis://:{REDIS_PW}@redis:6379/0"),
        (f"amqps://rune:{BROKER_PW}%40x@rabbit/vh", f"redis://default:{REDIS_PW}@redis/1"),
        ("amqp://rune:guest@rabbit/", f"redis://redis/0?password={REDIS_PW}&db=1"),
        (f"amqp://rune:{BROKER_PW}@x@rabbit/", f"redis://u:{REDIS_PW}:x@redis/0"),
    ],
)
def test_check_config_masks_url_passwords(broker_url: str, redis_url: str) -> None:
    out = check_config(broker_url, redis_url)
    assert out.returncode == 0, out.stderr
    assert BROKER_PW not in out.stdout + out.stderr and REDIS_PW not in out.stdout + out.stderr
    assert 'url = "amqp' in out.stdout and ":***@" in out.stdout


@pytest.mark.parametrize(
    ("broker_url", "redis_url", "shown"),
    [
        (
            f"http://rune:{BROKER_PW}@rabbit/",
            "redis://redis/0",
            "RABBITMQ_URL: expected a URL starting with amqp:// or amqps://, "
            "got 'http://rune:***@rabbit/'",
        ),
        (
            f"amqp://rune:{BROKER_PW}/x@rabbit/",
            "redis://redis/0",
            "RABBITMQ_URL: cannot parse 'amqp://rune:***@rabbit/': "
            "percent-encode / ? # in the password",
        ),
        (
            "amqp://rabbit/",
            f"redis://:{REDIS_PW}#y@redis/0",
            "REDIS_URL: cannot parse 'redis://:***@redis/0': percent-encode / ? # in the password",
        ),
        (
            f"rune:{BROKER_PW}@rabbit:5672/",  # the scheme forgotten
            "redis://redis/0",
            "RABBITMQ_URL: expected a URL starting with amqp:// or amqps://, "
            "got 'rune:***@rabbit:5672/'",
        ),
    ],
)
def test_check_config_errors_mask_url_passwords(
    broker_url: str, redis_url: str, shown: str
) -> None:
    out = check_config(broker_url, redis_url)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == f"config error: {shown}\n"
