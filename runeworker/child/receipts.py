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
  (`WorkerStore.receipts`): with publisher confirms before the acks are sent; after a
  transaction within `RECEIPTS_EVERY` (0.1 s, runeworker/child/worker.py), with a later call
  or when idle, so that a busy child writes the receipts of many batches at once;
* before running a batch, checks the receipts of its deliveries that may be copies: those the
  broker flags `redelivered` and those a worker published again (header
  `x-runeworker-resent`); on a classic queue any other delivery is the first of its message.
  On quorum queues every delivery is looked up (one more store call per batch): a new leader
  hands out again, unflagged, a message whose delivery by the dead leader it never learnt of
  (seen in the cluster suite). A delivery with a
  receipt is acked and publishes nothing (`duplicate`): its step's outcome is on the broker.
  A resent delivery without one waits 2 s once (`COPY_GRACE`, `Worker._park`) and is looked
  up again: the resend queues it right behind its original, which may be running on another
  child at that moment;
* when a commit fails, keeps what that transaction published (`TransactionalBroker`), writes
  the receipts of the deliveries it acked at once (their copies may reach other children while
  this one reconnects: a quorum queue redelivers them as soon as its new leader is elected,
  which the resend waits for too), and once connected again, before consuming, publishes the
  same bytes again (marked with `x-runeworker-resent`), then writes those receipts again (in
  case Redis did not answer before): whether or not the broker applied the first commit, the
  step's outcome is now published.

What this leaves: a message the first commit did deliver reaches its queue twice with the
same bytes (Rune's consumers treat it as the redelivery it is: RTES upserts by node, the
archivist's update is idempotent). A step that runs longer than the grace can still run twice
when its message was resent. The messages of a commit in doubt live in the child's
memory until the resend: a child killed before it (SIGKILL, an out-of-memory kill within the
seconds of a broker failover) loses the steps of that commit whose deliveries were acked or
whose copies found the receipts; a stopping child tries the resend three more times.

A receipt names a message by its execution, its queue, its branch token and its node, which
the protocol makes unique within an execution (child tokens are derived, `child_token` in
runeworker/engine/state.py). Replayed dead letters (`runeworker dlq replay`) are neither
checked nor recorded: replaying a message is asking for its step to run again.
"""

from __future__ import annotations

from runeworker.engine.messages import NodeExecutionMessage

Receipt = tuple[str, str]  # (execution id, "<queue>|<branch token>|<node id>")


def receipt_of(queue: str, msg: NodeExecutionMessage) -> Receipt:
    """The receipt of a delivery of `msg` from `queue` (a start message's token is `root`)."""
    return msg.execution_id, f"{queue}|{msg.branch_token or 'root'}|{msg.current_node}"


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
