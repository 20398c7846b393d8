"""Wire messages (docs/WIRE.md sections 3-5) as msgspec Structs.

Optional keys that the Go worker omits when empty are typed `X | UnsetType` with default
`UNSET`: msgspec leaves UNSET fields out of the JSON, so every key is emitted exactly when the
Go worker emits it (`omitempty` in services/rune-worker/pkg/messages/). The workflow definition
travels as `msgspec.Raw`: it is parsed once per process (see `workflow.py`) and re-emitted byte
for byte, which keeps the keys the Go worker drops (`notes`, edge `label`, `webhook_guid`, ...).
`null` in any field of these Structs reads as an absent key, as Go reads it
(`runeworker.engine.nulls`).
"""

from __future__ import annotations

import functools
import sys
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Final, cast

import msgspec
from msgspec import UNSET, UnsetType

from runeworker.engine import depth
from runeworker.engine.context import ExtendedContext, LazyContext, spliced
from runeworker.engine.known_contexts import KnownContexts
from runeworker.engine.known_definitions import KnownDefinitions
from runeworker.engine.nulls import TolerantDecoder
from runeworker.engine.workflow import CREDENTIAL_LABELS, credential_holders
from runeworker.errors import MessageError

STATUS_RUNNING: Final = "running"
STATUS_SUCCESS: Final = "success"
STATUS_FAILED: Final = "failed"
STATUS_WAITING: Final = "waiting"

COMPLETED: Final = "completed"
FAILED: Final = "failed"
HALTED: Final = "halted"

CODE_EXECUTION_FAILED: Final = "NODE_EXECUTION_FAILED"
CODE_CREATION_FAILED: Final = "NODE_CREATION_FAILED"

Context = dict[str, Any]

# The integers of an execution message in the ranges every Rune party reads: upstream's
# NodeExecutionMessage and StackFrame (services/rune-worker/pkg/messages/) declare each a Go
# `int` (int64, whose decoder refuses a number beyond it), and RTES reads workflow_version,
# item_index and total_items as i32 (the mirror, and the lineage every status of a split branch
# repeats) and workflow_version_id as i64 (services/rtes/src/domain/models.rs). A message out
# of them is refused as bad input, msgspec naming the field (`Expected `int` <= 2147483647 -
# at `$.workflow_version``); a wider one would be mirrored or published where RTES drops it.
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class StackFrame(msgspec.Struct):
    """One split level: which split produced this branch and which item it carries."""

    split_node_id: str
    branch_id: str
    item_index: Int32
    total_items: Int32


class NodeExecutionMessage(msgspec.Struct):
    """Consumed on the execution and resume queues; published for every next node."""

    workflow_id: str
    execution_id: str
    current_node: str
    workflow_definition: msgspec.Raw
    workflow_version: Int32 = 0
    workflow_version_id: Int64 = 0
    # values stay JSON bytes until read: see runeworker.engine.context.LazyContext
    accumulated_context: dict[str, msgspec.Raw] | None = None
    lineage_stack: list[StackFrame] | UnsetType = UNSET
    from_node: str | UnsetType = UNSET
    is_worker_initiated: bool | UnsetType = UNSET
    # runeworker's own key (unknown keys are ignored by every Rune party): the id of the
    # branch this message carries, used for exactly-one completion. Absent on master messages.
    branch_token: str | UnsetType = UNSET
    # runeworker's own key: a "ghost" arrival tells a merge or an aggregator that a path
    # feeding it ended without data (dead-path elimination), so the barrier never waits for it.
    ghost: bool | UnsetType = UNSET
    # runeworker's own key: when the execution's first step ran (epoch ms), copied into every
    # next message, so the step that closes a single-branch execution knows its
    # total_duration_ms without asking Redis (engine/ledger.py). Absent on master messages.
    started_at_ms: Int64 | UnsetType = UNSET
    # runeworker's own key, inside split branches: one object per lineage frame, the values
    # that `$json` and `$error` had when that split fanned out (a key absent when it was), so
    # that the aggregator restores them whichever branch arrives last (engine/flow.py).
    outer_keys: list[dict[str, Any]] | UnsetType = UNSET


class ErrorPayload(msgspec.Struct):
    """`error` object of a failed status: `code` is always sent (RTES requires it, so it must
    not be dropped as a default), `details` only when there are some."""

    message: str
    code: str = CODE_EXECUTION_FAILED
    details: dict[str, Any] | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        if self.details is None:
            self.details = UNSET


