"""The shared StateStore table (statecases.py) against the in-memory store."""

from __future__ import annotations

import random
import uuid

import msgspec
import pytest
from statecases import CASES, LOST_CASES

from runeworker.engine.barriers import aggregate_hold
from runeworker.engine.messages import NodeExecutionMessage, StackFrame
from runeworker.engine.state import (
    JOINING,
    ROOT,
    MemoryStore,
    attempt_key,
    child_token,
    child_tokens,
    derived_uuid,
    joining_token,
    message_token,
    opens_unknown,
    root_token,
    state_lost,
)


def test_table_covers_every_behaviour() -> None:
    assert len(CASES) == 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_memory_store(name: str) -> None:
    CASES[name](MemoryStore())


@pytest.mark.parametrize("name", sorted(LOST_CASES))
def test_memory_store_state_lost(name: str) -> None:
    """The lost-state table: what eviction takes is taken from the store's own records."""
    store = MemoryStore()

    def evict(execution_id: str, part: str) -> None:
        if part == "all":
            store._executions.pop(execution_id, None)
        elif part == "barriers":
            for key in [k for k in store._merges if k[0] == execution_id]:
                del store._merges[key]
        else:
            store._executions[execution_id].live.clear()

    LOST_CASES[name](store, evict)


def test_tokens_and_attempt_keys_are_stable_across_versions() -> None:
    # They are persisted (Redis keys, branch tokens of messages in flight): during a rolling
    # upgrade a child of the next version must derive the same ones as this version did.
    assert root_token("ex-1") == root_token("ex-2") == "root"
    assert child_token("root", 0, "a") == "db955ecdf4b92442892f"
    assert child_token("root", 1, "a") == "0a810583e4e7d3169030"
    assert attempt_key(b'{"execution_id":"ex"}') == "9eeb0a1aa4f540a251adda05e93ca173"
    arrival = NodeExecutionMessage("wf", "ex", "merge", msgspec.Raw(b"{}"), from_node="a")
    assert message_token(arrival) == "join:dc9a04f86c5f8902f7e7"
    frame = StackFrame("s", "ex_s_1", 1, 2)
    in_branch = msgspec.structs.replace(arrival, lineage_stack=[frame])
    assert message_token(in_branch) == "join:72aafe86e51961f046df"
    # ids holding the separator or the escape, an empty branch id, two branches
    assert joining_token("a", "b", ["s1", "s2"]) == "join:6cfe87b28c7bc10f1b83"
    assert joining_token("a\\", "b|c", ["", "x|y", "z"]) == "join:6f627edaaff392adec60"
    # an aggregator's hold token, live in the store while its barrier waits
    assert aggregate_hold("split", "") == "hold:c027d125192023fb5cdb"
    assert aggregate_hold("s", "ex_s_1") == "hold:338088ef2e5f9b6ab5f6"


def test_message_tokens() -> None:
    """A message's own token; `root` for one without a token that names no parent (the API's
    start message); a joining token, per parent, node and lineage, for one that names a
    parent (a Go worker's next message, upstream's merge tests)."""
    start = NodeExecutionMessage("wf", "ex", "a", msgspec.Raw(b"{}"))
    assert message_token(start) == "root"
    assert message_token(msgspec.structs.replace(start, branch_token="t1")) == "t1"
    joins = {
        message_token(msgspec.structs.replace(start, current_node=node, from_node=parent))
        for node in ("a", "b")
        for parent in ("p", "q")
    }
    assert len(joins) == 4 and all(t.startswith(JOINING) for t in joins)


def test_joining_tokens_escape_every_part() -> None:
    """Each part of a joining token's name is escaped: a `\\` left as it is would let a parent
    ending in one and a node followed by two branch ids name the same token as a parent
    holding a `|`; an empty branch id is no missing one."""
    assert joining_token("a\\", "b", ["x", "y"]) != joining_token("a|b", "x", ["y"])
    assert joining_token("p", "n", []) != joining_token("p", "n", [""])


def test_only_the_root_and_joining_tokens_open_an_unknown_execution_by_default() -> None:
    """`opens_unknown` without `anew` or `begun`: a derived token does not open one."""
    assert opens_unknown(ROOT) and opens_unknown(JOINING + "00")
    assert not opens_unknown(child_token(ROOT, 0, "a"))
    assert opens_unknown("t", anew=True) and opens_unknown("t", begun=True)


def test_attempts_are_counted_per_message() -> None:
    store = MemoryStore()
    assert [store.count_attempt(b'{"m":1}') for _ in range(3)] == [1, 2, 3]
    assert store.count_attempt(b'{"m":2}') == 1
    assert store.count_attempt(b'{"m":1}') == 4


def test_a_spared_redelivery_is_no_attempt() -> None:
    """`spare_attempts`: the next redelivery of each body keeps its count (a drain cut it,
    not the message); a flag, not a credit; the one after counts again."""
    store = MemoryStore()
    assert store.count_attempt(b'{"m":1}') == 1
    store.spare_attempts([b'{"m":1}', b'{"m":2}'])
    store.spare_attempts([b'{"m":1}'])  # sparing twice spares once
    assert store.count_attempt(b'{"m":1}') == 1
    assert store.count_attempt(b'{"m":1}') == 2
    assert store.count_attempt(b'{"m":2}') == 0  # spared before its first attempt
    assert store.count_attempt(b'{"m":2}') == 1


def test_child_tokens_are_the_child_token_of_each_destination_in_order() -> None:
    """A redelivered step may be taken by a worker of another version than the one that
    recorded its advance: both must derive the same child tokens (`child_token` of the
    parent, the index and the destination), or the replayed next messages would be stale."""
    parent = child_token("root", 0, "a")
    assert child_tokens(parent, ["b", "c", "b"]) == [
        child_token(parent, 0, "b"),
        child_token(parent, 1, "c"),
        child_token(parent, 2, "b"),
    ]
    assert child_tokens(parent, []) == []


def test_derived_uuid_is_uuid5_as_text() -> None:
    rng = random.Random(3)
    for ns in (uuid.NAMESPACE_DNS, uuid.UUID("0d5c8e3a-7b41-4f2e-9a6d-3e8f1c2b7a90")):
        for _ in range(300):
            name = "".join(rng.choice("ab/-é😀0") for _ in range(rng.randrange(60)))
            assert derived_uuid(ns, name) == str(uuid.uuid5(ns, name))


@pytest.mark.parametrize(
    ("what", "where", "detail"),
    [
        ("execution", "", "the state store holds no record of execution ex-9, though the "
         "message's branch_token is that of a running execution"),
        ("branches", "", "the live branch tokens of execution ex-9 are gone from the state "
         "store, though it has not ended"),
        ("barrier", "Join", "the Join barrier of execution ex-9 is gone from the state store, "
         "though branches had arrived at it"),
        ("barrier", "", "the merge or aggregator barrier of execution ex-9 is gone from the "
         "state store, though branches had arrived at it"),
        ("timers", "", "the timers state of execution ex-9 is gone from the state store"),
    ],
)  # fmt: skip
def test_a_loss_names_the_execution_and_what_is_gone(what: str, where: str, detail: str) -> None:
    """The text a step fails its execution with (`StateLost`, runeworker/errors.py)."""
    lost = state_lost("ex-9", what, where)
    assert (lost.execution_id, lost.what, str(lost)) == ("ex-9", what, detail)
    if not where:
        assert str(state_lost("ex-9", what)) == detail
