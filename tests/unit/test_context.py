"""LazyContext and `descend`: a path read inside a value still in its message bytes decodes
that path only, gives what the whole value would give, and leaves the value undecoded."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import msgspec
import pytest

from runeworker.engine.context import (
    PART_MIN_BYTES,
    ExtendedContext,
    LazyContext,
    descend,
    spliced,
)
from runeworker.engine.resolver import Resolver
from runeworker.errors import ResolveError

VALUE: dict[str, Any] = {
    "run": "r1",
    "rows": [{"id": 1, "tags": ["a", "b"]}, {"id": 2}],
    "n": None,
    "pad": "x" * PART_MIN_BYTES,  # large enough to be read in part
}


def _raw_context() -> LazyContext:
    return LazyContext({"$input": msgspec.Raw(msgspec.json.encode(VALUE)), "$x": 5})


@pytest.mark.parametrize(
    "segments", [("run",), ("rows", 0, "tags", 1), ("rows", 1), ("n",), ("rows",), ()]
)
def test_descend_finds_what_the_decoded_value_holds(segments: tuple[str | int, ...]) -> None:
    expected: Any = VALUE
    for seg in segments:
        expected = expected[seg]
    raw = msgspec.Raw(msgspec.json.encode(VALUE))
    assert descend(raw, segments, "value") == (True, expected)


@pytest.mark.parametrize(
    "segments", [("nope",), ("rows", 2), ("run", "x"), ("rows", "id"), ("run", 0), ("n", "a")]
)
def test_descend_says_when_the_path_leads_nowhere(segments: tuple[str | int, ...]) -> None:
    assert descend(msgspec.Raw(msgspec.json.encode(VALUE)), segments, "value") == (False, None)


def test_a_field_read_leaves_the_value_in_its_bytes() -> None:
    ctx = _raw_context()
    r = Resolver(ctx)
    assert r.resolve_value("{{ $input.rows[0].tags }} of $input.run") == '["a","b"] of r1'
    assert type(ctx.raw("$input")) is msgspec.Raw
    assert ctx._decoded == {}  # nothing decoded the whole value
    assert r.used_keys == {"$input"}
    assert r.used_inputs() == {"$input": ctx.raw("$input")}


def test_errors_name_the_same_place_as_for_a_decoded_value() -> None:
    for ref in ("$input.rows[5]", "$input.run.x", "$input.nope", "$input.rows.id"):
        with pytest.raises(ResolveError) as lazy_error:
            Resolver(_raw_context()).lookup(ref)
        with pytest.raises(ResolveError) as plain_error:
            Resolver({"$input": VALUE}).lookup(ref)
        assert str(lazy_error.value) == str(plain_error.value)


def test_a_value_read_whole_is_decoded_once_and_then_reused() -> None:
    ctx = _raw_context()
    r = Resolver(ctx)
    assert r.lookup("$input") == VALUE
    assert r.lookup("$input.rows[1].id") == 2
    assert "$input" in ctx._decoded


def test_a_small_value_is_decoded_whole_and_kept() -> None:
    ctx = LazyContext({"$n1": msgspec.Raw(b'{"level":"info","message":"m"}')})
    assert Resolver(ctx).lookup("$n1.level") == "info"
    assert ctx._decoded["$n1"][1] == {"level": "info", "message": "m"}


def test_a_step_leaves_its_message_as_it_came() -> None:
    """The step works on the decoded message's own context (no copy): reading values, adding
    the node's output and routing on must leave the message's bytes and keys as they were,
    and the next message carries the new output."""
    from runeworker.bench.workload import Workload
    from runeworker.engine.executor import Executor
    from runeworker.engine.messages import decode_execution, encode
    from runeworker.engine.state import MemoryStore

    work, executor = Workload.build(4, 8 * 1024), Executor(MemoryStore())
    body = work.start("ex-1")
    for _ in range(4):  # log, conditional, log, conditional (the last one completes)
        msg = decode_execution(body)
        keys, before = list(msg.accumulated_context or {}), encode(msg.accumulated_context)
        outbox = executor.step(msg, None)
        assert outbox.report.outcome == "success"
        assert encode(msg.accumulated_context) == before
        assert list(msg.accumulated_context or {}) == keys
        if not outbox.messages:
            break
        nxt = decode_execution(encode(outbox.messages[0]))
        assert list(nxt.accumulated_context or {}) == [*keys, f"${msg.current_node}"]
        body = encode(outbox.messages[0])
    assert outbox.completion is not None and outbox.completion.status == "completed"


_MUTATIONS: list[tuple[str, Any]] = [
    ("set a new key", lambda d: d.__setitem__("$new", 1)),
    ("set a kept key", lambda d: d.__setitem__("$a", 2)),
    ("del", lambda d: d.__delitem__("$a")),
    ("pop", lambda d: d.pop("$a")),
    ("pop with a default", lambda d: d.pop("$none", None)),
    ("popitem", lambda d: d.popitem()),
    ("clear", lambda d: d.clear()),
    ("update", lambda d: d.update({"$a": 3}, extra=4)),
    ("setdefault", lambda d: d.setdefault("$new", 5)),
    ("|=", lambda d: d.__ior__({"$b": 6})),
]


@pytest.mark.parametrize("mutate", [m for _, m in _MUTATIONS], ids=[n for n, _ in _MUTATIONS])
def test_a_copy_holds_the_entries_after_any_change(mutate: Any) -> None:
    """A decoded message's context copies from the plain dict it was made from; any change of
    its entries must make later copies hold the changed entries, not that dict's."""
    base = {"$a": msgspec.Raw(b'{"x":1}'), "$b": msgspec.Raw(b"[2]"), "$c": 3}
    source = dict(base)
    ctx = LazyContext.over(source)
    expected = dict(base)
    mutate(ctx)
    mutate(expected)
    assert dict(dict.items(ctx.copy())) == expected
    assert dict(dict.items(ctx.copy().copy())) == expected
    assert source == base  # the source itself is never changed