class NodeStatusMessage(msgspec.Struct):
    """Published to `workflow.node.status`."""

    workflow_id: str
    execution_id: str
    node_id: str
    node_name: str
    status: str
    executed_at: str
    duration_ms: int
    parameters: dict[str, Any] | UnsetType = UNSET
    output: dict[str, Any] | UnsetType = UNSET
    error: ErrorPayload | UnsetType = UNSET
    branch_id: str | UnsetType = UNSET
    split_node_id: str | UnsetType = UNSET
    item_index: int | UnsetType = UNSET
    total_items: int | UnsetType = UNSET
    lineage_stack: list[StackFrame] | UnsetType = UNSET
    processed_count: int | UnsetType = UNSET
    aggregator_state: str | UnsetType = UNSET
    all_used_input_keys: list[str] | UnsetType = UNSET
    used_inputs: dict[str, Any] | UnsetType = UNSET


class CompletionMessage(msgspec.Struct):
    """Published to `workflow.completion`, exactly once per execution."""

    workflow_id: str
    execution_id: str
    status: str
    final_context: Context
    completed_at: str
    total_duration_ms: int
    failure_reason: str | UnsetType = UNSET


_encoder = msgspec.json.Encoder()
_execution_decoder = TolerantDecoder(NodeExecutionMessage)
# the definitions of recent executions, skipped instead of scanned at every step
_known = KnownDefinitions()
# the contexts of recent executions, whose entries the next message repeats
_contexts = KnownContexts()

encode = _encoder.encode


def rfc3339(ns: int | None = None) -> str:
    """UTC timestamp with nanoseconds and `Z`, as the Go worker's `executed_at`."""
    if ns is None:
        ns = time.time_ns()
    global _last_second
    secs, frac = divmod(ns, 1_000_000_000)
    last = _last_second  # one read: a node thread may replace it meanwhile
    if last[0] != secs:
        last = _last_second = (secs, _second(secs))
    return f"{last[1]}.{frac:09d}Z"


# the seconds part of the last timestamp: every status of the same second shares it
_last_second: tuple[int, str] = (-1, "")


@functools.lru_cache(maxsize=4)
def _second(secs: int) -> str:
    """The seconds part of a timestamp, formatted."""
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _decode(data: bytes | str) -> NodeExecutionMessage:
    """The message, its definition skipped when it is a known one (raises what msgspec
    raises)."""
    if type(data) is bytes:
        known = _known.decode(data, _execution_decoder.decode)
        if known is not None:
            return known
    msg = _execution_decoder.decode(data)
    _known.remember(msg)
    return msg


def decode_execution(data: bytes | str) -> NodeExecutionMessage:
    """Decode and check an execution message; every problem becomes a `MessageError`."""
    # only a message that may hold a large context is worth a look for a kept one
    raw = data if type(data) is bytes and len(data) >= _contexts.min_bytes else None
    try:
        msg = _contexts.decode(raw, _decode) if raw is not None else None
        seen = msg is not None
        if msg is None:
            msg = _decode(data)
    except msgspec.DecodeError as exc:
        raise MessageError(f"decode node execution message: {_decode_problem(data, exc)}") from exc
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        # msgspec raises UnicodeDecodeError for bad bytes inside a string, and cannot encode a
        # str message holding a lone surrogate (UnicodeEncodeError)
        raise MessageError(f"decode node execution message: invalid UTF-8: {exc.reason}") from exc
    except RecursionError as exc:
        raise MessageError("decode node execution message: JSON nested too deeply") from exc
    for field in ("workflow_id", "execution_id", "current_node"):
        if not getattr(msg, field):
            raise MessageError(f"{field} is required")
    if "\x00" in msg.execution_id:
        raise MessageError(NUL_EXECUTION_ID)
    if msg.outer_keys:  # split branches only
        _check_outer_keys(msg.outer_keys)
    if msg.accumulated_context is not None:
        # context values stay undecoded (Raw): check their bytes now, not mid-step (an
        # all-ASCII message, the common case, cannot hold invalid UTF-8; a context read from
        # a kept one was checked by KnownContexts.decode, without a pass over the whole
        # message and its definition)
        ascii_only = seen or (isinstance(data, bytes) and data.isascii())
        for key, value in () if ascii_only else msg.accumulated_context.items():
            try:
                str(value, "utf-8")
            except UnicodeDecodeError as exc:
                raise MessageError(
                    f"decode node execution message: invalid UTF-8 in accumulated_context "
                    f"key {key!r}: {exc.reason}"
                ) from exc
        entries = msg.accumulated_context
        if raw is None:
            msg.accumulated_context = LazyContext.over(entries)
            return msg
        if not seen:  # checked: worth keeping for the next message
            _contexts.remember(raw, msg)
        # when kept, its bytes are known, and the next message splices them (encode_execution)
        msg.accumulated_context = LazyContext.over(
            entries, _contexts.prefix_of(msg.execution_id, entries)
        )
    return msg


