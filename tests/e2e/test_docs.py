"""The commands of README.md's service section and of deploy/INSTALL.md, run as written (with the
few substitutions a test machine needs, listed below) against the real RabbitMQ and Redis, so the
docs cannot rot unnoticed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from serving import free_port, serve_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def blocks(text: str, after: str = "", before: str = "") -> list[str]:
    """The ```sh blocks of `text` between the headings `after` and `before` (whole text when
    empty), in order, without their indentation."""
    start = text.index(after) if after else 0
    end = text.index(before, start) if before else len(text)
    found = re.findall(r"^([ \t]*)```sh\n(.*?)^\1```", text[start:end], re.M | re.S)
    return ["\n".join(line[len(indent) :] for line in body.splitlines()) for indent, body in found]


def run_bash(
    script: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_readme_service_section_runs(amqp_url: str, redis_url: str, redis_prefix: str) -> None:
    readme = (REPO / "README.md").read_text()
    [script] = blocks(readme, "## Running as a service", "\n## ")
    port = free_port()
    # substitutions: this venv instead of ./.venv, a free metrics port, and the end of the
    # drain awaited (the README's shell keeps running; a script must wait for its job)
    script = script.replace(".venv/bin/", f"{BIN}/").replace("9464", str(port))
    script += "\nwait %1\n"
    env = serve_env(
        amqp_url, redis_url, redis_prefix, RUNEWORKER_METRICS_LISTEN=f"127.0.0.1:{port}"
    )
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    done = run_bash(script, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout
    assert re.search(
        r'runeworker_node_executions_total\{outcome="success",type="\w+"\} [1-9]', done.stdout
    )
    assert "password" not in done.stdout.lower() or ":***@" in done.stdout


def test_install_guide_runs(tmp_path: Path, amqp_url: str, redis_url: str) -> None:
    """deploy/INSTALL.md in a scratch root: `sudo` dropped (the test runs as the invoking user),
    absolute paths moved under the root, the venv filled offline (runeworker from a wheel of the
    copied source, its dependencies seen through a .pth file), and the `systemctl` lines left out
    (they need a running systemd)."""
    root = tmp_path / "root"
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    steps = []
    for block in blocks((REPO / "deploy" / "INSTALL.md").read_text()):
        for line in block.splitlines():
            if line.startswith("sudo systemctl "):
                continue
            line = line.replace("sudo -u runeworker ", "").replace("sudo ", "")
            for path in (
                "/opt/runeworker",
                "/etc/runeworker",
                "/etc/systemd",
                "/usr/lib/sysusers.d",
            ):
                line = line.replace(path, f"{root}{path}")
            if line.startswith("systemd-sysusers "):
                line = line.replace("systemd-sysusers ", f"systemd-sysusers --root={root} ")
            if line.startswith("systemd-run "):
                # no systemd here: its EnvironmentFile= read by the shell, then the command
                line = _as_systemd_run(line)
            if line.startswith("systemd-analyze verify "):
                # the unit names the real /opt path: point it at the scratch install first
                unit = line.split()[-1]
                line = f"sed -i 's#/opt/runeworker#{root}/opt/runeworker#g' {unit} && {line}"
            if line.startswith("/usr/bin/python3 -m venv "):
                venv = line.split()[-1]
                # offline: the new venv sees this test's installed packages through a .pth file
                line += f" && echo {site} > $(echo {venv}/lib/python3*/site-packages)/test-deps.pth"
            if " -m venv " not in line and "/bin/pip install " in line:
                # offline: a wheel built by this test's interpreter (setuptools of the test
                # extra) from the copied source, installed without an index
                pip, src = line.split(" install ")[0], line.split()[-1]
                wheels = tmp_path / "wheels"
                line = (
                    f"{sys.executable} -m pip wheel -q --no-deps --no-build-isolation --no-index"
                    f" -w {wheels} {src} && {pip} install -q --no-index --no-deps {wheels}/*.whl"
                )
            steps.append(line)
    for path in ("usr/lib/sysusers.d", "etc/systemd/system", "etc"):
        (root / path).mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNEWORKER_", "RABBITMQ_"))}
    done = run_bash("\n".join(steps), env, timeout=600)
    assert done.returncode == 0, "\n".join(steps) + "\n" + done.stdout + done.stderr
    assert "runeworker:x:" in (root / "etc" / "passwd").read_text()
    assert (root / "opt/runeworker/venv/bin/runeworker").exists()
    # check-config printed the env file's URLs, passwords masked
    assert 'url = "amqp://rune:***@rabbitmq.internal:5672/"' in done.stdout
    assert "CHANGE-ME" not in done.stdout + done.stderr
    assert (root / "etc/runeworker/env").stat().st_mode & 0o777 == 0o600


def _as_systemd_run(line: str) -> str:
    """`systemd-run [options] -p EnvironmentFile=F COMMAND...` as a shell line: F sourced, then
    COMMAND (systemd reads the file as root, then starts COMMAND as the unit's User=)."""
    words = shlex.split(line)[1:]
    env_file = ""
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option == "-p":
            prop = words.pop(0)
            if prop.startswith("EnvironmentFile="):
                env_file = prop.removeprefix("EnvironmentFile=").removeprefix("-")
    assert env_file, line
    return f"sh -c {shlex.quote(f'set -a; . {env_file}; exec {shlex.join(words)}')}"


def test_install_guide_never_reads_the_env_file_as_the_service_user() -> None:
    """INSTALL installs /etc/runeworker/env root's with mode 0600 (systemd reads it for the
    unit); its check-config step sourced it in `sudo -u runeworker sh -c '. ...'`, which fails
    with "Permission denied" on a real host (the test above drops `sudo` and cannot see it)."""
    guide = (REPO / "deploy" / "INSTALL.md").read_text()
    lines = [line for block in blocks(guide) for line in block.splitlines()]
    assert "sudo install -m 0600 systemd/runeworker.env.example /etc/runeworker/env" in lines
    as_service_user = [line for line in lines if line.startswith("sudo -u runeworker ")]
    assert [line for line in as_service_user if "/etc/runeworker/env" in line] == []
    assert any("EnvironmentFile=/etc/runeworker/env" in line for line in lines)


def test_readme_template_section_runs(tmp_path: Path) -> None:
    """The official-template commands of README.md, as written (no broker, no network); the
    converted definition is written to a temporary folder instead of the checkout."""
    readme = (REPO / "README.md").read_text()
    [script] = blocks(readme, "## Running an official Rune template", "\n## ")
    out = tmp_path / "github-status.definition.json"
    script = script.replace(".venv/bin/", f"{BIN}/").replace(
        "> github-status.definition.json", f"> {out}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNEWORKER_")}
    done = run_bash(script, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: tests/templates/fortune-cookie.json (3 nodes, 2 edges)\n")
    assert done.stdout.rstrip().splitlines()[-1].startswith("workflow completed in ")
    assert "note: node SMTP (smtp) holds no credential" in done.stderr
    assert '"name": "github_status"' in out.read_text()
