"""The supervisor with real processes and real signals.

Each test runs this file as a script (`python test_supervisor.py CONFIG DIR`): that process is a
real `Supervisor` whose children run `_target` below. The children are steered through files in
DIR (crash, hang, recycle, how long a drain takes) and leave marker files behind (started,
draining, drained); the supervisor's hooks log every spawn and exit with its reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from runeworker.config import Config, load_config
from runeworker.supervisor import systemd
from runeworker.supervisor.arbiter import (
    EXIT_DRAIN_FORCED,
    EXIT_RECYCLE,
    Supervisor,
    SupervisorHooks,
)
from runeworker.supervisor.liveness import ChildState, Liveness

pytestmark = pytest.mark.e2e

DIR_VAR = "RW_SUPERVISOR_TEST_DIR"
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"  # children of a config naming it wait forever
T = TypeVar("T")


# --- what runs in the supervisor under test and in its children --------------------------------


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:  # O_APPEND: lines of processes never mix
        fh.write(line + "\n")


def _seconds(path: Path, default: float) -> float:
    return float(path.read_text()) if path.exists() else default


def _target(cfg: Config, board: Liveness, slot: int) -> int:
    """A stand-in worker: boots (without beating, like a blocking connect), beats every 50 ms,
    drains a simulated unit of work on SIGTERM."""
    d, pid = Path(os.environ[DIR_VAR]), os.getpid()
    if (d / "crash").exists():
        return 1
    waiting_for = d / "waiting_for"  # what the child reports it waits for, while the file exists
    if cfg.broker.url == UNREACHABLE:  # a config naming a broker that never answers
        waiting_for = d / f"unreachable-{pid}"
        waiting_for.write_text(f"waiting for RabbitMQ at {UNREACHABLE}: refused")
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    (d / f"started-{pid}").touch()
    booted = time.monotonic() + _seconds(d / "boot_seconds", 0.0)
    while time.monotonic() < booted and not stop:
        time.sleep(0.05)
    _append(d / "events.log", f"ready {pid}")
    while not stop:
        if (d / f"hang-{pid}").exists():  # a node stuck forever: no more beats
            while True:
                time.sleep(0.05)
        if (d / f"recycle-{pid}").exists():
            return EXIT_RECYCLE
        if (d / f"fail-{pid}").exists():
            return 1
        if waiting_for.exists():
            board.note(slot, waiting_for.read_text())
            board.beat(slot, ChildState.WAITING)
        elif (d / "busy").exists():  # inside a node
            board.beat(slot, ChildState.BUSY)
        else:
            board.note(slot, "")
            board.beat(slot, ChildState.READY)
        time.sleep(0.05)
    return _drain(d, board, slot)


def _drain(d: Path, board: Liveness, slot: int) -> int:
    pid = os.getpid()
    (d / f"draining-{pid}").touch()
    _append(d / "events.log", f"draining {pid}")
    deadline = time.monotonic() + _seconds(d / "drain_seconds", 0.1)
    while time.monotonic() < deadline:  # the in-flight unit of work
        board.beat(slot, ChildState.DRAINING)
        time.sleep(0.05)
    (d / f"drained-{pid}").touch()
    return 0


def _supervisor_main(config: str, directory: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    d = Path(directory)

    def spawned(pid: int) -> None:
        _append(d / "spawns.log", str(pid))
        _append(d / "events.log", f"spawn {pid}")
        with contextlib.suppress(FileNotFoundError):
            (d / "term_on_spawn").unlink()
            os.kill(os.getpid(), signal.SIGTERM)  # an operator's SIGTERM, just as a child forks

    def slow_fork() -> None:  # widens the moment before a new child sets its own handlers
        if (d / "slow_fork").exists():
            time.sleep(0.05)

    os.register_at_fork(after_in_child=slow_fork)
    said: list[str] = []

    def readiness() -> None:  # what /readyz would answer, logged when it changes
        ok, why = supervisor.readiness()
        answer = "ready" if ok else f"not ready: {why}"
        if said[-1:] != [answer]:
            said.append(answer)
            _append(d / "readiness.log", answer)

    hooks = SupervisorHooks(
        on_child_spawn=spawned,
        on_child_exit=lambda pid, reason: _append(d / "exits.log", f"{pid} {reason}"),
        on_tick=readiness,
    )
    supervisor = Supervisor(load_config(config), _target, config_path=config, hooks=hooks)
    return supervisor.run()


# --- the test side -----------------------------------------------------------------------------


def wait_until(check: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return result


def write_config(path: Path, **sections: dict[str, Any]) -> None:
    values: dict[str, dict[str, Any]] = {
        "worker": {"processes": 2, "timeout": 1.0, "graceful_timeout": 5.0},
        "supervisor": {"restart_backoff": 0.05, "restart_backoff_max": 0.5, "crash_limit": 5},
    }
    for name, table in sections.items():
        values.setdefault(name, {}).update(table)
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
        for name, table in values.items()
    )
    path.write_text(text)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Running:
    """A supervisor under test, in its own session (its own process group)."""

    def __init__(self, directory: Path, extra_env: dict[str, str]) -> None:
        self.dir = directory
        self.config = directory / "runeworker.toml"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("RUNEWORKER_") and k not in systemd.NOTIFY_VARIABLES
        }
        env.update({DIR_VAR: str(directory), **extra_env})
        self.log_file = open(directory / "supervisor.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(self.config), str(directory)],
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def children(self) -> set[int]:
        try:
            kids = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return set()
        return {k.pid for k in kids}  # zombies too: the supervisor has not reaped them yet

    def working(self) -> set[int]:
        """The children, if every one has reached its work loop (else the empty set)."""
        pids = self.children()
        return pids if all((self.dir / f"started-{p}").exists() for p in pids) else set()

    def started(self, n: int) -> set[int]:
        """Wait until exactly `n` children run their work loop."""

        def check() -> set[int]:
            pids = self.working()
            return pids if len(pids) == n else set()

        return wait_until(check, f"{n} working children")

    def wait_gone(self, pid: int, timeout: float = 10.0) -> None:
        wait_until(lambda: pid not in self.children(), f"child {pid} to exit", timeout)

    def wait_log(self, text: str, count: int = 1) -> None:
        wait_until(lambda: self.log().count(text) >= count, f"{text!r} x{count} in the log")

    def send(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def touch(self, name: str) -> None:
        (self.dir / name).touch()

    def marked(self, name: str) -> bool:
        return (self.dir / name).exists()

    def exits(self) -> list[str]:
        path = self.dir / "exits.log"
        return path.read_text().splitlines() if path.exists() else []

    def events(self) -> list[str]:
        """Spawns (by the supervisor), READY and SIGTERM (by the children), in order."""
        return (self.dir / "events.log").read_text().splitlines()

    def wait_exits(self, n: int) -> list[str]:
        """The exit log once it has `n` lines (the hook runs just after the reap)."""
        return wait_until(lambda: self.exits()[n - 1 :] and self.exits(), f"{n} exits")

    def readiness(self) -> list[str]:
        """Each change of the supervisor's `/readyz` answer, in order."""
        path = self.dir / "readiness.log"
        return path.read_text().splitlines() if path.exists() else []

    def spawns(self) -> list[int]:
        path = self.dir / "spawns.log"
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def log(self) -> str:
        return (self.dir / "supervisor.log").read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"supervisor still running after {timeout} s") from None

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.spawns():  # children are forks: same command line, naming our config
            try:
                child = psutil.Process(pid)
                if str(self.config) in child.cmdline():
                    child.kill()
            except psutil.Error:
                pass
        self.log_file.close()


