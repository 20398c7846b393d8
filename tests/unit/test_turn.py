"""One step taken by the executor (`runeworker.engine.executor.Turn`), path by path, seen from
what it publishes and what it reports: the `Report` behind the metrics (outcome, error, node
type, seconds) on every path, the `NodeContext` a node is given, how a node's failures become
its `failed` status, the `running` statuses handed to the caller, triggers, the step limit of an
admitted step, the branch tokens of next messages, and the credentials a template can read."""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
import pytest
from flowkit import TRIGGER, Run, definition, drive, n, start, step

from runeworker.config import WorkerConfig
from runeworker.engine import depth
from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, NodeStatusMessage, StackFrame, encode
from runeworker.engine.outbox import completion
from runeworker.engine.registry import NodeContext, NodeSettings, node
from runeworker.engine.state import MemoryStore, Verdict, child_token
from runeworker.errors import NodeError

SEEN: list[NodeContext] = []


@node("turn.sees")
def _sees(ctx: NodeContext) -> dict[str, Any]:
    """Keeps the context it was given; outputs what a node reads from it."""
    SEEN.append(ctx)
    return {
        "workflow_id": ctx.workflow_id,
        "execution_id": ctx.execution_id,
        "from_node": ctx.from_node,
        "items": [f.item_index for f in ctx.lineage],
        "keys": sorted(ctx.context),
        "nodes": [x.id for x in ctx.workflow.nodes],
        "params": ctx.params,
    }


@node("turn.raw", raw=("expr",))
def _raw(ctx: NodeContext) -> dict[str, Any]:
    return {"expr": ctx.params.get("expr"), "value": ctx.params.get("value")}


@node("turn.coded")
def _coded(ctx: NodeContext) -> dict[str, Any]:
    raise NodeError("quota exceeded", "QUOTA", {"limit": 3})


@node("turn.bug")
def _bug(ctx: NodeContext) -> dict[str, Any]:
    raise ValueError("boom")


@node("turn.list")
def _list(ctx: NodeContext) -> Any:
    return [1, 2]


@node("turn.deep")
def _deep(ctx: NodeContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(depth.MAX_DEPTH + 5):
        out = {"x": out}
    return out


@node("turn.sleep")
def _sleep(ctx: NodeContext) -> dict[str, Any]:
    time.sleep(0.02)  # the node's work: what the durations measure
    return {}


EVENTS: list[tuple[str, ...]] = []


@node("turn.slow", blocking=True)
def _slow(ctx: NodeContext) -> dict[str, Any]:
    EVENTS.append(("ran", ctx.node.id))
    return {}


@node("turn.leaky_bug")
def _leaky_bug(ctx: NodeContext) -> dict[str, Any]:
    raise ValueError(f"request refused for key={ctx.credentials['key']}")


@node("turn.echo_secret")
def _echo_secret(ctx: NodeContext) -> dict[str, Any]:
    return {"echo": ctx.params["say"]}


FAN = definition([n("a"), n("b"), n("c")], [("e0", "a", "b"), ("e1", "a", "c")])


def single(defn: bytes, current: str = "a", **keys: Any) -> tuple[Executor, Any]:
    executor = Executor(MemoryStore(), **keys)
    return executor, executor.step(start(defn, current, {"$x": 1}))


# -- the report of every path --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "outcome", "error"),
    [
        ([n("a")], "success", ""),
        ([n("a", "flow.fail", value=7)], "failed", "refused 7"),  # halts the execution
        ([n("a", "flow.fail", value=7, error={"type": "ignore"})], "handled", "refused 7"),
        ([{**TRIGGER, "id": "a"}], "skipped", ""),  # a trigger runs nothing
    ],
)
def test_the_report_names_the_outcome_and_the_error(
    nodes: list[dict[str, Any]], outcome: str, error: str
) -> None:
    _, outbox = single(definition(nodes))
    assert (outbox.report.outcome, outbox.report.error) == (outcome, error)
    assert outbox.report.node_type == nodes[0]["type"]


