"""`runeworker bench`: runeworker against the bare pika floor, side by side, on one broker.

A measurement publishes N workflows of K cheap nodes (log and conditional alternating, a
chain) and waits for the N completions, twice per contender: all N at once (throughput,
CPU, RSS) and then a few one at a time (latency at low load). The contenders are
`runeworker serve` started as a subprocess (P children, prefetch X, a queue of the bench's
own) and the floor of `runeworker.bench.floor`, fed with messages of the sizes runeworker's
messages have at every step (measured by running the workflow once in this process).

Latency of node k is the `executed_at` of its success status minus that of node k-1 (the
next message is committed together with k-1's success), and for the first node minus the
bench's publish time. The floor stamps its statuses the same way.

The bench consumes the status, completion and mirror queues of the vhost it is pointed at:
run it in a vhost of its own (see deploy/PERFORMANCE.md).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from runeworker.adapters.amqp import AMQP_ERRORS, Endpoint
from runeworker.bench.floor import FloorSizes
from runeworker.engine.executor import Executor
from runeworker.engine.messages import (
    NodeExecutionMessage,
    NodeStatusMessage,
    decode_execution,
    encode,
)
from runeworker.engine.state import MemoryStore

_PERSISTENT = 2
MS = 1e-6  # nanoseconds -> milliseconds
_PLACEHOLDER = "runeworker-bench-execution-id"


class BenchError(Exception):
    """The bench cannot run or its contender did not finish; the message says why."""


@dataclass(frozen=True)
class Load:
    """One point of the bench: what to publish and how the contenders are sized."""

    workflows: int = 1000
    nodes: int = 10
    processes: int = 1
    prefetch: int = 10
    context_bytes: int = 1024
    latency_workflows: int = 50
    timeout: float = 300.0
    shape: str = "chain"  # or "branches" (see branch_definition)


# -- the workload ------------------------------------------------------------------------------


def chain_definition(nodes: int) -> bytes:
    """K nodes n1..nK in a chain: odd ones `log`, even ones `conditional` on the previous
    log's level (true -> the next node; false would end the branch early and the counts
    would show it)."""
    defs: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for k in range(1, nodes + 1):
        nxt = f"e{k}" if k < nodes else ""
        if k % 2:
            params: dict[str, Any] = {"message": f"step {k} of {{{{ $input.run }}}}"}
            defs.append({"id": f"n{k}", "name": f"n{k}", "type": "log", "parameters": params})
        else:
            params = {
                "expression": f"$n{k - 1}.level == 'info'",
                "true_edge_id": nxt,
                "false_edge_id": "",
            }
            defs.append(
                {"id": f"n{k}", "name": f"n{k}", "type": "conditional", "parameters": params}
            )
        if nxt:
            edges.append({"id": nxt, "src": f"n{k}", "dst": f"n{k + 1}"})
    return msgspec.json.encode({"nodes": defs, "edges": edges})


def http_chain_definition(nodes: int, url: str) -> bytes:
    """K `http` nodes n1..nK in a chain, each a GET of `url` (the bench's loopback
    `HttpTarget`, which answers after a fixed delay): the shape of a workflow whose nodes wait
    on a remote API, where a child's time goes into waiting rather than CPU."""
    defs: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for k in range(1, nodes + 1):
        params = {"url": url, "method": "GET", "timeout": 30}
        defs.append({"id": f"n{k}", "name": f"n{k}", "type": "http", "parameters": params})
        if k < nodes:
            edges.append({"id": f"e{k}", "src": f"n{k}", "dst": f"n{k + 1}"})
    return msgspec.json.encode({"nodes": defs, "edges": edges})


BRANCH_ITEMS = 4  # items of the branch workload's split


