"""The executor against the wire contract (docs/WIRE.md) and the behaviour of upstream's
services/rune-worker/pkg/executor/, with the differences listed in docs/WIRE.md section 14.

Every test drives real steps through their JSON encoding, as on the wire, and asserts the exact
sequence of (node name, status), the exact wire keys and the exact final context.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest

from runeworker.engine import depth, ledger
from runeworker.engine.executor import Executor
from runeworker.engine.messages import (
    CompletionMessage,
    NodeExecutionMessage,
    NodeStatusMessage,
    StackFrame,
    decode_execution,
    encode,
    frames,
)
from runeworker.engine.outbox import Outbox, completion
from runeworker.engine.registry import NodeContext, node
from runeworker.engine.state import MemoryStore, Verdict
from runeworker.engine.workflow import parse_definition
from runeworker.errors import NodeError
from runeworker.nodes.conditional import route_conditional
from runeworker.nodes.switch import route_switch

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$")
STATUS_KEYS = {"workflow_id", "execution_id", "node_id", "node_name", "status", "executed_at"}
STATUS_KEYS |= {"duration_ms"}
LINEAGE_KEYS = {"branch_id", "split_node_id", "item_index", "total_items", "lineage_stack"}
COMPLETION_KEYS = {"workflow_id", "execution_id", "status", "final_context", "completed_at"}
COMPLETION_KEYS |= {"total_duration_ms"}
NEXT_KEYS = {"workflow_id", "execution_id", "current_node", "workflow_definition", "from_node"}
NEXT_KEYS |= {"workflow_version", "workflow_version_id", "accumulated_context", "branch_token"}
NEXT_KEYS |= {"is_worker_initiated", "started_at_ms"}
UUID = "5f0c6d3e-8a59-4d0b-9a57-0e1f0d9c1a11"
PASSWORD = "hunter2-s3cret"
BASIC = {"type": "basic_auth", "values": {"username": "alice", "password": PASSWORD}}
TRIGGER = {"id": "trigger", "name": "Start", "type": "ManualTrigger", "trigger": True}

# -- test node types ---------------------------------------------------------------------------


@node("test.ok")
def _ok(ctx: NodeContext) -> dict[str, Any]:
    return {"ran": ctx.node.id}


@node("test.fail")
def _fail(ctx: NodeContext) -> dict[str, Any]:
    raise NodeError(str(ctx.params.get("message", "boom")))


@node("test.sleep")
def _sleep(ctx: NodeContext) -> dict[str, Any]:
    time.sleep(0.05)  # the node's work: the real duration is what the test measures
    return {"slept_ms": 50}


@node("test.raises")
def _crash(ctx: NodeContext) -> dict[str, Any]:
    """A node bug whose exception quotes the credential it was given (a client library's
    error echoing a request, say), chained to another that does too."""
    secret = ctx.credentials.get("password")
    try:
        raise KeyError(f"no account for {secret}")
    except KeyError as exc:
        raise RuntimeError(f"login with {secret} failed") from exc


@node("test.credentials")
def _credentials(ctx: NodeContext) -> dict[str, Any]:
    return {"credentials": dict(ctx.credentials)}


# -- helpers -----------------------------------------------------------------------------------


def n(node_id: str, type_: str = "test.ok", **keys: Any) -> dict[str, Any]:
    """A node whose name is its id in capitals, unless `keys` says otherwise."""
    return {"id": node_id, "name": node_id.upper(), "type": type_, **keys}


def definition(nodes: list[dict[str, Any]], edges: Sequence[tuple[str, str, str]] = ()) -> bytes:
    edge_list = [{"id": i, "src": s, "dst": d} for i, s, d in edges]
    return msgspec.json.encode({"nodes": nodes, "edges": edge_list})


def chain(*ids: str) -> list[tuple[str, str, str]]:
    return [(f"e{i}", a, b) for i, (a, b) in enumerate(itertools.pairwise(ids))]


def start(defn: bytes, current: str, ctx: dict[str, Any] | None = None) -> NodeExecutionMessage:
    """A master message (no from_node, no is_worker_initiated, no branch token)."""
    return NodeExecutionMessage("wf-1", "ex-1", current, msgspec.Raw(defn), accumulated_context=ctx)


def ok(*names: str) -> list[tuple[str, str]]:
    """The trail of nodes that succeeded, in order."""
    return [(name, st) for name in names for st in ("running", "success")]


def bad(name: str) -> list[tuple[str, str]]:
    return [(name, "running"), (name, "failed")]


def trail(statuses: list[NodeStatusMessage]) -> list[tuple[str, str]]:
    return [(s.node_name, s.status) for s in statuses]


def wire(obj: Any) -> dict[str, Any]:
    decoded = msgspec.json.decode(encode(obj))
    assert isinstance(decoded, dict)
    return decoded


@dataclass
class Run:
    statuses: list[NodeStatusMessage] = field(default_factory=list)
    messages: list[NodeExecutionMessage] = field(default_factory=list)
    completions: list[CompletionMessage] = field(default_factory=list)

    @property
    def trail(self) -> list[tuple[str, str]]:
        return trail(self.statuses)

    @property
    def completion(self) -> CompletionMessage:
        assert len(self.completions) == 1, self.completions
        return self.completions[0]

    @property
    def outcome(self) -> tuple[str, str | None]:
        done = self.completion
        return done.status, (done.failure_reason or None)


def step(executor: Executor, msg: NodeExecutionMessage, run: Run) -> Outbox:
    result = executor.step(msg, lambda status, _blocking: run.statuses.append(status))
    run.statuses += result.statuses
    run.messages += result.messages
    if result.completion is not None:
        run.completions.append(result.completion)
    return result


def drive(msg: NodeExecutionMessage, executor: Executor | None = None) -> Run:
    """Every message until none is left, breadth first, through the JSON encoding."""
    executor = executor or Executor(MemoryStore())
    run = Run()
    queue = deque([encode(msg)])
    while queue:
        result = step(executor, decode_execution(queue.popleft()), run)
        queue.extend(encode(m) for m in result.messages)
    check_schema(run, in_split=bool(frames(msg)))
    return run


def check_schema(run: Run, in_split: bool) -> None:
    """docs/WIRE.md 4.1 and 5: required keys, timestamp form, integer durations, and the keys
    that must be absent (lineage outside splits, failure_reason of a completed execution)."""
    for status in run.statuses:
        keys = set(wire(status))
        assert keys >= STATUS_KEYS
        assert ("error" in keys) == (status.status == "failed")
        assert in_split or not keys & LINEAGE_KEYS
        assert RFC3339.match(status.executed_at), status.executed_at
        assert type(status.duration_ms) is int
        assert status.status != "running" or status.duration_ms == 0
    for done in run.completions:
        failed = done.status in ("failed", "halted")
        assert set(wire(done)) == COMPLETION_KEYS | ({"failure_reason"} if failed else set())
        assert RFC3339.match(done.completed_at)
        assert type(done.total_duration_ms) is int


# -- local HTTP server -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    paths: list[str]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _Server)
        self.server.paths.append(self.path)
        body = json.dumps({"uuid": UUID}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def http_server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def server(http_server: _Server) -> _Server:
    """The module's server with an empty request log."""
    http_server.paths = []
    return http_server


