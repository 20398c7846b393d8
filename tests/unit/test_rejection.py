"""What a delivery that cannot run is read as (runeworker/engine/rejection.py): its ids key by
key from the bytes alone, the branch token its failure takes, and the outbox `reject` gives."""

from __future__ import annotations

import msgspec
import pytest

from runeworker.engine.executor import Executor
from runeworker.engine.messages import Ids, encode
from runeworker.engine.rejection import identify, reject, shallow, token_of
from runeworker.engine.state import MemoryStore, joining_token

LINEAGE = b'[{"split_node_id":"s","branch_id":"b1","item_index":0,"total_items":2}]'


def message(**members: bytes) -> bytes:
    """A message object with each member's value given as its JSON text, in order."""
    return b"{" + b",".join(b'"%s":%s' % (k.encode(), v) for k, v in members.items()) + b"}"


def ids_of(**members: bytes) -> Ids:
    ids = identify(message(**members))
    assert ids is not None
    return ids


def wire(value: msgspec.Struct) -> dict[str, object]:
    decoded: dict[str, object] = msgspec.json.decode(encode(value))
    return decoded


def test_every_id_is_read_from_its_own_key_beside_a_context_no_decoder_reads() -> None:
    ids = ids_of(
        workflow_id=b'"w"',
        execution_id=b'"e"',
        current_node=b'"n2"',
        branch_token=b'"root.3"',
        from_node=b'"n1"',
        accumulated_context=b'{"ratio":NaN}',
        lineage_stack=LINEAGE,
    )
    assert ids == Ids("w", "e", "n2", "root.3", "n1", ["b1"])


@pytest.mark.parametrize("value", [b"null", b"5", b'["n2"]', b'{"id":"n2"}', b"1e999"])
def test_an_id_of_another_type_reads_as_empty_and_hides_no_other(value: bytes) -> None:
    ids = ids_of(workflow_id=b'"w"', execution_id=b'"e"', current_node=value, branch_token=value)
    assert (ids.workflow_id, ids.execution_id, ids.current_node, ids.branch_token) == (
        "w",
        "e",
        "",
        "",
    )


@pytest.mark.parametrize(
    "members",
    [
        {"execution_id": b'"e"'},
        {"workflow_id": b"7", "execution_id": b'"e"'},
        {"workflow_id": b'"w"'},
        {"workflow_id": b'"w"', "execution_id": b'"e\\u0000"'},
        {"workflow_id": b'"w"', "execution_id": b'"e\\ud800"'},
    ],
    ids=["no-workflow", "workflow-not-text", "no-execution", "nul-in-execution", "lone-half"],
)
def test_an_execution_that_cannot_be_named_is_not_identified(members: dict[str, bytes]) -> None:
    assert identify(message(**members, accumulated_context=b"{}")) is None


def test_a_lone_surrogate_in_an_id_blanks_that_id_only() -> None:
    """A mended escape makes a name no execution has: the id is unreadable, the others stand."""
    ids = ids_of(
        workflow_id=b'"w"',
        execution_id=b'"e"',
        current_node=b'"n\\ud83d"',
        from_node=b'"n1"',
    )
    assert (ids.current_node, ids.from_node) == ("", "n1")


def test_a_lone_surrogate_in_a_branch_id_reads_as_the_replacement_character() -> None:
    """As Go's encoding/json reads it: the joining token is the one a Go worker's lineage
    gives, and the escaped backslash before it stays a backslash."""
    lineage = b'[{"branch_id":"b\\ud800"},{"branch_id":"c\\\\\\udc00"}]'
    ids = ids_of(workflow_id=b'"w"', execution_id=b'"e"', lineage_stack=lineage)
    assert ids.branch_ids == ["b\ufffd", "c\\\ufffd"]


def test_a_lineage_beside_a_context_holding_a_nan_is_read_after_mending() -> None:
    """Two members cannot be read as they are: the context (a NaN, blanked) and the lineage
    (a lone surrogate, mended and kept)."""
    ids = ids_of(
        workflow_id=b'"w"',
        execution_id=b'"e"',
        workflow_definition=b'{"nodes":[NaN]}',
        accumulated_context=b'{"ratio":NaN}',
        lineage_stack=b'[{"branch_id":"b\\ud800"}]',
        from_node=b'"n1"',
    )
    assert (ids.from_node, ids.branch_ids) == ("n1", ["b\ufffd"])


def test_a_lineage_frame_that_is_no_object_keeps_its_place() -> None:
    ids = ids_of(
        workflow_id=b'"w"',
        execution_id=b'"e"',
        lineage_stack=b'[1, {"branch_id": 2}, {"branch_id": "b3"}]',
    )
    assert ids.branch_ids == ["", "", "b3"]


def test_shallow_blanks_every_unreadable_member_and_keeps_the_rest() -> None:
    data = message(a=b"[NaN]", b=b'{"k":[1]}', c=b"{NaN}", d=b'"[{"')
    assert shallow(data) == message(a=b"null", b=b"null", c=b"null", d=b'"[{"')
    kept = shallow(data, keep=lambda value: b"NaN" not in value)
    assert kept == message(a=b"null", b=b'{"k":[1]}', c=b"null", d=b'"[{"')


def test_token_of_keeps_the_message_own_token() -> None:
    assert token_of(Ids("w", "e", "n2", "root.3", "n1", ["b1"])) == "root.3"
    assert token_of(Ids("w", "e", "n2", "", "n1", ["b1"])) == joining_token("n1", "n2", ["b1"])
    assert token_of(Ids("w", "e", "n2")) == ""  # the API's start message: root


def test_reject_fails_the_identified_execution_at_its_node() -> None:
    body = message(
        workflow_id=b'"w"',
        execution_id=b'"e"',
        current_node=b"5",
        accumulated_context=b'{"x":NaN}',
    )
    out = reject(Executor(MemoryStore()), body, "message is not JSON")
    assert out.dead_letter == "message is not JSON"
    [status] = [wire(s) for s in out.statuses]
    assert (status["workflow_id"], status["execution_id"], status["node_id"]) == (
        "w",
        "e",
        "unknown",
    )
    assert status["status"] == "failed"
    assert out.completion is not None
    completion = wire(out.completion)
    assert (completion["workflow_id"], completion["status"], completion["final_context"]) == (
        "w",
        "failed",
        {},
    )
    assert completion["failure_reason"] == "message is not JSON"
    assert not out.messages


def test_reject_of_an_unidentified_message_is_a_dead_letter_only() -> None:
    out = reject(Executor(MemoryStore()), b"[1, 2]", "message is not an object")
    assert out.dead_letter == "message is not an object"
    assert not out.statuses and out.completion is None and not out.messages
