"""The bench's reading of what came back: a message of another producer on the bench's vhost
is named as such (a BenchError), never a traceback nor a figure counted from it."""

from __future__ import annotations

import msgspec
import pika
import pytest

from runeworker.bench.contenders import BenchRun
from runeworker.bench.workload import BenchError, Trace

STATUS, COMPLETION, MIRROR = "workflow.node.status", "workflow.completion", "mirror"
OUTPUTS = [STATUS, COMPLETION, MIRROR]
AT = "2026-12-05T13:00:00.123456789Z"


def _status(execution_id: str, node_id: str, status: str) -> bytes:
    return msgspec.json.encode(
        {"execution_id": execution_id, "node_id": node_id, "status": status, "executed_at": AT}
    )


def _completion(execution_id: str) -> bytes:
    return msgspec.json.encode(
        {"execution_id": execution_id, "status": "completed", "completed_at": AT}
    )


def _got(statuses: list[bytes], completions: list[bytes]) -> dict[str, list[tuple[object, bytes]]]:
    props = pika.BasicProperties()
    return {
        STATUS: [(props, b) for b in statuses],
        COMPLETION: [(props, b) for b in completions],
        MIRROR: [],
    }


def _trace() -> Trace:
    trace = Trace()
    trace.published["ours"] = 1
    return trace


def test_the_bench_s_own_messages_are_counted() -> None:
    trace = _trace()
    got = _got([_status("ours", "n1", "running"), _status("ours", "n1", "success")],
               [_completion("ours")])  # fmt: skip
    BenchRun._rw_trace(trace, got, OUTPUTS)  # type: ignore[arg-type]
    assert (trace.running, trace.successes, trace.completions) == (1, 1, 1)
    assert list(trace.success["ours"]) == [0] and "ours" in trace.completed


@pytest.mark.parametrize(
    ("statuses", "completions", "named"),
    [
        ([_status("someone-else", "n1", "running")], [], "execution 'someone-else'"),
        ([_status("ours", "http-1", "success")], [], "do not publish"),  # not a bench node
        ([b"not json"], [], "do not publish"),
        ([], [_completion("someone-else")], "execution 'someone-else'"),
        ([], [b"{}"], "do not publish"),
    ],
)
def test_a_message_of_another_producer_is_named(
    statuses: list[bytes], completions: list[bytes], named: str
) -> None:
    with pytest.raises(BenchError, match="vhost of its own") as caught:
        BenchRun._rw_trace(_trace(), _got(statuses, completions), OUTPUTS)  # type: ignore[arg-type]
    assert named in str(caught.value)


@pytest.mark.parametrize("stamp", [None, "x", "ours.1", "ours.a.2", "theirs.1.2"])
def test_the_floor_names_a_message_it_did_not_publish(stamp: str | None) -> None:
    props = pika.BasicProperties(correlation_id=stamp)
    got = {STATUS: [], COMPLETION: [(props, b"")], MIRROR: []}
    with pytest.raises(BenchError, match="vhost of its own"):
        BenchRun._floor_trace(_trace(), got, OUTPUTS)  # type: ignore[arg-type]
    ok = {STATUS: [], COMPLETION: [(pika.BasicProperties(correlation_id="ours.9.5"), b"")],
          MIRROR: []}  # fmt: skip
    trace = _trace()
    BenchRun._floor_trace(trace, ok, OUTPUTS)  # type: ignore[arg-type]
    assert trace.completed == {"ours": 5}
