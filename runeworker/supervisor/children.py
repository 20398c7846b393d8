"""Child process bookkeeping for the supervisor: fork, the per-child record, slots, exit reasons.

A child's own view of its lifecycle is `liveness.ChildState`, written on the shared board
(BOOTING -> READY <-> BUSY -> DRAINING -> exit). The supervisor's view adds one fact, kept in
`ChildRecord.stop_reason`: whether it has asked the child to stop. A child runs
    active (stop_reason None) -> stopping (SIGTERM sent, SIGKILL at kill_at) -> reaped
or  active -> killed (SIGKILL sent, e.g. "timeout") -> reaped,
or exits on its own from either state.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil

from runeworker.config import MAX_PROCESSES, Config
from runeworker.supervisor.liveness import ChildState, Liveness
from runeworker.supervisor.systemd import NOTIFY_VARIABLES

__all__ = [
    "BOARD_SLOTS",
    "EXIT_BOOT_FAILED",
    "EXIT_OK",
    "EXIT_RECYCLE",
    "ChildRecord",
    "ChildTable",
    "ChildTarget",
    "CrashWindow",
    "describe_exit",
    "fork_child",
    "reaped",
    "remove_pid_file",
    "write_pid_file",
]

log = logging.getLogger("runeworker.supervisor")

ChildTarget = Callable[[Config, Liveness, int], int]
"""Runs in the forked child: (config, liveness board, slot) -> exit code."""

EXIT_OK = 0
EXIT_BOOT_FAILED = 3  # could not connect: the supervisor backs off instead of respawning at once
EXIT_RECYCLE = 4  # max_messages / max_memory reached: replace me, I did not crash

BOARD_SLOTS = MAX_PROCESSES  # worker.processes cannot ask for more
SUPERVISOR_SIGNALS = (
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)
_HANDLED = (*SUPERVISOR_SIGNALS, signal.SIGINT)  # the signals the supervisor has handlers for
_PR_SET_PDEATHSIG = 1


@dataclass
class ChildRecord:
    """What the supervisor knows of one child (times are time.monotonic())."""

    pid: int
    slot: int
    started_at: float
    generation: int  # config generation it was forked with; SIGHUP rolls older ones
    stop_reason: str | None = None  # set once the supervisor has signalled it to stop
    kill_at: float | None = None  # SIGKILL deadline after a SIGTERM
    ready_seen: bool = False  # it has been READY or BUSY (a later death is no boot failure)


class ChildTable:
    """The live children by pid, and the board slot each one owns."""

    def __init__(self, board: Liveness) -> None:
        self.board = board
        self._children: dict[int, ChildRecord] = {}

    def __iter__(self) -> Iterator[ChildRecord]:
        return iter(list(self._children.values()))

    def __len__(self) -> int:
        return len(self._children)

    def free_slot(self) -> int | None:
        """A slot no live child owns, or None when all BOARD_SLOTS are taken."""
        used = {c.slot for c in list(self._children.values())}
        return next((s for s in range(self.board.slots) if s not in used), None)

    def add(self, child: ChildRecord) -> None:
        self._children[child.pid] = child

    def pop(self, pid: int) -> tuple[ChildRecord, ChildState] | None:
        """Forget a reaped child and free its slot: (its record, the last state it reported);
        None for a pid that is not ours."""
        child = self._children.pop(pid, None)
        if child is None:
            return None
        last = self.state(child)
        self.board.clear(child.slot)
        return child, last

    def active(self) -> list[ChildRecord]:
        """Children not asked to stop, oldest first."""
        alive = (c for c in list(self._children.values()) if c.stop_reason is None)
        return sorted(alive, key=lambda c: c.started_at)

    def state(self, child: ChildRecord) -> ChildState:
        return self.board.read(child.slot)[1]

    def beat_age(self, child: ChildRecord, now: float) -> float:
        """Seconds since the child's last heartbeat."""
        return now - self.board.read(child.slot)[0]

    def is_ready(self, child: ChildRecord) -> bool:
        return self.state(child) in (ChildState.READY, ChildState.BUSY)

    def terminate(self, child: ChildRecord, reason: str, kill_at: float) -> None:
        """SIGTERM (finish the current work and exit), and SIGKILL at `kill_at`."""
        log.info("stopping child %d (slot %d): %s", child.pid, child.slot, reason)
        child.stop_reason, child.kill_at = reason, kill_at
        _send(child.pid, signal.SIGTERM)

    def kill(self, child: ChildRecord, reason: str) -> None:
        child.stop_reason, child.kill_at = reason, None
        _send(child.pid, signal.SIGKILL)

    def kill_overdue(self, now: float) -> int:
        """SIGKILL the children still running past their graceful timeout; returns how many."""
        killed = 0
        for child in self:
            if child.kill_at is not None and now >= child.kill_at:
                log.warning(
                    "child %d (slot %d) still running after the graceful timeout (%s): killing it",
                    child.pid,
                    child.slot,
                    child.stop_reason,
                )
                self.kill(child, child.stop_reason or "stop")
                killed += 1
        return killed

    def over_memory(self, limit: int) -> list[tuple[ChildRecord, int]]:
        """(child, RSS) of the active children using more than `limit` bytes."""
        rss = self.rss()
        return [(c, rss[c.pid]) for c in self.active() if rss.get(c.pid, 0) > limit]

    def rss(self) -> dict[int, int]:
        """Resident set size in bytes of every live child, by pid."""
        sizes = {}
        for child in self:
            with contextlib.suppress(psutil.Error):  # exited since the last reap
                sizes[child.pid] = psutil.Process(child.pid).memory_info().rss
        return sizes


