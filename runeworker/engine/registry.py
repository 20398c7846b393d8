"""Node registry: built-ins register with `@node("type")`; installed distributions add node
types through the `runeworker.nodes` entry-point group (each entry point names a module or a
function decorated with `@node`, loading it is enough to register). Modules named in the
`RUNEWORKER_EXTRA_NODE_MODULES` environment variable (comma-separated, importable from
`sys.path`) are imported too: local node modules without packaging."""

from __future__ import annotations

import importlib
import logging
import math
import os
import pkgutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from runeworker.engine.messages import StackFrame
from runeworker.engine.workflow import Edge, Node, Workflow
from runeworker.errors import RuneworkerError

if TYPE_CHECKING:
    from runeworker.engine.resolver import Resolver
    from runeworker.engine.state import StateStore

ENTRY_POINT_GROUP = "runeworker.nodes"
EXTRA_MODULES_ENV = "RUNEWORKER_EXTRA_NODE_MODULES"
# Every module of these packages registers its node types on import.
BUILTIN_PACKAGES = ("runeworker.nodes", "runeworker.integrations")
# Trigger types start a workflow; they are never executed (the API starts their successors).
TRIGGER_TYPES = frozenset({"ManualTrigger", "ScheduledTrigger", "webhook"})

log = logging.getLogger("runeworker.registry")
_NODE_LOG = logging.getLogger("runeworker.node")  # what nodes log through (NodeContext.log)


# Cloud metadata endpoints (AWS/GCP/Azure link-local, AWS IPv6, Alibaba): an http node must not
# hand instance credentials to whoever wrote the workflow.
DENY_NETWORKS = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")


@dataclass(frozen=True)
class NodeSettings:
    """Operator settings a node may need. The defaults here are the only ones: the config's
    `[nodes]` section and `worker.node_timeout` (runeworker/config.py) take theirs from this
    class, and `run` and `serve` both build their settings with `config.to_node_settings`.

    node_timeout: the time limit of a node as a whole: of a blocking node (http: every
        attempt and backoff; smtp: every network operation; an integration: every request and
        Retry-After wait), also the default and upper bound of its own timeout; and of the
        nodes that spend CPU over many values (edit, filter, sort, switch, conditional:
        `TimeLimit`); 0 = no limit. Under
        `serve` a node must end within `worker.timeout` (the supervisor kills a child whose
        node runs longer), so `config.to_node_settings` never gives 0: it defaults to 80 % of
        worker.timeout, and so does this class.
    """

    http_deny_networks: tuple[str, ...] = DENY_NETWORKS
    http_max_response_bytes: int = 10 * 1024 * 1024
    http_default_timeout: float = 30.0
    smtp_timeout: float = 30.0
    # Integration nodes (runeworker/integrations/): service ("gmail", "jira", ...) -> base URL,
    # where it differs from the public API; the longest Retry-After waited for, and how often.
    integrations_base_urls: Mapping[str, str] = field(default_factory=dict)
    integrations_retry_after_max: float = 10.0
    integrations_retry_after_attempts: int = 2
    # the agent node (runeworker.nodes.agent); "" = the provider SDK's public endpoint
    agent_gemini_base_url: str = ""
    agent_openai_base_url: str = ""
    agent_anthropic_base_url: str = ""
    agent_max_rounds: int = 10
    agent_request_timeout: float = 30.0
    agent_total_timeout: float = 48.0  # 80 % of the default worker.timeout
    agent_max_retries: int = 2
    agent_anthropic_max_tokens: int = 4096

    node_timeout: float = 48.0  # 80 % of the default worker.timeout


def time_limit_message(seconds: float) -> str:
    """What a node stopped by `worker.node_timeout` says (after what it was doing)."""
    return f"stopped at the node time limit of {seconds:g} s (worker.node_timeout)"


# A node that does at most this many costly steps (switch rules, conditions, operands of an
# expression) is not timed: each step is bounded by the size of the values it reads (a
# `contains` over a list of 16 MB takes about 2 s), so a few of them are too, and the routing
# nodes, on most workflows' paths, do not pay for a clock (creating a TimeLimit and two looks
# at it cost about 1 % of a conditional's step).
UNTIMED_STEPS = 8


class TimeLimit:
    """`worker.node_timeout` (NodeSettings.node_timeout) counted from a node's start, for the
    nodes that spend CPU over many values (edit, filter, sort, switch, conditional, the list
    input): they look at it between values (`passed`, or in a loop `monotonic() >= deadline`
    on locals: one clock read) and fail with `message` and what they were doing, under the
    node's error policy, before the supervisor kills the child at `worker.timeout`. 0 or inf:
    no limit (`deadline` is inf)."""

    __slots__ = ("deadline", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        limited = 0 < seconds < math.inf
        self.deadline = time.monotonic() + seconds if limited else math.inf

    def passed(self) -> bool:
        return time.monotonic() >= self.deadline

    def left(self) -> float:
        """Seconds left (inf without a limit; 0 or less once passed)."""
        return self.deadline - time.monotonic()

    def message(self) -> str:
        return time_limit_message(self.seconds)

    def timed(self, resolve: Callable[[str], Any]) -> Callable[[str], Any]:
        """`resolve` (a resolver's `lookup` or `resolve_value`) looking at the limit first: for
        code that reads data through such a callable (an expression's operands), once per
        value read. Once passed it raises TimeLimitPassed, which the node turns into its
        NodeError (code that tolerates a NodeError, a display's best effort, must not go on)."""

        def call(text: str) -> Any:
            if time.monotonic() >= self.deadline:
                shown = text if len(text) <= 60 else text[:57] + "..."
                raise TimeLimitPassed(f"reading {shown}: {self.message()}")
            return resolve(text)

        return call


class TimeLimitPassed(RuneworkerError):
    """A `TimeLimit.timed` callable was called after the limit (see there)."""


class Meter(Protocol):
    """Where a node reports measurements of its own (the agent's LLM requests). A worker child
    hands the executor one backed by Prometheus (`runeworker.metrics.NodeMeter`); elsewhere
    measurements go nowhere. `name` is a metric the meter knows; `labels` are in its order."""

    def count(self, name: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add `amount` to a counter."""

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        """Record one observation of a histogram."""


class _NoMeter:
    def count(self, name: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        pass

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        pass


NO_METER: Meter = _NoMeter()


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
    meter: Meter = NO_METER

    def time_limit(self) -> TimeLimit:
        """`worker.node_timeout` from now: call it when the node starts."""
        return TimeLimit(self.settings.node_timeout)


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
    """Import the built-in node and integration modules, every installed `runeworker.nodes`
    entry point and the modules named in $RUNEWORKER_EXTRA_NODE_MODULES."""
    global _loaded
    if not _loaded:
        _loaded = True
        for name in BUILTIN_PACKAGES:
            package = importlib.import_module(name)
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{name}.{info.name}")
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