@pytest.mark.parametrize(
    ("defn", "current", "error"),
    [
        (definition([n("a")]), "zz", "current_node zz not found in workflow definition"),
        (definition([n("a")], [("e0", "a", "ghost")]), "a", "invalid workflow: "),  # refused
    ],
)
def test_the_report_of_a_message_that_cannot_run_names_no_node_type(
    defn: bytes, current: str, error: str
) -> None:
    _, outbox = single(defn, current)
    report = outbox.report
    assert (report.node_type, report.outcome) == ("", "failed")
    assert report.error.startswith(error)
    assert [s.duration_ms for s in outbox.statuses if s.status == "failed"] == [0]


def test_a_flow_control_error_is_published_with_the_default_code() -> None:
    """An aggregator outside any split fails (the flow's own check, engine/flow.py) with the
    code every node error has unless it names one, and no details."""
    _, outbox = single(definition([n("a", "aggregator")]))
    error = msgspec.json.decode(encode(outbox.statuses[-1]))["error"]
    assert error["code"] == "NODE_EXECUTION_FAILED" and "details" not in error
    assert error["message"].startswith("aggregator node A must be executed within a split")


def test_the_default_step_limit_is_the_configurations() -> None:
    """`runeworker run` and the worker pass the configured limit; an executor built without
    one (the embedded runner's default, benchmarks) has the configuration's default."""
    assert Executor(MemoryStore()).max_steps == WorkerConfig().max_steps


def test_a_skipped_step_reports_skipped() -> None:
    """A stale token and a ghost at a node that is no barrier are skipped (the admitted way);
    a quick node that ran for a stale token drops its error too (the settled way)."""
    executor = Executor(MemoryStore())
    first = executor.step(start(FAN, "a"))
    ghost = msgspec.structs.replace(first.messages[0], ghost=True)
    for msg in (ghost, msgspec.structs.replace(first.messages[1], branch_token="nope")):
        skipped = executor.step(msg)
        assert (skipped.report.outcome, skipped.statuses, skipped.messages) == ("skipped", [], [])
    fan_edges = [("e0", "a", "b"), ("e1", "a", "c")]
    failing = definition([n("a"), n("b", "flow.fail"), n("c")], fan_edges)
    first = executor.step(start(failing, "a", execution_id="ex-2"))
    stale = executor.step(msgspec.structs.replace(first.messages[0], branch_token="nope"))
    assert stale.report.verdict is Verdict.STALE and stale.report.ledger == "settled"
    assert (stale.report.outcome, stale.report.error, stale.statuses) == ("skipped", "", [])


def test_a_ghost_of_a_running_execution_ends_quietly_without_a_leaf() -> None:
    """A ghost that reaches a node that is no barrier is absorbed: it adds nothing to the
    final context and the execution completes with the real branch."""
    defn = definition([n("a"), n("b"), n("c", value="$x")], [("e0", "a", "b"), ("e1", "a", "c")])
    executor, run = Executor(MemoryStore()), Run()
    first = step(executor, start(defn, "a", {"$x": 1}), run)
    ghost = msgspec.structs.replace(first.messages[0], ghost=True, accumulated_context={"$g": 1})
    step(executor, ghost, run)
    drive(first.messages[1], executor=executor, run=run)
    assert run.completion.status == "completed"
    assert run.completion.final_context == {"$x": 1, "$A": {"value": None}, "$C": {"value": 1}}


def test_durations_are_those_of_the_step() -> None:
    """The step's seconds and the status's duration_ms measure the node's work, and neither is
    more than the time the step took (measured around it)."""
    executor = Executor(MemoryStore())
    for defn in (definition([n("a", "turn.sleep")]), definition([n("a", "turn.sleep"),
                 n("b", "flow.fail")], [("e0", "a", "b")])):  # fmt: skip
        began = time.monotonic_ns()
        outbox = executor.step(start(defn, "a"))
        took = time.monotonic_ns() - began
        assert 0.02 <= outbox.report.seconds <= took / 1e9
        [done] = outbox.statuses
        assert 20 <= done.duration_ms <= took // 1_000_000


# -- what a node is given ------------------------------------------------------------------------