Start = Callable[..., Running]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """start(env=..., **config sections) -> a running supervisor; killed at the end."""
    running: list[Running] = []

    def _start(env: dict[str, str] | None = None, **sections: dict[str, Any]) -> Running:
        directory = tmp_path / f"sup{len(running)}"
        directory.mkdir()
        write_config(directory / "runeworker.toml", **sections)
        running.append(Running(directory, env or {}))
        return running[-1]

    yield _start
    for sup in running:
        sup.cleanup()


class NotifySocket:
    """A stand-in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.lines: list[str] = []

    def wait_for(self, line: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        """Receive datagrams until `line` was seen `count` times; returns every line so far."""

        def seen() -> bool:
            with contextlib.suppress(TimeoutError):
                self.lines.extend(self.sock.recv(4096).decode().split("\n"))
            return self.lines.count(line) >= count

        wait_until(seen, f"{line!r} x{count} on the notify socket", timeout)
        return self.lines

    def collect(self, seconds: float) -> list[str]:
        """Receive whatever comes within `seconds`; returns every line so far."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                self.lines.extend(self.sock.recv(4096).decode().split("\n"))
        return self.lines

    def close(self) -> None:
        self.sock.close()


# --- tests ---------------------------------------------------------------------------------------


def test_ready_status_and_stopping_reach_an_abstract_notify_socket(start: Start) -> None:
    name = f"rw-test-{uuid.uuid4().hex}"
    notify = NotifySocket("\0" + name)
    try:
        sup = start(env={"NOTIFY_SOCKET": "@" + name})
        lines = notify.wait_for("READY=1")
        assert len(sup.children()) == 2
        assert lines[-2:] == ["READY=1", "STATUS=2 children ready"]
        assert "WATCHDOG=1" not in lines  # no WATCHDOG_USEC, no pings
        sup.send(signal.SIGTERM)
        assert notify.wait_for("STOPPING=1")[-2:] == ["STOPPING=1", "STATUS=stopping"]
        assert sup.wait(10) == 0
    finally:
        notify.close()


