"""Workflow validation: the graph rules the Go worker never checks (docs/WIRE.md section 3.1).

`structural_problems` holds the rules without which a workflow cannot run safely; the executor
runs it once per definition and refuses the workflow at its first step. It refuses only what
breaks the graph itself: empty or duplicate node ids and edge ids, edges that do not join two
nodes of the definition, cycles, and routing parameters or error edges that name an edge leaving
another node. It does not refuse what upstream's worker runs to a defined end
(services/rune-worker/pkg/executor/routing.go, node_handlers.go): a conditional or switch route
naming an edge that does not exist, or that is not a string (the branch ends there if that
route is taken), an unknown error policy type (a failure halts), and a `branch` policy without
an error edge or naming one that does not exist (a failure halts).

`check_workflow` (`runeworker validate`, `run`, `submit`) reports those too, as the likely
mistakes they are, and adds what the registry knows (unknown node types, missing required
parameters). Both report every problem, never only the first, in definition order, so that a
user fixes a workflow in one pass. `runnable_problems` adds where an execution starts (exactly
one trigger), for `validate`, `run` and `submit`.
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from runeworker.engine.registry import TRIGGER_TYPES, NodeSpec
from runeworker.engine.workflow import (
    ERROR_BRANCH,
    ERROR_TYPES,
    Edge,
    Node,
    Workflow,
    parse_definition,
)
from runeworker.errors import WorkflowError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow. `node_id` is "" when the problem is not about one node."""

    node_id: str
    message: str

    def __str__(self) -> str:
        return f"node {self.node_id}: {self.message}" if self.node_id else self.message


class _Lookup:
    """Tables built from the node and edge lists themselves (not `Workflow.index()`), so that a
    hand-built or unindexed workflow is checked the same way and duplicates stay visible."""

    def __init__(self, wf: Workflow) -> None:
        # Every position of each id, kept so that duplicates are listed in linear time.
        self.node_positions: dict[str, list[int]] = {}
        for pos, node in enumerate(wf.nodes):
            self.node_positions.setdefault(node.id, []).append(pos)
        self.edge_positions: dict[str, list[int]] = {}
        for pos, e in enumerate(wf.edges):
            self.edge_positions.setdefault(e.id, []).append(pos)
        self.edge: dict[str, Edge] = {
            edge_id: wf.edges[at[0]] for edge_id, at in self.edge_positions.items()
        }


def structural_problems(wf: Workflow, *, strict: bool = False) -> list[Problem]:
    """Problems that make `wf` unsafe to execute (ids, edges, cycles, routes into another
    node's edges); see the module doc for what is not refused. `strict`: also the routes and
    error policies that upstream runs (what `check_workflow` reports of the graph)."""
    return _collect(wf, None, lenient=not strict)


def check_workflow(wf: Workflow, registry: Mapping[str, NodeSpec]) -> list[Problem]:
    """`structural_problems`, routes and error policies naming missing edges, unknown error
    policy types, unknown node types and missing required parameters."""
    return _collect(wf, registry, lenient=False)


def runnable_problems(wf: Workflow, registry: Mapping[str, NodeSpec]) -> list[Problem]:
    """`check_workflow` plus where an execution starts: what `runeworker validate`, `run` and
    `submit` refuse. A workflow needs exactly one trigger, as the Rune API requires; without
    one, a single node that no edge points to is accepted as the start (runeworker's own
    runner), never one of several (`Workflow.start_node`)."""
    problems = check_workflow(wf, registry)
    if wf.triggers() or wf.roots():  # none at all: every node is in a cycle, reported above
        try:
            wf.start_node()
        except WorkflowError as exc:
            problems.append(Problem("", str(exc)))
    return problems


def _collect(
    wf: Workflow, registry: Mapping[str, NodeSpec] | None, *, lenient: bool
) -> list[Problem]:
    """Per-node problems in node order, then edge problems in edge order, then cycles.
    `lenient`: leave out what upstream's worker runs (see the module doc)."""
    look = _Lookup(wf)
    problems: list[Problem] = []
    for pos, node in enumerate(wf.nodes):
        messages = list(_identity(node, pos, look))
        if registry is not None:
            messages += _type_and_parameters(node, registry)
        messages += _error_policy(node, look, lenient)
        messages += _routing(node, look, lenient)
        # A node without an id can only be named by its place in the list.
        problems += [
            Problem(node.id, m) if node.id else Problem("", f"nodes[{pos}]: {m}") for m in messages
        ]
    problems += _edge_problems(wf, look)
    problems += [Problem("", m) for m in _cycles(wf, look)]
    return problems