def _check_outer_keys(outer_keys: list[dict[str, Any]]) -> None:
    """runeworker's `outer_keys` are decoded values the aggregator puts back into the context,
    where no read checks them (`runeworker.engine.depth`): one too deep or holding a number no
    double holds, which no runeworker writes there, is refused naming it."""
    for i, frame in enumerate(outer_keys):
        for key, value in frame.items():
            problem = depth.problem(value)
            if problem:
                raise MessageError(f"outer_keys[{i}].{key} {problem}")


def _decode_problem(data: bytes | str, exc: msgspec.DecodeError) -> str:
    """What msgspec says is wrong, unless the message holds a lone surrogate escape: grammatical
    JSON that is no Unicode text, which msgspec reports in words that do not name it (`Input
    data was truncated`, `unexpected end of escaped utf-16 surrogate pair`)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    lone = depth.LONE_SURROGATE.search(raw)
    if lone is None:
        return str(exc)
    escape = lone.group(1).decode("ascii")
    return (
        f"JSON is malformed: lone UTF-16 surrogate escape {escape} at byte {lone.start(1)} "
        "(half of a surrogate pair is no character)"
    )


def encode_execution(msg: NodeExecutionMessage) -> bytes:
    """`encode(msg)`, with the context spliced from the bytes it was decoded from when the
    step only added entries to it (`runeworker.engine.context.spliced`): a long workflow's
    context is then not written entry by entry at every step."""
    ctx = msg.accumulated_context
    if type(ctx) is not ExtendedContext:  # the common case (a small context): at once
        return encode(msg)
    raw = spliced(ctx)
    if raw is None:
        return encode(msg)
    return encode(msgspec.structs.replace(msg, accumulated_context=cast(Any, raw)))


# An execution id no execution can have: the archivist records a completion by `UPDATE
# executions ... WHERE id = :execution_id` (services/archivist/src/repository.py), Postgres text
# holds no U+0000, the UPDATE raises and the archivist requeues the completion for ever
# (services/archivist/src/consumer.py). The API's ids are uuid4 (docs/WIRE.md section 5).
NUL_EXECUTION_ID = "execution_id holds a NUL character (U+0000), which no execution id can hold"


def identifiable(execution_id: str) -> bool:
    """Whether a completion or status may name `execution_id` (see `NUL_EXECUTION_ID`)."""
    return bool(execution_id) and "\x00" not in execution_id


class Ids(msgspec.Struct):
    """What can still be read from a message that failed to decode."""

    workflow_id: str = ""
    execution_id: str = ""
    current_node: str = ""
    branch_token: str = ""
    # what the message's joining token is derived from when it carries no branch token
    # (`runeworker.engine.state.message_token`): its parent, and its lineage's branch ids
    from_node: str = ""
    branch_ids: list[str] = msgspec.field(default_factory=list)


def frames(msg: NodeExecutionMessage) -> list[StackFrame]:
    """The lineage stack of a message, empty when absent."""
    return msg.lineage_stack if msg.lineage_stack is not UNSET else []


def opt(value: Any) -> Any:
    """UNSET for an empty value, so that the key is omitted as the Go worker omits it."""
    return value if value else UNSET


def masked_mirror(msg: NodeExecutionMessage) -> bytes:
    """The master message as mirrored to `workflow.worker.initiated`: unchanged, except that
    every credential value in the definition is replaced by `***` (the mirror is persisted
    by RTES; the decrypted values must not be): a node's own credentials, and those the API
    embeds in an agent's `parameters.tools[]` and `parameters.mcp_servers[]`, which RTES keeps
    with the node's parameters (it blanks only the node's own `credentials`), and any other
    object's `credentials` (`_mask_credentials`). A key may be spelt with escapes
    (`"\\u0063redentials"` is `credentials` to every JSON reader, the step's too): then the
    bytes do not tell where credentials are, and the definition is read whole. A definition
    RTES's serde_json cannot read, which the step refuses or fails on (not UTF-8 where the
    worker's types skip it; a number no double holds; nested deeper than the mirror may hold),
    is mirrored as `{}`, and a context value it cannot read (that no step read yet) as the
    completion writes it (`depth.unpublishable`): RTES would refuse the whole mirror."""
    raw = bytes(msg.workflow_definition)
    escaped = b"\\u" in raw
    # the mirror wraps the definition in one object (runeworker.engine.depth.RTES_DEPTH); a
    # definition's verdict is kept (the same workflow starts again and again)
    if not _utf8(raw) or depth.unpublishable(raw, depth.RTES_DEPTH - 1, keep=True) is not None:
        raw = b"{}"
    elif escaped or b'"credentials"' in raw:
        try:
            definition = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # cannot be masked (the step will fail it): never mirror its values unmasked
            definition, raw = None, b"{}"
        if definition is not None:
            written = sys.maxsize if escaped else raw.count(b'"credentials"')
            if _mask_credentials(definition, written):
                raw = msgspec.json.encode(definition)
    mirrored = msgspec.structs.replace(msg, workflow_definition=msgspec.Raw(raw))
    context = _readable_context(msg.accumulated_context)
    if context is not msg.accumulated_context:
        mirrored.accumulated_context = context
    return encode(mirrored)


def _readable_context(ctx: dict[str, Any] | None) -> dict[str, Any] | None:
    """`ctx`, or a copy with each value RTES cannot read replaced by what stands for it
    (`depth.unpublishable`): a value still as the bytes it came in is checked as bytes (no
    decoding unless they hold a long run of digits or a large exponent), one set since is
    checked as the value it is."""
    if not ctx:
        return ctx
    replaced: dict[str, Any] = {}
    for key, value in dict.items(ctx):
        if type(value) is msgspec.Raw:
            stand_in = depth.unpublishable(value)
        else:
            problem = depth.problem(value)
            stand_in = None if not problem else depth.UNREADABLE
            if problem.startswith("is "):
                stand_in = depth.PLACEHOLDER
        if stand_in is not None:
            replaced[key] = stand_in
    if not replaced:
        return ctx
    return {k: replaced.get(k, v) for k, v in dict.items(ctx)}


def _utf8(data: bytes) -> bool:
    """Whether `data` is UTF-8 (msgspec does not check the bytes of what it skips)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mask_credentials(definition: Any, written: int) -> int:
    """Mask, in place, the `credentials` of every object of `definition`: first where the API
    embeds them (each node's own and what `credential_holders` in runeworker/engine/workflow.py
    names), then, when the definition's bytes name `credentials` more often (`written` times)
    than those held, in every object at any depth: a definition the step will refuse (its
    nodes under a misspelt key) is mirrored too. The walk is iterative (the bytes may nest
    as deeply as the decoder allows) and costs about 2 ms at 500 nodes, so it is the fallback.
    Returns how many credential blocks were masked."""
    held = 0
    nodes = definition.get("nodes") if isinstance(definition, dict) else None
    for n in nodes if isinstance(nodes, list) else ():
        if not isinstance(n, dict):
            continue
        for holder in (n, *credential_holders(n.get("parameters"))):
            if holder.get("credentials") is not None:
                holder["credentials"] = _masked_credential(holder["credentials"])
                held += 1
    if held >= written:
        return held
    masked = 0
    stack = [definition]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if value.get("credentials") is not None:
                value["credentials"] = _masked_credential(value["credentials"])
                masked += 1
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return held + masked


def _masked_credential(cred: Any) -> Any:
    """A credential block of the definition with its secrets masked: each of `values`, any
    other key but the labels `id`, `name` and `type` (the flat form an agent's tool may carry),
    and the whole of a block that is no object (the step refuses it, but the mirror goes out
    first)."""
    if not isinstance(cred, dict):
        return "***"
    out: dict[str, Any] = {}
    for key, value in cred.items():
        if key in CREDENTIAL_LABELS:
            out[key] = value
        elif key == "values" and isinstance(value, dict):
            out[key] = {k: "***" for k in value}
        else:
            out[key] = "***"
    return out
