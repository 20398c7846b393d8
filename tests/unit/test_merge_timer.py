"""runeworker/engine/merge_timer.py directly: the timer's id and token per barrier, the resume
message it fires, when an arrival hands it to the store and when a waiting arrival schedules it.
(The timer's effect on whole workflows: tests/unit/test_flow_merge_timeout.py.)"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from runeworker.engine.merge_timer import (
    PARK_IN_ARRIVAL_MAX_BYTES,
    in_arrival,
    park,
    resume_message,
    timer_of,
)
from runeworker.engine.messages import NodeExecutionMessage, StackFrame, decode_execution
from runeworker.engine.state import MemoryStore

DEFINITION = msgspec.Raw(b'{"nodes": [], "edges": []}')


def message(**fields: Any) -> NodeExecutionMessage:
    base: dict[str, Any] = {
        "workflow_id": "wf",
        "execution_id": "ex-1",
        "current_node": "merge",
        "workflow_definition": DEFINITION,
        "accumulated_context": {"$trigger": msgspec.Raw(b'{"old": true}')},
        "branch_token": "arrival-token",
        "from_node": "left",
    }
    base.update(fields)
    return NodeExecutionMessage(**base)


def test_one_timer_per_barrier_the_same_each_time() -> None:
    first = timer_of("ex-1", "merge", "")
    assert timer_of("ex-1", "merge", "") == first  # every arrival and redelivery: the same
    others = [
        timer_of("ex-2", "merge", ""),
        timer_of("ex-1", "merge2", ""),
        timer_of("ex-1", "merge", "b0"),
        timer_of("ex-1", "merge", "b1"),
    ]
    ids = {first.timer_id, *(t.timer_id for t in others)}
    tokens = {first.token, *(t.token for t in others)}
    assert len(ids) == 5 and len(tokens) == 5  # each barrier's own, in any scope
    assert first.token not in ids


def test_the_resume_message_is_the_arrivals_at_the_merge_with_the_timers_token() -> None:
    timer = timer_of("ex-1", "merge", "b0")
    frame = StackFrame("split", "b0", 0, 2)
    msg = message(ghost=True, lineage_stack=[frame], is_worker_initiated=False)
    context = {"$trigger": msgspec.Raw(b'{"new": 1}'), "left": msgspec.Raw(b'{"x": 2}')}
    encoded = resume_message(msg, context, timer)
    as_json = msgspec.json.decode(encoded)
    assert as_json["accumulated_context"] == {"$trigger": {"new": 1}, "left": {"x": 2}}
    assert "ghost" not in as_json  # a timer is no ghost, whatever the arrival was
    resumed = decode_execution(encoded)
    assert resumed.branch_token == timer.token
    assert resumed.is_worker_initiated is True
    assert resumed.ghost is UNSET
    assert (resumed.execution_id, resumed.current_node, resumed.from_node) == (
        "ex-1",
        "merge",
        "left",
    )
    assert resumed.lineage_stack == [frame]


def test_an_arrival_hands_the_timer_to_the_store_up_to_the_limit() -> None:
    store, timer, msg = MemoryStore(), timer_of("ex-1", "merge", ""), message()
    context = {"left": msgspec.Raw(b'{"x": 1}')}
    handed = in_arrival(store, timer, msg, context)
    assert handed is not None
    assert handed.timer_id == timer.timer_id
    assert handed.payload == resume_message(msg, context, timer)
    assert in_arrival(store, None, msg, context) is None
    # the context's size when known: exactly the limit is still handed, one byte more is not
    assert in_arrival(store, timer, msg, context, PARK_IN_ARRIVAL_MAX_BYTES) is not None
    assert in_arrival(store, timer, msg, context, PARK_IN_ARRIVAL_MAX_BYTES + 1) is None


def test_a_resume_message_of_exactly_the_limit_is_handed_one_byte_more_is_not() -> None:
    store, timer, msg = MemoryStore(), timer_of("ex-1", "merge", ""), message()

    def padded(extra: int) -> dict[str, msgspec.Raw]:
        return {"pad": msgspec.Raw(b'"' + b"x" * extra + b'"')}

    empty = len(resume_message(msg, padded(0), timer))
    exact = padded(PARK_IN_ARRIVAL_MAX_BYTES - empty)
    assert len(resume_message(msg, exact, timer)) == PARK_IN_ARRIVAL_MAX_BYTES
    assert in_arrival(store, timer, msg, exact) is not None
    over = padded(PARK_IN_ARRIVAL_MAX_BYTES - empty + 1)
    assert in_arrival(store, timer, msg, over) is None


def test_a_store_that_cannot_park_in_the_arrival_gets_no_timer() -> None:
    store = MemoryStore()
    store.parks_in_arrival = False  # as a Redis Cluster's
    assert in_arrival(store, timer_of("ex-1", "merge", ""), message(), {}) is None


def test_a_waiting_arrival_schedules_the_timer_owned_by_its_execution() -> None:
    store, timer, msg = MemoryStore(), timer_of("ex-1", "merge", ""), message()
    context = {"left": msgspec.Raw(b"[1, 2]")}
    assert park(store, timer, msg, context, now_ms=1_000, due_ms=5_000, schedule=True) == (
        timer.token
    )
    assert store.timers_of("ex-1") == {timer.timer_id}  # cancelled when the execution fails
    assert store.next_due() == 5_000
    fired = store.claim_due(5_000, 10, 1_000)
    assert [t.timer_id for t in fired] == [timer.timer_id]
    assert fired[0].payload == resume_message(msg, context, timer)


def test_a_waiting_arrival_without_schedule_keeps_the_token_only() -> None:
    store, timer = MemoryStore(), timer_of("ex-1", "merge", "")
    assert park(store, timer, message(), {}, now_ms=1_000, due_ms=5_000, schedule=False) == (
        timer.token
    )
    assert store.next_due() is None and store.timers_of("ex-1") == set()


def test_an_arrival_at_or_after_the_due_time_parks_nothing() -> None:
    store, timer = MemoryStore(), timer_of("ex-1", "merge", "")
    for now in (5_000, 9_000):  # the timer armed long ago fires or has fired
        assert park(store, timer, message(), {}, now_ms=now, due_ms=5_000, schedule=True) == ""
    assert store.next_due() is None
    assert park(store, timer, message(), {}, now_ms=4_999, due_ms=5_000, schedule=True) != ""