def _identity(node: Node, pos: int, look: _Lookup) -> Iterator[str]:
    at = look.node_positions[node.id]
    if not node.id:
        yield "the node has an empty id"
    elif len(at) > 1 and at[0] == pos:
        yield f"the id is shared by {_join([f'nodes[{i}]' for i in at])}"


def _type_and_parameters(node: Node, registry: Mapping[str, NodeSpec]) -> Iterator[str]:
    # Triggers are started by the API, never executed, so their parameters are not ours to check.
    if node.trigger or node.type in TRIGGER_TYPES:
        return
    if not node.type:
        yield "the node has no type"
        return
    spec = registry.get(node.type)
    if spec is None:
        close = difflib.get_close_matches(node.type, list(registry), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        yield f"node type '{node.type}' is not registered{hint}"
        return
    params = node.params
    for name in spec.required:
        if name not in params:
            yield f"required parameter '{name}' is missing"
        elif _is_empty(params[name]):
            yield f"required parameter '{name}' is empty"


def _is_empty(value: Any) -> bool:
    # 0 and false are real values; only absence of content counts as empty.
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _error_policy(node: Node, look: _Lookup, lenient: bool) -> Iterator[str]:
    policy = node.policy
    if policy.kind not in ERROR_TYPES:
        if not lenient:  # a failure halts, as upstream's default case
            yield f"error policy type '{policy.type}' is not one of {', '.join(ERROR_TYPES)}"
    elif policy.kind == ERROR_BRANCH:
        if not policy.error_edge:
            if not lenient:  # a failure halts, as upstream
                yield "error policy 'branch' names no error_edge"
        else:
            yield from _edge_ref("error_edge", policy.error_edge, node, look, lenient)


def _routing(node: Node, look: _Lookup, lenient: bool) -> Iterator[str]:
    params = node.params
    if node.type == "conditional":
        for key in ("true_edge_id", "false_edge_id"):
            # Missing, null or "" means that branch is not wired: a valid way to end there.
            value = params.get(key)
            if isinstance(value, str):
                if value:
                    yield from _edge_ref(key, value, node, look, lenient)
            elif value is not None and not lenient:  # upstream reads it as not wired
                yield f"{key} must be an edge id (a string), not {_json_type(value)}"
    elif node.type == "switch":
        routes = params.get("routes")
        if routes is None:
            return
        if not isinstance(routes, list):
            if not lenient:  # upstream routes nowhere
                yield f"routes must be a list of edge ids, not {_json_type(routes)}"
            return
        for i, value in enumerate(routes):
            # The UI writes null for an unwired handle; "" is read the same way.
            if isinstance(value, str):
                if value:
                    yield from _edge_ref(f"routes[{i}]", value, node, look, lenient)
            elif value is not None and not lenient:  # upstream reads it as not wired
                yield f"routes[{i}] must be an edge id (a string) or null, not {_json_type(value)}"


def _edge_ref(what: str, edge_id: str, node: Node, look: _Lookup, lenient: bool) -> Iterator[str]:
    """An edge named by a node's parameter or policy must leave that node: a route along
    another node's edge would jump the graph that barriers count arrivals by. A name that
    matches no edge ends the branch when taken (upstream's `routing.go`), which only
    `check_workflow` reports."""
    edge = look.edge.get(edge_id)
    if edge is None:
        if not lenient:
            yield f"{what} names edge '{edge_id}', which does not exist"
    elif edge.src != node.id:
        yield f"{what} names edge '{edge_id}', which leaves node '{edge.src}', not this node"


def _json_type(value: Any) -> str:
    names: list[tuple[type, str]] = [
        (bool, "a boolean"),
        (int, "a number"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "an object"),
    ]
    # bool comes first: it is a subclass of int.
    return next((name for t, name in names if isinstance(value, t)), type(value).__name__)


def _edge_problems(wf: Workflow, look: _Lookup) -> Iterator[Problem]:
    for pos, e in enumerate(wf.edges):
        name = f"edge {e.id}" if e.id else f"edges[{pos}]"
        at = look.edge_positions[e.id]
        if not e.id:
            yield Problem("", f"edges[{pos}] has an empty id")
        elif len(at) > 1 and at[0] == pos:
            where = _join([f"edges[{i}]" for i in at])
            yield Problem("", f"edge id '{e.id}' is shared by {where}")
        for end, key, verb in ((e.src, "src", "comes from"), (e.dst, "dst", "points to")):
            if not end:
                yield Problem("", f"{name} has an empty {key}")
            elif end not in look.node_positions:
                yield Problem("", f"{name} {verb} node '{end}', which does not exist")


def _join(items: list[str]) -> str:
    """The places of a shared id as `a, b and c` (there are always two or more)."""
    return f"{', '.join(items[:-1])} and {items[-1]}"


# --- cycles ---------------------------------------------------------------------------------
# Tarjan's strongly connected components, iterative (definitions may hold thousands of nodes,
# deeper than Python's recursion limit), then one shortest cycle per component by BFS: linear.


def _cycles(wf: Workflow, look: _Lookup) -> Iterator[str]:
    ids = list(look.node_positions)  # unique ids in definition order
    index_of = {node_id: i for i, node_id in enumerate(ids)}
    adj: list[list[int]] = [[] for _ in ids]
    for e in wf.edges:
        if e.src in index_of and e.dst in index_of:
            adj[index_of[e.src]].append(index_of[e.dst])
    components = [c for c in _components(adj) if len(c) > 1 or c[0] in adj[c[0]]]
    for comp in sorted(components, key=min):
        path = _cycle_through(min(comp), set(comp), adj)
        yield "cycle: " + " -> ".join(ids[i] for i in path)


def _components(adj: list[list[int]]) -> list[list[int]]:
    """Strongly connected components of the graph `adj` (Tarjan, with an explicit stack)."""
    index = [-1] * len(adj)
    low = [0] * len(adj)
    on_stack = [False] * len(adj)
    stack: list[int] = []
    found: list[list[int]] = []
    counter = 0

    def visit(v: int) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack[v] = True

    for root in range(len(adj)):
        if index[root] != -1:
            continue
        visit(root)
        work = [(root, 0)]
        while work:
            v, i = work[-1]
            if i < len(adj[v]):
                work[-1] = (v, i + 1)
                w = adj[v][i]
                if index[w] == -1:
                    visit(w)
                    work.append((w, 0))
                elif on_stack[w]:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                found.append(_pop_component(stack, on_stack, v))
    return found


def _pop_component(stack: list[int], on_stack: list[bool], root: int) -> list[int]:
    comp: list[int] = []
    while True:
        w = stack.pop()
        on_stack[w] = False
        comp.append(w)
        if w == root:
            return comp


def _cycle_through(start: int, members: set[int], adj: list[list[int]]) -> list[int]:
    """Shortest cycle start -> ... -> start inside one strongly connected component."""
    parent: dict[int, int] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in adj[v]:
            if w == start:
                path = [start, v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if w in members and w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError("a strongly connected component always holds a cycle")


# --- loading --------------------------------------------------------------------------------


class _Shape(msgspec.Struct):
    """Just enough of the input to tell a bare definition from a whole execution message."""

    nodes: msgspec.Raw | UnsetType = UNSET
    workflow_definition: msgspec.Raw | UnsetType = UNSET


_shape_decoder = msgspec.json.Decoder(_Shape)
_BYTE_POSITION = re.compile(r"\(byte (\d+)\)")


def load_for_validation(data: bytes) -> Workflow:
    """A `Workflow` from a bare definition `{nodes, edges}` or a whole execution message
    (with `workflow_definition`); anything else raises `WorkflowError` with a clear message."""
    try:
        shape = _shape_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read the workflow: {_with_line(str(exc), data)}") from exc
    except RecursionError as exc:
        raise WorkflowError("cannot read the workflow: JSON nested too deeply") from exc
    if not isinstance(shape.workflow_definition, UnsetType):
        return parse_definition(shape.workflow_definition)
    if isinstance(shape.nodes, UnsetType):
        raise WorkflowError(
            "the input is neither a workflow definition (an object with 'nodes') "
            "nor an execution message (an object with 'workflow_definition')"
        )
    try:
        return parse_definition(data)
    except WorkflowError as exc:
        # parse_definition names the message field; a bare file has no such field.
        text = str(exc).removeprefix("workflow_definition: ")
        text = text.replace("workflow_definition ", "the workflow definition ", 1)
        raise WorkflowError(_with_line(text, data)) from exc


def _with_line(text: str, data: bytes) -> str:
    """Add line and column to msgspec's byte offset: people read files by line."""

    def position(match: re.Match[str]) -> str:
        offset = int(match.group(1))
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        return f"(byte {offset}, line {line}, column {column})"

    return _BYTE_POSITION.sub(position, text)
