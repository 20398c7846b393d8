"""One source of truth for node settings: `runeworker run` and `serve`'s worker children build
identical NodeSettings from the defaults, a config file and the environment (issue 10 item 5,
issue 11 item 12). Before, `run` used its own 3-network deny list and reached 100.100.100.200."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from runeworker.child.worker import Worker
from runeworker.commands.run import local_executor, run
from runeworker.config import Config, load_config
from runeworker.engine.local import LocalRunner
from runeworker.engine.registry import DENY_NETWORKS, NodeSettings

CONFIG = """
[worker]
node_timeout = 7.5
max_steps = 50
[nodes]
http_deny_networks = ["10.0.0.0/8", "127.0.0.0/8"]
http_max_response_bytes = 1000
http_default_timeout = 2.5
smtp_timeout = 4
"""
FROM_FILE = NodeSettings(
    http_deny_networks=("10.0.0.0/8", "127.0.0.0/8"),
    http_max_response_bytes=1000,
    http_default_timeout=2.5,
    smtp_timeout=4.0,
    node_timeout=7.5,
)


def serve_settings(cfg: Config) -> NodeSettings:
    """What a `serve` child builds (runeworker/child/worker.py); nothing connects here."""
    return Worker(cfg).executor.settings


def run_settings(cfg: Config) -> NodeSettings:
    """What `runeworker run` builds (runeworker/commands/run.py)."""
    return local_executor(cfg).settings


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "runeworker.toml"
    path.write_text(CONFIG)
    return path


def test_defaults_are_identical_and_deny_cloud_metadata() -> None:
    cfg = load_config(env={})
    assert run_settings(cfg) == serve_settings(cfg) == NodeSettings()
    assert run_settings(cfg).http_deny_networks == DENY_NETWORKS
    assert "100.100.100.200/32" in DENY_NETWORKS  # Alibaba Cloud's metadata service
    assert LocalRunner().executor.settings == NodeSettings()  # the library default as well
    assert local_executor(cfg).max_steps == Worker(cfg).executor.max_steps == cfg.worker.max_steps


def test_the_same_config_file_gives_the_same_settings(config_file: Path) -> None:
    by_flag = load_config(config_file, env={})
    by_env = load_config(env={"RUNEWORKER_CONFIG": str(config_file)})
    for cfg in (by_flag, by_env):
        assert run_settings(cfg) == serve_settings(cfg) == FROM_FILE
        assert local_executor(cfg).max_steps == Worker(cfg).executor.max_steps == 50


def test_the_environment_wins_over_the_file_for_both(config_file: Path) -> None:
    env = {"RUNEWORKER_NODES_SMTP_TIMEOUT": "9", "RUNEWORKER_WORKER_NODE_TIMEOUT": "0"}
    cfg = load_config(config_file, env=env)
    # node_timeout 0: 80 % of worker.timeout (60 s)
    expected = NodeSettings(**{**FROM_FILE.__dict__, "smtp_timeout": 9.0, "node_timeout": 48.0})
    assert run_settings(cfg) == serve_settings(cfg) == expected


# -- `runeworker run` end to end --------------------------------------------------------------


def http_workflow(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "fetch.json"
    nodes = [
        {"id": "trigger", "name": "Start", "type": "ManualTrigger", "trigger": True},
        {"id": "fetch", "name": "Fetch", "type": "http", "parameters": {"url": url}},
    ]
    edges = [{"id": "e1", "src": "trigger", "dst": "fetch"}]
    path.write_text(json.dumps({"nodes": nodes, "edges": edges}))
    return path


def run_quietly(
    workflow: Path, config_path: str | None = None, env: dict[str, str] | None = None
) -> tuple[int, str]:
    out = io.StringIO()
    code = run(str(workflow), "{}", False, out, config_path=config_path, env=env)
    return code, out.getvalue()


def test_run_refuses_alibaba_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An IP literal: the deny list is checked before any connection (and without DNS). Should
    # that ever regress, the request stops here instead of leaving the machine.
    def no_send(*args: object, **kwargs: object) -> None:
        raise AssertionError("the http node tried to connect")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", no_send)
    workflow = http_workflow(tmp_path, "http://100.100.100.200/latest/meta-data/")
    code, out = run_quietly(workflow, env={})
    assert code == 1
    assert "is in the denied network 100.100.100.200/32" in out


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_reads_the_config_file_and_the_environment(
    tmp_path: Path, config_file: Path, closed_port: int
) -> None:
    workflow = http_workflow(tmp_path, f"http://127.0.0.1:{closed_port}/")
    denied = "is in the denied network 127.0.0.0/8"
    code, out = run_quietly(workflow, env={})  # defaults: loopback is allowed (and refused)
    assert code == 1 and denied not in out and "Connection refused" in out
    code, out = run_quietly(workflow, config_path=str(config_file), env={})
    assert code == 1 and denied in out
    code, out = run_quietly(workflow, env={"RUNEWORKER_CONFIG": str(config_file)})
    assert code == 1 and denied in out


def test_run_command_line_takes_config(tmp_path: Path, config_file: Path, closed_port: int) -> None:
    workflow = http_workflow(tmp_path, f"http://127.0.0.1:{closed_port}/")
    proc = subprocess.run(
        [sys.executable, "-m", "runeworker", "run", str(workflow), "--config", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "is in the denied network 127.0.0.0/8" in proc.stdout


def test_run_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[worker]\nnode_timeout = -1\n")
    code, out = run_quietly(http_workflow(tmp_path, "http://127.0.0.1/"), config_path=str(bad))
    assert code == 2 and out == ""
    assert capsys.readouterr().err.startswith(f"config error: {bad}: worker.node_timeout")
