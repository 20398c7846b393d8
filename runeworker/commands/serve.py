"""`runeworker serve`: the prefork supervisor with its worker children and metrics endpoint."""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from runeworker import logs
from runeworker.config import Config, RedisConfig, load_config
from runeworker.errors import ConfigError, StateError

log = logging.getLogger("runeworker.serve")


def serve(config_path: str | None, overrides: Mapping[str, Any]) -> int:
    try:
        cfg = load_config(config_path, overrides=overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.logging.level, cfg.logging.format)
    # prometheus-client picks its multiprocess mode at first import: the directory first,
    # then the modules that import it (worker -> metrics), then fork.
    from runeworker import metrics

    directory = cfg.metrics.directory or tempfile.mkdtemp(prefix="runeworker-metrics-")
    try:
        metrics.prepare_directory(directory)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    metrics.prime()
    from runeworker.adapters.redis_state import RedisStore, redis_where
    from runeworker.child.worker import child_main
    from runeworker.supervisor.arbiter import Supervisor, SupervisorHooks

    # The Redis the serving children use, made on the first probe (a Cluster's client must
    # reach it). A reload that moves Redis moves the probe once the roll is done: until then
    # the children of the old config serve. The endpoint's threads and the main loop share it.
    probes: list[tuple[RedisConfig, RedisStore]] = []
    probe_lock = threading.Lock()

    def probed() -> RedisConfig:
        if supervisor is None:
            return cfg.redis
        if probes and supervisor.rolling():
            return probes[0][0]
        return supervisor.cfg.redis

    def redis_answers() -> bool:
        with probe_lock:
            wanted = probed()
            if probes and probes[0][0] != wanted:
                _close([probes.pop()[1]])
            if not probes:
                try:
                    probes.append((wanted, RedisStore.from_config(wanted, socket_timeout=1.0)))
                except StateError:
                    return False
            return probes[0][1].ping()

    supervisor: Supervisor | None = None

    def ready() -> tuple[bool, str]:
        if supervisor is None:
            return False, "starting"
        ok, why = supervisor.readiness()
        if ok and not redis_answers():
            return False, f"Redis at {redis_where(probed())} does not answer"
        return ok, why

    def endpoint(listen: str) -> metrics.MetricsServer:
        server = metrics.MetricsServer(
            listen,
            ready=ready,
            rss=lambda: supervisor.child_rss() if supervisor else {},
            children=lambda: supervisor.children_by_state() if supervisor else {},
        )
        server.start()
        log.info("metrics on http://%s:%d/metrics", *server.address)
        return server

    servers: list[metrics.MetricsServer] = []
    try:
        if cfg.metrics.listen:
            servers.append(endpoint(cfg.metrics.listen))
    except ConfigError as exc:  # e.g. the port is taken: one line, no traceback
        print(f"config error: {exc}", file=sys.stderr)
        return 2

    listening = [cfg.metrics.listen]  # what the endpoint serves: a failed move keeps the old

    def reloaded(old: Config, new: Config) -> None:
        """Apply what the supervisor process owns: logging, and the metrics endpoint."""
        if new.logging != old.logging:
            logs.setup(new.logging.level, new.logging.format)
        if new.metrics.listen != listening[0]:
            move_endpoint(new.metrics.listen)

    def move_endpoint(listen: str) -> None:
        """Serve on `listen` ("" = nowhere), else keep the endpoint where it is. The new one
        binds first; when the old one holds the port (127.0.0.1:9464 -> :9464) it is stopped
        first, and started again should the new one fail."""
        try:
            fresh = endpoint(listen) if listen else None
        except ConfigError as exc:
            if not (servers and _same_port(listening[0], listen)):
                log.error("reload: keeping the metrics endpoint on %s: %s", listening[0], exc)
                return
            while servers:
                servers.pop().stop()
            try:
                fresh = endpoint(listen)
            except ConfigError as again:
                log.error("reload: keeping the metrics endpoint on %s: %s", listening[0], again)
                try:
                    servers.append(endpoint(listening[0]))  # its port was ours a moment ago
                except ConfigError as lost:
                    log.error("reload: the metrics endpoint is gone: %s", lost)
                    listening[0] = ""
                return
        while servers:
            servers.pop().stop()
        if fresh is not None:
            servers.append(fresh)
        listening[0] = listen

    hooks = SupervisorHooks(
        on_child_exit=_child_exited, ready_check=redis_answers, on_reload=reloaded
    )
    # one scheduler per supervisor: the child holding this lock fires the wait timers
    target = functools.partial(child_main, scheduler_lock=os.path.join(directory, "scheduler.lock"))
    supervisor = Supervisor(cfg, target, config_path=config_path, overrides=overrides, hooks=hooks)
    try:
        return supervisor.run()
    finally:
        for server in servers:
            server.stop()
        _close([store for _, store in probes])


def _same_port(listen: str, other: str) -> bool:
    """Whether two `metrics.listen` values name one port (0, any free port, never does)."""
    from runeworker import metrics

    if not listen or not other:
        return False
    port = metrics.parse_listen(listen)[1]
    return port != 0 and port == metrics.parse_listen(other)[1]


def _close(probes: list[Any]) -> None:
    for probe in probes:
        probe.close()


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
