"""JSON nested hundreds or thousands of levels never raises RecursionError: the node that meets
it fails under its own error policy (runeworker.engine.depth; issue 11, item 8)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runeworker.engine import depth
from runeworker.engine.context import LazyContext
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import CompletionMessage, NodeStatusMessage
from runeworker.engine.registry import NodeContext, node
from runeworker.engine.resolver import Resolver
from runeworker.errors import DepthError, UnreadableError

LIMIT = depth.MAX_DEPTH


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


def levels_of(value: Any) -> int:
    """Depth by walking (the reference the byte scanner is checked against)."""
    level, current = 0, [value]
    while current:
        containers = [v for v in current if isinstance(v, dict | list)]
        if not containers:
            return level
        level += 1
        current = [c for v in containers for c in (v.values() if isinstance(v, dict) else v)]
    return level


# -- the byte scanner -----------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [0, 1, LIMIT - 1, LIMIT, LIMIT + 1, 600, 5_000, 200_000])
def test_json_exceeds_at_the_limit(levels: int) -> None:
    text = b"[" * levels + b"]" * levels if levels else b"1"
    assert depth.json_exceeds(text) is (levels > LIMIT)


def test_brackets_and_escapes_inside_strings_do_not_count() -> None:
    inside = json.dumps(["[" * 500, '\\"[[[', "\\\\", '"{{{'] * 50)
    assert not depth.json_exceeds(inside)
    assert depth.json_exceeds(inside[:-1] + "," + json.dumps(nested(LIMIT)) + "]")


def test_the_scanner_agrees_with_a_walk_on_random_documents() -> None:
    rng = random.Random(11)
    texts = ["a", "[", "]", "{", "}", '"', "\\", '\\"', "\\\\", "x[y", "é"]

    budget = [0]  # containers left in the document being built

    def build(level: int) -> Any:
        roll = rng.random()
        if level > 130 or roll < 0.02 or budget[0] <= 0:
            return rng.choice([rng.choice(texts) * rng.randint(0, 3), 1, None, 2.5, True])
        budget[0] -= 1
        width = rng.choice([1, 1, 1, 2, 3])  # mostly chains, to reach the limit
        if roll < 0.6:
            return [build(level + 1) for _ in range(width)]
        return {rng.choice(texts) + str(i): build(level + 1) for i in range(width)}

    checked = 0
    for _ in range(300):
        budget[0] = rng.randint(1, 400)
        value = build(0)
        expected = levels_of(value) > LIMIT
        assert depth.json_exceeds(msgspec.json.encode(value)) is expected
        assert depth.exceeds(value) is expected
        checked += expected
    assert 0 < checked < 300  # both sides of the limit were met


@pytest.mark.parametrize("text", ['\n"', '\t\\"', 'a\n\\\\"', '\u0001"['])
def test_an_escape_before_an_escaped_quote_does_not_end_the_string(text: str) -> None:
    """`"\\n\\""` (a newline escape, then an escaped quote): read as structure alone, the
    letters gone first, its backslashes paired up wrongly and its string ended one quote early,
    so that a value nested 130 levels beside it passed as shallow (and RTES refused it)."""
    deep = nested(130)
    text_first = msgspec.json.encode([text, deep, "["])
    assert depth.json_exceeds(text_first)
    assert depth.problem({"a": text, "b": nested(200), "c": "["}) == f"is {depth.TOO_DEEP}"
    assert depth.unpublishable(text_first) == depth.PLACEHOLDER
    assert not depth.json_exceeds(msgspec.json.encode([text, nested(LIMIT - 1), "["]))


def test_the_scanner_agrees_with_a_walk_on_documents_full_of_escapes() -> None:
    rng = random.Random(5)
    texts = ["\n", '"', "\\", '\n"', "\t\\", "\u0001", "[", "{", "]", "}", "é", "a"]
    deep = 0
    for _ in range(400):
        width, level = rng.randint(1, 3), rng.randint(80, 130)
        value: Any = rng.choice(texts) * rng.randint(0, 3)
        for _ in range(level):
            value = [value] if rng.random() < 0.5 else [rng.choice(texts) * 2, value]
            if rng.random() < 0.1:
                value = {rng.choice(texts): value}
        doc = [rng.choice(texts) for _ in range(width)] + [value]
        expected = levels_of(doc) > LIMIT
        assert depth.json_exceeds(msgspec.json.encode(doc)) is expected, doc
        deep += expected
    assert 0 < deep < 400  # both sides of the limit were met


def test_values_msgspec_cannot_encode_are_walked() -> None:
    assert depth.exceeds(nested(LIMIT, leaf=object())) is False
    assert depth.exceeds([nested(LIMIT, leaf=object())]) is True


def test_decode_and_check_raise_depth_errors() -> None:
    deep = b"[" * 3_000 + b"]" * 3_000
    with pytest.raises(DepthError, match=rf"^response body is nested deeper than {LIMIT} levels$"):
        depth.decode(deep, "response body")
    with pytest.raises(DepthError, match=r"^output is nested"):
        depth.check(nested(LIMIT + 1), "output")
    assert depth.decode(b'{"a": [1]}', "x") == {"a": [1]}


# -- the context, the resolver, masking ------------------------------------------------------------


def lazy_context(**values: Any) -> LazyContext:
    return LazyContext({k: msgspec.Raw(msgspec.json.encode(v)) for k, v in values.items()})


def test_a_context_value_too_deep_fails_the_read_only() -> None:
    ctx = lazy_context(**{"$input": nested(600), "$ok": {"a": 1}})
    with pytest.raises(DepthError, match=r"^context value \$input is nested deeper"):
        ctx["$input"]
    assert ctx.unreadable("$input") and ctx.copy().unreadable("$input")
    assert ctx["$ok"] == {"a": 1} and not ctx.unreadable("$ok")
    ctx["$input"] = 1  # replaced: readable again
    assert not ctx.unreadable("$input")


@pytest.mark.parametrize("levels", [LIMIT + 1, 600, 900])
def test_resolver_fails_a_reference_to_a_deep_value_and_leaves_it_out(levels: int) -> None:
    ctx = lazy_context(**{"$input": nested(levels), "$ok": {"a": 1}})
    resolver = Resolver(ctx, credentials={"token": "s3cret-token"})
    params, errors = resolver.resolve_params({"m": "{{ $input.k }}", "n": "$ok.a"})
    assert params == {"m": "{{ $input.k }}", "n": 1}
    assert errors == {
        "m": f"reference $input.k: context value $input is nested deeper than {LIMIT} levels"
    }
    assert resolver.used_inputs() == {"$ok": {"a": 1}}
    assert Resolver(ctx).used_keys == set()


@pytest.mark.parametrize("levels", [LIMIT + 1, 600, 5_000])
def test_a_deep_parameter_fails_and_is_not_published(levels: int) -> None:
    resolver = Resolver({}, credentials={"password": "s3cret-pass"})
    params, errors = resolver.resolve_params(
        {"body": nested(levels), "raw": nested(levels), "fine": [nested(LIMIT - 1)]},
        skip=frozenset({"raw"}),
    )
    assert params == {"body": depth.PLACEHOLDER, "raw": depth.PLACEHOLDER, "fine": [nested(99)]}
    assert set(errors) == {"body", "raw"}
    assert all(e == f"the value is nested deeper than {LIMIT} levels" for e in errors.values())
    assert resolver.mask(params) == params


def test_masking_replaces_what_it_cannot_walk() -> None:
    resolver = Resolver({}, credentials={"token": "s3cret-token"})
    masked = resolver.mask({"a": nested(3_000, "s3cret-token"), "b": ["s3cret-token"]})
    assert masked["b"] == ["***"]
    assert b"s3cret" not in msgspec.json.encode(masked)
    assert depth.PLACEHOLDER.encode() in msgspec.json.encode(masked)


def test_deep_credentials_are_collected_without_recursion() -> None:
    resolver = Resolver({}, credentials={"values": nested(5_000, "s3cret-deep")})
    assert resolver.mask("x s3cret-deep y") == "x *** y"


# -- a whole run: the node fails under its own policy ---------------------------------------------


@node("depth.deep")
def _deep(ctx: NodeContext) -> dict[str, Any]:
    return {"value": nested(int(ctx.params["levels"]))}


def workflow(policy: str, levels: int, kind: str = "output") -> bytes:
    if kind == "output":
        first = {"id": "d", "name": "Deep", "type": "depth.deep", "parameters": {"levels": levels}}
    elif kind == "input":
        first = {"id": "d", "name": "Deep", "type": "log", "parameters": {"message": "$input.k"}}
    else:
        first = {"id": "d", "name": "Deep", "type": "log", "parameters": {"message": "m"}}
        first["parameters"]["extra"] = nested(levels)
    first["error"] = {"type": policy}
    if policy == "branch":
        first["error"]["error_edge"] = "e_err"
    nodes = [
        {"id": "t", "name": "Start", "type": "ManualTrigger", "trigger": True},
        first,
        {"id": "after", "name": "After", "type": "log", "parameters": {"message": "after"}},
        {
            "id": "err",
            "name": "OnError",
            "type": "log",
            "parameters": {"message": "$error.message"},
        },
    ]
    edges = [("e1", "t", "d"), ("e2", "d", "after")]
    if policy == "branch":
        edges.append(("e_err", "d", "err"))
    data = {"nodes": nodes, "edges": [{"id": i, "src": s, "dst": d} for i, s, d in edges]}
    return msgspec.json.encode(data)


def run(defn: bytes, inputs: Any = None) -> tuple[list[NodeStatusMessage], CompletionMessage]:
    statuses: list[NodeStatusMessage] = []
    done = LocalRunner(on_status=statuses.append).run(start_message(defn, inputs))
    assert done is not None
    return statuses, done


def trail(statuses: list[NodeStatusMessage]) -> list[tuple[str, str]]:
    return [(s.node_name, s.status) for s in statuses]


CASES = [("output", 1_000), ("output", 30_000), ("input", 600), ("parameters", 600)]


@pytest.mark.parametrize(("kind", "levels"), CASES)
def test_ignore_goes_on(kind: str, levels: int) -> None:
    inputs = {"k": nested(levels)} if kind == "input" else None
    statuses, done = run(workflow("ignore", levels, kind), inputs)
    assert trail(statuses) == [
        ("Deep", "running"), ("Deep", "failed"), ("After", "running"), ("After", "success")
    ]  # fmt: skip
    assert statuses[1].error is not None and "nested deeper than 100 levels" in (
        statuses[1].error.message
    )
    assert done.status == "completed"
    msgspec.json.encode(done)  # publishable


@pytest.mark.parametrize(("kind", "levels"), CASES)
def test_branch_takes_the_error_edge_and_halt_halts(kind: str, levels: int) -> None:
    inputs = {"k": nested(levels)} if kind == "input" else None
    statuses, done = run(workflow("branch", levels, kind), inputs)
    assert trail(statuses)[-2:] == [("OnError", "running"), ("OnError", "success")]
    assert "nested deeper than 100 levels" in statuses[-1].output["message"]  # type: ignore[index]
    assert "After" not in {name for name, _ in trail(statuses)}
    assert done.status == "completed"
    statuses, done = run(workflow("halt", levels, kind), inputs)
    assert trail(statuses) == [("Deep", "running"), ("Deep", "failed")]
    assert done.status == "halted" and "nested deeper than 100 levels" in (
        done.failure_reason or ""
    )


def test_an_unread_deep_input_reaches_the_completion_as_a_placeholder() -> None:
    defn = workflow("halt", 0, "parameters")
    _, done = run(defn, {"k": nested(900), "fine": [1]})
    assert done.status == "completed"
    assert done.final_context["$input"] == depth.PLACEHOLDER
    assert done.final_context["$After"]["message"] == "after"
    _, done = run(defn, {"k": nested(50)})
    assert done.final_context["$input"] == {"k": nested(50)}


def test_runeworker_run_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(workflow("ignore", 0, "input"))
    for levels, code in ((600, 0), (5_000, 2)):
        data = (
            json.dumps({"k": json.loads("[" * levels + "]" * levels)})
            if levels < 900
            else ('{"k": ' + "[" * levels + "]" * levels + "}")
        )
        (tmp_path / "in.json").write_text(data)
        proc = subprocess.run(
            [sys.executable, "-m", "runeworker", "run", str(path), "--input", "@in.json"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr
        if code == 2:
            assert proc.stderr == "error: --input is nested too deeply to be read\n"


@pytest.mark.parametrize("levels", [1, 98, 99, 100, 101, 102, 300])
def test_the_completion_keeps_every_value_up_to_the_limit(levels: int) -> None:
    """A context whose values are at most MAX_DEPTH deep is decoded in one go, one with a
    deeper value value by value: either way a value of 100 levels is kept, 101 replaced,
    and the other keys of the same context kept, in the same order."""
    from runeworker.engine.messages import NodeExecutionMessage
    from runeworker.engine.outbox import completion

    value = nested(levels)
    leaf = msgspec.json.encode({"$a": [1], "$deep": value, "$z": {"s": "x"}})
    first = msgspec.json.encode({"$z": "earlier", "$b": 2})
    msg = NodeExecutionMessage("wf", "ex", "n", msgspec.Raw(b"{}"))
    done = completion(msg, "completed", [first, b"[1]", b"{bad", leaf], 0, 0, "", None)
    kept = value if levels <= depth.MAX_DEPTH else depth.PLACEHOLDER
    assert done.final_context == {"$z": {"s": "x"}, "$b": 2, "$a": [1], "$deep": kept}
    assert list(done.final_context) == ["$z", "$b", "$a", "$deep"]
    msgspec.json.encode(done)  # publishable


def test_the_completion_masks_node_and_embedded_credentials() -> None:
    """What the completion masks is found once per definition (Workflow.index): a node's own
    credential values and the blocks embedded in its parameters (agent tools, MCP servers)."""
    from runeworker.engine.messages import NodeExecutionMessage
    from runeworker.engine.outbox import completion
    from runeworker.engine.workflow import parse_definition

    tool = {"name": "t", "credentials": {"id": "c1", "values": {"api_key": "sk-embedded-1"}}}
    defn = msgspec.json.encode({"nodes": [
        {"id": "a", "type": "log", "credentials": {"values": {"token": "tok-own-22"}}},
        {"id": "b", "type": "agent", "parameters": {"tools": [tool]}},
        {"id": "c", "type": "agent", "parameters": {"mcp_servers": [
            {"credentials": {"type": "bearer", "token": "mcp-flat-333"}}]}},
    ]})  # fmt: skip
    wf = parse_definition(defn)
    leaf = msgspec.json.encode(
        {"$x": {"a": "tok-own-22", "b": "key sk-embedded-1 here", "c": ["mcp-flat-333"]}}
    )
    msg = NodeExecutionMessage("wf", "ex", "a", msgspec.Raw(defn))
    done = completion(msg, "completed", [leaf], 0, 0, "", wf)
    assert done.final_context == {"$x": {"a": "***", "b": "key *** here", "c": ["***"]}}


@pytest.mark.parametrize("levels", [99, 100, 101, 102])
def test_the_shortest_texts_at_the_limit_are_told_apart(levels: int) -> None:
    """The shortest JSON of each depth (bare brackets, 2 characters per level) around the
    limit: the length shortcut of json_exceeds must not cut off a text that is too deep."""
    for text in ("[" * levels + "]" * levels, "[" * (levels - 1) + "{}" + "]" * (levels - 1)):
        assert depth.json_exceeds(text) is (levels > depth.MAX_DEPTH)
        assert depth.json_exceeds(text.encode()) is (levels > depth.MAX_DEPTH)
        assert depth.json_exceeds(msgspec.Raw(text.encode())) is (levels > depth.MAX_DEPTH)


# -- numbers out of a double's range -------------------------------------------------------------

OUT_OF_RANGE = [b"1e999", b"-1.8e308", b"1" + b"0" * 400 + b".5"]


@pytest.mark.parametrize("number", OUT_OF_RANGE)
def test_a_context_value_no_double_holds_fails_the_read_only(number: bytes) -> None:
    """JSON, so the message decodes (its context values are only scanned), but msgspec cannot
    make a float of it (Go's decoder and RTES's serde_json refuse it too): the read fails with
    an error naming the value, the way a value too deep does."""
    ctx = LazyContext({"$input": msgspec.Raw(b'{"v": %s}' % number), "$ok": msgspec.Raw(b"[1]")})
    with pytest.raises(UnreadableError, match=r"^context value \$input cannot be read: Number"):
        ctx["$input"]
    assert ctx.unreadable("$input") and ctx.copy().unreadable("$input")
    assert ctx["$ok"] == [1] and not ctx.unreadable("$ok")


@pytest.mark.parametrize("large", [False, True])
def test_resolver_fails_a_reference_to_a_number_out_of_range_and_leaves_it_out(
    large: bool,
) -> None:
    """Read whole, or one path of a large value (`descend`): a parameter error, and the value
    stays out of the used inputs (RTES could not read the status)."""
    pad = ', "pad": "%s"' % ("x" * 5000) if large else ""
    raw = msgspec.Raw(b'{"v": 1e999, "w": 2%s}' % pad.encode())
    ctx = LazyContext({"$input": raw, "$ok": msgspec.Raw(b'{"a": 1}')})
    resolver = Resolver(ctx)
    params, errors = resolver.resolve_params({"m": "{{ $input.v }}", "n": "$ok.a"})
    assert params == {"m": "{{ $input.v }}", "n": 1}
    # read whole, the context value is named; read in part, the value the path leads to
    what = "the value it leads to" if large else "context value $input"
    assert errors["m"].startswith(f"reference $input.v: {what} cannot be read: Number out of range")
    used = resolver.used_inputs()
    assert list(used) == ["$ok"] and bytes(used["$ok"]) == b'{"a": 1}'


def test_a_number_out_of_range_fails_the_node_under_its_policy() -> None:
    defn = workflow("halt", 0, "input")
    statuses, done = run(defn.replace(b'"$input.k"', b'"$input.k.v"'), {"k": {"v": "MARK"}})
    assert done.status == "completed"  # the same workflow with a readable value
    text = start_message(defn.replace(b'"$input.k"', b'"$input.k.v"'), {"k": {"v": "MARK"}})
    bad = msgspec.json.decode(msgspec.json.encode(text))
    body = msgspec.json.encode(bad).replace(b'"MARK"', b"1e999")
    from runeworker.engine.messages import decode_execution

    statuses = []
    done = LocalRunner(on_status=statuses.append).run(decode_execution(body))
    assert done is not None
    assert trail(statuses) == [("Deep", "running"), ("Deep", "failed")]
    assert statuses[1].error is not None
    assert "context value $input cannot be read: Number out of range" in statuses[1].error.message
    assert done.status == "halted" and "cannot be read" in (done.failure_reason or "")


def test_the_completion_replaces_a_number_out_of_range() -> None:
    """A workflow with credentials decodes the final context to mask it: a value it cannot read
    becomes UNREADABLE. Without credentials it was kept as the bytes it arrived as, which RTES's
    serde_json refuses (the whole completion lost to it): now it is replaced as well."""
    from runeworker.engine.messages import NodeExecutionMessage
    from runeworker.engine.outbox import completion
    from runeworker.engine.workflow import parse_definition

    leaf = b'{"$input": {"v": 1e999}, "$ok": {"token": "tok-own-22"}}'
    with_secret = msgspec.json.encode(
        {"nodes": [{"id": "a", "type": "log", "credentials": {"values": {"token": "tok-own-22"}}}]}
    )
    msg = NodeExecutionMessage("wf", "ex", "a", msgspec.Raw(with_secret))
    done = completion(msg, "completed", [leaf], 0, 0, "", parse_definition(with_secret))
    assert done.final_context == {"$input": depth.UNREADABLE, "$ok": {"token": "***"}}
    plain = msgspec.json.encode({"nodes": [{"id": "a", "type": "log"}]})
    msg = NodeExecutionMessage("wf", "ex", "a", msgspec.Raw(plain))
    done = completion(msg, "completed", [leaf], 0, 0, "", parse_definition(plain))
    assert b"1e999" not in msgspec.json.encode(done)
    assert done.final_context == {"$input": depth.UNREADABLE, "$ok": {"token": "tok-own-22"}}


# -- the quick looks before the checks of numbers no double holds --------------------------------


@pytest.mark.parametrize("offset", [0, 1, 98, 99, 100, 153, 154, 155, 200, 307, 308, 309, 400])
def test_a_run_of_digits_is_found_wherever_it_starts(offset: int) -> None:
    """The quick looks sample every (n - 1) // 2-th byte: a run of n digits is seen at any
    offset, one digit shorter never (`holds_int_run`: 309; `unpublishable`: a 309-digit
    integer, whatever the bytes before it)."""
    pad = "x" * offset
    at_limit = f'["{pad}", {"9" * depth.INT_DIGITS}]'.encode()
    below = f'["{pad}", {"9" * (depth.INT_DIGITS - 1)}]'.encode()
    assert depth.holds_int_run(at_limit) and not depth.holds_int_run(below)
    assert depth.unpublishable(at_limit) == depth.UNREADABLE
    assert depth.unpublishable(below) is None  # 308 digits: a double holds it


@pytest.mark.parametrize("number", ["1e999", "1E+400", "-2.5e+0309", "1" + "0" * 320])
@pytest.mark.parametrize("size", [10, 3000])  # below and above the size whose verdict is kept
def test_unpublishable_finds_each_spelling_at_any_size(number: str, size: int) -> None:
    text = json.dumps({"pad": "p" * size, "n": "N"}).replace('"N"', number).encode()
    assert depth.unpublishable(text) == depth.UNREADABLE
    assert depth.unpublishable(msgspec.Raw(text)) == depth.UNREADABLE  # the kept verdict
    fine = text.replace(number.encode(), b"1e300")
    assert depth.unpublishable(fine) is None and depth.unpublishable(fine) is None


def test_a_kept_verdict_is_the_texts_own() -> None:
    """Two texts of one length, one readable and one not, each keep their own verdict."""
    good = json.dumps({"pad": "p" * 3000, "n": 1.5e300}).encode()
    bad = good.replace(b"1.5e+300", b"1.5e+999")
    assert len(good) == len(bad) and b"1.5e+300" in good
    for _ in range(2):
        assert depth.unpublishable(good) is None
        assert depth.unpublishable(bad) == depth.UNREADABLE


def test_a_whole_context_is_publishable_only_when_every_value_is() -> None:
    deep = "[" * 101 + "]" * 101
    assert depth.context_publishable(b'{"$a": {"b": [1, 2]}, "$c": "1e999 in a string"}')
    assert not depth.context_publishable(b'{"$a": 1, "$c": 1e999}')
    assert not depth.context_publishable(('{"$a": 1, "$c": ' + deep + "}").encode())
    # the object itself is one level deeper than its values, which may nest 100 levels
    assert depth.context_publishable(('{"$a": ' + "[" * 100 + "]" * 100 + "}").encode())


# -- edges of the fast paths (found by mutation testing: docs/MUTATION.md) ------------------------


SURROGATES = b'["\\ud800", "\\\\ud800", "\\ud83d\\ude00", "\\udc00x", "\\uDBFF", "a\\\\\\udc00"]'


@pytest.mark.parametrize("raw", [SURROGATES, SURROGATES.decode(), msgspec.Raw(SURROGATES)])
def test_a_lone_surrogate_escape_decodes_as_the_replacement_character(raw: Any) -> None:
    """Half a surrogate pair reads as U+FFFD (as Go reads it); an escaped backslash before `u`
    stays text, a whole pair stays its character, the rest of the string stays (the escaped
    backslash before a lone half too)."""
    assert depth.decode(raw, "v") == [
        "\ufffd", "\\ud800", "\U0001f600", "\ufffdx", "\ufffd", "a\\\ufffd",
    ]  # fmt: skip


def test_text_that_is_no_json_for_another_reason_is_refused_as_it_was() -> None:
    with pytest.raises(msgspec.DecodeError, match="truncated"):
        depth.decode(b'["\\ud800", ', "v")
    with pytest.raises(msgspec.DecodeError):
        depth.decode("[" * 300, "v")  # unbalanced and long: no depth error, a decode error
    with pytest.raises(msgspec.DecodeError):
        depth.decode(b"[" * 300, "v")


def test_decode_names_what_nested_too_deeply_for_the_stack_left() -> None:
    """A text below the limit can still meet the interpreter's recursion limit when the stack
    is already deep: the error names the value as one nested too deeply."""
    text = json.dumps(nested(LIMIT - 1))
    previous = sys.getrecursionlimit()

    def at_depth(n: int) -> None:
        if n:
            return at_depth(n - 1)
        sys.setrecursionlimit(len(__import__("inspect").stack()) + 30)
        try:
            depth.decode(text, "the deep value")
        finally:
            sys.setrecursionlimit(previous)

    with pytest.raises(DepthError, match=f"^the deep value is {depth.TOO_DEEP}$"):
        at_depth(50)


@pytest.mark.parametrize("limit", [10, 50, LIMIT, depth.RTES_DEPTH - 1])
def test_json_exceeds_counts_to_any_limit(limit: int) -> None:
    """The shortest text nesting one level past `limit` (2 * limit + 2 bytes) exceeds it; a text
    nesting exactly `limit` levels with more brackets and bytes than that does not."""
    assert depth.json_exceeds(b"[" * (limit + 1) + b"]" * (limit + 1), limit)
    assert depth.json_exceeds("[" * (limit + 1) + "]" * (limit + 1), limit)
    exact = b"[" * (limit - 1) + b"[1],[2]," * limit + b"[3]" + b"]" * (limit - 1)
    assert levels_of(json.loads(exact)) == limit and not depth.json_exceeds(exact, limit)


def test_unpublishable_keeps_to_its_limit_at_any_size() -> None:
    one_past = b"[" * (LIMIT + 1) + b"]" * (LIMIT + 1)  # 202 bytes: the shortest too deep
    assert depth.unpublishable(one_past) == depth.PLACEHOLDER
    assert depth.unpublishable(one_past, LIMIT + 1) is None
    assert depth.unpublishable(one_past, depth.RTES_DEPTH - 1) is None
    assert depth.unpublishable(one_past, depth.RTES_DEPTH - 1, keep=True) is None
    assert not depth.context_publishable(b'{"a": ' + b"[" * (LIMIT + 1) + b"]" * (LIMIT + 1) + b"}")


def test_many_exponent_lookalikes_before_a_number_do_not_hide_it() -> None:
    """Past 32 shapes such as the hex id `3e456f` the quick look hands the text to the decoder
    instead of looking further: the number after them is still found."""
    ids = ",".join(f'"{i}e{456 + i}f"' for i in range(40))
    assert depth.number_problem(f"[{ids}, 1e999]".encode()) == (
        "Number out of range - at `$[40]`: 1e999"
    )
    assert depth.number_problem(f"[{ids}, 1e300]".encode()) == ""


def test_text_no_decoder_reads_is_scanned_for_numbers() -> None:
    """A number RTES refuses (or no double holds) in text Python's json cannot read either
    (cut short, or holding a number-like token that is none) is found by the scan."""
    cut = b"[1.7976931348623158e308, "
    assert depth.number_problem(cut, rtes=True) == "Number out of range: 1.7976931348623158e308"
    assert depth.number_problem(cut) == ""  # a double holds it
    assert depth.number_problem(b"[1.2.3, 1e5e5, 1e999") == "Number out of range: 1e999"
    assert depth.number_problem(b'["\xff", 1e999]') == "Number out of range: 1e999"


@pytest.mark.parametrize(("token", "shown"), [
    ("1." + "0" * 17 + "e+999", "1." + "0" * 17 + "e+999"),  # 24 characters: whole
    ("1." + "0" * 18 + "e+999", "1.0000000000...+999 (25 characters)"),
])  # fmt: skip
def test_a_long_number_is_shown_cut(token: str, shown: str) -> None:
    assert (
        depth.number_problem(f"[{token}]".encode()) == f"Number out of range - at `$[0]`: {shown}"
    )


def test_text_holding_a_lone_surrogate_character_is_still_looked_at() -> None:
    """Python's json reads `"\\ud800"` as a str holding that half pair itself: the checks that
    take text encode it with `surrogatepass`."""
    text = json.dumps(["\ud800", 1], ensure_ascii=False).replace("1", "9" * depth.INT_DIGITS)
    assert depth.holds_int_run(text)
    assert depth.number_problem(text) == (
        f"Number out of range - at `$[1]`: 999999999999...9999 ({depth.INT_DIGITS} characters)"
    )


def test_serde_jsons_misreading_near_a_u64_counts_for_rtes_only() -> None:
    """`18446744073709551616.1` (u64::MAX + 1 with a fraction) is a double to Go and msgspec;
    serde_json refuses it (`invalid number`): published as bytes, it is what stands for an
    unreadable value, and a check for RTES names it, decodable or not."""
    misread = "18446744073709551616.1"
    text = f'{{"a": [1, {misread}]}}'.encode()
    assert depth.decode(text, "v") == {"a": [1, float(misread)]}
    assert depth.number_problem(text) == ""
    assert depth.number_problem(text, rtes=True) == f"Number out of range - at `$.a[1]`: {misread}"
    assert depth.number_problem(text[:-2], rtes=True) == f"Number out of range: {misread}"
    assert depth.unpublishable(text) == depth.UNREADABLE
    assert depth.unpublishable(text.replace(b"616.1", b"615.1")) is None  # u64::MAX itself
    assert depth.unpublishable(b'{"a": "%s"}' % misread.encode()) is None  # in a string
