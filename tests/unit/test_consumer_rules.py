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

from runeworker.engine.executor import Executor
from runeworker.engine.messages import (
    NodeExecutionMessage,
    decode_execution,
    encode,
    masked_mirror,
)
from runeworker.engine.outbox import storable_reason
from runeworker.engine.rejection import reject
from runeworker.engine.state import MemoryStore
from runeworker.errors import MessageError


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


def _nul_id_bodies() -> list[bytes]:
    good = encode(start(definition([TRIGGER, n("a")], [("e1", "trigger", "a")]), "trigger"))
    with_nul = good.replace(b'"ex-1"', b'"ex\\u0000-1"')
    assert with_nul != good
    # also one that fails to decode below its top level (NaN): its ids are still read
    return [
        with_nul,
        with_nul.replace(b'"accumulated_context":{}', b'"accumulated_context":{"v":NaN}'),
    ]


@pytest.mark.parametrize("body", _nul_id_bodies(), ids=["decodes", "undecodable_context"])
def test_an_execution_id_holding_nul_gets_no_completion(body: bytes) -> None:
    """The archivist records a completion with `UPDATE executions ... WHERE id =
    :execution_id` (`update_execution` in services/archivist/src/repository.py); the column is
    an AutoString (VARCHAR, services/api/migrations/versions/
    2026_03_10_1447_ba3dde446818_initial_schema.py), and Postgres text holds no U+0000: asyncpg
    raises `CharacterNotInRepertoireError` ("invalid byte sequence for encoding UTF8: 0x00"),
    and `handle_message` (services/archivist/src/consumer.py) requeues the completion for ever,
    some 200 times a second, each with a traceback in its log (seen against the real archivist:
    docs/WIRE.md section 5). No execution the API created holds one (its ids are uuid4,
    `queue_workflow_execution` in services/api/src/workflow/service.py): such a message is
    refused as unidentifiable, dead-lettered without a status or a completion."""
    with pytest.raises(MessageError, match="NUL" if b"NaN" not in body else "malformed"):
        decode_execution(body)
    out = reject(Executor(MemoryStore()), body, "bad input")
    assert out.completion is None and not out.statuses and not out.messages
    assert out.dead_letter == "bad input"


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


@pytest.mark.parametrize("value", ["bad\x00byte", 12345678901234567890, "\ufffd", [1, {"x": None}]])
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
