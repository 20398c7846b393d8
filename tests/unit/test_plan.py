"""Planning a step (runeworker.engine.plan): the definition parsed once per distinct bytes, the
ledger mode chosen once, `blocking` for the stepper, and a message that cannot run planned with
its error; the stepper runs a blocking plan in its node thread and every other one inline."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pytest

from runeworker.child.stepper import Stepper
from runeworker.engine.executor import Executor
from runeworker.engine.ledger import Admitted, Settled, SingleBranch
from runeworker.engine.messages import NodeExecutionMessage, NodeStatusMessage
from runeworker.engine.plan import Definitions
from runeworker.engine.registry import NodeContext, node
from runeworker.engine.state import MemoryStore

TRIGGER = {"id": "t", "name": "T", "type": "ManualTrigger", "trigger": True}
RAN_IN: list[str] = []


@node("plan.where")
def _where(ctx: NodeContext) -> dict[str, Any]:
    RAN_IN.append(threading.current_thread().name)
    return {}


@node("plan.slow", blocking=True)
def _slow(ctx: NodeContext) -> dict[str, Any]:
    RAN_IN.append(threading.current_thread().name)
    return {}


def n(node_id: str, type_: str = "plan.where", **params: Any) -> dict[str, Any]:
    return {"id": node_id, "name": node_id.upper(), "type": type_, "parameters": params}


def definition(nodes: list[dict[str, Any]], edges: list[tuple[str, str]]) -> bytes:
    edge_list = [{"id": f"{s}>{d}", "src": s, "dst": d} for s, d in edges]
    return msgspec.json.encode({"nodes": nodes, "edges": edge_list})


def msg(defn: bytes, current: str, **keys: Any) -> NodeExecutionMessage:
    """A message built from fresh bytes, as every delivery is."""
    raw = msgspec.Raw(bytes(bytearray(defn)))
    return NodeExecutionMessage("wf-1", "ex-1", current, raw, accumulated_context={}, **keys)


CHAIN = definition([TRIGGER, n("a"), n("b", "plan.slow")], [("t", "a"), ("a", "b")])
FAN = definition(
    [n("a"), n("b"), n("c", "plan.slow"), n("m", "merge")],
    [("a", "b"), ("a", "c"), ("b", "m"), ("c", "m")],
)


@pytest.mark.parametrize(
    ("defn", "current", "keys", "mode", "blocking"),
    [
        (CHAIN, "a", {}, SingleBranch, False),
        (CHAIN, "b", {}, SingleBranch, True),  # single-branch and blocking: the node thread
        (CHAIN, "t", {}, SingleBranch, False),
        (CHAIN, "a", {"replayed": True}, Settled, False),  # a dead letter put back by hand
        (FAN, "a", {}, Settled, False),  # a quick node of parallel branches
        (FAN, "c", {}, Admitted, True),  # blocking: its verdict comes before `running`
        (FAN, "m", {}, Admitted, False),  # flow control
        (FAN, "b", {"ghost": True}, Admitted, False),
        (FAN, "m", {"resumed": True}, Admitted, False),  # a merge's timer fired
    ],
)
def test_the_plan_chooses_the_ledger_once(
    defn: bytes, current: str, keys: dict[str, Any], mode: type, blocking: bool
) -> None:
    executor = Executor(MemoryStore())
    ghost = keys.pop("ghost", None)
    message = msg(defn, current, ghost=ghost) if ghost else msg(defn, current)
    plan = executor.plan(message, **keys)
    assert (plan.ledger, plan.blocking, plan.error) == (mode, blocking, "")
    assert plan.node.id == current and plan.workflow is not None
    assert plan.token == "root"


@pytest.mark.parametrize(
    ("defn", "current", "resumed", "error", "named"),
    [
        (b'{"nodes": [', "a", False, "workflow_definition: ", "a"),
        (definition([n("a")], [("a", "ghost")]), "a", False, "invalid workflow: ", "A"),
        (definition([n("a")], []), "zz", False, "current_node zz not found", "zz"),
        (CHAIN, "a", True, "resume message names node a, which is not a wait node", "A"),
    ],
)
def test_a_message_that_cannot_run_is_planned_with_its_error(
    defn: bytes, current: str, resumed: bool, error: str, named: str
) -> None:
    executor = Executor(MemoryStore())
    message = msg(defn, current)
    plan = executor.plan(message, resumed=resumed)
    assert plan.error.startswith(error)
    assert (plan.ledger, plan.blocking, plan.workflow) == (Admitted, False, None)
    assert plan.node.label == named  # named when the definition names it, else by id
    outbox = executor.run(plan)
    assert [(s.node_name, s.status) for s in outbox.statuses] == [(named, "failed")]
    assert outbox.dead_letter == plan.error
    assert outbox.completion is not None and outbox.completion.status == "failed"
    assert (outbox.report.outcome, outbox.report.error) == ("failed", plan.error)


def test_an_unknown_node_type_is_dead_lettered() -> None:
    outbox = Executor(MemoryStore()).step(msg(definition([n("a", "nope")], []), "a"))
    assert outbox.dead_letter == "failed to create node of type nope"
    assert outbox.completion is not None and outbox.completion.status == "failed"
    assert outbox.report.node_type == "nope"


def test_each_definition_is_parsed_once_by_its_bytes() -> None:
    definitions = Definitions({}, max_steps=100, size=2)
    first = definitions.get(msgspec.Raw(bytes(CHAIN)))
    assert definitions.get(msgspec.Raw(bytes(bytearray(CHAIN)))) is first  # other bytes object
    broken = definitions.get(b'{"nodes": [')
    assert definitions.get(b'{"nodes": [') is broken and broken.workflow is None
    assert definitions.get(CHAIN) is first  # used last: kept
    definitions.get(FAN)  # a third definition drops the least recently used one (broken)
    assert definitions.get(CHAIN) is first
    assert definitions.get(b'{"nodes": [') is not broken


def test_the_stepper_runs_a_blocking_plan_in_its_node_thread() -> None:
    executor = Executor(MemoryStore())
    stepper = Stepper(executor, idle_interval=0.01)
    published: list[tuple[str, bool]] = []

    def publish(status: NodeStatusMessage, blocking: bool) -> None:
        published.append((status.node_name, blocking))

    try:
        RAN_IN.clear()
        quick = stepper.run(msg(CHAIN, "a"), publish, lambda: None)
        slow = stepper.run(msg(CHAIN, "b"), publish, lambda: None)
    finally:
        stepper.close()
    assert RAN_IN[0] == threading.current_thread().name
    assert RAN_IN[1] != threading.current_thread().name and RAN_IN[1].startswith("node")
    assert published == [("A", False), ("B", True)]  # `running` of b: committed at once
    assert [s.status for s in quick.statuses + slow.statuses] == ["success", "success"]


def test_the_definition_asked_for_last_is_compared_by_its_bytes() -> None:
    """The shortcut for the definition asked for last must never hand it out for other
    bytes, in a Raw or not, of the same length or not."""
    definitions = Definitions({}, max_steps=100, size=4)
    chain = definitions.get(msgspec.Raw(bytes(CHAIN)))
    fan = definitions.get(msgspec.Raw(bytes(FAN)))
    assert fan is not chain and fan.workflow is not None and chain.workflow is not None
    assert definitions.get(msgspec.Raw(bytes(CHAIN))) is chain
    assert definitions.get(msgspec.Raw(bytes(CHAIN))) is chain  # the same, twice in a row
    same_length = bytes(CHAIN).replace(b'"a"', b'"x"', 1)
    assert len(same_length) == len(bytes(CHAIN)) and same_length != bytes(CHAIN)
    other = definitions.get(msgspec.Raw(same_length))
    assert other is not chain and other.workflow is not None
    assert [n.id for n in other.workflow.nodes] != [n.id for n in chain.workflow.nodes]
    assert definitions.get(bytes(FAN)) is fan  # plain bytes after a Raw
