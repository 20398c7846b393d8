"""How one step keeps its branch token: one class per mode, chosen once per step by the plan.

The branch-token protocol of `runeworker.engine.state` decides which branch closes an
execution, cancels siblings after a failure and replays a step whose state write got ahead of
its broker commit. A step talks to it through a `Ledger`: `admit` before the node runs (the
verdict on the token and the steps taken so far), `close` after it (the token replaced by its
children, the transition that may close the execution). Cheapest mode first:

* `SingleBranch`: the workflow can never have two live branches, so there is nothing to
  decide; no state-store call per step (the first one records the start time).
* `Settled`: a quick plain node of an execution with parallel branches runs before the verdict
  on its token; one `StateStore.settle` then admits and advances. Its `running` status waits
  among the step's statuses until the verdict lets it stand. A token that turns out stale or
  cancelled only cost that run. At `max_steps` nothing is recorded and `close` says so (no
  transition): the step then fails at the limit, closed the admitted way.
* `Arriving`: a barrier arrival (aggregator, merge) is settled inside the barrier's own call:
  one `StateStore.arrive` admits the token, records the arrival and, when the outcome is one
  the step foresaw (waiting, or released into known next nodes), advances the token too. A
  merge with a timeout hands its timer to that call (`MergeArrival.park`): the arrival that
  waits schedules it and parks its token, the one that decides cancels it. Other outcomes (a
  timeout, a release that ends the branch, a timer on a store that cannot park it in the
  arrival: a Redis Cluster) are advanced by `close`.
* `Admitted`: `admit`, run, `advance`: the wait node (it schedules a timer while it runs; a
  split only routes, so it is settled), blocking nodes (their `running` is committed before
  they start, so the verdict must come first), resumed waits and merge timers, ghosts that
  reach no barrier, replayed dead letters and bad input. A quick node's `running`
  waits among the step's statuses until `advance`: a merge may learn while it runs that its
  execution halted after the admission (`flow.Ending.cancelled`), and then nothing of the step
  is published.

Every mode but `SingleBranch` may learn from the store that its execution's state is gone
(`runeworker.errors.StateLost`, raised by `admit`, `close` or an arrival): the step then fails
the execution (`runeworker.engine.executor.Turn._lost`). A replayed dead letter's ledger is
`anew`: its token may open an execution the store no longer knows (its state expired since).

Single-branch executions in detail. When the graph proves that an execution can never have two
live branches, the protocol has nothing to do:

* every step publishes at most one next message, in the same atomic step (one AMQP transaction)
  as the ack of its own delivery, so exactly one message of the execution exists at any time;
* the step that publishes no next message (the end of the chain, or a failure under `halt`)
  publishes the completion in that same atomic step: if it is redelivered, its first attempt
  published nothing, so the execution still gets exactly one completion;
* the graph is acyclic (validation rejects cycles), so an execution takes at most one step per
  node and the max-steps guard cannot trip when the workflow has no more nodes than the limit.

Such a step does not wait on the store: the first step records the start time
(`StateStore.begin`, sent with the next broker commit) and puts it into its next message
(`started_at_ms`, runeworker's own key, copied on by every step), where the closing step finds
it for `total_duration_ms`; only when a peer that drops the key took a step in between does the
closing step read the start back (`StateStore.started_at`). Otherwise the messages are those of
the full protocol: the next message still carries the child token derived from the parent's, so
a peer on the full protocol can take over.

A workflow is single-branch when it has no flow-control node (split, aggregator, merge, wait:
they need the shared state by nature), no more nodes than `max_steps`, every node type is
registered, and no node can follow two edges: a trigger or a node without a router has at most
one normal outgoing edge, a node with a router has one that declares `single_route` (conditional,
switch), and the error edge of `branch` is one edge.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import ClassVar

from msgspec import UNSET

from runeworker.engine.barriers import Arrival, foreseen_children
from runeworker.engine.messages import (
    COMPLETED,
    STATUS_RUNNING,
    NodeExecutionMessage,
    NodeStatusMessage,
)
from runeworker.engine.paths import BARRIER_TYPES, FLOW_TYPES, SPLIT
from runeworker.engine.registry import TRIGGER_TYPES, NodeSpec
from runeworker.engine.state import Admission, Arrived, Failure, StateStore, Transition, Verdict
from runeworker.engine.workflow import Node, Workflow

OnRunning = Callable[[NodeStatusMessage, bool], None]  # (running status, the node may block)
Clock = Callable[[], int]  # epoch ns


# What `Ledger.close` learnt: (verdict, transition). The verdict on the token when it comes
# only now (a settled step), else None; the transition None when nothing was recorded because
# the execution is at its step limit (settled only). A plain tuple: it is built on every step.
Closing = tuple[Verdict | None, Transition | None]


class Ledger(ABC):
    """The branch-token bookkeeping of one step (see the module doc for the modes)."""

    mode: ClassVar[str]
    __slots__ = ("anew", "clock", "max_steps", "msg", "store", "token")

    def __init__(
        self,
        store: StateStore,
        msg: NodeExecutionMessage,
        token: str,
        clock: Clock,
        max_steps: int,
        *,
        anew: bool = False,
    ) -> None:
        self.store = store
        self.msg = msg
        self.token = token
        self.clock = clock
        self.max_steps = max_steps
        # a replayed dead letter: its token may open an execution the store does not know
        # (`runeworker.engine.state.opens_unknown`)
        self.anew = anew

    @abstractmethod
    def admit(self) -> Admission:
        """Before the node runs: the verdict on the token and the steps taken so far."""

    def running(
        self, on_running: OnRunning | None, statuses: list[NodeStatusMessage]
    ) -> OnRunning | None:
        """Where the node's `running` status goes (`statuses`: the step's outbox statuses).
        The step calls it once, before anything else."""
        return on_running

    @abstractmethod
    def close(
        self, children: list[str], leaf: bytes | None, failure: Failure | None, now_ns: int
    ) -> Closing:
        """Replace the token by `children`. `leaf` is the branch's context when it ends
        normally; `failure` when it ends the execution early."""


class SingleBranch(Ledger):
    """No state-store call per step: the execution never has two live branches."""

    mode = "single-branch"
    __slots__ = ()

    def admit(self) -> Admission:
        """At the first step (a message without a branch token or a start time): record the
        start and put it into the message, whose `started_at_ms` every next message copies."""
        msg = self.msg
        if not msg.branch_token and msg.started_at_ms is UNSET:
            begun = self.clock()
            self.store.begin(msg.execution_id, begun)
            msg.started_at_ms = begun // 1_000_000
        return Admission(Verdict.RUN, 0)

    def close(
        self, children: list[str], leaf: bytes | None, failure: Failure | None, now_ns: int
    ) -> Closing:
        """The step closes the execution when it fails or continues nowhere."""
        if failure is None and children:
            return None, Transition(closed=False)
        started = self.started_at()
        if failure is not None:
            tr = Transition(True, failure.status, failure.reason, started, [failure.context])
        else:
            tr = Transition(True, COMPLETED, "", started, [leaf] if leaf is not None else [])
        return None, tr

    def started_at(self) -> int:
        """When the execution started (epoch ns): the `started_at_ms` the first step put into
        the messages, else (a peer that does not carry it took a step) what `begin` recorded."""
        started_ms = self.msg.started_at_ms
        if isinstance(started_ms, int) and started_ms > 0:
            return started_ms * 1_000_000
        return self.store.started_at(self.msg.execution_id)


class _Holding(Ledger):
    """A ledger that may hold a quick node's `running` status among the step's statuses
    until `close`, where a verdict can still drop it (the step's statuses are cleared)."""

    __slots__ = ("_on_running", "_statuses")  # set by `running`
    _on_running: OnRunning | None
    _statuses: list[NodeStatusMessage]

    def __init__(
        self,
        store: StateStore,
        msg: NodeExecutionMessage,
        token: str,
        clock: Clock,
        max_steps: int,
        *,
        anew: bool = False,
    ) -> None:
        super().__init__(store, msg, token, clock, max_steps, anew=anew)
        self._on_running, self._statuses = None, []

    def _hold(self, status: NodeStatusMessage, _blocking: bool) -> None:
        self._statuses.append(status)

    def _release(self) -> None:
        """Hand the held `running` status to `on_running` once the verdict let it stand, so
        that callers see every running status through the callback, in order."""
        statuses, on_running = self._statuses, self._on_running
        if on_running is not None and statuses and statuses[0].status == STATUS_RUNNING:
            on_running(statuses.pop(0), False)


class Settled(_Holding):
    """The node runs first; one `StateStore.settle` admits and advances its token."""

    mode = "settled"
    __slots__ = ()

    def admit(self) -> Admission:
        """No store call: the verdict comes with `close` (RUN until then)."""
        return Admission(Verdict.RUN, 0)

    def running(
        self, on_running: OnRunning | None, statuses: list[NodeStatusMessage]
    ) -> OnRunning | None:
        """The running status goes first among the step's `statuses` (a quick node's `running`
        is committed with them anyway), where a stale verdict can still drop it."""
        self._on_running, self._statuses = on_running, statuses
        return self._hold

    def close(
        self, children: list[str], leaf: bytes | None, failure: Failure | None, now_ns: int
    ) -> Closing:
        msg = self.msg
        settled = self.store.settle(
            msg.execution_id, self.token, children, leaf, failure, now_ns, self.max_steps,
            anew=self.anew,
        )  # fmt: skip
        if settled.transition is not None and settled.verdict in (Verdict.RUN, Verdict.REPLAY):
            self._release()
        return settled.verdict, settled.transition


class Arriving(Settled):
    """A barrier arrival (aggregator, merge): one `StateStore.arrive` admits the token, records
    the arrival and, when the step foresaw the barrier's outcome, advances the token; `close`
    hands that advance back. An outcome not foreseen is advanced by `close`; a step that ended
    before it arrived (a parameter error, an aggregator outside a split) is settled."""

    mode = "arriving"
    __slots__ = ("_arrival", "_arrived", "_foreseen")

    def __init__(
        self,
        store: StateStore,
        msg: NodeExecutionMessage,
        token: str,
        clock: Clock,
        max_steps: int,
        *,
        anew: bool = False,
    ) -> None:
        super().__init__(store, msg, token, clock, max_steps, anew=anew)
        self._arrival: Arrival | None = None
        self._arrived: Arrived | None = None
        self._foreseen: dict[str, list[str]] = {}

    def arrive(self, arrival: Arrival, foreseen: dict[str, list[str]]) -> Arrived:
        """Admit the token and record `arrival`; advance it with `foreseen[outcome]` as its
        children when the barrier's outcome is foreseen (see `StateStore.arrive`)."""
        msg = self.msg
        self._arrived = self.store.arrive(
            msg.execution_id, self.token, self.clock(), self.max_steps, arrival, foreseen
        )
        self._arrival, self._foreseen = arrival, foreseen
        return self._arrived

    def close(
        self, children: list[str], leaf: bytes | None, failure: Failure | None, now_ns: int
    ) -> Closing:
        arrived = self._arrived
        if arrived is None:
            return super().close(children, leaf, failure, now_ns)
        if arrived.barrier is None:  # stale, cancelled or at the limit: nothing of it stands
            return arrived.verdict, arrived.transition
        advanced = arrived.transition
        if advanced is None:
            msg = self.msg
            advanced = self.store.advance(
                msg.execution_id, self.token, children, leaf, failure, now_ns
            )
        elif (
            self._arrival is None
            or children != foreseen_children(self._arrival, arrived.barrier, self._foreseen)
            or leaf
            or failure
        ):
            # the arrival advanced the token with the children the step foresaw; a step that
            # ended otherwise would publish messages whose tokens are not live
            raise RuntimeError(
                f"the {self.msg.current_node} arrival of execution {self.msg.execution_id} "
                "ended otherwise than its foresight"
            )
        self._release()
        return None, advanced  # the step learnt the verdict from the arrival (`flow.Step`)


class Admitted(_Holding):
    """`admit` before the node runs, `advance` after it: two store calls."""

    mode = "admitted"
    __slots__ = ()

    def admit(self) -> Admission:
        return self.store.admit(self.msg.execution_id, self.token, self.clock(), anew=self.anew)

    def running(
        self, on_running: OnRunning | None, statuses: list[NodeStatusMessage]
    ) -> OnRunning | None:
        """A node that may block gets its `running` out at once (committed before it starts);
        a quick node's is held until `close`: a flow node can learn while it runs that its
        execution halted meanwhile (`runeworker.engine.flow.Ending.cancelled`), and then
        nothing of the step is published, `running` included."""
        if on_running is None:
            return None
        self._on_running, self._statuses = on_running, statuses
        return self._pass_or_hold

    def _pass_or_hold(self, status: NodeStatusMessage, blocking: bool) -> None:
        if blocking and self._on_running is not None:
            self._on_running(status, True)
        else:
            self._hold(status, blocking)

    def close(
        self, children: list[str], leaf: bytes | None, failure: Failure | None, now_ns: int
    ) -> Closing:
        msg = self.msg
        advanced = self.store.advance(msg.execution_id, self.token, children, leaf, failure, now_ns)
        self._release()
        return None, advanced


def single_branch(wf: Workflow, specs: Mapping[str, NodeSpec], max_steps: int) -> bool:
    """True when no execution of `wf` can ever have two live branches (see the module doc)."""
    if len(wf.nodes) > max_steps:
        return False
    for node in wf.nodes:
        if node.type in FLOW_TYPES:
            return False
        trigger = node.trigger or node.type in TRIGGER_TYPES
        spec = specs.get(node.type)
        if spec is None and not trigger:
            return False
        if not trigger and spec is not None and spec.router is not None:
            if not spec.single_route:
                return False
        elif len(wf.normal_edges(node.id)) > 1:
            return False
    return True


def choose(
    msg: NodeExecutionMessage,
    node: Node,
    spec: NodeSpec | None,
    *,
    single: bool,
    resumed: bool,
    replayed: bool,
) -> type[Ledger]:
    """The mode of a step of `node` (`single`: its workflow is single-branch). A replayed dead
    letter takes the token protocol even in a single-branch execution: its execution may
    already have its `failed` completion, which the step must replay instead of running on."""
    ghost = msg.ghost is True
    if single and not (resumed or replayed or ghost):
        return SingleBranch
    if node.type in BARRIER_TYPES and spec is not None and not (resumed or replayed):
        return Arriving
    stateful = node.type in FLOW_TYPES and node.type != SPLIT  # a split only routes
    if resumed or ghost or stateful or node.trigger or node.type in TRIGGER_TYPES:
        return Admitted
    return Settled if spec is not None and not spec.blocking else Admitted
