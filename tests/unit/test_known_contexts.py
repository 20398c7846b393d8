"""Kept contexts reused while decoding (runeworker/engine/known_contexts.py): whatever the
message, the context `decode_execution` gives holds what decoding the message as it came gives,
entry for entry and in the same order."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from runeworker.bench.workload import Workload
from runeworker.engine import messages
from runeworker.engine.context import spliced
from runeworker.engine.executor import Executor
from runeworker.engine.known_contexts import ENTRY_BYTES, IN_VAIN, SPARSE, KnownContexts
from runeworker.engine.messages import (
    NodeExecutionMessage,
    decode_execution,
    encode,
    encode_execution,
)
from runeworker.engine.state import MemoryStore
from runeworker.errors import MessageError

_plain = msgspec.json.Decoder(NodeExecutionMessage)
_DEFINITION = b'{"nodes":[{"id":"a","name":"A","type":"log"}],"edges":[]}'


def _entries(n: int, start: int = 0) -> dict[str, Any]:
    return {f"$n{i}": {"message": "m" * 60, "i": i} for i in range(start, start + n)}


def _message(context: bytes, execution: str = "ex-1") -> bytes:
    return (
        b'{"workflow_id":"wf","execution_id":"' + execution.encode() + b'","current_node":"a",'
        b'"workflow_definition":' + _DEFINITION + b',"accumulated_context":' + context + b"}"
    )


def _pairs(ctx: dict[str, Any] | None) -> list[tuple[str, bytes]]:
    """The entries as stored (their JSON bytes), in order."""
    return [(k, bytes(v)) for k, v in dict.items(ctx or {})]


def _same(got: NodeExecutionMessage | None, data: bytes) -> None:
    assert got is not None
    assert _pairs(got.accumulated_context) == _pairs(_plain.decode(data).accumulated_context)


def _kept(context: dict[str, Any]) -> tuple[KnownContexts, bytes]:
    known = KnownContexts(min_bytes=1024)
    first = _message(msgspec.json.encode(context))
    known.remember(first, _plain.decode(first))
    return known, msgspec.json.encode(context)


def test_the_next_message_reads_only_the_entries_after_the_kept_ones() -> None:
    known, kept = _kept(_entries(40))
    calls: list[bytes] = []

    def decode(data: bytes) -> NodeExecutionMessage:
        calls.append(data)
        return _plain.decode(data)

    data = _message(kept[:-1] + b',"$new":{"x":[1,2]},"$more":"y"}')
    got = known.decode(data, decode)
    _same(got, data)
    assert len(calls) == 1 and b'"$n39"' not in calls[0]  # the kept entries were not read again
    # the one after it continues from this one
    later = _message(kept[:-1] + b',"$new":{"x":[1,2]},"$more":"y","$last":3}')
    _same(known.decode(later, decode), later)
    assert b'"$more"' not in calls[1]


def test_the_same_context_again() -> None:
    known, kept = _kept(_entries(40))
    data = _message(kept)
    _same(known.decode(data, _plain.decode), data)


@pytest.mark.parametrize(
    "tail",
    [
        b',"$n3":"again"}',  # a repeated key: its first place, its last value
        b',"$n3":"again","$z":1,"$n3":[0]}',
        b',"$z":{"accumulated_context":{"$q":1}}}',  # the key again, nested in a new entry
    ],
)
def test_what_follows_the_kept_entries_counts_as_msgspec_counts_it(tail: bytes) -> None:
    known, kept = _kept(_entries(40))
    data = _message(kept[:-1] + tail)
    _same(known.decode(data, _plain.decode) or _plain.decode(data), data)
    _same(decode_execution(data), data)


def test_a_number_the_message_goes_on_with_is_not_taken_for_the_kept_one() -> None:
    context = {**_entries(40), "$last": 1}
    known, kept = _kept(context)
    assert kept.endswith(b":1}")
    for tail in (b".5}", b"e3}", b"0}", b'5,"$x":2}'):
        data = _message(kept[:-1] + tail)  # "$last" is 1.5, 1e3, 10, 15 here
        assert known.decode(data, _plain.decode) is None
        assert _plain.decode(data).accumulated_context["$last"] != msgspec.Raw(b"1")


@pytest.mark.parametrize(
    "change",
    [
        lambda kept: _message(kept.replace(b'"i":7', b'"i":8')),  # a kept entry differs
        lambda kept: _message(kept, execution="ex-2"),  # nothing kept for this execution
        lambda kept: _message(kept.replace(b"{", b"{ ", 1)),  # written by another encoder
        lambda kept: _message(kept[:-1] + b',"$x":'),  # cut short
        lambda kept: _message(kept[:-1] + b',"$x":1'),
    ],
)
def test_anything_else_is_decoded_as_it_came(change: Any) -> None:
    known, kept = _kept(_entries(40))
    assert known.decode(change(kept), _plain.decode) is None


def test_a_message_cut_short_fails_with_the_error_decoding_it_as_it_came_gives() -> None:
    context = msgspec.json.encode(_entries(80, start=1000))
    decode_execution(_message(context, execution="ex-cut"))
    data = _message(context[:-1] + b',"$x":', execution="ex-cut")
    with pytest.raises(MessageError) as got:
        decode_execution(data)
    with pytest.raises(msgspec.DecodeError) as want:
        _plain.decode(data)
    assert str(want.value) in str(got.value)


def test_the_context_key_found_last_is_not_the_message_s_own() -> None:
    """A later top-level `accumulated_context` (a repeated key) or one nested in a value after
    the context: decoded as it came, whichever msgspec keeps."""
    known, kept = _kept(_entries(40))
    own = msgspec.json.encode(_entries(40, start=500))
    for first, last in ((kept, own), (own, kept)):
        repeated = _message(first)[:-1] + b',"accumulated_context":' + last + b"}"
        _same(known.decode(repeated, _plain.decode) or _plain.decode(repeated), repeated)
    nested = _message(own)[:-1] + b',"x":{"accumulated_context":' + kept[:-1] + b',"$y":1}}}'
    assert known.decode(nested, _plain.decode) is None


def test_small_and_foreign_contexts_are_not_kept() -> None:
    known = KnownContexts(min_bytes=1024)
    small = _message(msgspec.json.encode(_entries(2)))
    known.remember(small, _plain.decode(small))
    spaced = _message(msgspec.json.encode(_entries(40)).replace(b",", b", "))
    known.remember(spaced, _plain.decode(spaced))
    assert known._kept == {}


def test_the_least_recently_used_go_when_the_kept_bytes_are_too_many() -> None:
    context = msgspec.json.encode(_entries(40))
    # what one of them holds
    size = len(_message(context, execution="e1")) + len(context) + ENTRY_BYTES * 40
    known = KnownContexts(min_bytes=1024, max_total=3 * size)
    for ex in ("e1", "e2", "e3"):
        data = _message(context, execution=ex)
        known.remember(data, _plain.decode(data))
    assert known.decode(_message(context, execution="e1"), _plain.decode) is not None
    data = _message(context, execution="e4")
    known.remember(data, _plain.decode(data))  # e2 is the least recently used now
    assert list(known._kept) == ["e3", "e1", "e4"]
    assert known._total <= known.max_total
    huge = KnownContexts(min_bytes=1024, max_total=size - 1)
    huge.remember(data, _plain.decode(data))
    assert huge._kept == {}


def test_a_workflow_s_messages_decode_to_their_own_contexts_step_after_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 150-node chain with an 8 KB input, stepped one message after the other: from the step
    where its context is large enough, every message is read from the kept context, and every
    context holds what the message holds."""
    work = Workload.build(150, 8192)  # it steps a workflow of its own to measure it
    known, hits = KnownContexts(), []
    decode = known.decode

    def counted(data: bytes, inner: Any) -> Any:
        got = decode(data, inner)
        hits.append(got is not None)
        return got

    monkeypatch.setattr(known, "decode", counted)
    monkeypatch.setattr(messages, "_contexts", known)
    ex = Executor(MemoryStore())
    body = work.start("known-contexts")
    for _ in range(149):
        msg = decode_execution(body)
        _same(msg, body)
        body = encode(ex.step(msg, lambda s, _b: encode(s)).messages[0])
    first = hits.index(True)  # once the context is MIN_BYTES long, and from then on
    assert first < 20 and all(hits[first:])
    assert list(known._kept) == ["known-contexts"]