def test_a_node_is_given_its_execution_its_inputs_and_the_workers_services() -> None:
    settings, meter = NodeSettings(http_default_timeout=7.0), object()
    store = MemoryStore()
    executor = Executor(store, settings=settings, meter=meter)  # type: ignore[arg-type]
    defn = definition([n("a"), n("b", "turn.sees", got="$x")], [("e0", "a", "b")])
    frame = StackFrame("s", "ex-1_s_1", 1, 2)
    msg = msgspec.structs.replace(start(defn, "a", {"$x": 1}), lineage_stack=[frame])
    SEEN.clear()
    run = drive(msg, executor=executor)
    assert run.outputs("B") == [
        {"workflow_id": "wf-1", "execution_id": "ex-1", "from_node": "a", "items": [1],
         "keys": ["$A", "$x"], "nodes": ["a", "b"], "params": {"got": 1}}]  # fmt: skip
    [ctx] = SEEN
    assert (ctx.state, ctx.meter) == (store, meter) and ctx.settings is settings
    first = drive(start(definition([n("a", "turn.sees")]), "a"), executor=executor)
    assert first.outputs("A")[0]["from_node"] == ""  # a master message comes from no node


def test_parameters_a_node_interprets_itself_reach_it_unresolved() -> None:
    defn = definition([n("a", "turn.raw", expr="$x + 1", value="$x")])
    _, outbox = single(defn)
    assert outbox.statuses[0].output == {"expr": "$x + 1", "value": 1}


def test_a_reference_may_name_a_node_by_its_id() -> None:
    """`$<id>.field` finds `$<name>` (docs/WIRE.md, the context)."""
    defn = definition([n("a", value=5), n("b", value="$a.value")], [("e0", "a", "b")])
    run = drive(start(defn, "a"))
    assert run.outputs("B") == [{"value": 5}]


def test_a_template_reads_the_credential_values_not_the_credential_type() -> None:
    cred = {"type": "basic_auth", "values": {"username": "alice", "password": "pw-1234"}}
    who = {**n("a", value="$credential.username"), "credentials": cred}
    kind = {**n("a", value="$credential.type"), "credentials": cred}
    _, outbox = single(definition([who]))
    assert outbox.statuses[0].output == {"value": "alice"}
    _, outbox = single(definition([kind]))
    assert [s.status for s in outbox.statuses] == ["failed"]


def test_credentials_embedded_in_parameters_are_masked_in_what_the_node_returns() -> None:
    secret = "tool-secret-123456"
    tools = [{"name": "t", "credentials": {"type": "api_key", "values": {"key": secret}}}]
    defn = definition([n("a", "turn.echo_secret", tools=tools, say=f"key={secret}")])
    _, outbox = single(defn)
    assert outbox.statuses[0].output == {"echo": "key=***"}
    assert secret.encode() not in encode(outbox.statuses[0])


# -- how a node fails ----------------------------------------------------------------------------


def test_a_node_error_keeps_its_code_and_details() -> None:
    _, outbox = single(definition([n("a", "turn.coded")]))
    error = msgspec.json.decode(encode(outbox.statuses[0]))["error"]
    assert error == {"message": "quota exceeded", "code": "QUOTA", "details": {"limit": 3}}


