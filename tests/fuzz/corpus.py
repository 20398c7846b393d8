"""The real messages the fuzzer starts from.

Every shipped example (runeworker/examples) and official template (tests/templates, converted as
the web app converts them) becomes a workflow that stays on this machine: its http nodes call
the loopback server (path and query kept), its smtp nodes a closed loopback port, its agent and
integration nodes the loopback server through the serve config's base URLs. Each node that
takes a credential gets one, resolved as the Rune API embeds it, and one log node carries an
unused one: their values hold the case's planted secret (`SECRET_MARK`), which nothing the
worker publishes or logs may show.

Each workflow is then run in this process (the engine with an in-memory state store, the same
node settings as the serve) and every message of the run is kept: the start message, and the
mid-workflow ones a worker publishes (next nodes, split branches with their lineage, aggregator
and merge arrivals, ghosts, the message after a resumed wait).
"""

from __future__ import annotations

import copy
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from runeworker.canvas import convert
from runeworker.engine.executor import Executor
from runeworker.engine.local import start_message
from runeworker.engine.messages import decode_execution, encode, encode_execution
from runeworker.engine.registry import NodeSettings
from runeworker.engine.state import MemoryStore

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "runeworker" / "examples"
TEMPLATES = REPO / "tests" / "templates"
# The planted secret: SECRET_MARK + the case's number, so that a leak names its case.
SECRET_MARK = "Zq9SECRETfz"
PLACEHOLDER = "@@SECRET@@"  # in the seeds; each case puts its own secret in
MAX_MESSAGES = 40  # kept of one run


@dataclass(frozen=True)
class Seed:
    """One real message, with the placeholder where the secret goes."""

    name: str  # workflow/message, e.g. "split/greet#3"
    tree: dict[str, Any]
    mid: bool  # published by a worker (not a start message)
    resume: bool = False  # a timer's payload: consumed from the resume queue


def secret_of(index: int) -> str:
    return f"{SECRET_MARK}{index:06d}"


# -- the workflows -----------------------------------------------------------------------------


def _http_credential(n: int) -> dict[str, Any]:
    shapes = [
        ("header", {"field": "X-Api-Key", "value": PLACEHOLDER}),
        ("token", {"token": PLACEHOLDER}),
        ("basic_auth", {"username": "fuzz", "password": PLACEHOLDER}),
        ("api_key", {"key": "X-Key", "value": PLACEHOLDER}),
        ("oauth2", {"access_token": PLACEHOLDER, "token_type": "Bearer"}),
    ]
    kind, values = shapes[n % len(shapes)]
    return {"id": f"cred-{n}", "name": f"{kind} credential", "type": kind, "values": values}


def localize(definition: dict[str, Any], loopback: str, closed_port: int) -> dict[str, Any]:
    """A copy that reaches nothing beyond this machine, with credentials planted."""
    out = copy.deepcopy(definition)
    scheme, host = urlsplit(loopback)[:2]
    planted_log = False
    for i, node in enumerate(out["nodes"]):
        kind = node.get("type", "")
        params = node.setdefault("parameters", {}) or {}
        if kind == "http":
            parts = urlsplit(str(params.get("url", "/")))
            params["url"] = urlunsplit((scheme, host, parts.path or "/", parts.query, ""))
            node["credentials"] = _http_credential(i)
        elif kind == "smtp":
            values = {"host": "127.0.0.1", "port": closed_port, "username": "fuzz",
                      "password": PLACEHOLDER, "security": "none"}  # fmt: skip
            node["credentials"] = {"id": "smtp", "name": "relay", "type": "smtp", "values": values}
        elif kind == "agent":
            values = {"api_key": PLACEHOLDER}
            node["credentials"] = {"id": "llm", "name": "LLM", "type": "api_key", "values": values}
        elif kind.startswith("integration.telegram"):
            values = {"token": PLACEHOLDER}
            node["credentials"] = {"id": "tg", "name": "bot", "type": "token", "values": values}
        elif kind.startswith("integration."):
            values = {"access_token": PLACEHOLDER, "token_type": "Bearer"}
            node["credentials"] = {"id": "oa", "name": "oauth", "type": "oauth2", "values": values}
        elif kind == "log" and not planted_log:  # carried, never used: still a secret
            node["credentials"] = {"id": "unused", "name": "unused", "type": "token",
                                   "values": {"token": PLACEHOLDER}}  # fmt: skip
            planted_log = True
    return out


