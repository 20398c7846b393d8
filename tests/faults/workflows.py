"""The workflow mix of the fault suite and what each execution must produce.

Every workflow is built so that each of its nodes runs at most once per execution (the merge
runs once per arrival but reports `success` only for the arrival that releases it), so a node
status is duplicated exactly when one (execution, node) has more than one `success` or
`failed` status. Each planned execution knows the terminal status of every node it must run
and the status of its completion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runeworker.engine.local import start_message
from runeworker.engine.messages import NodeExecutionMessage

SUCCESS = "success"
FAILED = "failed"
COMPLETED = "completed"
SPIN_TYPE = "fault.spin"  # registered by tests/faults/faultnodes.py


@dataclass(frozen=True)
class Planned:
    """One execution to publish and what it must end with."""

    kind: str
    message: NodeExecutionMessage
    statuses: dict[str, str]  # node id -> the one terminal status it must report
    completion: str  # the one completion status

    @property
    def execution_id(self) -> str:
        return self.message.execution_id


def _node(node_id: str, type_: str, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": node_id, "name": node_id, "type": type_, "parameters": params}
    if type_ == "ManualTrigger":
        out["trigger"] = True
    return out


def _log(node_id: str) -> dict[str, Any]:
    # DEBUG: under the serve log level, so thousands of steps leave the log readable
    return _node(node_id, "log", message=f"{node_id} ran", level="debug")


def _edge(src: str, dst: str, edge_id: str = "") -> dict[str, str]:
    return {"id": edge_id or f"{src}-{dst}", "src": src, "dst": dst}


def _definition(nodes: list[dict[str, Any]], edges: list[dict[str, str]]) -> bytes:
    return json.dumps({"nodes": nodes, "edges": edges}).encode()


def _linear(length: int = 10) -> bytes:
    ids = [f"n{i}" for i in range(1, length + 1)]
    nodes = [_node("start", "ManualTrigger"), *map(_log, ids)]
    edges = [_edge(a, b) for a, b in zip(["start", *ids], ids, strict=False)]
    return _definition(nodes, edges)


def _fan(width: int = 3) -> bytes:
    """start -> b1..bN in parallel -> join (merge, wait_for_all) -> after."""
    branches = [f"b{i}" for i in range(1, width + 1)]
    join = _node("join", "merge", wait_mode="wait_for_all", timeout=600)
    nodes = [_node("start", "ManualTrigger"), *map(_log, branches), join, _log("after")]
    edges = [_edge("start", b) for b in branches] + [_edge(b, "join") for b in branches]
    return _definition(nodes, [*edges, _edge("join", "after")])


def _conditional() -> bytes:
    """start -> check ($input.n > 5) -> hi -> hi2, or lo -> lo2."""
    check = _node("check", "conditional", expression="$input.n > 5",
                  true_edge_id="e-hi", false_edge_id="e-lo")  # fmt: skip
    nodes = [_node("start", "ManualTrigger"), check, *map(_log, ["hi", "hi2", "lo", "lo2"])]
    edges = [_edge("start", "check"), _edge("check", "hi", "e-hi"), _edge("check", "lo", "e-lo")]
    return _definition(nodes, [*edges, _edge("hi", "hi2"), _edge("lo", "lo2")])


def _error_branch() -> bytes:
    """start -> check ($input.count > 10; a non-number fails it) -> big | small | recover
    (the error edge of the `branch` policy)."""
    check = _node("check", "conditional", expression="$input.count > 10",
                  true_edge_id="e-big", false_edge_id="e-small")  # fmt: skip
    check["error"] = {"type": "branch", "error_edge": "e-err"}
    nodes = [_node("start", "ManualTrigger"), check, *map(_log, ["big", "small", "recover"])]
    edges = [_edge("start", "check"), _edge("check", "big", "e-big")]
    edges += [_edge("check", "small", "e-small"), _edge("check", "recover", "e-err")]
    return _definition(nodes, edges)


def _spin() -> bytes:
    return _definition([_node("start", "ManualTrigger"), _node("spin", SPIN_TYPE)],
                       [_edge("start", "spin")])  # fmt: skip


LINEAR, FAN, CONDITIONAL, ERROR_BRANCH = _linear(), _fan(), _conditional(), _error_branch()
SPIN = _spin()
KINDS = ("linear", "fan", "conditional", "error-branch")


def _plan(kind: str, i: int) -> Planned:
    """The i-th execution of `kind`; inputs vary with i so that both sides of every
    condition and the error edge all run."""
    if kind == "linear":
        ok = {f"n{k}": SUCCESS for k in range(1, 11)}
        return Planned(kind, start_message(LINEAR), ok, COMPLETED)
    if kind == "fan":
        ok = {node_id: SUCCESS for node_id in ("b1", "b2", "b3", "join", "after")}
        return Planned(kind, start_message(FAN), ok, COMPLETED)
    if kind == "conditional":
        n = i % 11
        path = ("hi", "hi2") if n > 5 else ("lo", "lo2")
        ok = {"check": SUCCESS} | {node_id: SUCCESS for node_id in path}
        return Planned(kind, start_message(CONDITIONAL, {"n": n}), ok, COMPLETED)
    count: int | str = "many" if i % 3 == 0 else i % 20
    if isinstance(count, str):
        expected = {"check": FAILED, "recover": SUCCESS}
    else:
        expected = {"check": SUCCESS, "big" if count > 10 else "small": SUCCESS}
    return Planned(kind, start_message(ERROR_BRANCH, {"count": count}), expected, COMPLETED)


def mix(count: int) -> list[Planned]:
    """`count` executions, the four kinds interleaved."""
    return [_plan(KINDS[i % len(KINDS)], i // len(KINDS)) for i in range(count)]


def spinners(count: int) -> list[Planned]:
    """Executions whose only node never returns: each ends dead-lettered as poison, with a
    `failed` status for the node and a `failed` completion."""
    return [Planned("spin", start_message(SPIN), {"spin": FAILED}, FAILED) for _ in range(count)]
