"""A step planned once per delivery: the workflow and node its message names, the node's spec,
whether it may block, and the ledger mode that keeps its branch token.

The definition rides in every message of an execution, byte for byte the same. `Definitions`
parses each distinct definition once, checks its graph and decides whether it is single-branch,
and keeps the result by the definition's bytes (least recently used out): every step after the
first of an execution costs one dictionary lookup. At most `SIZE` definitions and `MAX_BYTES` of
their bytes are kept (a parsed definition costs about ten times its bytes). A message that
cannot run (a definition that does not parse or breaks a graph rule, an unknown node, a resume
message for a node that is not a wait) is planned too: its plan carries the error, and the
executor fails the execution cleanly.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from runeworker.engine import ledger
from runeworker.engine.ledger import Admitted, Ledger
from runeworker.engine.messages import NodeExecutionMessage
from runeworker.engine.paths import MERGE, WAIT
from runeworker.engine.registry import NodeSpec
from runeworker.engine.state import message_token
from runeworker.engine.validation import structural_problems
from runeworker.engine.workflow import Node, Workflow, parse_definition
from runeworker.errors import WorkflowError

# Definitions kept parsed, by count and by their bytes together. A parsed definition costs about
# ten times its bytes (its parameters as Python objects, the graph's walks): 128 distinct
# definitions of 250 KB grew a child by 360 MB before the byte budget. A deployment runs
# thousands of definitions; these keep the ones in use. The one asked for last is kept whatever
# its size: the next steps of its execution ask for it.
SIZE = 128
MAX_BYTES = 8 << 20


@dataclass(frozen=True)
class Definition:
    """One workflow definition as the planner needs it."""

    workflow: Workflow | None  # None when the bytes do not parse
    error: str  # why no step of it can run; "" when it can
    single_branch: bool  # no execution of it can have two live branches (ledger.single_branch)


class Definitions:
    """Parsed definitions keyed by their bytes, the least recently used dropped first beyond
    `size` of them or `max_bytes` of their bytes."""

    def __init__(
        self,
        specs: Mapping[str, NodeSpec],
        max_steps: int,
        size: int = SIZE,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.specs = specs
        self.max_steps = max_steps
        self.size = size
        self.max_bytes = max_bytes
        self.kept_bytes = 0  # the keys' bytes together
        self._cache: OrderedDict[bytes, Definition] = OrderedDict()
        # the definition asked for last, its bytes as a Raw of their own (not a view into the
        # message they came in): the steps of an execution ask for the same one in a row, and
        # comparing two Raws is far cheaper than copying and hashing the bytes for the lookup;
        # and the object asked with, which messages decoded with a kept definition share
        # (runeworker/engine/known_definitions.py): then not even the comparison is made
        self._last: tuple[msgspec.Raw, Definition, object] | None = None

    def get(self, raw: bytes | msgspec.Raw) -> Definition:
        """The definition `raw`, parsed and checked the first time it is seen."""
        last = self._last
        if last is not None and (raw is last[2] or (type(raw) is msgspec.Raw and raw == last[0])):
            self._last = (last[0], last[1], raw)
            return last[1]
        key = bytes(raw)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
        else:
            found = self._cache[key] = self._load(key)
            self.kept_bytes += len(key)
            cache = self._cache
            while len(cache) > self.size or (self.kept_bytes > self.max_bytes and len(cache) > 1):
                self.kept_bytes -= len(cache.popitem(last=False)[0])
        self._last = (msgspec.Raw(key), found, raw)
        return found

    def _load(self, raw: bytes) -> Definition:
        try:
            wf = parse_definition(raw)
        except WorkflowError as exc:
            return Definition(None, str(exc), False)
        problems = [str(p) for p in structural_problems(wf)]
        if problems:
            return Definition(wf, "invalid workflow: " + "; ".join(problems), False)
        return Definition(wf, "", ledger.single_branch(wf, self.specs, self.max_steps))


@dataclass(slots=True)
class Plan:
    """One step, decided before anything runs (read-only by convention: not frozen, because a
    frozen dataclass costs a microsecond more per step to build). `error` non-empty: the message
    cannot run; the step fails the execution (then `node` is current_node as far as it can be
    known, by id alone when the definition does not name it, and `workflow` the definition
    as far as it parses: the completion masks its credentials as every completion does)."""

    msg: NodeExecutionMessage
    token: str  # the message's branch token (`message_token`: `root` for a master message)
    node: Node
    workflow: Workflow | None  # None only with an error: the definition does not parse
    spec: NodeSpec | None  # None when nothing registered the node's type
    ledger: type[Ledger]
    blocking: bool  # run the node where the caller can keep its connection alive
    resumed: bool = False  # from the resume queue: a wait's (or a merge's) timer fired
    error: str = ""
    # the error is the definition's graph, refused (docs/WIRE.md section 3.1), and the
    # message names one of its nodes: reported like a node failure, `running` then `failed`
    refused: bool = False
    # a dead letter put back by hand (`Executor.plan`): its token may open an execution the
    # state store no longer knows (`runeworker.engine.state.opens_unknown`)
    replayed: bool = False

    @classmethod
    def make(
        cls,
        msg: NodeExecutionMessage,
        definition: Definition,
        specs: Mapping[str, NodeSpec],
        *,
        resumed: bool = False,
        replayed: bool = False,
    ) -> Plan:
        """The plan of `msg` (`resumed`, `replayed`: see `Executor.plan`)."""
        token = msg.branch_token or message_token(msg)  # no call when the message has one
        wf = definition.workflow
        node = wf.by_id.get(msg.current_node) if wf is not None else None
        error = definition.error
        if not error and node is None:
            error = f"current_node {msg.current_node} not found in workflow definition"
        if not error and resumed and node is not None and node.type not in (WAIT, MERGE):
            error = f"resume message names node {node.id}, which is not a wait node"
        if error or wf is None or node is None:
            named = wf.by_id.get(msg.current_node) if wf is not None else None
            refused = bool(definition.error) and named is not None
            named = named or Node(id=msg.current_node or "unknown")
            return cls(
                msg, token, named, wf, None, Admitted, False, resumed, error, refused, replayed
            )
        spec = specs.get(node.type)
        mode = ledger.choose(
            msg, node, spec, single=definition.single_branch, resumed=resumed, replayed=replayed
        )
        # a resumed wait runs no node code; a merge's timer runs only its quick settings
        blocking = spec is not None and spec.blocking and not resumed
        return cls(msg, token, node, wf, spec, mode, blocking, resumed, replayed=replayed)

    def failing(self, reason: str) -> Plan:
        """This message failed as bad input for `reason` (poison, too large, ...): the step
        fails its execution through the token protocol, without running its node."""
        return dataclasses.replace(
            self, spec=None, ledger=Admitted, blocking=False, error=reason, refused=False
        )
