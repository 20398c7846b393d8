"""A canvas graph with every node type that needs no credential, its `data` shaped as the web
app's editor saves it (the fields and types of `BuiltInNodeDataMap` in
apps/web/src/features/canvas/types.ts of rune-org/rune), converted by `runeworker.canvas` and run
by `runeworker run` to its completion: each converted parameter shape must be one the worker's
nodes accept, and each route (if, switch, merge after a dead path) the one the editor drew."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apimock import MockApi, Reply, serving
from templatekit import runeworker

ITEMS = [{"name": "b", "n": 2}, {"name": "a", "n": 5}, {"name": "c", "n": 1}, {"name": "d", "n": 9}]


def node(node_id: str, kind: str, x: float, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "position": {"x": x, "y": 0.0}, "data": data}


def edge(src: str, dst: str, handle: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"{src}->{dst}", "source": src, "target": dst, "type": "default"}
    if handle is not None:
        out |= {"sourceHandle": handle, "label": handle}
    return out


TRIGGERS = {
    "trigger": {},
    "scheduledTrigger": {"amount": 1, "unit": "hours"},
    "webhookTrigger": {"webhookGuid": "6f1d2c3e-0000-4000-8000-000000000001"},
}


def graph(api_url: str, trigger: str = "trigger") -> dict[str, Any]:
    nodes = [
        node("t", trigger, 0, label="Start", **TRIGGERS[trigger]),
        node(
            "h",
            "http",
            1,
            label="Fetch",
            method="GET",
            url=f"{api_url}/items",
            headers={"Accept": "application/json"},
            query={"page": "1"},
            timeout=10,
            retry=1,
            retry_delay=0,
            raise_on_status="4xx,5xx",
            ignore_ssl=False,
        ),
        node(
            "f",
            "filter",
            2,
            label="Big",
            input_array="$Fetch.body.items",
            match_mode="all",
            rules=[{"field": "n", "operator": ">", "value": "1"}],
        ),
        node(
            "s",
            "sort",
            3,
            label="Ordered",
            rules=[{"field": "n", "direction": "desc", "type": "number"}],
        ),
        node("l", "limit", 4, label="Top", count="2"),
        node("sp", "split", 5, label="Each", array_field="$Top.$json"),
        node(
            "e",
            "edit",
            6,
            label="Shape",
            mode="assignments",
            assignments=[{"name": "who", "value": "$item.name", "type": "string"}],
        ),
        node("ag", "aggregator", 7, label="Collect"),
        node(
            "sw",
            "switch",
            8,
            label="Route",
            rules=[
                {"value": "$Top.count", "operator": "==", "compare": "3"},
                {"value": "$Top.count", "operator": "==", "compare": "2"},
            ],
        ),
        node("n0", "log", 9, label="Never", message="not this case"),
        node("nf", "log", 9, label="Fallback", message="no case"),
        node(
            "dn", "dateTimeNow", 10, label="Now", format="2006-01-02T15:04:05Z07:00", timezone="UTC"
        ),
        node(
            "da",
            "dateTimeAdd",
            11,
            label="Later",
            date="$Now.result",
            amount=2,
            unit="days",
            timezone="UTC",
        ),
        node(
            "ds",
            "dateTimeSubtract",
            12,
            label="Earlier",
            date="$Later.result",
            amount=1,
            unit="days",
        ),
        node(
            "df",
            "dateTimeFormat",
            13,
            label="Day",
            date="$Earlier.result",
            format="2006-01-02",
            timezone="UTC",
        ),
        node("dp", "dateTimeParse", 14, label="Parsed", date="$Earlier.result", timezone="UTC"),
        node("w", "wait", 15, label="Pause", amount=1, unit="seconds"),
        node("i", "if", 15, label="Recent", expression="$Parsed.year >= 2000"),
        node("old", "log", 16, label="Old", message="before 2000"),
        node("m", "merge", 17, label="Join", wait_mode="wait_for_all", timeout=30),
        node("r", "log", 18, label="Report", message="top: $Collect.aggregated", level="info"),
        node(
            "note", "stickyNote", 0, content="every node type without a credential", color="yellow"
        ),
    ]
    edges = [
        edge("t", "h"), edge("h", "f"), edge("f", "s"), edge("s", "l"), edge("l", "sp"),
        edge("sp", "e"), edge("e", "ag"), edge("ag", "sw"),
        edge("sw", "n0", "switch-case-0"), edge("sw", "dn", "switch-case-1"),
        edge("sw", "nf", "switch-fallback"),
        edge("dn", "da"), edge("da", "ds"), edge("ds", "df"), edge("df", "dp"),
        edge("dp", "w"), edge("dp", "i"),
        edge("w", "m"), edge("i", "m", "true"), edge("i", "old", "false"),
        edge("m", "r"),
    ]  # fmt: skip
    return {"nodes": nodes, "edges": edges}


@pytest.fixture
def api() -> Iterator[MockApi]:
    yield from serving()


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_credential_free_node_type_runs_as_the_editor_saves_it(
    api: MockApi, tmp_path: Path, trigger: str
) -> None:
    api.reply("GET", "/items", Reply({"items": ITEMS}))
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph(api.url, trigger)))
    proc = runeworker("run", path, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    *statuses, done = [json.loads(line) for line in proc.stdout.splitlines()]
    assert done["status"] == "completed"
    failed = [(s["node_name"], s.get("error")) for s in statuses if s["status"] == "failed"]
    assert failed == []

    (request,) = api.requests
    assert (request.path, request.query) == ("/items", {"page": ["1"]})
    assert request.headers["accept"] == "application/json"
    ctx = done["final_context"]
    assert ctx["$Big"]["count"] == 3
    assert [i["name"] for i in ctx["$Ordered"]["$json"]] == ["d", "a", "b"]
    assert [i["name"] for i in ctx["$Top"]["$json"]] == ["d", "a"]
    # Inside a split `$json` is still the list before it (upstream sets only `$item`), so each
    # branch's edit sets `who` from its item on every element of that list.
    aggregated = ctx["$Collect"]["aggregated"]
    assert [[e["who"] for e in branch["$json"]] for branch in aggregated] == [
        ["d", "d"],
        ["a", "a"],
    ]
    assert ctx["$Route"]["output_index"] == 1
    ran = {s["node_name"] for s in statuses}
    assert not ran & {"Never", "Fallback", "Old"}
    now = datetime.fromisoformat(ctx["$Now"]["result"])
    assert datetime.fromisoformat(ctx["$Later"]["result"]) - now == timedelta(days=2)
    assert datetime.fromisoformat(ctx["$Earlier"]["result"]) - now == timedelta(days=1)
    assert ctx["$Day"]["result"] == (now + timedelta(days=1)).strftime("%Y-%m-%d")
    assert ctx["$Parsed"]["year"] == (now + timedelta(days=1)).year
    assert ctx["$Recent"]["result"] is True
    assert ctx["$Join"]["_merge_sources"] == ["w", "i"]  # both parents arrived
    assert ctx["$Report"]["message"].startswith("top: [")
    assert [s["status"] for s in statuses if s["node_name"] == "Pause"] == [
        "running",
        "waiting",
        "success",
    ]
    joined = [s["status"] for s in statuses if s["node_name"] == "Join"]
    assert joined == ["running", "waiting", "running", "success"]  # the wait arrives last
