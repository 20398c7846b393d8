"""Mutated execution messages: decoding fails only with a MessageError that names the problem,
a message that decodes steps without an exception escaping the engine, and the definition and
the context entries it carries are the ones msgspec reads in it
(runeworker/engine/known_definitions.py skips kept definitions and
runeworker/engine/known_contexts.py the kept entries of a context; a mutation must never make
them take one for another)."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from runeworker.bench.workload import Workload
from runeworker.engine.executor import Executor
from runeworker.engine.messages import NodeExecutionMessage, decode_execution, encode
from runeworker.engine.state import MemoryStore
from runeworker.errors import MessageError

_plain = msgspec.json.Decoder(NodeExecutionMessage)
_SPLICES = (b"null", b'"workflow_definition":', b"{", b"}", b"[", b"\\", b'"', b"1e999", b"\xff")


def _entries(ctx: dict[str, Any] | None) -> list[tuple[str, bytes]]:
    """A context's entries as stored (their JSON bytes), in order."""
    return [(k, bytes(v)) for k, v in dict.items(ctx or {})]


def _seeds() -> list[bytes]:
    """Every message of a 10-, 60- and 200-node chain (definitions of 1.4 to 32 KB)."""
    ex, out = Executor(MemoryStore()), []
    for nodes, size in ((10, 1024), (60, 2048), (200, 256)):
        body = Workload.build(nodes, size).start(f"fuzz-{nodes}")
        for _ in range(nodes - 1):
            out.append(body)
            body = encode(ex.step(decode_execution(body), lambda s, _b: encode(s)).messages[0])
    return out


def _mutate(rng: random.Random, data: bytes, definitions: list[bytes], seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    if rng.random() < 0.2:  # another definition first, nested in a context value
        nested = b'"accumulated_context":{"$x":{"workflow_definition":%s}},'
        b[1:1] = nested % rng.choice(definitions)
    if rng.random() < 0.1:  # a context (of another step, say) last, nested in another key
        other = rng.choice(seeds)
        b[-1:] = b',"z":{%s}}' % other[other.rfind(b'"accumulated_context"') : -1]
    for _ in range(rng.randrange(1, 4)):
        at, op = rng.randrange(len(b)), rng.randrange(5)
        if op == 0:
            b[at] = rng.randrange(256)
        elif op == 1:
            del b[at : at + rng.randrange(1, 50)]
        elif op == 2:
            b[at:at] = rng.choice(_SPLICES)
        elif op == 3:
            del b[at:]
        else:  # a piece of the message repeated elsewhere in it
            start = rng.randrange(len(b))
            b[at:at] = b[start : start + rng.randrange(200)]
        if not b:
            b = bytearray(b"{}")
    return bytes(b)


@pytest.mark.parametrize("seed", [1, 2, 3, 6, 8])  # 6 and 8 met a number out of range
def test_mutated_messages_fail_cleanly_or_step(seed: int) -> None:
    rng, seeds, ex = random.Random(seed), _seeds(), Executor(MemoryStore())
    definitions = sorted({bytes(_plain.decode(m).workflow_definition) for m in seeds})
    decoded = 0
    for _ in range(1500):
        data = _mutate(rng, rng.choice(seeds), definitions, seeds)
        try:
            msg = decode_execution(data)
        except MessageError as exc:
            assert str(exc)
            continue
        decoded += 1
        try:
            plain = _plain.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            plain = None  # a null our decoder reads as absent, say
        if plain is not None:
            assert bytes(msg.workflow_definition) == bytes(plain.workflow_definition)
            assert _entries(msg.accumulated_context) == _entries(plain.accumulated_context)
        ex.step(msg, lambda s, _b: encode(s))  # an outcome, failed or not; never an exception
    assert decoded > 100  # the mutations leave enough messages readable to step
