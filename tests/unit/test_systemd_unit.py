"""The shipped systemd unit passes `systemd-analyze verify` and agrees with the config defaults."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runeworker.config import Config

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "runeworker.service"


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_unit_has_the_required_settings() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert service["KillMode"] == "mixed"
    assert int(service["WatchdogSec"]) > 0
    assert service["RuntimeDirectory"] == "runeworker"
    assert service["User"] == "runeworker"
    assert service["NoNewPrivileges"] == "yes"
    assert float(service["TimeoutStopSec"]) > Config().worker.graceful_timeout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("runeworker")
    assert exe.exists(), "runeworker console script not installed in this environment"
    text = re.sub(r"ExecStart=\S+", f"ExecStart={exe}", UNIT.read_text())
    unit = tmp_path / "runeworker.service"
    unit.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line for line in (proc.stdout + proc.stderr).splitlines() if "runeworker.service" in line
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