# -- http and conditional (upstream e2e/workflow_e2e_test.go, conditional_e2e_test.go) -----------


def test_single_http_get(server: _Server) -> None:
    fetch = n("fetch", "http", name="Fetch", parameters={"url": server.url("/uuid")})
    run = drive(start(definition([TRIGGER, fetch], chain("trigger", "fetch")), "trigger", {}))
    assert run.trail == ok("Fetch")
    output = run.statuses[1].output
    assert isinstance(output, dict)
    assert (output["status"], output["status_text"], output["body"]) == (
        200,
        "200 OK",
        {"uuid": UUID},
    )
    assert run.outcome == ("completed", None)
    assert run.completion.final_context == {"$Fetch": output}
    assert server.paths == ["/uuid"]


@pytest.mark.parametrize(("use_google", "taken"), [(True, "Google"), (False, "Bing")])
def test_conditional_runs_only_the_chosen_branch(
    server: _Server, use_google: bool, taken: str
) -> None:
    params = {"expression": "$useGoogle == true", "true_edge_id": "t", "false_edge_id": "f"}
    check = n("check", "conditional", name="Check", parameters=params)
    google = n("google", "http", name="Google", parameters={"url": server.url("/google")})
    bing = n("bing", "http", name="Bing", parameters={"url": server.url("/bing")})
    defn = definition([check, google, bing], [("t", "check", "google"), ("f", "check", "bing")])
    run = drive(start(defn, "check", {"$useGoogle": use_google}))
    assert run.trail == ok("Check", taken)
    verdict = {"result": use_google, "expression": f"{json.dumps(use_google)} == true"}
    assert run.statuses[1].output == verdict
    assert server.paths == ["/" + taken.lower()]
    assert run.outcome == ("completed", None)
    final = {"$useGoogle": use_google, "$Check": verdict, "$" + taken: run.statuses[3].output}
    assert run.completion.final_context == final


# -- upstream pkg/executor/executor_test.go, executor_paths_test.go and messaging tests -----------


def test_log_chain_builds_the_context() -> None:
    greet = n(
        "greet", "log", name="Greet", parameters={"message": "{{ $json.first }} {{ $json.last }}"}
    )
    shout = n(
        "shout", "log", name="Shout", parameters={"message": "$Greet.message!", "level": "WARN"}
    )
    person = {"first": "Alice", "last": "Smith"}
    defn = definition([TRIGGER, greet, shout], chain("trigger", "greet", "shout"))
    run = drive(start(defn, "trigger", {"$json": person}))
    assert run.trail == ok("Greet", "Shout")
    used = wire(run.statuses[0])  # a value read from the message keeps its bytes (Raw)
    assert (used["all_used_input_keys"], used["used_inputs"]) == (["$json"], {"$json": person})
    assert run.statuses[2].all_used_input_keys == ["$Greet"]
    final = run.completion.final_context
    stamps = [final["$Greet"].pop("logged_at"), final["$Shout"].pop("logged_at")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps)
    assert final == {"$json": person, "$Greet": {"message": "Alice Smith", "level": "info"},
                     "$Shout": {"message": "Alice Smith!", "level": "warn"}}  # fmt: skip


def test_linear_step_publishes_one_next_message() -> None:
    defn = definition([n("a", name="Alpha"), n("b")], chain("a", "b"))
    msg = msgspec.structs.replace(start(defn, "a", {"$seed": 1}), workflow_version=3,
                                  workflow_version_id=7)  # fmt: skip
    running: list[tuple[NodeStatusMessage, bool]] = []
    result = Executor(MemoryStore()).step(msg, lambda st, blocking: running.append((st, blocking)))
    assert trail([st for st, _ in running] + result.statuses) == ok("Alpha")
    assert running[0][1] is False  # test.ok does not block: its running may be batched
    assert result.completion is None
    [nxt] = result.messages
    assert (nxt.current_node, nxt.from_node, nxt.is_worker_initiated) == ("b", "a", True)
    assert nxt.accumulated_context == {"$seed": 1, "$Alpha": {"ran": "a"}}
    assert bytes(nxt.workflow_definition) == defn
    assert (nxt.workflow_version, nxt.workflow_version_id) == (3, 7)
    assert set(wire(nxt)) == NEXT_KEYS


def test_routers() -> None:
    cond = n("c", "conditional", parameters={"true_edge_id": "t", "false_edge_id": ""})
    switch = n("s", "switch", parameters={"routes": ["r0", "r1", None]})
    edges = [("t", "c", "x"), ("r0", "s", "x"), ("r1", "s", "y")]
    wf = parse_definition(definition([cond, switch, n("x"), n("y")], edges))
    c, s = wf.node("c"), wf.node("s")
    assert [e.dst for e in route_conditional(c, {"result": True}, wf)] == ["x"]
    assert route_conditional(c, {"result": False}, wf) == []  # "" = unwired false branch
    assert route_conditional(c, {"result": "true"}, wf) == []  # not a boolean: false
    assert [e.dst for e in route_switch(s, {"output_index": 1.0}, wf)] == ["y"]
    assert route_switch(s, {"output_index": 10}, wf) == []
    assert route_switch(s, {"output_index": 2}, wf) == []  # null route: unwired handle
    assert route_switch(s, None, wf) == []  # failed under ignore