def test_an_unchanged_context_is_copied_from_its_source() -> None:
    source = {"$a": msgspec.Raw(b'{"x":1}'), "$b": 2}
    ctx = LazyContext.over(source)
    assert ctx["$a"] == {"x": 1}
    ctx.decode_all()  # swaps values for their decoding: the entries stay what they were
    assert ctx._source is source  # type: ignore[attr-defined]
    copy = ctx.copy()
    assert type(copy) is LazyContext  # a step's copies pay for no overrides
    assert type(dict.__getitem__(copy, "$a")) is msgspec.Raw  # from the source
    assert copy["$a"] == {"x": 1} and copy == {"$a": {"x": 1}, "$b": 2}
    copy["$c"] = 3
    assert ctx._source is source and "$c" not in ctx.copy()  # type: ignore[attr-defined]


def _spliceable() -> tuple[LazyContext, dict[str, Any]]:
    """A decoded context of many small entries whose bytes are known (as `decode_execution`
    makes it when its context was kept), and a copy of its source."""
    source: dict[str, Any] = {
        f"$n{i}": msgspec.Raw(msgspec.json.encode({"message": "m" * 40, "i": i}))
        for i in range(100)
    }
    source["$a"], source["$b"] = msgspec.Raw(b'{"x":1}'), msgspec.Raw(b"[2]")
    return LazyContext.over(source, msgspec.json.encode(source)[:-1]), dict(source)


def test_a_copy_only_added_to_is_encoded_from_its_known_bytes() -> None:
    """A step's copy of a context whose bytes are known encodes as those bytes and the added
    entries: byte for byte what encoding it entry by entry gives."""
    ctx, before = _spliceable()
    copy = ctx.copy()
    assert type(copy) is ExtendedContext
    raw = spliced(copy)
    assert raw is not None and bytes(raw) == msgspec.json.encode(copy)  # nothing added yet
    copy["$new"] = {"level": "info"}
    copy["$json"] = [1, "two"]
    copy["$new"] = {"level": "warn"}  # an added key set again keeps its place
    raw = spliced(copy)
    assert raw is not None and bytes(raw) == msgspec.json.encode(copy)
    assert list(copy)[-2:] == ["$new", "$json"]
    assert dict(dict.items(ctx)) == before  # the decoded context is left as it came


