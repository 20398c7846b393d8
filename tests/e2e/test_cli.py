"""The command line as an operator meets it: help texts, a closed pipe, a taken metrics port."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RUNEWORKER = [sys.executable, "-m", "runeworker"]


def test_each_command_lists_only_its_own_flags_without_internal_names() -> None:
    helps = {
        cmd: subprocess.run(
            [*RUNEWORKER, cmd, "--help"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        for cmd in ("serve", "submit", "check-config", "bench", "run")
    }
    assert "--processes" not in helps["submit"] and "--metrics-listen" not in helps["submit"]
    assert "--queue" in helps["submit"]
    assert "--log-format" in helps["serve"] and "--log-level LEVEL" in helps["serve"]
    assert not any("CFG_" in text for text in helps.values())


def test_a_closed_pipe_ends_run_without_a_traceback() -> None:
    proc = subprocess.Popen(
        [*RUNEWORKER, "run", "fanout", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    proc.wait(60)
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_a_metrics_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*RUNEWORKER, "serve", "--metrics-listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "RUNEWORKER_METRICS_DIRECTORY": str(tmp_path / "m")},
        )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error:") and str(port) in lines[0]
    assert "Traceback" not in done.stderr


def _usage_error(*args: str) -> str:
    """Run a command whose broker does not answer; it must refuse `args` as a usage error
    (exit 2, nothing on stdout) before connecting. The last line of its stderr."""
    done = subprocess.run(
        [*RUNEWORKER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "RUNEWORKER_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/"},
    )
    assert (done.returncode, done.stdout) == (2, "")
    return done.stderr.splitlines()[-1]


@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_dlq_list_refuses_a_limit_below_one_before_connecting(limit: str) -> None:
    """--limit -1 was a ValueError traceback from islice; --limit 0 said the queue was empty."""
    assert _usage_error("dlq", "list", "--limit", limit) == (
        f"runeworker dlq list: error: argument --limit: expected a whole number >= 1, got {limit!r}"
    )


@pytest.mark.parametrize("timeout", ["-5", "nan", "soon"])
def test_submit_refuses_a_timeout_it_cannot_wait_before_publishing(timeout: str) -> None:
    """--timeout -5 (or nan) published the execution, then reported that it timed out."""
    assert _usage_error("submit", "hello", "--wait", "--timeout", timeout) == (
        f"runeworker submit: error: argument --timeout: expected a number of seconds >= 0, "
        f"got {timeout!r}"
    )
