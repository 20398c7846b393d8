"""runeworker's statuses, completions and mirrors parsed by RTES's own serde types (copied from
upstream's services/rtes/src/domain/models.rs into tests/consumers/rtes_serde, compiled with
cargo): every node type of the shipped examples and the outcomes around them (failure under
halt, ignore and branch, unknown type, refused graph, split, aggregator, merge, wait), plus
values at the edge of what RTES stores (integers past i64, NUL, deep values)."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runeworker.commands.files import definition_of, read_workflow, sample_input
from runeworker.engine.depth import UNREADABLE
from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import (
    NodeStatusMessage,
    decode_execution,
    encode,
    masked_mirror,
)
from runeworker.engine.rtes_numbers import serde_refuses
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
    definition: bytes,
    inputs: dict[str, Any] | None,
    name: str,
    raw: dict[bytes, bytes] | None = None,
) -> list[tuple[str, bytes]]:
    """What a local run publishes; `raw` replaces texts of the start message's bytes (numbers
    that JSON from Python would write otherwise)."""
    start = start_message(definition, inputs, execution_id=f"ex-{name}")
    for old, new in (raw or {}).items():
        body = encode(start)
        assert old in body
        start = decode_execution(body.replace(old, new))
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


def _ask(rtes: Path, lines: list[str]) -> list[str]:
    """RTES's answers (`ok`, `err\t<reason>`), one per line sent."""
    text = "".join(line.replace(chr(10), " ") + "\n" for line in lines)
    answers = subprocess.run(
        [str(rtes)], input=text, capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert len(answers) == len(lines)
    return answers


# the largest double's digits: Go, msgspec and Python read each of these as that double
MAX_TEXT = b"1.7976931348623158e308"
MAX_INT = str(int(sys.float_info.max)).encode()
# a completion whose final context holds one number, `%` its text
COMPLETION = (
    '{"workflow_id":"w","execution_id":"e","status":"completed","final_context":{"x":%s},'
    '"completed_at":"2026-01-01T00:00:00Z","total_duration_ms":1}'
)


def test_a_number_rtes_reads_as_infinite_is_not_published_as_it_came(rtes: Path) -> None:
    """Input holding numbers a double holds but RTES's serde_json (no `float_roundtrip`)
    overshoots to infinity: before, they went to RTES as the bytes they came as, in the
    mirror, the statuses' inputs and the completion, and RTES dropped those messages. The
    workflow runs (Go reads them); the value holding them is published as what stands for a
    value that cannot be read, as for a number no double holds."""
    defn = _chain(_node("l", "log", message="hello"))
    inputs = {"big": 1.5e300, "bigint": 1.25e300}
    raw = {b"1.5e300": MAX_TEXT, b"1.25e300": MAX_INT}
    sent = _messages(defn, inputs, "overshoot", raw)
    assert not [kind for kind, body in sent if MAX_TEXT in body or MAX_INT in body]
    answers = _ask(rtes, [f"{kind}\t{body.decode()}" for kind, body in sent])
    assert [a for a in answers if a != "ok"] == []
    done = json.loads(sent[-1][1])
    assert done["status"] == "completed"
    assert done["final_context"]["$input"] == UNREADABLE
    # each alone is refused by RTES, and read by Python as the largest double
    alone = [f"completion\t{COMPLETION % t.decode()}" for t in (MAX_TEXT, MAX_INT)]
    assert all(a.startswith("err\tnumber out of range") for a in _ask(rtes, alone))
    assert json.loads(MAX_TEXT) == json.loads(MAX_INT) == sys.float_info.max


def test_serde_refuses_as_serde_json_does(rtes: Path) -> None:
    """`serde_refuses` against RTES's serde_json itself: seeded numbers around the largest
    double (decimal, integer, long fraction, large exponent), the same verdict on each."""
    rnd = random.Random(16)
    top = int(sys.float_info.max)

    def digits(n: int) -> str:
        return str(rnd.randint(1, 9)) + "".join(rnd.choice("0123456789") for _ in range(n - 1))

    tokens = ["1.7976931348623158e308", str(top), "1.7976931348623157e308", "1e308", "1e309",
              "18446744073709551616.1", "0e999999999999", "1e2147483648", "-1e2147483648",
              "1e-999999999999", "0.0e400"]  # fmt: skip
    for _ in range(3000):
        kind = rnd.randrange(4)
        if kind == 0:  # the largest double's digits, cut anywhere, the exponent shifted
            m = "17976931348623" + digits(rnd.randint(1, 12))
            p = rnd.randint(1, len(m))
            e = 308 - (p - 1) + rnd.randint(-1, 1)
            tokens.append(f"{m[:p]}{'.' + m[p:] if p < len(m) else ''}e{e}")
        elif kind == 1:  # integers around the largest double
            tokens.append(str(top + rnd.randint(-(10**292), 10**292)))
        elif kind == 2:  # any mantissa, exponents about 300
            m = digits(rnd.randint(1, 25))
            p = rnd.randint(1, len(m))
            sign = "-" if rnd.random() < 0.2 else ""
            exp = f"{rnd.choice('eE')}{rnd.choice(['', '+'])}{rnd.randint(280, 312)}"
            tokens.append(f"{sign}{m[:p]}{'.' + m[p:] if p < len(m) else ''}{exp}")
        else:  # an integer part past a u64, a fraction
            tokens.append(f"{digits(rnd.randint(18, 24))}.{digits(rnd.randint(1, 6))}")
    answers = _ask(rtes, [f"completion\t{COMPLETION % t}" for t in tokens])
    wrong = [
        (t, a) for t, a in zip(tokens, answers, strict=True) if (a != "ok") != serde_refuses(t)
    ]
    assert wrong == []
    assert sum(a != "ok" for a in answers) > len(tokens) // 4  # both verdicts were seen
