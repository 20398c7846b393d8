"""Workflow definition model and its graph index.

The definition rides in every execution message as `msgspec.Raw`; `parse_definition` turns
the bytes into a `Workflow` with lookup tables. The executor parses each distinct definition
once and keeps it (`runeworker.engine.plan.Definitions`), so that every node of an execution
after the first costs a dictionary lookup.
"""

from __future__ import annotations

from typing import Any

import msgspec

from runeworker.errors import WorkflowError

ERROR_HALT = "halt"
ERROR_IGNORE = "ignore"
ERROR_BRANCH = "branch"
ERROR_TYPES = (ERROR_HALT, ERROR_IGNORE, ERROR_BRANCH)


class Credential(msgspec.Struct):
    """Credential attached to a node, already decrypted by the Rune API."""

    id: str = ""
    name: str = ""
    type: str = ""
    values: dict[str, Any] = msgspec.field(default_factory=dict)


class ErrorPolicy(msgspec.Struct):
    """`error` of a node: halt (default), ignore, or branch along `error_edge`."""

    type: str = ""
    error_edge: str = ""

    @property
    def kind(self) -> str:
        return self.type or ERROR_HALT


class Node(msgspec.Struct):
    """One node of the definition. Unknown keys are ignored here and kept in the raw bytes."""

    id: str
    type: str = ""
    name: str = ""
    trigger: bool = False
    parameters: dict[str, Any] | None = None
    credentials: Credential | None = None
    error: ErrorPolicy | None = None

    @property
    def label(self) -> str:
        """Name used in statuses and context keys; the id when the name is empty."""
        return self.name or self.id

    @property
    def params(self) -> dict[str, Any]:
        return self.parameters or {}

    @property
    def policy(self) -> ErrorPolicy:
        return self.error or _HALT


_HALT = ErrorPolicy()


class Edge(msgspec.Struct):
    id: str
    src: str
    dst: str


class Workflow(msgspec.Struct):
    """A parsed definition with the lookup tables the executor needs."""

    nodes: list[Node]
    edges: list[Edge] = msgspec.field(default_factory=list)
    workflow_id: str = ""
    execution_id: str = ""
    by_id: dict[str, Node] = msgspec.field(default_factory=dict)
    outgoing: dict[str, list[Edge]] = msgspec.field(default_factory=dict)
    edge_by_id: dict[str, Edge] = msgspec.field(default_factory=dict)
    error_edges: frozenset[str] = frozenset()
    aliases: dict[str, str] = msgspec.field(default_factory=dict)  # node id -> label

    def index(self) -> Workflow:
        """Fill the lookup tables (first definition wins on duplicate ids)."""
        for n in self.nodes:
            self.by_id.setdefault(n.id, n)
            self.aliases.setdefault(n.id, n.label)
        for e in self.edges:
            self.edge_by_id.setdefault(e.id, e)
            self.outgoing.setdefault(e.src, []).append(e)
        self.error_edges = frozenset(
            n.error.error_edge for n in self.nodes if n.error and n.error.error_edge
        )
        return self

    def node(self, node_id: str) -> Node:
        try:
            return self.by_id[node_id]
        except KeyError:
            raise WorkflowError(
                f"current_node {node_id} not found in workflow definition"
            ) from None

    def normal_edges(self, node_id: str) -> list[Edge]:
        """Outgoing edges in definition order, without any node's error edge."""
        return [e for e in self.outgoing.get(node_id, ()) if e.id not in self.error_edges]


class _Definition(msgspec.Struct):
    nodes: list[Node]
    edges: list[Edge] | None = None
    workflow_id: str = ""
    execution_id: str = ""


_decoder = msgspec.json.Decoder(_Definition)


def parse_definition(raw: bytes | msgspec.Raw) -> Workflow:
    """Parse a definition into an indexed `Workflow`; a bad one raises `WorkflowError`."""
    try:
        d = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise WorkflowError(f"workflow_definition: {exc}") from exc
    except UnicodeDecodeError as exc:  # msgspec raises it for bad bytes inside a string
        raise WorkflowError(f"workflow_definition: invalid UTF-8: {exc.reason}") from exc
    except RecursionError as exc:
        raise WorkflowError("workflow_definition: JSON nested too deeply") from exc
    if not d.nodes:
        raise WorkflowError("workflow_definition must contain at least one node")
    return Workflow(
        nodes=d.nodes, edges=d.edges or [], workflow_id=d.workflow_id, execution_id=d.execution_id
    ).index()
