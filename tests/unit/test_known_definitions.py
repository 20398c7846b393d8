"""Kept workflow definitions skipped while decoding (runeworker/engine/known_definitions.py):
whatever the message, `decode_execution` gives what decoding it as it came gives."""

from __future__ import annotations

import random

import msgspec
import pytest

from runeworker.engine import messages
from runeworker.engine.known_definitions import KnownDefinitions
from runeworker.engine.messages import NodeExecutionMessage, decode_execution
from runeworker.errors import MessageError

_plain = msgspec.json.Decoder(NodeExecutionMessage)


def _definition(nodes: int, tag: str = "a") -> bytes:
    return msgspec.json.encode(
        {
            "nodes": [
                {"id": f"{tag}{i}", "name": f"N{i}", "type": "log",
                 "parameters": {"message": "x" * 40}}
                for i in range(nodes)
            ],
            "edges": [{"id": f"e{i}", "src": f"{tag}{i}", "dst": f"{tag}{i + 1}"}
                      for i in range(nodes - 1)],
        }
    )  # fmt: skip


BIG = _definition(60)  # about 5 KB: kept
OTHER = _definition(60, "b")
SMALL = _definition(2)  # under MIN_BYTES: never kept


def _message(
    definition: bytes, *, context: bytes = b'{"$input":{"n":1}}', sep: bytes = b":"
) -> bytes:
    return (
        b'{"workflow_id":"wf","execution_id":"ex","current_node":"a0","workflow_definition"'
        + sep + definition + b',"accumulated_context":' + context + b"}"
    )  # fmt: skip


def _same(got: NodeExecutionMessage, data: bytes) -> None:
    want = _plain.decode(data)
    assert bytes(got.workflow_definition) == bytes(want.workflow_definition)
    assert got.workflow_id == want.workflow_id and got.current_node == want.current_node
    assert dict(got.accumulated_context or {}) == {
        k: msgspec.json.decode(v) for k, v in (want.accumulated_context or {}).items()
    }


def test_the_second_message_of_a_definition_gets_the_kept_copy() -> None:
    known = KnownDefinitions()
    first = _plain.decode(_message(BIG))
    known.remember(first)
    kept = first.workflow_definition
    assert bytes(kept) == BIG
    second = known.decode(_message(BIG, context=b'{"$input":{"n":2}}'), _plain.decode)
    assert second is not None
    assert second.workflow_definition is kept
    assert msgspec.json.decode(second.accumulated_context["$input"]) == {"n": 2}


def test_small_definitions_and_unknown_ones_are_decoded_as_they_came() -> None:
    known = KnownDefinitions()
    small = _plain.decode(_message(SMALL))
    known.remember(small)
    assert known.decode(_message(SMALL), _plain.decode) is None
    known.remember(_plain.decode(_message(BIG)))
    assert known.decode(_message(OTHER), _plain.decode) is None
    assert known.decode(_message(BIG, sep=b" :\n "), _plain.decode) is not None


def test_a_definition_first_met_inside_the_context_is_not_taken_for_the_message_s() -> None:
    # the context holds an object with the same key and the kept bytes, before the real field
    known = KnownDefinitions()
    known.remember(_plain.decode(_message(BIG)))
    data = (
        b'{"accumulated_context":{"$x":{"workflow_definition":' + BIG + b"}},"
        b'"workflow_id":"wf","execution_id":"ex","current_node":"a0","workflow_definition":'
        + OTHER
        + b"}"
    )
    assert known.decode(data, _plain.decode) is None
    got = decode_execution(data)
    assert bytes(got.workflow_definition) == OTHER
    assert got.accumulated_context["$x"] == {"workflow_definition": msgspec.json.decode(BIG)}


def test_a_duplicate_definition_key_reads_as_msgspec_reads_it() -> None:
    known = KnownDefinitions()
    known.remember(_plain.decode(_message(BIG)))
    data = _message(BIG)[:-1] + b',"workflow_definition":' + OTHER + b"}"
    got = decode_execution(data)
    _same(got, data)
    assert known.decode(data, _plain.decode) is None


def test_a_marker_of_another_process_is_data() -> None:
    known, other = KnownDefinitions(), KnownDefinitions()
    known.remember(_plain.decode(_message(BIG)))
    data = _message(other._marker)
    assert known.decode(data, _plain.decode) is None
    assert bytes(decode_execution(data).workflow_definition) == other._marker


