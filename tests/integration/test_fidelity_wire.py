"""Fidelity to upstream Rune on the wire (issue 11): messages shaped as other Rune services write
them, and credential shapes of the web app, against a worker child on the real RabbitMQ and
Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from wire import (
    MIRROR,
    JsonServer,
    RunningWorker,
    Wire,
    check_status,
    edge,
    master,
    node,
    node_statuses,
    running_worker,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(amqp_url: str, redis_url: str, redis_prefix: str) -> Iterator[RunningWorker]:
    with running_worker(amqp_url, redis_url, redis_prefix) as rw:
        yield rw


@pytest.fixture
def wire(amqp_url: str, worker: RunningWorker) -> Iterator[Wire]:
    w = Wire(amqp_url)
    yield w
    w.close()


@pytest.fixture
def server() -> Iterator[JsonServer]:
    srv = JsonServer()
    yield srv
    srv.close()


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
