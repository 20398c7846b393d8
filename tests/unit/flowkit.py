"""Helpers of the flow-control tests (split, aggregator, merge, wait): definitions, test node
types, and a driver that runs every message of an execution through its JSON encoding."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from runeworker.engine.executor import Executor
from runeworker.engine.messages import (
    CompletionMessage,
    NodeExecutionMessage,
    NodeStatusMessage,
    decode_execution,
    encode,
)
from runeworker.engine.outbox import Outbox
from runeworker.engine.registry import NodeContext, node
from runeworker.engine.state import MemoryStore
from runeworker.errors import NodeError

TRIGGER = {"id": "trigger", "name": "Start", "type": "ManualTrigger", "trigger": True}
Edges = Sequence[tuple[str, str, str]]


@node("flow.echo")
def _echo(ctx: NodeContext) -> dict[str, Any]:
    """Output `{"value": <the value parameter, resolved>}`."""
    return {"value": ctx.params.get("value")}


@node("flow.fail")
def _fail(ctx: NodeContext) -> dict[str, Any]:
    """Fail when the `when` parameter is true (default: always)."""
    if ctx.params.get("when", True) is True:
        raise NodeError(f"refused {ctx.params.get('value')}")
    return {"value": ctx.params.get("value")}


def n(node_id: str, type_: str = "flow.echo", **params: Any) -> dict[str, Any]:
    """A node named after its id in capitals; `error=` sets its error policy."""
    spec: dict[str, Any] = {"id": node_id, "name": node_id.upper(), "type": type_}
    if "error" in params:
        spec["error"] = params.pop("error")
    if params:
        spec["parameters"] = params
    return spec


def definition(nodes: list[dict[str, Any]], edges: Edges = ()) -> bytes:
    edge_list = [{"id": i, "src": s, "dst": d} for i, s, d in edges]
    return msgspec.json.encode({"nodes": nodes, "edges": edge_list})


def start(
    defn: bytes, current: str, ctx: dict[str, Any] | None = None, execution_id: str = "ex-1"
) -> NodeExecutionMessage:
    """A master message (no from_node, no branch token)."""
    return NodeExecutionMessage("wf-1", execution_id, current, msgspec.Raw(defn), 0, 0, ctx or {})


@dataclass
class Run:
    """Everything the steps of one drive published."""

    statuses: list[NodeStatusMessage] = field(default_factory=list)
    messages: list[NodeExecutionMessage] = field(default_factory=list)
    completions: list[CompletionMessage] = field(default_factory=list)
    results: list[Outbox] = field(default_factory=list)

    @property
    def trail(self) -> list[tuple[str, str]]:
        return [(s.node_name, s.status) for s in self.statuses]

    @property
    def completion(self) -> CompletionMessage:
        assert len(self.completions) == 1, self.completions
        return self.completions[0]

    def outputs(self, name: str, status: str = "success") -> list[dict[str, Any]]:
        found = [s.output for s in self.statuses if s.node_name == name and s.status == status]
        return [o if isinstance(o, dict) else {} for o in found]


def step(executor: Executor, msg: NodeExecutionMessage, run: Run, resumed: bool = False) -> Outbox:
    msg = decode_execution(encode(msg))  # exactly what a worker would decode
    result = executor.step(msg, lambda status, _b: run.statuses.append(status), resumed)
    run.statuses += result.statuses
    run.messages += result.messages
    run.results.append(result)
    if result.completion is not None:
        run.completions.append(result.completion)
    return result


Pick = Callable[[deque[NodeExecutionMessage]], NodeExecutionMessage]


def fifo(queue: deque[NodeExecutionMessage]) -> NodeExecutionMessage:
    return queue.popleft()


def lifo(queue: deque[NodeExecutionMessage]) -> NodeExecutionMessage:
    return queue.pop()


def drive(
    *msgs: NodeExecutionMessage,
    executor: Executor | None = None,
    pick: Pick = fifo,
    run: Run | None = None,
) -> Run:
    """Step every message until none is left (timers are not fired)."""
    executor = executor or Executor(MemoryStore())
    run = run or Run()
    queue = deque(msgs)
    while queue:
        queue.extend(step(executor, pick(queue), run).messages)
    return run


def fire_timers(executor: Executor, run: Run, now_ms: int) -> list[Outbox]:
    """Resume every wait whose timer is due at `now_ms`, then drive what follows."""
    fired = []
    for timer in executor.store.claim_due(now_ms, 100, 60_000):
        executor.store.ack_timer(timer.timer_id)
        result = step(executor, decode_execution(timer.payload), run, resumed=True)
        fired.append(result)
        drive(*result.messages, executor=executor, run=run)
    return fired