def test_a_node_that_breaks_fails_with_what_broke(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runeworker.executor")
    _, outbox = single(definition([n("node-7", "turn.bug")]), "node-7")
    assert outbox.statuses[0].error.message == "ValueError: boom"  # type: ignore[union-attr]
    raised, failed = caplog.records  # the traceback, then the failure
    assert raised.exc_info is not None
    assert raised.getMessage() == "node node-7 (turn.bug) raised"
    assert failed.getMessage() == (
        "node node-7 (turn.bug) of execution ex-1 failed: ValueError: boom"
    )


def test_a_traceback_that_may_quote_credentials_is_logged_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With credentials to hide, the traceback is rendered, masked and logged as the message
    (no `exc_info` a handler would render unmasked)."""
    caplog.set_level(logging.WARNING, logger="runeworker.executor")
    secret = "sk-live-0123456789"
    cred = {"type": "api_key", "values": {"key": secret}}
    _, outbox = single(definition([{**n("a", "turn.leaky_bug"), "credentials": cred}]))
    says = "ValueError: request refused for key=***"
    assert outbox.statuses[0].error.message == says  # type: ignore[union-attr]
    raised, failed = caplog.records
    text = raised.getMessage()
    assert raised.exc_info is None and secret not in text
    head = "node a (turn.leaky_bug) raised\nTraceback (most recent call last):\n  File "
    assert text.startswith(head) and text.endswith(f"\n{says}")  # whole lines, nothing after
    assert failed.getMessage() == f"node a (turn.leaky_bug) of execution ex-1 failed: {says}"


class _Ticks:
    """A monotonic clock that moves exactly one second at every reading."""

    def __init__(self) -> None:
        self.now = 0

    def monotonic_ns(self) -> int:
        self.now += 1_000_000_000
        return self.now


@pytest.mark.parametrize("type_", ["noop", "flow.fail"])
def test_durations_are_whole_milliseconds_and_seconds_of_the_clock(
    type_: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's duration is read at its status (one second after the node's start on this
    clock), the step's seconds at its end (three seconds after the step's start), exactly."""
    from runeworker.engine import executor as executor_module

    monkeypatch.setattr(executor_module, "time", _Ticks())
    _, outbox = single(definition([n("a", type_)]))
    [done] = outbox.statuses
    assert done.duration_ms == 1000
    assert outbox.report.seconds == 3.0


@pytest.mark.parametrize(
    ("type_", "says"),
    [("turn.list", "returned list"), ("turn.deep", depth.TOO_DEEP)],
)
def test_an_output_that_is_no_object_or_too_deep_fails_the_node(type_: str, says: str) -> None:
    _, outbox = single(definition([n("a", type_)]))
    assert outbox.statuses[0].status == "failed"
    assert says in outbox.statuses[0].error.message  # type: ignore[union-attr]
    assert outbox.completion is not None and outbox.completion.status == "halted"


def test_every_parameter_that_does_not_resolve_is_named() -> None:
    _, outbox = single(definition([n("a", first="$nope.x", second="$none.y")]))
    message = outbox.statuses[0].error.message  # type: ignore[union-attr]
    assert message.startswith("parameter 'first': ") and "; parameter 'second': " in message
    assert "$nope.x" in message and "$none.y" in message


# -- running statuses handed to the caller -------------------------------------------------------


@pytest.mark.parametrize(
    ("defn", "current"),
    [
        (definition([n("a", "no.such.type")]), "a"),  # running, then failed at creation
        (definition([n("a")], [("e0", "a", "ghost")]), "a"),  # a refused graph, likewise
    ],
)
def test_a_running_status_of_a_node_that_never_runs_is_not_blocking(
    defn: bytes, current: str
) -> None:
    handed: list[tuple[str, bool]] = []

    def on_running(status: NodeStatusMessage, blocking: bool) -> None:
        handed.append((status.status, blocking))

    outbox = Executor(MemoryStore()).step(start(defn, current), on_running)
    assert handed == [("running", False)]
    assert [s.status for s in outbox.statuses] == ["failed"]


# -- triggers, the step limit, tokens ------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        {"id": "t", "name": "T", "type": "turn.sees", "trigger": True},  # by its flag
        {"id": "t", "name": "T", "type": "ManualTrigger"},  # by its type
    ],
)
def test_a_trigger_publishes_nothing_and_routes_on(trigger: dict[str, Any]) -> None:
    defn = definition([trigger, n("a")], [("e0", "t", "a")])
    executor = Executor(MemoryStore())
    outbox = executor.step(start(defn, "t"))
    assert (outbox.statuses, outbox.report.outcome) == ([], "skipped")
    assert [m.current_node for m in outbox.messages] == ["a"]


def test_an_admitted_step_at_the_limit_fails_before_running() -> None:
    """max_steps 1: the quick first node runs (settled); the blocking node after it is
    admitted at one step taken and fails at the limit without running."""
    defn = definition([n("a"), n("b", "turn.slow"), n("c")], [("e0", "a", "b"), ("e1", "a", "c")])
    executor = Executor(MemoryStore(), max_steps=1)
    first = executor.step(start(defn, "a"))
    limited = executor.step(first.messages[0])
    assert limited.report.ledger == "admitted"
    assert [(s.node_name, s.status) for s in limited.statuses] == [("B", "failed")]
    assert limited.report.error == "execution exceeded the maximum of 1 steps"


