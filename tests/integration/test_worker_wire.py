"""A worker child (in a thread) against the real RabbitMQ and Redis, checked on the wire as the
Rune API, RTES and the archivist see it (docs/WIRE.md sections 2-6), through the scenarios of
upstream's Go suites (services/rune-worker/e2e/, services/rune-worker/integration/).

Every test starts its own worker under its own Redis prefix and filters what it reads by a fresh
execution id, so messages left by another test cannot be mistaken for its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

import pika
import pytest
from wire import (
    COMPLETION,
    DEAD,
    EXCHANGE,
    EXECUTION,
    MIRROR,
    NEXT_KEYS,
    RUNE_QUEUES,
    STATUS,
    TAP,
    Got,
    JsonServer,
    RunningWorker,
    Wire,
    check_published,
    check_status,
    drain_from,
    edge,
    http,
    log_chain,
    master,
    node,
    node_statuses,
    rabbit_queues,
    running_worker,
    vhost_of,
    worker_connections,
)

from runeworker.adapters.amqp import Confirmed

pytestmark = pytest.mark.integration

PARAMS = {"parameters"}
SUCCESS = {"parameters", "output"}
USED = {"all_used_input_keys", "used_inputs"}


def ran(wire: Wire, execution_id: str, node_id: str, used: bool = False) -> dict[str, Any]:
    """The node ran once: running then success, in that order, each with exactly the keys of
    docs/WIRE.md section 4.1 (`used`: the node read context keys, reported on success); returns
    success."""
    statuses = node_statuses(wire, execution_id, node_id, 2)
    assert [s["status"] for s in statuses] == ["running", "success"], statuses
    running, success = statuses
    check_status(running, "running", PARAMS)
    check_status(success, "success", SUCCESS | (USED if used else set()))
    assert running["parameters"] == success["parameters"]
    assert running["executed_at"] <= success["executed_at"]
    return success


def nodes_with_status(wire: Wire, execution_id: str) -> set[str]:
    return {g.body["node_id"] for g in wire.statuses(execution_id)}


# -- the scenarios of upstream's Go e2e and integration suites --------------------------------


def test_http_get_to_a_local_server(wire: Wire, server: JsonServer) -> None:
    """As e2e/workflow_e2e_test.go upstream: running + success with the response as output;
    completion `completed`."""
    m = master([http("fetch", f"{server.url}/uuid")], [], current="fetch")
    wire.publish_api(m)
    done = wire.completion(m["execution_id"])
    success = ran(wire, m["execution_id"], "fetch")
    assert success["parameters"] == {"url": f"{server.url}/uuid", "method": "GET"}
    out = success["output"]
    assert set(out) == {"status", "status_text", "body", "headers", "duration_ms"}
    assert (out["status"], out["status_text"]) == (200, "200 OK")
    assert out["body"] == {"uuid": server.uuid, "path": "/uuid"}
    assert type(out["duration_ms"]) is int
    assert (done["workflow_id"], done["status"]) == ("42", "completed")
    assert done["final_context"] == {"$fetch": out}
    assert [h.path for h in server.hits] == ["/uuid"]
    wire.no_second_completion(m["execution_id"], settle=0)


def conditional_workflow(url: str, value: bool) -> dict[str, Any]:
    edges_ids = {"true_edge_id": "e_true", "false_edge_id": "e_false"}
    cond = node("cond", "conditional", "UseGoogle", expression="$useGoogle == true", **edges_ids)
    start = node("trigger", "ManualTrigger", "Start")
    nodes = [start, cond, http("google", f"{url}/google"), http("bing", f"{url}/bing")]
    edges = [
        edge("trigger", "cond"),
        {**edge("cond", "google", "e_true"), "label": "true"},
        {**edge("cond", "bing", "e_false"), "label": "false"},
    ]
    return master(nodes, edges, {"$useGoogle": value}, current="cond")


@pytest.mark.parametrize(("value", "taken"), [(True, "google"), (False, "bing")])
def test_conditional_follows_one_edge(
    wire: Wire, server: JsonServer, value: bool, taken: str
) -> None:
    """As e2e/conditional_e2e_test.go upstream: only the node on the edge the condition picks
    runs."""
    m = conditional_workflow(server.url, value)
    eid = m["execution_id"]
    wire.publish_api(m)
    assert wire.completion(eid)["status"] == "completed"
    cond = ran(wire, eid, "cond", used=True)
    assert cond["output"]["result"] is value
    assert cond["all_used_input_keys"] == ["$useGoogle"]
    assert cond["used_inputs"] == {"$useGoogle": value}
    assert cond["node_name"] == "UseGoogle"
    ran(wire, eid, taken)
    assert nodes_with_status(wire, eid) == {"cond", taken}
    assert [h.path for h in server.hits] == [f"/{taken}"]
    # The next message the worker published for the taken node (docs/WIRE.md section 3.1).
    [nxt] = [g for g in wire.of(TAP, eid) if g.body.get("is_worker_initiated") is True]
    check_published(nxt)
    body = nxt.body
    assert set(body) == NEXT_KEYS  # a single-branch workflow: started_at_ms too
    assert (body["current_node"], body["from_node"]) == (taken, "cond")
    started = body["started_at_ms"]
    assert type(started) is int and abs(started - time.time() * 1000) < 60_000
    versions = (body["workflow_version"], body["workflow_version_id"])
    assert versions == (3, 17) and all(type(v) is int for v in versions)
    assert body["workflow_definition"] == m["workflow_definition"]  # unknown keys kept
    assert body["accumulated_context"] == {"$useGoogle": value, "$UseGoogle": cond["output"]}
    assert (body["workflow_id"], body["execution_id"]) == ("42", eid)


def test_switch_routes_to_the_matching_or_fallback_node(wire: Wire, server: JsonServer) -> None:
    """As e2e/switch_e2e_test.go upstream: switch on $target; google, yahoo, bing and anything
    else (fallback)."""
    rules = [
        {"value": "$target", "operator": "==", "compare": t} for t in ("google", "yahoo", "bing")
    ]
    routes = ["e_google", "e_yahoo", "e_bing", "e_other"]
    targets = ["google", "yahoo", "bing", "other"]
    nodes = [node("route", "switch", "Route", rules=rules, routes=routes)]
    nodes += [http(t, f"{server.url}/{t}") for t in targets]
    edges = [edge("route", t, f"e_{t}") for t in targets]
    messages = {
        t: master(nodes, edges, {"$target": t if t != "other" else "altavista"}, "route")
        for t in targets
    }
    for m in messages.values():
        wire.publish_api(m)
    for target, m in messages.items():
        eid = m["execution_id"]
        assert wire.completion(eid)["status"] == "completed"
        route = ran(wire, eid, "route", used=True)
        assert route["output"]["output_index"] == targets.index(target)
        assert route["all_used_input_keys"] == ["$target"]
        assert route["used_inputs"] == m["accumulated_context"]
        ran(wire, eid, target)
        assert nodes_with_status(wire, eid) == {"route", target}
    assert sorted(h.path for h in server.hits) == sorted(f"/{t}" for t in targets)


def test_messages_published_through_the_exchange_all_complete(wire: Wire) -> None:
    """As integration/rabbitmq_integration_test.go upstream: 1 and then 5 messages via
    `workflows` / `workflow.execution`."""
    for count in (1, 5):
        batch = [log_chain() for _ in range(count)]
        for m in batch:
            wire.publish_exchange(m)
        for m in batch:
            done = wire.completion(m["execution_id"])
            assert done["status"] == "completed"
            assert done["final_context"]["$Say"]["message"] == "hi"
            ran(wire, m["execution_id"], "say")


def test_master_message_is_mirrored_unchanged_with_credentials_masked(
    wire: Wire, server: JsonServer
) -> None:
    """As integration/worker_initiated_integration_test.go upstream: the master message appears
    on workflow.worker.initiated, identical but for credential values; no message the worker
    publishes for RTES carries the secret."""
    secret = "s3cret-token-value"
    call = http("call", f"{server.url}/private")
    call["credentials"] = {"id": "c1", "name": "tok", "type": "token", "values": {"token": secret}}
    cond = node("cond", "conditional", "Always", expression="true")
    plain = master([cond], [], current="cond")  # as the Go suite has it
    wired = {**cond, "parameters": {"expression": "true", "true_edge_id": "e_t"}}
    creds = master([wired, call], [edge("cond", "call", "e_t")], current="cond")
    for m in (plain, creds):
        wire.publish_api(m)
    for m in (plain, creds):
        wire.completion(m["execution_id"])
    wire.wait(
        "the mirrors", lambda: all(wire.of(MIRROR, m["execution_id"]) for m in (plain, creds))
    )
    [mirrored] = wire.of(MIRROR, plain["execution_id"])
    check_published(mirrored)
    assert mirrored.body == plain
    masked = json.loads(json.dumps(creds))
    masked["workflow_definition"]["nodes"][1]["credentials"]["values"] = {"token": "***"}
    assert [g.body for g in wire.of(MIRROR, creds["execution_id"])] == [masked]
    assert server.hits[0].headers["Authorization"] == f"Bearer {secret}"  # the node had it
    ran(wire, creds["execution_id"], "call")
    for m in (plain, creds):
        assert ran(wire, m["execution_id"], "cond")["output"]["result"] is True
    for queue in (STATUS, COMPLETION, MIRROR):
        for got in wire.of(queue, creds["execution_id"]):
            assert secret.encode() not in got.raw, (queue, got.raw)


def test_the_mirror_masks_embedded_and_malformed_credentials_too(wire: Wire) -> None:
    """RTES persists the mirror: an agent's tool and MCP server credentials (which the API
    resolves and embeds in the parameters) and a credential of the wrong shape, which the step
    then refuses, are masked there like a node's `values`."""
    agent = node("a", "agent", provider="openai", model="m", prompt="hi")
    agent["parameters"]["tools"] = [
        {
            "name": "t",
            "url": "http://127.0.0.1:1/",
            "credentials": {
                "id": "c1",
                "name": "c",
                "type": "token",
                "values": {"token": "tool-s3cret"},
            },
        }
    ]
    agent["parameters"]["mcp_servers"] = [{"name": "m", "url": "http://127.0.0.1:1/sse",
        "credentials": {"id": "c2", "type": "token", "token": "mcp-flat-s3cret"}}]  # fmt: skip
    shapes = [{"id": "c3", "type": "token", "values": ["list-s3cret"]}, "whole-s3cret"]
    logs = []
    for i, cred in enumerate(shapes):
        logs.append(node(f"l{i}", "log", message="x"))
        logs[-1]["credentials"] = cred
    messages = [master([agent], [], current="a")] + [master([n], [], current=n["id"]) for n in logs]
    for m in messages:
        wire.publish_api(m)
    for m in messages:
        wire.completion(m["execution_id"])
    wire.wait("the mirrors", lambda: all(wire.of(MIRROR, m["execution_id"]) for m in messages))
    [mirrored] = wire.of(MIRROR, messages[0]["execution_id"])
    params = mirrored.body["workflow_definition"]["nodes"][0]["parameters"]
    assert params["tools"][0]["credentials"] == {
        "id": "c1", "name": "c", "type": "token", "values": {"token": "***"}}  # fmt: skip
    assert params["mcp_servers"][0]["credentials"] == {"id": "c2", "type": "token", "token": "***"}
    for m in messages:
        for got in wire.of(MIRROR, m["execution_id"]):
            assert b"s3cret" not in got.raw, got.raw


