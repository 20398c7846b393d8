"""Prometheus metrics of the worker pool and the supervisor's /metrics, /healthz, /readyz.

prometheus-client multiprocess mode: each child writes its samples to memory-mapped files in
one directory and the supervisor sums them at scrape time. The client picks in-memory or
file-backed values once, at its first import, from PROMETHEUS_MULTIPROC_DIR; so this module
imports it only on first use. Order: `prepare_directory`, then anything else, then fork.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

from runeworker.errors import ConfigError
from runeworker.metrics import tally

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from prometheus_client.metrics import MetricWrapperBase
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

ENV_VAR: Final = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_LISTEN: Final = "127.0.0.1:9464"

DELIVERY_OUTCOMES: Final = frozenset(
    {"consumed", "acked", "duplicate", "rejected", "dead_lettered", "requeued"}
)
NODE_OUTCOMES: Final = frozenset({"success", "failed", "handled", "skipped"})
COMPLETION_STATUSES: Final = frozenset({"completed", "failed", "halted"})
RESTART_REASONS: Final = frozenset({"crash", "timeout", "recycle", "memory", "reload", "scale"})
DOUBT_EVENTS: Final = frozenset({"doubted", "resent", "handed_over", "adopted"})
# what a step (or the timer scheduler) found missing of an execution's state in Redis
# (runeworker.errors.StateLost; `timer`: a due timer whose resume message is gone)
LOST_STATES: Final = frozenset({"execution", "branches", "barrier", "timer"})
LLM_PROVIDERS: Final = frozenset({"gemini", "openai", "anthropic"})
LLM_OUTCOMES: Final = frozenset({"success", "error"})
LLM_TOKEN_KINDS: Final = frozenset({"prompt", "completion"})

NODE_DURATION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
)  # fmt: skip
COMMIT_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip

LLM_BUCKETS: Final = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)

RSS_METRIC: Final = "runeworker_child_rss_bytes"
CHILDREN_METRIC: Final = "runeworker_children"  # live children by state, read at scrape
# Queue names and node types come from config and messages: junk node types must not create
# unbounded series (each is a record in every child's file); past the cap a value reads "other".
MAX_LABEL_VALUES: Final = 200
OVERFLOW_LABEL: Final = "other"
# A free-form value longer than this reads "other" too, and is not kept: a message may name a node
# type of any length, and every value is kept in memory and in each child's sample file, and read
# at every scrape (200 values of 64 KB: 13 MB per child and per scrape).
MAX_LABEL_CHARS: Final = 128
_PROMETHEUS_FILES: Final = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


def prepare_directory(path: str) -> str:
    """Create `path` or remove the previous run's sample files from it, point
    PROMETHEUS_MULTIPROC_DIR at it and return it (absolute). Call before any other use. The
    directory is this process's from then on (`SUPERVISOR_LOCK`): ConfigError when another
    live supervisor holds it."""
    directory = os.path.abspath(path)
    if "prometheus_client.values" in sys.modules and os.environ.get(ENV_VAR) != directory:
        raise ConfigError(
            f"The metrics directory {directory} must be prepared before prometheus_client is "
            "imported; it was imported earlier, so children would keep their samples private."
        )
    # Wiping after metrics exist would delete this process's own open sample files.
    if any(family._metric is not None for family in FAMILIES):
        raise ConfigError("The metrics directory cannot be wiped after metrics were recorded.")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ConfigError(f"The metrics directory {directory} is a file, not a directory.")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        _claim(directory)  # before the wipe: another supervisor's children write there
        for stale in itertools.chain(*(Path(directory).glob(p) for p in _PROMETHEUS_FILES)):
            stale.unlink()
    except OSError as exc:
        raise ConfigError(
            f"The metrics directory {directory} cannot be prepared: {exc.strerror or exc}."
        ) from exc
    os.environ[ENV_VAR] = directory
    return directory


# A supervisor holds an exclusive flock on this file of its metrics directory for its life, so
# that a second `serve` given the same `metrics.directory` (an operator trying the config by
# hand beside the service) refuses it instead of wiping the sample files of the children
# serving there. Forked children close their copy: the lock is the supervisor's alone.
SUPERVISOR_LOCK: Final = "supervisor.lock"
_claimed: dict[str, int] = {}  # directory -> the open lock file, for the life of the process


def _claim(directory: str) -> None:
    """Lock `directory` for this process (again: a no-op); ConfigError when another holds it."""
    if directory in _claimed:
        return
    fd = os.open(os.path.join(directory, SUPERVISOR_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise ConfigError(
            f"The metrics directory {directory} is in use by another runeworker serve{pid}: "
            "give each supervisor a metrics.directory of its own."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _claimed[directory] = fd


def _release_in_child() -> None:
    for fd in _claimed.values():
        os.close(fd)  # the parent's descriptor keeps the lock
    _claimed.clear()


os.register_at_fork(after_in_child=_release_in_child)


def mark_dead(pid: int) -> None:
    """Drop the live gauges of a reaped child, and fold its counters and histograms into the
    directory's archive files (`counter_archive.db`, `histogram_archive.db`): its counts keep
    counting in the totals, and the directory holds the files of the live processes plus two,
    however many children a long-running supervisor has reaped (one pair of files per dead
    child cost 270 KB of the directory's tmpfs and 6 ms of every scrape). A scrape
    (`MetricsServer`) waits for a fold, so it never sees a child's samples twice or not at all."""
    directory = os.environ.get(ENV_VAR)
    if not directory:
        raise ConfigError(f"mark_dead({pid}) needs {ENV_VAR}; call prepare_directory first.")
    from prometheus_client import multiprocess

    with _files_lock:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        for kind in ("counter", "histogram"):
            _fold(os.path.join(directory, f"{kind}_{pid}.db"), kind, directory)


def _fold(dead: str, kind: str, directory: str) -> None:
    """Add the samples of a reaped process's file to its kind's archive file, then remove it."""
    from prometheus_client.mmap_dict import MmapedDict

    try:
        samples = list(MmapedDict.read_all_values_from_file(dead))  # type: ignore[no-untyped-call]
    except FileNotFoundError:
        return  # it wrote no sample of this kind (or the directory was deleted)
    except (OSError, RuntimeError) as exc:  # a truncated file: leave it to the scrape
        log.warning("The samples of %s cannot be archived: %s", dead, exc)
        return
    try:
        archive = MmapedDict(os.path.join(directory, f"{kind}_{ARCHIVE}.db"))  # type: ignore[no-untyped-call]
        try:
            for key, value, timestamp, _pos in samples:
                current = archive.read_value(key)  # type: ignore[no-untyped-call]
                total = current[0] if isinstance(current, tuple) else current
                archive.write_value(key, total + value, timestamp)  # type: ignore[no-untyped-call]
        finally:
            archive.close()  # type: ignore[no-untyped-call]
        os.unlink(dead)
    except OSError as exc:  # the directory deleted meanwhile: nothing left to keep
        log.warning("The samples of %s cannot be archived: %s", dead, exc)


_M = TypeVar("_M", bound="MetricWrapperBase")
_Label = tuple[str, frozenset[str] | None]
_lock = threading.Lock()
ARCHIVE: Final = "archive"  # the pid part of the files holding the samples of reaped children
_files_lock = threading.Lock()  # a fold into the archive files, or a scrape reading them


class Family(Generic[_M]):
    """One metric, created on first use (so after prepare_directory), with its labelled
    children cached so the hot path costs one dict lookup. Each label has a closed set of
    values (a typo raises on first use) or None: free-form, capped at MAX_LABEL_VALUES."""

    def __init__(self, kind: str, name: str, doc: str, *labels: _Label, **options: Any) -> None:
        self.name = name
        self._spec = (kind, doc, options)
        self._labels = labels
        self._metric: _M | None = None
        self._seen = tuple(set[str]() for _ in labels)
        self._cache: dict[tuple[str, ...], _M] = {}

    @property
    def metric(self) -> _M:
        """The prometheus_client metric object (the parent of the labelled children)."""
        with _lock:  # only on a cache miss; the node and connection threads may race here
            if self._metric is None:
                self._metric = self._create()
            return self._metric

    def get(self, *values: str) -> _M:
        """The child for these label values (the metric itself when it has no labels)."""
        child = self._cache.get(values)
        return child if child is not None else self._add(values)

    def _create(self) -> _M:
        import prometheus_client

        kind, doc, options = self._spec
        names = [label for label, _ in self._labels]
        return cast(_M, getattr(prometheus_client, kind)(self.name, doc, names, **options))

    def _add(self, values: tuple[str, ...]) -> _M:
        checked = [self._check(index, value) for index, value in enumerate(values)]
        child = self.metric.labels(*checked) if checked else self.metric
        # junk keys beyond this stay uncached, and so do long values (they read "other")
        if len(self._cache) < 4 * MAX_LABEL_VALUES and checked == list(values):
            self._cache[values] = child
        return child

    def _check(self, index: int, value: str) -> str:
        label, allowed = self._labels[index]
        if allowed is not None:
            if value not in allowed:
                choices = ", ".join(sorted(allowed))
                raise ValueError(f"{value!r} is not a valid {label}; expected one of {choices}.")
            return value
        seen = self._seen[index]
        if value not in seen:
            if len(seen) >= MAX_LABEL_VALUES or len(value) > MAX_LABEL_CHARS:
                return OVERFLOW_LABEL
            seen.add(value)
        return value


_QUEUE: Final[_Label] = ("queue", None)
_TYPE: Final[_Label] = ("type", None)

DELIVERIES: Family[Counter] = Family(
    "Counter", "runeworker_deliveries_total", "Deliveries.", _QUEUE, ("outcome", DELIVERY_OUTCOMES)
)
NODE_EXECUTIONS: Family[Counter] = Family(
    "Counter", "runeworker_node_executions_total", "Nodes run.", _TYPE, ("outcome", NODE_OUTCOMES)
)
NODE_DURATION: Family[Histogram] = Family(
    "Histogram", "runeworker_node_duration_seconds", "Node execution time (skipped excluded).",
    _TYPE, buckets=NODE_DURATION_BUCKETS,
)  # fmt: skip
COMPLETIONS: Family[Counter] = Family(
    "Counter", "runeworker_completions_total", "Completions.", ("status", COMPLETION_STATUSES)
)
INFLIGHT_NODES: Family[Gauge] = Family(
    "Gauge", "runeworker_inflight_nodes", "Nodes executing now.", multiprocess_mode="livesum"
)
CHILD_RESTARTS: Family[Counter] = Family(
    "Counter", "runeworker_child_restarts_total", "Children replaced.", ("reason", RESTART_REASONS)
)
COMMIT_SECONDS: Family[Histogram] = Family(
    "Histogram", "runeworker_commit_seconds", "AMQP tx_commit latency.", buckets=COMMIT_BUCKETS
)
BROKER_RECONNECTS: Family[Counter] = Family(
    "Counter", "runeworker_broker_reconnects_total", "Reconnections to RabbitMQ."
)
BROKER_BLOCKED: Family[Counter] = Family(
    "Counter", "runeworker_broker_blocked_total",
    "Times RabbitMQ blocked a child's publishes (connection.blocked: a memory or disk alarm).",
)  # fmt: skip
ACK_TIMEOUTS: Family[Counter] = Family(
    "Counter", "runeworker_ack_timeouts_total",
    "Channels RabbitMQ closed because a delivery stayed unacknowledged past consumer_timeout.",
)  # fmt: skip
STATE_ERRORS: Family[Counter] = Family(
    "Counter", "runeworker_state_errors_total", "Failed state store operations."
)
STATE_LOST: Family[Counter] = Family(
    "Counter", "runeworker_state_lost_total",
    "Messages whose execution's state was gone from Redis (evicted, expired, flushed), by what "
    "was missing; each failed its execution and was dead-lettered (a timer: its resume is lost).",
    ("what", LOST_STATES),
)  # fmt: skip
COMMITS_IN_DOUBT: Family[Counter] = Family(
    "Counter", "runeworker_commits_in_doubt_total",
    "Commits whose outcome was unknown, by what became of them.", ("event", DOUBT_EVENTS),
)  # fmt: skip
MESSAGES_HANDLED: Family[Counter] = Family(
    "Counter", "runeworker_messages_handled_total", "Deliveries the children took."
)
# The agent node's requests to LLM APIs (reported through NodeMeter); model names are free-form.
_LLM: Final[tuple[_Label, _Label]] = (("provider", LLM_PROVIDERS), ("model", None))
LLM_REQUESTS: Family[Counter] = Family(
    "Counter", "runeworker_llm_requests_total", "LLM requests of agent nodes.",
    *_LLM, ("outcome", LLM_OUTCOMES),
)  # fmt: skip
LLM_TOKENS: Family[Counter] = Family(
    "Counter", "runeworker_llm_tokens_total", "LLM tokens used by agent nodes.",
    *_LLM, ("kind", LLM_TOKEN_KINDS),
)  # fmt: skip
LLM_SECONDS: Family[Histogram] = Family(
    "Histogram", "runeworker_llm_request_seconds", "LLM request latency (retries included).",
    *_LLM, buckets=LLM_BUCKETS,
)  # fmt: skip
FAMILIES: Final[tuple[Family[Any], ...]] = (
    DELIVERIES, NODE_EXECUTIONS, NODE_DURATION, COMPLETIONS, INFLIGHT_NODES, CHILD_RESTARTS,
    COMMIT_SECONDS, BROKER_RECONNECTS, BROKER_BLOCKED, ACK_TIMEOUTS, STATE_ERRORS, STATE_LOST,
    COMMITS_IN_DOUBT, MESSAGES_HANDLED, LLM_REQUESTS, LLM_TOKENS, LLM_SECONDS,
)  # fmt: skip
# Every family /metrics can expose (histograms add _bucket, _sum and _count samples).
METRIC_NAMES: Final = frozenset(family.name for family in FAMILIES) | {RSS_METRIC, CHILDREN_METRIC}


def delivery(queue: str, outcome: str) -> None:
    """Count a delivery outcome (consumed, acked, duplicate, rejected, dead_lettered, requeued)."""
    tally.inc(DELIVERIES.get(queue, outcome))


def delivery_series(queue: str, outcome: str) -> tuple[Any, ...]:
    """The series a delivery outcome adds one to (`delivery`, and `message_handled` for a
    consumed one), for a subscriber that keeps them."""
    counted = DELIVERIES.get(queue, outcome)
    return (counted, MESSAGES_HANDLED.get()) if outcome == "consumed" else (counted,)


def node_done(type_: str, outcome: str, seconds: float) -> None:
    """Count a node execution; its duration is observed unless it was skipped."""
    counter, duration = node_series(type_, outcome)
    tally.inc(counter)
    if duration is not None:
        tally.observe(duration, seconds)


def node_series(type_: str, outcome: str) -> tuple[Any, Any]:
    """The node executions counter of (type, outcome) and the duration histogram a node of
    that outcome is observed in (None for a skipped one)."""
    duration = None if outcome == "skipped" else NODE_DURATION.get(type_)
    return NODE_EXECUTIONS.get(type_, outcome), duration


def completion(status: str) -> None:
    """Count a published completion (completed, failed, halted)."""
    tally.inc(COMPLETIONS.get(status))


def commit_observed(seconds: float) -> None:
    """Observe one AMQP transaction commit."""
    tally.observe(COMMIT_SECONDS.get(), seconds)


def inflight(delta: int) -> None:
    """Add `delta` (+1 when a node starts, -1 when it ends) to the in-flight gauge."""
    tally.inc(INFLIGHT_NODES.get(), delta)


def child_restart(reason: str) -> None:
    """Count a child the supervisor replaced (crash, timeout, recycle, memory, reload, scale)."""
    CHILD_RESTARTS.get(reason).inc()


def broker_reconnect() -> None:
    """Count a reconnection to RabbitMQ."""
    BROKER_RECONNECTS.get().inc()


def broker_blocked() -> None:
    """Count a block of a child's publishes by RabbitMQ (connection.blocked)."""
    BROKER_BLOCKED.get().inc()


def ack_timeout() -> None:
    """Count a channel RabbitMQ closed for a delivery unacknowledged past consumer_timeout."""
    ACK_TIMEOUTS.get().inc()


def state_error() -> None:
    """Count a failed state store operation."""
    STATE_ERRORS.get().inc()


def state_lost(what: str) -> None:
    """Count a message that found its execution's state lost (`LOST_STATES`)."""
    tally.inc(STATE_LOST.get(what))


def commit_in_doubt(event: str) -> None:
    """Count what became of a commit in doubt (doubted, resent, handed_over, adopted)."""
    COMMITS_IN_DOUBT.get(event).inc()


def message_handled() -> None:
    """Count a delivery the child finished with (whatever the outcome)."""
    tally.inc(MESSAGES_HANDLED.get())


class NodeMeter:
    """The `runeworker.engine.registry.Meter` of a worker child: what nodes measure themselves.
    Written at once, not through the tally: a blocking node reports from its own thread while
    the connection thread may flush, and LLM requests are few. A bad name or label is logged,
    never raised: a metric must not fail a node."""

    BY_NAME: Final[dict[str, Family[Any]]] = {
        "llm_requests": LLM_REQUESTS,
        "llm_tokens": LLM_TOKENS,
        "llm_request_seconds": LLM_SECONDS,
    }

    def count(self, name: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add `amount` to the counter `name`."""
        try:
            self.BY_NAME[name].get(*labels).inc(amount)
        except (KeyError, ValueError) as exc:
            log.warning("node metric %s%s not recorded: %s", name, labels, exc)

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        """Record one observation of the histogram `name`."""
        try:
            self.BY_NAME[name].get(*labels).observe(value)
        except (KeyError, ValueError) as exc:
            log.warning("node metric %s%s not recorded: %s", name, labels, exc)


def prime(queues: Iterable[str] = (), node_types: Iterable[str] = ()) -> None:
    """Create every metric, and the labelled series at zero, so `increase()` sees their first
    event (a series born at 1 has no earlier sample to compare with). Children pass their
    queue and the registered node types; the supervisor passes nothing."""
    for family in FAMILIES:
        family.metric  # noqa: B018 (creating it writes its zero sample)
    for queue, outcome in itertools.product(queues, DELIVERY_OUTCOMES):
        DELIVERIES.get(queue, outcome)
    for type_, outcome in itertools.product(node_types, NODE_OUTCOMES):
        NODE_EXECUTIONS.get(type_, outcome)
        NODE_DURATION.get(type_)
    for status in COMPLETION_STATUSES:
        COMPLETIONS.get(status)
    for reason in RESTART_REASONS:
        CHILD_RESTARTS.get(reason)
    for what in LOST_STATES:
        STATE_LOST.get(what)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port`, `[v6-host]:port` or `:port` (all interfaces) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    # an IPv6 address only in brackets, and brackets only around one
    odd = (":" in host and not bracketed) or "[" in host or "]" in host
    if not sep or not port.isdigit() or int(port) > 65535 or odd:
        raise ConfigError(
            f"The metrics listen address {listen!r} is not host:port (e.g. {DEFAULT_LISTEN})."
        )
    return host, int(port)


Response = tuple[int, str, bytes]
RssProbe = Callable[[], dict[int, int]]
ChildrenProbe = Callable[[], dict[str, int]]  # live children by state
ReadyProbe = Callable[[], "bool | tuple[bool, str]"]  # ready, or (ready, why not)
_TEXT: Final = "text/plain; charset=utf-8"


class MetricsServer:
    """The supervisor's HTTP endpoint, served by a daemon thread."""

    def __init__(
        self,
        listen: str,
        *,
        ready: ReadyProbe,
        rss: RssProbe | None = None,
        children: ChildrenProbe | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry, multiprocess

        self._listen = listen
        self._bind = parse_listen(listen)
        self._ready = ready
        self._rss = rss
        self._children = children
        self._httpd: _HTTPServer | None = None
        # Hooks cannot be removed, so one per server; it is a no-op once the server stopped.
        os.register_at_fork(after_in_child=self._forget_after_fork)
        self._registry = CollectorRegistry()
        try:
            multiprocess.MultiProcessCollector(self._registry)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ConfigError(
                f"{ENV_VAR} is not set to a directory; call prepare_directory before MetricsServer."
            ) from exc
        self._registry.register(self)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when `listen` asked for port 0."""
        if self._httpd is None:
            raise RuntimeError("The metrics server has no address before start().")
        return str(self._httpd.server_address[0]), int(self._httpd.server_address[1])

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
        threading.Thread(target=httpd.serve_forever, name="runeworker-metrics", daemon=True).start()

    def stop(self) -> None:
        """Stop serving and close the socket; a no-op when not started."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()  # returns once the serving thread left serve_forever
            httpd.server_close()

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
            with _files_lock:  # not while a reaped child's samples move to the archive
                return 200, content_type, encoder(self._registry)
        except Exception as exc:  # e.g. a truncated sample file: answer, keep serving
            log.exception("Collecting metrics failed.")
            return 500, _TEXT, f"collecting metrics failed: {exc}".encode()

    def _readiness(self) -> Response:
        try:
            answer = self._ready()
        except Exception as exc:  # the probe's failure is the answer
            log.warning("The readiness check failed: %s", exc)
            return 503, _TEXT, b"not ready"
        is_ready, why = answer if isinstance(answer, tuple) else (answer, "")
        if is_ready:
            return 200, _TEXT, b"ready"
        return 503, _TEXT, (f"not ready: {why}" if why else "not ready").encode()

    def _forget_after_fork(self) -> None:
        # A forked child must not keep the port open (a restarted supervisor could not bind
        # it) nor wait on a serve loop that only the parent runs.
        if self._httpd is not None:
            self._httpd.socket.close()
        self._httpd = None

    def collect(self) -> Iterator[Metric]:
        """The supervisor's own samples, read at scrape time: children by state, and each
        child's resident memory."""
        from prometheus_client.core import GaugeMetricFamily

        if self._children is not None:
            try:
                counts = self._children()
            except Exception:  # a failing probe must not cost the whole scrape
                log.exception("Reading the children's states for /metrics failed.")
                counts = {}
            family = GaugeMetricFamily(
                CHILDREN_METRIC, "Live worker children by reported state.", labels=["state"]
            )
            for state, count in sorted(counts.items()):
                family.add_metric([state], count)
            yield family
        if self._rss is None:
            return
        try:
            sizes = self._rss()
        except Exception:  # a failing probe must not cost the whole scrape
            log.exception("Reading the children's memory for /metrics failed.")
            return
        family = GaugeMetricFamily(RSS_METRIC, "Resident memory of each child.", labels=["pid"])
        for pid, size in sorted(sizes.items()):
            family.add_metric([str(pid)], size)
        yield family


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: MetricsServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        accept = self.headers.get("Accept", "")
        status, content_type, body = self.server.app.respond(self.path, accept)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics endpoint: " + format, *args)