def branch_definition() -> bytes:
    """The workload with parallel branches, 8 nodes and 15 steps per workflow: n1 (log) fans
    out to n2 and n3 (logs), which meet at n4 (merge, wait for all); n5 splits a list of
    BRANCH_ITEMS items, n6 (log) runs once per item, n7 (aggregator) collects them and n8
    (log) ends the workflow. Every step goes through the branch-token protocol in Redis."""

    def log(k: int, message: str) -> dict[str, Any]:
        return {"id": f"n{k}", "name": f"n{k}", "type": "log", "parameters": {"message": message}}

    defs: list[dict[str, Any]] = [
        log(1, "start of {{ $input.run }}"),
        log(2, "left branch"),
        log(3, "right branch"),
        {"id": "n4", "name": "n4", "type": "merge", "parameters": {}},
        {
            "id": "n5",
            "name": "n5",
            "type": "split",
            "parameters": {"input_array": list(range(BRANCH_ITEMS))},
        },
        log(6, "item {{ $item }}"),
        {"id": "n7", "name": "n7", "type": "aggregator"},
        log(8, "end of {{ $input.run }}"),
    ]
    pairs = [(1, 2), (1, 3), (2, 4), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8)]
    edges = [{"id": f"e{i}", "src": f"n{a}", "dst": f"n{b}"} for i, (a, b) in enumerate(pairs, 1)]
    return msgspec.json.encode({"nodes": defs, "edges": edges})


def make_context(nbytes: int) -> dict[str, Any]:
    """`$input` of about `nbytes` of JSON, as records (a realistic shape to decode, unlike
    one long string)."""
    records: list[dict[str, Any]] = []
    size = 40
    while size < nbytes:
        i = len(records)
        record = {"id": i, "name": f"customer-{i:06d}", "score": i * 0.5, "tags": ["a", "b"]}
        records.append(record)
        size += 70
    return {"$input": {"run": "bench", "records": records}}


@dataclass
class Workload:
    """The workflow, its start context and the sizes of its messages at every step."""

    nodes: int
    definition: bytes
    context: dict[str, Any]
    sizes: FloorSizes
    _template: bytes = b""
    http_url: str = ""  # the `http` workload's target; empty for the log/conditional chain

    @classmethod
    def build(
        cls, nodes: int, context_bytes: int, shape: str = "chain", *, http_url: str = ""
    ) -> Workload:
        """The log/conditional chain, the workload with parallel branches (`shape`), or with
        `http_url` the chain of `http` nodes calling it (which must be listening: the message
        sizes are measured by running the workflow)."""
        context = make_context(context_bytes)
        if shape == "branches":
            definition = branch_definition()
            return cls(8, definition, context, _measure_script(definition, context))
        if shape != "chain":
            raise BenchError(f"unknown workload shape {shape!r} (chain or branches)")
        definition = http_chain_definition(nodes, http_url) if http_url else chain_definition(nodes)
        sizes = _measure_sizes(definition, context, nodes)
        return cls(nodes, definition, context, sizes, http_url=http_url)

    @property
    def running_per_workflow(self) -> int:
        """`running` statuses of one workflow (one per step)."""
        return len(self.sizes.messages)

    @property
    def successes_per_workflow(self) -> int:
        """`success` statuses of one workflow."""
        if not self.sizes.script:
            return len(self.sizes.messages)
        return sum(kind == "success" for st in self.sizes.script for _, kind in st["statuses"])

    @property
    def statuses_per_workflow(self) -> int:
        """Every status of one workflow (running, success and the merge's waiting)."""
        if not self.sizes.script:
            return 2 * len(self.sizes.messages)
        return sum(len(st["statuses"]) for st in self.sizes.script)

    def start(self, execution_id: str) -> bytes:
        """The start message as the Rune API sends it, at the first node (encoded once; the
        execution id is patched in)."""
        if not self._template:
            self._template = encode(_start(self.definition, self.context, _PLACEHOLDER))
        return self._template.replace(_PLACEHOLDER.encode(), execution_id.encode(), 1)


def _start(definition: bytes, context: dict[str, Any], execution_id: str) -> NodeExecutionMessage:
    return NodeExecutionMessage(
        workflow_id="bench",
        execution_id=execution_id,
        current_node="n1",
        workflow_definition=msgspec.Raw(definition),
        accumulated_context=context,
    )


