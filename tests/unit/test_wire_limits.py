"""What Go's encoding/json (upstream's worker) and RTES's serde_json read, and runeworker takes no
more: the integer fields of an execution message in the ranges of their Go and Rust types, and
(through the worker loop on the in-memory broker of stubbroker.py) a message that breaks one
refused as bad input: a dead-letter copy naming the field, the execution's `failed` status and
completion."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stubbroker import StubBroker, StubStore
from test_worker_loop import DEAD, QUEUE, decoded, make_worker, message, rejected, run_until_idle

from runeworker.adapters.amqp import COMPLETION_QUEUE, MIRROR_QUEUE, STATUS_QUEUE
from runeworker.engine.messages import decode_execution
from runeworker.errors import MessageError

I32 = (-(2**31), 2**31 - 1)
I64 = (-(2**63), 2**63 - 1)

# field -> (where in the message, its bounds): upstream's NodeExecutionMessage and StackFrame
# (services/rune-worker/pkg/messages/node_execution_message.go) declare every one a Go `int`
# (int64); RTES (services/rtes/src/domain/models.rs) reads workflow_version, item_index and
# total_items as i32 (in the mirror and in statuses) and workflow_version_id as i64;
# started_at_ms is runeworker's own, an epoch in milliseconds
FIELDS: dict[str, tuple[tuple[str | int, ...], tuple[int, int]]] = {
    "workflow_version": (("workflow_version",), I32),
    "workflow_version_id": (("workflow_version_id",), I64),
    "item_index": (("lineage_stack", 0, "item_index"), I32),
    "total_items": (("lineage_stack", 0, "total_items"), I32),
    "started_at_ms": (("started_at_ms",), I64),
}


def body_with(path: tuple[str | int, ...], value: Any) -> bytes:
    doc = json.loads(message("ex-1"))
    doc["lineage_stack"] = [
        {"split_node_id": "s", "branch_id": "b0", "item_index": 0, "total_items": 1}
    ]
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize("name", FIELDS)
def test_the_bounds_of_each_integer_field_are_taken(name: str) -> None:
    path, (low, high) = FIELDS[name]
    for value in (low, high, 0):
        msg = decode_execution(body_with(path, value))
        got: Any = msg
        for key in path:
            got = got[key] if isinstance(key, int) else getattr(got, key)
        assert got == value


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("beyond", ["above", "below", "400 digits", "2^64"])
def test_an_integer_field_out_of_its_range_is_refused_naming_it(name: str, beyond: str) -> None:
    """Found by tests/fuzz: a 400-digit workflow_version was mirrored (RTES reads an i32), an
    item_index of 2^64 went into every status of the branch (RTES reads an i32; Go's decoder
    refuses anything past int64)."""
    path, (low, high) = FIELDS[name]
    value = {"above": high + 1, "below": low - 1, "400 digits": 10**400, "2^64": 2**64}[beyond]
    with pytest.raises(MessageError) as caught:
        decode_execution(body_with(path, value))
    text = str(caught.value)
    assert name in text and "Expected `int`" in text, text


@pytest.mark.parametrize("name", FIELDS)
def test_a_message_with_a_field_out_of_range_fails_its_execution(
    name: str, broker: StubBroker, store: StubStore
) -> None:
    path, _ = FIELDS[name]
    body = body_with(path, 10**400)
    broker.enqueue(QUEUE, body)
    run_until_idle(make_worker(broker, store), broker)
    tx = rejected(broker)
    [copy] = tx.to(DEAD)
    assert copy.body == body and name in copy.headers["x-runeworker-reason"]
    assert tx.to(MIRROR_QUEUE) == []  # never mirrored: RTES could not read it
    statuses = decoded(tx.to(STATUS_QUEUE))
    assert [(s["node_id"], s["status"]) for s in statuses] == [("say", "failed")]
    assert name in statuses[0]["error"]["message"]
    assert [(c["execution_id"], c["status"]) for c in decoded(tx.to(COMPLETION_QUEUE))] == [
        ("ex-1", "failed")
    ]
    for m in tx.to(STATUS_QUEUE) + tx.to(COMPLETION_QUEUE):
        assert b"0" * 300 not in m.body  # the number is not carried on


# -- identifying the execution of a refused message ---------------------------------------------

UNREADABLE_BESIDE_IDS = {
    "branch_token 1e999": (b'"branch_token":1e999', "branch_token"),
    "from_node -1e999": (b'"from_node":-1e999', "from_node"),
    "current_node 1e999": (b'"current_node":1e999', "current_node"),
    "ghost 1e999": (b'"ghost":1e999', "ghost"),
    "a frame's item_index 1e999": (
        b'"lineage_stack":[{"split_node_id":"s","branch_id":"b0","item_index":1e999,'
        b'"total_items":1}]',
        "item_index",
    ),
    "branch_token a lone surrogate": (b'"branch_token":"\\ud800"', "surrogate"),
    "outer_keys holding 1e999": (b'"outer_keys":[{"$json":1e999}]', "outer_keys"),
}


@pytest.mark.parametrize("case", UNREADABLE_BESIDE_IDS)
def test_an_unreadable_value_beside_readable_ids_still_fails_the_execution(
    case: str, broker: StubBroker, store: StubStore
) -> None:
    """Found by tests/fuzz: `"branch_token": 1e999` beside readable ids made the message
    unidentifiable (the ids were read in one decoding, which the number failed): dead-lettered
    with no failed completion, the execution open for ever. The ids are read key by key."""
    member, named = UNREADABLE_BESIDE_IDS[case]
    body = message("ex-1")
    key = member.split(b":", 1)[0]
    if key in body:  # current_node: replaced, not repeated
        doc = json.loads(body)
        del doc[key.decode().strip('"')]
        body = json.dumps(doc).encode()
    body = body[:-1] + b"," + member + b"}"
    broker.enqueue(QUEUE, body)
    run_until_idle(make_worker(broker, store), broker)
    tx = rejected(broker)
    [copy] = tx.to(DEAD)
    assert copy.body == body
    assert named in copy.headers["x-runeworker-reason"].lower()
    statuses = decoded(tx.to(STATUS_QUEUE))
    assert [s["status"] for s in statuses] == ["failed"]
    assert [(c["execution_id"], c["status"]) for c in decoded(tx.to(COMPLETION_QUEUE))] == [
        ("ex-1", "failed")
    ]
