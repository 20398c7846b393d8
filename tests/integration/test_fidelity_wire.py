"""Fidelity to upstream Rune on the wire (issue 11): messages shaped as other Rune services write
them, and credential shapes of the web app, against a worker child on the real RabbitMQ and
Redis."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from badinput import closed_port
from wire import (
    MIRROR,
    JsonServer,
    Wire,
    check_status,
    edge,
    master,
    node,
    node_statuses,
    running_worker,
)

from runeworker.engine.merge_timer import timer_of

pytestmark = pytest.mark.integration


def ran(wire: Wire, execution_id: str, node_id: str) -> dict[str, Any]:
    """running then success of one node, each with the keys of a status; returns success."""
    statuses = node_statuses(wire, execution_id, node_id, 2)
    assert [s["status"] for s in statuses] == ["running", "success"], statuses
    check_status(statuses[0], "running", {"parameters"})
    return statuses[1]


# -- item 1: null in optional fields ----------------------------------------------------------


def rtes_shaped(initiated: bool | None) -> dict[str, Any]:
    """An execution message as services/rtes/scripts/simulate_events.py writes it: `from_node`
    null, `lineage_stack` [], nodes with `"output": {}`, plus the nulls other writers use."""
    execution_id = str(uuid.uuid4())
    say = node("say", "log", "Say", message="hello")
    say.update(credentials=None, error=None, output={})
    done = node("done", "log", "Done", message="bye")
    done.update(output={}, trigger=None, credentials={"id": None, "type": "token", "values": None})
    return {
        "workflow_id": "workflow-1",
        "execution_id": execution_id,
        "current_node": "say",
        "workflow_definition": {
            "workflow_id": "workflow-1",
            "execution_id": execution_id,
            "nodes": [say, done],
            "edges": [edge("say", "done")],
        },
        "accumulated_context": {},
        "lineage_stack": [] if initiated else None,
        "from_node": None,
        "is_worker_initiated": initiated,
    }


@pytest.mark.parametrize("initiated", [True, None])
def test_null_optional_fields_are_read_as_absent(wire: Wire, initiated: bool | None) -> None:
    m = rtes_shaped(initiated)
    wire.publish_api(m)
    done = wire.completion(m["execution_id"])
    assert done["status"] == "completed", done
    assert ran(wire, m["execution_id"], "say")["output"]["message"] == "hello"
    assert ran(wire, m["execution_id"], "done")["output"]["message"] == "bye"
    # `is_worker_initiated: null` is false, as for Go: the master message is mirrored
    mirrored = wire.of(MIRROR, m["execution_id"])
    assert len(mirrored) == (0 if initiated else 1)
    assert not wire.of("runeworker.dead-letter", m["execution_id"])


# -- item 2: api_key credentials ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "header", "sent"),
    [
        ({"api_key": "sk-web-form", "base_url": ""}, "Authorization", "Bearer sk-web-form"),
        ({"api_key": "sk-web-form", "base_url": "https://api.example.com"}, "Authorization", None),
        ({"key": "X-Api-Key", "value": "kv-1234"}, "X-Api-Key", "kv-1234"),
    ],
)
def test_api_key_credentials_of_the_web_form_and_of_the_worker(
    wire: Wire, server: JsonServer, values: dict[str, str], header: str, sent: str | None
) -> None:
    fetch = node("fetch", "http", "Fetch", url=f"{server.url}/key", method="GET")
    fetch["credentials"] = {"id": "c1", "name": "API", "type": "api_key", "values": values}
    m = master([fetch], [], current="fetch")
    wire.publish_api(m)
    done = wire.completion(m["execution_id"])
    assert done["status"] == "completed", done
    success = ran(wire, m["execution_id"], "fetch")
    expected = sent if sent is not None else f"Bearer {values['api_key']}"
    assert server.hits[-1].headers[header] == expected
    secret = values.get("api_key") or values["value"]
    for got in wire.statuses(m["execution_id"]) + wire.completions(m["execution_id"]):
        assert secret.encode() not in got.raw
    assert success["output"]["status"] == 200


# -- item 8: untrusted depth ------------------------------------------------------------------


class DeepServer:
    """127.0.0.1 HTTP server answering a JSON array nested `levels` deep."""

    def __init__(self, levels: int) -> None:
        body = b"[" * levels + b"]" * levels

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def deep_server() -> Iterator[DeepServer]:
    srv = DeepServer(3_000)
    yield srv
    srv.close()


def deep_workflow(policy: str, first: dict[str, Any], inputs: Any = None) -> dict[str, Any]:
    first["error"] = (
        {"type": policy, "error_edge": "e_err"} if policy == "branch" else {"type": policy}
    )
    nodes = [
        node("trigger", "ManualTrigger", "Start"),
        first,
        node("after", "log", "After", message="after"),
        node("onerr", "log", "OnError", message="$error.message"),
    ]
    edges = [edge("trigger", first["id"]), edge(first["id"], "after")]
    if policy == "branch":
        edges.append(edge(first["id"], "onerr", "e_err"))
    context = {"$input": inputs, "$trigger": inputs} if inputs is not None else None
    return master(nodes, edges, context)


def statuses_of(wire: Wire, execution_id: str) -> list[tuple[str, str]]:
    return [(g.body["node_id"], g.body["status"]) for g in wire.statuses(execution_id)]


@pytest.mark.parametrize("policy", ["ignore", "branch", "halt"])
@pytest.mark.parametrize("source", ["http", "input"])
def test_deep_json_fails_the_node_under_its_policy(
    wire: Wire, deep_server: DeepServer, policy: str, source: str
) -> None:
    if source == "http":
        first = node("deep", "http", "Deep", url=deep_server.url, method="GET")
        m = deep_workflow(policy, first)
    else:
        first = node("deep", "log", "Deep", message="$input.k")
        m = deep_workflow(policy, first, {"k": json.loads("[" * 600 + "]" * 600)})
    eid = m["execution_id"]
    wire.publish_api(m)
    done = wire.completion(eid)
    failed = node_statuses(wire, eid, "deep", 2)
    assert [s["status"] for s in failed] == ["running", "failed"]
    assert "nested deeper than 100 levels" in failed[1]["error"]["message"]
    if policy == "halt":
        assert done["status"] == "halted"
        assert "nested deeper than 100 levels" in done["failure_reason"]
    else:
        assert done["status"] == "completed", done
        goes_on = "after" if policy == "ignore" else "onerr"
        assert [s["status"] for s in node_statuses(wire, eid, goes_on, 2)] == [
            "running",
            "success",
        ]
    wire.no_second_completion(eid, settle=0.3)
    assert not wire.of("runeworker.dead-letter", eid)  # a node failure, not bad input


# -- item 6: the first failure ends the execution at once -------------------------------------


def scheduled(redis_url: str, prefix: str, timer_id: str) -> bool:
    """Whether the scheduler still holds the timer (due, leased or its payload)."""
    client = redis.Redis.from_url(redis_url)
    try:
        due = client.zscore(prefix + "scheduler:timers", timer_id)
        leased = client.zscore(prefix + "scheduler:processing", timer_id)
        return (
            due is not None
            or leased is not None
            or bool(client.hexists(prefix + "scheduler:payloads", timer_id))
        )
    finally:
        client.close()


def test_a_failure_completes_at_once_and_cancels_a_parked_wait(
    amqp_url: str, redis_url: str, redis_prefix: str, tmp_path: Any
) -> None:
    """Upstream's worker leaves a sibling parked in a wait to run on after a failure. Here a
    branch that fails (an edit whose expression throws, a quick node) halts the execution while
    its sibling waits an hour: the `halted` completion comes at once (not in an hour), the
    wait's timer is gone from the scheduler, and nothing of the waiting branch runs."""
    boom = node("boom", "edit", "Boom", assignments=[{"name": "x", "value": "{{ $json.no.such }}"}])
    nodes = [node("trigger", "ManualTrigger", "Start"),
             node("pause", "wait", "Pause", amount=1, unit="hours"),
             node("after", "log", "After", message="woke up"),
             node("first", "log", "First", message="one"),
             boom]  # fmt: skip
    edges = [edge("trigger", "pause"), edge("pause", "after"),
             edge("trigger", "first"), edge("first", "boom")]  # fmt: skip
    start = master(nodes, edges)
    eid = start["execution_id"]
    lock = str(tmp_path / "scheduler.lock")
    with running_worker(amqp_url, redis_url, redis_prefix, scheduler_lock=lock):
        wire = Wire(amqp_url)
        try:
            wire.publish_api(start)
            waited = node_statuses(wire, eid, "pause", 2)
            done = wire.completion(eid, timeout=30)
            failed = node_statuses(wire, eid, "boom", 2)
            wire.no_second_completion(eid)
            after = [g for g in wire.statuses(eid) if g.body["node_id"] in ("after", "pause")]
        finally:
            wire.close()
    assert [s["status"] for s in waited] == ["running", "waiting"]
    assert [s["status"] for s in failed] == ["running", "failed"]
    assert done["status"] == "halted"
    assert done["failure_reason"].startswith("node Boom (boom) failed")
    assert len(after) == 2  # the pause's running and waiting: no success, no After
    assert not scheduled(redis_url, redis_prefix, waited[1]["output"]["timer_id"])