def test_a_workflow_s_next_messages_splice_their_kept_context_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same chain: once a context was kept and holds enough entries, the next message
    splices its bytes (runeworker.engine.context.spliced), and what `encode_execution`
    writes is what encoding the message entry by entry writes, at every step."""
    work = Workload.build(150, 8192)
    monkeypatch.setattr(messages, "_contexts", KnownContexts())
    ex, spliced_steps = Executor(MemoryStore()), 0
    body = work.start("spliced-contexts")
    for _ in range(149):
        nxt = ex.step(decode_execution(body), lambda s, _b: encode(s)).messages[0]
        body = encode_execution(nxt)
        assert body == encode(nxt)
        spliced_steps += spliced(nxt.accumulated_context) is not None
    assert spliced_steps > 100


def test_random_tails_against_the_plain_decoder() -> None:
    rng = random.Random(7)
    known, kept = _kept(_entries(40))
    pieces = [b',"$a":1', b',"$n2":null', b"}", b",", b'"x"', b".5", b"]", b'{"k":[]}', b":", b" "]
    for _ in range(400):
        data = _message(kept[:-1] + b"".join(rng.choice(pieces) for _ in range(rng.randrange(5))))
        try:
            want = _plain.decode(data)
        except msgspec.DecodeError:
            assert known.decode(data, _plain.decode) is None
            continue
        got = known.decode(data, _plain.decode)
        if got is not None:
            assert _pairs(got.accumulated_context) == _pairs(want.accumulated_context)


def _shower(known: KnownContexts, context: bytes) -> Callable[[str], None]:
    """show(ex): `known` sees a message of execution `ex` with `context`, decoded as it came."""

    def show(ex: str) -> None:
        data = _message(context, execution=ex)
        known.remember(data, _plain.decode(data))

    return show


def test_keeping_goes_sparse_while_none_kept_is_reused() -> None:
    context = msgspec.json.encode(_entries(40))
    known = KnownContexts(min_bytes=1024)
    show = _shower(known, context)

    for i in range(IN_VAIN):
        show(f"a{i}")
    assert len(known._kept) == IN_VAIN
    for i in range(3 * SPARSE):
        show(f"b{i}")
    assert len(known._kept) == IN_VAIN + 3  # one in SPARSE
    assert known.decode(_message(context, execution="a0"), _plain.decode) is not None
    show("c")  # a reuse: kept again from the next one on
    assert "c" in known._kept


def test_kept_in_vain_the_budget_shrinks_until_one_is_reused() -> None:
    """After IN_VAIN kept without a reuse the kept contexts shrink to one SPARSE-th of the
    budget (what they held was memory in vain), at least the newest one is kept, and a reuse
    gives the whole budget back."""
    context = msgspec.json.encode(_entries(40))
    # what one of them holds, with room for execution ids a few characters longer
    size = len(_message(context, execution="a0")) + len(context) + ENTRY_BYTES * 40 + 8
    known = KnownContexts(min_bytes=1024, max_total=IN_VAIN * size)
    show = _shower(known, context)

    for i in range(IN_VAIN):
        show(f"a{i}")
    assert len(known._kept) == IN_VAIN
    for i in range(SPARSE):
        show(f"b{i}")
    # one kept in SPARSE, and the budget SPARSE times smaller: the newest IN_VAIN // SPARSE
    assert list(known._kept)[-1] == f"b{SPARSE - 1}"
    assert len(known._kept) == IN_VAIN // SPARSE
    assert known._total <= known.max_total // SPARSE
    assert known.decode(_message(context, execution=f"b{SPARSE - 1}"), _plain.decode) is not None
    for i in range(IN_VAIN // 2):
        show(f"c{i}")
    assert len(known._kept) == IN_VAIN // SPARSE + IN_VAIN // 2  # the whole budget again
    tight = KnownContexts(min_bytes=1024, max_total=size)  # its SPARSE-th holds none
    for i in range(IN_VAIN + SPARSE):
        data = _message(context, execution=f"t{i}")
        tight.remember(data, _plain.decode(data))
    assert list(tight._kept) == [f"t{IN_VAIN + SPARSE - 1}"]


def test_a_context_with_invalid_utf8_is_refused_and_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    known = KnownContexts()
    monkeypatch.setattr(messages, "_contexts", known)
    context = msgspec.json.encode(_entries(150))
    bad = _message(context[:-1] + b',"$bad":"\xff"}', execution="ex-utf8")
    with pytest.raises(MessageError, match="invalid UTF-8 in accumulated_context key '\\$bad'"):
        decode_execution(bad)
    assert "ex-utf8" not in known._kept
    decode_execution(_message(context, execution="ex-utf8"))
    assert "ex-utf8" in known._kept  # the same context without the bad entry is kept


def test_an_entry_with_invalid_utf8_after_a_kept_context_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message read from a kept context is not checked as a whole (its kept entries were
    checked before they were kept): the entries added after them are, and a bad one is named
    as in any other message, and its context is not kept."""
    known = KnownContexts()
    monkeypatch.setattr(messages, "_contexts", known)
    context = msgspec.json.encode(_entries(150))
    decode_execution(_message(context, execution="ex-later"))
    assert "ex-later" in known._kept
    good = _message(context[:-1] + b',"$fine":"caf\xc3\xa9"}', execution="ex-later")
    assert decode_execution(good).accumulated_context["$fine"] == "café"
    longer = known._kept["ex-later"].prefix
    bad = _message(longer + b',"$bad":["\xc3\x28"]}', execution="ex-later")
    with pytest.raises(MessageError, match="invalid UTF-8 in accumulated_context key '\\$bad'"):
        decode_execution(bad)
    assert known._kept["ex-later"].prefix == longer  # the bad context was not kept