def test_watchdog_pings_while_children_are_healthy(start: Start, tmp_path: Path) -> None:
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"}
        sup = start(env=env)
        notify.wait_for("WATCHDOG=1", timeout=5, count=5)
        assert "READY=1" in notify.lines
    finally:
        notify.close()
    sup.send(signal.SIGTERM)
    assert sup.wait(10) == 0


def test_killed_child_is_replaced(start: Start) -> None:
    sup = start()
    first = sup.started(2)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    sup.wait_gone(victim)
    now = sup.started(2)
    assert victim not in now and len(now - first) == 1
    assert sup.exits() == [f"{victim} signal 9"]


def test_crash_loop_makes_the_supervisor_exit_1(start: Start) -> None:
    sup = start(supervisor={"crash_limit": 3, "crash_window": 30.0})
    sup.touch("crash")
    assert sup.wait(10) == 1
    crashes = [line.split()[1:] for line in sup.exits() if not line.endswith("drain")]
    assert crashes == [["exit", "1"]] * 3  # crash_limit = 3: the 3rd crash stops it
    assert "3 crashes within 30.0 s: stopping" in sup.log()


def test_crashes_before_ready_back_off_exponentially(start: Start) -> None:
    sup = start(
        worker={"processes": 1},
        supervisor={"restart_backoff": 0.2, "restart_backoff_max": 10.0, "crash_limit": 10},
    )
    sup.started(1)
    sup.touch("crash")  # every child from now on fails before it is ready
    sup.touch(f"fail-{min(sup.children())}")
    sup.wait_log("restarting in 0.40 s (2 crashes within 60.0 s)")
    assert "restarting in 0.20 s (1 crash within 60.0 s)" in sup.log()
    (sup.dir / "crash").unlink()
    sup.started(1)
    assert sup.proc.poll() is None


def test_children_killed_after_ready_are_replaced_at_once_and_are_no_crash_loop(
    start: Start,
) -> None:
    # a boot failure would wait 30 s for its replacement, and the 1st would stop the supervisor
    sup = start(supervisor={"restart_backoff": 30.0, "restart_backoff_max": 30.0, "crash_limit": 1})
    killed: list[int] = []
    for _ in range(10):  # a kill storm: the OOM killer, an operator
        victim = min(sup.started(2))
        os.kill(victim, signal.SIGKILL)
        sup.wait_gone(victim)
        killed.append(victim)
    assert len(sup.started(2) & set(killed)) == 0
    assert sup.proc.poll() is None
    assert sup.exits() == [f"{p} signal 9" for p in killed]
    assert "restarting in" not in sup.log()


