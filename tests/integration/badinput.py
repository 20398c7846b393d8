"""A corpus of bad input for a worker, as raw bodies published on the wire.

Each `Case` builds the exact bytes of one message and says what a user must see:

- UNREADABLE: the execution cannot be identified (not a JSON object, ids missing or of the wrong
  type): the raw message is dead-lettered with a reason header; nothing else can be published.
- INPUT: the ids are readable but the message or its definition is broken: one `failed` status,
  one `failed` completion, and the raw message dead-lettered.
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

LOG = node("a", "log", message="x")
CASES: list[Case] = [
    # the execution cannot be identified
    Case("invalid_json", UNREADABLE, ("malformed",), _text(b'{"workflow_id": "MARK", oops}')),
    Case("truncated_json", UNREADABLE, ("truncated",), _truncated),
    Case("non_utf8_bytes", UNREADABLE, ("malformed",), _text(b"\xff\xfe\x00MARK")),
    Case("empty_body", UNREADABLE, ("truncated",), _text(b"")),
    Case("top_level_array", UNREADABLE, ("expected `object`, got `array`",), _text(b'["MARK"]')),
    Case("top_level_number", UNREADABLE, ("expected `object`, got `int`",), _text(b"4242")),
    Case("top_level_string", UNREADABLE, ("expected `object`, got `str`",), _text(b'"MARK"')),
    Case("top_level_null", UNREADABLE, ("expected `object`, got `null`",), _text(b"null")),
    Case(
        "deep_top_level_array",
        UNREADABLE,
        ("expected `object`, got `array`",),
        _text(b"[" * DEPTH + b'"MARK"' + b"]" * DEPTH),
    ),
    Case("deep_top_level_object", UNREADABLE, ("nested too deeply",), _deep_top),
    Case("missing_workflow_id", UNREADABLE, ("`workflow_id`",), without("workflow_id")),
    Case("missing_execution_id", UNREADABLE, ("`execution_id`",), without("execution_id")),
    Case("empty_execution_id", UNREADABLE, ("execution_id is required",), changed(execution_id="")),
    Case("numeric_workflow_id", UNREADABLE, ("$.workflow_id",), changed(workflow_id=42)),
    Case("null_execution_id", UNREADABLE, ("$.execution_id",), changed(execution_id=None)),
    Case("single_quotes", UNREADABLE, ("malformed",), _text(b"{'workflow_id': 'MARK'}")),
    Case("trailing_garbage", UNREADABLE, ("trailing",), lambda e: dumps(message(e)) + b" MARK"),
    Case("byte_order_mark", UNREADABLE, ("malformed",), lambda e: b"\xef\xbb\xbf" + good(e)),
    Case(
        "nan_literal",
        UNREADABLE,
        ("malformed",),
        lambda e: dumps(message(e, workflow_version=1)).replace(
            b'"workflow_version": 1', b'"workflow_version": NaN'
        ),
    ),
    # the ids are readable: failed status and completion, dead letter
    Case(
        "string_workflow_version",
        INPUT,
        ("$.workflow_version", "`int`"),
        changed(workflow_version="3"),
    ),
    Case(
        "fractional_workflow_version",
        INPUT,
        ("$.workflow_version", "`float`"),
        changed(workflow_version=1.5),
    ),
    Case(
        "string_workflow_version_id",
        INPUT,
        ("$.workflow_version_id",),
        changed(workflow_version_id="7"),
    ),
    Case(
        "non_bool_worker_initiated",
        INPUT,
        ("$.is_worker_initiated", "`bool`"),
        changed(is_worker_initiated="yes"),
    ),
    Case("array_context", INPUT, ("$.accumulated_context",), changed(accumulated_context=[1])),
    Case("string_context", INPUT, ("$.accumulated_context",), changed(accumulated_context="{}")),
    Case("object_lineage_stack", INPUT, ("$.lineage_stack",), changed(lineage_stack={})),
    Case("string_item_index", INPUT, ("$.lineage_stack[0].item_index",), _lineage(item_index="1")),
    Case("numeric_from_node", INPUT, ("$.from_node",), changed(from_node=3)),
    Case("numeric_branch_token", INPUT, ("$.branch_token",), changed(branch_token=5)),
    Case("missing_current_node", INPUT, ("`current_node`",), without("current_node"), "unknown"),
    Case("null_current_node", INPUT, ("$.current_node",), changed(current_node=None), "unknown"),
    Case(
        "empty_current_node",
        INPUT,
        ("current_node is required",),
        changed(current_node=""),
        "unknown",
    ),
    Case(
        "missing_workflow_definition",
        INPUT,
        ("`workflow_definition`",),
        without("workflow_definition"),
    ),
    Case(
        "string_workflow_definition",
        INPUT,
        ("workflow_definition", "`object`"),
        raw_definition("x"),
    ),
    Case("definition_without_nodes", INPUT, ("`nodes`",), raw_definition({"edges": []})),
    Case("empty_nodes", INPUT, ("at least one node",), definition([])),
    Case("node_without_id", INPUT, ("`id`", "$.nodes[0]"), definition([{"type": "log"}])),
    Case("non_object_parameters", INPUT, ("$.nodes[0].parameters",), one_node(parameters=["x"])),
    Case("non_bool_trigger", INPUT, ("$.nodes[0].trigger",), one_node(trigger="yes")),
    Case(
        "current_node_absent",
        INPUT,
        ("current_node ghost", "not found"),
        changed(current_node="ghost"),
        "ghost",
    ),
    Case("unknown_node_type", INPUT, ("teleport",), definition([node("a", "teleport", to="mars")])),
    Case(
        "dangling_edge",
        INPUT,
        ("edge a-nowhere", "'nowhere'", "does not exist"),
        definition([LOG], [edge("a", "nowhere")]),
    ),
    Case(
        "cycle",
        INPUT,
        ("cycle: a -> b -> a",),
        definition([LOG, node("b", "log", message="b")], [edge("a", "b"), edge("b", "a")]),
    ),
    Case(
        "duplicate_node_ids",
        INPUT,
        ("id is shared by nodes[0] and nodes[1]",),
        definition([LOG, LOG]),
    ),
    Case(
        "bad_error_policy_type",
        INPUT,
        ("error policy type 'retry'",),
        one_node(error={"type": "retry"}),
    ),
    Case(
        "branch_policy_without_error_edge",
        INPUT,
        ("names no error_edge",),
        one_node(error={"type": "branch"}),
    ),
    Case(
        "branch_policy_unknown_edge",
        INPUT,
        ("error_edge names edge 'nowhere'",),
        one_node(error={"type": "branch", "error_edge": "nowhere"}),
    ),
    Case(
        "edge_without_src",
        INPUT,
        ("`src`", "$.edges[0]"),
        definition([LOG], [{"id": "e", "dst": "a"}]),
    ),
    Case(
        "credentials_of_wrong_type",
        INPUT,
        ("$.nodes[0].credentials.values",),
        _credentials_wrong_type,
    ),
    Case("message_of_20_mb", INPUT, ("exceeds broker.max_message_bytes",), _huge),
    Case("context_nested_10000_deep", INPUT, ("nested too deeply",), _deep_context),
    Case("definition_nested_10000_deep", INPUT, ("nested too deeply",), _deep_definition),
    Case("invalid_utf8_in_context", INPUT, ("invalid UTF-8",), _bad_utf8_context),
    Case(
        "invalid_utf8_in_definition",
        INPUT,
        ("workflow_definition", "invalid UTF-8"),
        _bad_utf8_definition,
    ),
    # ordinary node failures: running + failed, halted
    Case(
        "template_missing_reference",
        NODE,
        ("parameter 'message'", "$nothere.field", "not found"),
        definition([node("a", "log", message="{{ $nothere.field }}")]),
    ),
    Case(
        "template_bad_index",
        NODE,
        ("$input.items[x]", "bad index"),
        _context(**{"$input": {"items": [1]}})([node("a", "log", message="{{ $input.items[x] }}")]),
    ),
    Case(
        "template_field_of_a_string",
        NODE,
        ("cannot read field 'first' of a string",),
        _context(**{"$input": {"name": "bob"}})(
            [node("a", "log", message="Hi {{ $input.name.first }}")]
        ),
    ),
    Case(
        "log_without_message",
        NODE,
        ("message parameter is required",),
        definition([node("a", "log")]),
    ),
    Case(
        "http_to_a_closed_port", NODE, ("http request failed", "connection refused"), _http_closed
    ),
    Case(
        "http_to_a_non_http_url",
        NODE,
        ("http or https url",),
        lambda e: _http(e, "ftp://127.0.0.1/x"),
    ),
    Case("http_credential_of_unknown_type", NODE, ("credential type 'kerberos'",), _http_kerberos),
    Case("smtp_refused", NODE, ("failed to send email", "refused"), _smtp_refused),
    Case("node_raises", NODE, ("RuntimeError", "boom in a"), _test_node("test.raise")),
    Case(
        "node_returns_a_list",
        NODE,
        ("returned list", "expected an object"),
        _test_node("test.not_object"),
    ),
]