def test_a_failure_completes_at_once_and_cancels_a_merge_timeout(
    amqp_url: str, redis_url: str, redis_prefix: str, tmp_path: Any
) -> None:
    """A merge waits (timeout 300 s) for a branch whose http node fails (a blocking node on the
    admitted path): the completion comes at once and the merge's timeout timer is cancelled, so
    the merge never fails later."""
    nodes = [node("trigger", "ManualTrigger", "Start"),
             node("quick", "log", "Quick", message="here"),
             node("first", "log", "First", message="one"),
             node("call", "http", "Call", url=f"http://127.0.0.1:{closed_port()}/", method="GET"),
             node("join", "merge", "Join", timeout=300),
             node("end", "log", "End", message="joined")]  # fmt: skip
    edges = [edge("trigger", "quick"), edge("quick", "join"), edge("trigger", "first"),
             edge("first", "call"), edge("call", "join"), edge("join", "end")]  # fmt: skip
    start = master(nodes, edges)
    eid = start["execution_id"]
    timer = timer_of(eid, "join", "").timer_id
    lock = str(tmp_path / "scheduler.lock")
    with running_worker(amqp_url, redis_url, redis_prefix, scheduler_lock=lock):
        wire = Wire(amqp_url)
        try:
            wire.publish_api(start)
            joined = node_statuses(wire, eid, "join", 1)
            done = wire.completion(eid, timeout=30)
            wire.no_second_completion(eid)
            merge = [g.body["status"] for g in wire.statuses(eid) if g.body["node_id"] == "join"]
        finally:
            wire.close()
    assert joined[0]["status"] == "running"
    assert done["status"] == "halted"
    assert done["failure_reason"].startswith("node Call (call) failed")
    assert "failed" not in merge and "success" not in merge
    assert not scheduled(redis_url, redis_prefix, timer)


