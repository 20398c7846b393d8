"""`runeworker serve`: the prefork supervisor with its worker children and metrics endpoint."""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runeworker import logs
from runeworker.config import Config, RedisConfig, load_config
from runeworker.errors import ConfigError, StateError

if TYPE_CHECKING:  # imported in `serve`, after the metrics directory is set
    from runeworker.adapters.redis_state import RedisStore
    from runeworker.metrics import MetricsServer
    from runeworker.supervisor.arbiter import Supervisor

log = logging.getLogger("runeworker.serve")


def serve(config_path: str | None, overrides: Mapping[str, Any]) -> int:
    try:
        cfg = load_config(config_path, overrides=overrides)
    except ConfigError as exc:  # one line per problem, as check-config prints them
        for problem in str(exc).splitlines():
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    logs.setup(cfg.logging.level, cfg.logging.format)
    # prometheus-client picks its multiprocess mode at first import: the directory first,
    # then the modules that import it (worker -> metrics), then fork.
    from runeworker import metrics

    directory = cfg.metrics.directory or tempfile.mkdtemp(prefix="runeworker-metrics-")
    try:
        directory = metrics.prepare_directory(directory)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    metrics.prime()
    from runeworker.adapters.redis_connect import redis_where
    from runeworker.child.worker import child_main
    from runeworker.supervisor.arbiter import Supervisor, SupervisorHooks

    probe = RedisProbe(cfg.redis)
    supervisor: Supervisor | None = None

    def ready() -> tuple[bool, str]:
        if supervisor is None:
            return False, "starting"
        ok, why = supervisor.readiness()
        if ok and not probe.answers(supervisor):
            return False, f"Redis at {redis_where(probe.wanted(supervisor))} does not answer"
        if ok and (refused := probe.write_problem()) is not None:  # full, read-only, paused
            return False, f"Redis at {redis_where(probe.wanted(supervisor))} {refused}"
        return ok, why

    endpoint = MetricsEndpoint(
        lambda listen: metrics.MetricsServer(
            listen,
            ready=ready,
            rss=lambda: supervisor.child_rss() if supervisor else {},
            children=lambda: supervisor.children_by_state() if supervisor else {},
        )
    )
    try:
        endpoint.start(cfg.metrics.listen)
    except ConfigError as exc:  # e.g. the port is taken: one line, no traceback
        print(f"config error: {exc}", file=sys.stderr)
        return 2

    def reloaded(old: Config, new: Config) -> None:
        """Apply what the supervisor process owns: logging, and the metrics endpoint."""
        if new.logging != old.logging:
            logs.setup(new.logging.level, new.logging.format)
        endpoint.move(new.metrics.listen)

    hooks = SupervisorHooks(
        on_child_exit=_child_exited,
        on_tick=MetricsDirectory(directory).keep,
        ready_check=lambda: supervisor is not None and probe.answers(supervisor),
        on_reload=reloaded,
    )
    # one scheduler per supervisor: the child holding this lock fires the wait timers
    target = functools.partial(child_main, scheduler_lock=os.path.join(directory, "scheduler.lock"))
    supervisor = Supervisor(cfg, target, config_path=config_path, overrides=overrides, hooks=hooks)
    try:
        return supervisor.run()
    finally:
        endpoint.stop()
        probe.close()


class RedisProbe:
    """`/readyz`'s and READY=1's look at the Redis the serving children use: a store made on
    the first probe (a Cluster's client must reach it). A reload that moves Redis moves the
    probe once the roll is done; until then the children of the old config serve. The
    endpoint's threads and the supervisor's loop share it."""

    def __init__(self, redis: RedisConfig) -> None:
        self._first = redis
        self._store: tuple[RedisConfig, RedisStore] | None = None
        self._lock = threading.Lock()

    def wanted(self, supervisor: Supervisor) -> RedisConfig:
        """The Redis to probe: the old config's while a roll is under way."""
        if self._store is not None and supervisor.rolling():
            return self._store[0]
        return supervisor.cfg.redis

    def answers(self, supervisor: Supervisor) -> bool:
        """Whether that Redis answers PING."""
        from runeworker.adapters.redis_state import RedisStore

        with self._lock:
            wanted = self.wanted(supervisor)
            if self._store is not None and self._store[0] != wanted:
                self._store[1].close()
                self._store = None
            if self._store is None:
                try:
                    self._store = (wanted, RedisStore.from_config(wanted, socket_timeout=1.0))
                except StateError:
                    return False
            return self._store[1].ping()

    def write_problem(self) -> str | None:
        """None when the Redis last probed takes a write, else why not (`RedisStore.
        write_problem`: PING answers on a full or read-only Redis)."""
        with self._lock:
            return None if self._store is None else self._store[1].write_problem()

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store[1].close()
                self._store = None