@pytest.mark.parametrize(("target", "taken"), [("google", "G"), ("yahoo", "Y"), ("bing", "F")])
def test_switch_routes_through_the_executor(target: str, taken: str) -> None:
    rules = [{"value": "$target", "operator": "==", "compare": c} for c in ("google", "yahoo")]
    route = n(
        "route", "switch", name="Route", parameters={"rules": rules, "routes": ["g", "y", "f"]}
    )
    edges = [("g", "route", "g"), ("y", "route", "y"), ("f", "route", "f")]
    run = drive(
        start(definition([route, n("g"), n("y"), n("f")], edges), "route", {"$target": target})
    )
    assert run.trail == ok("Route", taken)
    assert run.outcome == ("completed", None)
    assert set(run.completion.final_context) == {"$target", "$Route", "$" + taken}


def test_failing_node_halts_by_default() -> None:
    defn = definition([n("a"), n("b", "test.fail"), n("c")], chain("a", "b", "c"))
    run = drive(start(defn, "a", {"$x": 1}))
    assert run.trail == ok("A") + bad("B")
    assert wire(run.statuses[3])["error"] == {"message": "boom", "code": "NODE_EXECUTION_FAILED"}
    assert run.outcome == ("halted", "node B (b) failed: boom")
    assert run.completion.final_context == {"$x": 1, "$A": {"ran": "a"}}


def test_credentials_reach_the_node_as_values_and_type() -> None:
    echo = n("echo", "test.credentials", name="Echo", credentials={"id": "c1", **BASIC})
    defn = definition([echo, n("next")], chain("echo", "next"))
    result = Executor(MemoryStore()).step(start(defn, "echo"))
    [nxt] = result.messages
    given = {"username": "alice", "password": PASSWORD, "type": "basic_auth"}
    # an output that echoes a secret is masked before it enters the context, as in the status;
    # the definition is not mutated (Go added values.type)
    assert nxt.accumulated_context == {"$Echo": {"credentials": {**given, "password": "***"}}}
    assert result.statuses[0].output == {"credentials": {**given, "password": "***"}}
    assert bytes(nxt.workflow_definition) == defn


def test_master_message_gives_statuses_and_one_completion() -> None:
    only = n("only", "conditional", name="Only", parameters={"expression": "true"})
    msg = start(definition([only]), "only")
    master = NEXT_KEYS - {"from_node", "is_worker_initiated", "branch_token", "started_at_ms"}
    assert set(wire(msg)) == master
    run = drive(msg)
    assert (run.trail, run.messages) == (ok("Only"), [])
    assert (run.completion.workflow_id, run.completion.execution_id) == ("wf-1", "ex-1")
    assert run.outcome == ("completed", None)
    assert run.completion.final_context == {"$Only": {"result": True, "expression": "true"}}


def test_the_completion_carries_values_as_the_bytes_they_arrived_as() -> None:
    """Without credentials to mask, a value no node replaced reaches the completion as the
    bytes it arrived as (its spaces, escapes and number forms): not decoded and encoded again,
    which for a 1 MB `$input` cost most of a step (deploy/PERFORMANCE.md). Readers in the
    process still see decoded values."""
    arrived = b'{"name": "Ana \\u00e9",  "n": 1.50e2, "list": [1,  2]}'
    msg = start(definition([n("a")]), "a", {"$input": msgspec.Raw(arrived)})
    run = drive(msg)
    assert run.trail == ok("A")
    assert b'"$input":' + arrived in encode(run.completion)
    assert run.completion.final_context["$input"] == {
        "name": "Ana \u00e9",
        "n": 150.0,
        "list": [1, 2],
    }
    assert wire(run.completion)["final_context"] == {
        "$input": {"name": "Ana \u00e9", "n": 150.0, "list": [1, 2]},
        "$A": {"ran": "a"},
    }
    # with a credential to mask, every value is decoded (and masked) before it is encoded
    guarded = n("a", credentials={"id": "c1", **BASIC})
    masked = drive(start(definition([guarded]), "a", {"$input": msgspec.Raw(arrived)}))
    assert arrived not in encode(masked.completion)
    assert masked.completion.final_context["$input"]["n"] == 150.0


def test_trigger_starts_every_successor_and_reports_nothing() -> None:
    defn = definition([TRIGGER, n("a"), n("b")], [("e1", "trigger", "a"), ("e2", "trigger", "b")])
    run = drive(start(defn, "trigger", {"$trigger": {"k": 1}}))
    assert run.trail == ok("A", "B")
    final = {"$trigger": {"k": 1}, "$A": {"ran": "a"}, "$B": {"ran": "b"}}
    assert run.completion.final_context == final


# -- error policies ----------------------------------------------------------------------------


def test_ignore_continues_with_the_unchanged_context() -> None:
    defn = definition([n("a", "test.fail", error={"type": "ignore"}), n("b")], chain("a", "b"))
    run = drive(start(defn, "a", {"$x": 1}))
    assert run.trail == bad("A") + ok("B")
    [nxt] = run.messages
    assert (nxt.accumulated_context, nxt.from_node) == ({"$x": 1}, "a")
    assert run.outcome == ("completed", None)
    assert run.completion.final_context == {"$x": 1, "$B": {"ran": "b"}}


def test_ignore_without_successors_still_completes() -> None:
    run = drive(start(definition([n("a", "test.fail", error={"type": "ignore"})]), "a", {"$x": 1}))
    assert run.trail == bad("A")
    assert run.outcome == ("completed", None)  # Go publishes nothing (docs/WIRE.md 10)
    assert run.completion.final_context == {"$x": 1}


def _branching(type_: str) -> bytes:
    risky = n("a", type_, name="Risky", error={"type": "branch", "error_edge": "e_err"},
              parameters={"message": "disk full"})  # fmt: skip
    edges = [("e_ok", "a", "b"), ("e_err", "a", "e")]
    return definition([risky, n("b"), n("e", name="Handler")], edges)


