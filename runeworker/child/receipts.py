"""Receipts: the steps whose outcome is known to be published, so that a second copy of their
delivery publishes nothing, and what a child does when a commit's outcome is unknown.

One AMQP transaction holds a step's publishes and the ack of its delivery, but RabbitMQ applies
a transaction queue by queue: when the connection (or the node holding a queue) dies during
`tx.commit`, the client cannot tell what was applied. Seen in the cluster suite
(tests/cluster/scenarios.py, the broker-node kill): a quorum queue's leader applied the acks
of a commit and lost its publishes to the execution queue, so the executions stopped, and in
other runs a committed ack was lost with the leader, so a finished step was delivered again
and ran twice, down to a second completion. The child therefore:

* after a successful commit, records a receipt for each delivery the transaction acked
  (`WorkerStore.receipts`): with publisher confirms as soon as the publishes are sent, before
  their confirms and the acks (a copy handed out meanwhile by a quorum queue's new leader
  finds it; a publish that is not confirmed is in doubt and sent again); after a
  transaction within `RECEIPTS_EVERY` (0.1 s), with a later call, by an idle child once they
  are that old, and by a stopping one before it exits, so that a busy child writes the
  receipts of many batches at once (right after a commit a child usually finds no delivery
  yet: the next ones are on their way, freed by the commit's acks, and a write then would
  cost a round trip per batch);
* before running a batch, checks the receipts of its deliveries that may be copies: those the
  broker flags `redelivered` and those a worker published again (header
  `x-runeworker-resent`), and every resume message (a timer whose scheduler committed its
  resume but could not acknowledge it fires again once its lease runs out); on a classic
  queue any other delivery is the first of its message. A step whose token was stale leaves
  no receipt (it published nothing, and a resume that came before its wait parked comes back
  as the same bytes). On quorum queues every delivery is looked up (one more store call per
  batch): a new leader hands out again, unflagged, a message whose delivery by the dead leader
  it never learnt of (seen in the cluster suite). A delivery with a
  receipt is acked and publishes nothing (`duplicate`): its step's outcome is on the broker.
  A possible copy without one waits once (`Parking`: 2 s when resent, 0.25 s when
  redelivered) and is looked up again: the resend queues a resent copy right behind its
  original, which may be running on another child at that moment, and the broker redelivers
  the deliveries of a commit in doubt as it closes the connection, before their child has
  learnt that its commit failed and claimed their receipts;
* reads what the broker sent before it commits (`Broker.commit`): a broker that closed the
  connection while the batch ran (a fault, a node going down) discarded the transaction and
  handed its deliveries to others, so the commit fails as never sent, with nothing to publish
  again and no receipt to claim;
* when a commit fails, keeps what that transaction published (`TransactionalBroker`, and in
  Redis: runeworker/child/doubts.py), then writes the receipts of the deliveries it acked at
  once (their copies may reach other children while this one reconnects: a quorum queue
  redelivers them as soon as its new leader is elected, which the resend waits for too), and
  once connected again, before consuming, publishes the same bytes again (marked with
  `x-runeworker-resent`), then writes those receipts again (in case Redis did not answer
  before): whether or not the broker applied the first commit, the step's outcome is now
  published.

What this leaves: a message the first commit did deliver reaches its queue twice with the
same bytes (Rune's consumers treat it as the redelivery it is: RTES upserts by node, the
archivist's update is idempotent). A step that runs longer than the grace can still run twice
when its message was resent. A close that reaches the child between that read and the
commit (a window of one network latency) leaves the commit in doubt: its deliveries, already
handed to another child, wait their grace there, so they run again only when this child
cannot claim their receipts within it (Redis slow or away: one step's statuses twice, with
different bytes; seen in the faults suite's `connections` scenario before redeliveries
waited). The messages of a commit in doubt are kept in Redis too until the resend
(runeworker/child/doubts.py), before the receipts are claimed: a child killed before its
resend leaves them to another child, which publishes them once their lease ends (killed
between the keep and the claim, the deliveries the broker did not ack also run again: their
outcome can then arrive twice, with different bytes).

A receipt names a message by its execution, its queue, its branch token and its node, which
the protocol makes unique within an execution (child tokens are derived, `child_token` in
runeworker/engine/state.py). Replayed dead letters (`runeworker dlq replay`) are neither
checked nor recorded: replaying a message is asking for its step to run again.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import deque
from typing import Protocol

from runeworker.adapters.amqp import RESENT_HEADER, Delivery
from runeworker.engine.messages import NodeExecutionMessage
from runeworker.engine.state import message_token
from runeworker.errors import StateError

log = logging.getLogger("runeworker.worker")

Receipt = tuple[str, str]  # (execution id, "<queue>|<branch token>|<node id>")

# How long the receipts of committed transactions may wait to be written with a later call
# (one write for many batches); with publisher confirms they are written before the confirms.
RECEIPTS_EVERY = 0.1
# How long a resent delivery without a receipt waits before it runs: its original may be
# running on another child, whose receipt comes within RECEIPTS_EVERY of its commit.
COPY_GRACE = 2.0
# How long a redelivered one without a receipt waits: the child of a commit in doubt claims
# the receipts of its deliveries at once when the commit fails (`Parking`).
REDELIVERY_GRACE = 0.25


class ReceiptStore(Protocol):
    def receipts(self, record: list[Receipt], check: list[Receipt]) -> list[bool]:
        """Record `record`, then say for each of `check` whether it has a receipt."""
        ...


def resent(d: Delivery) -> bool:
    """Whether a worker published `d`'s message again after a commit in doubt."""
    return bool(d.headers.get(RESENT_HEADER))