def test_the_mirror_reaches_its_consumer_before_any_status(
    amqp_url: str, worker: RunningWorker
) -> None:
    """RTES drops the statuses of an execution it has no mirror of (docs/WIRE.md section 6):
    one consumer on one channel reading both queues, as RTES's lapin consumers, receives every
    execution's mirror strictly before any of its statuses. Many start messages at once, so
    that they share the worker's batches. The race this prevents is rare on an idle machine,
    so the worker's commits to RabbitMQ are logged too: each mirror is committed by an
    earlier commit than the first status of its execution."""
    commits: list[list[tuple[str, str]]] = [[]]  # per commit: (routing key, execution id)
    broker = worker.worker.broker
    publish, commit = broker.publish, broker.commit

    def logged_publish(routing_key: str, body: bytes, **kwargs: Any) -> None:
        commits[-1].append((routing_key, json.loads(body).get("execution_id", "")))
        publish(routing_key, body, **kwargs)

    def logged_commit(confirmed: Confirmed = None) -> float:
        took = commit(confirmed)
        commits.append([])
        return took

    broker.publish, broker.commit = logged_publish, logged_commit  # type: ignore[method-assign]
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    seen: list[tuple[str, str]] = []  # (queue, execution id), in delivery order

    def on_message(queue: str) -> Any:
        def handle(_ch: Any, method: Any, _props: Any, body: bytes) -> None:
            seen.append((queue, json.loads(body)["execution_id"]))
            ch.basic_ack(method.delivery_tag)

        return handle

    ch.basic_consume(MIRROR, on_message(MIRROR))
    ch.basic_consume(STATUS, on_message(STATUS))
    say = node("say", "log", "Say", message="hi")
    starts = [master([say], [], current="say") for _ in range(40)]  # statuses at the first step
    api = Wire(amqp_url)
    try:
        for m in starts:
            api.publish_api(m)
        wanted = {m["execution_id"] for m in starts}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counts = {e: 0 for e in wanted}
            for queue, eid in seen:
                if eid in counts and queue == STATUS:
                    counts[eid] += 1
            if all(n == 2 for n in counts.values()):  # Say: running, success
                break
            conn.process_data_events(time_limit=0.05)
        else:
            raise AssertionError("not every execution got its two statuses within 30 s")
    finally:
        api.close()
        conn.close()
    for eid in wanted:
        order = [queue for queue, e in seen if e == eid]
        assert order == [MIRROR, STATUS, STATUS], (eid, order)
        mirrored = [n for n, tx in enumerate(commits) if (MIRROR, eid) in tx]
        statuses = [n for n, tx in enumerate(commits) if (STATUS, eid) in tx]
        assert len(mirrored) == 1 and statuses, (eid, mirrored, statuses)
        assert mirrored[0] < min(statuses), (eid, mirrored, statuses)