def test_a_message_broken_after_its_definition_fails_with_the_plain_error() -> None:
    decode_execution(_message(BIG))  # kept now
    broken = _message(BIG, context=b'{"$input":{"n":1}')  # one brace short
    with pytest.raises(MessageError) as got:
        decode_execution(broken)
    with pytest.raises(msgspec.DecodeError) as plain:
        _plain.decode(broken)
    assert str(plain.value) in str(got.value)  # same text, same byte position


def test_only_the_last_few_are_kept() -> None:
    known = KnownDefinitions(kept=2)
    defs = [_definition(60, tag) for tag in "cdef"]
    for d in defs:
        known.remember(_plain.decode(_message(d)))
    assert known.decode(_message(defs[0]), _plain.decode) is None
    assert known.decode(_message(defs[3]), _plain.decode) is not None
    assert known.decode(_message(defs[2]), _plain.decode) is not None  # now the most recent
    assert known.decode(_message(defs[3]), _plain.decode) is not None  # and still kept


def test_the_kept_copies_stay_under_their_byte_budget() -> None:
    known = KnownDefinitions(max_total=2 * len(BIG) + 10)
    huge = _definition(200, "h")  # larger than the whole budget: never kept
    for d in (BIG, OTHER, huge):
        known.remember(_plain.decode(_message(d)))
    assert known.decode(_message(huge), _plain.decode) is None
    assert known.decode(_message(BIG), _plain.decode) is not None
    third = _definition(60, "c")
    known.remember(_plain.decode(_message(third)))  # BIG and third fit, OTHER goes
    assert known.decode(_message(OTHER), _plain.decode) is None
    assert known.decode(_message(third), _plain.decode) is not None


def test_random_messages_decode_as_they_came() -> None:
    rng = random.Random(7)
    defs = [BIG, OTHER, SMALL, _definition(100, "z")]
    for _ in range(400):
        definition = rng.choice(defs)
        colon = rng.choice([b":", b" : "])
        parts = [
            b'"workflow_id":"wf"', b'"execution_id":"ex' + str(rng.randrange(9)).encode() + b'"',
            b'"current_node":"a0"', b'"workflow_definition"' + colon + definition,
        ]  # fmt: skip
        ctx = {f"$n{i}": {"v": rng.random(), "text": "y" * rng.randrange(50)}
               for i in range(rng.randrange(4))}  # fmt: skip
        if rng.random() < 0.3:  # a context value holding a definition too
            ctx["$copy"] = {"workflow_definition": msgspec.json.decode(rng.choice(defs))}
        parts.append(b'"accumulated_context":' + msgspec.json.encode(ctx))
        rng.shuffle(parts)
        data = b"{" + b",".join(parts) + b"}"
        _same(decode_execution(data), data)
    assert messages._known._defs  # the fast path was taken along the way


def test_a_definition_of_the_smallest_or_the_largest_size_kept_is_kept() -> None:
    for known in (KnownDefinitions(min_bytes=len(BIG)), KnownDefinitions(max_total=len(BIG))):
        known.remember(_plain.decode(_message(BIG)))
        assert known.decode(_message(BIG), _plain.decode) is not None
    for known in (
        KnownDefinitions(min_bytes=len(BIG) + 1),
        KnownDefinitions(max_total=len(BIG) - 1),
    ):
        known.remember(_plain.decode(_message(BIG)))
        assert known.decode(_message(BIG), _plain.decode) is None


def test_kept_copies_filling_the_budget_exactly_are_all_kept() -> None:
    known = KnownDefinitions(max_total=len(BIG) + len(OTHER))
    for d in (BIG, OTHER):
        known.remember(_plain.decode(_message(d)))
    assert known.decode(_message(BIG), _plain.decode) is not None
    assert known.decode(_message(OTHER), _plain.decode) is not None


@pytest.mark.parametrize(
    ("data", "found", "expected"),
    [
        (b'{"k":1}', None, 5),
        (b'{"k" : \t1}', None, 8),
        (b'{"k": 1}', None, 6),
        (b'"k":1', None, 4),  # the key at the very start
        (b'{"k":1,"x":{"k":2}}', None, 5),  # the first one
        (b'{"k":1,"x":{"k":2}}', 12, 16),  # the one found
        (b"{}", None, -1),  # none
        (b'{"k"}', None, -1),  # no colon
        (b'{"k" 1}', None, -1),
        (b'{"k"', None, -1),  # cut short after the key
        (b'{"k"  ', None, -1),  # after blanks
        (b'{"k": ', None, -1),  # nothing after the colon
    ],
)
def test_value_at_finds_where_a_key_s_value_starts(
    data: bytes, found: int | None, expected: int
) -> None:
    from runeworker.engine.known_definitions import value_at

    assert value_at(data, b'"k"', found) == expected