def receipt_of(queue: str, msg: NodeExecutionMessage) -> Receipt:
    """The receipt of a delivery of `msg` from `queue` (by its `message_token`: a start
    message's is `root`)."""
    token = msg.branch_token or message_token(msg)
    return msg.execution_id, f"{queue}|{token}|{msg.current_node}"


class Receipts:
    """The receipts of one child, by where their transaction stands.

    `open`: deliveries acked in the open transaction; `due`: committed, not yet recorded in
    the store; `doubted`: acked by a commit whose outcome is unknown, recorded once their
    transaction's messages are published again (`resent`)."""

    def __init__(self) -> None:
        self.open: list[Receipt] = []
        self.due: list[Receipt] = []
        self.doubted: list[Receipt] = []

    def acked(self, receipt: Receipt) -> None:
        """A delivery was acked in the open transaction."""
        self.open.append(receipt)

    def committed(self) -> None:
        """The open transaction committed: its receipts are due."""
        self.due += self.open
        self.open = []

    def discarded(self) -> None:
        """The open transaction was never committed (the connection went before the commit):
        its deliveries come back and run again."""
        self.open = []

    def in_doubt(self) -> None:
        """The commit of the open transaction failed: its outcome is unknown."""
        self.doubted += self.open
        self.open = []

    def resent(self) -> None:
        """The doubted transactions' messages were published again: their receipts are due."""
        self.due += self.doubted
        self.doubted = []

    def written(self) -> None:
        """The due receipts are in the store."""
        self.due = []


