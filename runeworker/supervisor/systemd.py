"""systemd's notify protocol (sd_notify), in the few lines of stdlib it takes.

A datagram of `KEY=value` lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET; a name starting
with `@` is in the abstract namespace. Without $NOTIFY_SOCKET (not under systemd, or a unit that is
not Type=notify) every call is a no-op, so callers never need to check.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

__all__ = ["NOTIFY_VARIABLES", "Notifier", "notify", "watchdog_interval"]

log = logging.getLogger("runeworker.systemd")

# What systemd hands the main process for the notify protocol; a forked child must not use them.
NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def _address(raw: str) -> str | None:
    if raw.startswith("@"):
        return "\0" + raw[1:]
    # systemd may also pass vsock:... addresses (VMs); we only run on the host's own systemd.
    return raw if raw.startswith("/") else None


def notify(*lines: str) -> bool:
    """Send `lines` (e.g. "READY=1", "STATUS=3 children ready") as one datagram.

    Returns True when sent, False when $NOTIFY_SOCKET is unset or the send failed: the service
    must keep running even when systemd's socket is gone, so a failure is only logged.
    """
    raw = os.environ.get("NOTIFY_SOCKET", "")
    address = _address(raw) if raw else None
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", raw, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """systemd's watchdog timeout in seconds ($WATCHDOG_USEC), or None when there is none or it
    is meant for another process ($WATCHDOG_PID names someone else)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    owner = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


class Notifier:
    """What a Type=notify main process owes systemd: READY=1 (again after RELOADING=1), STATUS
    when it changes, WATCHDOG=1 every half watchdog timeout while healthy, STOPPING=1."""

    def __init__(self) -> None:
        self.watchdog = watchdog_interval()
        self.ready = False
        self._status = ""
        self._next_watchdog = 0.0

    def update(
        self, now: float, status: str, ready: Callable[[], bool], healthy: Callable[[], bool]
    ) -> bool:
        """Send what changed; `ready` is asked until it says yes. True when READY=1 was sent."""
        lines = []
        became_ready = not self.ready and ready()
        if became_ready:
            self.ready = True
            lines.append("READY=1")
        if status != self._status:
            self._status = status
            lines.append(f"STATUS={status}")
        if self.watchdog and now >= self._next_watchdog and healthy():
            self._next_watchdog = now + self.watchdog / 2
            lines.append("WATCHDOG=1")
        if lines:
            notify(*lines)
        return became_ready

    def seconds_to_watchdog(self, now: float) -> float | None:
        """Time until the next WATCHDOG=1 is due, None without a watchdog or when overdue."""
        if not self.watchdog or self._next_watchdog <= now:
            return None
        return self._next_watchdog - now

    def reloading(self) -> None:
        """Tell systemd a reload started; READY=1 is owed again once it is done."""
        self.ready = False
        notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        notify("STOPPING=1", "STATUS=stopping")
