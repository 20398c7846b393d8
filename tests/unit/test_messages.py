"""The execution message read from text, and the mirror's edges (runeworker/engine/messages.py):
a message given as a str decodes as its bytes do, and refuses what no UTF-8 holds; the mirror
keeps a definition of non-ASCII text and one nested as deeply as RTES reads, and puts stand-ins
for the context values set since the message came that RTES could not read."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from runeworker.engine import depth
from runeworker.engine.context import ExtendedContext
from runeworker.engine.messages import (
    NUL_EXECUTION_ID,
    decode_execution,
    encode_execution,
    masked_mirror,
)
from runeworker.errors import MessageError


def _start(definition: Any, context: dict[str, Any] | None = None) -> bytes:
    return msgspec.json.encode(
        {
            "workflow_id": "wf",
            "execution_id": "ex",
            "current_node": "say",
            "workflow_definition": definition,
            "accumulated_context": context or {},
        }
    )


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_a_message_given_as_text_decodes_as_its_bytes_do() -> None:
    body = _start({"nodes": [], "edges": []}, {"$input": {"name": "Zoë"}})
    from_text = decode_execution(body.decode("utf-8"))
    from_bytes = decode_execution(body)
    assert from_text == from_bytes and dict(from_text.accumulated_context or {}) == {
        "$input": {"name": "Zoë"}
    }


def test_text_holding_a_lone_surrogate_is_refused_not_a_crash() -> None:
    escaped = _start({}).decode().replace('"ex"', '"e\\ud800x"')  # an escape: grammatical JSON
    with pytest.raises(MessageError) as refused:
        decode_execution(escaped)
    assert str(refused.value) == (
        "decode node execution message: JSON is malformed: lone UTF-16 surrogate escape "
        f"\\ud800 at byte {escaped.index('ud800') - 1} (half of a surrogate pair is no character)"
    )
    with pytest.raises(MessageError, match="invalid UTF-8: surrogates not allowed"):
        decode_execution(_start({}).decode().replace('"ex"', '"e\ud800x"'))  # the character


def test_a_definition_of_non_ascii_text_is_mirrored_as_it_came() -> None:
    definition = {"nodes": [{"id": "say", "name": "Grüße", "type": "log"}], "edges": []}
    body = _start(definition)
    mirrored = msgspec.json.decode(masked_mirror(decode_execution(body)))
    assert mirrored["workflow_definition"] == definition


@pytest.mark.parametrize(
    ("levels", "kept"), [(depth.RTES_DEPTH - 3, True), (depth.RTES_DEPTH - 2, True),
                         (depth.RTES_DEPTH - 1, False), (depth.RTES_DEPTH, False)]
)  # fmt: skip
def test_the_mirror_keeps_a_definition_rtes_can_read_and_no_deeper(levels: int, kept: bool) -> None:
    """The mirror wraps the definition in one object, which RTES reads up to RTES_DEPTH levels:
    the definition, an object holding `levels` nested lists, may nest RTES_DEPTH - 1 levels."""
    definition = {"nodes": [], "deep": _nested(levels)}
    mirrored = msgspec.json.decode(masked_mirror(decode_execution(_start(definition))))
    assert mirrored["workflow_definition"] == (definition if kept else {})


def test_context_values_set_since_the_message_came_get_stand_ins_in_the_mirror() -> None:
    msg = decode_execution(_start({"nodes": []}, {"$input": {"a": 1}, "$deep": _nested(150)}))
    ctx = msg.accumulated_context
    assert ctx is not None
    ctx["$set_deep"] = _nested(150)
    ctx["$set_huge"] = 10**309  # no double holds it
    ctx["$set_plain"] = {"b": [2, 3]}
    mirrored = msgspec.json.decode(masked_mirror(msg))["accumulated_context"]
    assert mirrored == {
        "$input": {"a": 1},
        "$deep": depth.PLACEHOLDER,
        "$set_deep": depth.PLACEHOLDER,
        "$set_huge": depth.UNREADABLE,
        "$set_plain": {"b": [2, 3]},
    }


def test_credentials_outside_the_nodes_are_masked_with_the_nodes_own() -> None:
    """The API puts credentials in nodes; any other object's are masked too, however many the
    nodes hold (the fallback walk runs when the bytes name more than the nodes hold)."""
    secret = {"id": "9", "type": "token", "values": {"token": "OUTSIDE-SECRET"}}
    for nodes in ([], [{"id": "say", "type": "log", "credentials": dict(secret)}]):
        definition = {"nodes": nodes, "edges": [], "extra": {"credentials": dict(secret)}}
        mirrored = masked_mirror(decode_execution(_start(definition)))
        assert b"OUTSIDE-SECRET" not in mirrored
        extra = msgspec.json.decode(mirrored)["workflow_definition"]["extra"]
        assert extra["credentials"] == {"id": "9", "type": "token", "values": {"token": "***"}}


def test_what_cannot_be_read_is_refused_with_its_reason() -> None:
    deep = "[" * 100_000 + "]" * 100_000  # past msgspec's recursion, in runeworker's own key
    head = '{"workflow_id":"wf","execution_id":"ex","current_node":"say","workflow_definition":{}'
    with pytest.raises(MessageError) as refused:
        decode_execution(f'{head},"outer_keys":[{{"$json":{deep}}}]}}'.encode())
    assert str(refused.value) == "decode node execution message: JSON nested too deeply"
    with pytest.raises(MessageError) as refused:
        decode_execution(_start({}).replace(b'"ex"', b'"e\\u0000x"'))
    assert str(refused.value) == NUL_EXECUTION_ID
    for field in ("workflow_id", "execution_id", "current_node"):
        body = msgspec.json.decode(_start({}))
        body[field] = ""
        with pytest.raises(MessageError) as refused:
            decode_execution(msgspec.json.encode(body))
        assert str(refused.value) == f"{field} is required"


def test_a_context_whose_known_bytes_no_longer_hold_is_written_whole() -> None:
    """A kept context (`known_contexts.py`) splices the next message's context from the bytes
    it came as while a step only adds keys; once a step sets a key it came with, the next
    message's context is written from its values."""
    big = {f"$n{i}": {"value": "x" * 40} for i in range(400)}  # worth keeping
    first = decode_execution(_start({"nodes": []}, big))
    assert first.accumulated_context is not None
    again = decode_execution(_start({"nodes": []}, big))  # its context now known by its bytes
    assert again.accumulated_context is not None
    extended = again.accumulated_context.copy()
    assert type(extended) is ExtendedContext
    extended["$added"] = {"ok": True}
    spliced = encode_execution(msgspec.structs.replace(again, accumulated_context=extended))
    assert msgspec.json.decode(spliced)["accumulated_context"] == {**big, "$added": {"ok": True}}
    changed = again.accumulated_context.copy()
    changed["$n1"] = {"value": "changed"}
    written = encode_execution(msgspec.structs.replace(again, accumulated_context=changed))
    expected = {**big, "$n1": {"value": "changed"}}
    assert msgspec.json.decode(written)["accumulated_context"] == expected


def test_every_value_of_a_credential_block_is_masked_but_its_labels() -> None:
    block = {"id": "7", "name": "n", "type": "oauth", "values": {"a": "1"}, "tokens": {"t": "2"}}
    definition = {"nodes": [{"id": "say", "type": "log", "credentials": block}]}
    mirrored = msgspec.json.decode(masked_mirror(decode_execution(_start(definition))))
    assert mirrored["workflow_definition"]["nodes"][0]["credentials"] == {
        "id": "7", "name": "n", "type": "oauth", "values": {"a": "***"}, "tokens": "***"
    }  # fmt: skip
