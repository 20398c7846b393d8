"""Real clustered servers on loopback for the cluster suite, each in a temporary directory of
its own with ports the kernel picked: a RabbitMQ cluster (`RabbitCluster`), a Redis master with
replicas watched by sentinels (`SentinelRedis`), and a Redis Cluster (`ClusterRedis`).

Every class starts its servers in its constructor and stops every one of them in `stop()`,
also when the constructor fails half-way; `servers()` is the context manager the tests use.
The machine has 2 cores shared with other work, so the counts are the smallest that show the
property: 3 RabbitMQ nodes (a quorum survives one loss), 1 Redis master + 2 replicas + 3
sentinels (a sentinel quorum of 2 survives one loss), 3 Redis Cluster masters.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import redis

from tests.faults.services import answers, free_port, wait_for

# One scheduler thread per Erlang VM and no busy-waiting: three nodes on two shared cores
ERL_ARGS = "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"


class Servers(Protocol):
    def stop(self) -> None: ...


@contextlib.contextmanager
def servers(make: type[Servers]) -> Iterator[Servers]:
    """`make()` started, and stopped whatever happens."""
    started = make()
    try:
        yield started
    finally:
        started.stop()


def _tail(path: Path, size: int = 2000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-size:]
    return ""


# -- RabbitMQ -----------------------------------------------------------------------------


class RabbitNode:
    """One `rabbitmq-server` with its own node name, ports, data and log directories. The
    server runs as the rabbitmq user (the Debian wrapper switches to it), so every node
    shares that user's Erlang cookie, as the nodes of a cluster must."""

    def __init__(self, name: str, base: Path) -> None:
        self.name = name
        self.port, self.dist = free_port(), free_port()
        self.dir = base / name.partition("@")[0]
        self.dir.mkdir()
        self.dir.chmod(0o777)
        conf = self.dir / "rabbitmq.conf"
        conf.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        conf.chmod(0o644)
        self.env = dict(os.environ)
        self.env.update(
            RABBITMQ_NODENAME=name,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq"),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.dir / "pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=ERL_ARGS,
        )
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the node (again: same name and directories, so it rejoins its cluster)."""
        with open(self.dir / "server.out", "ab") as out:
            self.proc = subprocess.Popen(
                ["rabbitmq-server"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            wait_for(self._up, f"RabbitMQ node {self.name}", 120, poll=0.2)
        except AssertionError:
            raise AssertionError(
                f"RabbitMQ node {self.name} did not start:\n{_tail(self.dir / 'server.out')}"
            ) from None
        self.ctl("await_startup", timeout=120)

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"rabbitmq-server {self.name} exited with {self.proc.returncode}")
        return answers(self.port)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        cmd = ["rabbitmqctl", "-q", "-n", self.name, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def kill(self) -> None:
        """SIGKILL the Erlang VM of the node (a crash, not a shutdown), then its wrapper. The
        VM is not in the wrapper's process group (the Debian wrapper starts it through `su`):
        its pid is the one the node writes to RABBITMQ_PID_FILE (read even when the wrapper
        is gone, so that `stop` never leaves a VM behind)."""
        pid_file = self.dir / "pid"
        with contextlib.suppress(OSError, ValueError):
            vm = int(pid_file.read_text().strip())
            pid_file.unlink()  # once dead, its number may go to another process
            os.kill(vm, signal.SIGKILL)
            wait_for(lambda: not _alive(vm), f"the VM of {self.name} to die", 30, poll=0.05)
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if self.proc is not None and self.proc.poll() is None:
                self.ctl("shutdown", timeout=30)
        self.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RabbitCluster:
    """Three RabbitMQ nodes `rw<id>a..c@localhost`; b and c `join_cluster` a."""

    SIZE = 3

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:6]
        self.base = Path(tempfile.mkdtemp(prefix="rwcluster-rabbit-"))
        self.base.chmod(0o777)
        self.nodes: list[RabbitNode] = []
        try:
            for letter in "abc"[: self.SIZE]:
                self.nodes.append(RabbitNode(f"rw{self.id}{letter}@localhost", self.base))
            first = self.nodes[0].name
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first)
                node.ctl("start_app")
            wait_for(self._formed, "the RabbitMQ cluster to form", 60, poll=0.5)
        except BaseException:
            self.stop()
            raise

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def running(self) -> list[str]:
        """The running nodes, as node a sees them."""
        out = self.nodes[0].ctl("eval", "rabbit_nodes:all_running().")
        return sorted(n.name for n in self.nodes if n.name in out)

    def _formed(self) -> bool:
        return len(self.running()) == self.SIZE

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# -- Redis ----------------------------------------------------------------------------------


class RedisProcess:
    """One redis-server (or sentinel) with its own port and directory."""

    def __init__(self, base: Path, name: str, *args: str, sentinel: bool = False) -> None:
        self.port = free_port()
        self.dir = base / name
        self.dir.mkdir()
        self.args = list(args)
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        common = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                  "--logfile", str(self.dir / "redis.log")]  # fmt: skip
        if self.sentinel:  # a sentinel rewrites its config file: it must be a real file
            conf = self.dir / "sentinel.conf"
            if not conf.exists():
                conf.write_text("\n".join(self.args) + "\n")
            cmd = ["redis-server", str(conf), "--sentinel", *common]
        else:
            cmd = ["redis-server", *common, "--save", "", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, f"redis-server on port {self.port}", 30, poll=0.05)

    def client(self, **kwargs: float) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2, **kwargs)

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = _tail(self.dir / "redis.log")
            raise AssertionError(f"redis on port {self.port} exited: {log}")
        client = self.client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        self.kill()


class SentinelRedis:
    """A master, two replicas and three sentinels (quorum 2) watching it as `rwmaster`."""

    SERVICE = "rwmaster"
    DOWN_AFTER_MS = 1000

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="rwcluster-sentinel-"))
        self.data: list[RedisProcess] = []
        self.sentinels: list[RedisProcess] = []
        try:
            # no 5 s wait for more replicas before the initial (diskless) sync starts
            master = RedisProcess(self.base, "master", "--repl-diskless-sync-delay", "0")
            self.data.append(master)
            for i in (1, 2):
                replica_of = ["--replicaof", "127.0.0.1", str(master.port)]
                self.data.append(RedisProcess(self.base, f"replica{i}", *replica_of))
            wait_for(self._replicas_online, "both replicas in sync", 30, poll=0.1)
            conf = [
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {master.port} 2",
                f"sentinel down-after-milliseconds {self.SERVICE} {self.DOWN_AFTER_MS}",
                f"sentinel failover-timeout {self.SERVICE} 10000",
                f"sentinel parallel-syncs {self.SERVICE} 1",
            ]
            for i in (1, 2, 3):
                self.sentinels.append(RedisProcess(self.base, f"sentinel{i}", *conf, sentinel=True))
            wait_for(self._sentinels_agree, "the sentinels to see each other", 30, poll=0.2)
        except BaseException:
            self.stop()
            raise

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.sentinels]

    def master_port(self) -> int:
        """The master's port as the first answering sentinel names it."""
        for s in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                client = s.client()
                try:
                    _host, port = client.sentinel_get_master_addr_by_name(self.SERVICE)
                    return int(port)
                finally:
                    client.close()
        raise AssertionError("no sentinel answers")

    def process_on(self, port: int) -> RedisProcess:
        return next(p for p in self.data if p.port == port)

    def _replicas_online(self) -> bool:
        """Both replicas have had the initial sync and stream the master's writes. The
        master counts a replica as connected while it still waits for that sync
        (`state=wait_bgsave`): a master killed then leaves replicas with nothing, and the
        failover would lose every write instead of the replication lag's worth."""
        info = self.data[0].client().info("replication")
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        if len(replicas) != 2 or any(r.get("state") != "online" for r in replicas):
            return False
        for replica in self.data[1:]:
            client = replica.client()
            try:
                if client.info("replication").get("master_link_status") != "up":
                    return False
            finally:
                client.close()
        return True

    def _sentinels_agree(self) -> bool:
        client = self.sentinels[0].client()
        try:
            state = client.sentinel_master(self.SERVICE)
        except redis.RedisError:
            return False
        finally:
            client.close()
        return int(state.get("num-other-sentinels", 0)) == 2

    def stop(self) -> None:
        for proc in [*self.sentinels, *self.data]:
            proc.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class ClusterRedis:
    """Three Redis Cluster masters (no replicas: the suite shows that every script keeps to
    one slot, not a cluster failover), created with `redis-cli --cluster create`."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="rwcluster-redis-"))
        self.nodes: list[RedisProcess] = []
        try:
            for i in (1, 2, 3):
                # the bus port defaults to port + 10000, past 65535 for a high free port
                args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000",
                        "--appendonly", "no"]  # fmt: skip
                self.nodes.append(RedisProcess(self.base, f"node{i}", *args))
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0",
                 "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            wait_for(self._ok, "cluster_state:ok on every node", 30, poll=0.2)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def _ok(self) -> bool:
        for node in self.nodes:
            client = node.client()
            try:
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
            finally:
                client.close()
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def wait_seconds(check: object, timeout: float) -> float:
    """How long `check()` took to become true (a measured figure, not an assertion)."""
    start = time.monotonic()
    wait_for(check, "the condition", timeout, poll=0.05)
    return time.monotonic() - start