def test_branch_follows_the_error_edge_with_error_in_context() -> None:
    run = drive(start(_branching("test.fail"), "a", {"$x": 1}))
    assert run.trail == bad("Risky") + ok("Handler")
    error = {
        "node": "Risky",
        "node_id": "a",
        "message": "disk full",
        "code": "NODE_EXECUTION_FAILED",
    }
    [nxt] = run.messages
    assert (nxt.current_node, nxt.accumulated_context) == ("e", {"$x": 1, "$error": error})
    assert run.completion.final_context == {"$x": 1, "$error": error, "$Handler": {"ran": "e"}}


def test_branch_error_edge_not_followed_on_success() -> None:
    run = drive(start(_branching("test.ok"), "a", {"$x": 1}))  # docs/WIRE.md section 10
    assert run.trail == ok("Risky", "B")
    assert [m.current_node for m in run.messages] == ["b"]
    assert run.completion.final_context == {"$x": 1, "$Risky": {"ran": "a"}, "$B": {"ran": "b"}}


# -- fan-out and exactly one completion ---------------------------------------------------------

FAN = [("e1", "a", "b"), ("e2", "a", "c"), ("e3", "a", "d")]


def test_fan_out_gives_one_completion_with_every_leaf() -> None:
    run = drive(start(definition([n("a"), n("b"), n("c"), n("d")], FAN), "a", {"$x": 1}))
    assert run.trail == ok("A", "B", "C", "D")
    assert [m.current_node for m in run.messages] == ["b", "c", "d"]
    assert len({m.branch_token for m in run.messages}) == 3
    assert run.outcome == ("completed", None)
    leaves = {f"${k}": {"ran": k.lower()} for k in "ABCD"}
    assert run.completion.final_context == {"$x": 1, **leaves}


def test_halting_branch_cancels_later_siblings() -> None:
    defn = definition([n("a"), n("b"), n("c", "test.fail"), n("d")], FAN)
    run = drive(start(defn, "a", {"$x": 1}))
    assert run.trail == ok("A", "B") + bad("C")  # D is dropped: no status at all
    assert run.outcome == ("halted", "node C (c) failed: boom")
    assert run.completion.final_context == {"$x": 1, "$A": {"ran": "a"}}


# -- redelivery ----------------------------------------------------------------------------------


def test_redelivery_replays_the_recorded_transition() -> None:
    """A crash after the state write and before the broker commit redelivers the message: the
    node runs again, but the state store replays the first outcome (same child tokens; the
    same completion when the first step closed the execution), so consumers may see the same
    completion twice, never a different one."""
    executor, run = Executor(MemoryStore()), Run()
    msg = start(definition([n("a"), n("b"), n("c")], FAN[:2]), "a")
    first, again = step(executor, msg, run), step(executor, msg, run)
    assert (first.report.verdict, again.report.verdict) == (Verdict.RUN, Verdict.REPLAY)
    assert first.report.ledger != "single-branch"  # a fan-out keeps branch tokens in the store
    assert [m.branch_token for m in again.messages] == [m.branch_token for m in first.messages]
    assert (first.completion, again.completion) == (None, None)
    assert step(executor, first.messages[0], run).completion is None  # C is still live
    leaf = first.messages[1]
    closing, replay = step(executor, leaf, run), step(executor, leaf, run)
    assert (closing.report.verdict, replay.report.verdict) == (Verdict.RUN, Verdict.REPLAY)
    assert closing.completion is not None and replay.completion is not None
    for name in ("execution_id", "status", "final_context", "failure_reason"):
        assert getattr(replay.completion, name) == getattr(closing.completion, name)
    assert run.trail == ok("A", "A", "B", "C", "C")  # the node itself does run again
    assert [c.status for c in run.completions] == ["completed", "completed"]
    stale = step(executor, msgspec.structs.replace(leaf, branch_token="not-a-token"), run)
    assert (stale.report.verdict, stale.statuses, stale.messages, stale.completion) == (
        Verdict.STALE, [], [], None)  # fmt: skip
    assert len(run.completions) == 2


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.now += 250_000_000  # every reading is 250 ms later
        return self.now


def test_single_branch_chain_keeps_no_tokens() -> None:
    """A chain cannot have two live branches: its steps skip the token bookkeeping, the first
    records the start, the last reads it back; a redelivered step just runs again (its first
    attempt published nothing), and the messages are those of the full protocol."""
    store, clock = MemoryStore(), _Clock()
    executor, run = Executor(store, clock=clock), Run()
    defn = definition([n("a"), n("b"), n("c")], chain("a", "b", "c"))
    first = step(executor, start(defn, "a", {"$x": 1}), run)
    assert first.report.ledger == "single-branch" and first.report.verdict is Verdict.RUN
    begun = store.started_at("ex-1")
    assert begun and not store._executions  # no branch keys at all
    again = step(executor, start(defn, "a", {"$x": 1}), run)
    assert store.started_at("ex-1") == begun  # the redelivery does not restart the clock
    assert [m.branch_token for m in again.messages] == [m.branch_token for m in first.messages]
    middle = step(executor, first.messages[0], run)
    last = step(executor, middle.messages[0], run)
    assert (middle.completion, last.messages) == (None, [])
    assert last.completion is not None and last.completion.status == "completed"
    assert last.completion.total_duration_ms == (clock.now - begun) // 1_000_000
    assert middle.messages[0].started_at_ms == begun // 1_000_000  # carried, Redis not asked
    # a peer that drops started_at_ms took the middle step: the store's record is the fallback
    dropped = msgspec.structs.replace(middle.messages[0], started_at_ms=msgspec.UNSET)
    again_last = step(executor, dropped, run)
    assert again_last.completion is not None
    assert again_last.completion.total_duration_ms == (clock.now - begun) // 1_000_000
    assert last.completion.final_context == {"$x": 1, "$A": {"ran": "a"}, "$B": {"ran": "b"},
                                             "$C": {"ran": "c"}}  # fmt: skip
    full = drive(start(defn, "a", {"$x": 1}), Executor(MemoryStore(), max_steps=2))
    assert full.messages[0].branch_token == first.messages[0].branch_token
    assert not store._executions