def _send(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited, not reaped yet
        os.kill(pid, sig)


class CrashWindow:
    """Crash times within a sliding window."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def record(self, now: float, window: float) -> int:
        """Count a crash at `now`; returns the crashes within the last `window` seconds."""
        self._times.append(now)
        while self._times and self._times[0] < now - window:
            self._times.popleft()
        return len(self._times)


def reaped() -> Iterator[tuple[int, int]]:
    """(pid, waitpid status) of every exited child, without blocking."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no children at all
            return
        if pid == 0:
            return
        yield pid, status


def describe_exit(status: int) -> tuple[str, bool]:
    """(reason, whether it is a crash) of a waitpid status."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"signal {-code}", True
    if code == EXIT_OK:
        return "exit 0", False
    if code == EXIT_RECYCLE:
        return "recycle", False
    if code == EXIT_BOOT_FAILED:
        return "boot failed", True
    return f"exit {code}", True


def fork_child(
    cfg: Config, board: Liveness, slot: int, target: ChildTarget, close_fds: tuple[int, ...]
) -> int:
    """Fork a child running `target`; returns its pid (in the parent only)."""
    parent = os.getpid()
    # The child's timeout runs from the fork, also while it is still booting.
    board.beat(slot, ChildState.BOOTING)
    # Until the child has set its own handlers, a signal for it would run the supervisor's
    # (inherited: it queues the signal in the child's copy of the supervisor and is lost), so
    # the supervisor's signals stay blocked across fork: the child takes them once ready for
    # them (a SIGTERM sent at once then stops it), the supervisor just after fork().
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
    try:
        pid = os.fork()
        if pid == 0:
            _child_main(cfg, board, slot, target, close_fds, parent, mask)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid


def _child_main(
    cfg: Config,
    board: Liveness,
    slot: int,
    target: ChildTarget,
    close_fds: tuple[int, ...],
    parent: int,
    mask: set[int | signal.Signals],
) -> None:
    code = 1
    try:
        _prepare_child(close_fds, parent, mask)
        code = target(cfg, board, slot)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("child %d (slot %d) failed", os.getpid(), slot)
        code = 1
    finally:
        # os._exit skips the interpreter's shutdown (the parent's atexit handlers and
        # buffers are not ours to run), so flush what the child wrote.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def _prepare_child(
    close_fds: tuple[int, ...], parent: int, mask: set[int | signal.Signals]
) -> None:
    signal.set_wakeup_fd(-1)  # the supervisor's pipe of signals (Supervisor._setup_signals)
    for sig in SUPERVISOR_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    # A terminal's Ctrl-C reaches the whole process group; the supervisor turns it into a drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # what came since fork() is taken now
    for fd in close_fds:
        os.close(fd)
    for name in NOTIFY_VARIABLES:  # systemd's notify socket belongs to the supervisor
        os.environ.pop(name, None)
    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(EXIT_OK)


def _die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (Linux only; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:
        log.warning("prctl is not available: %s", exc)


def write_pid_file(path: str) -> None:
    """Write our pid to `path` atomically (readers never see an empty file)."""
    with open(f"{path}.tmp", "w", encoding="ascii") as fh:
        fh.write(f"{os.getpid()}\n")
    os.replace(f"{path}.tmp", path)


def remove_pid_file(path: str) -> None:
    """Remove `path` if it still holds our pid (another instance may have taken it over)."""
    with contextlib.suppress(OSError):
        with open(path, encoding="ascii") as fh:
            ours = fh.read().strip() == str(os.getpid())
        if ours:
            os.remove(path)
