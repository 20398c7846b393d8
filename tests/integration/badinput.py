"""A corpus of bad input for a worker, as raw bodies published on the wire.

Each `Case` builds the exact bytes of one message and says what a user must see:

- UNREADABLE: the execution cannot be identified (not a JSON object, ids missing or of the wrong
  type): the raw message is dead-lettered with a reason header; nothing else can be published.
- INPUT: the ids are readable but the message or its definition is broken: one `failed` status,
  one `failed` completion, and the raw message dead-lettered.
- REFUSED: the message names a node of its definition, but the definition's graph is refused
  or the node's type is not registered: reported like a node failure, `running` + `failed` on
  that node, one `failed` completion, and the raw message dead-lettered.
- NODE: the message is fine but the node fails (closed port, template error, a node that raises):
  an ordinary failed node, so `running` + `failed` and a `halted` completion, no dead letter.

`words` must all appear (case-insensitive) in the error: the dead-letter reason, the failed
status and the completion's failure_reason. This module also registers the test node types
(`test.raise`, `test.not_object`, `test.exit`); `runeworker serve` imports it through
RUNEWORKER_EXTRA_NODE_MODULES=badinput for the node that kills its own process.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wire import edge, node

from runeworker.engine.registry import NodeContext
from runeworker.engine.registry import node as register

UNREADABLE = "unreadable"
INPUT = "input"
REFUSED = "refused"
NODE = "node"

SECRET = "hunter2-corpus-secret"  # must never appear in an error, a status or a completion
HUGE_BYTES = 20 * 1024 * 1024
DEPTH = 10_000
EXIT_CODE = 70


@register("test.raise")
def _raise(ctx: NodeContext) -> dict[str, Any]:
    """A node with a bug."""
    raise RuntimeError(f"boom in {ctx.node.id}")


@register("test.not_object")
def _not_object(_ctx: NodeContext) -> dict[str, Any]:
    """A node that breaks its contract (returns a list)."""
    return [1, 2]  # type: ignore[return-value]


@register("test.exit")
def _exit(ctx: NodeContext) -> dict[str, Any]:
    """Records the attempt in the file parameter, then kills its own process."""
    with open(str(ctx.params["file"]), "a", encoding="ascii") as fh:
        fh.write(f"{os.getpid()}\n")
    os._exit(EXIT_CODE)


@dataclass(frozen=True)
class Env:
    """What a builder may use: a fresh execution id, a unique marker, a closed local port."""

    execution_id: str
    marker: str
    closed_port: int


Build = Callable[[Env], bytes]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    words: tuple[str, ...]
    build: Build
    node_id: str = "a"  # the node of the failed status (INPUT, NODE)


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- builders -----------------------------------------------------------------------------------


def message(
    env: Env,
    nodes: list[dict[str, Any]] | None = None,
    edges: list[dict[str, Any]] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A well-formed start message (one log node `a`), then `changes` applied."""
    m: dict[str, Any] = {
        "workflow_id": "bad-input",
        "workflow_version": 1,
        "workflow_version_id": 7,
        "execution_id": env.execution_id,
        "current_node": "a",
        "workflow_definition": {
            "nodes": nodes if nodes is not None else [node("a", "log", message=env.marker)],
            "edges": edges or [],
        },
        "accumulated_context": {},
    }
    m.update(changes)
    return m


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def changed(**changes: Any) -> Build:
    return lambda env: dumps(message(env, **changes))


def without(key: str) -> Build:
    def build(env: Env) -> bytes:
        m = message(env)
        del m[key]
        return dumps(m)

    return build


def definition(nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None) -> Build:
    return lambda env: dumps(message(env, nodes, edges))


def raw_definition(value: Any) -> Build:
    return lambda env: dumps(message(env, workflow_definition=value))


def one_node(**fields: Any) -> Build:
    """A definition whose single node `a` gets `fields` (a parameter or key of the wrong type)."""
    return lambda env: dumps(message(env, [{**node("a", "log", message="x"), **fields}]))


def good(env: Env) -> bytes:
    """A well-formed two-node workflow, interleaved with the bad ones."""
    nodes = [node("trigger", "ManualTrigger", "Start"), node("say", "log", message=env.marker)]
    return dumps(message(env, nodes, [edge("trigger", "say")], current_node="trigger"))


