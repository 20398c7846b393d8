"""What runeworker publishes for RTES is JSON its serde_json reads: nested at most 127 levels
(`remaining_depth` counts down from 128 and fails at 0) and every number one a double holds
(serde_json, like Go's encoding/json, refuses `1e999` and a 400-digit integer) and that its
serde_json reads as one (without `float_roundtrip` it reads `1.7976931348623158e308` and the
309 digits of the largest double as infinite and refuses them, which Go and Python read:
`runeworker.engine.rtes_numbers.serde_refuses`, checked against serde_json itself in
tests/integration/test_rtes_serde.py). Each message a step publishes for RTES (the mirror,
statuses, the completion) is decoded here with that strict reading, for input that holds such
values where nobody reads them whole."""

from __future__ import annotations

import itertools
import json
import math
import sys
from typing import Any

import msgspec
import pytest

from runeworker.engine import depth
from runeworker.engine.context import LazyContext
from runeworker.engine.local import LocalRunner
from runeworker.engine.messages import (
    CompletionMessage,
    NodeStatusMessage,
    decode_execution,
    encode,
    masked_mirror,
)
from runeworker.engine.registry import NodeContext, node
from runeworker.engine.resolver import Resolver
from runeworker.engine.rtes_numbers import serde_refuses
from runeworker.errors import MessageError, UnreadableError

RTES_DEPTH = 127
BIG_INT = b"1" + b"0" * 400
# what a double holds and RTES's serde_json refuses: the largest double's digits, overshot
MAX_TEXT = b"1.7976931348623158e308"
MAX_INT = str(int(sys.float_info.max)).encode()
DEEP = b"[" * 200 + b"1" + b"]" * 200
MISREAD = b"18446744073709551616.1"  # serde_json's `invalid number`, which a double holds


class Refused(ValueError):
    pass


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise Refused(f"a number no double holds: {text[:30]}")
    if serde_refuses(text):
        raise Refused(f"a number serde_json reads as infinite: {text[:30]}")
    return number


def _constant(name: str) -> Any:
    raise Refused(f"{name} is no JSON")