def _measure_sizes(definition: bytes, context: dict[str, Any], nodes: int) -> FloorSizes:
    """Run one workflow in this process and record the size of every message it publishes."""
    executor = Executor(MemoryStore())
    body = encode(_start(definition, context, "sizes"))
    messages, running, success = [len(body)], list[int](), list[int]()
    completion = 0
    seen: list[NodeStatusMessage] = []  # the running status of the current step
    while not completion:
        seen.clear()
        outbox = executor.step(decode_execution(body), lambda st, _blocking: seen.append(st))
        if outbox.report.outcome != "success" or len(seen) != 1:
            step = len(running) + 1
            raise BenchError(f"the bench workflow failed at step {step}: {outbox.report.error}")
        running.append(len(encode(seen[0])))
        success.append(len(encode(outbox.statuses[-1])))
        if outbox.completion is not None:
            completion = len(encode(outbox.completion))
        else:
            body = encode(outbox.messages[0])
            messages.append(len(body))
    if len(messages) != nodes:
        raise BenchError(f"the bench workflow ran {len(messages)} of {nodes} nodes")
    return FloorSizes(messages, running, success, completion)


def _measure_script(definition: bytes, context: dict[str, Any]) -> FloorSizes:
    """Run one workflow with parallel branches in this process and record, step by step, what
    each step publishes: its statuses (size, status), its next messages (size, the step they
    start) and its completion. The floor replays this script for every workflow."""
    executor = Executor(MemoryStore())
    first = encode(_start(definition, context, "sizes"))
    queue: deque[tuple[bytes, int]] = deque([(first, 0)])
    steps: dict[int, dict[str, Any]] = {}
    sizes: dict[int, int] = {0: len(first)}
    running: dict[int, int] = {}
    success: dict[int, int] = {}
    completion = 0
    seen: list[NodeStatusMessage] = []  # the running status of the current step
    while queue:
        body, index = queue.popleft()
        msg = decode_execution(body)
        seen.clear()
        outbox = executor.step(msg, lambda st, _blocking: seen.append(st))
        if outbox.report.outcome != "success":
            raise BenchError(
                f"the bench workflow failed at {msg.current_node}: {outbox.report.error}"
            )
        statuses = [*seen, *outbox.statuses]
        nexts = []
        for nxt in outbox.messages:
            encoded = encode(nxt)
            child = len(sizes)
            sizes[child] = len(encoded)
            queue.append((encoded, child))
            nexts.append([len(encoded), child])
        size = len(encode(outbox.completion)) if outbox.completion is not None else 0
        completion = max(completion, size)
        running[index] = len(encode(seen[0])) if seen else 0
        success[index] = len(encode(outbox.statuses[-1])) if outbox.statuses else 0
        steps[index] = {
            "node": int(msg.current_node[1:]) - 1,
            "statuses": [[len(encode(st)), st.status] for st in statuses],
            "nexts": nexts,
            "completion": size,
        }
    order = range(len(sizes))
    return FloorSizes(
        [sizes[i] for i in order],
        [running[i] for i in order],
        [success[i] for i in order],
        completion,
        [steps[i] for i in order],
    )


# -- what a phase saw --------------------------------------------------------------------------


@dataclass
class Trace:
    """Timestamps of one phase, keyed by workflow: publish, success of step k, completion."""

    published: dict[str, int] = field(default_factory=dict)
    success: dict[str, dict[int, int]] = field(default_factory=dict)
    completed: dict[str, int] = field(default_factory=dict)  # completed ones only
    running: int = 0
    successes: int = 0
    completions: int = 0  # every completion, whatever its status