def test_single_branch_halt_closes_with_the_failing_context() -> None:
    run = drive(start(definition([n("a"), n("b", "test.fail")], chain("a", "b")), "a", {"$x": 1}))
    assert run.outcome == ("halted", "node B (b) failed: boom")
    assert run.completion.final_context == {"$x": 1, "$A": {"ran": "a"}}


def test_single_branch_shapes() -> None:
    """Which workflows take the single-branch ledger (runeworker.engine.ledger)."""
    specs = Executor(MemoryStore()).specs

    def single(nodes: list[dict[str, Any]], edges: Sequence[tuple[str, str, str]]) -> bool:
        return ledger.single_branch(parse_definition(definition(nodes, edges)), specs, 10)

    cond = n("a", "conditional", parameters={"true_edge_id": "e0", "false_edge_id": "e1"})
    trigger = {"id": "t", "type": "ManualTrigger", "trigger": True}
    branch = n("a", error={"type": "branch", "error_edge": "e1"})
    assert single([n("a"), n("b"), n("c")], chain("a", "b", "c"))
    assert single([cond, n("b"), n("c")], [("e0", "a", "b"), ("e1", "a", "c")])
    assert single([branch, n("b"), n("c")], [("e0", "a", "b"), ("e1", "a", "c")])
    assert single([trigger, n("a")], [("e0", "t", "a")])
    assert not single([trigger, n("a"), n("b")], [("e0", "t", "a"), ("e1", "t", "b")])
    assert not single([n("a"), n("b"), n("c")], FAN[:2])
    assert not single([n("a"), n("b", "nope")], chain("a", "b"))  # unknown type
    assert not single([n("a", "test.fan_router"), n("b")], chain("a", "b"))
    for flow_type in ("split", "aggregator", "merge", "wait"):
        assert not single([n("a"), n("b", flow_type)], chain("a", "b"))
    ids = [f"n{i}" for i in range(11)]
    assert not single([n(i) for i in ids], chain(*ids))  # more nodes than max_steps
    assert single([n(i) for i in ids[:10]], chain(*ids[:10]))  # as many nodes as max_steps
    # a trigger is known by its flag or by its type; no spec is needed for either
    flagged = {"id": "t", "type": "customTrigger", "trigger": True}
    typed = {"id": "t", "type": "ManualTrigger"}
    for start_node in (flagged, typed):
        assert single([start_node, n("a")], [("e0", "t", "a")])
        assert not single([start_node, n("a"), n("b")], [("e0", "t", "a"), ("e1", "t", "b")])


@node("test.fan_router", router=lambda _node, _out, wf: list(wf.edges))
def _fan_router(ctx: NodeContext) -> dict[str, Any]:
    return {}


def test_redelivered_halt_replays_halted() -> None:
    executor, run = Executor(MemoryStore()), Run()
    msg = start(definition([n("a", "test.fail")]), "a")
    step(executor, msg, run)
    step(executor, msg, run)
    outcomes = [(c.status, c.failure_reason) for c in run.completions]
    assert outcomes == [("halted", "node A (a) failed: boom")] * 2


# -- bad input -----------------------------------------------------------------------------------


def test_unknown_node_type_fails_the_execution() -> None:
    """As upstream's executor: `running` (parameters resolved, inputs used), then `failed`
    with NODE_CREATION_FAILED and the same parameters, then the `failed` completion."""
    run = drive(start(definition([n("a", "nope", parameters={"k": "$x"})]), "a", {"$x": 1}))
    assert run.trail == [("A", "running"), ("A", "failed")]
    running, status = (wire(s) for s in run.statuses)
    assert "error" not in running and running["duration_ms"] == 0
    assert status["error"] == {"message": "failed to create node of type nope",
                               "code": "NODE_CREATION_FAILED",
                               "details": {"error": "node type nope not registered"}}  # fmt: skip
    assert running["parameters"] == status["parameters"] == {"k": 1}
    assert running["used_inputs"] == status["used_inputs"] == {"$x": 1}
    assert run.outcome == ("failed", "node A (a) failed: failed to create node of type nope")
    assert run.completion.final_context == {"$x": 1}


@pytest.mark.parametrize(("edges", "problem"), [
    (chain("a", "b", "ghost"), "edge e1 points to node 'ghost', which does not exist"),
    (chain("a", "b", "a"), "cycle: a -> b -> a"),
])  # fmt: skip
def test_broken_graph_fails_without_running(
    edges: list[tuple[str, str, str]], problem: str
) -> None:
    """Refused at the first step, reported like a node failure (the node does not run):
    `running` then `failed` on the node the message names, which keeps its name."""
    run = drive(start(definition([n("a"), n("b")], edges), "a", {"$x": 1}))
    assert run.trail == [("A", "running"), ("A", "failed")]
    assert wire(run.statuses[1])["error"]["message"] == "invalid workflow: " + problem
    assert run.outcome == ("failed", "invalid workflow: " + problem)
    assert run.completion.final_context == {"$x": 1}


def test_a_refused_workflow_lists_every_problem() -> None:
    nodes = [n("a"), n("b"), n("b")]
    run = drive(start(definition(nodes, [*chain("a", "b", "a"), ("e9", "b", "ghost")]), "a"))
    assert run.trail == [("A", "running"), ("A", "failed")]
    reason = run.outcome[1]
    assert reason.startswith("invalid workflow: ")
    for problem in ("shared by nodes[1] and nodes[2]", "points to node 'ghost'", "cycle: a -> b"):
        assert problem in reason, reason
    assert wire(run.statuses[1])["error"]["message"] == reason


