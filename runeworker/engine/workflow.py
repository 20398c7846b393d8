"""Workflow definition model and its graph index.

The definition rides in every execution message as `msgspec.Raw`; `parse_definition` turns
the bytes into a `Workflow` with lookup tables. The executor parses each distinct definition
once and keeps it (`runeworker.engine.plan.Definitions`), so that every node of an execution
after the first costs a dictionary lookup.
`null` in any field of these Structs (a node's `credentials`, `error`, `trigger`, ...) reads
as an absent key, as Go reads it (`runeworker.engine.nulls`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec

from runeworker.engine import depth
from runeworker.engine.nulls import TolerantDecoder
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

# Parameters whose entries carry a credential block of their own, which the Rune API resolves
# and embeds as `credentials: {id, name, type, values}` (agent tools and MCP servers:
# services/api/src/workflow/service.py `_resolve_agent_nested_credentials`).
EMBEDDED_CREDENTIAL_LISTS = ("tools", "mcp_servers")
# The keys of a credential block that name it and unlock nothing.
CREDENTIAL_LABELS = frozenset(("id", "name", "type"))


# The password of a URL's user info, wherever a URL stands in a text (quoted or not): a scheme,
# `://` and the user (group 1, with the `:` after it), then the password (group 2) up to the `@`
# that ends the user info. `runeworker.masking.mask_url_passwords` masks what it matches.
URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/?#@:'\"]*:)([^\s/?#@'\"]*)@")


def url_passwords(params: Any) -> list[str]:
    """The passwords written in URLs anywhere in a node's parameters
    (`https://ann:pw@host/`): secrets as much as a credential's, though no credential holds
    them. Walked without recursion, whatever the depth."""
    found: list[str] = []
    stack = [params]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "://" in item:
                found += (m.group(2) for m in URL_PASSWORD.finditer(item) if m.group(2))
        elif isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, list):
            stack += item
    return found


def embedded_credentials(params: Any) -> list[dict[str, Any]]:
    """The value blocks of the credentials embedded in a node's parameters, to be masked like
    the node's own credential values, and one for the passwords written in its URLs."""
    if not isinstance(params, dict):
        return []
    blocks: list[dict[str, Any]] = []
    passwords = url_passwords(params)
    if passwords:
        blocks.append({"url_passwords": passwords})
    for entry in credential_holders(params):
        cred = entry["credentials"]
        if isinstance(cred, dict):
            values = cred.get("values")
            if isinstance(values, dict):
                blocks.append(values)
            else:  # the flat form, which the agent reads too; id and name unlock nothing
                blocks.append({k: v for k, v in cred.items() if k not in ("id", "name")})
    return blocks


def credential_holders(params: Any) -> Iterator[dict[str, Any]]:
    """The entries of a node's parameters that carry a `credentials` block the API embedded
    (an agent's tools and MCP servers: `EMBEDDED_CREDENTIAL_LISTS`), whatever its shape."""
    if not isinstance(params, dict):
        return
    for name in EMBEDDED_CREDENTIAL_LISTS:
        entries = params.get(name)
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict) and entry.get("credentials") is not None:
                yield entry


class Edge(msgspec.Struct):
    id: str
    src: str
    dst: str