@pytest.mark.parametrize("mutate", [m for _, m in _MUTATIONS], ids=[n for n, _ in _MUTATIONS])
def test_any_other_change_encodes_the_copy_entry_by_entry(mutate: Any) -> None:
    """Changing a value the copy was made with, or removing one, must not splice (the known
    bytes would bring the old entries back): only keys added keep the known bytes."""
    ctx, _ = _spliceable()
    copy = ctx.copy()
    mutate(copy)
    raw = spliced(copy)
    if mutate is _MUTATIONS[0][1]:  # "set a new key"
        assert raw is not None and bytes(raw) == msgspec.json.encode(copy)
    else:
        assert raw is None


def test_values_decoded_in_place_are_spliced_as_their_original_bytes() -> None:
    ctx, _ = _spliceable()
    copy = ctx.copy()
    copy["$new"] = 1
    assert next(iter(copy.items()))[1] == {"message": "m" * 40, "i": 0}  # decodes in place
    raw = spliced(copy)
    assert raw is not None
    assert msgspec.json.decode(raw) == msgspec.json.decode(msgspec.json.encode(copy))


def test_a_few_large_entries_are_encoded_as_usual() -> None:
    """Splicing copies the known bytes once more: for a few large values (a 64 KB `$input`)
    that costs more than writing the entries, so their copies are plain."""
    source = {"$input": msgspec.Raw(msgspec.json.encode({"blob": "x" * 65536})), "$a": 1}
    ctx = LazyContext.over(source, msgspec.json.encode(source)[:-1])
    copy = ctx.copy()
    assert type(copy) is LazyContext and spliced(copy) is None


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))])
def test_a_spliced_copy_copied_again_is_a_plain_context(how: Any) -> None:
    """`copy`, `deepcopy` and pickle rebuild a dict subclass key by key: the result is a plain
    LazyContext with the same entries, and the copy it came from still splices right."""
    ctx, _ = _spliceable()
    extended = ctx.copy()
    extended["$new"] = {"level": "info"}
    again = how(extended)
    assert type(again) is LazyContext
    assert msgspec.json.encode(again) == msgspec.json.encode(extended)
    raw = spliced(extended)
    assert raw is not None and bytes(raw) == msgspec.json.encode(extended)


def test_random_changes_splice_only_what_encoding_entry_by_entry_gives() -> None:
    """Sequences of changes to a spliced copy: whenever it still splices, the spliced bytes
    decode to what the copy holds (and are its encoding, byte for byte, unless a read decoded
    values in place)."""
    import random

    rng = random.Random(11)
    ops: list[Any] = [
        lambda d, k: d.__setitem__(f"$new{rng.randrange(4)}", rng.randrange(100)),
        lambda d, k: d.__setitem__(k, {"changed": True}),
        lambda d, k: d.pop(k, None),
        lambda d, k: d.__delitem__(k) if k in d else None,
        lambda d, k: d.setdefault(f"$new{rng.randrange(4)}", 0),
        lambda d, k: d.update({k: 1}),
        lambda d, k: d.__ior__({"$new0": [1]}),
        lambda d, k: d.popitem() if d else None,
        lambda d, k: d.clear() if rng.random() < 0.1 else None,
        lambda d, k: list(d.items()),  # decodes in place
    ]
    spliced_runs = 0
    for _ in range(400):
        ctx, _ = _spliceable()
        copy_ = ctx.copy()
        decoded = False
        for _ in range(rng.randrange(1, 6)):
            keys = list(copy_) or ["$a"]
            op = rng.randrange(len(ops))
            decoded = decoded or op == len(ops) - 1
            ops[op](copy_, rng.choice(keys))
        raw = spliced(copy_)
        if raw is None:
            continue
        spliced_runs += 1
        whole = msgspec.json.encode(copy_)
        assert msgspec.json.decode(raw) == msgspec.json.decode(whole)
        if not decoded:
            assert bytes(raw) == whole
    assert spliced_runs > 20  # the sequences of added keys only do splice


