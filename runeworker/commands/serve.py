"""`runeworker serve`: the prefork supervisor with its worker children and metrics endpoint."""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from runeworker import logs
from runeworker.config import load_config
from runeworker.errors import ConfigError

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
    from runeworker.adapters.redis_state import RedisStore
    from runeworker.child.worker import child_main
    from runeworker.supervisor.arbiter import Supervisor, SupervisorHooks

    probe = RedisStore.from_url(cfg.redis.url, socket_timeout=1.0)
    supervisor: Supervisor | None = None

    def ready() -> bool:
        return supervisor is not None and supervisor.ready_children() > 0 and probe.ping()

    server = None
    if cfg.metrics.listen:
        server = metrics.MetricsServer(
            cfg.metrics.listen,
            ready=ready,
            rss=lambda: supervisor.child_rss() if supervisor else {},
        )
        server.start()
        log.info("metrics on http://%s:%d/metrics", *server.address)
    hooks = SupervisorHooks(on_child_exit=_child_exited, ready_check=probe.ping)
    # one scheduler per supervisor: the child holding this lock fires the wait timers
    target = functools.partial(child_main, scheduler_lock=os.path.join(directory, "scheduler.lock"))
    supervisor = Supervisor(cfg, target, config_path=config_path, overrides=overrides, hooks=hooks)
    try:
        return supervisor.run()
    finally:
        if server is not None:
            server.stop()
        probe.close()


def _child_exited(pid: int, reason: str) -> None:
    from runeworker import metrics

    metrics.mark_dead(pid)
    metrics.child_restart(_restart_reason(reason))


def _restart_reason(reason: str) -> str:
    for known in ("timeout", "recycle", "memory", "reload", "scale"):
        if known in reason:
            return known
    return "crash"