def workflows(loopback: str, closed_port: int) -> list[tuple[str, dict[str, Any], Any]]:
    """(name, definition, inputs) of every example and template, localized."""
    found: list[tuple[str, dict[str, Any], Any]] = []
    for path in sorted(EXAMPLES.glob("*.json")):
        wf = json.loads(path.read_text())
        inputs = (wf.get("metadata") or {}).get("sample_input")
        found.append((path.stem, localize(wf, loopback, closed_port), inputs))
    for path in sorted(TEMPLATES.glob("*.json")):
        wf = convert(json.loads(path.read_text()))
        found.append((path.stem, localize(wf, loopback, closed_port), {"fuzz": True}))
    return found


# -- running them ------------------------------------------------------------------------------


def capture(
    name: str, definition: dict[str, Any], inputs: Any, settings: NodeSettings
) -> list[Seed]:
    """Every message one run of the workflow goes through (at most MAX_MESSAGES), the secret
    placeholder standing in for each credential value."""
    raw = json.dumps(definition).encode()
    start = start_message(raw, inputs if isinstance(inputs, dict) else None,
                          workflow_id=f"fuzz-{name}")  # fmt: skip
    store = _Recording()
    executor = Executor(store, settings=settings)
    seeds = [Seed(f"{name}/start", json.loads(encode(start)), mid=False)]
    queue: deque[tuple[bytes, bool]] = deque([(encode(start), False)])
    steps = 0
    while queue and len(seeds) < MAX_MESSAGES and steps < 200:
        body, resumed = queue.popleft()
        steps += 1
        outbox = executor.step(decode_execution(body), resumed=resumed)
        for payload in store.scheduled:  # a wait's resume, a merge's timeout
            tree = json.loads(payload)
            seeds.append(Seed(f"{name}/{tree['current_node']}@resume#{len(seeds)}", tree,
                              mid=True, resume=True))  # fmt: skip
        store.scheduled.clear()
        for m in outbox.messages:
            data = encode_execution(m)
            queue.append((data, False))
            tree = json.loads(data)
            label = tree["current_node"] + ("~ghost" if tree.get("ghost") else "")
            seeds.append(Seed(f"{name}/{label}#{len(seeds)}", tree, mid=True))
        if not queue:  # a wait parked: its timer's resume message, at once
            for timer in executor.store.claim_due(2**62, 10, 60_000):
                queue.append((timer.payload, True))
                executor.store.ack_timer(timer.timer_id)
    return seeds[:MAX_MESSAGES]


class _Recording(MemoryStore):
    """The in-memory store, keeping the payload of every timer scheduled."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled: list[bytes] = []

    def schedule(self, timer_id: str, due_ms: int, payload: bytes, *, owner: str = "") -> None:
        self.scheduled.append(payload)
        super().schedule(timer_id, due_ms, payload, owner=owner)


def seeds(loopback: str, closed_port: int, settings: NodeSettings) -> list[Seed]:
    """The seeds of every workflow."""
    out: list[Seed] = []
    for name, definition, inputs in workflows(loopback, closed_port):
        out += capture(name, definition, inputs, settings)
    return out


def with_secret(tree: Any, secret: str) -> Any:
    """A deep copy of a seed's tree with the placeholder replaced by `secret`."""
    data = msgspec.json.encode(tree).replace(PLACEHOLDER.encode(), secret.encode())
    return json.loads(data)