# -- where the key is found, what is counted, the edges (found by mutation testing) -------------


def _message_with(context: bytes, *, definition: bytes, node: str = "a") -> bytes:
    return (
        b'{"workflow_id":"wf","execution_id":"ex-1","current_node":"' + node.encode() + b'",'
        b'"workflow_definition":' + definition + b',"accumulated_context":' + context + b"}"
    )


# a definition naming the context's key itself (in a node's parameters) far before its end
_NAMING = (
    b'{"nodes":[{"id":"a","type":"log","parameters":{"accumulated_context":{"n":1}}},'
    + b",".join(b'{"id":"p%d","type":"log"}' % i for i in range(40))
    + b'],"edges":[]}'
)


@pytest.mark.parametrize("node", ["a", "a" * 40, "a" * 600])  # the key moved 0, 39, 599 bytes
def test_the_context_is_found_past_keys_of_its_name_in_the_definition_and_in_values(
    node: str,
) -> None:
    context = {**_entries(40), "$inner": {"accumulated_context": {"$q": 1}}}
    kept = msgspec.json.encode(context)
    known = KnownContexts(min_bytes=1024)
    first = _message_with(kept, definition=_NAMING)
    known.remember(first, _plain.decode(first))
    assert "ex-1" in known._kept
    data = _message_with(kept[:-1] + b',"$new":2}', definition=_NAMING, node=node)
    got = known.decode(data, _plain.decode)
    _same(got, data)


