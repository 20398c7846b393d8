"""Commits in doubt: kept in Redis, so that a child killed before its resend loses nothing, and
published again, by their child once connected again or by another once their lease ends.

A commit whose outcome is unknown (runeworker/child/receipts.py) leaves its messages in the
child's memory until the child is connected again and publishes them again; meanwhile the
receipts of the deliveries it acked say their steps are published, so their copies publish
nothing. A child killed in that window (SIGKILL, an out-of-memory kill, a host going down
while the broker fails over) took the only copy of those steps' outcome with it.

So the child also keeps the messages in Redis (`DoubtStore.keep`, packed by the broker,
`TransactionalBroker.export_doubt`) under an id of its own, with a lease it renews while it
waits for the broker (`DoubtBook.renew`, `DoubtBook.keep_alive`) and drops once its resend is
committed (`DoubtBook.resolved`). Any child adopts the kept messages whose lease ran out: when it
starts consuming and every `ADOPT_EVERY` seconds after (`DoubtBook.orphans`), it takes
the lease, publishes them again as its own resend does (same bytes, marked resent, so their
receivers look up the receipts) and drops them. A child that cannot reach Redis when its commit
falls in doubt keeps trying with every renewal. A stopping child tries the resend three more
times (`Resender.settle_before_exit`) and otherwise hands the kept copy over: its lease
ends at once. `DoubtBook` is the kept copy and its lease; `Resender` is what the child does
with a commit in doubt (keeps it when the commit fails, publishes it again, adopts orphans).

What this costs: nothing on the path of a commit that succeeds; one store call per failed
commit and per renewal; one call per `ADOPT_EVERY` per child to look for orphans. The keep is
written before the receipts are claimed (`Resender.in_doubt`): a child killed between the two
leaves deliveries without receipts, which run again where the broker did not apply the commit,
and the kept messages, published again once the lease ends (copies their receivers look up or,
for statuses and the completion, take as the redeliveries they are); the other order lost the
steps. What it leaves: an orphan adopted by a child
that dies before its resend is adopted again when the new lease runs out, possibly after the
first adopter did publish it (its messages then arrive twice, with the same bytes, as any
resent message may).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Protocol

from runeworker.child.hooks import WorkerHooks
from runeworker.child.receipts import ReceiptBook
from runeworker.errors import BrokerError, StateError

if TYPE_CHECKING:  # ports.py names `DoubtStore`
    from runeworker.child.ports import TransactionalBroker

log = logging.getLogger("runeworker.worker")

# how long a kept commit stays its child's without a renewal; a waiting child renews it at
# every connection attempt and every RENEW_EVERY seconds between them, so the lease covers one
# attempt that hangs (`broker.connection_attempts` socket timeouts) with room to spare
LEASE_SECONDS = 60.0
RENEW_EVERY = 10.0
# how often a consuming child looks for kept commits whose lease ran out
ADOPT_EVERY = 30.0


class DoubtStore(Protocol):
    """Where commits in doubt are kept: by id, each with the time its lease ends."""

    def keep(self, doubt_id: str, packed: bytes, lease_ms: int) -> None:
        """Keep (or replace) `packed` under `doubt_id`, leased for `lease_ms` from now."""
        ...

    def renew(self, doubt_id: str, lease_ms: int) -> bool:
        """Extend the lease of `doubt_id`; False when nothing is kept under it."""
        ...

    def drop(self, doubt_id: str) -> None:
        """Forget `doubt_id` (its messages are published)."""
        ...

    def take(self, lease_ms: int, limit: int) -> list[tuple[str, bytes]]:
        """At most `limit` kept commits whose lease ran out, each leased anew to the caller
        for `lease_ms` (so two children do not both take it): [(id, packed), ...]."""
        ...


class DoubtBook:
    """One child's commit in doubt as kept in the store, and the orphans it adopts."""

    def __init__(self, store: DoubtStore, *, lease: float = LEASE_SECONDS) -> None:
        self._store = store
        self.lease_ms = int(lease * 1000)
        self.doubt_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._unkept: bytes | None = None  # in doubt, not yet in the store (Redis down)
        self._kept = False  # something is kept under doubt_id
        self._next_adopt = -math.inf  # the first look at once
        self._renewed = -math.inf  # when `renew` last ran (monotonic): never yet
        self._adopting: list[str] = []  # orphans taken whose resend has not committed yet

    @property
    def open(self) -> bool:
        """A commit of this child is in doubt (kept or still to keep)."""
        return self._kept or self._unkept is not None

    @property
    def kept(self) -> bool:
        """This child's commit in doubt is in the store."""
        return self._kept

    def in_doubt(self, packed: bytes) -> None:
        """A commit failed in doubt: keep every message now in doubt (`packed`, all of them,
        earlier doubted commits included) under this child's id."""
        self._unkept = packed
        self._try_keep(self.lease_ms)

    def renew(self, *, handing_over: bool = False) -> None:
        """While waiting to resend: keep what could not be kept yet, else extend the lease.
        `handing_over` (a child stopping without its resend): the lease ends now, so that the
        next child to look adopts it."""
        lease_ms = 0 if handing_over else self.lease_ms
        self._renewed = time.monotonic()
        if self._unkept is not None:
            self._try_keep(lease_ms)
        elif self._kept:
            try:
                self._kept = self._store.renew(self.doubt_id, lease_ms)
            except StateError as exc:
                log.warning("lease of the kept commit in doubt not renewed: %s", exc)

    def keep_alive(self) -> None:
        """Between connection attempts: `renew` once RENEW_EVERY seconds have passed since
        the last time, when a commit of this child is in doubt."""
        if self.open and time.monotonic() - self._renewed >= RENEW_EVERY:
            self.renew()

    def resolved(self) -> None:
        """The messages in doubt are published again: nothing to keep any more. Raises
        StateError when Redis does not answer (the caller's resend then counts as failed
        for Redis, as the receipts' write does)."""
        self._unkept = None
        if self._kept:
            self._store.drop(self.doubt_id)
            self._kept = False
        while self._adopting:  # their messages were in doubt here: published with the rest
            self._store.drop(self._adopting[-1])
            self._adopting.pop()

    def orphans(self, now: float, limit: int = 16) -> list[tuple[str, bytes]]:
        """Kept commits of other children whose lease ran out, now leased to this one; at
        most one look every ADOPT_EVERY seconds (the first at once)."""
        if now < self._next_adopt:
            return []
        self._next_adopt = now + ADOPT_EVERY
        return [(i, p) for i, p in self._store.take(self.lease_ms, limit) if i != self.doubt_id]

    def adopting(self, doubt_id: str) -> None:
        """An orphan's messages are being published again; should that commit fail, they
        stay in this child's doubt, and `resolved` drops the orphan with this child's own."""
        self._adopting.append(doubt_id)

    def adopted(self, doubt_id: str) -> None:
        """An orphan's messages are published again: forget it."""
        self._store.drop(doubt_id)
        if doubt_id in self._adopting:
            self._adopting.remove(doubt_id)

    def _try_keep(self, lease_ms: int) -> None:
        packed = self._unkept
        if packed is None:
            return
        try:
            self._store.keep(self.doubt_id, packed, lease_ms)
        except StateError as exc:
            log.warning("commit in doubt not kept in Redis yet (kept in memory): %s", exc)
            return
        self._unkept = None
        self._kept = True


