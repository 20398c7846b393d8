"""pytest plugin of the mutation runs (`-p tests.mutation.walltime`): a test that runs longer than
WALL_SECONDS of wall-clock time fails.

mutmut 3.8 stops a mutant's tests only at a limit of CPU time. A mutant that makes the worker
loop wait (a delivery never acknowledged, a stop never seen) sleeps in `poll` or on an event and
spends almost no CPU, so it ran until something else gave up: minutes per mutant. Every unit
test of a target takes a few seconds at most; a mutant that keeps one waiting for a minute has
changed what it does, and fails it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

WALL_SECONDS = 60


def _too_long(_signum: int, _frame: FrameType | None) -> None:
    pytest.fail(f"still running after {WALL_SECONDS} s of wall-clock time", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(WALL_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