def test_a_context_written_before_the_definition_is_found_and_kept() -> None:
    kept = msgspec.json.encode(_entries(40))
    known = KnownContexts(min_bytes=1024)
    first = (
        b'{"workflow_id":"wf","execution_id":"ex-1","accumulated_context":' + kept + b","
        b'"current_node":"a","workflow_definition":' + _NAMING + b"}"
    )
    known.remember(first, _plain.decode(first))
    assert "ex-1" in known._kept
    later = first.replace(kept, kept[:-1] + b',"$new":2}')
    _same(known.decode(later, _plain.decode), later)


def test_a_context_of_exactly_the_smallest_size_kept_is_kept() -> None:
    whole = msgspec.json.encode(_entries(40))
    data = _message(whole)
    exact = KnownContexts(min_bytes=len(whole))
    exact.remember(data, _plain.decode(data))
    assert "ex-1" in exact._kept
    above = KnownContexts(min_bytes=len(whole) + 1)
    above.remember(data, _plain.decode(data))
    assert above._kept == {}


def test_a_context_costing_exactly_the_budget_is_kept() -> None:
    whole = msgspec.json.encode(_entries(40))
    data = _message(whole)
    cost = len(data) + len(whole) + ENTRY_BYTES * 40
    known = KnownContexts(min_bytes=1024, max_total=cost)
    known.remember(data, _plain.decode(data))
    assert known._total == cost and "ex-1" in known._kept