# -- exactly one completion -----------------------------------------------------------------


def test_fan_out_to_four_leaves_completes_once(wire: Wire) -> None:
    leaves = [f"leaf{i}" for i in range(1, 5)]
    nodes = [node("trigger", "ManualTrigger", "Start")]
    nodes += [node(leaf, "log", message=f"I am {leaf}") for leaf in leaves]
    m = master(nodes, [edge("trigger", leaf) for leaf in leaves])
    wire.publish_api(m)
    done = wire.completion(m["execution_id"])
    wire.no_second_completion(m["execution_id"])
    assert done["status"] == "completed"
    assert set(done["final_context"]) == {f"${leaf}" for leaf in leaves}
    for leaf in leaves:
        out = ran(wire, m["execution_id"], leaf)["output"]
        assert done["final_context"][f"${leaf}"] == out
        assert out["message"] == f"I am {leaf}"


def test_diamond_without_merge_completes_once(wire: Wire) -> None:
    nodes = [node(n, "log", message=f"step {n}") for n in "ABCD"]
    edges = [edge("A", "B"), edge("A", "C"), edge("B", "D"), edge("C", "D")]
    m = master(nodes, edges, current="A")
    eid = m["execution_id"]
    wire.publish_api(m)
    done = wire.completion(eid)
    wire.no_second_completion(eid)
    assert done["status"] == "completed"
    assert set(done["final_context"]) == {"$A", "$B", "$C", "$D"}
    for n in "ABC":
        assert done["final_context"][f"${n}"] == ran(wire, eid, n)["output"]
    d = node_statuses(wire, eid, "D", 4)  # D runs once per incoming branch
    assert [s["status"] for s in d] == ["running", "success"] * 2
    for running, success in (d[:2], d[2:]):
        check_status(running, "running", PARAMS)
        check_status(success, "success", SUCCESS)
    assert done["final_context"]["$D"]["message"] == "step D"


