"""systemd's notify protocol (sd_notify), in the few lines of stdlib it takes.

A datagram of `KEY=value` lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET; a name starting
with `@` is in the abstract namespace. Without $NOTIFY_SOCKET (not under systemd, or a unit that is
not Type=notify) every call is a no-op, so callers never need to check.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["NOTIFY_VARIABLES", "notify", "watchdog_interval"]

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
