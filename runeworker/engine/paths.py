"""Graph walks of the flow-control steps: the aggregator that closes a split, the nodes inside a
split's scope, the parents of a merge, and dead-path elimination.

Dead-path elimination. A merge waits for one arrival per parent node and an aggregator for one
per split item. When a step does not follow some of its outgoing edges (the branch a conditional
did not take, a switch without a matching route, the normal edges of a node that failed along
its error edge, the error edge of a node that succeeded), every barrier those edges would have
reached must hear that nothing is coming, or it would wait forever. `dead_paths` walks forward
from the untaken edges through the nodes that can no longer run and names each barrier to send
a ghost arrival to. Nodes that a taken edge can still reach are alive: the walk stops there and
no ghost is sent for a parent that may still deliver.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, cast

from runeworker.engine.messages import StackFrame
from runeworker.engine.workflow import Edge, Workflow

SPLIT = "split"
AGGREGATOR = "aggregator"
MERGE = "merge"
WAIT = "wait"
FLOW_TYPES = frozenset({SPLIT, AGGREGATOR, MERGE, WAIT})
BARRIER_TYPES = frozenset({AGGREGATOR, MERGE})


def successors(wf: Workflow, node_id: str) -> Iterator[str]:
    """Destinations of every outgoing edge, error edges included, in edge order."""
    return (e.dst for e in wf.outgoing.get(node_id, ()))


def type_of(wf: Workflow, node_id: str) -> str:
    node = wf.by_id.get(node_id)
    return node.type if node is not None else ""


# Walks kept per parsed workflow (`Workflow.walks`): its graph never changes, and a process
# runs many executions of one definition. A definition with more distinct walks than this (a
# switch of thousands of routes) has the rest walked again each time.
WALKS_KEPT = 4096
_UNKNOWN = object()


def _kept(wf: Workflow, key: tuple[str, ...], value: Any) -> Any:
    if len(wf.walks) < WALKS_KEPT:
        wf.walks[key] = value
    return value


def aggregator_of(wf: Workflow, split_id: str) -> str | None:
    """The aggregator that closes `split_id`: the first aggregator reachable from it (breadth
    first) at its own nesting level; a nested split is stepped over to its own aggregator."""
    found = wf.walks.get(("aggregator", split_id), _UNKNOWN)
    if found is _UNKNOWN:
        found = _kept(wf, ("aggregator", split_id), _aggregator_walk(wf, split_id))
    return cast("str | None", found)


def _aggregator_walk(wf: Workflow, split_id: str) -> str | None:
    queue = deque(dict.fromkeys(successors(wf, split_id)))
    seen = set(queue)
    while queue:
        node_id = queue.popleft()
        kind = type_of(wf, node_id)
        if kind == AGGREGATOR:
            return node_id
        nxt: Iterable[str] = successors(wf, node_id)
        if kind == SPLIT:
            inner = aggregator_of(wf, node_id)
            # the branches of a split without aggregator never come back to this level
            nxt = successors(wf, inner) if inner is not None else ()
        for dst in nxt:
            if dst not in seen:
                seen.add(dst)
                queue.append(dst)
    return None


def split_scope(wf: Workflow, split_id: str, aggregator_id: str) -> frozenset[str]:
    """Nodes a branch of the split may run before its aggregator (which is not included)."""
    key = ("scope", split_id, aggregator_id)
    found = wf.walks.get(key)
    if found is None:
        walked = reachable(wf, successors(wf, split_id), stop=aggregator_id)
        found = _kept(wf, key, frozenset(walked))
    return cast("frozenset[str]", found)


def reachable(wf: Workflow, starts: Iterable[str], stop: str | None = None) -> set[str]:
    """`starts` and every node reachable from them, without walking through `stop` (None:
    through every node)."""
    queue = deque(s for s in dict.fromkeys(starts) if s != stop)
    seen = set(queue)
    while queue:
        for dst in successors(wf, queue.popleft()):
            if dst not in seen and dst != stop:
                seen.add(dst)
                queue.append(dst)
    return seen


def merge_parents(wf: Workflow, merge_id: str) -> list[str]:
    """The distinct source nodes of the edges into a merge, in edge order: the arrivals a
    `wait_for_all` merge waits for (duplicate edges count once)."""
    key = ("parents", merge_id)
    found = wf.walks.get(key)
    if found is None:
        found = _kept(wf, key, tuple(dict.fromkeys(e.src for e in wf.edges if e.dst == merge_id)))
    return list(found)


def scope_of(lineage: list[StackFrame]) -> str:
    """Key part telling apart the runs of a barrier inside split branches: the branch ids of
    every frame, outermost first ("" outside any split). One frame gives its branch id."""
    return "/".join(f.branch_id for f in lineage)


def own_aggregator(wf: Workflow, lineage: list[StackFrame]) -> str | None:
    """The aggregator that closes the innermost split of `lineage`, if there is one."""
    return aggregator_of(wf, lineage[-1].split_node_id) if lineage else None


def dead_paths(
    wf: Workflow, node_id: str, taken: list[Edge], lineage: list[StackFrame]
) -> list[tuple[str, str]]:
    """(barrier, parent) pairs owed a ghost arrival because `node_id` did not follow its other
    outgoing edges. `parent` is the node the dead path enters the barrier from. Inside a split
    (`lineage`), a dead path reaching the split's aggregator makes it count the current item."""
    outgoing = wf.outgoing.get(node_id)
    if not outgoing or (len(outgoing) == 1 and taken and taken[0].id == outgoing[0].id):
        return []  # the common case (an end, one edge taken): no walk at all, no sets built
    taken_ids = {e.id for e in taken}
    untaken = [e for e in outgoing if e.id not in taken_ids]
    if not untaken:
        return []
    own_agg = own_aggregator(wf, lineage)
    key = ("dead", node_id, own_agg or "", *sorted(f"{e.id}\n{e.dst}" for e in taken))
    found = wf.walks.get(key)
    if found is None:
        found = _kept(wf, key, _dead_walk(wf, node_id, taken, untaken, own_agg))
    return list(found)


def _dead_walk(
    wf: Workflow, node_id: str, taken: list[Edge], untaken: list[Edge], own_agg: str | None
) -> tuple[tuple[str, str], ...]:
    taken_dsts = {e.dst for e in taken}
    live = reachable(wf, taken_dsts)
    found: dict[tuple[str, str], None] = {}
    visited: set[str] = set()
    queue = deque((node_id, e.dst) for e in untaken)
    while queue:
        parent, dst = queue.popleft()
        kind = type_of(wf, dst)
        if kind == MERGE:
            # a parent that may still run (or this node, when it also took an edge to the
            # merge) delivers for itself
            if parent not in live and not (parent == node_id and dst in taken_dsts):
                found[(dst, parent)] = None
            continue
        if dst == own_agg:
            if dst not in live and not any(target == dst for target, _ in found):
                found[(dst, parent)] = None
            continue
        if dst in live or dst in visited or kind == AGGREGATOR or dst not in wf.by_id:
            # alive, already walked, the end of another split's scope, or no node (refused by
            # validation); a node of no or an unknown type is dead like any other: it would
            # only have failed, and the barriers past it are owed their ghosts all the same
            continue
        visited.add(dst)
        if kind == SPLIT:
            # nothing inside a dead split runs: carry on after its aggregator
            inner = aggregator_of(wf, dst)
            if inner is None or inner in live or inner in visited:
                continue
            visited.add(inner)
            dst = inner
        queue.extend((dst, nxt) for nxt in successors(wf, dst))
    return tuple(found)