@pytest.mark.parametrize("where", ["notes", "edge label", "unknown node key"])
def test_invalid_utf8_anywhere_in_the_definition_is_refused(where: str) -> None:
    """Found by tests/fuzz: invalid UTF-8 in a part of the definition the worker's types skip
    (the web app's `notes`, an edge's `label`, a key it does not know) ran, and every next
    message and the mirror carried the bytes on, which RTES's JSON reader refuses (a mirror
    lost). Invalid UTF-8 in a field the types read was refused already; now anywhere."""
    defn = definition([n("a", marker="MARK"), n("b")], [("e0", "a", "b")])
    defn = {
        "notes": defn.replace(b'"edges"', b'"notes":"MARK","edges"'),
        "edge label": defn.replace(b'"dst":"b"', b'"dst":"b","label":"MARK"'),
        "unknown node key": defn.replace(b'"marker"', b'"mar\xffker"'),
    }[where].replace(b'"MARK"', b'"caf\xe9"')
    assert b"\xe9" in defn or b"\xff" in defn
    run = drive(start(defn, "a", {"$x": 1}))
    status, reason = run.outcome
    assert status == "failed" and reason is not None
    assert re.fullmatch(r"workflow_definition: invalid UTF-8 at byte \d+: invalid \S+ byte", reason)
    assert run.trail == [("a", "failed")]
    assert run.messages == []


BEYOND_A_DOUBLE = {
    "1e999": b"1e999",
    "-1e999": b"-1e999",
    "400 digits": b"1" + b"0" * 400,
    "-400 digits": b"-" + b"9" * 400,
    "2e308": b"2e308",
    "long mantissa": b"1" + b"0" * 250 + b"e99",
}


@pytest.mark.parametrize("number", BEYOND_A_DOUBLE)
@pytest.mark.parametrize("where", ["notes", "edge label", "unknown node key", "parameter"])
def test_a_number_no_double_holds_anywhere_in_the_definition_is_refused(
    where: str, number: str
) -> None:
    """Found by tests/fuzz: a number no IEEE double holds where the definition's types skip it
    (the web app's `notes`, an edge's `label`, a key it does not know) ran, and a 400-digit
    integer ran where they read it (msgspec reads it as a Python int). Go's encoding/json
    decodes every number of an `interface{}` as a float64 and refuses it; so does RTES's
    serde_json, which reads the definition's mirror. Refused like invalid UTF-8, naming where."""
    defn = definition([n("a", marker="MARK", parameters={"p": "MARK"}), n("b")],
                      [("e0", "a", "b")])  # fmt: skip
    defn = {
        "notes": defn.replace(b'"edges"', b'"notes":{"x":["MARK"]},"edges"', 1),
        "edge label": defn.replace(b'"dst":"b"', b'"dst":"b","label":"MARK"'),
        "unknown node key": defn.replace(b'"marker":"MARK"', b'"marker":"MARK"', 1),
        "parameter": defn.replace(b'"p":"MARK"', b'"p":"MARK"'),
    }[where]
    if where in ("unknown node key", "edge label", "notes"):
        defn = defn.replace(b'"p":"MARK"', b'"p":"fine"')
    else:
        defn = defn.replace(b'"marker":"MARK"', b'"marker":"fine"')
    defn = defn.replace(b'"MARK"', BEYOND_A_DOUBLE[number])
    assert BEYOND_A_DOUBLE[number] in defn
    run = drive(start(defn, "a", {"$x": 1}))
    status, reason = run.outcome
    assert status == "failed" and reason is not None
    assert reason.startswith("workflow_definition: Number out of range - at `$."), reason
    assert "no IEEE double holds it" in reason
    assert run.trail == [("a", "failed")]
    assert wire(run.statuses[0])["error"]["message"] == reason
    assert run.messages == []
    outbox = Executor(MemoryStore()).step(start(defn, "a"))
    assert outbox.dead_letter == reason


WITHIN_A_DOUBLE = [b"18446744073709551616", b"1e300", b"-1.7976931348623157e308", b"1e-999",
                   b"1" + b"0" * 308, b"123e0000000000000000001"]  # fmt: skip


@pytest.mark.parametrize("number", WITHIN_A_DOUBLE)
def test_numbers_a_double_holds_run(number: bytes) -> None:
    """Go reads these as float64 (2^64 rounded, 1e-999 as 0): the definition runs."""
    defn = definition([n("a", notes="MARK", parameters={"p": "MARK"})]).replace(b'"MARK"', number)
    run = drive(start(defn, "a"))
    assert run.trail == ok("A") and run.outcome == ("completed", None)


@pytest.mark.parametrize("route", ["nowhere", 7, None])
def test_a_conditional_whose_routes_dangle_runs_as_upstream(route: Any) -> None:
    """Upstream's routing.go ends the branch when the edge id of the taken route is not an
    edge (or not a string): such a workflow is not refused; the unused route does not matter
    and the used one ends the branch."""
    cond = n("c", "conditional", parameters={"expression": "true", "true_edge_id": "e0",
                                              "false_edge_id": route})  # fmt: skip
    run = drive(start(definition([cond, n("a")], chain("c", "a")), "c"))
    assert run.trail == ok("C", "A") and run.outcome == ("completed", None)
    cond["parameters"] = {"expression": "true", "true_edge_id": route, "false_edge_id": "e0"}
    run = drive(start(definition([cond, n("a")], chain("c", "a")), "c"))
    assert run.trail == ok("C") and run.outcome == ("completed", None)


@pytest.mark.parametrize("policy", [
    {"type": "retry"}, {"type": "branch"}, {"type": "branch", "error_edge": "nowhere"},
])  # fmt: skip
def test_error_policies_upstream_runs_are_not_refused(policy: dict[str, Any]) -> None:
    """An unknown policy type, or `branch` without a usable error edge: upstream runs the
    workflow and halts on a failure (`handleNodeFailure` in node_handlers.go); so do we."""
    run = drive(start(definition([n("a", error=policy), n("b")], chain("a", "b")), "a"))
    assert run.trail == ok("A", "B") and run.outcome == ("completed", None)
    failing = n("a", "test.fail", error=policy)
    run = drive(start(definition([failing, n("b")], chain("a", "b")), "a"))
    assert run.trail == bad("A") and run.outcome[0] == "halted"


def test_max_steps_guard() -> None:
    ids = [f"n{i}" for i in range(10)]
    defn = definition([n(i) for i in ids], chain(*ids))
    run = drive(start(defn, "n0"), Executor(MemoryStore(), max_steps=5))
    assert run.trail == [*ok("N0", "N1", "N2", "N3", "N4"), ("N5", "failed")]
    assert run.outcome == (
        "failed",
        "node N5 (n5) failed: execution exceeded the maximum of 5 steps",
    )
    assert run.completion.final_context == {f"$N{i}": {"ran": f"n{i}"} for i in range(5)}