# -- topology --------------------------------------------------------------------------------


def test_topology_is_compatible_with_the_api_and_rtes(amqp_url: str, worker: RunningWorker) -> None:
    queues = rabbit_queues(vhost_of(amqp_url))
    for name in (*RUNE_QUEUES, DEAD):
        q = queues[name]
        assert (q["durable"], q["auto_delete"]) == (True, False), q
        assert not q["arguments"], q
    with contextlib.closing(pika.BlockingConnection(pika.URLParameters(amqp_url))) as conn:
        ch = conn.channel()
        ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)  # as RTES does
        for name in (*RUNE_QUEUES, DEAD):
            ch.queue_declare(name, passive=True)
            ch.queue_declare(name, durable=True)  # as the API and RTES do: no arguments


# -- bad input -------------------------------------------------------------------------------


def wait_dead_letters(wire: Wire, marker: str) -> list[Got]:
    """The dead-letter copies whose body contains `marker`, once there is one."""

    def found() -> list[Got]:
        return [g for g in wire.got[DEAD] if marker.encode() in g.raw]

    wire.wait(f"a dead letter containing {marker}", lambda: bool(found()))
    return found()


def bad_messages() -> list[tuple[dict[str, Any], str, str]]:
    """(message, word the reason must name, node of the failed status)."""
    wrong_type = master([node("a", "log", message="x")], [], current="a")
    wrong_type["workflow_version"] = "three"  # RTES and Go need an integer
    cycle = [edge("a", "b"), edge("b", "a")]
    return [
        (master([node("a", "log", message="x")], [], current="ghost"), "ghost", "ghost"),
        (master([node("t", "teleport", "Beam", to="mars")], [], current="t"), "teleport", "t"),
        (master([node(n, "log", message=n) for n in "ab"], cycle, current="a"), "cycle", "a"),
        (wrong_type, "workflow_version", "a"),
    ]