def levels(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in the JSON text `raw` (strings skipped)."""
    deepest = level = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            level += 1
            deepest = max(deepest, level)
        elif byte in b"]}":
            level -= 1
    return deepest


def strict(raw: bytes) -> Any:
    """`raw` decoded as RTES's serde_json would: refused (`Refused`) when nested deeper than
    127 levels or holding a number no double holds."""
    if levels(raw) > RTES_DEPTH:
        raise Refused(f"nested {levels(raw)} levels deep")
    return json.loads(raw, parse_int=_finite, parse_float=_finite, parse_constant=_constant)


@pytest.mark.parametrize("depth_", [127, 128])
def test_the_strict_reading_refuses_what_serde_json_refuses(depth_: int) -> None:
    text = b"[" * depth_ + b"]" * depth_
    if depth_ <= RTES_DEPTH:
        strict(text)
    else:
        with pytest.raises(Refused):
            strict(text)
    for bad in (b"1e999", BIG_INT, b'{"a":[-1e999]}', MAX_TEXT, MAX_INT):
        with pytest.raises(Refused):
            strict(bad)
    assert strict(b'["1e999", 1e300, 18446744073709551616, 1.7976931348623157e308]')[0] == "1e999"


# -- a workflow through its steps -------------------------------------------------------------


@node("rtes.big")
def _big(ctx: NodeContext) -> dict[str, Any]:
    """A node computing an integer no double holds (as a code node or a response may)."""
    return {"n": 10 ** int(ctx.params.get("digits", 400))}


TRIGGER = {"id": "t", "name": "Start", "type": "ManualTrigger", "trigger": True}


@node("rtes.reads_whole")
def _reads_whole(ctx: NodeContext) -> dict[str, Any]:
    """Reads one field through its parameter, then the whole value while it runs."""
    return {"a": ctx.params["a"], "keys": sorted(ctx.context["$input"])}


def definition(*nodes: dict[str, Any], credentials: bool = False) -> bytes:
    ns = [TRIGGER, *nodes]
    if credentials:
        ns[1] = dict(ns[1], credentials={"type": "basic", "values": {"password": "pw-secret-9"}})
    edges = [{"id": f"e{i}", "src": a["id"], "dst": b["id"]}
             for i, (a, b) in enumerate(itertools.pairwise(ns))]  # fmt: skip
    return msgspec.json.encode({"nodes": ns, "edges": edges})


def body(defn: bytes, context: bytes = b"{}") -> bytes:
    return (b'{"workflow_id":"wf","execution_id":"ex","current_node":"t",'
            b'"workflow_definition":%s,"accumulated_context":%s}' % (defn, context))  # fmt: skip


def publish(data: bytes) -> tuple[Any, list[Any], Any]:
    """The mirror, statuses and completion of the execution `data` starts, each decoded by
    `strict` (which fails the test for what RTES refuses)."""
    msg = decode_execution(data)
    mirror = strict(masked_mirror(msg))
    statuses: list[NodeStatusMessage] = []
    done = LocalRunner(on_status=statuses.append).run(decode_execution(data))
    assert isinstance(done, CompletionMessage)
    return mirror, [strict(encode(s)) for s in statuses], strict(encode(done))


MAX = sys.float_info.max


def stands_for(value: bytes, credentials: bool, decoded: Any) -> Any:
    """What a completion publishes for a context value holding `value`: what stands for it,
    except that a workflow with credentials decodes a context to mask it, and then publishes
    the largest double RTES overshoots (`MAX_TEXT`), or a number it misreads (`MISREAD`), as
    the double it is (`decoded`), written as its shortest digits, which RTES reads."""
    if value in (MAX_TEXT, MISREAD) and credentials:
        return decoded
    return depth.PLACEHOLDER if value == DEEP else depth.UNREADABLE


LOG_INPUT_A = {"id": "l", "name": "Log", "type": "log", "parameters": {"message": "$input.a"}}
LOG_PLAIN = {"id": "l", "name": "Log", "type": "log", "parameters": {"message": "hi"}}


@pytest.mark.parametrize("credentials", [False, True])
@pytest.mark.parametrize("value", [b"1e999", BIG_INT, DEEP, MAX_TEXT, MAX_INT, MISREAD])
def test_an_unread_context_value_rtes_cannot_read_is_replaced(
    value: bytes, credentials: bool
) -> None:
    """Found by tests/fuzz: an input value nobody read went into the mirror and the final
    context as the bytes it came in (the completion replaced only what it had to decode)."""
    ctx = b'{"$input":{"a":1},"$other":{"v":%s},"$fine":[1,2]}' % value
    mirror, statuses, done = publish(body(definition(LOG_PLAIN, credentials=credentials), ctx))
    stand_in = depth.PLACEHOLDER if value == DEEP else depth.UNREADABLE
    assert mirror["accumulated_context"] == {"$input": {"a": 1}, "$other": stand_in,
                                             "$fine": [1, 2]}  # fmt: skip
    assert done["status"] == "completed"
    number = float(MISREAD) if value == MISREAD else MAX
    assert done["final_context"]["$other"] == stands_for(value, credentials, {"v": number})
    assert done["final_context"]["$fine"] == [1, 2]
    assert [s["status"] for s in statuses] == ["running", "success"]


@pytest.mark.parametrize("where", ["notes", "parameter"])
def test_a_definition_rtes_cannot_read_is_mirrored_as_an_empty_object(where: str) -> None:
    """A definition nested past what the mirror may hold, or with a number no double holds (the
    step refuses it: the mirror goes out first): mirrored as `{}`, as one that is not UTF-8."""
    deep = b"[" * 130 + b"]" * 130
    defn = definition(LOG_PLAIN)
    if where == "notes":
        defn = defn[:-1] + b',"notes":%s}' % deep
    else:
        defn = defn.replace(b'"message":"hi"', b'"message":"hi","extra":%s' % deep)
    mirror, _statuses, _done = publish(body(defn))
    assert mirror["workflow_definition"] == {}
    for number in (b"1e999", BIG_INT, MAX_TEXT, MAX_INT):
        msg = decode_execution(body(definition(LOG_PLAIN)[:-1] + b',"notes":[%s]}' % number))
        assert strict(masked_mirror(msg))["workflow_definition"] == {}
    fine = definition(LOG_PLAIN)[:-1] + b',"notes":%s}' % (b"[" * 120 + b"]" * 120)
    assert strict(masked_mirror(decode_execution(body(fine))))["workflow_definition"] != {}


def test_an_output_holding_an_integer_no_double_holds_fails_the_node() -> None:
    """A Python int of 400 digits is no JSON number RTES reads: the node fails naming it, the
    way an output nested too deeply does, and nothing publishes the number."""
    big = {"id": "b", "name": "Big", "type": "rtes.big", "parameters": {"digits": 400}}
    _mirror, statuses, done = publish(body(definition(big)))
    assert [s["status"] for s in statuses] == ["running", "failed"]
    message = statuses[1]["error"]["message"]
    assert message.startswith("the output of node type rtes.big holds a number no IEEE double")
    assert done["status"] == "halted"
    small = {"id": "b", "name": "Big", "type": "rtes.big", "parameters": {"digits": 300}}
    _mirror, statuses, done = publish(body(definition(small)))
    assert done["status"] == "completed" and statuses[1]["output"]["n"] == 1e300


def test_a_context_integer_no_double_holds_fails_the_read_only() -> None:
    """1e999 failed the read of a context value already; a 400-digit integer, which msgspec
    reads as a Python int, now does too."""
    ctx = LazyContext({"$input": msgspec.Raw(b'{"v": %s}' % BIG_INT), "$ok": msgspec.Raw(b"[1]")})
    with pytest.raises(UnreadableError, match=r"^context value \$input cannot be read: Number"):
        ctx["$input"]
    assert ctx["$ok"] == [1]
    with pytest.raises(msgspec.ValidationError, match=r"Number out of range - at `\$\.v`"):
        depth.decode(b'{"v": %s}' % BIG_INT, "x")
    assert depth.decode(b'{"v": "%s"}' % BIG_INT, "x") == {"v": BIG_INT.decode()}


@pytest.mark.parametrize("credentials", [False, True])
@pytest.mark.parametrize("value", [b"1e999", BIG_INT, DEEP, MAX_TEXT, MAX_INT])
def test_a_large_value_read_in_part_is_published_in_used_inputs_only_when_readable(
    value: bytes, credentials: bool
) -> None:
    """A node reading one field of a large value decodes only that field (`descend`), and the
    status's `used_inputs` carried the whole value as its bytes: a number no double holds or a
    nesting RTES refuses elsewhere in it went out in the status."""
    pad = b"x" * 5000
    ctx = b'{"$input":{"a":"A","pad":"%s","b":%s}}' % (pad, value)
    _mirror, statuses, done = publish(body(definition(LOG_INPUT_A, credentials=credentials), ctx))
    assert [s["status"] for s in statuses] == ["running", "success"]
    stand_in = depth.PLACEHOLDER if value == DEEP else depth.UNREADABLE
    assert statuses[1]["used_inputs"] == {"$input": stand_in}
    assert statuses[1]["output"]["message"] == "A"
    decoded = {"a": "A", "pad": pad.decode(), "b": MAX}
    assert done["final_context"]["$input"] == stands_for(value, credentials, decoded)


@pytest.mark.parametrize("credentials", [False, True])
@pytest.mark.parametrize("value", [MAX_TEXT, MAX_INT, MISREAD])
def test_a_value_read_whole_is_published_in_used_inputs_as_the_value_read(
    value: bytes, credentials: bool
) -> None:
    """A node that read a value whole decoded it, a number RTES overshoots as the double it is
    (as Go reads it); the statuses' `used_inputs` carried the value's bytes, which RTES refuses
    (found by mutation testing of the resolver). They carry the value read."""
    ctx = b'{"$input":{"a":"A","b":%s}}' % value
    _mirror, statuses, done = publish(body(definition(LOG_INPUT_A, credentials=credentials), ctx))
    assert [s["status"] for s in statuses] == ["running", "success"]
    read = {"a": "A", "b": float(MISREAD) if value == MISREAD else MAX}
    for status in statuses:
        assert status["used_inputs"] == {"$input": read}
    assert done["final_context"]["$input"] == stands_for(value, credentials, read)


def test_a_value_read_whole_after_the_running_status_is_published_as_read_in_the_next() -> None:
    """`running` is built after the parameters, which read one field of the large value: what
    stands for it; the node then reads the whole value: its final status carries the value."""
    reads = {"id": "r", "name": "Reads", "type": "rtes.reads_whole",
             "parameters": {"a": "$input.a"}}  # fmt: skip
    ctx = b'{"$input":{"a":"A","pad":"%s","b":%s}}' % (b"x" * 5000, MAX_TEXT)
    _mirror, statuses, _done = publish(body(definition(reads), ctx))
    assert [s["status"] for s in statuses] == ["running", "success"]
    assert statuses[0]["used_inputs"] == {"$input": depth.UNREADABLE}
    assert statuses[1]["used_inputs"] == {"$input": {"a": "A", "pad": "x" * 5000, "b": MAX}}
    assert statuses[1]["output"] == {"a": "A", "keys": ["a", "b", "pad"]}


def test_used_inputs_of_a_value_read_in_part_fine_elsewhere_is_the_value() -> None:
    ctx = LazyContext({"$input": msgspec.Raw(b'{"a":"A","pad":"%s"}' % (b"x" * 5000))})
    resolver = Resolver(ctx)
    assert resolver.lookup("$input.a") == "A"
    used = resolver.used_inputs()
    assert json.loads(bytes(used["$input"]))["a"] == "A"


@pytest.mark.parametrize("value", [BIG_INT, DEEP])
def test_outer_keys_rtes_cannot_read_are_refused(value: bytes) -> None:
    """runeworker's own `outer_keys` (the `$json` a split saw) are restored into the context by
    the aggregator, where no read checks them: a message holding what no runeworker writes
    there is refused as bad input, naming the key."""
    data = body(definition(LOG_PLAIN))[:-1] + b',"outer_keys":[{"$json":{"v":%s}}]}' % value
    with pytest.raises(MessageError, match=r"outer_keys\[0\]\.\$json"):
        decode_execution(data)
    fine = body(definition(LOG_PLAIN))[:-1] + b',"outer_keys":[{"$json":{"v":1e300}}]}'
    decode_execution(fine)


def test_numbers_rtes_overshoots_are_told_apart_from_numbers_no_double_holds() -> None:
    """A workflow's definition is refused only for what Go refuses (`number_problem`); what
    is published as its bytes stands in for what RTES refuses too (`unpublishable`); a value
    is refused for an int RTES overshoots, in words that say so (`problem`)."""
    for text in (MAX_TEXT, MAX_INT):
        doc = b'{"notes":[1, %s]}' % text
        assert depth.number_problem(doc) == ""
        assert depth.number_problem(doc, rtes=True).startswith(
            "Number out of range - at `$.notes[1]`"
        )
        assert depth.unpublishable(doc) == depth.UNREADABLE
        assert depth.unpublishable(b'"%s"' % text) is None  # a string is no number
    assert depth.unpublishable(b"[1.7976931348623157e308, %s]" % MAX_INT[:-1]) is None
    big = int(MAX_INT)
    assert depth.problem({"a": [big]}) == (
        "holds a number RTES's serde_json refuses (Number out of range for RTES - at `$.a[0]`)"
    )
    assert depth.problem(big).startswith("holds a number RTES's serde_json refuses")
    assert depth.problem({"a": [10**400]}).startswith("holds a number no IEEE double holds")
    assert depth.problem({"a": [big - 10**292]}) == ""  # read by RTES as a double


def test_a_context_integer_rtes_overshoots_is_read_as_go_reads_it() -> None:
    """The 309 digits of the largest double are read as that double, as Go reads every
    number (and written back as its shortest digits, which RTES reads); an integer RTES reads
    stays the exact int it is."""
    exact = int(MAX_INT) - 10**292
    value = depth.decode(b'{"a":[%s,{"b":%s}],"c":%d}' % (MAX_INT, MAX_INT, exact), "x")
    assert value == {"a": [MAX, {"b": MAX}], "c": exact}
    assert type(value["a"][0]) is float and type(value["c"]) is int
    assert depth.decode(MAX_INT, "x") == MAX and type(depth.decode(MAX_INT, "x")) is float
    assert type(depth.decode(str(exact).encode(), "x")) is int
    assert strict(msgspec.json.encode(value))["a"][0] == MAX
    ctx = LazyContext({"$input": msgspec.Raw(b'{"v": %s}' % MAX_INT)})
    assert ctx["$input"] == {"v": MAX}


def test_what_rtes_refuses_is_found_first_and_past_the_fast_paths() -> None:
    """The number RTES refuses is named where it comes first, before one no double holds
    (decoded or not); one of 213 digits with a two-digit exponent (no run of 309 digits, no
    exponent of three) is found too: serde_json reads it as infinite (checked against it)."""
    for later in (b"1e999", BIG_INT):
        doc = b'{"a":%s,"b":%s}' % (MAX_TEXT, later)
        assert depth.number_problem(doc, rtes=True).startswith("Number out of range - at `$.a`")
        assert depth.number_problem(doc).startswith("Number out of range - at `$.b`")
    long = b"17976931348623158" + b"0" * 193 + b"e99"
    assert serde_refuses(long.decode()) and float(long) == MAX
    assert depth.number_problem(b"[%s]" % long, rtes=True).startswith("Number out of range - at")
    assert depth.unpublishable(b"[%s]" % long) == depth.UNREADABLE
    assert depth.unpublishable(b"[%s]" % long.replace(b"17976931348623158", b"1", 1)) is None