def test_sigterm_drains_children_and_removes_the_pid_file(start: Start, tmp_path: Path) -> None:
    pid_file = tmp_path / "rw.pid"
    sup = start(supervisor={"pid_file": str(pid_file)}, worker={"graceful_timeout": 5.0})
    (sup.dir / "drain_seconds").write_text("0.3")
    pids = sup.started(2)
    assert pid_file.read_text() == f"{sup.proc.pid}\n"
    sup.send(signal.SIGTERM)
    assert sup.wait(7) == 0
    # Drained, not killed at the graceful timeout (read from the log, not from a clock).
    assert "still running after the graceful timeout" not in sup.log()
    assert all(sup.marked(f"drained-{p}") for p in pids)
    assert sorted(sup.exits()) == sorted(f"{p} drain" for p in pids)
    assert not pid_file.exists()


def test_readiness_says_the_pool_stops_while_it_drains(start: Start) -> None:
    sup = start(worker={"graceful_timeout": 5.0})
    (sup.dir / "drain_seconds").write_text("1.0")
    sup.started(2)
    wait_until(lambda: sup.readiness()[-1:] == ["ready"], "ready")
    sup.send(signal.SIGTERM)
    assert sup.wait(7) == 0
    assert sup.readiness()[-2:] == ["ready", "not ready: stopping: the children drain"]


def test_drain_kills_children_past_the_graceful_timeout(start: Start) -> None:
    sup = start(worker={"graceful_timeout": 1.0})
    (sup.dir / "drain_seconds").write_text("60")
    pids = sup.started(2)
    began = time.monotonic()
    sup.send(signal.SIGTERM)
    assert sup.wait(6) == EXIT_DRAIN_FORCED
    assert time.monotonic() - began >= 1.0  # the children had their graceful second
    # ... and were then killed by the graceful timeout, each of them (not by their 60 s drain:
    # the wait above would have failed).
    assert sup.log().count("still running after the graceful timeout") == 2
    assert all(sup.marked(f"draining-{p}") and not sup.marked(f"drained-{p}") for p in pids)
    assert all(gone(p) for p in pids)


def test_sigterm_just_as_a_child_is_forked_drains_that_child_too(start: Start) -> None:
    sup = start(worker={"processes": 1, "graceful_timeout": 5.0})
    first = sup.started(1)
    sup.touch("slow_fork")  # 50 ms between fork() and the child's first line
    sup.touch("term_on_spawn")
    sup.send(signal.SIGTTIN)  # a second child is forked, and SIGTERM comes at that moment
    assert sup.wait(4) == 0  # not EXIT_DRAIN_FORCED after the 5 s graceful timeout
    assert "still running after the graceful timeout" not in sup.log()
    [forked] = set(sup.spawns()) - first
    assert sorted(sup.exits()) == sorted(f"{p} drain" for p in (*first, forked))


def test_second_sigterm_stops_at_once(start: Start) -> None:
    sup = start(worker={"graceful_timeout": 30.0})
    (sup.dir / "drain_seconds").write_text("60")
    pids = sup.started(2)
    sup.send(signal.SIGTERM)
    wait_until(lambda: all(sup.marked(f"draining-{p}") for p in pids), "children draining")
    sup.send(signal.SIGTERM)
    assert sup.wait(5) == 0  # far less than the 30 s graceful timeout
    assert "stopping now: killing 2 children" in sup.log()
    assert "still running after the graceful timeout" not in sup.log()
    assert not any(sup.marked(f"drained-{p}") for p in pids)
    assert all(gone(p) for p in pids)


def test_ctrl_c_on_the_process_group_drains(start: Start) -> None:
    sup = start()
    pids = sup.started(2)
    os.killpg(sup.proc.pid, signal.SIGINT)  # what a terminal sends: children ignore it
    assert sup.wait(10) == 0
    assert all(sup.marked(f"drained-{p}") for p in pids)