def test_a_merge_timeout_fires_on_time_from_the_arrival_that_parked_it(
    amqp_url: str, redis_url: str, redis_prefix: str, tmp_path: Any
) -> None:
    """A merge (timeout 1 s) gets one arrival; its other parent waits an hour. The waiting
    arrival scheduled the merge's timer in its own Redis call (`MergeArrival.park`): the timer
    fires about a second later, the merge fails as timed out, the execution halts at once, and
    no timer is left (the merge's acknowledged, the wait's cancelled by the failure)."""
    nodes = [node("trigger", "ManualTrigger", "Start"),
             node("quick", "log", "Quick", message="here"),
             node("pause", "wait", "Pause", amount=1, unit="hours"),
             node("join", "merge", "Join", timeout=1),
             node("end", "log", "End", message="joined")]  # fmt: skip
    edges = [edge("trigger", "quick"), edge("quick", "join"), edge("trigger", "pause"),
             edge("pause", "join"), edge("join", "end")]  # fmt: skip
    start = master(nodes, edges)
    eid = start["execution_id"]
    timer = timer_of(eid, "join", "").timer_id
    lock = str(tmp_path / "scheduler.lock")
    with running_worker(amqp_url, redis_url, redis_prefix, scheduler_lock=lock):
        wire = Wire(amqp_url)
        try:
            wire.publish_api(start)
            joined = node_statuses(wire, eid, "join", 3)
            done = wire.completion(eid, timeout=30)
            wire.no_second_completion(eid)
            waited = node_statuses(wire, eid, "pause", 2)
            ended = [g for g in wire.statuses(eid) if g.body["node_id"] == "end"]
        finally:
            wire.close()
    assert [s["status"] for s in joined] == ["running", "waiting", "failed"]
    assert "timed out" in joined[2]["error"]["message"]
    assert done["status"] == "halted"
    assert "timed out" in done["failure_reason"]
    assert [s["status"] for s in waited] == ["running", "waiting"]
    assert ended == []
    assert not scheduled(redis_url, redis_prefix, timer)
    assert not scheduled(redis_url, redis_prefix, waited[1]["output"]["timer_id"])
