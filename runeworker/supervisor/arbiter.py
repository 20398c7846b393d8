"""The prefork supervisor of `runeworker serve`: fork, reap, restart, drain, reload, scale.

gunicorn's arbiter is the model. Each signal delivered writes its number, a byte, to a
self-pipe (`signal.set_wakeup_fd`); the main loop sleeps in select() on that pipe (at most 1 s),
queues what it holds and does all the work:
reap, replace, check heartbeats and memory, roll children after a reload, talk to systemd.
It knows processes, not messages: what a child does is the `target` callable.

Signals: TERM/INT drain (a second one stops at once), QUIT stops at once, HUP reloads the
config and rolls the children one at a time, TTIN/TTOU add/remove one child.

Exit codes: 0 after a requested stop, 1 after a crash loop (`supervisor.crash_limit` crashes of
children that never got ready within `supervisor.crash_window`; one that exits on its own with
an error once ready backs off the next spawn but never stops the service) or when the pid file
cannot be written, `EXIT_DRAIN_FORCED` (3) when a drain had to SIGKILL children that outlived
`worker.graceful_timeout` (their in-flight deliveries go back to the queue unacknowledged).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from runeworker.config import Config, changes, load_config
from runeworker.supervisor.children import (
    BOARD_SLOTS,
    EXIT_BOOT_FAILED,
    EXIT_OK,
    EXIT_RECYCLE,
    SUPERVISOR_SIGNALS,
    ChildRecord,
    ChildTable,
    ChildTarget,
    CrashWindow,
    describe_exit,
    fork_child,
    reaped,
    remove_pid_file,
    write_pid_file,
)
from runeworker.supervisor.liveness import ChildState, Liveness
from runeworker.supervisor.systemd import Notifier

__all__ = [
    "EXIT_BOOT_FAILED",
    "EXIT_DRAIN_FORCED",
    "EXIT_OK",
    "EXIT_RECYCLE",
    "ChildTarget",
    "Supervisor",
    "SupervisorHooks",
]

log = logging.getLogger("runeworker.supervisor")

EXIT_DRAIN_FORCED = 3  # the drain had to SIGKILL children past worker.graceful_timeout
# settings a reload cannot apply to a running supervisor (the rest apply at once or with the roll)
RESTART_KEYS = ("metrics.directory", "supervisor.pid_file")
# connected, or waiting for it (a blocked child is connected, its commit held by an alarm)
_UP = (ChildState.READY, ChildState.BUSY, ChildState.WAITING, ChildState.BLOCKED)
_BOOTED = (*_UP, ChildState.DRAINING)
_KILL_GRACE = 5.0  # after SIGKILL, how long to wait for the kernel before giving up on a child
_BUSY_TICK = 0.1  # loop period while something is in motion (booting, draining, rolling)
_IDLE_TICK = 1.0


def _noop(*_args: object) -> None:
    return None


def _always() -> bool:
    return True


@dataclass
class SupervisorHooks:
    """Optional callbacks into the supervisor's main loop (metrics, health endpoints).

    An exception from a hook is logged and ignored (ready_check then counts as False)."""

    on_start: Callable[[int], None] = _noop  # (supervisor pid)
    on_child_spawn: Callable[[int], None] = _noop  # (child pid)
    on_child_exit: Callable[[int, str], None] = _noop  # (child pid, reason); every reaped child
    ready_check: Callable[[], bool] = _always  # extra condition before READY=1
    on_tick: Callable[[], None] = _noop  # every loop turn
    # (old config, new config) after a successful reload, before the children roll: the
    # command applies what it owns (logging, the metrics endpoint)
    on_reload: Callable[[Config, Config], None] = _noop


def _caught(_signum: int, _frame: FrameType | None) -> None:
    """The supervisor's handler of its signals: nothing to do here, the pipe has them
    (`Supervisor._setup_signals`)."""


class Supervisor:
    """Keeps `cfg.worker.processes` children running `target`; see the module docstring."""

    def __init__(
        self,
        cfg: Config,
        target: ChildTarget,
        *,
        config_path: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        hooks: SupervisorHooks | None = None,
    ) -> None:
        self.cfg = cfg
        self.hooks = hooks or SupervisorHooks()
        self.board = Liveness(BOARD_SLOTS)
        self.children = ChildTable(self.board)
        self.wanted = cfg.worker.processes  # TTIN/TTOU change it, a reload resets it
        self._target = target
        self._config_path = config_path
        self._overrides = overrides
        self._crashes = CrashWindow()  # boot failures: `crash_limit` of them stop the service
        self._failures = CrashWindow()  # failures once ready: they only back off (`_crashed`)
        self._signals: deque[int] = deque()
        self._pipe: tuple[int, int] = (-1, -1)
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup_fd = -1
        self._generation = 0  # bumped by every successful reload
        self._next_spawn = 0.0  # restart backoff: no spawn before this time
        self._stopping = False
        self._stop_deadline = 0.0
        self._exit_code = 0
        self._drain_forced = False  # a graceful drain had to SIGKILL a child
        self._waiting_for = ""  # the pool's last reported dependency problem
        # why the last reload was refused, shown in STATUS until a reload succeeds
        self._reload_refused = ""
        self._systemd = Notifier()
        self._next_memory_check = 0.0
        self._pid_file = ""  # as written at start: a reload must not make us lose it

    # --- public -------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until drained; returns 0 after a requested stop, 1 after a crash loop (or when
        the pid file cannot be written). A second TERM/INT or a QUIT also returns 0."""
        self._pid_file = self.cfg.supervisor.pid_file
        try:
            if self._pid_file:
                write_pid_file(self._pid_file)
        except OSError as exc:
            log.error("cannot write the pid file %s: %s", self._pid_file, exc)
            return 1
        self._setup_signals()
        try:
            self._call("on_start", os.getpid())
            while not self._finished():
                self._turn()
                self._sleep()
            if self._drain_forced:
                log.error("the drain had to kill children: exiting %d", EXIT_DRAIN_FORCED)
                return EXIT_DRAIN_FORCED
            return self._exit_code
        finally:
            self._teardown()

    def child_rss(self) -> dict[int, int]:
        """Resident set size in bytes of every live child, by pid."""
        return self.children.rss()

    def ready_children(self) -> int:
        """How many children not asked to stop are connected and consuming: those of an older
        config too, which keep serving while a reload rolls the pool."""
        return sum(self.children.is_ready(c) for c in self.children.active())

    def rolling(self) -> bool:
        """A reload's roll is under way: children of an older config are still serving."""
        return any(c.generation < self._generation for c in self.children.active())

    def waiting_for(self) -> str:
        """What a waiting child waits for ("waiting for RabbitMQ at ...: ..."), or why RabbitMQ
        blocks a child's publishes ("RabbitMQ at ... blocks publishes: low on memory ..."); ""
        when none."""
        blocked = ""
        for child in self.children.active():
            state = self.children.state(child)
            if state is ChildState.WAITING:
                return self.children.board.read_note(child.slot) or "waiting for a dependency"
            if state is ChildState.BLOCKED and not blocked:
                note = self.children.board.read_note(child.slot)
                blocked = note or "RabbitMQ blocks publishes (a resource alarm)"
        return blocked

    def blocked(self) -> str:
        """Why RabbitMQ blocks the publishes of a child, "" when it blocks none."""
        for child in self.children.active():
            if self.children.state(child) is ChildState.BLOCKED:
                note = self.children.board.read_note(child.slot)
                return note or "RabbitMQ blocks publishes (a resource alarm)"
        return ""

    def readiness(self) -> tuple[bool, str]:
        """(ready, why not) for `/readyz`: ready once a child consumes, until the pool stops;
        not while RabbitMQ blocks publishes (a resource alarm holds every publishing
        connection: no step can end)."""
        if self._stopping:
            return False, "stopping: the children drain"
        if blocked := self.blocked():
            return False, blocked
        if self.ready_children() > 0:
            return True, "ready"
        return False, self.waiting_for() or "no child is connected yet"

    def children_by_state(self) -> dict[str, int]:
        """Live children by their reported state (the `runeworker_children` gauge)."""
        counts = {state.name.lower(): 0 for state in ChildState if state is not ChildState.EMPTY}
        for child in self.children:
            state = self.children.state(child)
            if state is not ChildState.EMPTY:
                counts[state.name.lower()] += 1
        return counts

    # --- the main loop ------------------------------------------------------------------------

    def _turn(self) -> None:
        self._handle_signals()
        self._reap()
        now = time.monotonic()
        if not self._stopping:
            self._check_liveness(now)
            self._check_memory(now)
        if not self._stopping:  # the checks may have hit the crash limit
            self._maintain(now)
            self._notify_systemd(now)
        if self.children.kill_overdue(now) and self._stopping and self._exit_code == 0:
            self._drain_forced = True
        self._call("on_tick")

    def _finished(self) -> bool:
        if not self._stopping:
            return False
        if self.children and time.monotonic() > self._stop_deadline + _KILL_GRACE:
            log.error("children %s survived SIGKILL; giving up", [c.pid for c in self.children])
            return True
        return not self.children

    def _sleep(self) -> None:
        now = time.monotonic()
        in_motion = (
            self._stopping
            or len(self.children.active()) != self.wanted
            or not all(self.children.is_ready(c) for c in self.children)
        )
        timeout = _BUSY_TICK if in_motion else _IDLE_TICK
        timeout = min(timeout, self._systemd.seconds_to_watchdog(now) or timeout)
        if self._next_spawn > now:
            timeout = min(timeout, self._next_spawn - now)
        select.select([self._pipe[0]], [], [], timeout)
        self._take_signals()

    # --- signals ------------------------------------------------------------------------------

    def _setup_signals(self) -> None:
        # Each signal delivered is one byte in the pipe, written by the interpreter's C-level
        # handler (`signal.set_wakeup_fd`): a burst of three SIGTTINs counts three, where the
        # Python-level handler runs once for all the deliveries of a signal between two of
        # its runs. The handlers themselves only make the interpreter catch the signals.
        self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup_fd = signal.set_wakeup_fd(self._pipe[1], warn_on_full_buffer=False)
        for sig in (*SUPERVISOR_SIGNALS, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, _caught)
        # `runeworker serve` held its command signals since it started (runeworker/cli.py):
        # one that came meanwhile is pending, and is delivered (into the pipe) now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)

    def _restore_signals(self) -> None:
        """Undo `_setup_signals`."""
        signal.set_wakeup_fd(self._old_wakeup_fd)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        for fd in self._pipe:
            os.close(fd)

    def _take_signals(self) -> None:
        """Queue the signals the pipe holds, one byte each (SIGCHLD only wakes the loop)."""
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._pipe[0], 4096):
                for signum in data:
                    if signum != signal.SIGCHLD and len(self._signals) < 32:
                        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            sig = self._signals.popleft()
            log.info("received %s", signal.Signals(sig).name)
            if sig in (signal.SIGTERM, signal.SIGINT):
                self._stop(graceful=not self._stopping)
            elif sig == signal.SIGQUIT:
                self._stop(graceful=False)
            elif self._stopping:
                continue  # no reload or scaling during a drain
            elif sig == signal.SIGHUP:
                self._reload()
            elif sig == signal.SIGTTIN:
                self._scale(+1)
            elif sig == signal.SIGTTOU:
                self._scale(-1)

    def _scale(self, step: int) -> None:
        """TTIN/TTOU: one child more or fewer, between 1 (a pool of none would never be
        ready nor earn the watchdog's pings) and BOARD_SLOTS."""
        wanted = min(max(self.wanted + step, 1), BOARD_SLOTS)
        if wanted == self.wanted:
            bound = "at least one child" if step < 0 else f"at most {BOARD_SLOTS} children"
            log.warning("%s ignored: the pool keeps %s", "TTOU" if step < 0 else "TTIN", bound)
            return
        self.wanted = wanted
        log.info("scaling %s to %d children", "down" if step < 0 else "up", wanted)

    # --- stopping -----------------------------------------------------------------------------

    def _stop(self, *, graceful: bool, exit_code: int = 0) -> None:
        now = time.monotonic()
        if not self._stopping:
            self._exit_code = exit_code
            self._systemd.stopping()
        self._stopping = True
        if not graceful:
            log.warning("stopping now: killing %d children", len(self.children))
            for child in self.children:
                self.children.kill(child, child.stop_reason or "stop")
            self._stop_deadline = now
            return
        self._stop_deadline = now + self.cfg.worker.graceful_timeout
        log.info("draining %d children within %s s", len(self.children), self._stop_deadline - now)
        for child in self.children:
            if child.stop_reason is None:
                self._terminate(child, "drain", now)
            elif child.kill_at is not None:
                child.kill_at = min(child.kill_at, self._stop_deadline)

    def _terminate(self, child: ChildRecord, reason: str, now: float) -> None:
        self.children.terminate(child, reason, now + self.cfg.worker.graceful_timeout)

    # --- reaping and restarting ---------------------------------------------------------------

    def _reap(self) -> None:
        # waitpid(-1) also reaps processes a hook may have started: hooks must not rely on
        # waiting for their own subprocesses.
        for pid, status in reaped():
            self._child_exited(pid, status)

    def _child_exited(self, pid: int, status: int) -> None:
        record = self.children.pop(pid)
        if record is None:
            return  # not one of ours (e.g. a subprocess a hook started)
        child, last_state = record
        reason, crashed = describe_exit(status)
        served = child.ready_seen or last_state in (ChildState.READY, ChildState.BUSY)
        limited = True  # the crash counts toward `supervisor.crash_limit`
        if child.stop_reason is not None:
            # Asked to stop: not a crash (a "timeout" kill was counted when it was killed).
            log.info("child %d exited (%s): %s", pid, child.stop_reason, reason)
            reason, crashed = child.stop_reason, False
        elif crashed and served and not reason.startswith("signal"):
            # Failed on its own after it was ready (an uncaught exception: exit 1): a bug or a
            # fault of its environment that its replacement meets at once too (a metrics
            # directory it cannot write, ...). Replacing it at once forked four children a
            # second forever; it backs off instead. It does not count toward the crash limit:
            # a node that kills its process (poison) exits so too, three times per message
            # before `broker.max_deliveries` dead-letters it, and a few such messages must not
            # stop the service.
            log.warning("child %d (slot %d) failed after it was ready: %s", pid, child.slot, reason)
            limited = False
        elif crashed and served:
            # Killed after it was ready (OOM killer, an operator): replaced at once, counted in
            # the restart metric, but no boot failure; a message it died on is redelivered and
            # `broker.max_deliveries` dead-letters it if it keeps killing children.
            log.warning(
                "child %d (slot %d) crashed: %s; it had been ready: replacing it at once",
                pid,
                child.slot,
                reason,
            )
            crashed = False
        elif crashed:
            log.warning(
                "child %d (slot %d) crashed before it was ready: %s", pid, child.slot, reason
            )
        else:
            log.info("child %d (slot %d) exited: %s", pid, child.slot, reason)
        self._call("on_child_exit", pid, reason)
        if crashed and not self._stopping:
            self._crashed(time.monotonic(), limited)

    def _crashed(self, now: float, limited: bool = True) -> None:
        """Back off before the next spawn, by the crashes of this kind within the window (boot
        failures, or failures once ready); stop at `crash_limit` boot failures (`limited`)."""
        sup = self.cfg.supervisor
        recent = (self._crashes if limited else self._failures).record(now, sup.crash_window)
        crashes = f"{recent} crash{'' if recent == 1 else 'es'} within {sup.crash_window} s"
        if limited and recent >= sup.crash_limit:
            log.error("%s: stopping", crashes)
            self._stop(graceful=True, exit_code=1)
            return
        delay = min(sup.restart_backoff * 2 ** min(recent - 1, 32), sup.restart_backoff_max)
        self._next_spawn = max(self._next_spawn, now + delay)
        log.info("restarting in %.2f s (%s)", delay, crashes)

    def _maintain(self, now: float) -> None:
        """Spawn or stop children until `wanted` run the current config."""
        active = self.children.active()
        old = [c for c in active if c.generation < self._generation]
        if old:
            self._roll(active, old, now)
            return
        for child in active[self.wanted :]:  # the newest ones go first
            self._terminate(child, "scale down", now)
        if now >= self._next_spawn:
            for _ in range(self.wanted - len(active)):
                self._spawn(now)

    def _roll(self, active: list[ChildRecord], old: list[ChildRecord], now: float) -> None:
        """One step of a rolling restart: a new child must be READY before an old one goes.
        A new child that waits (the new config names a broker or Redis that does not answer)
        holds the roll: the old children keep serving until it connects or another reload."""
        new = (c for c in active if c.generation == self._generation)
        if not all(self.children.is_ready(c) for c in new):
            return
        if len(active) > self.wanted:  # one that does not serve (waits) goes first
            victim = next((c for c in old if not self.children.is_ready(c)), old[0])
            self._terminate(victim, "reload", now)
        elif now >= self._next_spawn:
            self._spawn(now)

    def _spawn(self, now: float) -> None:
        slot = self.children.free_slot()
        if slot is None:
            log.error("all %d liveness slots are in use; not spawning", BOARD_SLOTS)
            return
        try:
            pid = fork_child(self.cfg, self.board, slot, self._target, self._pipe)
        except OSError as exc:
            log.error("fork failed: %s", exc)
            self._crashed(now)
            return
        self.children.add(ChildRecord(pid, slot, now, self._generation))
        log.info("spawned child %d (slot %d, generation %d)", pid, slot, self._generation)
        self._call("on_child_spawn", pid)

    # --- health checks ------------------------------------------------------------------------

    def _check_liveness(self, now: float) -> None:
        timeout = self.cfg.worker.timeout
        for child in self.children.active():
            if not child.ready_seen and self.children.is_ready(child):
                child.ready_seen = True
            age = self.children.beat_age(child, now)
            if age <= timeout:
                continue
            state = self.children.state(child).name
            log.error("child %d (%s): no heartbeat for %.1f s, killing it", child.pid, state, age)
            self.children.kill(child, "timeout")
            self._crashed(now)
            if self._stopping:
                return

    def _check_memory(self, now: float) -> None:
        # The child recycles itself at max_memory_mb after its current message; this is the
        # backstop for one that cannot: stuck in a node that keeps allocating. A child outside
        # a node (booting, waiting, idle) recycles itself after its next message, so it is
        # left alone: killing it mid-boot would only trade one boot for another.
        limit_mb = self.cfg.worker.max_memory_mb
        if limit_mb <= 0 or now < self._next_memory_check:
            return
        self._next_memory_check = now + 1.0
        for child, rss in self.children.over_memory(2 * limit_mb * 2**20):
            if self.children.state(child) is not ChildState.BUSY:
                continue
            log.warning("child %d uses %d MiB > 2 x max_memory_mb", child.pid, rss // 2**20)
            self._terminate(child, "memory", now)

    # --- reload -------------------------------------------------------------------------------

    def _reload(self) -> None:
        try:
            cfg = load_config(self._config_path, overrides=self._overrides)
        except Exception as exc:  # any failure keeps the running config
            # one line: each line of a notify datagram is a KEY=value of its own
            problems = "; ".join(line for line in str(exc).splitlines() if line.strip())
            self._reload_refused = f"reload failed, keeping the current config: {problems}"
            log.error("%s", self._reload_refused)
            return  # STATUS says so from this turn on (`_notify_systemd`)
        self._reload_refused = ""
        changed = changes(self.cfg, cfg)
        for key, old, new in changed:
            log.info("reload: %s changed from %r to %r", key, old, new)
        later = [key for key, _, _ in changed if key in RESTART_KEYS]
        if later:
            log.warning("reload: %s only take effect after a restart", ", ".join(later))
        old_cfg, self.cfg = self.cfg, cfg
        if cfg.worker.processes != old_cfg.worker.processes:
            self.wanted = cfg.worker.processes  # else TTIN/TTOU adjustments stand
        self._generation += 1
        self._systemd.reloading()
        self._call("on_reload", old_cfg, cfg)
        log.info(
            "config reloaded (generation %d): rolling the children (%d settings changed)",
            self._generation,
            len(changed),
        )

    # --- systemd ------------------------------------------------------------------------------

    def _notify_systemd(self, now: float) -> None:
        """READY=1 once every child is consuming, or is up and waiting for a dependency (a
        start during a RabbitMQ or Redis outage must neither hang nor be killed by systemd's
        start timeout: STATUS says what it waits for, `/readyz` answers 503 until it is back)."""
        ready = self.ready_children()
        waiting = self.waiting_for()
        if waiting != self._waiting_for:
            if waiting:
                log.warning("pool %s", waiting)
            else:
                log.info("pool: dependencies answer again")
            self._waiting_for = waiting
        status = f"{ready} children ready"
        if waiting:
            status = f"{waiting} ({ready} of {self.wanted} children ready)"
        if self._reload_refused:  # said until a reload succeeds, not for one turn of the loop
            status = f"{self._reload_refused}; {status}"
        if self._systemd.update(
            now,
            status,
            lambda: self._started() and (bool(waiting) or self._call("ready_check") is True),
            lambda: self._healthy(now),
        ):
            log.info("ready: %d children%s", ready, f"; {waiting}" if waiting else "")

    def _started(self) -> bool:
        """Every wanted child of the current config is up: consuming, or waiting."""
        current = [c for c in self.children.active() if c.generation == self._generation]
        up = sum(self.children.state(c) in _UP for c in current)
        return up >= self.wanted

    def _healthy(self, now: float) -> bool:
        """Whether WATCHDOG=1 is due: every child beats, and at least one got past booting.
        A pool whose children crash before they are ready gets no pings (systemd restarts
        it). Children waiting for RabbitMQ or Redis do get them: a restart cannot bring a
        dependency back; the outage shows in STATUS, `/readyz` and `runeworker_children`."""
        active = self.children.active()
        timeout = self.cfg.worker.timeout
        if not active or any(self.children.beat_age(c, now) > timeout for c in active):
            return False
        return any(self.children.state(c) in _BOOTED for c in active)

    # --- helpers ------------------------------------------------------------------------------

    def _call(self, hook: str, *args: object) -> object:
        try:
            return getattr(self.hooks, hook)(*args)
        except Exception:
            log.exception("supervisor hook %s failed", hook)
            return None

    def _teardown(self) -> None:
        for child in self.children:  # only left after an error in the loop: no orphans
            self.children.kill(child, "stop")
            with contextlib.suppress(ChildProcessError):
                self._child_exited(child.pid, os.waitpid(child.pid, 0)[1])
        self._restore_signals()
        if self._pid_file:
            remove_pid_file(self._pid_file)
