"""Prometheus metrics of the worker pool (prometheus-client multiprocess mode) and the
supervisor's `/metrics`, `/healthz` and `/readyz` endpoint.

Every child writes its samples to memory-mapped files in one directory; the supervisor sums
them at scrape time. prometheus-client decides between in-memory and file-backed values once,
when it is first imported, from PROMETHEUS_MULTIPROC_DIR. The supervisor imports this module
before it knows the directory, so prometheus-client is imported here only on first use:
call `prepare_directory` first, then anything else, then fork.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from runeworker.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.metrics import MetricWrapperBase
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

ENV_VAR: Final = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_LISTEN: Final = "127.0.0.1:9464"

DELIVERY_OUTCOMES: Final = frozenset({"consumed", "acked", "rejected", "dead_lettered", "requeued"})
NODE_OUTCOMES: Final = frozenset({"success", "failed", "skipped"})
COMPLETION_STATUSES: Final = frozenset({"completed", "failed", "halted"})
RESTART_REASONS: Final = frozenset({"crash", "timeout", "recycle", "memory", "reload", "scale"})

NODE_DURATION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
)  # fmt: skip
COMMIT_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip

RSS_METRIC: Final = "runeworker_child_rss_bytes"
# Every family /metrics can expose (histograms add _bucket, _sum and _count samples).
METRIC_NAMES: Final = frozenset({
    "runeworker_deliveries_total", "runeworker_node_executions_total",
    "runeworker_node_duration_seconds", "runeworker_completions_total",
    "runeworker_inflight_nodes", "runeworker_child_restarts_total", "runeworker_commit_seconds",
    "runeworker_broker_reconnects_total", "runeworker_state_errors_total",
    "runeworker_messages_handled_total", RSS_METRIC,
})  # fmt: skip

# Queue names and node types come from config and messages; a flood of junk node types must
# not create unbounded series (each one is a record in every child's file), so the rest
# are counted under one label value.
MAX_LABEL_VALUES: Final = 200
OVERFLOW_LABEL: Final = "other"
_PROMETHEUS_FILES: Final = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


def prepare_directory(path: str) -> str:
    """Create `path` (or remove the previous run's sample files from it) and point
    PROMETHEUS_MULTIPROC_DIR at it. Call before anything imports prometheus_client.
    Returns the absolute path."""
    directory = os.path.abspath(path)
    if "prometheus_client.values" in sys.modules and os.environ.get(ENV_VAR) != directory:
        raise ConfigError(
            f"The metrics directory {directory} must be prepared before prometheus_client is "
            "imported; it was imported earlier, so children would keep their samples private."
        )
    if _current is not None:
        raise ConfigError("The metrics directory cannot be wiped after metrics were recorded.")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for pattern in _PROMETHEUS_FILES:
            for stale in Path(directory).glob(pattern):
                stale.unlink()
    except OSError as exc:
        raise ConfigError(
            f"The metrics directory {directory} cannot be prepared: {exc.strerror or exc}."
        ) from exc
    os.environ[ENV_VAR] = directory
    return directory


def mark_dead(pid: int) -> None:
    """Drop the live gauges of a reaped child (its counters keep counting in the totals)."""
    directory = os.environ.get(ENV_VAR)
    if not directory:
        raise ConfigError(f"mark_dead({pid}) needs {ENV_VAR}; call prepare_directory first.")
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Instruments:
    """The metric objects. The hot path goes through the helper functions below."""

    deliveries: Counter
    node_executions: Counter
    node_duration: Histogram
    completions: Counter
    inflight_nodes: Gauge
    child_restarts: Counter
    commit_seconds: Histogram
    broker_reconnects: Counter
    state_errors: Counter
    messages_handled: Counter


_lock = threading.Lock()
_current: Instruments | None = None


def instruments() -> Instruments:
    """The metric objects, created on first use."""
    global _current
    if _current is None:
        with _lock:  # the node thread and the connection thread may both come first
            if _current is None:
                _current = _build_instruments()
    return _current


def _build_instruments() -> Instruments:
    from prometheus_client import Counter, Gauge, Histogram

    return Instruments(
        Counter("runeworker_deliveries_total", "Deliveries by outcome.", ["queue", "outcome"]),
        Counter("runeworker_node_executions_total", "Node executions.", ["type", "outcome"]),
        Histogram(
            "runeworker_node_duration_seconds",
            "Node execution time (skipped nodes excluded).",
            ["type"],
            buckets=NODE_DURATION_BUCKETS,
        ),
        Counter("runeworker_completions_total", "Completions published.", ["status"]),
        Gauge("runeworker_inflight_nodes", "Nodes executing now.", multiprocess_mode="livesum"),
        Counter("runeworker_child_restarts_total", "Children replaced.", ["reason"]),
        Histogram("runeworker_commit_seconds", "AMQP tx_commit latency.", buckets=COMMIT_BUCKETS),
        Counter("runeworker_broker_reconnects_total", "Reconnections to RabbitMQ."),
        Counter("runeworker_state_errors_total", "Failed state store operations."),
        Counter("runeworker_messages_handled_total", "Deliveries a child finished."),
    )


_M = TypeVar("_M", bound="MetricWrapperBase")


class _Children(Generic[_M]):
    """Labelled children of one metric, cached so the hot path costs one dict lookup.

    `allowed` holds, per label, the closed set of values (a typo raises on first use), or
    None for a free-form label capped at MAX_LABEL_VALUES distinct values."""

    def __init__(
        self,
        select: Callable[[Instruments], _M],
        labels: tuple[str, ...],
        allowed: tuple[frozenset[str] | None, ...],
    ) -> None:
        self._select = select
        self._labels = labels
        self._allowed = allowed
        self._seen: tuple[set[str], ...] = tuple(set() for _ in labels)
        self._cache: dict[tuple[str, ...], _M] = {}

    def get(self, *values: str) -> _M:
        """The child for these label values."""
        child = self._cache.get(values)
        return child if child is not None else self._add(values)

    def _add(self, values: tuple[str, ...]) -> _M:
        label_values = [self._label(index, value) for index, value in enumerate(values)]
        child = self._select(instruments()).labels(*label_values)
        if len(self._cache) < 4 * MAX_LABEL_VALUES:  # junk keys beyond this stay uncached
            self._cache[values] = child
        return child

    def _label(self, index: int, value: str) -> str:
        allowed = self._allowed[index]
        if allowed is not None:
            if value not in allowed:
                raise ValueError(
                    f"{value!r} is not a valid {self._labels[index]} label; "
                    f"expected one of {', '.join(sorted(allowed))}."
                )
            return value
        seen = self._seen[index]
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return OVERFLOW_LABEL
        seen.add(value)
        return value


_deliveries = _Children(lambda m: m.deliveries, ("queue", "outcome"), (None, DELIVERY_OUTCOMES))
_node_executions = _Children(
    lambda m: m.node_executions, ("type", "outcome"), (None, NODE_OUTCOMES)
)
_node_duration = _Children(lambda m: m.node_duration, ("type",), (None,))
_completions = _Children(lambda m: m.completions, ("status",), (COMPLETION_STATUSES,))
_restarts = _Children(lambda m: m.child_restarts, ("reason",), (RESTART_REASONS,))


def delivery(queue: str, outcome: str) -> None:
    """Count a delivery outcome (consumed, acked, rejected, dead_lettered, requeued)."""
    _deliveries.get(queue, outcome).inc()


def node_done(type_: str, outcome: str, seconds: float) -> None:
    """Count a node execution; its duration is observed unless it was skipped."""
    _node_executions.get(type_, outcome).inc()
    if outcome != "skipped":
        _node_duration.get(type_).observe(seconds)


def completion(status: str) -> None:
    """Count a published completion (completed, failed, halted)."""
    _completions.get(status).inc()


def commit_observed(seconds: float) -> None:
    """Observe one AMQP transaction commit."""
    instruments().commit_seconds.observe(seconds)


def inflight(delta: int) -> None:
    """Add `delta` (+1 when a node starts, -1 when it ends) to the in-flight gauge."""
    instruments().inflight_nodes.inc(delta)


def child_restart(reason: str) -> None:
    """Count a child the supervisor replaced (crash, timeout, recycle, memory, reload, scale)."""
    _restarts.get(reason).inc()


def broker_reconnect() -> None:
    """Count a reconnection to RabbitMQ."""
    instruments().broker_reconnects.inc()


def state_error() -> None:
    """Count a failed state store operation."""
    instruments().state_errors.inc()


def message_handled() -> None:
    """Count a delivery the child finished with (whatever the outcome)."""
    instruments().messages_handled.inc()


def prime(queues: Iterable[str] = (), node_types: Iterable[str] = ()) -> None:
    """Create the labelled series at zero, so `increase()` sees their first event (a series
    born at 1 has no earlier sample to compare with). Children call it with their queue and
    the registered node types; the supervisor calls it with no arguments."""
    for queue in queues:
        for outcome in DELIVERY_OUTCOMES:
            _deliveries.get(queue, outcome)
    for type_ in node_types:
        _node_duration.get(type_)
        for outcome in NODE_OUTCOMES:
            _node_executions.get(type_, outcome)
    for status in COMPLETION_STATUSES:
        _completions.get(status)
    for reason in RESTART_REASONS:
        _restarts.get(reason)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port`, `[v6-host]:port` or `:port` (all interfaces) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not port.isdigit() or int(port) > 65535 or (":" in host and "[" not in listen):
        raise ConfigError(
            f"The metrics listen address {listen!r} is not host:port (e.g. {DEFAULT_LISTEN})."
        )
    return host, int(port)


class _RssCollector:
    """Supervisor-side gauge of each child's resident memory, read at scrape time."""

    def __init__(self, rss: Callable[[], dict[int, int]]) -> None:
        self._rss = rss

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            sizes = self._rss()
        except Exception:  # a failing probe must not cost the whole scrape
            log.exception("Reading the children's memory for /metrics failed.")
            return
        family = GaugeMetricFamily(RSS_METRIC, "Resident memory of each child.", labels=["pid"])
        for pid, size in sorted(sizes.items()):
            family.add_metric([str(pid)], size)
        yield family


Response = tuple[int, str, bytes]
_TEXT: Final = "text/plain; charset=utf-8"


class MetricsServer:
    """The supervisor's HTTP endpoint, served by a daemon thread."""

    def __init__(
        self,
        listen: str,
        *,
        ready: Callable[[], bool],
        rss: Callable[[], dict[int, int]] | None = None,
    ) -> None:
        self._listen = listen
        self._bind = parse_listen(listen)
        self._ready = ready
        self._registry = _scrape_registry(rss)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when `listen` asked for port 0."""
        if self._httpd is None:
            raise RuntimeError("The metrics server has no address before start().")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("The metrics server is already started.")
        server_class = _HTTPServer6 if ":" in self._bind[0] else _HTTPServer
        try:
            httpd = server_class(self._bind, _Handler)
        except OSError as exc:
            raise ConfigError(
                f"The metrics endpoint cannot listen on {self._listen}: {exc.strerror or exc}."
            ) from exc
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name="runeworker-metrics", daemon=True
        )
        self._thread.start()
        _servers.add(self)

    def stop(self) -> None:
        """Stop serving and close the socket; a no-op when not started."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        _servers.discard(self)
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join()

    def respond(self, path: str, accept: str = "") -> Response:
        """(status, content type, body) for a GET of `path`."""
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return self._scrape(accept)
        if path == "/healthz":
            return 200, _TEXT, b"ok"
        if path == "/readyz":
            return self._readiness()
        return 404, _TEXT, b"not found"

    def _scrape(self, accept: str) -> Response:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        try:
            return 200, content_type, encoder(self._registry)
        except Exception as exc:  # e.g. a truncated sample file: answer, keep serving
            log.exception("Collecting metrics failed.")
            return 500, _TEXT, f"collecting metrics failed: {exc}".encode()

    def _readiness(self) -> Response:
        try:
            is_ready = self._ready()
        except Exception as exc:  # the probe's failure is the answer
            log.warning("The readiness check failed: %s", exc)
            return 503, _TEXT, b"not ready"
        return (200, _TEXT, b"ready") if is_ready else (503, _TEXT, b"not ready")

    def _forget_after_fork(self) -> None:
        # A forked child must not keep the port open (a restarted supervisor could not bind
        # it) nor wait on a serve loop that only the parent runs.
        if self._httpd is not None:
            self._httpd.socket.close()
        self._httpd = self._thread = None


def _scrape_registry(rss: Callable[[], dict[int, int]] | None) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    try:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigError(
            f"{ENV_VAR} is not set to a directory; call prepare_directory before MetricsServer."
        ) from exc
    if rss is not None:
        registry.register(_RssCollector(rss))
    return registry


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: MetricsServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        status, content_type, body = self.server.app.respond(
            self.path, self.headers.get("Accept", "")
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics endpoint: " + format, *args)


_servers: weakref.WeakSet[MetricsServer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for server in list(_servers):
        server._forget_after_fork()
    _servers.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
