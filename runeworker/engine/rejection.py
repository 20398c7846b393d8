"""Turning an unprocessable delivery into a clear error, a `failed` status and completion
(when the execution can be identified) — never into a crash or an endless requeue."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from runeworker.engine.executor import Executor
from runeworker.engine.messages import Ids, NodeExecutionMessage, identifiable
from runeworker.engine.outbox import Outbox
from runeworker.engine.state import joining_token


def reject(
    executor: Executor, body: bytes, reason: str, msg: NodeExecutionMessage | None = None
) -> Outbox:
    """The outbox of a delivery that cannot run: its dead-letter copy with `reason` and, when
    the ids of its execution can be read, the failed status and completion of that execution."""
    if msg is None:
        ids = identify(body)
        if ids is None:
            return Outbox(dead_letter=reason)
        msg = NodeExecutionMessage(
            workflow_id=ids.workflow_id,
            execution_id=ids.execution_id,
            current_node=ids.current_node or "unknown",
            workflow_definition=msgspec.Raw(b"{}"),
            accumulated_context={},
            branch_token=token_of(ids) or msgspec.UNSET,
        )
    return executor.fail(msg, reason)


def token_of(ids: Ids) -> str:
    """The branch token of a message read from its bytes alone, as `message_token` gives it
    for the decoded message: its own, else the joining token its parent, node and lineage
    give (a Go worker's next message: its failure joins the open execution it belongs to,
    as a poison message's does), else "" (`root`: the API's start message)."""
    if ids.branch_token or not ids.from_node:
        return ids.branch_token
    return joining_token(ids.from_node, ids.current_node, ids.branch_ids)


class _Loose(msgspec.Struct):
    """The id keys with any JSON type: a wrong type in one key (`"current_node": null`) must
    not hide the others."""

    workflow_id: Any = None
    execution_id: Any = None
    current_node: Any = None
    branch_token: Any = None
    from_node: Any = None
    lineage_stack: Any = None


_loose_decoder = msgspec.json.Decoder(_Loose)
# A JSON string (escapes included) or a bracket; strings are matched whole so that brackets
# inside them are not counted.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def identify(body: bytes) -> Ids | None:
    """The ids of a message that failed to decode, or None when the execution cannot be
    identified (not a JSON object, or workflow_id / execution_id missing or not strings, or an
    execution_id no execution can have: `messages.NUL_EXECUTION_ID`).

    A message that is not JSON below its top level only (nested too deeply for the JSON
    decoder, or holding there what no JSON decoder takes: a lone surrogate escape in a webhook
    body, a NaN) is read again with everything below its top level blanked out, so that its
    ids still count."""
    try:
        loose = _loose_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        try:
            loose = _loose_decoder.decode(shallow(body))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    stack = loose.lineage_stack if isinstance(loose.lineage_stack, list) else []
    ids = Ids(
        text(loose.workflow_id),
        text(loose.execution_id),
        text(loose.current_node),
        text(loose.branch_token),
        text(loose.from_node),
        [text(f.get("branch_id")) if isinstance(f, dict) else "" for f in stack],
    )
    return ids if ids.workflow_id and identifiable(ids.execution_id) else None


def shallow(data: bytes) -> bytes:
    """`data` with every array or object below the top level replaced by `null`. Linear and
    without recursion, whatever the depth; malformed input gives malformed output."""
    out = bytearray()
    depth = kept = 0
    for m in _TOKENS.finditer(data):
        token = m.group()
        if token[0] == ord('"'):
            continue
        if token in (b"[", b"{"):
            depth += 1
            if depth == 2:
                out += data[kept : m.start()] + b"null"
        else:
            depth -= 1
            if depth == 1:
                kept = m.end()
    return bytes(out + data[kept:])