def _truncated(env: Env) -> bytes:
    data = dumps(message(env))
    return data[: len(data) // 2]


def _cut_after_execution_id(env: Env) -> bytes:
    note = env.marker.encode() + b"y" * 9000
    return b'{"workflow_id":"bad-input","note":"' + note + b'","execution_id": '


def _deep_top(env: Env) -> bytes:
    return b'{"a":' * DEPTH + json.dumps(env.marker).encode() + b"}" * DEPTH


def _deep_context(env: Env) -> bytes:
    deep = "[" * DEPTH + json.dumps(env.marker) + "]" * DEPTH
    m = dumps(message(env, accumulated_context={"$deep": "PLACEHOLDER"}))
    return m.replace(b'"PLACEHOLDER"', deep.encode())


def _deep_definition(env: Env) -> bytes:
    deep = "[" * DEPTH + "1" + "]" * DEPTH
    m = dumps(message(env, [node("a", "log", message="x", deep="PLACEHOLDER")]))
    return m.replace(b'"PLACEHOLDER"', deep.encode())


def _huge(env: Env) -> bytes:
    blob = "x" * HUGE_BYTES
    return dumps(message(env, accumulated_context={"$input": {"blob": blob}}))


def _bad_utf8_context(env: Env) -> bytes:
    m = dumps(message(env, accumulated_context={"$input": {"name": "MARK"}}))
    return m.replace(b'"MARK"', b'"caf\xe9 latin-1"')


def _number_out_of_range(env: Env) -> bytes:
    """JSON, but no double holds it (Go's decoder and RTES's serde_json refuse it); the context
    value is only read by the node."""
    read = [node("a", "log", message="v is {{ $input.v }}")]
    m = dumps(message(env, read, accumulated_context={"$input": {"v": "MARK"}}))
    return m.replace(b'"MARK"', b"1e999")


def _lone_surrogate(where: str) -> Build:
    """Grammatical JSON (RFC 8259 allows any `\\uXXXX`) that is no Unicode text: a high
    surrogate escape without its low half, in the context (a webhook body, say) or in a node
    name. Python's json reads it; msgspec, serde and the worker refuse it."""

    def build(env: Env) -> bytes:
        if where == "context":
            m = dumps(message(env, accumulated_context={"$trigger": {"name": "MARK"}}))
        else:
            m = dumps(message(env, [node("a", "log", "MARK", message="x")]))
        return m.replace(b'"MARK"', b'"caf\\ud83d"')

    return build


def _nan_in_context(env: Env) -> bytes:
    """A NaN literal below the top level: the message is not JSON there, but its ids are."""
    m = dumps(message(env, accumulated_context={"$trigger": {"v": "MARK"}}))
    return m.replace(b'"MARK"', b"NaN")


def _bad_utf8_definition(env: Env) -> bytes:
    m = dumps(message(env, [node("a", "log", message="MARK")]))
    return m.replace(b'"MARK"', b'"\xff\xfe"')


def _lineage(**frame: Any) -> Build:
    base = {"split_node_id": "s", "branch_id": "b", "item_index": 0, "total_items": 1}
    return changed(lineage_stack=[{**base, **frame}])


def _context(**ctx: Any) -> Callable[[list[dict[str, Any]]], Build]:
    def with_nodes(nodes: list[dict[str, Any]]) -> Build:
        return lambda env: dumps(message(env, nodes, accumulated_context=ctx))

    return with_nodes


def _http(env: Env, url: str, **extra: Any) -> bytes:
    return dumps(message(env, [{**node("a", "http", url=url, method="GET"), **extra}]))


def _smtp_refused(env: Env) -> bytes:
    mail = node("a", "smtp", to="ops@example.com", subject="s", body="b")
    mail["parameters"]["from"] = "worker@example.com"
    mail["credentials"] = {
        "type": "smtp",
        "values": {"host": "127.0.0.1", "port": env.closed_port, "security": "none"},
    }
    return dumps(message(env, [mail]))


def _http_closed(env: Env) -> bytes:
    return _http(env, f"http://127.0.0.1:{env.closed_port}/x")


def _http_kerberos(env: Env) -> bytes:
    cred = {"type": "kerberos", "values": {"ticket": SECRET}}
    return _http(env, f"http://127.0.0.1:{env.closed_port}/x", credentials=cred)


def _credentials_wrong_type(env: Env) -> bytes:
    cred = {"id": "c1", "type": "token", "values": [SECRET]}
    return dumps(message(env, [{**node("a", "log", message="x"), "credentials": cred}]))


def _test_node(type_: str) -> Build:
    return definition([node("a", type_)])


def _text(body: bytes) -> Build:
    return lambda env: body.replace(b"MARK", env.marker.encode())


# -- the corpus ---------------------------------------------------------------------------------


def unreadable(name: str, build: Build, *words: str) -> Case:
    return Case(name, UNREADABLE, words, build)


def invalid(name: str, build: Build, *words: str, node_id: str = "a") -> Case:
    return Case(name, INPUT, words, build, node_id)


def refused(name: str, build: Build, *words: str) -> Case:
    return Case(name, REFUSED, words, build)


def failing(name: str, build: Build, *words: str) -> Case:
    return Case(name, NODE, words, build)


LOG = node("a", "log", message="x")
NAN = (b'"workflow_version": 1', b'"workflow_version": NaN')
CYCLE = definition([LOG, node("b", "log", message="b")], [edge("a", "b"), edge("b", "a")])
BAD_INDEX = _context(**{"$input": {"items": [1]}})(
    [node("a", "log", message="{{ $input.items[x] }}")]
)
FIELD_OF_STRING = _context(**{"$input": {"name": "bob"}})(
    [node("a", "log", message="Hi {{ $input.name.first }}")]
)
TYPE_ERROR = "expected `object`, got"
MISSING_REF = definition([node("a", "log", message="{{ $nothere.field }}")])


def _large_missing_ref(env: Env) -> bytes:
    """Written compactly, as the worker writes a context: the decoder keeps only such bytes."""
    ctx = {f"$n{i}": {"message": "m" * 60, "i": i} for i in range(200)}
    nodes = [node("a", "log", message="{{ $nothere.field }}")]
    return json.dumps(message(env, nodes, accumulated_context=ctx), separators=(",", ":")).encode()


CASES: list[Case] = [
    # the execution cannot be identified
    unreadable("invalid_json", _text(b'{"workflow_id": "MARK", oops}'), "malformed"),
    unreadable("truncated_json", _truncated, "truncated"),
    unreadable("non_utf8_bytes", _text(b"\xff\xfe\x00MARK"), "malformed"),
    unreadable("empty_body", _text(b""), "truncated"),
    unreadable("top_level_array", _text(b'["MARK"]'), f"{TYPE_ERROR} `array`"),
    unreadable("top_level_number", _text(b"4242"), f"{TYPE_ERROR} `int`"),
    unreadable("top_level_string", _text(b'"MARK"'), f"{TYPE_ERROR} `str`"),
    unreadable("top_level_null", _text(b"null"), f"{TYPE_ERROR} `null`"),
    unreadable("deep_top_level_array", _text(b"[" * DEPTH + b"]" * DEPTH), f"{TYPE_ERROR} `array`"),
    unreadable("deep_top_level_object", _deep_top, "nested too deeply"),
    unreadable("missing_workflow_id", without("workflow_id"), "`workflow_id`"),
    unreadable("missing_execution_id", without("execution_id"), "`execution_id`"),
    unreadable("empty_execution_id", changed(execution_id=""), "execution_id is required"),
    unreadable("numeric_workflow_id", changed(workflow_id=42), "$.workflow_id"),
    unreadable("null_execution_id", changed(execution_id=None), "$.execution_id"),
    # no execution id can hold it: the archivist would requeue its completion for ever
    unreadable(
        "nul_in_execution_id",
        lambda e: dumps(message(e, execution_id=e.execution_id + "\x00")),
        "NUL",
    ),
    unreadable("single_quotes", _text(b"{'workflow_id': 'MARK'}"), "malformed"),
    unreadable("trailing_garbage", lambda e: dumps(message(e)) + b" MARK", "trailing"),
    unreadable("byte_order_mark", lambda e: b"\xef\xbb\xbf" + good(e), "malformed"),
    unreadable("nan_literal", lambda e: dumps(message(e)).replace(*NAN), "malformed"),
    # the ids are readable: failed status and completion, dead letter
    invalid("string_version", changed(workflow_version="3"), "$.workflow_version", "`int`"),
    invalid("fractional_version", changed(workflow_version=1.5), "$.workflow_version", "`float`"),
    invalid("string_version_id", changed(workflow_version_id="7"), "$.workflow_version_id"),
    invalid("non_bool_initiated", changed(is_worker_initiated="yes"), "$.is_worker_initiated"),
    invalid("array_context", changed(accumulated_context=[1]), "$.accumulated_context"),
    invalid("string_context", changed(accumulated_context="{}"), "$.accumulated_context"),
    invalid("object_lineage_stack", changed(lineage_stack={}), "$.lineage_stack"),
    invalid("string_item_index", _lineage(item_index="1"), "$.lineage_stack[0].item_index"),
    invalid("numeric_from_node", changed(from_node=3), "$.from_node"),
    invalid("numeric_branch_token", changed(branch_token=5), "$.branch_token"),
    invalid("missing_current_node", without("current_node"), "`current_node`", node_id="unknown"),
    invalid("null_current_node", changed(current_node=None), "$.current_node", node_id="unknown"),
    invalid("empty_current_node", changed(current_node=""), "is required", node_id="unknown"),
    invalid("missing_definition", without("workflow_definition"), "`workflow_definition`"),
    invalid("string_definition", raw_definition("x"), "workflow_definition", "`object`"),
    invalid("definition_without_nodes", raw_definition({"edges": []}), "`nodes`"),
    invalid("empty_nodes", definition([]), "at least one node"),
    invalid("node_without_id", definition([{"type": "log"}]), "`id`", "$.nodes[0]"),
    invalid("non_object_parameters", one_node(parameters=["x"]), "$.nodes[0].parameters"),
    invalid("non_bool_trigger", one_node(trigger="yes"), "$.nodes[0].trigger"),
    invalid("current_node_absent", changed(current_node="ghost"), "ghost not", node_id="ghost"),
    # refused at the first step, reported like a node failure (issue 11 items 3 and 5); error
    # policies upstream runs (an unknown type, `branch` without a usable edge) are no longer
    # refused: tests/unit/test_executor.py runs them
    refused("unknown_node_type", definition([node("a", "teleport", to="mars")]), "teleport"),
    refused("dangling_edge", definition([LOG], [edge("a", "b")]), "edge a-b points to node 'b'"),
    refused("cycle", CYCLE, "cycle: a -> b -> a"),
    refused("duplicate_node_ids", definition([LOG, LOG]), "shared by nodes[0] and nodes[1]"),
    invalid("edge_without_src", definition([LOG], [{"id": "e", "dst": "a"}]), "`src`", "$.edges"),
    invalid("credentials_wrong_type", _credentials_wrong_type, "$.nodes[0].credentials.values"),
    invalid("message_of_20_mb", _huge, "exceeds broker.max_message_bytes"),
    invalid("context_nested_10000_deep", _deep_context, "nested too deeply"),
    invalid("definition_nested_10000_deep", _deep_definition, "nested too deeply"),
    invalid("invalid_utf8_in_context", _bad_utf8_context, "invalid UTF-8"),
    invalid("invalid_utf8_in_definition", _bad_utf8_definition, "definition: invalid UTF-8"),
    invalid("lone_surrogate_in_context", _lone_surrogate("context"), "surrogate", "\\ud83d"),
    invalid("lone_surrogate_in_definition", _lone_surrogate("node"), "surrogate", "\\ud83d"),
    invalid("nan_below_the_top_level", _nan_in_context, "malformed"),
    # ordinary node failures: running + failed, halted
    failing("template_missing_reference", MISSING_REF, "parameter 'message'", "$nothere.field"),
    failing("template_bad_index", BAD_INDEX, "$input.items[x]", "bad index"),
    failing("template_field_of_a_string", FIELD_OF_STRING, "cannot read field 'first' of a str"),
    failing("context_number_out_of_range", _number_out_of_range, "$input", "Number out of range"),
    failing("log_without_message", definition([node("a", "log")]), "message parameter is required"),
    failing("http_to_a_closed_port", _http_closed, "http request failed", "connection refused"),
    failing("http_to_ftp", lambda e: _http(e, "ftp://127.0.0.1/x"), "http or https url"),
    failing("http_unknown_credential", _http_kerberos, "credential type 'kerberos'"),
    failing("smtp_refused", _smtp_refused, "failed to send email", "refused"),
    failing("node_raises", _test_node("test.raise"), "RuntimeError", "boom in a"),
    failing("node_returns_a_list", _test_node("test.not_object"), "returned list", "an object"),
    # a large context kept by the decoder (runeworker/engine/known_contexts.py), then a message
    # over its smallest size cut short right after `"execution_id":` (the decoder looked for
    # the id's value past the end of the bytes: IndexError, the worker's loop gone); keep the
    # two together and in this order
    failing("large_context_missing_reference", _large_missing_ref, "$nothere.field"),
    unreadable("cut_after_the_execution_id_key", _cut_after_execution_id, "truncated"),
]
