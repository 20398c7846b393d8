"""The services a fault scenario runs against, and the handles to break them.

`Rabbit` drives one RabbitMQ node through rabbitmqctl: the shared one (each scenario gets a
vhost of its own) or a private node started by `PrivateRabbit` for the broker stop/start,
which must not stop the broker every other test on the machine is using. `PrivateRedis` is a
redis-server of our own with an fsynced append-only file, so it can be killed -9 and
restarted without losing an acknowledged write (the shared Redis keeps nothing on disk).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import redis

from runeworker.adapters.amqp import COMPLETION_QUEUE, MIRROR_QUEUE, RESUME_QUEUE, STATUS_QUEUE
from runeworker.adapters.redis_state import RedisStore

SHARED_AMQP = os.environ.get("RUNEWORKER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
SHARED_REDIS = os.environ.get("RUNEWORKER_TEST_REDIS", "redis://127.0.0.1:6379/0")
EXECUTION_QUEUE = "workflow.execution"
DEAD_LETTER_QUEUE = "runeworker.dead-letter"
EXCHANGE = "workflows"
BOUND_QUEUES = (EXECUTION_QUEUE, RESUME_QUEUE, STATUS_QUEUE, COMPLETION_QUEUE, MIRROR_QUEUE)


def free_port() -> int:
    """A TCP port nothing uses right now, below the kernel's range of ephemeral ports: a server
    the scenarios stop and start again on it (a RabbitMQ node's listener, a Redis) gets it back.
    A port the kernel picks is from that range, and while its server is down any outgoing
    connection (a worker reconnecting, a Redis client) may take it as its local port: the
    restart then fails with EADDRINUSE (seen: `could_not_start_listener` at start_app)."""
    low = _ephemeral_low()
    for _ in range(500):
        port = random.randint(10_000, low - 1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port between 10000 and {low - 1}")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when unreadable)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, 11_000)


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def wait_for(check: Any, what: str, timeout: float, poll: float = 0.1) -> None:
    """Poll `check()` until it is true; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


class Rabbit:
    """rabbitmqctl against one node (None: the default node of this machine)."""

    def __init__(self, base_url: str = SHARED_AMQP, node: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.node = node

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        target = ["-n", self.node] if self.node else []
        cmd = ["rabbitmqctl", "-q", *target, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip() or done.stdout}")
        return done.stdout

    @contextlib.contextmanager
    def vhost(self) -> Any:
        """A fresh vhost for one scenario (guest may use it); yields its AMQP URL and deletes
        the vhost, with every queue and message in it, afterwards."""
        name = f"rwfaults-{uuid.uuid4().hex[:10]}"
        self.ctl("add_vhost", name)
        try:
            self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
            yield f"{self.base_url}/{quote(name, safe='')}"
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.ctl("delete_vhost", name)

    def queue_counts(self, vhost: str) -> dict[str, tuple[int, int]]:
        """name -> (messages ready, messages unacknowledged) of every queue of `vhost`."""
        out = self.ctl("list_queues", "-p", vhost, "name", "messages_ready",
                       "messages_unacknowledged", "--formatter", "json")  # fmt: skip
        rows = json.loads(out) if out.strip() else []
        return {r["name"]: (r["messages_ready"], r["messages_unacknowledged"]) for r in rows}

    def close_connections(self, vhost: str) -> None:
        """Close every client connection of `vhost` (the broker sends CONNECTION_FORCED)."""
        self.ctl("close_all_connections", "-p", vhost, "fault injected")

    def restart_app(self, down: float) -> None:
        """stop_app, `down` seconds without a broker, start_app: durable queues and
        persistent messages must survive."""
        self.ctl("stop_app")
        time.sleep(down)  # the length of the outage is the fault, not a wait for an event
        self.ctl("start_app")


class PrivateRabbit:
    """A RabbitMQ node of our own on free ports, in a temporary directory."""

    def __init__(self) -> None:
        self.port, dist = free_port(), free_port()
        self.node = f"rwfaults{uuid.uuid4().hex[:8]}@localhost"
        self.dir = Path(tempfile.mkdtemp(prefix="rwfaults-rabbit-"))
        self.dir.chmod(0o777)  # the server runs as the rabbitmq user
        conf = self.dir / "rabbitmq.conf"
        conf.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        conf.chmod(0o644)
        self.env = dict(os.environ)
        self.env.update(RABBITMQ_NODENAME=self.node, RABBITMQ_DIST_PORT=str(dist),
                        RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq"),
                        RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
                        RABBITMQ_LOG_BASE=str(self.dir / "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
                        RABBITMQ_PID_FILE=str(self.dir / "pid"))  # fmt: skip
        self._log = open(self.dir / "server.out", "ab")  # noqa: SIM115 (closed in stop())
        self.rabbit = Rabbit(f"amqp://guest:guest@127.0.0.1:{self.port}", self.node)
        self._start()

    def _start(self) -> None:
        """rabbitmq-server on this node's ports and directories; returns once it answers."""
        self.proc = subprocess.Popen(["rabbitmq-server"], env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            wait_for(self._up, f"the private RabbitMQ node {self.node}", 90, poll=0.2)
        except AssertionError:
            tail = (self.dir / "server.out").read_text(errors="replace")[-2000:]
            self.stop()
            raise AssertionError(f"the private RabbitMQ node did not start:\n{tail}") from None

    def _beams(self) -> list[psutil.Process]:
        """The node's Erlang VM: the server runs as the rabbitmq user in a session of its own
        (`su`), so it is found among the descendants of the process started here."""
        beams = [p for p in psutil.Process(self.proc.pid).children(recursive=True)
                 if p.name() == "beam.smp"]  # fmt: skip
        if not beams:
            raise AssertionError(f"no beam.smp process of the node {self.node}")
        return beams

    def crash_and_restart(self, down: float) -> None:
        """kill -9 of the node's Erlang VM, `down` seconds without a broker, then the node
        again on the same directories: what a transaction committed (persistent messages in
        durable queues) must be there, what it had not must not."""
        for beam in self._beams():
            beam.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        time.sleep(down)  # the length of the outage is the fault
        self._start()

    def stall(self, seconds: float) -> None:
        """SIGSTOP of the node's Erlang VM for `seconds`, then SIGCONT: a broker that hangs
        (a VM paused, a partition) while what its clients sent waits unread in its sockets."""
        beams = self._beams()
        for beam in beams:
            beam.suspend()
        try:
            time.sleep(seconds)  # the length of the stall is the fault
        finally:
            for beam in beams:
                beam.resume()

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"rabbitmq-server exited with {self.proc.returncode}")
        return answers(self.port)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.rabbit.ctl("shutdown", timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """redis-server on a free port, every write fsynced to its append-only file. `args`: more
    redis-server options (e.g. `--enable-debug-command yes`, a `--maxmemory-policy`)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rwfaults-redis-"))
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
               "--appendonly", "yes", "--appendfsync", "always", "--save", "",
               "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"),
               *self.args]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, f"redis-server on port {self.port}", 30, poll=0.05)
        return proc

    def _ping(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False  # not listening yet, or still loading the append-only file
        finally:
            client.close()

    def crash_and_restart(self, down: float) -> None:
        """kill -9, `down` seconds without Redis, then the same port and directory again."""
        self.proc.kill()
        self.proc.wait(10)
        time.sleep(down)  # the length of the outage is the fault
        self.proc = self._start()

    def stall(self, seconds: float) -> None:
        """SIGSTOP for `seconds`, then SIGCONT: a Redis that hangs (a fork on a huge dataset,
        a swapped-out host, a partition) while its clients' commands sit unread in its socket
        buffers, and are run once it resumes, after their clients gave up on them."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)  # the length of the stall is the fault
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key under `prefix` (the scenario's keys on a shared Redis)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    finally:
        client.close()


def open_executions(url: str, prefix: str, execution_ids: list[str]) -> int:
    """How many of the executions still have live branch tokens in Redis (a closed
    execution's live set is empty, and Redis drops empty sets)."""
    store = RedisStore.from_url(url, prefix=prefix)
    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for eid in execution_ids:
            pipe.exists(store.keys_of(eid)[0])  # the live set comes first
        return sum(int(n) for n in pipe.execute())
    finally:
        client.close()
        store.close()
