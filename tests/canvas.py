"""A Rune template's canvas graph (`workflow_data`: React Flow nodes and edges) turned into the
workflow definition the Rune API hands to workers, as `canvasToWorkflowData` does in
apps/web/src/lib/workflow-dsl.ts of rune-org/rune, for the node types the official templates use
(trigger, integration kinds, split, dateTimeNow, agent, if, sticky notes). Credentials are
attached the way the API resolves them before publishing: `{id, name, type, values}`."""

from __future__ import annotations

import re
from typing import Any

WORKER_TYPES = {"trigger": "ManualTrigger", "if": "conditional"}
TRIGGERS = ("trigger", "scheduledTrigger", "webhookTrigger")


def node_name(label: str) -> str:
    """`sanitizeNodeLabel` (apps/web/src/features/canvas/utils/nodeLabels.ts)."""
    name = re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9_-]", "_", re.sub(r"\s+", "_", label)))
    name = re.sub(r"^[-0-9]+", "", name)
    return name if re.match(r"^[a-zA-Z_]", name) else f"_{name}"


def parameters(node: dict[str, Any], edges: list[dict[str, Any]]) -> dict[str, Any]:
    """`toWorkerParameters` for the types the templates use."""
    data, kind = node.get("data") or {}, node["type"]
    if kind in TRIGGERS:
        return {}
    if kind.startswith("integration."):
        return dict(data.get("arguments") or {})
    if kind == "split":
        return {"input_array": str(data["array_field"])} if data.get("array_field") else {}
    if kind == "dateTimeNow":
        return {k: data[k] for k in ("format", "timezone") if str(data.get(k) or "").strip()}
    if kind == "agent":
        params = {k: data[k] for k in ("model", "system_prompt") if data.get(k)}
        messages = [{k: v for k, v in m.items() if k != "ui_id"} for m in data.get("messages", [])]
        return params | ({"messages": messages} if messages else {})
    if kind == "if":
        out = {e.get("sourceHandle"): e["id"] for e in edges if e["source"] == node["id"]}
        params = {f"{h}_edge_id": out[h] for h in ("true", "false") if h in out}
        expression = str(data.get("expression") or "").strip()
        return params | ({"expression": expression} if expression else {})
    raise ValueError(f"node type {kind} is not converted here")


def to_definition(
    template: dict[str, Any], credentials: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The definition of `template["workflow_data"]`; `credentials` maps a node type to the
    resolved credential its nodes get."""
    graph = template["workflow_data"]
    nodes, edges = graph["nodes"], graph["edges"]
    out = []
    for n in (n for n in nodes if n["type"] != "stickyNote"):
        node = {
            "id": n["id"],
            "name": node_name(n["data"]["label"]),
            "trigger": n["type"] in TRIGGERS,
            "type": WORKER_TYPES.get(n["type"], n["type"]),
            "parameters": parameters(n, edges),
            "output": {},
            "position": [n["position"]["x"], n["position"]["y"]],
        }
        if credentials and n["type"] in credentials:
            node["credentials"] = credentials[n["type"]]
        out.append(node)
    links = [{"id": e["id"], "src": e["source"], "dst": e["target"]} for e in edges]
    for link, e in zip(links, edges, strict=True):
        if "label" in e:
            link["label"] = e["label"]
    notes = [
        {"id": n["id"], "content": n["data"].get("content", "")}
        for n in nodes
        if n["type"] == "stickyNote"
    ]
    return {"nodes": out, "edges": links, "notes": notes}