def test_sigquit_kills_children_without_a_drain(start: Start) -> None:
    sup = start(worker={"graceful_timeout": 30.0})
    pids = sup.started(2)
    sup.send(signal.SIGQUIT)
    assert sup.wait(5) == 0
    assert not any(sup.marked(f"draining-{p}") for p in pids)
    assert all(gone(p) for p in pids)


def test_ttin_and_ttou_change_the_number_of_children(start: Start) -> None:
    sup = start()
    sup.started(2)
    sup.send(signal.SIGTTIN)
    three = sup.started(3)
    for i in range(3):  # the third one must not go below one child
        sup.send(signal.SIGTTOU)
        sup.wait_log("received SIGTTOU", i + 1)
    assert sup.log().count("scaling down to 1 children") == 1
    assert "TTOU ignored: the pool keeps at least one child" in sup.log()  # no "down to 1"
    oldest = sup.spawns()[0]
    assert sup.started(1) == {oldest}
    stopped = three - {oldest}
    assert all(sup.marked(f"drained-{p}") for p in stopped)
    assert sorted(sup.wait_exits(2)) == sorted(f"{p} scale down" for p in stopped)


def test_sighup_reloads_the_config_and_rolls_children_one_at_a_time(start: Start) -> None:
    sup = start()
    old = sup.started(2)
    (sup.dir / "boot_seconds").write_text("0.3")  # new children take a while to be READY
    write_config(sup.config, worker={"processes": 3})
    sup.send(signal.SIGHUP)

    def rolled() -> set[int]:
        pids = sup.working()
        return pids if len(pids) == 3 and not pids & old else set()

    new = wait_until(rolled, "3 new children and no old one")
    assert all(sup.marked(f"drained-{p}") for p in old)
    assert sorted(sup.wait_exits(2)) == sorted(f"{p} reload" for p in old)
    assert set(sup.spawns()[2:]) == new
    n1, n2, n3 = sup.spawns()[2:]
    wait_until(lambda: f"ready {n3}" in sup.events(), "the last new child to be ready")
    events = sup.events()
    at = {event: events.index(event) for event in events}
    # One new child boots at a time: each is spawned once the previous one is READY ...
    assert at[f"ready {n1}"] < at[f"spawn {n2}"] and at[f"ready {n2}"] < at[f"spawn {n3}"]
    # ... and an old child is stopped only when a new one has taken its place.
    o1, o2 = sorted(old, key=lambda p: at[f"draining {p}"])
    assert at[f"ready {n2}"] < at[f"draining {o1}"] and at[f"ready {n3}"] < at[f"draining {o2}"]


def test_readiness_holds_while_sighup_rolls_the_children(start: Start) -> None:
    sup = start()
    old = sup.started(2)
    wait_until(lambda: sup.readiness()[-1:] == ["ready"], "ready")
    before = sup.readiness()
    (sup.dir / "boot_seconds").write_text("0.5")  # each new child takes a while to be READY
    write_config(sup.config, worker={"graceful_timeout": 4.0})
    sup.send(signal.SIGHUP)

    def rolled() -> set[int]:
        pids = sup.working()
        return pids if len(pids) == 2 and not pids & old else set()

    new = wait_until(rolled, "2 new children and no old one")
    wait_until(lambda: all(f"ready {p}" in sup.events() for p in new), "new children ready")
    # the old children consumed until a new one took each one's place: never unready
    assert sup.readiness() == before


def test_sighup_onto_a_broker_that_does_not_answer_keeps_the_old_children(start: Start) -> None:
    sup = start()
    old = sup.started(2)
    write_config(sup.config, broker={"url": UNREACHABLE})
    sup.send(signal.SIGHUP)
    sup.wait_log(f"pool waiting for RabbitMQ at {UNREACHABLE}")
    time.sleep(1.0)  # many turns of the main loop: the roll must hold, not go on
    waiting = sup.children() - old
    assert len(waiting) == 1  # one new child, which waits; the old ones still serve
    [waiter] = waiting
    assert old <= sup.children() and sup.exits() == []
    assert not any(sup.marked(f"draining-{p}") for p in old)
    assert sup.readiness()[-1] == "ready"
    write_config(sup.config)  # the operator fixes the file and reloads again
    sup.send(signal.SIGHUP)

    def rolled() -> set[int]:
        pids = sup.working()
        return pids if len(pids) == 2 and not pids & (old | waiting) else set()

    wait_until(rolled, "2 children of the fixed config")
    exits = sup.wait_exits(3)
    assert exits[0] == f"{waiter} reload"  # the one that served nothing went first
    assert sorted(exits) == sorted(f"{p} reload" for p in old | waiting)


