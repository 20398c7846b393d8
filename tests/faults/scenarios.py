"""The fault scenarios: what each one breaks, when, and how often.

Faults are placed by progress (the fraction of planned success/failed statuses seen), so they
land mid-run whatever the speed of the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .figures import Figures
from .harness import Run, run_scenario
from .services import wait_for
from .workflows import mix, spinners

KILL_INTERVAL = 0.2  # seconds between two SIGKILLs
KILL_MIN_AGE = 0.5  # seconds a child has been seen consuming before it may be killed
GRACEFUL = 10.0


def _kill_children(run: Run) -> None:
    """SIGKILL a random consuming child every ~200 ms until every completion is in.

    Only children seen consuming for at least KILL_MIN_AGE are victims. On a slow machine a
    child takes 300-450 ms from fork to consuming; a killer that may pick a child 20 ms after
    its first delivery kills the handling of the message at the head of the queue again and
    again, until the worker rightly counts it as poison (`broker.max_deliveries`); at 150 ms
    that still happened on a machine loaded by other test runs, hence 500 ms. A child
    that dies on every message looks the same from inside: see README "Guarantees"."""
    deadline = time.monotonic() + 240
    first_seen: dict[int, float] = {}
    while not run.finished() and time.monotonic() < deadline:
        time.sleep(KILL_INTERVAL)  # the interval is the fault rate, not a wait
        now, consuming = time.monotonic(), run.fleet.workers()
        for pid in consuming:
            first_seen.setdefault(pid, now)
        victims = [pid for pid in consuming if now - first_seen[pid] >= KILL_MIN_AGE]
        if victims:
            victim = run.random.choice(victims)
            os.kill(victim, signal.SIGKILL)
            run.fault(f"SIGKILL child {victim}")


def _stop_a_child(run: Run) -> str:
    """SIGSTOP of a random consuming child, left stopped: a process the OS froze (a debugger,
    a cgroup freezer, a swapped-out page it waits for) beats no more, and the supervisor must
    kill it after `worker.timeout` and fork another; the deliveries it held come back from
    RabbitMQ once its connection closes."""
    victims = run.fleet.workers()
    if not victims:
        raise AssertionError("no consuming child to stop")
    victim = run.random.choice(victims)
    os.kill(victim, signal.SIGSTOP)
    wait_for(lambda: victim not in run.fleet.workers(),
             f"the supervisor killing the stopped child {victim}",
             4 * CHILD_STALL_TIMEOUT)  # fmt: skip
    return f"SIGSTOP child {victim}, killed by the supervisor"


def _at(fractions: tuple[float, ...], act: Callable[[Run], str]) -> Callable[[Run], None]:
    """An injector that does `act` once the run reaches each fraction of its progress."""

    def inject(run: Run) -> None:
        for fraction in fractions:
            run.wait_progress(fraction, timeout=120)
            if run.finished():
                return
            run.fault(f"{act(run)} at {run.progress():.0%}")

    return inject


def _close_connections(run: Run) -> str:
    run.setup.rabbit.close_connections(run.setup.vhost)
    return "close_all_connections"


def _restart_broker(run: Run) -> str:
    run.setup.rabbit.restart_app(down=1.0)
    return "stop_app + start_app"


def _crash_broker(run: Run) -> str:
    server = run.setup.private_rabbit
    assert server is not None
    server.crash_and_restart(down=1.0)
    return "RabbitMQ kill -9 + restart"


def _restart_redis(run: Run) -> str:
    server = run.setup.private_redis
    assert server is not None
    server.crash_and_restart(down=0.5)
    return "Redis kill -9 + restart"


def _stall_redis(run: Run) -> str:
    server = run.setup.private_redis
    assert server is not None
    server.stall(REDIS_STALL)
    return f"Redis SIGSTOP {REDIS_STALL:g} s + SIGCONT"


def _stall_broker(run: Run) -> str:
    server = run.setup.private_rabbit
    assert server is not None
    server.stall(BROKER_STALL)
    return f"RabbitMQ SIGSTOP {BROKER_STALL:g} s + SIGCONT"


def _sigterm(run: Run) -> str:
    code = run.fleet.terminate(GRACEFUL + 5)
    if code != 0:
        raise AssertionError(f"serve exited with {code} on SIGTERM (expected a drain, 0)")
    fleet = run.start_fleet()
    # the next SIGTERM is for a serve under load: before its children consume it would stop
    # one with nothing to drain (tests/e2e/test_serve.py sends one while serve starts)
    wait_for(lambda: bool(fleet.workers()), "the fresh serve's children consuming", 60)
    return "serve SIGTERM + fresh serve"


def _count_timeout_kills(run: Run) -> None:
    """The hung nodes are the faults: wait for the end, then count the supervisor's kills
    of children that stopped heartbeating, from its log."""
    with contextlib.suppress(AssertionError):  # missing completions are a figure
        wait_for(run.finished, "every completion", 120, poll=0.05)
    for line in re.findall(r"child \d+ \(\w+\): no heartbeat for .*", run.fleet.log()):
        run.fault(line)


@dataclass(frozen=True)
class Scenario:
    """A named fault scenario; `run(workflows)` gives its figures. A run that injected fewer
    than `min_faults` faults proves too little (the workload ended first)."""

    name: str
    description: str
    runner: Callable[[int], Figures]
    min_faults: int

    def run(self, workflows: int) -> Figures:
        figures = self.runner(workflows)
        figures.min_faults = self.min_faults
        return figures


CLOSE_AT = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55)
BROKER_RESTART_AT = (0.2, 0.5)
BROKER_CRASH_AT = (0.2, 0.5)
REDIS_RESTART_AT = (0.2, 0.4, 0.6)
SIGTERM_AT = (0.25, 0.55)
# a Redis stall outlasts the clients' socket timeout (the scenario's redis.socket_timeout):
# commands sent before it time out on the client and run once Redis resumes
REDIS_STALL_AT = (0.2, 0.45, 0.7)
REDIS_STALL = 3.0
REDIS_STALL_TIMEOUT = 1.0
# a broker stall outlasts the heartbeat timeout (the scenario's broker.heartbeat): the
# children drop their connections in the middle of commits, whose outcome is then unknown
# (RabbitMQ may still read and apply what was sent once it resumes): they are published again
# (the collector counts a copy of the same bytes as repeated, not as a duplicate)
BROKER_STALL_AT = (0.1, 0.3)
BROKER_STALL = 15.0
BROKER_STALL_HEARTBEAT = 2
# a child stopped by the OS is killed after worker.timeout (the scenario's, in seconds)
CHILD_STALL_AT = (0.15, 0.35, 0.55)
CHILD_STALL_TIMEOUT = 3.0
HUNG = 2  # spinning executions in the `hung` scenario
MAX_DELIVERIES = 2


def kill(workflows: int) -> Figures:
    # three times the workload: a child may only be killed after 500 ms of consuming, and at
    # least five kills must land before the workers finish
    return run_scenario("kill", mix(3 * workflows), _kill_children)


def connections(workflows: int) -> Figures:
    # five times the workload: each close_all_connections is a rabbitmqctl run (about 1 s on
    # the 2-core VM, more when the machine is loaded), and six of them must land before the
    # workers finish (twice was too little once the engine got faster, and four times too
    # little late in a loaded CI run: 5 of 6 faults before the end)
    return run_scenario("connections", mix(5 * workflows), _at(CLOSE_AT, _close_connections))


def broker_restart(workflows: int) -> Figures:
    # three times the workload: a restart takes about 4 s of rabbitmqctl, and once barrier
    # arrivals took one Redis call the whole mix finished during the first one (1 of 2 faults)
    inject = _at(BROKER_RESTART_AT, _restart_broker)
    return run_scenario("broker-restart", mix(3 * workflows), inject, private_rabbit=True)


def broker_crash(workflows: int) -> Figures:
    # three times the workload, as broker-restart: a node's start takes seconds
    inject = _at(BROKER_CRASH_AT, _crash_broker)
    return run_scenario("broker-crash", mix(3 * workflows), inject, private_rabbit=True)


def redis_restart(workflows: int) -> Figures:
    inject = _at(REDIS_RESTART_AT, _restart_redis)
    return run_scenario("redis-restart", mix(workflows), inject, private_redis=True)


def redis_stall(workflows: int) -> Figures:
    inject = _at(REDIS_STALL_AT, _stall_redis)
    config: dict[str, dict[str, Any]] = {"redis": {"socket_timeout": REDIS_STALL_TIMEOUT}}
    return run_scenario("redis-stall", mix(2 * workflows), inject, config=config,
                        private_redis=True)  # fmt: skip


def broker_stall(workflows: int) -> Figures:
    inject = _at(BROKER_STALL_AT, _stall_broker)
    config: dict[str, dict[str, Any]] = {"broker": {"heartbeat": BROKER_STALL_HEARTBEAT}}
    return run_scenario("broker-stall", mix(6 * workflows), inject, config=config,
                        private_rabbit=True)  # fmt: skip


def sigterm(workflows: int) -> Figures:
    return run_scenario("sigterm", mix(workflows), _at(SIGTERM_AT, _sigterm))


def child_stall(workflows: int) -> Figures:
    # five times the workload: each stall lasts worker.timeout and more before the next
    inject = _at(CHILD_STALL_AT, _stop_a_child)
    config: dict[str, dict[str, Any]] = {"worker": {"timeout": CHILD_STALL_TIMEOUT}}
    return run_scenario("child-stall", mix(5 * workflows), inject, config=config)


def hung(workflows: int) -> Figures:
    """Spinning executions among the mix, worker.timeout 3 s, max_deliveries 2: each spinner
    is killed twice by the supervisor, then dead-lettered with a failed completion."""
    plan = mix(workflows)
    for i, spinner in enumerate(spinners(HUNG)):
        plan.insert(i * len(plan) // HUNG, spinner)
    config: dict[str, dict[str, Any]] = {
        "worker": {"timeout": 3.0},
        "broker": {"max_deliveries": MAX_DELIVERIES},
    }
    return run_scenario("hung", plan, _count_timeout_kills, config=config, expected_dead=HUNG)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("kill", "SIGKILL of a random worker child every ~200 ms", kill, 5),
        Scenario("connections", f"rabbitmqctl close_all_connections -p VHOST, "
                 f"{len(CLOSE_AT)} times", connections, len(CLOSE_AT)),
        Scenario("broker-restart", f"rabbitmqctl stop_app + start_app, {len(BROKER_RESTART_AT)}"
                 " times (private node)", broker_restart, len(BROKER_RESTART_AT)),
        Scenario("broker-crash", f"RabbitMQ kill -9 of its Erlang VM + restart, "
                 f"{len(BROKER_CRASH_AT)} times (private node)", broker_crash,
                 len(BROKER_CRASH_AT)),
        Scenario("redis-restart", f"Redis (fsynced AOF) kill -9 + restart, "
                 f"{len(REDIS_RESTART_AT)} times", redis_restart, len(REDIS_RESTART_AT)),
        Scenario("redis-stall", f"Redis SIGSTOP {REDIS_STALL:g} s + SIGCONT (socket timeout "
                 f"{REDIS_STALL_TIMEOUT:g} s), {len(REDIS_STALL_AT)} times", redis_stall,
                 len(REDIS_STALL_AT)),
        Scenario("broker-stall", f"RabbitMQ SIGSTOP {BROKER_STALL:g} s + SIGCONT (heartbeat "
                 f"{BROKER_STALL_HEARTBEAT} s, private node), {len(BROKER_STALL_AT)} times",
                 broker_stall, len(BROKER_STALL_AT)),
        Scenario("sigterm", f"supervisor SIGTERM mid-run + a fresh serve, {len(SIGTERM_AT)} "
                 "times", sigterm, len(SIGTERM_AT)),
        Scenario("child-stall", f"SIGSTOP of a random worker child, left stopped (worker.timeout "
                 f"{CHILD_STALL_TIMEOUT:g} s), {len(CHILD_STALL_AT)} times", child_stall,
                 len(CHILD_STALL_AT)),
        Scenario("hung", f"{HUNG} nodes that never return: killed twice each, then poison",
                 hung, HUNG * MAX_DELIVERIES),
    )
}  # fmt: skip