# -- durations, masking, lineage, definition bytes ------------------------------------------------


def test_total_duration_is_the_workflow_duration() -> None:
    defn = definition([n(i, "test.sleep") for i in "abc"], chain("a", "b", "c"))
    run = drive(start(defn, "a"))
    assert [s.duration_ms >= 50 for s in run.statuses if s.status == "success"] == [True] * 3
    assert run.completion.total_duration_ms >= 150


def test_credentials_are_masked_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    text = "pw={{ $credential.password }} user=$credential.username"
    say = n("say", "log", name="Say", credentials=BASIC, parameters={"message": text})
    leak = n("leak", "test.fail", name="Leak", credentials=BASIC,
             parameters={"message": "rejected {{ $credential.password }}"})  # fmt: skip
    run = drive(start(definition([say, leak], chain("say", "leak")), "say"))
    assert run.trail == ok("Say") + bad("Leak")
    assert run.statuses[0].parameters == {"message": "pw=*** user=alice"}
    assert wire(run.statuses[3])["error"]["message"] == "rejected ***"
    assert run.outcome == ("halted", "node Leak (leak) failed: rejected ***")
    assert run.completion.final_context["$Say"]["message"] == "pw=*** user=alice"
    assert "pw=*** user=alice" in caplog.text
    assert "rejected ***" in caplog.text
    published = b"".join(encode(x) for x in [*run.statuses, *run.completions])
    assert PASSWORD.encode() not in published
    assert PASSWORD not in caplog.text


def test_a_node_that_raises_logs_its_traceback_without_the_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A node bug is logged with its traceback (where it raised), and the exceptions' texts
    are masked there as in the failed status and the completion (found running upstream's
    archivist against `runeworker serve`: the reason was masked, the log line above it not)."""
    caplog.set_level(logging.DEBUG)
    crash = n("crash", "test.raises", name="Crash", credentials=BASIC)
    run = drive(start(definition([crash]), "crash"))
    assert run.outcome == (
        "halted",
        "node Crash (crash) failed: RuntimeError: login with *** failed",
    )
    assert "Traceback" in caplog.text and "_crash" in caplog.text  # still says where
    assert "login with *** failed" in caplog.text and "no account for ***" in caplog.text
    assert PASSWORD not in caplog.text


def test_a_password_written_in_a_url_is_masked_like_a_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`http://ann:pw@host/` in a parameter: the node uses it (its url, a text it logs), but
    its password reaches no status, completion or log line."""
    caplog.set_level(logging.DEBUG)
    url = "https://ann:Url-Pw-4711@api.example.com/v1"
    say = n("say", "log", name="Say", parameters={"message": f"calling {url}"})
    echo = n("echo", "test.fail", name="Echo", parameters={"message": f"refused: {url}"})
    run = drive(start(definition([say, echo], chain("say", "echo")), "say"))
    assert run.trail == ok("Say") + bad("Echo")
    shown = "https://ann:***@api.example.com/v1"
    assert run.statuses[0].parameters == {"message": f"calling {shown}"}
    assert wire(run.statuses[3])["error"]["message"] == f"refused: {shown}"
    assert run.outcome == ("halted", f"node Echo (echo) failed: refused: {shown}")
    assert run.completion.final_context["$Say"]["message"] == f"calling {shown}"
    published = b"".join(encode(x) for x in [*run.statuses, *run.completions])
    assert b"Url-Pw-4711" not in published
    assert f"calling {shown}" in caplog.text and "Url-Pw-4711" not in caplog.text


def test_a_completion_with_credentials_decodes_masks_and_cuts_each_context() -> None:
    """With a credential to mask, `completion` decodes every branch context (later branches win
    a shared key), masks the credential's values, replaces a value nesting too deeply by the
    placeholder (whether the context holding it is decoded whole or value by value) and skips
    a context that is not a JSON object; `total_duration_ms` runs from the recorded start."""
    guarded = n("a", credentials=BASIC)
    defn = definition([guarded])
    wf = parse_definition(defn)
    deep = "[" * 150 + "]" * 150
    contexts = [
        f'{{"$input": {{"pw": "{PASSWORD}", "n": 1}}, "$A": {{"v": 1}}}}'.encode(),
        b"not json",
        b"[1, 2]",
        f'{{"$deep": {deep}, "$A": {{"v": 2}}, "$B": [1, 2]}}'.encode(),
        b'{"$C": {"ok": true}}',
    ]
    done = completion(start(defn, "a"), "completed", contexts, 10**9, 35 * 10**8, "", wf)
    assert done.final_context == {
        "$input": {"pw": "***", "n": 1},
        "$A": {"v": 2},
        "$deep": depth.PLACEHOLDER,
        "$B": [1, 2],
        "$C": {"ok": True},
    }
    assert done.total_duration_ms == 2500
    # without credentials the same contexts give the same values (kept as their bytes)
    plain = completion(start(defn, "a"), "completed", contexts, 10**9, 35 * 10**8, "", None)
    assert plain.final_context == {**done.final_context, "$input": {"pw": PASSWORD, "n": 1}}
    assert plain.total_duration_ms == 2500


def test_a_status_leaves_out_empty_parameters_and_outputs() -> None:
    """As Go's `omitempty`: a node without parameters publishes no `parameters`, and its
    `running` status no `output`."""
    run = drive(start(definition([n("a")]), "a"))
    running, success = (wire(s) for s in run.statuses)
    assert set(running) == STATUS_KEYS
    assert set(success) == STATUS_KEYS | {"output"}


def test_used_inputs_of_a_node_with_credentials_are_masked() -> None:
    """A context value holding a credential's value is masked in the used inputs, as in the
    parameters and the output."""
    say = n("say", "log", credentials=BASIC, parameters={"message": "got {{ $input.text }}"})
    run = drive(start(definition([say]), "say", {"$input": {"text": PASSWORD, "n": 1}}))
    running, success = (wire(s) for s in run.statuses)
    assert running["used_inputs"] == success["used_inputs"] == {"$input": {"text": "***", "n": 1}}
    assert running["parameters"] == {"message": "got ***"}


