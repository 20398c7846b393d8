"""Turning an unprocessable delivery into a clear error, a `failed` status and completion
(when the execution can be identified) — never into a crash or an endless requeue."""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

from runeworker.engine.depth import LONE_SURROGATE
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
            workflow_definition=msgspec.Raw(b"{}"),  # no context: the failure reads none
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


# The top-level object with each value as its bytes: msgspec checks their syntax only, so that
# a value it cannot read (`1e999`, a lone surrogate escape) in one key does not hide the others.
_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
_frames = msgspec.json.Decoder(list[msgspec.Raw])
_string = msgspec.json.Decoder(str)
_value = msgspec.json.Decoder(msgspec.Raw)  # checks the syntax, builds nothing
# A JSON string (escapes included) or a bracket; strings are matched whole so that brackets
# inside them are not counted.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_ID_KEYS = ("workflow_id", "execution_id", "current_node", "branch_token", "from_node")
_NULL = msgspec.Raw(b"null")
_FFFD = rb"\ufffd"


def identify(body: bytes) -> Ids | None:
    """The ids of a message that failed to decode, or None when the execution cannot be
    identified (not a JSON object, or workflow_id / execution_id missing or not strings, or an
    execution_id no execution can have: `messages.NUL_EXECUTION_ID`).

    Each key is read on its own, so that what is wrong in one (a wrong type, `"current_node":
    null`; a number no double holds, `"branch_token": 1e999`; a lone surrogate escape) does not
    hide the others. A message that is not JSON below its top level only (nested too deeply
    for the JSON decoder, or holding there what no JSON decoder takes: a NaN) is read again with
    the arrays and objects below its top level that cannot be read blanked out, so that its ids
    and its lineage's branch ids still count; and one with a lone surrogate escape outside the
    ids, with that escape read as U+FFFD, as Go reads it."""
    members = _top_level(body)
    if members is None:
        return None
    ids = Ids(
        workflow_id=_text(members.get("workflow_id")),
        execution_id=_text(members.get("execution_id")),
        current_node=_text(members.get("current_node")),
        branch_token=_text(members.get("branch_token")),
        from_node=_text(members.get("from_node")),
        branch_ids=_branch_ids(members),
    )
    return ids if ids.workflow_id and identifiable(ids.execution_id) else None


def _top_level(body: bytes) -> dict[str, msgspec.Raw] | None:
    """The members of the top-level object, each as its bytes; None when there is none."""
    try:
        return _members.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    # a lone surrogate escape (in a webhook's body in the context, say) mended first, on the
    # whole message: blanking what lies below the top level would lose the lineage's branch ids
    for text in (body, shallow(body, keep=_readable)):
        if text is not body:
            try:
                return _members.decode(text)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                pass
        mended = LONE_SURROGATE.sub(_mend, text)
        if mended == text:
            continue
        try:
            members = _members.decode(mended)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            continue
        # an id whose escape was mended is not the id of any execution: read as unreadable
        return {k: _NULL if k in _ID_KEYS and _FFFD in bytes(v) else v for k, v in members.items()}
    return None


def _mend(m: re.Match[bytes]) -> bytes:
    """A lone surrogate escape as the escape of U+FFFD (its backslash pairs kept)."""
    return m.group(0)[: m.start(1) - m.start(0)] + rb"\ufffd"


def _text(raw: msgspec.Raw | None) -> str:
    """The string `raw` holds; "" when it holds anything else or cannot be read."""
    if raw is None:
        return ""
    try:
        return _string.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return ""


def _branch_ids(members: dict[str, msgspec.Raw]) -> list[str]:
    """The `branch_id` of each lineage frame, "" where it cannot be read."""
    raw = members.get("lineage_stack")
    if raw is None:
        return []
    try:
        frames = _frames.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return []
    out = []
    for frame in frames:
        try:
            out.append(_text(_members.decode(frame).get("branch_id")))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            out.append("")
    return out


def shallow(data: bytes, keep: Callable[[bytes], bool] | None = None) -> bytes:
    """`data` with every array or object below the top level replaced by `null`, except those
    `keep` takes (given their bytes). Linear and without recursion, whatever the depth;
    malformed input gives malformed output."""
    out = bytearray()
    kept = 0
    for start, end in _below_top(data):
        if keep is not None and keep(data[start:end]):
            continue
        out += data[kept:start] + b"null"
        kept = end
    return bytes(out + data[kept:])


def _below_top(data: bytes) -> list[tuple[int, int]]:
    """The byte spans of the arrays and objects directly below the top level of `data`."""
    spans = []
    depth = start = 0
    for m in _TOKENS.finditer(data):
        token = m.group()
        if token[0] == ord('"'):
            continue
        if token in (b"[", b"{"):
            depth += 1
            if depth == 2:
                start = m.start()
        else:
            depth -= 1
            if depth == 1:
                spans.append((start, m.end()))
    return spans


def _readable(value: bytes) -> bool:
    """Whether a member's value is JSON a decoder takes, a lone surrogate escape in it read as
    U+FFFD (mended afterwards with the rest): the lineage beside a context holding a NaN is
    kept."""
    for text in (value, LONE_SURROGATE.sub(_mend, value)):
        try:
            _value.decode(text)
        except (msgspec.DecodeError, RecursionError):
            continue
        return True
    return False
