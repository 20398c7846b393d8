"""Upstream's consumer and scenario tests, run against a worker child on the real RabbitMQ and
Redis: the facts their assertions check (statuses, next messages, completions), ported from
services/rune-worker/pkg/messaging/*_test.go, integration/*_test.go and e2e/*_test.go
(rune-org/rune). Scenarios already ported elsewhere are named in test_worker_wire.py and
test_flow_wire.py.

Upstream's merge scenarios feed the merge straight from the test: one message per parent, each
without runeworker's `branch_token` (as the API's start message, or a Go worker's next message),
with `from_node` naming the parent.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest
from wire import (
    DEAD,
    EXCHANGE,
    MIRROR,
    RESUME,
    TAP,
    Wire,
    check_status,
    edge,
    master,
    node,
    node_statuses,
    running_worker,
)

pytestmark = pytest.mark.integration


def merge_arrival(
    eid: str, defn: dict[str, Any], parent: str, context: dict[str, Any]
) -> dict[str, Any]:
    """A message for `merge_node` from `parent`, as upstream's merge tests publish it: no
    branch token, not worker-initiated, `from_node` set."""
    return {
        "workflow_id": "wf-merge",
        "workflow_version": 0,
        "workflow_version_id": 0,
        "execution_id": eid,
        "current_node": "merge_node",
        "workflow_definition": defn,
        "accumulated_context": context,
        "from_node": parent,
    }


def merge_definition(parents: list[str], params: dict[str, Any], then: bool) -> dict[str, Any]:
    nodes = [node(p, "http", p.replace("_", " ").title()) for p in parents]
    nodes.append(node("merge_node", "merge", "Merge", **params))
    edges = [edge(p, "merge_node", f"e{i}") for i, p in enumerate(parents, 1)]
    if then:
        nodes.append(node("end_node", "log", "End", message="merged"))
        edges.append(edge("merge_node", "end_node", "e_end"))
    return {"nodes": nodes, "edges": edges}


def merge_outputs(wire: Wire, eid: str, status: str) -> list[dict[str, Any]]:
    return [
        g.body.get("output", {})
        for g in wire.statuses(eid)
        if g.body["node_id"] == "merge_node" and g.body["status"] == status
    ]


@pytest.mark.parametrize("then", [False, True], ids=["alone", "then_end"])
def test_merge_wait_for_all_fed_by_one_message_per_parent(wire: Wire, then: bool) -> None:
    """integration/merge_integration_test.go (TestMergeWaitForAllWorkflow) and
    e2e/merge_e2e_test.go (TestMergeE2E_WaitForAllComplete) upstream: two parents' messages
    reach a `wait_for_all` merge (timeout 60) 0.5 s apart; the second releases it, its
    successor runs once, and the execution completes once (Go: the releasing arrival's
    completion, or the successor's)."""
    eid = str(uuid.uuid4())
    defn = merge_definition(["branch_a", "branch_b"], {"wait_mode": "wait_for_all",
                                                       "timeout": 60}, then)  # fmt: skip
    a = {"$Trigger": {"status": 200}, "$Branch A": {"status": 200, "branch": "a"}}
    b = {"$Trigger": {"status": 200}, "$Branch B": {"status": 200, "branch": "b"}}
    wire.publish_api(merge_arrival(eid, defn, "branch_a", a))
    node_statuses(wire, eid, "merge_node", 2)  # the first arrival waits
    time.sleep(0.5)
    wire.publish_api(merge_arrival(eid, defn, "branch_b", b))
    done = wire.completion(eid)
    wire.no_second_completion(eid)
    merge = node_statuses(wire, eid, "merge_node", 4)
    assert [s["status"] for s in merge] == ["running", "waiting", "running", "success"]
    check_status(merge[3], "success", {"parameters", "output"})
    assert merge[3]["output"]["_merge_sources"] == ["branch_a", "branch_b"]
    assert done["status"] == "completed"
    final = done["final_context"]
    assert (final["$Branch A"], final["$Branch B"]) == (a["$Branch A"], b["$Branch B"])
    if then:
        end = node_statuses(wire, eid, "end_node", 2)
        assert [s["status"] for s in end] == ["running", "success"]
        assert final["$End"]["message"] == "merged"
    else:
        assert "$End" not in final


@pytest.mark.parametrize("then", [False, True], ids=["alone", "then_end"])
def test_merge_wait_for_any_has_exactly_one_winner(wire: Wire, then: bool) -> None:
    """integration/merge_integration_test.go (TestMergeWaitForAnyWorkflow) and
    e2e/merge_e2e_test.go (TestMergeE2E_WaitForAnyRace) upstream: two parents' messages reach
    a `wait_for_any` merge; exactly one `success` names a `_merge_winner`, the first to
    arrive; the other arrival is absorbed (`_merge_ignored`) or, when the execution already
    ended, dropped; one completion, holding the winner's context only."""
    eid = str(uuid.uuid4())
    defn = merge_definition(["fast_branch", "slow_branch"], {"wait_mode": "wait_for_any"}, then)
    wire.publish_api(merge_arrival(eid, defn, "fast_branch", {"$Fast Branch": {"r": "fast"}}))
    time.sleep(0.1)
    wire.publish_api(merge_arrival(eid, defn, "slow_branch", {"$Slow Branch": {"r": "slow"}}))
    done = wire.completion(eid)
    wire.no_second_completion(eid, settle=1.5)
    winners = [o for o in merge_outputs(wire, eid, "success") if "_merge_winner" in o]
    ignored = [o for o in merge_outputs(wire, eid, "success") if "_merge_ignored" in o]
    assert [w["_merge_winner"] for w in winners] == ["fast_branch"]
    assert len(ignored) <= 1
    assert done["status"] == "completed"
    assert "$Fast Branch" in done["final_context"]
    assert "$Slow Branch" not in done["final_context"]
    if then:
        end = node_statuses(wire, eid, "end_node", 2)
        assert [s["status"] for s in end] == ["running", "success"]


def test_merge_of_three_parents_releases_at_the_third(wire: Wire) -> None:
    """e2e/merge_e2e_test.go (TestMergeE2E_ThreeBranchMerge) upstream: three parents' messages
    0.2 s apart; the first two wait (runeworker reports `waiting` where Go reports `success`
    with `_merge_waiting`, docs/WIRE.md section 4.3), the third releases; one completion."""
    eid = str(uuid.uuid4())
    parents = ["branch_1", "branch_2", "branch_3"]
    defn = merge_definition(parents, {"wait_mode": "wait_for_all", "timeout": 60}, False)
    for i, parent in enumerate(parents, 1):
        context = {f"$Branch {i}": {"data": f"branch_{i}_data"}}
        wire.publish_api(merge_arrival(eid, defn, parent, context))
        time.sleep(0.2)
    done = wire.completion(eid)
    wire.no_second_completion(eid)
    merge = node_statuses(wire, eid, "merge_node", 6)
    assert [s["status"] for s in merge] == ["running", "waiting"] * 2 + ["running", "success"]
    assert [s["output"]["_merge_arrived"] for s in merge[1:4:2]] == [1, 2]
    assert merge[5]["output"]["_merge_sources"] == parents
    assert done["status"] == "completed"
    assert {f"$Branch {i}" for i in (1, 2, 3)} <= set(done["final_context"])


# -- the other scenarios, on the wire ---------------------------------------------------------


def test_master_message_of_one_node(wire: Wire) -> None:
    """pkg/messaging/workflow_consumer_handle_test.go upstream
    (TestWorkflowConsumerHandleMessage_MasterMessagePublishesWorkerInitiated): a master message
    of one node is mirrored once with its workflow_version and workflow_version_id, then gives
    two statuses and one completion."""
    m = master([node("node-1", "log", "Node 1", message="ok")], [], {"$trigger": True}, "node-1")
    m["workflow_version"], m["workflow_version_id"] = 5, 42
    eid = m["execution_id"]
    wire.publish_api(m)
    done = wire.completion(eid)
    wire.no_second_completion(eid)
    wire.wait("the mirror", lambda: bool(wire.of(MIRROR, eid)))
    [mirrored] = wire.of(MIRROR, eid)
    assert (mirrored.body["workflow_version"], mirrored.body["workflow_version_id"]) == (5, 42)
    assert [s["status"] for s in node_statuses(wire, eid, "node-1", 2)] == ["running", "success"]
    assert len(wire.statuses(eid)) == 2
    assert done["status"] == "completed" and done["final_context"]["$trigger"] is True


def test_split_fans_out_item_major_to_every_successor(wire: Wire) -> None:
    """pkg/executor/executor_paths_test.go upstream
    (TestExecutorHandleSplitFanOutPublishesPerItemAndNode): a split of two items followed by two
    nodes publishes four messages, item by item, each with `$item`, the caller's context, the
    workflow versions and one lineage frame of the split; `$item` stays out of the split's own
    context."""
    nodes = [node("split-1", "split", "Split", input_array=["item-1", "item-2"]),
             node("next-a", "conditional", "Next A", expression="true"),
             node("next-b", "conditional", "Next B", expression="true")]  # fmt: skip
    m = master(nodes, [edge("split-1", "next-a"), edge("split-1", "next-b")],
               {"$payload": "ok"}, "split-1")  # fmt: skip
    eid = m["execution_id"]
    wire.publish_api(m)
    done = wire.completion(eid)
    fanned = [g.body for g in wire.of(TAP, eid) if g.body.get("from_node") == "split-1"]
    got = [(b["accumulated_context"]["$item"], b["current_node"]) for b in fanned]
    assert got == [("item-1", "next-a"), ("item-1", "next-b"),
                   ("item-2", "next-a"), ("item-2", "next-b")]  # fmt: skip
    for body in fanned:
        assert body["accumulated_context"]["$payload"] == "ok"
        assert (body["workflow_version"], body["workflow_version_id"]) == (3, 17)
        [frame] = body["lineage_stack"]
        index = frame["item_index"]
        assert frame == {"split_node_id": "split-1", "branch_id": f"{eid}_split-1_{index}",
                         "item_index": index, "total_items": 2}  # fmt: skip
    assert done["status"] == "completed"


def test_split_straight_into_an_aggregator(wire: Wire) -> None:
    """integration/split_aggregate_test.go upstream: split (three items) -> aggregator
    (timeout 10): one `completed` completion whose `$Collector.aggregated` has three items."""
    nodes = [node("split_node", "split", "Splitter", input_array=["item1", "item2", "item3"]),
             node("aggregator_node", "aggregator", "Collector", timeout=10)]  # fmt: skip
    m = master(nodes, [edge("split_node", "aggregator_node", "e1")],
               {"$trigger": {"start": True}}, "split_node")  # fmt: skip
    done = wire_run(wire, m)
    assert done["status"] == "completed"
    assert len(done["final_context"]["$Collector"]["aggregated"]) == 3


def go_split_branches(
    eid: str, defn: dict[str, Any], dst: str, items: list[Any], context: dict[str, Any]
) -> list[dict[str, Any]]:
    """The messages a Go worker publishes after its split node `split_node` (name `Splitter`)
    fanned out `items` to `dst` (`handleSplitFanOut` in pkg/executor/node_handlers.go
    upstream): the caller's context with the split's `$Splitter` and the item's `$item`, one
    lineage frame pushed, `from_node` the split, worker-initiated, the versions kept, and none
    of runeworker's keys (no `branch_token`, `outer_keys`, `started_at_ms`)."""
    base = {**context, "$Splitter": {"_split_items": items}}
    return [
        {
            "workflow_id": "wf-split",
            "workflow_version": 2,
            "workflow_version_id": 11,
            "execution_id": eid,
            "current_node": dst,
            "workflow_definition": defn,
            "accumulated_context": {**base, "$item": item},
            "lineage_stack": [
                {
                    "split_node_id": "split_node",
                    "branch_id": f"{eid}_split_node_{i}",
                    "item_index": i,
                    "total_items": len(items),
                }
            ],
            "from_node": "split_node",
            "is_worker_initiated": True,
        }
        for i, item in enumerate(items)
    ]


@pytest.mark.parametrize("through", [False, True], ids=["straight", "through_a_node"])
def test_split_branches_fanned_out_by_a_go_worker_aggregate_once(wire: Wire, through: bool) -> None:
    """A mixed pool: a Go worker ran the split and published one message per item, without
    runeworker's `branch_token` (docs/WIRE.md section 12.1); runeworker takes them one at a
    time, straight at the aggregator or through a node first. Each message joins the execution
    with a joining token; the arrivals that wait keep the execution open, so the first of them
    does not end it: exactly one completion, `completed`, after the aggregator released with
    every item. Before, the first waiting arrival held no token and closed the execution (a
    `completed` completion without `$Collector`), and the later items were dropped."""
    eid = str(uuid.uuid4())
    items = ["alpha", "beta", "gamma"]
    nodes = [node("split_node", "split", "Splitter", input_array=items),
             node("aggregator_node", "aggregator", "Collector")]  # fmt: skip
    edges = [edge("aggregator_node", "end_node", "e_end")]
    nodes.append(node("end_node", "log", "End", message="collected"))
    if through:
        nodes.append(node("per_item", "log", "Per Item", message="{{ $item }}"))
        edges += [edge("split_node", "per_item", "e1"), edge("per_item", "aggregator_node", "e2")]
    else:
        edges.append(edge("split_node", "aggregator_node", "e1"))
    defn = {"nodes": nodes, "edges": edges}
    first = "per_item" if through else "aggregator_node"
    branches = go_split_branches(eid, defn, first, items, {"$trigger": {"go": True}})
    for i, branch in enumerate(branches[:-1], 1):
        wire.publish_api(branch)
        node_statuses(wire, eid, "aggregator_node", 2 * i)  # running, success (waiting)
        time.sleep(0.3)  # a completion is committed with the statuses: let it show
        wire.drain()
        early = [g.body for g in wire.completions(eid)]
        assert early == [], f"the execution ended at the waiting arrival {i}: {early}"
    wire.publish_api(branches[-1])
    done = wire.completion(eid)
    wire.no_second_completion(eid)
    agg = node_statuses(wire, eid, "aggregator_node", 2 * len(items))
    assert [s["status"] for s in agg] == ["running", "success"] * len(items)
    assert [s["aggregator_state"] for s in agg[1::2]] == ["waiting", "waiting", "released"]
    assert [s["processed_count"] for s in agg[1::2]] == [1, 2, 3]
    assert done["status"] == "completed"
    collected = done["final_context"]["$Collector"]
    got = [r["message"] for r in collected["aggregated"]] if through else collected["aggregated"]
    assert got == items
    assert done["final_context"]["$End"]["message"] == "collected"
    assert [s["status"] for s in node_statuses(wire, eid, "end_node", 2)] == ["running", "success"]


def test_wait_alone_waits_then_completes(
    amqp_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """e2e/wait_e2e_test.go upstream, with the worker's own scheduler: a wait of 1 s, alone:
    running, waiting, then success and the completion."""
    pause = node("wait-node-1", "wait", "Wait Node", amount=1, unit="seconds")
    m = master([pause], [], {}, "wait-node-1")
    lock = str(tmp_path / "scheduler.lock")
    with running_worker(amqp_url, redis_url, redis_prefix, scheduler_lock=lock):
        wire = Wire(amqp_url)
        try:
            done = wire_run(wire, m, timeout=20)
            statuses = node_statuses(wire, m["execution_id"], "wait-node-1", 3)
        finally:
            wire.close()
    assert [s["status"] for s in statuses] == ["running", "waiting", "success"]
    assert statuses[2]["output"] == statuses[1]["output"]
    assert done["status"] == "completed"


def test_edit_sets_json(wire: Wire) -> None:
    """integration/edit_node_test.go upstream: an edit node's assignments land in `$json` of
    the final context."""
    assignments = [
        {"name": "full_name", "value": "{{ $json.first + ' ' + $json.last }}", "type": "string"},
        {"name": "active", "value": "true", "type": "boolean"},
    ]
    m = master([node("edit_node", "edit", "Transform", assignments=assignments)], [],
               {"$json": {"first": "Alice", "last": "Smith"}}, "edit_node")  # fmt: skip
    done = wire_run(wire, m)
    assert done["status"] == "completed"
    edited = {"first": "Alice", "last": "Smith", "full_name": "Alice Smith", "active": True}
    assert done["final_context"]["$json"] == edited


def wire_run(wire: Wire, m: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
    wire.publish_api(m)
    done = wire.completion(m["execution_id"], timeout=timeout)
    wire.no_second_completion(m["execution_id"])
    return done


FRAME = {"split_node_id": "split-1", "branch_id": "branch-1", "item_index": 0, "total_items": 2}


def go_resume_message(edges: bool) -> dict[str, Any]:
    """A wait's frozen message as a Go worker's scheduler publishes it to `workflow.resume`
    (pkg/messaging/resume_consumer_test.go upstream, `makeResumeMessage`): no branch token."""
    eid = str(uuid.uuid4())
    nodes = [node("wait-1", "wait", "Wait", amount=2, unit="minutes"),
             node("next-1", "conditional", "Next", expression="true")]  # fmt: skip
    return {
        "workflow_id": "wf-resume",
        "workflow_version": 4,
        "workflow_version_id": 29,
        "execution_id": eid,
        "current_node": "wait-1",
        "workflow_definition": {
            "nodes": nodes,
            "edges": [edge("wait-1", "next-1", "edge-1")] if edges else [],
        },
        "accumulated_context": {"$Wait": {"resume_at": 123, "timer_id": "timer-1"}},
        "lineage_stack": [FRAME],
        "is_worker_initiated": True,
    }


@pytest.mark.parametrize("edges", [True, False], ids=["next_node", "no_next_node"])
def test_resume_message_of_a_go_scheduler(wire: Wire, edges: bool) -> None:
    """pkg/messaging/resume_consumer_test.go upstream (PublishesNextNode,
    PublishesCompletionWhenNoNextNode): the wait's one `success` status carries the frozen
    output, the parameters resolved again, duration 0 and the lineage; the next message keeps
    the versions, the lineage and the worker-initiated flag; without a next node the
    execution completes. No mirror: the message is worker-initiated."""
    m = go_resume_message(edges)
    eid = m["execution_id"]
    wire.ch.basic_publish(EXCHANGE, RESUME, json.dumps(m).encode(),
                          pika.BasicProperties(delivery_mode=2))  # fmt: skip
    done = wire.completion(eid)
    wire.no_second_completion(eid)
    [wait] = node_statuses(wire, eid, "wait-1", 1)
    check_status(wait, "success", {"parameters", "output", "branch_id", "split_node_id",
                                   "item_index", "total_items", "lineage_stack"})  # fmt: skip
    assert wait["output"] == {"resume_at": 123, "timer_id": "timer-1"}
    assert (wait["parameters"], wait["duration_ms"]) == ({"amount": 2, "unit": "minutes"}, 0)
    assert (wait["branch_id"], wait["lineage_stack"]) == ("branch-1", [FRAME])
    assert done["status"] == "completed"
    assert wire.of(MIRROR, eid) == []
    nxt = [g.body for g in wire.of(TAP, eid)]
    if not edges:
        assert nxt == [] and len(wire.statuses(eid)) == 1
        return
    [body] = nxt
    assert body["current_node"] == "next-1" and body["is_worker_initiated"] is True
    assert (body["workflow_version"], body["workflow_version_id"]) == (4, 29)
    assert body["lineage_stack"] == [FRAME]
    next_statuses = node_statuses(wire, eid, "next-1", 2)
    assert [s["status"] for s in next_statuses] == ["running", "success"]


def test_undecodable_resume_message_is_dead_lettered(wire: Wire) -> None:
    """pkg/messaging/resume_consumer_test.go upstream (TestResumeConsumerHandleResume_
    DecodeFailure): a resume message that does not decode is refused, never retried (Go drops
    it; runeworker keeps a dead-letter copy, docs/WIRE.md section 2.4)."""
    garbage = b"invalid payload " + uuid.uuid4().hex.encode()
    wire.ch.basic_publish(EXCHANGE, RESUME, garbage, pika.BasicProperties(delivery_mode=2))
    wire.wait("the dead letter", lambda: any(g.raw == garbage for g in wire.got[DEAD]))
    [copy] = [g for g in wire.got[DEAD] if g.raw == garbage]
    assert copy.headers["x-runeworker-queue"] == RESUME
    assert "decode" in copy.headers["x-runeworker-reason"]


def test_merge_fed_an_oversized_parent_message_fails_at_once(
    amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    """A merge fed as upstream's merge tests feed it, the second parent's message larger than
    `broker.max_message_bytes`: the worker rejects it from its bytes alone (dead letter, a
    `failed` status), and that failure joins the execution as the decoded message would have
    (its joining token, from the `from_node` read from the bytes): the execution fails at once,
    once. Before, the rejection took the token `root`, no branch of that execution: nothing
    was recorded, and the execution failed only when the merge's timer (60 s) ran out."""
    eid = str(uuid.uuid4())
    defn = merge_definition(["branch_a", "branch_b"], {"wait_mode": "wait_for_all",
                                                       "timeout": 60}, False)  # fmt: skip
    with running_worker(amqp_url, redis_url, redis_prefix, **{"broker.max_message_bytes": 8192}):
        wire = Wire(amqp_url)
        try:
            wire.publish_api(merge_arrival(eid, defn, "branch_a", {"$Branch A": {"ok": True}}))
            node_statuses(wire, eid, "merge_node", 2)  # the first arrival waits
            big = {"$Branch B": {"blob": "x" * 16384}}
            wire.publish_api(merge_arrival(eid, defn, "branch_b", big))
            done = wire.completion(eid, timeout=10)
            wire.no_second_completion(eid)
            assert done["status"] == "failed"
            assert "exceeds broker.max_message_bytes" in done["failure_reason"]
            wire.wait("the dead letter", lambda: bool(wire.of(DEAD, eid)))
        finally:
            wire.close()