class ReceiptBook:
    """A child's receipts (`Receipts`) and the store they are written to and looked up in."""

    def __init__(self, store: ReceiptStore) -> None:
        self.state = Receipts()
        self._store = store
        # when the oldest receipt not yet written was committed; long ago for those made due
        # otherwise (a resend's): they are written at the next look-up
        self._due_since = -math.inf

    def look_up(self, keys: list[Receipt | None], *, write: bool = False) -> list[bool]:
        """Write the due receipts and say which of `keys` has one: one store round trip.
        None when there is nothing to look up and the due receipts may wait (`write` False,
        younger than RECEIPTS_EVERY)."""
        check = [k for k in keys if k is not None]
        due = self.state.due
        late = bool(due) and time.monotonic() - self._due_since >= RECEIPTS_EVERY
        if not check and not (due and (write or late)):
            return [False] * len(keys)
        found = iter(self._store.receipts(due, check))
        self.state.written()
        return [k is not None and next(found) for k in keys]

    def due_in(self) -> float | None:
        """Seconds until the due receipts are RECEIPTS_EVERY old (0 once they are), None when
        none is due."""
        if not self.state.due:
            return None
        return max(0.0, self._due_since + RECEIPTS_EVERY - time.monotonic())

    def committed(self) -> None:
        """The open transaction's publishes are durable: its receipts are due."""
        if not self.state.due:
            self._due_since = time.monotonic()
        self.state.committed()

    def claim_doubted(self) -> None:
        """Write the receipts of a commit in doubt at once, before reconnecting: its
        deliveries may come back to other children while the resend waits for a quorum
        queue's new leader, and they must not run again meanwhile. Should Redis not answer
        now, they are written after the resend."""
        try:
            self._store.receipts(self.state.doubted, [])
        except StateError as exc:
            log.warning("receipts of a commit in doubt not written yet: %s", exc)

    def write_quietly(self) -> None:
        """Write the due receipts if Redis answers (the broker connection was lost)."""
        if not self.state.due:
            return
        try:
            self.look_up([], write=True)
        except StateError as exc:
            log.warning("receipts not written yet: %s", exc)


class Parking:
    """Possible copies without a receipt, held back once, while the deliveries behind them go
    on. A resent copy waits `grace` (COPY_GRACE): the resend queued it right behind its
    original, which may be running on another child now, and whose receipt then comes before
    the grace ends. A redelivery waits `redelivered_grace` (REDELIVERY_GRACE): mostly it is a
    crash's or a lost ack's, which no receipt will answer, but it may be the delivery of a
    commit in doubt, whose child claims its receipt as soon as the commit has failed (see the
    module doc), within milliseconds. Held longer, a redelivery would keep the child's
    prefetch busy, and in a storm of kills be handed on again and again before it runs (the
    faults suite's `kill` scenario took 250 s instead of 29 with 2 s)."""

    def __init__(
        self, grace: float = COPY_GRACE, redelivered_grace: float = REDELIVERY_GRACE
    ) -> None:
        self.grace = grace
        self.redelivered_grace = redelivered_grace
        # (run after, order of parking, delivery), a heap: the two graces differ
        self._parked: list[tuple[float, int, Delivery]] = []
        self._count = 0
        # tags of deliveries released and not yet looked up again: at most the ones parked,
        # each forgotten by the `park` call that follows its look-up (found or not)
        self._waited: set[int] = set()

    def park(self, d: Delivery, found: bool = False) -> bool:
        """Hold `d` back unless it has waited already (then it runs, receipt or not) or its
        receipt was `found` (then it publishes nothing). Called for every possible copy after
        its look-up, so that a released one is forgotten whatever the look-up said."""
        if d.tag in self._waited:
            self._waited.discard(d.tag)
            return False
        if found:
            return False
        grace = self.grace if resent(d) else self.redelivered_grace
        self._count += 1
        heapq.heappush(self._parked, (time.monotonic() + grace, self._count, d))
        return True

    def release(self, pending: deque[Delivery]) -> None:
        """Deliveries whose grace is over go first in `pending`, in the order their graces
        end (parked first, first among those that end together), to be looked up again."""
        now = time.monotonic()
        released: list[Delivery] = []
        while self._parked and self._parked[0][0] <= now:
            d = heapq.heappop(self._parked)[2]
            self._waited.add(d.tag)
            released.append(d)
        pending.extendleft(reversed(released))

    def wait_seconds(self, longest: float) -> float:
        """How long a poll may wait before the next grace ends, at most `longest`."""
        if not self._parked:
            return longest
        return max(0.0, min(longest, self._parked[0][0] - time.monotonic()))

    @property
    def remembered(self) -> int:
        """Deliveries parked or released and not yet run: what the parking holds."""
        return len(self._parked) + len(self._waited)

    def take_all(self) -> list[Delivery]:
        """Every parked delivery (a drain hands them back), in the order parked; forgets them."""
        out = [d for _, _, d in sorted(self._parked, key=lambda p: p[1])]
        self.clear()
        return out

    def clear(self) -> None:
        """The connection went: the deliveries' tags went with it."""
        self._parked.clear()
        self._waited.clear()
