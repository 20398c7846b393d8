"""Planning a step (runeworker.engine.plan): the definition parsed once per distinct bytes, the
ledger mode chosen once, `blocking` for the stepper, and a message that cannot run planned with
its error; the stepper runs a blocking plan in its node thread and every other one inline."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pytest

from runeworker.child.stepper import Stepper
from runeworker.engine import plan
from runeworker.engine.executor import Executor
from runeworker.engine.ledger import Admitted, Arriving, Settled, SingleBranch
from runeworker.engine.messages import NodeExecutionMessage, NodeStatusMessage, encode
from runeworker.engine.plan import Definitions
from runeworker.engine.registry import NodeContext, node
from runeworker.engine.state import MemoryStore
from runeworker.engine.validation import structural_problems
from runeworker.engine.workflow import parse_definition

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
# a trigger by its flag alone, on a registered type, at the head of parallel branches
TRIGGERED = definition(
    [{**n("t"), "trigger": True}, n("a"), n("b"), n("m", "merge")],
    [("t", "a"), ("t", "b"), ("a", "m"), ("b", "m")],
)
FAN = definition(
    [n("a"), n("b"), n("c", "plan.slow"), n("m", "merge")],
    [("a", "b"), ("a", "c"), ("b", "m"), ("c", "m")],
)
SPLIT = definition(
    [n("s", "split", input_array=[1, 2]), n("i"), n("g", "aggregator")],
    [("s", "i"), ("i", "g")],
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
        (FAN, "m", {}, Arriving, False),  # a barrier: admitted, arrived and advanced at once
        (FAN, "m", {"replayed": True}, Admitted, False),  # a dead letter put back by hand
        (SPLIT, "s", {}, Settled, False),  # a split only routes: settled
        (FAN, "b", {"ghost": True}, Admitted, False),
        (FAN, "m", {"ghost": True}, Arriving, False),  # a ghost arrival at a barrier
        (FAN, "m", {"resumed": True}, Admitted, False),  # a merge's timer fired
        (TRIGGERED, "t", {}, Admitted, False),  # a trigger, whatever its type
        (TRIGGERED, "a", {}, Settled, False),
    ],
)
def test_the_plan_chooses_the_ledger_once(
    defn: bytes, current: str, keys: dict[str, Any], mode: type, blocking: bool
) -> None:
    executor = Executor(MemoryStore())
    # the parameters are shared by every run of the test in a process (mutmut runs it again):
    # read them, never pop them
    flags = {k: v for k, v in keys.items() if k != "ghost"}
    message = msg(defn, current, ghost=True) if keys.get("ghost") else msg(defn, current)
    plan = executor.plan(message, **flags)
    assert (plan.ledger, plan.blocking, plan.error) == (mode, blocking, "")
    assert plan.node.id == current and plan.workflow is not None
    assert plan.token == "root"


@pytest.mark.parametrize(
    ("defn", "current", "resumed", "error", "named"),
    [
        (b'{"nodes": [', "a", False, "workflow_definition: ", "a"),
        (definition([n("a")], [("a", "ghost")]), "a", False, "invalid workflow: ", "A"),
        (definition([n("a")], []), "zz", False, "current_node zz not found", "zz"),
        (definition([n("a")], []), "", False, "current_node  not found", "unknown"),
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
    assert (plan.ledger, plan.blocking, plan.spec) == (Admitted, False, None)
    assert (plan.workflow is None) == defn.startswith(b'{"nodes": [')  # parsed when it parses
    assert plan.node.label == named  # named when the definition names it, else by id
    outbox = executor.run(plan)
    assert [(s.node_name, s.status) for s in outbox.statuses] == [(named, "failed")]
    assert outbox.dead_letter == plan.error
    assert outbox.completion is not None and outbox.completion.status == "failed"
    assert (outbox.report.outcome, outbox.report.error) == ("failed", plan.error)


def test_a_refused_graph_is_failed_with_every_problem_validation_finds() -> None:
    defn = definition([n("a"), n("b")], [("a", "ghost"), ("b", "phantom")])
    problems = [str(p) for p in structural_problems(parse_definition(defn))]
    assert len(problems) == 2
    outbox = Executor(MemoryStore()).step(msg(defn, "b"))
    assert outbox.completion is not None
    assert outbox.completion.failure_reason == "invalid workflow: " + "; ".join(problems)


@pytest.mark.parametrize(
    ("defn", "current", "named"),
    [
        (FAN, "c", "C"),  # a blocking node: its plan would run it in the node thread
        (definition([n("a")], [("a", "ghost")]), "a", "A"),  # a refused graph: running, failed
    ],
)
def test_a_message_failed_as_bad_input_never_runs(defn: bytes, current: str, named: str) -> None:
    """`Plan.failing` (Executor.fail: poison, too large): whatever the message's own plan
    was, the failing plan runs inline, the admitted way, with the reason as its error, and
    publishes one `failed` status (no `running`: this is no refused graph)."""
    executor = Executor(MemoryStore())
    failing = executor.plan(msg(defn, current)).failing("poison")
    assert (failing.ledger, failing.blocking, failing.spec) == (Admitted, False, None)
    assert (failing.error, failing.refused) == ("poison", False)
    running: list[NodeStatusMessage] = []
    outbox = executor.run(failing, lambda status, _blocking: running.append(status))
    assert running == []
    assert [(s.node_name, s.status) for s in outbox.statuses] == [(named, "failed")]
    assert outbox.completion is not None and outbox.completion.failure_reason == "poison"


def test_a_message_that_cannot_run_fails_an_execution_already_under_way() -> None:
    """The failure is recorded against the message's own branch token: a later message of
    a running execution that names no node of its definition fails the execution."""
    executor = Executor(MemoryStore())
    first = executor.step(msg(FAN, "a"))
    assert first.completion is None and len(first.messages) == 2
    lost = msgspec.structs.replace(first.messages[0], current_node="zz")
    outboxes = [executor.step(m) for m in (lost, first.messages[1])]
    done = [o.completion for o in outboxes if o.completion is not None]
    assert len(done) == 1 and done[0].status == "failed"
    assert done[0].failure_reason == "current_node zz not found in workflow definition"


def test_an_unknown_node_type_is_dead_lettered() -> None:
    outbox = Executor(MemoryStore()).step(msg(definition([n("a", "nope")], []), "a"))
    assert outbox.dead_letter == "failed to create node of type nope"
    assert outbox.completion is not None and outbox.completion.status == "failed"
    assert outbox.report.node_type == "nope"


def test_each_definition_is_parsed_once_by_its_bytes() -> None:
    definitions = Definitions({}, max_steps=100, size=2)
    first = definitions.get(msgspec.Raw(bytes(CHAIN)))
    assert definitions.get(msgspec.Raw(bytes(bytearray(CHAIN)))) is first  # other bytes object
    assert first.error == ""
    broken = definitions.get(b'{"nodes": [')
    assert definitions.get(b'{"nodes": [') is broken and broken.workflow is None
    assert broken.error and broken.single_branch is False  # never planned single-branch
    refused = Definitions({}, max_steps=100).get(definition([n("a")], [("a", "ghost")]))
    assert refused.workflow is not None and refused.error and refused.single_branch is False
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


SECRET = "hunter2-s3cret"
BASIC = {"type": "basic_auth", "values": {"username": "alice", "password": SECRET}}
LOCKED = {**n("a"), "credentials": BASIC}


@pytest.mark.parametrize(
    ("defn", "reason"),
    [
        (definition([LOCKED, n("b")], [("a", "b")]), "poison"),  # Executor.fail
        (definition([LOCKED, n("b")], [("a", "b"), ("b", "ghost")]), ""),  # a refused graph
        (definition([LOCKED, n("b")], [("a", "b")]), ""),  # resumed at a node that is no wait
    ],
)
def test_a_step_that_cannot_run_masks_the_credentials_in_its_completion(
    defn: bytes, reason: str
) -> None:
    """Every completion masks the workflow's credential values in its final context, also
    the completion of a message that cannot run, whenever its definition can be read."""
    message = NodeExecutionMessage(
        "wf-1", "ex-1", "b", msgspec.Raw(defn), accumulated_context={"$echo": {"pw": SECRET}}
    )
    executor = Executor(MemoryStore())
    if reason:
        outbox = executor.fail(message, reason)
    else:
        outbox = executor.run(executor.plan(message, resumed=b"ghost" not in defn))
    assert outbox.completion is not None and outbox.completion.status == "failed"
    assert outbox.completion.final_context == {"$echo": {"pw": "***"}}
    assert SECRET.encode() not in b"".join(encode(s) for s in outbox.statuses)


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


def test_the_definition_asked_for_last_needs_no_lookup() -> None:
    """The steps of an execution ask for one definition in a row: the one asked for last is
    handed out again without a lookup, for the same object or for equal bytes in a Raw (the
    lookup would copy and hash them), and stays so after either."""
    definitions = Definitions({}, max_steps=100)
    raw = msgspec.Raw(bytes(CHAIN))
    chain = definitions.get(raw)
    definitions._cache.clear()  # only the shortcut can answer now without parsing again
    assert definitions.get(raw) is chain
    assert definitions.get(msgspec.Raw(bytes(bytearray(CHAIN)))) is chain
    assert definitions.get(raw) is chain
    assert definitions._cache == {}


def test_definitions_filling_the_byte_budget_exactly_are_all_kept() -> None:
    chain, fan = bytes(CHAIN), bytes(FAN)
    definitions = Definitions({}, max_steps=100, max_bytes=len(chain) + len(fan))
    first = definitions.get(chain)
    definitions.get(fan)
    assert definitions.kept_bytes == definitions.max_bytes and len(definitions._cache) == 2
    assert definitions.get(chain) is first


def test_the_definitions_kept_stay_within_their_byte_budget() -> None:
    """A definition is kept parsed (about ten times its bytes): 128 distinct large ones held
    hundreds of MB. Past `MAX_BYTES` of definitions the least recently used go, but the one
    asked for last is kept whatever its size (the next steps of its execution ask for it)."""
    definitions = Definitions({}, max_steps=100)
    pad = "x" * (plan.MAX_BYTES // 16)
    raws = [definition([n(f"a{i}", pad=pad)], []) for i in range(40)]
    for raw in raws:
        found = definitions.get(raw)
        assert found.error == "" and found.workflow is not None
        kept = definitions._cache
        assert sum(len(key) for key in kept) <= plan.MAX_BYTES and len(kept) <= definitions.size
        assert definitions.kept_bytes == sum(len(key) for key in kept)
    assert definitions.get(raws[-1]) is found  # the last ones are kept
    assert 8 <= len(definitions._cache) < 16
    tight = Definitions({}, max_steps=100, max_bytes=len(raws[0]) // 2)
    big = tight.get(raws[0])
    assert tight.get(raws[1]) is not big and tight.get(raws[0]) is not big  # one at a time
    assert len(tight._cache) == 1 and tight.kept_bytes == len(raws[0])