def test_data_that_looks_like_a_template_is_never_expanded() -> None:
    text = "{{ $credential.password }}"
    whole = n("whole", "log", credentials=BASIC, parameters={"message": "$input.text"})
    inner = n("inner", "log", credentials=BASIC, parameters={"message": "got {{ $input.text }}"})
    defn = definition([whole, inner], chain("whole", "inner"))
    run = drive(start(defn, "whole", {"$input": {"text": text}}))
    final = run.completion.final_context
    assert (final["$WHOLE"]["message"], final["$INNER"]["message"]) == (text, f"got {text}")
    # the definition carries the credential by design; no context, status or completion may
    carried = encode([m.accumulated_context for m in run.messages])
    published = b"".join(encode(x) for x in [*run.statuses, *run.completions])
    assert PASSWORD.encode() not in carried + published


def test_lineage_is_copied_from_the_top_frame() -> None:
    stack = [StackFrame("s1", "ex-1_s1_0", 0, 2), StackFrame("s2", "ex-1_s2_1", 1, 3)]
    b = n("b", "test.fail", error={"type": "ignore"})
    defn = definition([n("a"), b, n("c")], [("e1", "a", "b"), ("e2", "a", "c")])
    run = drive(msgspec.structs.replace(start(defn, "a"), lineage_stack=stack))
    assert run.trail == ok("A") + bad("B") + ok("C")
    expected = {"branch_id": "ex-1_s2_1", "split_node_id": "s2", "item_index": 1,
                "total_items": 3, "lineage_stack": msgspec.to_builtins(stack)}  # fmt: skip
    for status in run.statuses:  # failed ones too (Go omits them: docs/WIRE.md 4.1)
        got = wire(status)
        assert {k: got[k] for k in LINEAGE_KEYS} == expected
    assert [m.lineage_stack for m in run.messages] == [stack, stack]


def test_unknown_definition_keys_survive_byte_for_byte() -> None:
    raw = (b'{"nodes": [ {"id": "a", "name": "A", "type": "test.ok", "notes": "keep me",'
           b' "position": {"x": 1.50}},\n  {"id":"b","name":"B","type":"test.ok"},'
           b' {"id": "c", "name": "C", "type": "test.ok"}],\n "edges": [{"id": "e1", "src": "a",'
           b' "dst": "b", "label": "then"}, {"id":"e2","src":"b","dst":"c"}],'
           b' "webhook_guid": "wh-1", "metadata": {"v": [1, 2.50e0, "x"]}}')  # fmt: skip
    run = drive(start(raw, "a"))
    assert run.trail == ok("A", "B", "C")
    assert [bytes(m.workflow_definition) for m in run.messages] == [raw, raw]
    assert all(raw in encode(m) for m in run.messages)


def test_values_read_from_the_message_go_on_byte_for_byte() -> None:
    """A context value a node reads is decoded for it, but the next message and the statuses
    carry the value's original bytes (not a re-encoding); a node with credentials gets its
    used inputs decoded and masked."""
    body = (
        b'{"workflow_id":"wf-1","execution_id":"ex-1","current_node":"a","workflow_definition":'
        + definition([n("a", "log", parameters={"message": "n={{ $input.n }}"}), n("b")],
                     chain("a", "b"))
        + b',"accumulated_context":{"$input":{"n": 1.50, "s":"\\u00e9"}}}'
    )  # fmt: skip
    result = Executor(MemoryStore()).step(decode_execution(body))
    original = b'{"n": 1.50, "s":"\\u00e9"}'
    assert b'"$input":' + original in encode(result.messages[0])
    assert b'"used_inputs":{"$input":' + original + b"}" in encode(result.statuses[0])
    assert wire(result.statuses[0])["output"]["message"].startswith("n=1.5")


def test_a_replayed_dead_letter_of_a_single_branch_execution_replays_its_failure() -> None:
    """A poison message is failed through the token protocol (`Executor.fail`, the worker's
    rejection path). Put back by `dlq replay`, it must not run on into a second completion:
    with `replayed` the step takes the token protocol and replays the recorded failure."""
    executor, run = Executor(MemoryStore()), Run()
    defn = definition([n("a"), n("b")], chain("a", "b"))
    first = step(executor, start(defn, "a"), run)
    poison = first.messages[0]
    failed = executor.fail(poison, "message was delivered 3 times without completing; poison")
    assert failed.completion is not None and failed.completion.status == "failed"
    again = executor.step(poison, replayed=True)
    assert again.report.ledger != "single-branch" and again.report.verdict is Verdict.REPLAY
    assert again.completion is not None
    assert (again.completion.status, again.completion.failure_reason) == (
        "failed", "message was delivered 3 times without completing; poison")  # fmt: skip
    assert again.messages == []


def test_quick_nodes_of_parallel_branches_settle_in_one_store_call() -> None:
    """A quick node of a fan-out runs first and is admitted and advanced in one call: a stale
    token's statuses are dropped, and the step limit still fails the step that reaches it
    (taken again the admitted way, so it fails before running, as it always did)."""
    executor, run = Executor(MemoryStore()), Run()
    defn = definition([n("a"), n("b"), n("c"), n("d")], FAN)
    first = step(executor, start(defn, "a"), run)
    assert first.report.ledger == "settled" and len(first.messages) == 3
    stale = step(executor, msgspec.structs.replace(first.messages[0], branch_token="nope"), run)
    assert (stale.report.verdict, stale.statuses, stale.messages, stale.report.outcome) == (
        Verdict.STALE, [], [], "skipped")  # fmt: skip
    limited = drive(start(defn, "a"), Executor(MemoryStore(), max_steps=2))
    assert limited.trail == [*ok("A", "B"), ("C", "failed")]  # D: cancelled, nothing published
    assert limited.outcome == (
        "failed", "node C (c) failed: execution exceeded the maximum of 2 steps")  # fmt: skip
    assert [s.status for s in limited.statuses if s.node_id == "c"] == ["failed"]  # no running
