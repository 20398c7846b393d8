"""Joining tokens (`message_token`, runeworker/engine/state.py) where a step derives the token of
a message without `branch_token` that names a `from_node` (a Go worker's next message, one of
upstream's merge tests feeding a merge) other than through the decoded message: a rejection
read from the bytes alone (too large, undecodable, an engine bug), and node ids holding the
separator of the token's derivation."""

from __future__ import annotations

import msgspec
import pytest
from flowkit import Run, definition, n, step

from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, StackFrame, decode_execution, encode
from runeworker.engine.rejection import reject
from runeworker.engine.state import MemoryStore, Verdict, message_token
from runeworker.errors import MessageError

DEPTH = 100_000  # deeper than msgspec decodes: only the top level of the body can be read


def merge_definition() -> bytes:
    merge = n("m", "merge", wait_mode="wait_for_all", timeout=60)
    return definition([n("a"), n("b"), merge], [("e1", "a", "m"), ("e2", "b", "m")])


def arrival(defn: bytes, parent: str, node: str = "m", ex: str = "ex-1") -> NodeExecutionMessage:
    """A message as a Go worker (or upstream's merge tests) publishes it: no branch token."""
    return NodeExecutionMessage(
        "wf-1", ex, node, msgspec.Raw(defn), accumulated_context={}, from_node=parent
    )


def test_a_joining_message_rejected_by_its_bytes_fails_the_execution_it_joins() -> None:
    """A merge fed one message per parent: the first waits; the second is rejected from its
    bytes (too large for `broker.max_message_bytes`, say, or an engine bug: `reject` without
    the decoded message). Its failure joins the execution as the decoded message would and
    fails it at once, as a poison message (rejected with the decoded message) does; the
    rejection must not take the token `root`, which is no branch of this execution: then the
    failure was recorded nowhere and the execution waited for the merge's timeout."""
    executor = Executor(MemoryStore())
    defn = merge_definition()
    run = Run()
    step(executor, arrival(defn, "a"), run)
    assert run.trail == [("M", "running"), ("M", "waiting")] and not run.completions
    outbox = reject(executor, encode(arrival(defn, "b")), "message too large")
    assert outbox.completion is not None, "the rejection's failure was recorded nowhere"
    assert outbox.completion.status == "failed"
    assert outbox.completion.failure_reason == "message too large"
    # the other parent's message, decoded, finds the execution failed
    assert executor.step(arrival(defn, "a")).report.verdict is Verdict.REPLAY
    assert executor.step(arrival(defn, "b")).report.verdict is Verdict.REPLAY


def test_an_engine_bug_after_a_joining_admission_closes_the_execution() -> None:
    """The worker rejects a message whose step raised (an engine bug) by its bytes alone. A
    joining message admitted before the bug is live: the rejection must advance that token,
    else it stays live for ever and the execution never completes."""
    store = MemoryStore()
    executor = Executor(store)
    msg = arrival(merge_definition(), "a")
    token = message_token(msg)
    assert store.admit("ex-1", token, 1).verdict is Verdict.RUN  # the step's admission
    outbox = reject(executor, encode(msg), "cannot execute node m: RuntimeError: bug")
    assert outbox.completion is not None and outbox.completion.status == "failed"
    assert store.admit("ex-1", token, 2).verdict is Verdict.REPLAY


def test_an_undecodable_joining_message_fails_the_execution_it_joins() -> None:
    """A Go worker's next message whose context nests deeper than runeworker decodes: only
    its top level can be read (`identify`), `from_node` included, and its token is the
    joining token its parent and node give: it fails the open execution it belongs to."""
    executor = Executor(MemoryStore())
    defn = merge_definition()
    run = Run()
    step(executor, arrival(defn, "a"), run)
    deep = b'"accumulated_context":{"$deep":' + b"[" * DEPTH + b"]" * DEPTH + b"}"
    body = encode(arrival(defn, "b")).replace(b'"accumulated_context":{}', deep)
    try:
        decode_execution(body)
    except MessageError:
        pass
    else:
        raise AssertionError("the body decodes")
    outbox = reject(executor, body, "undecodable")
    assert outbox.completion is not None and outbox.completion.status == "failed"