# -- the dict's own interface, and edges found by mutation testing (docs/MUTATION.md) -----------


def test_the_dict_interface_reads_decoded_values() -> None:
    ctx = LazyContext({"$a": msgspec.Raw(b'{"x":1}')}, b=2)
    assert ctx.get("$a") == {"x": 1} and ctx.get("b") == 2
    assert ctx.get("$none") is None and ctx.get("$none", "d") == "d"
    assert list(ctx.values()) == [{"x": 1}, 2]
    same, other = {"$a": {"x": 1}, "b": 2}, {"$a": {"x": 2}, "b": 2}
    assert (ctx == same) is True and (ctx != same) is False
    assert (ctx == other) is False and (ctx != other) is True


def test_a_large_value_is_handed_undecoded_from_its_size_on_until_it_is_read() -> None:
    # a JSON string of PART_MIN_BYTES bytes, quotes included: the smallest value read in parts
    at_size = msgspec.Raw(b'"' + b"x" * (PART_MIN_BYTES - 2) + b'"')
    below = msgspec.Raw(b'"' + b"x" * (PART_MIN_BYTES - 3) + b'"')
    ctx = LazyContext({"$at": at_size, "$below": below})
    assert ctx.undecoded("$at") is at_size
    assert ctx.undecoded("$below") == "x" * (PART_MIN_BYTES - 3)
    whole = ctx["$at"]
    assert ctx.undecoded("$at") is whole  # read whole once: the decoded value from then on
    ctx2 = LazyContext({"$at": at_size})
    ctx2["$at"] = msgspec.Raw(bytes(at_size))  # new bytes under the key: undecoded again
    assert type(ctx2.undecoded("$at")) is msgspec.Raw


def test_a_value_decoded_for_other_bytes_is_not_handed_for_these() -> None:
    big = msgspec.Raw(b'"' + b"y" * PART_MIN_BYTES + b'"')
    ctx = LazyContext({"$v": big})
    assert ctx["$v"] == "y" * PART_MIN_BYTES
    fresh = msgspec.Raw(b'"' + b"z" * PART_MIN_BYTES + b'"')
    dict.__setitem__(ctx, "$v", fresh)  # as a copy's entries stand beside the cache it kept
    assert ctx.undecoded("$v") is fresh and ctx["$v"] == "z" * PART_MIN_BYTES


def test_splicing_pays_from_a_size_on() -> None:
    from runeworker.engine.context import SPLICE_BYTES_PER_ENTRY, SPLICE_FIXED_BYTES, _splices

    entries = 40
    size = entries * SPLICE_BYTES_PER_ENTRY - SPLICE_FIXED_BYTES
    assert not _splices(entries, size)  # the same cost either way: encode as usual
    assert _splices(entries, size - 1)
    assert not _splices(1, 1)


def test_a_context_known_as_empty_splices_its_first_entry_without_a_comma() -> None:
    ctx = ExtendedContext({}, b"{")
    assert bytes(spliced(ctx) or b"") == b"{}"
    ctx["$a"] = 1
    assert bytes(spliced(ctx) or b"") == b'{"$a":1}' == msgspec.json.encode(ctx)


def test_lazy_takes_any_mapping() -> None:
    from types import MappingProxyType

    from runeworker.engine.context import lazy

    ctx = lazy(MappingProxyType({"$a": msgspec.Raw(b"[1]")}))
    assert type(ctx) is LazyContext and ctx["$a"] == [1]
    assert lazy(None) == {} and lazy({"b": 2}) == {"b": 2}
