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

import time
import uuid
from typing import Any

import pytest
from wire import Wire, check_status, edge, node, node_statuses

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
