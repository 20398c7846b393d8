"""Node registry: built-ins register with `@node("type")`; installed distributions add node
types through the `runeworker.nodes` entry-point group (each entry point names a module or a
function decorated with `@node`, loading it is enough to register). Modules named in the
`RUNEWORKER_EXTRA_NODE_MODULES` environment variable (comma-separated, importable from
`sys.path`) are imported too: local node modules without packaging."""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from runeworker.engine.messages import StackFrame
from runeworker.engine.workflow import Edge, Node, Workflow

if TYPE_CHECKING:
    from runeworker.engine.resolver import Resolver
    from runeworker.engine.state import StateStore

ENTRY_POINT_GROUP = "runeworker.nodes"
EXTRA_MODULES_ENV = "RUNEWORKER_EXTRA_NODE_MODULES"
BUILTIN_PACKAGE = "runeworker.nodes"
# Trigger types start a workflow; they are never executed (the API starts their successors).
TRIGGER_TYPES = frozenset({"ManualTrigger", "ScheduledTrigger", "webhook"})

log = logging.getLogger("runeworker.registry")
_NODE_LOG = logging.getLogger("runeworker.node")  # what nodes log through (NodeContext.log)


@dataclass(frozen=True)
class NodeSettings:
    """Operator settings a node may need (filled from the config file by the adapters)."""

    http_deny_networks: tuple[str, ...] = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
    http_max_response_bytes: int = 10 * 1024 * 1024
    http_default_timeout: float = 30.0
    smtp_timeout: float = 30.0


@dataclass
class NodeContext:
    """Everything a node sees while it runs. `params` are already resolved, except the
    ones the node declared `raw` (it resolves those itself through `resolver`)."""

    workflow_id: str
    execution_id: str
    node: Node
    params: dict[str, Any]
    context: Mapping[str, Any]
    workflow: Workflow
    resolver: Resolver
    credentials: dict[str, Any] = field(default_factory=dict)
    from_node: str = ""
    lineage: list[StackFrame] = field(default_factory=list)
    state: StateStore | None = None
    settings: NodeSettings = field(default_factory=NodeSettings)
    log: logging.Logger = _NODE_LOG


Run = Callable[[NodeContext], dict[str, Any]]
# A router picks the edges to follow. `output` is None when the node failed under `ignore`.
Router = Callable[[Node, dict[str, Any] | None, Workflow], list[Edge]]


@dataclass(frozen=True)
class NodeSpec:
    """A registered node type.

    required: parameter names `runeworker validate` insists on.
    raw: parameter names the executor must NOT pre-resolve (the node interprets them).
    blocking: the node may block on I/O, so `running` is committed before it starts.
    router: custom routing (conditional, switch); None = every normal outgoing edge.
    single_route: the router never follows more than one edge (lets a workflow run on the
        single-branch ledger, `runeworker.engine.ledger`).
    """

    type: str
    run: Run
    required: tuple[str, ...] = ()
    raw: frozenset[str] = frozenset()
    blocking: bool = False
    router: Router | None = None
    single_route: bool = False


_REGISTRY: dict[str, NodeSpec] = {}
_loaded = False


def node(
    type_: str,
    *,
    required: tuple[str, ...] = (),
    raw: tuple[str, ...] = (),
    blocking: bool = False,
    router: Router | None = None,
    single_route: bool = False,
) -> Callable[[Run], Run]:
    """Register the decorated function as the implementation of node type `type_`."""

    def register(fn: Run) -> Run:
        _REGISTRY[type_] = NodeSpec(
            type_, fn, tuple(required), frozenset(raw), blocking, router, single_route
        )
        return fn

    return register


def load() -> dict[str, NodeSpec]:
    """Import the built-in node modules, every installed `runeworker.nodes` entry point and
    the modules named in $RUNEWORKER_EXTRA_NODE_MODULES."""
    global _loaded
    if not _loaded:
        _loaded = True
        # every module of runeworker.nodes registers its node types on import
        package = importlib.import_module(BUILTIN_PACKAGE)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not take the worker down
                log.error("cannot load node plugin %s (%s): %s", ep.name, ep.value, exc)
        for name in os.environ.get(EXTRA_MODULES_ENV, "").split(","):
            if name.strip():
                _import_extra(name.strip())
    return _REGISTRY


def _import_extra(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as exc:  # same rule as a broken plugin
        log.error("cannot import node module %s named in %s: %s", name, EXTRA_MODULES_ENV, exc)


def get(type_: str) -> NodeSpec | None:
    """The spec of a node type, or None when nothing registered it."""
    return load().get(type_)
