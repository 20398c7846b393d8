"""Upstream's consumers' own rules, applied to the bytes runeworker publishes (docs/WIRE.md
sections 4 to 6, "Wire review against upstream's consumers" in CHANGELOG.md).

Each rule cites the upstream file (github.com/rune-org/rune at b172fe65) it reproduces. The
same messages also go through RTES's own serde types, compiled, in
tests/integration/test_rtes_serde.py, where a Rust toolchain is at hand."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from flowkit import TRIGGER, definition, drive, n, start

from runeworker.engine.messages import (
    NodeExecutionMessage,
    bson_safe,
    encode,
    encode_status,
    masked_mirror,
)
from runeworker.engine.outbox import storable_reason

I64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
BIG = 12345678901234567890  # above i64, below u64: serde_json reads it as a u64


def bson_refusals(value: Any, path: str = "$") -> list[str]:
    """RTES's store converts what it parsed with `bson::to_bson(...)?`
    (`update_node_status`, `upsert_execution_definition` in
    services/rtes/src/infra/execution_store.rs). serde_json reads an integer literal in
    (i64::MAX, u64::MAX] as a u64 (`Number::is_u64`), and the bson crate's serializer refuses
    a u64 that no i64 holds (`UnsignedIntegerExceededRange`): the message is nacked without
    requeue (services/rtes/src/infra/messaging.rs). Python's json reads integer literals as
    ints, so the literal's range is what decides."""
    if type(value) is int:
        return [path] if I64_MAX < value <= U64_MAX else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in bson_refusals(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in bson_refusals(v, f"{path}[{i}]")]
    return []


def test_a_status_holding_an_unsigned_64_bit_integer_is_storable_by_rtes() -> None:
    defn = definition([TRIGGER, n("a", value="$input.n")], [("e1", "trigger", "a")])
    run = drive(start(defn, "trigger", {"$input": {"n": BIG, "small": I64_MAX}}))
    assert [s.status for s in run.statuses] == ["running", "success"]
    for st in run.statuses:
        body = json.loads(encode_status(st))
        assert bson_refusals(body) == [], body
    done = json.loads(encode_status(run.statuses[-1]))
    assert done["output"] == {"value": float(BIG)}  # the same number, as a double
    assert done["used_inputs"]["$input"]["small"] == I64_MAX  # an i64 stays an integer


def test_a_mirror_holding_an_unsigned_64_bit_integer_is_storable_by_rtes() -> None:
    """In the context, RTES would refuse the whole mirror (`bson::to_bson(&accumulated_context)?`)
    and then drop every status of the execution; in a node's parameters it would leave the node
    out of the execution document (`bson::to_document(node)` failing is skipped)."""
    defn = definition([TRIGGER, n("a", value=U64_MAX)], [("e1", "trigger", "a")])
    msg = start(defn, "trigger", {"$trigger": {"id": BIG, "text": "12345678901234567890"}})
    body = json.loads(masked_mirror(msg))
    assert bson_refusals(body) == []
    assert body["accumulated_context"]["$trigger"] == {
        "id": float(BIG),
        "text": "12345678901234567890",
    }
    assert body["workflow_definition"]["nodes"][1]["parameters"]["value"] == float(U64_MAX)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":9223372036854775807,"b":-9223372036854775809,"c":100000000000000000000}',
        b'{"id":"x:12345678901234567890,","n":[1, 2]}',
    ],
)
def test_what_rtes_stores_is_left_byte_for_byte(raw: bytes) -> None:
    """An i64, an integer below i64's range or above u64's (serde_json reads both as doubles)
    and a digit run inside a string are stored by RTES as they are: the bytes stay the same."""
    assert bson_safe(raw) is raw


def test_a_status_without_long_integers_is_the_plain_encoding() -> None:
    defn = definition([TRIGGER, n("a", value="$input.n")], [("e1", "trigger", "a")])
    run = drive(start(defn, "trigger", {"$input": {"n": 7}}))
    assert [encode_status(s) for s in run.statuses] == [encode(s) for s in run.statuses]


def test_a_failure_reason_holding_nul_is_storable_by_the_archivist() -> None:
    """The archivist writes `failure_reason` into Postgres (`update_execution` in
    services/archivist/src/repository.py, column `executions.failure_reason`, AutoString in
    services/api/migrations/versions/2026_03_10_1447_ba3dde446818_initial_schema.py); Postgres
    text cannot hold U+0000, the UPDATE raises, and `handle_message`
    (services/archivist/src/consumer.py) requeues the completion for ever."""
    defn = definition([TRIGGER, n("a", "flow.fail", value="$input.v")], [("e1", "trigger", "a")])
    run = drive(start(defn, "trigger", {"$input": {"v": "bad\x00byte"}}))
    assert run.completion.status == "halted"
    reason = json.loads(encode(run.completion))["failure_reason"]
    assert "\x00" not in reason
    assert reason.endswith("refused bad\ufffdbyte")
    assert storable_reason("a\x00b\x00") == "a\ufffdb\ufffd"


class _ArchivistCompletion:
    """`CompletionMessage` of services/archivist/src/models.py, parsed as the archivist does
    (`model_validate_json` in services/archivist/src/consumer.py)."""

    @staticmethod
    def parse(raw: bytes) -> Any:
        pydantic = pytest.importorskip("pydantic")
        from datetime import datetime

        class CompletionMessage(pydantic.BaseModel):  # type: ignore[name-defined,misc]
            workflow_id: str
            execution_id: str
            status: str
            final_context: dict  # type: ignore[type-arg]
            completed_at: datetime
            total_duration_ms: int
            failure_reason: str | None = None

        return CompletionMessage.model_validate_json(raw)


@pytest.mark.parametrize("value", ["bad\x00byte", BIG, "\ufffd", [1, {"x": None}]])
def test_completions_parse_as_the_archivist_parses_them(value: Any) -> None:
    defn = definition([TRIGGER, n("a", "flow.fail", value="$input.v")], [("e1", "trigger", "a")])
    run = drive(start(defn, "trigger", {"$input": {"v": value}}))
    got = _ArchivistCompletion.parse(encode(run.completion))
    assert got.status in {"pending", "completed", "failed", "halted"}  # ExecutionStatus
    assert -(2**31) <= got.total_duration_ms < 2**31  # the INTEGER column
    assert got.failure_reason is None or "\x00" not in got.failure_reason
    assert got.completed_at.tzinfo is not None


def test_a_mirror_keeps_the_keys_rtes_requires() -> None:
    """RTES's `NodeExecutionMessage` (services/rtes/src/domain/models.rs) requires
    `workflow_version` (i32), `workflow_version_id` (i64) and `accumulated_context` (any JSON,
    null included), which the Go worker always writes: so does the mirror, even when 0 or
    absent from the message it mirrors."""
    raw = b'{"workflow_id":"w","execution_id":"e","current_node":"t","workflow_definition":{}}'
    msg = msgspec.json.decode(raw, type=NodeExecutionMessage)
    body = json.loads(masked_mirror(msg))
    assert body["workflow_version"] == 0 and body["workflow_version_id"] == 0
    assert "accumulated_context" in body