class Resender:
    """What one child does with a commit in doubt: keeps it when the commit fails, publishes it
    again before consuming again, publishes again the ones other children left, and tries once
    more when it stops. Talks to the broker, the receipts (runeworker/child/receipts.py), this
    child's `DoubtBook` and the loop's observer."""

    def __init__(
        self,
        broker: TransactionalBroker,
        book: ReceiptBook,
        doubts: DoubtBook,
        hooks: WorkerHooks,
        *,
        retry_delay: float,
    ) -> None:
        """`retry_delay`: `broker.retry_delay`, the first pause between two tries at exit."""
        self.broker = broker
        self.book = book
        self.receipts = book.state
        self.doubts = doubts
        self.hooks = hooks
        self.retry_delay = retry_delay

    def in_doubt(self) -> None:
        """The transaction's commit failed with its outcome unknown (`CommitInDoubt`): keep its
        messages and claim the receipts of the deliveries it acked."""
        self.receipts.in_doubt()
        # a copy outside this process first, then the receipts: a child killed between
        # the two leaves a commit another child publishes again (a copy at worst), where
        # the other order would leave receipts of steps whose messages are gone
        self.doubts.in_doubt(self.broker.export_doubt())
        self.book.claim_doubted()
        self.hooks.on_doubt("doubted")

    def resend(self) -> None:
        """Before consuming again: publish the messages of a commit whose outcome is unknown
        again, then record the receipts of the deliveries it acked, so that their redelivered
        copies publish nothing (runeworker/child/receipts.py)."""
        resent = self.broker.resend_in_doubt()
        doubted = len(self.receipts.doubted)
        if resent:
            self.hooks.on_doubt("resent")
        if resent or doubted:
            log.warning(
                "a commit failed with its outcome unknown: published its %d messages again; "
                "the %d deliveries it acked count as done",
                resent,
                doubted,
            )
        self.receipts.resent()
        self.book.look_up([], write=True)
        self.doubts.resolved()

    def adopt(self) -> None:
        """Publish again the commits in doubt other children kept in Redis and did not resend
        (killed first): between batches, every ADOPT_EVERY seconds from the first. Their
        deliveries' receipts were claimed by the child that kept them. A packed commit that
        cannot be read is logged and dropped. Redis failing here stops nothing: the look
        comes again ADOPT_EVERY later, and an orphan not dropped is published again once its
        lease ends (the same bytes: a copy its receivers drop)."""
        try:
            orphans = self.doubts.orphans(time.monotonic())
        except StateError as exc:
            log.warning("cannot look for commits in doubt other children kept: %s", exc)
            self.hooks.on_state_error()
            return
        for doubt_id, packed in orphans:
            try:
                count = self.broker.import_doubt(packed)
            except ValueError as exc:
                log.error("dropping the commit in doubt %s kept in Redis: %s", doubt_id, exc)
                self._forget(doubt_id)
                continue
            self.doubts.adopting(doubt_id)  # dropped by `resend` should this one fail
            self.broker.resend_in_doubt()
            self._forget(doubt_id)
            self.hooks.on_doubt("adopted")
            log.warning(
                "published again the %d messages of a commit in doubt another child kept (%s)",
                count,
                doubt_id,
            )

    def _forget(self, doubt_id: str) -> None:
        """Drop an adopted commit from Redis; a failure is logged (see `adopt`)."""
        try:
            self.doubts.adopted(doubt_id)
        except StateError as exc:
            log.warning("the adopted commit in doubt %s stays in Redis: %s", doubt_id, exc)
            self.hooks.on_state_error()

    def settle_before_exit(self, attempts: int = 3) -> None:
        """Stopping with a commit in doubt: its messages are only in this process, and its
        deliveries' receipts say they are published. A few more tries, then say so."""
        error: Exception | None = None
        for attempt in range(attempts):
            try:
                self.broker.close()
                self.broker.connect()
                self.resend()
                return
            except (BrokerError, StateError) as exc:
                error = exc
                time.sleep(self.retry_delay * (attempt + 1))
        self.doubts.renew(handing_over=True)  # kept in Redis for any child, at once
        if self.doubts.kept:
            self.hooks.on_doubt("handed_over")
            log.warning(
                "stopping with a commit in doubt, its messages could not be published again "
                "(%s): they are kept in Redis, and the next child to look publishes them",
                error,
            )
            return
        log.error(
            "stopping with a commit in doubt, its messages could not be published again "
            "nor kept in Redis (%s): the steps of its deliveries may be lost",
            error,
        )
