"""Mutated workflows: the examples and the official templates with parameters, node types,
error policies and edges replaced by values of other kinds run to an outcome in-process, or
are refused before they start with a WorkflowError; no exception escapes the engine, and every
execution that starts completes.

(tests/unit/test_message_fuzz.py mutates the bytes of execution messages; this one mutates the
workflow as an author, or a buggy canvas, could. Nodes that would leave the machine, http,
smtp, agent and the integrations, are made log nodes first: tests talk to loopback only.)"""

from __future__ import annotations

import copy
import json
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import pytest
from templatekit import TEMPLATES, definition

from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.state import MemoryStore
from runeworker.errors import WorkflowError

EXAMPLES = Path(__file__).resolve().parents[2] / "runeworker" / "examples"
_LEAVE = ("http", "smtp", "agent")
VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, 1e308, 2**70, -(2**70), "", " ", "$", "{{", "}}", "$input",
    "{{ $input }}", "$input.x[0]", "{{ $nope.a }}", [], {}, [[[]]], {"a": None}, "x" * 5000,
    "1970-01-01", "NaN", "2026-13-45T99:99:99Z", "\u0000", "é", "$json", "{{ $json.a }}",
    [1, "a", None], {"$input": 1}, -0.0, "5m", "-5s", "999999999999h",
]  # fmt: skip
TYPES = [
    "log", "conditional", "switch", "edit", "filter", "sort", "limit", "split", "aggregator",
    "merge", "datetime.now", "datetime.add", "datetime.format", "datetime.parse", "wait",
    "nope.type", "ManualTrigger",
]  # fmt: skip
NAMES = ["message", "expression", "rules", "field", "count", "duration", "amount", "unit",
         "timeout", "items", "cases", "assignments", "input_array", "format", "mode"]  # fmt: skip
INPUTS: list[Any] = [None, {"x": 1}, {"items": [3, 1, 2]}, {"a": {"b": [1, {"c": "d"}]}}]


def _local(workflow: dict[str, Any]) -> dict[str, Any]:
    """`workflow` with every node that would reach another machine made a log node."""
    out = copy.deepcopy(workflow)
    for node in out["nodes"]:
        if node["type"] in _LEAVE or node["type"].startswith("integration."):
            node.update(type="log", parameters={"message": "stand-in"}, credentials=None)
    return out


def _seeds() -> list[dict[str, Any]]:
    examples = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    templates = [definition(p.stem) for p in sorted(TEMPLATES.glob("*.json"))]
    return [_local(w) for w in examples + templates]


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*at, index))


def _mutate(rng: random.Random, workflow: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(workflow)
    nodes, edges = out["nodes"], out.get("edges") or []
    for _ in range(rng.randrange(1, 4)):
        roll, node = rng.random(), rng.choice(nodes)
        if roll < 0.6:
            params = node.get("parameters") or {}
            node["parameters"] = params
            path = rng.choice(list(_paths(params)))
            value = copy.deepcopy(rng.choice(VALUES))
            if not path:
                params[rng.choice(NAMES)] = value
            else:
                parent = params
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = value
        elif roll < 0.75:
            node["type"] = rng.choice(TYPES)
        elif roll < 0.85:
            node["error"] = rng.choice(
                [{"type": "ignore"}, {"type": "halt"}, {"type": "branch", "error_edge": "zz"},
                 {"type": None}, "x", None]
            )  # fmt: skip
        elif edges:
            edge = rng.choice(edges)
            key = rng.choice(["src", "dst", "src_handle", "label"])
            edge[key] = rng.choice([None, "", "true", "false", 1, rng.choice(nodes)["id"]])
    return out


class _Stuck(Exception):
    pass


def _stuck(_signum: int, _frame: FrameType | None) -> None:
    raise _Stuck


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mutated_workflows_run_to_an_outcome_or_are_refused(seed: int) -> None:
    rng, seeds = random.Random(seed), _seeds()
    ran = 0
    previous = signal.signal(signal.SIGALRM, _stuck)
    try:
        for _ in range(800):
            workflow = _mutate(rng, rng.choice(seeds))
            try:
                start = start_message(msgspec.json.encode(workflow), rng.choice(INPUTS))
            except WorkflowError as exc:  # no start node: the graph names what is wrong
                assert str(exc)
                continue
            signal.setitimer(signal.ITIMER_REAL, 10.0)  # a step loop would hang the suite
            try:
                runner = LocalRunner(Executor(MemoryStore()), sleep=lambda _s: None)
                done = runner.run(start)  # failed or not, an outcome; never an exception
                assert done is not None, "the execution never completed"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            ran += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert ran > 600  # most mutations leave a workflow that starts