def test_booting_child_that_never_gets_ready_is_killed(start: Start) -> None:
    sup = start(worker={"timeout": 1.0})
    (sup.dir / "boot_seconds").write_text("60")  # a connect that hangs
    first = sup.started(2)
    sup.wait_gone(min(first), timeout=5)
    assert f"{min(first)} timeout" in sup.wait_exits(1)


def test_sighup_with_a_broken_config_keeps_the_old_one(start: Start, tmp_path: Path) -> None:
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        sup = start(env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        pids = sup.started(2)
        notify.wait_for("READY=1")
        sup.config.write_text("[worker]\nprocesses = 'three'\n")
        sup.send(signal.SIGHUP)
        sup.wait_log("reload failed, keeping the current config")
        assert "worker.processes" in sup.log()
        assert sup.started(2) == pids
        assert sup.exits() == []
        failed = wait_until(
            lambda: [ln for ln in notify.wait_for("READY=1") if "reload failed" in ln],
            "a STATUS line about the failed reload",
        )
        assert failed[0].startswith("STATUS=reload failed, keeping the current config")
        assert "worker.processes" in failed[0]
        # `systemctl status` keeps saying so: the next turns of the loop (1 s each) replaced it
        # with "2 children ready" at once
        statuses = [ln for ln in notify.collect(2.5) if ln.startswith("STATUS=")]
        assert statuses[-1].startswith("STATUS=reload failed, keeping the current config")
        assert statuses[-1].endswith("; 2 children ready")
        # several problems make one STATUS line: a datagram holds one KEY=value a line
        sup.config.write_text("[worker]\nprocesses = 'three'\nprocs = 1\n")
        sup.send(signal.SIGHUP)
        both = wait_until(
            lambda: [ln for ln in notify.collect(0.2) if "worker.procs" in ln],
            "a STATUS line naming both problems",
        )
        assert both[-1].startswith("STATUS=reload failed") and "worker.processes" in both[-1]
        write_config(sup.config)  # fixed: the note goes with the next reload
        sup.send(signal.SIGHUP)
        sup.wait_log("config reloaded")
        wait_until(
            lambda: (
                [ln for ln in notify.collect(0.2) if ln.startswith("STATUS=")][-1]
                == "STATUS=2 children ready"
            ),
            "the pool's status without the note",
        )
    finally:
        notify.close()


def test_sighup_keeps_ttin_adjustments_and_logs_what_changed(start: Start) -> None:
    sup = start()
    sup.started(2)
    sup.send(signal.SIGTTIN)
    sup.started(3)
    write_config(sup.config, worker={"graceful_timeout": 4.0})  # processes stays 2
    sup.send(signal.SIGHUP)
    sup.wait_log("config reloaded")
    assert "reload: worker.graceful_timeout changed from 5.0 to 4.0" in sup.log()
    wait_until(lambda: len(sup.exits()) >= 3, "the 3 old children rolled")
    assert len(sup.started(3)) == 3  # the TTIN adjustment survives the reload


def test_sighup_names_settings_that_need_a_restart(start: Start, tmp_path: Path) -> None:
    sup = start()
    sup.started(2)
    write_config(sup.config, supervisor={"pid_file": str(tmp_path / "new.pid")})
    sup.send(signal.SIGHUP)
    sup.wait_log("only take effect after a restart")
    assert "reload: supervisor.pid_file only take effect after a restart" in sup.log()


def test_waiting_children_make_the_service_ready_with_a_status_and_keep_the_watchdog(
    start: Start, tmp_path: Path
) -> None:
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
        sup = start(env=env, worker={"processes": 2, "timeout": 2.0})
        (sup.dir / "waiting_for").write_text("waiting for RabbitMQ at amqp://127.0.0.1:1/")
        lines = notify.wait_for("READY=1")
        status = [ln for ln in lines if ln.startswith("STATUS=")]
        assert status[-1] == (
            "STATUS=waiting for RabbitMQ at amqp://127.0.0.1:1/ (0 of 2 children ready)"
        )
        notify.wait_for("WATCHDOG=1", count=3)  # waiting is alive: a restart cannot help
        sup.wait_log("pool waiting for RabbitMQ at amqp://127.0.0.1:1/")
        (sup.dir / "waiting_for").unlink()
        wait_until(lambda: "STATUS=2 children ready" in notify.wait_for("READY=1"), "ready status")
        sup.wait_log("pool: dependencies answer again")
        assert sup.log().count("pool waiting for") == 1  # one line per state change
    finally:
        notify.close()


def test_no_watchdog_while_children_crash_before_they_are_ready(
    start: Start, tmp_path: Path
) -> None:
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"}
        sup = start(env=env, supervisor={"crash_limit": 1000, "restart_backoff": 0.05})
        notify.wait_for("WATCHDOG=1")
        sup.touch("crash")
        for pid in sup.children():
            sup.touch(f"fail-{pid}")
        sup.wait_log("(5 crashes within")
        notify.lines.clear()
        sup.wait_log("(10 crashes within")
        assert "WATCHDOG=1" not in notify.collect(0.3)
    finally:
        notify.close()


def test_hung_child_is_killed_and_replaced(start: Start) -> None:
    sup = start(worker={"timeout": 1.0})
    first = sup.started(2)
    victim = min(first)
    sup.touch(f"hang-{victim}")
    sup.wait_gone(victim, timeout=5)
    assert len(sup.started(2) - first) == 1
    assert sup.exits() == [f"{victim} timeout"]


def test_recycled_child_is_replaced_at_once_and_is_no_crash(start: Start) -> None:
    # A crash would wait 30 s for its replacement, and the 2nd one would stop the supervisor.
    sup = start(supervisor={"restart_backoff": 30.0, "restart_backoff_max": 30.0, "crash_limit": 1})
    recycled = []
    for _ in range(3):
        victim = min(sup.started(2))
        sup.touch(f"recycle-{victim}")
        sup.wait_gone(victim)
        recycled.append(victim)
    sup.started(2)
    assert sup.proc.poll() is None
    assert sup.exits() == [f"{p} recycle" for p in recycled]


def test_memory_backstop_terminates_children_far_over_the_limit(start: Start) -> None:
    sup = start(worker={"max_memory_mb": 1})  # every child is far over 2 x 1 MiB
    sup.started(2)
    time.sleep(1.5)  # outside a node they are left alone: they recycle after their message
    assert sup.exits() == []
    sup.touch("busy")  # now each is stuck in a node that keeps its memory
    wait_until(lambda: sum(e.endswith(" memory") for e in sup.exits()) >= 3, "memory stops")
    assert sup.proc.poll() is None  # stopping for memory is no crash


def test_children_die_with_the_supervisor(start: Start) -> None:
    sup = start()
    pids = sup.started(2)
    sup.proc.kill()
    sup.proc.wait()
    wait_until(lambda: all(gone(p) for p in pids), "orphaned children to exit")
    assert all(sup.marked(f"drained-{p}") for p in pids)  # PR_SET_PDEATHSIG sent SIGTERM


def test_notify_is_a_no_op_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_notify_sends_one_datagram(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sock = NotifySocket(str(tmp_path / "n.sock"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n.sock"))
    try:
        assert systemd.notify("READY=1", "STATUS=ok") is True
        assert sock.sock.recv(100) == b"READY=1\nSTATUS=ok"
    finally:
        sock.close()


def test_watchdog_interval_is_only_for_the_named_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 3.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 3.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd.watchdog_interval() is None


if __name__ == "__main__":
    sys.exit(_supervisor_main(sys.argv[1], sys.argv[2]))