class MetricsEndpoint:
    """The metrics endpoint of `serve`, where `metrics.listen` says; a reload moves it."""

    def __init__(self, make: Callable[[str], MetricsServer]) -> None:
        self._make = make
        self._server: MetricsServer | None = None
        self.listen = ""  # where it serves ("" = nowhere); a failed move keeps the old

    def start(self, listen: str) -> None:
        """Serve on `listen` ("" = nowhere); ConfigError when it cannot bind."""
        if listen:
            self._server = self._started(listen)
        self.listen = listen

    def move(self, listen: str) -> None:
        """Serve on `listen` instead, else keep the endpoint where it is. The new one binds
        first; when the old one holds the port (127.0.0.1:9464 -> :9464) it is stopped first,
        and started again should the new one fail. A move that failed is tried again at the
        next reload."""
        if listen == self.listen:
            return
        try:
            fresh = self._started(listen) if listen else None
        except ConfigError as exc:
            if self._server is None or not _same_port(self.listen, listen):
                log.error("reload: keeping the metrics endpoint on %s: %s", self.listen, exc)
                return
            self.stop()
            try:
                fresh = self._started(listen)
            except ConfigError as again:
                log.error("reload: keeping the metrics endpoint on %s: %s", self.listen, again)
                try:
                    self._server = self._started(self.listen)  # its port was ours a moment ago
                except ConfigError as lost:
                    log.error("reload: the metrics endpoint is gone: %s", lost)
                    self.listen = ""
                return
        self.stop()
        self._server = fresh
        self.listen = listen

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def _started(self, listen: str) -> MetricsServer:
        server = self._make(listen)
        server.start()
        log.info("metrics on http://%s:%d/metrics", *server.address)
        return server


def _same_port(listen: str, other: str) -> bool:
    """Whether two `metrics.listen` values name one port (0, any free port, never does)."""
    from runeworker import metrics

    if not listen or not other:
        return False
    port = metrics.parse_listen(listen)[1]
    return port != 0 and port == metrics.parse_listen(other)[1]


class MetricsDirectory:
    """Creates the metrics directory again when it is gone (a `tmpfiles.d` cleaner, an
    operator's `rm -r`): the children write their samples and the scheduler lock there, and a
    child that cannot fails to boot. What the processes running then had counted went with it:
    `/metrics` counts from zero again (a counter reset to Prometheus) for the children spawned
    after, and shows the others' samples, and the supervisor's own, no more until a restart.
    Checked at every turn of the supervisor's loop (one stat)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._failing = False  # it could not be created: said once until it can

    def keep(self) -> None:
        if os.path.isdir(self.path):
            return
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
        except OSError as exc:
            if not self._failing:
                log.error(
                    "the metrics directory %s is gone and cannot be created: %s", self.path, exc
                )
            self._failing = True
            return
        self._failing = False
        log.error(
            "the metrics directory %s was deleted: created it again; the samples of the "
            "processes running now are lost (restart the service to count them again)",
            self.path,
        )


def _child_exited(pid: int, reason: str) -> None:
    from runeworker import metrics

    metrics.mark_dead(pid)
    restart = _restart_reason(reason)
    if restart is not None:
        metrics.child_restart(restart)


def _restart_reason(reason: str) -> str | None:
    """The `runeworker_child_restarts_total` reason of a reaped child; None for a child of a
    pool that is stopping (a drain, a stop-now kill), which nobody replaces."""
    if reason in ("drain", "stop"):
        return None
    for known in ("timeout", "recycle", "memory", "reload", "scale"):
        if known in reason:
            return known
    return "crash"