def test_a_settled_step_at_the_limit_is_reported_admitted() -> None:
    executor = Executor(MemoryStore(), max_steps=1)
    first = executor.step(start(FAN, "a"))
    limited = executor.step(first.messages[0])
    assert limited.report.ledger == "admitted"
    assert [(s.node_name, s.status) for s in limited.statuses] == [("B", "failed")]


def test_next_messages_carry_tokens_derived_from_their_parent_and_destination() -> None:
    """Tokens are persisted (state store keys, messages in flight): a peer of another version
    must derive the same ones, from the parent's token, the emit's index and its node."""
    executor = Executor(MemoryStore())
    first = executor.step(start(FAN, "a"))
    assert [m.branch_token for m in first.messages] == [
        child_token("root", 0, "b"), child_token("root", 1, "c")]  # fmt: skip
    later: NodeExecutionMessage = first.messages[0]
    assert [m.branch_token for m in executor.step(later).messages] == []  # b ends its branch


class Arrivals(MemoryStore):
    """A MemoryStore that keeps the branch token of every merge arrival it records."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[str] = []

    def merge_arrive(self, *args: Any, **kwargs: Any) -> Any:
        self.tokens.append(args[4])  # (execution, merge, scope, parent, token, ...)
        return super().merge_arrive(*args, **kwargs)


def test_a_merge_timer_arrives_with_the_token_of_its_message() -> None:
    """The fired timer is an arrival of its own at the barrier, under the timer message's
    token: a redelivered timer is recognised by it."""
    merge = {"id": "m", "name": "M", "type": "merge", "parameters": {"timeout": 30}}
    defn = definition([n("a"), n("b"), merge], [("e0", "a", "m"), ("e1", "a", "b"),
                      ("e2", "b", "m")])  # fmt: skip
    store = Arrivals()
    executor, run = Executor(store), Run()
    first = step(executor, start(defn, "a"), run)
    step(executor, first.messages[0], run)  # a arrives at m; m waits, its timer is armed
    [timer] = store.claim_due(time.time_ns() // 1_000_000 + 60_000, 10, 60_000)
    fired = msgspec.json.decode(timer.payload, type=NodeExecutionMessage)
    outbox = step(executor, fired, run, resumed=True)
    assert outbox.report.outcome == "failed"  # the barrier still waited for b
    assert store.tokens[-1] == fired.branch_token


# -- what is published ---------------------------------------------------------------------------


def test_every_status_names_the_workflow_and_the_execution() -> None:
    run = drive(start(FAN, "a", execution_id="ex-9"))
    assert {(s.workflow_id, s.execution_id) for s in run.statuses} == {("wf-1", "ex-9")}


def test_a_status_masks_the_nodes_credentials_whatever_computed_its_output() -> None:
    """An aggregator's output is built from its branches, not returned by a node: it is
    masked when its status is built."""
    secret = "pw-secret-99"
    cred = {"type": "basic_auth", "values": {"username": "alice", "password": secret}}
    agg = {**n("agg", "aggregator"), "credentials": cred}
    nodes = [n("split", "split", input_array=[secret, "x"]), n("b", value="$item"), agg]
    run = drive(start(definition(nodes, [("e0", "split", "b"), ("e1", "b", "agg")]), "split"))
    [released] = [o for o in run.outputs("AGG") if "aggregated" in o]
    assert released["aggregated"] == [{"value": "***"}, {"value": "x"}]


def test_the_completion_masks_credentials_embedded_in_parameters() -> None:
    secret = "tool-secret-123456"
    tools = [{"name": "t", "credentials": {"type": "api_key", "values": {"key": secret}}}]
    defn = definition([n("a", tools=tools), n("b", value="$input")], [("e0", "a", "b")])
    run = drive(start(defn, "a", {"$input": f"echo {secret}"}))
    assert run.completion.final_context["$B"] == {"value": "echo ***"}


def test_a_context_that_does_not_decode_is_left_out_of_the_final_context() -> None:
    msg = start(FAN, "a")
    done = completion(msg, "completed", [b"{not json", b'{"$a": 1}', b'{"$b": 2}'], 0, 0, "", None)
    assert done.final_context == {"$a": 1, "$b": 2}


def test_a_blocking_node_hands_its_running_status_over_before_it_runs() -> None:
    """A node that may block has its `running` committed before it starts: the caller gets
    it at once, marked blocking; the node runs after."""
    defn = definition([n("a"), n("b", "turn.slow"), n("c")], [("e0", "a", "b"), ("e1", "a", "c")])
    executor = Executor(MemoryStore())
    first = executor.step(start(defn, "a"))
    EVENTS.clear()

    def on_running(status: NodeStatusMessage, blocking: bool) -> None:
        EVENTS.append(("handed", status.node_name, status.status, str(blocking)))

    outbox = executor.step(first.messages[0], on_running)
    assert outbox.report.ledger == "admitted"
    assert EVENTS == [("handed", "B", "running", "True"), ("ran", "b")]
    assert [s.status for s in outbox.statuses] == ["success"]


# -- a wait's resume that finds its token not parked yet (Turn._resume_early) --------------


WAITING = definition(
    [{"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 0}}, n("after")],
    [("e1", "pause", "after")],
)
DUE_MS = 1_700_000_000_000


def overtaking(frozen: Any) -> NodeExecutionMessage:
    """A resume message of the wait `pause` whose branch token no advance ever made live."""
    msg = start(WAITING, "pause", {"$Pause": frozen})
    return msgspec.structs.replace(msg, branch_token="parked-later", is_worker_initiated=True)


def resumed_at(store: MemoryStore, msg: NodeExecutionMessage, now_ms: int) -> Any:
    """Open the execution, then step `msg` as a resume at wall-clock `now_ms`."""
    store.admit(msg.execution_id, "root", 0)
    executor = Executor(store, clock=lambda: now_ms * 1_000_000 + 123_456)
    return executor.step(msg, resumed=True)


@pytest.mark.parametrize("late_ms", [0, 30_000, 60_000])
def test_an_early_resume_is_scheduled_again_a_second_later(
    late_ms: int, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    msg = overtaking({"resume_at": DUE_MS, "timer_id": "t-pause"})
    with caplog.at_level(logging.INFO, logger="runeworker.executor"):
        outbox = resumed_at(store, msg, DUE_MS + late_ms)
    again = DUE_MS + late_ms + 1_000
    assert caplog.messages == [
        f"wait pause of execution ex-1 resumed before it parked; again at {again}"
    ]
    assert outbox.report.verdict is Verdict.STALE and outbox.report.outcome == "skipped"
    assert (outbox.statuses, outbox.messages, outbox.completion) == ([], [], None)
    assert store.next_due() == DUE_MS + late_ms + 1_000
    [timer] = store.claim_due(DUE_MS + late_ms + 1_000, 10, 1_000)
    assert timer.timer_id == "t-pause" and timer.payload == encode(msg)
    assert store.timers_of(msg.execution_id) == {"t-pause"}  # a failure would cancel it


@pytest.mark.parametrize(
    "frozen",
    [
        {"resume_at": DUE_MS, "timer_id": "t-pause"},  # due more than a minute ago
        {"resume_at": DUE_MS + 60_000, "timer_id": 7},  # an id that is no text
        {"resume_at": True, "timer_id": "t-pause"},  # a due time that is no integer
        {"resume_at": str(DUE_MS + 60_000), "timer_id": "t-pause"},
        {"timer_id": "t-pause"},
        ["not", "an", "object"],
    ],
)
def test_a_stale_resume_that_cannot_be_a_wait_overtaken_is_dropped(frozen: Any) -> None:
    store = MemoryStore()
    outbox = resumed_at(store, overtaking(frozen), DUE_MS + 60_001)
    assert outbox.report.verdict is Verdict.STALE and outbox.report.outcome == "skipped"
    assert (outbox.statuses, outbox.messages, outbox.completion) == ([], [], None)
    assert store.next_due() is None


def test_only_a_resumed_wait_is_scheduled_again() -> None:
    """A stale message of the wait that is no resume is dropped as any stale message."""
    store = MemoryStore()
    frozen = {"resume_at": DUE_MS, "timer_id": "t-pause"}
    store.admit("ex-1", "root", 0)
    executor = Executor(store, clock=lambda: DUE_MS * 1_000_000)
    assert executor.step(overtaking(frozen)).report.verdict is Verdict.STALE
    assert store.next_due() is None