class Workflow(msgspec.Struct):
    """A parsed definition with the lookup tables the executor needs."""

    nodes: list[Node]
    edges: list[Edge] = msgspec.field(default_factory=list)
    by_id: dict[str, Node] = msgspec.field(default_factory=dict)
    outgoing: dict[str, list[Edge]] = msgspec.field(default_factory=dict)
    edge_by_id: dict[str, Edge] = msgspec.field(default_factory=dict)
    error_edges: frozenset[str] = frozenset()
    aliases: dict[str, str] = msgspec.field(default_factory=dict)  # node id -> label
    # the credential blocks embedded in each node's parameters (`embedded_credentials`), by
    # node id, for the nodes that have some; and what the completion masks: every node's
    # credential values by "<node id>.<key>", and every embedded block
    embedded: dict[str, list[dict[str, Any]]] = msgspec.field(default_factory=dict)
    secret_values: dict[str, Any] = msgspec.field(default_factory=dict)
    secret_blocks: list[dict[str, Any]] = msgspec.field(default_factory=list)
    # what `runeworker.engine.paths` found walking this graph, which never changes: a process
    # keeps a parsed definition for many executions (`known_definitions.py`)
    walks: dict[tuple[str, ...], Any] = msgspec.field(default_factory=dict)

    def index(self) -> Workflow:
        """Fill the lookup tables (first definition wins on duplicate ids)."""
        for n in self.nodes:
            self.by_id.setdefault(n.id, n)
            self.aliases.setdefault(n.id, n.label)
            blocks = embedded_credentials(n.parameters)
            if blocks and self.by_id[n.id] is n:
                self.embedded[n.id] = blocks
            self.secret_blocks += blocks
            if n.credentials:
                for k, v in n.credentials.values.items():
                    self.secret_values[f"{n.id}.{k}"] = v
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

    def triggers(self) -> list[str]:
        """Ids of the trigger nodes: `trigger: true`, the key the Rune API counts
        (services/api/src/workflow/validation/workflow.py)."""
        return [n.id for n in self.nodes if n.trigger]

    def roots(self) -> list[str]:
        """Ids of the nodes no edge points to, in definition order."""
        targets = {e.dst for e in self.edges}
        return [n.id for n in self.nodes if n.id not in targets]

    def start_node(self) -> str:
        """The node an execution starts at: the trigger (whose successors run next), else the
        one node no edge points to. Raises WorkflowError when that is not exactly one node:
        the Rune API requires exactly one trigger (services/api/src/workflow/queue.py), and
        starting one of several candidates would silently skip the others."""
        triggers = self.triggers()
        if len(triggers) > 1:
            raise WorkflowError(
                f"workflow has {len(triggers)} trigger nodes ({', '.join(triggers)}): "
                "exactly one is allowed, as the Rune API requires"
            )
        if triggers:
            return triggers[0]
        roots = self.roots()
        if len(roots) > 1:
            raise WorkflowError(
                f"workflow has no trigger node and {len(roots)} start nodes "
                f"({', '.join(roots)}): add a trigger node and connect it to each node to run "
                "first (the Rune API requires exactly one trigger)"
            )
        if not roots:
            raise WorkflowError("workflow has no trigger node and no start node")
        return roots[0]


class _Definition(msgspec.Struct):
    nodes: list[Node]
    edges: list[Edge] | None = None
    # typed as Go's core.Workflow types them (services/rune-worker/pkg/core/workflow.go), so
    # that a definition Go refuses is refused here too; the ids that count are the message's
    workflow_id: str = ""
    execution_id: str = ""


_decoder = TolerantDecoder(_Definition)


def parse_definition(raw: bytes | msgspec.Raw) -> Workflow:
    """Parse a definition into an indexed `Workflow`; a bad one raises `WorkflowError`. Its
    bytes must be UTF-8 throughout, and its numbers such as a double holds: msgspec checks the
    strings and numbers it reads, not those it skips (an edge's `label`, the web app's `notes`,
    an unknown key), which the definition carries on byte for byte into every next message and
    the mirror, where RTES refuses them."""
    data = raw if isinstance(raw, bytes) else bytes(raw)
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkflowError(
                f"workflow_definition: invalid UTF-8 at byte {exc.start}: {exc.reason}"
            ) from exc
    # msgspec refuses such a number where the types read it, not in what they skip, and reads
    # an integer of any length as a Python int: Go reads every number of the definition as a
    # float64 and refuses it, and RTES, which reads the definition's mirror, too
    problem = depth.number_problem(data)
    if problem:
        raise WorkflowError(
            f"workflow_definition: {problem} (no IEEE double holds it; Go's encoding/json and "
            "RTES's serde_json refuse it)"
        )
    try:
        d = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise WorkflowError(f"workflow_definition: {exc}") from exc
    except RecursionError as exc:
        raise WorkflowError("workflow_definition: JSON nested too deeply") from exc
    if not d.nodes:
        raise WorkflowError("workflow_definition must contain at least one node")
    return Workflow(nodes=d.nodes, edges=d.edges or []).index()
