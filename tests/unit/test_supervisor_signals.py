"""The supervisor counts every delivery of its signals: a burst of three SIGTTINs is three
children more, not one (runeworker/supervisor/arbiter.py, `Supervisor._setup_signals`).

The interpreter runs a Python-level signal handler between bytecodes, once for all the
deliveries of a signal since its last run; the supervisor's main thread can spend a while in
one C call (a fork, a read of /proc). Three SIGTTINs delivered meanwhile were one."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys

from runeworker.config import load_config
from runeworker.supervisor.arbiter import Supervisor


def _never(*_args: object) -> int:
    raise AssertionError("no child is started here")


def test_a_burst_of_signals_counts_each_delivery() -> None:
    """Another process sends three SIGTTINs, a SIGCHLD and a SIGTTOU 50 ms apart while the
    main thread is in one C call (it holds the interpreter: a thread of this process could
    not send them meanwhile). A Python-level handler would have run once per signal kind."""
    sup = Supervisor(load_config(None), _never)
    sup._setup_signals()
    try:
        burst = [signal.SIGTTIN] * 3 + [signal.SIGCHLD, signal.SIGTTOU]
        code = (
            "import os, sys, time\n"
            "for sig in sys.argv[2:]:\n"
            "    os.kill(int(sys.argv[1]), int(sig))\n"
            "    time.sleep(0.05)\n"
        )
        sender = subprocess.Popen(
            [sys.executable, "-c", code, str(os.getpid()), *(str(int(s)) for s in burst)]
        )
        while sender.poll() is None:
            sum(itertools.repeat(1, 60_000_000))  # about a quarter of a second in C
        sup._take_signals()
        assert list(sup._signals) == [signal.SIGTTIN] * 3 + [signal.SIGTTOU]
    finally:
        sup._restore_signals()
    assert signal.getsignal(signal.SIGTTIN) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1