def test_bad_input_is_failed_and_dead_lettered_without_a_crash(
    amqp_url: str, worker: RunningWorker, wire: Wire
) -> None:
    garbage = b'{"workflow_id": "garbage-' + str(time.monotonic_ns()).encode() + b'", '
    wire.publish_api(garbage)
    bad = bad_messages()
    for m, _word, _node in bad:
        wire.publish_api(m)
    good = log_chain()
    wire.publish_api(good)
    assert wire.completion(good["execution_id"])["status"] == "completed"
    for m, word, node_id in bad:
        eid = m["execution_id"]
        done = wire.completion(eid)
        assert done["status"] == "failed" and word in done["failure_reason"], done
        [copy] = wait_dead_letters(wire, eid)
        assert json.loads(copy.raw) == m  # the original bytes, kept for an operator
        assert word in copy.headers["x-runeworker-reason"], copy.headers
        assert (copy.headers["x-runeworker-queue"], copy.delivery_mode) == (EXECUTION, 2)
        # the unknown type and the cycle are reported like node failures: running, failed
        like_a_node = word in ("teleport", "cycle")
        sequence = node_statuses(wire, eid, node_id, 2 if like_a_node else 1)
        assert len(wire.statuses(eid)) == len(sequence)
        assert [s["status"] for s in sequence] == ["running", "failed"][-len(sequence) :]
        st = sequence[-1]
        # parameters are omitted when empty (docs/WIRE.md 4.1): only the teleport node has some
        check_status(st, "failed", {"error", "parameters"} if node_id == "t" else {"error"})
        assert (st["node_id"], st["node_name"]) == (node_id, "Beam" if node_id == "t" else node_id)
        assert word in st["error"]["message"], st
        if node_id != "t":
            assert set(st["error"]) == {"message", "code"}
            assert st["error"]["code"] == "NODE_EXECUTION_FAILED"
    assert wire.statuses(bad[1][0]["execution_id"])[-1].body["error"] == {
        "message": "failed to create node of type teleport",
        "code": "NODE_CREATION_FAILED",
        "details": {"error": "node type teleport not registered"},
    }
    [copy] = wait_dead_letters(wire, garbage.decode())
    assert copy.raw == garbage
    assert "decode" in copy.headers["x-runeworker-reason"]
    assert worker.thread.is_alive()
    depth = rabbit_queues(vhost_of(amqp_url))[EXECUTION]["messages"]  # ready + unacked
    assert depth == 0  # every original was acked, none is requeued


# -- heartbeats and the running status -----------------------------------------------------


def test_slow_http_node_outlasts_the_heartbeat(
    amqp_url: str,
    redis_url: str,
    redis_prefix: str,
    server: JsonServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 5 s request with a 1 s heartbeat: same connection throughout, one completion, and
    the `running` status was on the status queue while the request was in flight."""
    caplog.set_level(logging.INFO, logger="runeworker")
    vhost = vhost_of(amqp_url)
    with running_worker(amqp_url, redis_url, redis_prefix, **{"broker.heartbeat": 1}) as rw:
        connections = worker_connections(vhost)
        assert [timeout for _name, timeout in connections] == [1]  # negotiated: 1 s
        wire = Wire(amqp_url)
        arrived = threading.Event()

        def before(_path: str) -> None:
            drain_from(amqp_url, wire, STATUS)  # what RTES can read while the request waits
            arrived.set()
            time.sleep(5)  # the slow server is the point of the test

        server.before = before
        try:
            m = master([http("slow", f"{server.url}/slow")], [], current="slow")
            eid = m["execution_id"]
            wire.publish_api(m)
            assert arrived.wait(15), "the http node never called the server"
            seen = [s.body["status"] for s in wire.statuses(eid)]
            assert seen == ["running"], seen
            done = wire.completion(eid, timeout=20)
            assert done["status"] == "completed"
            assert done["final_context"]["$slow"]["body"]["path"] == "/slow"
            ran(wire, eid, "slow")
            wire.no_second_completion(eid)
            assert [h.path for h in server.hits] == ["/slow"]  # not retried, not redelivered
            assert rw.thread.is_alive()
            assert worker_connections(vhost) == connections
        finally:
            wire.close()
    lost = [r for r in caplog.records if "connection lost" in r.getMessage()]
    assert lost == []