def test_a_kept_context_extended_costs_its_added_bytes_twice_and_its_entries() -> None:
    """The longer prefix holds the added bytes and so do the copied entries, and each entry
    costs ENTRY_BYTES more (the model of `_Kept.cost`)."""
    known, kept = _kept(_entries(40))
    before = known._kept["ex-1"].cost
    added = b',"$new":{"x":[1,2]},"$more":"y"'
    assert known.decode(_message(kept[:-1] + added + b"}"), _plain.decode) is not None
    after = known._kept["ex-1"].cost
    assert after == before + 2 * len(added) + 2 * ENTRY_BYTES
    assert known._total == after


def test_contexts_that_cannot_be_kept_do_not_count_as_kept_in_vain() -> None:
    """Only large contexts count towards going sparse: an empty one, or one whose message less
    its definition is below the smallest size, is not even looked at."""
    empty = _message(b"{}")
    known = KnownContexts(min_bytes=1)
    for _ in range(3):
        known.remember(empty, _plain.decode(empty))
    assert known._in_vain == 0
    small = _message(msgspec.json.encode(_entries(2)))
    outside = len(small) - len(_DEFINITION)  # the message less its definition
    below = KnownContexts(min_bytes=outside + 1)
    below.remember(small, _plain.decode(small))
    assert below._in_vain == 0
    at = KnownContexts(min_bytes=outside)  # looked at (and too small once encoded)
    at.remember(small, _plain.decode(small))
    assert at._in_vain == 1 and at._kept == {}


def test_after_a_reuse_as_many_are_kept_in_a_row_as_at_the_start() -> None:
    context = msgspec.json.encode(_entries(40))
    known = KnownContexts(min_bytes=1024)
    show = _shower(known, context)
    show("r")
    assert known.decode(_message(context, execution="r"), _plain.decode) is not None
    for i in range(IN_VAIN):
        show(f"a{i}")
    assert all(f"a{i}" in known._kept for i in range(IN_VAIN))
    show("over")  # one more without a reuse: sparse from here
    assert "over" not in known._kept


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"execution_id":"ex-1","x":"y"}', "ex-1"),
        (b'{"execution_id" : "", "x":"y"}', ""),
        (b'{"execution_id":5,"x":"y"}', None),  # not a string
        (b'{"x":"y"}', None),  # no such key
        (b'{"execution_id":"ex-1', None),  # cut short
        (b'{"execution_id": ', None),  # cut short after the colon
        (b'{"execution_id":"a\\u0062"}', None),  # an escape: only plain strings
        (b'{"execution_id":"\xff"}', None),  # not UTF-8
    ],
)
def test_the_execution_id_is_read_when_plain(data: bytes, expected: str | None) -> None:
    from runeworker.engine.known_contexts import _execution_id

    assert _execution_id(data) == expected


_K = b'"accumulated_context":'


