"""runeworker's statuses, completions and mirrors parsed by RTES's own serde types (copied from
upstream's services/rtes/src/domain/models.rs into tests/consumers/rtes_serde, compiled with
cargo): every node type of the shipped examples and the outcomes around them (failure under
halt, ignore and branch, unknown type, refused graph, split, aggregator, merge, wait), plus
values at the edge of what RTES stores (integers past i64, NUL, deep values)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runeworker.commands.files import definition_of, read_workflow, sample_input
from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import NodeStatusMessage, encode, masked_mirror
from runeworker.engine.state import MemoryStore

HARNESS = Path(__file__).resolve().parents[1] / "consumers" / "rtes_serde"
REGISTRY = Path("/usr/share/cargo/registry")
EXAMPLES = ("datetime", "edit", "error_branch", "fanout", "hello", "lists", "merge", "split")
EXAMPLES += ("wait", "agent")

TRIGGER = {"id": "t", "name": "Start", "type": "ManualTrigger", "trigger": True}


def _node(node_id: str, type_: str, error: str | None = None, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": node_id, "name": node_id.upper(), "type": type_}
    out["parameters"] = params
    if error:
        out["error"] = (
            {"type": error, "error_edge": "err"} if error == "branch" else {"type": error}
        )
    return out


def _chain(*nodes: dict[str, Any], extra: tuple[tuple[str, str, str], ...] = ()) -> bytes:
    ns = [TRIGGER, *nodes]
    edges = [
        {"id": f"{a['id']}-{b['id']}", "src": a["id"], "dst": b["id"]}
        for a, b in itertools.pairwise(ns)
    ]
    edges += [{"id": i, "src": s, "dst": d} for i, s, d in extra]
    return json.dumps({"nodes": ns, "edges": edges}).encode()


CLOSED = "http://127.0.0.1:1/"
CRAFTED: dict[str, tuple[bytes, dict[str, Any]]] = {
    "halt": (_chain(_node("h", "http", url=CLOSED, method="GET")), {}),
    "ignore": (_chain(_node("h", "http", "ignore", url=CLOSED, method="GET")), {}),
    "branch": (
        _chain(_node("h", "http", "branch", url=CLOSED, method="GET"))[:-2]
        + b',{"id":"err","src":"h","dst":"r"}]}',
        {},
    ),
    "unknown_type": (_chain(_node("u", "no.such.type", x=1)), {}),
    "cycle": (_chain(_node("a", "log", message="a"), extra=(("back", "a", "t"),)), {}),
    # no integer between 2**63 and 2**64 - 1: RTES drops a status holding one, from
    # runeworker as from Go (docs/WIRE.md section 4.1, a known limit)
    "long_integers": (
        _chain(_node("l", "log", message="$input.n")),
        {"n": 2**63 - 1, "neg": -(2**63) - 1, "huge": 10**25},
    ),
    "nul": (_chain(_node("l", "log", message="$input.s"), _node("x", "nosuch")), {"s": "a\x00b"}),
    "empty_split": (
        _chain(
            _node("s", "split", input_array=[]),
            _node("l", "log", message="$item"),
            _node("a", "aggregator"),
        ),
        {},
    ),
}


@pytest.fixture(scope="module")
def rtes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cargo = shutil.which("cargo")
    if cargo is None or not any(REGISTRY.glob("serde_json-*")):
        pytest.skip("needs cargo and Debian's librust-serde-json-dev, librust-serde-derive-dev")
    target = tmp_path_factory.mktemp("rtes_target")
    env = {**os.environ, "CARGO_TARGET_DIR": str(target), "CARGO_NET_OFFLINE": "true"}
    config = (
        '--config=source.crates-io.replace-with="debian"',
        f'--config=source.debian.directory="{REGISTRY}"',
    )
    subprocess.run(
        [cargo, "build", "--release", "-q", *config],
        cwd=HARNESS,
        env=env,
        check=True,
        timeout=600,
    )
    yield target / "release" / "rtes_serde"


def _messages(
    definition: bytes, inputs: dict[str, Any] | None, name: str
) -> list[tuple[str, bytes]]:
    start = start_message(definition, inputs, execution_id=f"ex-{name}")
    out: list[tuple[str, bytes]] = [("mirror", masked_mirror(start))]

    def show(st: NodeStatusMessage) -> None:
        out.append(("status", encode(st)))

    done = LocalRunner(Executor(MemoryStore()), on_status=show).run(start)
    assert done is not None, name
    out.append(("completion", encode(done)))
    return out


def _cases() -> Iterator[tuple[str, bytes, dict[str, Any] | None]]:
    for name in EXAMPLES:
        defn = definition_of(read_workflow(name))
        yield name, defn, sample_input(defn)
    for name, (defn, inputs) in CRAFTED.items():
        yield name, defn, inputs


def test_rtes_parses_and_stores_every_message(rtes: Path) -> None:
    sent: list[tuple[str, str, bytes]] = []
    for name, defn, inputs in _cases():
        sent += [(name, kind, body) for kind, body in _messages(defn, inputs, name)]
    # one line each (a JSON string holds no raw newline: those are whitespace between tokens)
    lines = "".join(f"{kind}\t{body.decode().replace(chr(10), ' ')}\n" for _, kind, body in sent)
    answers = subprocess.run(
        [str(rtes)], input=lines, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert len(answers) == len(sent)
    refused = [(n, k, a, b[:200]) for (n, k, b), a in zip(sent, answers, strict=True) if a != "ok"]
    assert refused == []
    kinds = {(k, json.loads(b).get("status")) for _, k, b in sent}
    assert {("status", s) for s in ("running", "success", "failed", "waiting")} <= kinds
    assert {("completion", s) for s in ("completed", "failed", "halted")} <= kinds
