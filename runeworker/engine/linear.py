"""Single-branch executions: the branch-token protocol without a state-store round trip per step.

The token protocol of `runeworker.engine.state` exists for executions where several branches
are live at once: it decides which branch closes the execution, cancels siblings after a
failure and replays a step whose state write got ahead of its broker commit. When the graph
proves that an execution can never have two live branches, none of that has anything to do:

* every step publishes at most one next message, in the same atomic step (one AMQP transaction)
  as the ack of its own delivery, so exactly one message of the execution exists at any time;
* the step that publishes no next message (the end of the chain, or a failure under `halt`)
  publishes the completion in that same atomic step: if it is redelivered, its first attempt
  published nothing, so the execution still gets exactly one completion;
* the graph is acyclic (validation rejects cycles), so an execution takes at most one step per
  node and the max-steps guard cannot trip when the workflow has no more nodes than the limit.

Such a step does not wait on the store: the first step records the start time
(`StateStore.begin`, sent with the next broker commit) and puts it into its next message
(`started_at_ms`, runeworker's own key, copied on by every step), where the closing step finds
it for `total_duration_ms`; only when a peer that drops the key took a step in between does the
closing step read the start back (`StateStore.started_at`). Otherwise the messages are those of
the full path: the next message still carries the child token derived from the parent's, so a
peer on the full protocol can take over.

A workflow is single-branch when it has no flow-control node (split, aggregator, merge, wait:
they need the shared state by nature), no more nodes than `max_steps`, every node type is
registered, and no node can follow two edges: a trigger or a node without a router has at most
one normal outgoing edge, a node with a router has one that declares `single_route` (conditional,
switch), and the error edge of `branch` is one edge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from msgspec import UNSET

from runeworker.engine.messages import COMPLETED, NodeExecutionMessage
from runeworker.engine.paths import FLOW_TYPES
from runeworker.engine.registry import TRIGGER_TYPES, NodeSpec
from runeworker.engine.state import Failure, StateStore, Transition
from runeworker.engine.workflow import Workflow


def single_branch(wf: Workflow, specs: Mapping[str, NodeSpec], max_steps: int) -> bool:
    """True when no execution of `wf` can ever have two live branches (see the module doc)."""
    if len(wf.nodes) > max_steps:
        return False
    for node in wf.nodes:
        if node.type in FLOW_TYPES:
            return False
        trigger = node.trigger or node.type in TRIGGER_TYPES
        spec = specs.get(node.type)
        if spec is None and not trigger:
            return False
        if not trigger and spec is not None and spec.router is not None:
            if not spec.single_route:
                return False
        elif len(wf.normal_edges(node.id)) > 1:
            return False
    return True


def begin(store: StateStore, msg: NodeExecutionMessage, clock: Callable[[], int]) -> None:
    """At the first step (a message without a branch token or a start time): record the start
    and put it into `msg`, whose `started_at_ms` every next message copies."""
    if not msg.branch_token and msg.started_at_ms is UNSET:
        begun = clock()
        store.begin(msg.execution_id, begun)
        msg.started_at_ms = begun // 1_000_000


def close(
    store: StateStore,
    msg: NodeExecutionMessage,
    children: list[str],
    leaf_context: bytes | None,
    failure: Failure | None,
) -> Transition:
    """The transition of a single-branch step: it closes the execution when it fails or
    continues nowhere (`leaf_context` is its context then)."""
    if failure is None and children:
        return Transition(closed=False)
    started = started_at(store, msg)
    if failure is not None:
        return Transition(True, failure.status, failure.reason, started, [failure.context])
    contexts = [leaf_context] if leaf_context is not None else []
    return Transition(True, COMPLETED, "", started, contexts)


def started_at(store: StateStore, msg: NodeExecutionMessage) -> int:
    """When the execution started (epoch ns): the `started_at_ms` the first step put into
    the messages, else (a peer that does not carry it took a step) what `begin` recorded."""
    if isinstance(msg.started_at_ms, int) and msg.started_at_ms > 0:
        return msg.started_at_ms * 1_000_000
    return store.started_at(msg.execution_id)
