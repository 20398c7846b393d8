"""`runeworker bench --codec`: the message codec of one step, runeworker's path against stdlib json.

The message is the execution message of a 100-node workflow carrying a 50-node context (about
45 KB). One operation is what a step does to it: decode, add one node's output to the context,
build the next message, encode. runeworker's path is the worker's: `decode_execution` (typed
Structs, the definition kept as `msgspec.Raw`, context values kept as `msgspec.Raw` until
read), the definition lookup of the executor (its parse is cached, the lookup still copies
and hashes the definition bytes), a lazy copy of the context, a new `NodeExecutionMessage`,
`encode`. The stdlib path decodes everything into dicts
and lists and dumps them back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from runeworker.engine.context import lazy
from runeworker.engine.messages import NodeExecutionMessage, decode_execution, encode
from runeworker.engine.plan import Definitions

OUTPUT = {"status": 200, "body": {"id": 51, "ok": True}, "duration_ms": 12}


def _node(k: int) -> dict[str, Any]:
    kinds = ("http", "log", "conditional")
    kind = kinds[k % 3]
    params: dict[str, Any]
    if kind == "http":
        params = {
            "method": "POST",
            "url": f"https://api.example.com/v1/orders/{k}",
            "headers": {"Content-Type": "application/json", "X-Request": f"wf-{k}"},
            "body": {"order": "{{ $input.order_id }}", "step": k},
            "timeout": 10,
        }
    elif kind == "log":
        text = f"step {k}: order {{{{ $input.order_id }}}} is {{{{ $n{k - 1}.status }}}}"
        params = {"message": text, "level": "info"}
    else:
        params = {
            "expression": f"$n{k - 1}.status == 200",
            "true_edge_id": f"e{k}",
            "false_edge_id": f"x{k}",
        }
    return {
        "id": f"n{k}",
        "name": f"Node {k}",
        "type": kind,
        "parameters": params,
        "error": {"type": "halt"},
        "notes": f"node {k} of the codec benchmark",
    }


def _output(k: int) -> dict[str, Any]:
    return {
        "status": 200,
        "headers": {"content-type": "application/json", "x-trace": f"trace-{k:08d}"},
        "body": {
            "id": k,
            "customer": f"customer-{k:05d}",
            "items": [k, k + 1, k + 2],
            "total": k * 9.99,
            "paid": k % 2 == 0,
            "note": "standard delivery, signature required",
            "currency": "EUR",
            "warehouse": f"warehouse-{k % 7}",
        },
        "duration_ms": 20 + k,
    }


def codec_message() -> bytes:
    """The execution message of node 51 of a 100-node workflow after 50 nodes ran."""
    nodes = [_node(k) for k in range(1, 101)]
    edges = [
        {"id": f"e{k}", "src": f"n{k}", "dst": f"n{k + 1}", "label": "next"} for k in range(1, 100)
    ]
    context: dict[str, Any] = {"$input": {"order_id": "A-1001", "customer": "Ada"}}
    context.update({f"$Node {k}": _output(k) for k in range(1, 51)})
    return msgspec.json.encode(
        {
            "workflow_id": "codec",
            "execution_id": "6f1c0a52-8a7e-4c8f-9d35-0b6a2f4d9e11",
            "workflow_version": 3,
            "workflow_version_id": 17,
            "current_node": "n51",
            "workflow_definition": {"nodes": nodes, "edges": edges},
            "accumulated_context": context,
            "from_node": "n50",
            "is_worker_initiated": True,
            "branch_token": "a" * 20,
        }
    )


# the executor's cache of parsed definitions (node types do not matter to a lookup)
_DEFINITIONS = Definitions({}, max_steps=10_000)


def runeworker_step(body: bytes) -> bytes:
    """Decode, look the definition up, add an output, build and encode the next message."""
    msg = decode_execution(body)
    _DEFINITIONS.get(msg.workflow_definition)
    ctx = lazy(msg.accumulated_context)  # what the executor does: unread values stay bytes
    ctx["$Node 51"] = OUTPUT
    nxt = NodeExecutionMessage(
        workflow_id=msg.workflow_id,
        execution_id=msg.execution_id,
        current_node="n52",
        workflow_definition=msg.workflow_definition,
        workflow_version=msg.workflow_version,
        workflow_version_id=msg.workflow_version_id,
        accumulated_context=ctx,
        lineage_stack=msg.lineage_stack,
        from_node="n51",
        is_worker_initiated=True,
        branch_token="b" * 20,
    )
    return encode(nxt)


def stdlib_step(body: bytes) -> bytes:
    """The same operation with `json`: everything becomes dicts and lists."""
    msg = json.loads(body)
    msg["accumulated_context"] = dict(msg["accumulated_context"])
    msg["accumulated_context"]["$Node 51"] = OUTPUT
    msg.update(current_node="n52", from_node="n51", branch_token="b" * 20)
    return json.dumps(msg, separators=(",", ":")).encode()


@dataclass(frozen=True)
class CodecResult:
    size: int  # bytes of the message
    runeworker_us: float  # best per-operation time over the rounds
    stdlib_us: float

    @property
    def ratio(self) -> float:
        return self.stdlib_us / self.runeworker_us


def _best(op: Callable[[bytes], bytes], body: bytes, rounds: int, per_round: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            op(body)
        best = min(best, (time.perf_counter() - start) / per_round)
    return best * 1e6


def codec_benchmark(rounds: int = 7, per_round: int = 200) -> CodecResult:
    """Time both paths on the same message (best round of each, after a warm-up)."""
    body = codec_message()
    if json.loads(runeworker_step(body)) != json.loads(stdlib_step(body)):
        raise AssertionError("the two codec paths disagree on the next message")
    return CodecResult(
        len(body),
        _best(runeworker_step, body, rounds, per_round),
        _best(stdlib_step, body, rounds, per_round),
    )
