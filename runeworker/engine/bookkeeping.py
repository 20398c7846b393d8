"""How a step keeps its branch token, chosen per step by the executor, cheapest first.

* **single-branch** (`runeworker.engine.linear`): the workflow can never have two live
  branches; the step makes no state-store call (the first one records the start time).
* **settled**: a quick (not blocking) plain node of an execution with parallel branches runs
  before the verdict on its token; one `StateStore.settle` call then admits and advances. A
  token that turns out stale or cancelled only cost that run: its statuses are dropped. At
  `max_steps` nothing is recorded (`AtStepLimit`) and the step is taken the admitted way.
* **admitted**: `admit`, run, `advance`: flow-control nodes (they read and write barriers and
  timers while they run), blocking nodes (their `running` is committed before they start, so
  the verdict must come first), resumed waits and ghosts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from runeworker.engine import linear
from runeworker.engine.messages import STATUS_RUNNING, NodeExecutionMessage, NodeStatusMessage
from runeworker.engine.paths import FLOW_TYPES
from runeworker.engine.registry import TRIGGER_TYPES, NodeSpec
from runeworker.engine.state import Failure, StateStore, Transition, Verdict
from runeworker.engine.workflow import Node, Workflow

OnRunning = Callable[[NodeStatusMessage, bool], None]


class AtStepLimit(Exception):
    """A settled step found its execution at `max_steps`: nothing was recorded."""


class Shapes:
    """`linear.single_branch` of each parsed definition, computed once (an entry keeps its
    workflow alive, so the id it is keyed by cannot be reused while cached)."""

    def __init__(self, specs: Mapping[str, NodeSpec], max_steps: int, size: int = 256) -> None:
        self.specs = specs
        self.max_steps = max_steps
        self.size = size
        self._found: dict[int, tuple[Workflow, bool]] = {}

    def __call__(self, wf: Workflow) -> bool:
        found = self._found.get(id(wf))
        if found is None:
            if len(self._found) >= self.size:
                self._found.clear()
            shape = linear.single_branch(wf, self.specs, self.max_steps)
            found = self._found[id(wf)] = (wf, shape)
        return found[1]


def settle(
    store: StateStore,
    msg: NodeExecutionMessage,
    token: str,
    children: list[str],
    leaf: bytes | None,
    failure: Failure | None,
    now_ns: int,
    max_steps: int,
) -> tuple[Transition, Verdict]:
    """`StateStore.settle` of a step whose node ran; raises `AtStepLimit` at `max_steps`."""
    settled = store.settle(msg.execution_id, token, children, leaf, failure, now_ns, max_steps)
    if settled.transition is None:
        raise AtStepLimit
    return settled.transition, settled.verdict


def settles(
    specs: Mapping[str, NodeSpec], msg: NodeExecutionMessage, node: Node, resumed: bool
) -> bool:
    """True when the step of `node` may run before the verdict on its token (see above)."""
    if resumed or msg.ghost is True or node.type in FLOW_TYPES:
        return False
    if node.trigger or node.type in TRIGGER_TYPES:
        return False
    spec = specs.get(node.type)
    return spec is not None and not spec.blocking


def holding(statuses: list[NodeStatusMessage]) -> OnRunning:
    """An `on_running` that puts the running status first among the step's `statuses` (a quick
    node's `running` is committed with them anyway), where a stale verdict can still drop it."""

    def hold(status: NodeStatusMessage, _blocking: bool) -> None:
        statuses.append(status)

    return hold


def release_running(statuses: list[NodeStatusMessage], on_running: OnRunning | None) -> None:
    """Hand the held `running` status to `on_running` once the verdict let it stand, so that
    callers see every running status through the callback, in order."""
    if on_running is not None and statuses and statuses[0].status == STATUS_RUNNING:
        on_running(statuses.pop(0), False)