@dataclass
class Figures:
    """Results of one phase of one contender."""

    workflows: int
    nodes: int
    completed: int
    successes: int
    running: int
    wall: float  # seconds from the first publish to the last completion
    latencies: list[float]  # ms, every node of every workflow
    by_step: dict[int, list[float]]  # ms per step index (0-based)

    @property
    def rate(self) -> float:
        """Node executions per second."""
        return self.successes / self.wall if self.wall > 0 else 0.0

    def percentile(self, p: float) -> float:
        return percentile(self.latencies, p)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (NaN when there is no value)."""
    if not values:
        return math.nan
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def figures(trace: Trace, workflows: int, nodes: int, *, in_time: bool = False) -> Figures:
    """Latencies (node k minus node k-1, node 1 minus publish) and throughput of a trace.
    `in_time`: take the nodes in the order of their last success (parallel branches finish
    in any order), so every latency is a gap between two successive successes."""
    latencies: list[float] = []
    by_step: dict[int, list[float]] = {}
    for wf, steps in trace.success.items():
        prev = trace.published.get(wf)
        if in_time:
            steps = dict(enumerate(sorted(steps.values())))
        for k in range(nodes):
            at = steps.get(k)
            if at is None or prev is None:
                break
            ms = (at - prev) * MS
            latencies.append(ms)
            by_step.setdefault(k, []).append(ms)
            prev = at
    start = min(trace.published.values(), default=0)
    end = max(trace.completed.values(), default=start)
    return Figures(
        workflows,
        nodes,
        len(trace.completed),
        trace.successes,
        trace.running,
        (end - start) / 1e9,
        latencies,
        by_step,
    )


# -- the bench side of the wire ---------------------------------------------------------------

Got = tuple[Any, bytes]  # (properties, body)


class Wire:
    """The bench's connection: publishes start messages, consumes what the contender
    publishes into per-queue lists (auto-ack: the bench only reads)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.conn: BlockingConnection = endpoint.connect("runeworker bench")
        with endpoint.errors("cannot connect to RabbitMQ"):
            self.ch: BlockingChannel = self.conn.channel()
        self.got: dict[str, list[Got]] = {}
        self._tags: list[str] = []
        # declare arguments of the queues that are not classic (queue -> arguments): every
        # declare of a queue must carry the arguments it was first declared with
        self.typed: dict[str, dict[str, Any]] = {}

    def listen(self, queues: list[str]) -> None:
        """Start consuming `queues` (their lists are emptied)."""
        for q in queues:
            self.got[q] = []
            sink = self.got[q]
            self._tags.append(
                self.ch.basic_consume(
                    q, lambda _c, _m, props, body, s=sink: s.append((props, body)), auto_ack=True
                )
            )

    def unlisten(self) -> None:
        for tag in self._tags:
            self.ch.basic_cancel(tag)
        self._tags = []

    def publish(self, queue: str, body: bytes, message_id: str | None = None) -> None:
        """As the Rune API: default exchange, routing key = queue, persistent."""
        props = pika.BasicProperties(delivery_mode=_PERSISTENT, message_id=message_id)
        self.ch.basic_publish("", queue, body, props)

    def consumers_and_messages(self, queue: str) -> tuple[int, int]:
        ok = self.ch.queue_declare(queue, durable=True, arguments=self.typed.get(queue))
        return ok.method.consumer_count, ok.method.message_count

    def wait_consumers(
        self, queue: str, count: int, alive: Callable[[], bool], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while self.consumers_and_messages(queue)[0] < count:
            if not alive():
                raise BenchError(f"the contender exited before consuming {queue}")
            if time.monotonic() > deadline:
                raise BenchError(f"fewer than {count} consumers on {queue} after {timeout:.0f} s")
            self.conn.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(*AMQP_ERRORS):
            self.conn.close()


def drive(
    wire: Wire,
    send: Callable[[int], None],
    total: int,
    inflight: int,
    expected: dict[str, int],
    completion_queue: str,
    timeout: float,
) -> None:
    """Publish `total` workflows keeping at most `inflight` running (`send(i)` publishes
    workflow i); return when every queue of `expected` received its count. A missing
    message is a BenchError naming the counts."""
    sent = 0
    deadline = time.monotonic() + timeout
    while sent < min(inflight, total):
        send(sent)
        sent += 1
    while any(len(wire.got[q]) < n for q, n in expected.items()):
        if time.monotonic() > deadline:
            counts = ", ".join(f"{q} {len(wire.got[q])}/{n}" for q, n in expected.items())
            raise BenchError(f"timed out after {timeout:.0f} s: received {counts}")
        wire.conn.process_data_events(time_limit=0.05 if sent < total else 0.2)
        while sent < total and sent - len(wire.got[completion_queue]) < inflight:
            send(sent)
            sent += 1