def test_joining_tokens_tell_apart_ids_holding_the_separator() -> None:
    """Node ids and branch ids are any strings: a `|` in one must not make two messages of
    one execution share a token (the second would replay the first's recorded advance, its
    own next messages stale, or a closing advance publish a second completion)."""
    defn = b"{}"
    one = arrival(defn, "a|b", "c")
    other = arrival(defn, "a", "b|c")
    assert message_token(one) != message_token(other)
    frame = StackFrame("s", "x|y", 0, 1)
    two = [StackFrame("s", "x", 0, 1), StackFrame("s", "y", 0, 1)]
    nested = msgspec.structs.replace(one, lineage_stack=[frame])
    assert message_token(nested) != message_token(msgspec.structs.replace(one, lineage_stack=two))
    escaped = arrival(defn, "a\\", "|c")
    assert message_token(escaped) != message_token(arrival(defn, "a\\|", "c"))


def test_two_joining_messages_into_nodes_with_separators_both_run() -> None:
    """The consequence in an open execution: both messages run as branches of their own."""
    nodes = [n("a"), n("a|b"), n("c"), n("b|c")]
    edges = [("e1", "a|b", "c"), ("e2", "a", "b|c"), ("e3", "a", "c")]  # not single-branch
    executor = Executor(MemoryStore())
    defn = definition(nodes, edges)
    run = Run()
    step(executor, arrival(defn, "a|b", "c"), run)  # opens the execution, completes it
    assert len(run.completions) == 1
    second = step(executor, arrival(defn, "a", "b|c"), run)
    assert second.report.verdict is not Verdict.REPLAY
    assert len(run.completions) == 1, "a second completion"


def test_a_lone_surrogate_below_the_top_level_keeps_the_lineage_of_the_branch() -> None:
    """A webhook body holding half an emoji (`"\\ud83d"`) in the context: the message is
    refused (msgspec takes no lone surrogate), and identifying it must keep its lineage's
    branch ids, which a Go-style branch message's joining token is made of (before, the
    message was read with everything below its top level blanked out, lineage included)."""
    from runeworker.engine.rejection import identify

    body = (
        b'{"workflow_id":"w","execution_id":"e","current_node":"n2","from_node":"n1",'
        b'"workflow_definition":{},"accumulated_context":{"$input":{"text":"half \\ud83d"}},'
        b'"lineage_stack":[{"split_node_id":"s","branch_id":"b1","item_index":0,'
        b'"total_items":2}]}'
    )
    ids = identify(body)
    assert ids is not None
    assert (ids.execution_id, ids.from_node, ids.branch_ids) == ("e", "n1", ["b1"])


@pytest.mark.parametrize(
    "context",
    [
        b'{"$input":{"ratio":NaN}}',  # what Python's json.dumps writes for float("nan")
        b'{"$input":' + b"[" * 3000 + b"]" * 3000 + b"}",  # past the decoder's depth
        b'{"$input":{"ratio":NaN,"text":"half \\ud83d"}}',
    ],
    ids=["nan", "too-deep", "nan-and-lone-surrogate"],
)
def test_a_context_no_decoder_reads_keeps_the_lineage_of_the_branch(context: bytes) -> None:
    """A context that is not JSON below the top level (a NaN, nesting past the decoder's
    limit): only the members that cannot be read are blanked when identifying the refused
    message, so its lineage's branch ids, which a Go-style branch message's joining token is
    made of, still count (before, everything below the top level was blanked, lineage too)."""
    from runeworker.engine.rejection import identify

    body = (
        b'{"workflow_id":"w","execution_id":"e","current_node":"n2","from_node":"n1",'
        b'"workflow_definition":{},"accumulated_context":' + context + b","
        b'"lineage_stack":[{"split_node_id":"s","branch_id":"b1","item_index":0,'
        b'"total_items":2}]}'
    )
    ids = identify(body)
    assert ids is not None
    assert (ids.execution_id, ids.from_node, ids.branch_ids) == ("e", "n1", ["b1"])