@pytest.mark.parametrize(
    ("data", "start", "expected"),
    [
        (_K + b"{AB", 0, (0, 22)),  # the key at the very start
        (_K + b"{AB", 5, (0, 22)),  # found before the start
        (b"x" + _K + b"{AB", 2, (1, 23)),  # the key begins just before the start
        (_K + b"{no," + _K + b"{AB", 0, (26, 48)),  # past a key not followed by it
        (_K + b"{no," + _K + b"{AB," + _K + b"{no", 0, (26, 48)),  # the first that is
        (_K + b"{AB," + _K + b"{AB", 10, (26, 48)),  # from the start on first
        (_K + b"{no", 0, None),
        (b'{"x":1}', 0, None),
    ],
)
def test_the_context_key_is_the_one_its_kept_bytes_follow(
    data: bytes, start: int, expected: tuple[int, int] | None
) -> None:
    from runeworker.engine.known_contexts import _value_starting

    assert _value_starting(data, b"{AB", start) == expected


@pytest.mark.parametrize(("before", "after"), [("a", "ab"), ("a" * 241, "a")])
def test_a_copy_of_the_context_in_the_definition_is_not_taken_for_it(
    before: str, after: str
) -> None:
    """A definition holding the context's bytes under a key of its name (far before the
    message's own): the key near where it was before (here 1 byte later, or 240 bytes
    earlier) is the one the next message reads."""
    kept = msgspec.json.encode(_entries(40))
    copy = b'{"nodes":[{"id":"a","type":"log","parameters":{"accumulated_context":' + kept
    definition = (
        copy + b"}}," + b",".join(b'{"id":"p%d"}' % i for i in range(40)) + b'],"edges":[]}'
    )
    known = KnownContexts(min_bytes=1024)
    first = _message_with(kept, definition=definition, node=before)
    known.remember(first, _plain.decode(first))
    data = _message_with(kept[:-1] + b',"$new":2}', definition=definition, node=after)
    _same(known.decode(data, _plain.decode), data)


def test_cuts_and_changed_bytes_of_kept_executions_decode_as_they_came_or_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that keeps a context and a definition, then reads damaged copies of the next
    messages (cut anywhere, one byte changed): each one is refused with a MessageError exactly
    when the plain decoder refuses it, and otherwise decodes to what the plain decoder gives.
    No other exception escapes (one did: `"execution_id":` at the very end)."""
    from runeworker.engine.known_definitions import KnownDefinitions

    monkeypatch.setattr(messages, "_contexts", KnownContexts())
    monkeypatch.setattr(messages, "_known", KnownDefinitions())
    context = msgspec.json.encode(_entries(150))
    definition = b'{"nodes":[' + b",".join(b'{"id":"n%d","type":"log"}' % i for i in range(120))
    definition += b'],"edges":[]}'
    base = (
        b'{"workflow_id":"wf","execution_id":"ex-1","current_node":"n0",'
        b'"workflow_definition":' + definition + b',"accumulated_context":' + context + b"}"
    )
    decode_execution(base)  # kept: the context and the definition
    assert "ex-1" in messages._contexts._kept
    rng = random.Random(5)
    following = base.replace(context, context[:-1] + b',"$new":{"a":[1,2,"x"]}}')
    # the same members, the execution id last (any order is JSON's)
    reordered = following.replace(b'"execution_id":"ex-1",', b"")[:-1] + b',"execution_id":"ex-1"}'
    alphabet = b'{}[]":,0123456789.eE+-\\ntrufalsx \xff'
    bodies = [m[:cut] for m in (following, reordered) for cut in range(len(m) - 40, len(m))]
    for _ in range(600):
        data = bytearray(rng.choice((following, reordered)))
        if rng.random() < 0.5:
            data = data[: rng.randrange(len(data))]
        else:
            data[rng.randrange(len(data))] = rng.choice(alphabet)
        bodies.append(bytes(data))
    for body in bodies:
        try:
            want = _plain.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            with pytest.raises(MessageError):
                decode_execution(body)
            continue
        try:
            got = decode_execution(body)
        except MessageError:
            continue  # the worker's own checks refuse more (an empty id, bad UTF-8, ...)
        assert bytes(got.workflow_definition) == bytes(want.workflow_definition)
        assert got.execution_id == want.execution_id
        assert _pairs(got.accumulated_context) == _pairs(want.accumulated_context)
