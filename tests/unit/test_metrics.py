"""Tests of runeworker.metrics: multiprocess aggregation through the supervisor's endpoint,
the endpoint's answers, label checks, and the deploy files' use of the metric names.

prometheus-client picks file-backed or in-memory values at its first import, so scenarios that
need multiprocess mode run in a fresh interpreter; this module imports the client at collection
time, before any test sets PROMETHEUS_MULTIPROC_DIR, so in-process metrics stay in memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from runeworker import metrics
from runeworker.config import load_config
from runeworker.errors import ConfigError
from runeworker.metrics.subscriber import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"runeworker_[a-z_]+")
HISTOGRAMS = {
    "runeworker_node_duration_seconds",
    "runeworker_commit_seconds",
    "runeworker_llm_request_seconds",
}
Q = "workflow.execution"

# The supervisor primes its series and counts a restart, then forks two children (as the real
# prefork supervisor does) that update every metric and exit; the first is marked dead.
SCENARIO = textwrap.dedent(
    """
    import json, os, sys, threading, traceback, urllib.error, urllib.request
    from runeworker import metrics

    metrics.prepare_directory(sys.argv[1])
    metrics.prime()
    metrics.child_restart("crash")

    def child(successes):
        metrics.prime(queues=["workflow.execution"], node_types=["http"])
        for _ in range(successes):
            metrics.delivery("workflow.execution", "consumed")
            metrics.node_done("http", "success", 0.002)
            metrics.delivery("workflow.execution", "acked")
        metrics.node_done("http", "failed", 2.0)
        metrics.node_done("http", "skipped", 9.0)
        metrics.completion("completed")
        metrics.commit_observed(0.003)
        metrics.inflight(1)
        metrics.broker_reconnect()
        metrics.state_error()
        metrics.commit_in_doubt("doubted")
        metrics.message_handled()
        meter = metrics.NodeMeter()  # what an agent node reports through the executor
        meter.count("llm_requests", ("openai", "m1", "success"))
        meter.count("llm_tokens", ("openai", "m1", "prompt"), 30)
        meter.count("llm_tokens", ("openai", "m1", "completion"), 7)
        meter.observe("llm_request_seconds", ("openai", "m1"), 1.5)
        meter.count("no_such_metric", ())  # logged, never raised into the node
        meter.count("llm_requests", ("bogus", "m1", "success"))

    pids = []
    for successes in (2, 3):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child(successes)
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, "a child failed"
    metrics.mark_dead(pids[0])

    ready = threading.Event()
    rss = {pids[0]: 1000, pids[1]: 2048}
    server = metrics.MetricsServer(
        "127.0.0.1:0",
        ready=ready.is_set,
        rss=lambda: rss,
        children=lambda: {"ready": 1, "waiting": 1, "busy": 0},
    )
    server.start()
    host, port = server.address

    def get(path):
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    result = {"pids": pids, "metrics": get("/metrics"), "healthz": get("/healthz")}
    result["readyz_before"] = get("/readyz")
    ready.set()
    result["readyz_after"] = get("/readyz")
    result["missing"] = get("/nope")
    metrics.mark_dead(pids[1])
    result["metrics_all_dead"] = get("/metrics")
    server.stop()
    print(json.dumps(result))
    """
)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter (no prometheus_client imported yet)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text -> {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def family_of(sample_name: str) -> str:
    """The metric family a sample or PromQL series name belongs to ('' when none)."""
    if sample_name in metrics.METRIC_NAMES:
        return sample_name
    base, _, suffix = sample_name.rpartition("_")
    return base if base in HISTOGRAMS and suffix in {"bucket", "sum", "count"} else ""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("multiproc")
    (directory / "counter_0.db").write_bytes(b"left over by a previous run")
    (directory / "keep.txt").write_text("not a sample file")
    done = run_python(SCENARIO, str(directory))
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["directory"] = directory
    return result


def test_children_samples_are_summed_across_processes(scenario: dict[str, Any]) -> None:
    status, text = scenario["metrics"]
    assert status == 200
    got = samples(text)

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert value("runeworker_deliveries_total", queue=Q, outcome="consumed") == 5
    assert value("runeworker_deliveries_total", queue=Q, outcome="acked") == 5
    assert value("runeworker_deliveries_total", queue=Q, outcome="dead_lettered") == 0
    assert value("runeworker_node_executions_total", type="http", outcome="success") == 5
    assert value("runeworker_node_executions_total", type="http", outcome="failed") == 2
    assert value("runeworker_node_executions_total", type="http", outcome="skipped") == 2
    # Skipped nodes are not timed: 5 x 2 ms + 2 x 2 s.
    assert value("runeworker_node_duration_seconds_count", type="http") == 7
    assert value("runeworker_node_duration_seconds_sum", type="http") == pytest.approx(4.01)
    assert value("runeworker_node_duration_seconds_bucket", type="http", le="0.0025") == 5
    assert value("runeworker_node_duration_seconds_bucket", type="http", le="1.0") == 5
    assert value("runeworker_node_duration_seconds_bucket", type="http", le="2.5") == 7
    assert value("runeworker_completions_total", status="completed") == 2
    assert value("runeworker_completions_total", status="halted") == 0
    assert value("runeworker_commit_seconds_count") == 2
    assert value("runeworker_commit_seconds_sum") == pytest.approx(0.006)
    assert value("runeworker_commit_seconds_bucket", le="0.005") == 2
    assert value("runeworker_broker_reconnects_total") == 2
    assert value("runeworker_state_errors_total") == 2
    assert value("runeworker_commits_in_doubt_total", event="doubted") == 2
    assert value("runeworker_messages_handled_total") == 2
    assert value("runeworker_child_restarts_total", reason="crash") == 1
    assert value("runeworker_child_restarts_total", reason="memory") == 0
    llm = {"provider": "openai", "model": "m1"}
    assert value("runeworker_llm_requests_total", **llm, outcome="success") == 2
    assert value("runeworker_llm_tokens_total", **llm, kind="prompt") == 60
    assert value("runeworker_llm_tokens_total", **llm, kind="completion") == 14
    assert value("runeworker_llm_request_seconds_count", **llm) == 2
    assert value("runeworker_llm_request_seconds_sum", **llm) == pytest.approx(3.0)
    assert value("runeworker_llm_request_seconds_bucket", **llm, le="2.5") == 2


def test_reaped_children_are_folded_into_the_archive_and_keep_counting(
    scenario: dict[str, Any],
) -> None:
    """A dead child's counter and histogram files are folded into `<kind>_archive.db`: the
    directory does not grow with every child a supervisor reaps over months (2000 of them held
    540 MB of tmpfs and made a scrape take 13 s), and the totals do not move."""
    directory: Path = scenario["directory"]
    names = {path.name for path in directory.iterdir()}
    for pid in scenario["pids"]:
        assert not {f"counter_{pid}.db", f"histogram_{pid}.db"} & names
    assert {"counter_archive.db", "histogram_archive.db"} <= names
    before, after = samples(scenario["metrics"][1]), samples(scenario["metrics_all_dead"][1])
    gauges = {"runeworker_inflight_nodes", metrics.RSS_METRIC, metrics.CHILDREN_METRIC}
    assert {k: v for k, v in before.items() if k[0] not in gauges} == {
        k: v for k, v in after.items() if k[0] not in gauges
    }
    assert after[("runeworker_inflight_nodes", frozenset())] == 0


def test_dead_child_leaves_the_live_gauge(scenario: dict[str, Any]) -> None:
    got = samples(scenario["metrics"][1])
    # Each child left one node in flight; only the child not marked dead still counts.
    assert got[("runeworker_inflight_nodes", frozenset())] == 1


def test_child_rss_is_read_at_scrape_time(scenario: dict[str, Any]) -> None:
    got = samples(scenario["metrics"][1])
    first, second = scenario["pids"]
    assert got[("runeworker_child_rss_bytes", frozenset({("pid", str(first))}))] == 1000
    assert got[("runeworker_child_rss_bytes", frozenset({("pid", str(second))}))] == 2048


def test_children_by_state_are_read_at_scrape_time(scenario: dict[str, Any]) -> None:
    got = samples(scenario["metrics"][1])
    by_state = {
        dict(labels)["state"]: value
        for (name, labels), value in got.items()
        if name == metrics.CHILDREN_METRIC
    }
    assert by_state == {"ready": 1, "waiting": 1, "busy": 0}


def test_scrape_exposes_exactly_the_declared_families(scenario: dict[str, Any]) -> None:
    names = {name for name, _ in samples(scenario["metrics"][1])}
    assert {family_of(name) for name in names} == metrics.METRIC_NAMES


def test_probes_answer(scenario: dict[str, Any]) -> None:
    assert scenario["healthz"] == [200, "ok"]
    assert scenario["readyz_before"] == [503, "not ready"]
    assert scenario["readyz_after"] == [200, "ready"]
    assert scenario["missing"] == [404, "not found"]


def test_prepare_directory_wipes_only_sample_files(scenario: dict[str, Any]) -> None:
    directory: Path = scenario["directory"]
    assert not (directory / "counter_0.db").exists()
    assert (directory / "keep.txt").read_text() == "not a sample file"


def test_importing_metrics_loads_no_client_or_adapter() -> None:
    code = (
        "import sys, runeworker.metrics\n"
        "print(sorted(m for m in ('prometheus_client', 'pika', 'redis', 'runeworker.adapters.amqp')"
        " if m in sys.modules))"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_prepare_directory_refuses_once_the_client_is_imported(tmp_path: Path) -> None:
    code = (
        "import sys, prometheus_client\n"
        "from runeworker import metrics\n"
        "from runeworker.errors import ConfigError\n"
        "try:\n"
        "    metrics.prepare_directory(sys.argv[1])\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    done = run_python(code, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "must be prepared before prometheus_client is imported" in done.stdout


def test_forked_child_does_not_hold_the_port(tmp_path: Path) -> None:
    # The child stays alive (blocked on a pipe) while the parent stops and binds the port
    # again: that fails with "address in use" if the child kept the listening socket.
    code = textwrap.dedent(
        """
        import os, signal, sys
        from runeworker import metrics
        metrics.prepare_directory(sys.argv[1])
        server = metrics.MetricsServer("127.0.0.1:0", ready=lambda: True)
        server.start()
        listen = "%s:%d" % server.address
        release, hold = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)  # if stop() hangs here, do not outlive the test
            os.close(hold)
            server.stop()  # a no-op in the child: it must not wait for the parent's loop
            os.read(release, 1)
            os._exit(0)
        os.close(release)
        try:
            server.stop()
            again = metrics.MetricsServer(listen, ready=lambda: True)
            again.start()
            again.stop()
        finally:
            os.close(hold)
            status = os.waitpid(pid, 0)[1]
        print(os.waitstatus_to_exitcode(status))
        """
    )
    done = run_python(code, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[metrics.MetricsServer]:
    # Only the scrape registry reads the directory; values in this process stay in memory.
    monkeypatch.setenv(metrics.ENV_VAR, str(tmp_path))

    def ready() -> bool:
        raise ConnectionError("Redis does not answer")

    def rss() -> dict[int, int]:
        raise ProcessLookupError("child 42 is gone")

    started = metrics.MetricsServer("127.0.0.1:0", ready=ready, rss=rss)
    started.start()
    yield started
    started.stop()


def fetch(server: metrics.MetricsServer, path: str) -> tuple[int, str]:
    host, port = server.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_failing_readiness_probe_means_not_ready(server: metrics.MetricsServer) -> None:
    assert fetch(server, "/readyz") == (503, "not ready")
    assert fetch(server, "/healthz?verbose=1") == (200, "ok")


def test_failing_rss_probe_still_serves_the_scrape(server: metrics.MetricsServer) -> None:
    status, text = fetch(server, "/metrics")
    assert status == 200
    assert metrics.RSS_METRIC not in text


def test_busy_port_is_a_config_error(server: metrics.MetricsServer) -> None:
    host, port = server.address
    second = metrics.MetricsServer(f"{host}:{port}", ready=lambda: True)
    with pytest.raises(ConfigError, match=f"cannot listen on {host}:{port}"):
        second.start()


def test_stopped_server_has_no_address(server: metrics.MetricsServer) -> None:
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(RuntimeError, match="before start"):
        _ = server.address


def test_server_without_directory_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.ENV_VAR, raising=False)
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR is not set"):
        metrics.MetricsServer("127.0.0.1:0", ready=lambda: True)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("localhost:0", ("localhost", 0)),
        (":9464", ("", 9464)),
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert metrics.parse_listen(listen) == expected
    # what `serve` binds, `check-config` accepts
    assert load_config(None, env={}, overrides={"metrics.listen": listen}).metrics.listen == listen


@pytest.mark.parametrize(
    "listen",
    ["9464", "127.0.0.1:", "host:http", "::1:9464", "h:70000", "[::1:9464", "::1]:80", "[a]b:80"],
)
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(listen))):
        metrics.parse_listen(listen)
    # what `serve` would refuse, `check-config` refuses too, naming the key
    with pytest.raises(ConfigError, match=r"metrics\.listen.*" + re.escape(repr(listen))):
        load_config(None, env={}, overrides={"metrics.listen": listen})


def test_closed_label_values_are_checked() -> None:
    with pytest.raises(ValueError, match="'acknowledged' is not a valid outcome"):
        metrics.delivery(Q, "acknowledged")
    with pytest.raises(ValueError, match="'boom' is not a valid reason"):
        metrics.child_restart("boom")


def test_free_form_labels_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_LABEL_VALUES", 2)
    # A private registry: the global one would refuse the name when the tests run twice in one
    # process (mutmut, pytest-repeat, an IDE re-run).
    family: metrics.Family[Any] = metrics.Family(
        "Counter",
        "runeworker_test_capped_total",
        "Test only.",
        ("type", None),
        registry=CollectorRegistry(),
    )
    for type_ in ("http", "log", "junk1", "junk2", "http"):
        family.get(type_).inc()
    counted = {
        sample.labels["type"]: sample.value
        for sample in next(iter(family.metric.collect())).samples
        if sample.name.endswith("_total")
    }
    assert counted == {"http": 2, "log": 1, metrics.OVERFLOW_LABEL: 2}


def expressions_of(node: object) -> Iterator[str]:
    """Every PromQL `expr` string in a Grafana dashboard JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions_of(item)


def unknown_names(text: str) -> set[str]:
    return {name for name in NAME.findall(text) if not family_of(name)}


def unrated_counters(expr: str) -> list[str]:
    """Counter and bucket series used raw instead of through rate() or increase()."""
    return [
        found.group()
        for found in NAME.finditer(expr)
        if found.group().endswith(("_total", "_bucket", "_sum", "_count"))
        and not expr[: found.start()].rstrip().endswith(("rate(", "increase("))
    ]


def test_dashboard_uses_every_metric_and_only_declared_ones() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = list(expressions_of(dashboard["panels"]))
    assert exprs
    assert unknown_names("\n".join(exprs)) == set()
    assert {family_of(name) for expr in exprs for name in NAME.findall(expr)} == (
        metrics.METRIC_NAMES
    )
    assert [name for expr in exprs for name in unrated_counters(expr)] == []
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_alert_rules_use_declared_metrics() -> None:
    text = (DEPLOY / "prometheus-alerts.yml").read_text()
    assert unknown_names(text) == set()
    assert set(re.findall(r"- alert: (\w+)", text)) == {
        "RuneworkerTargetDown",
        "RuneworkerChildCrashLoop",
        "RuneworkerNodeFailureRatioHigh",
        "RuneworkerNoCompletions",
        "RuneworkerCommitLatencyHigh",
        "RuneworkerDeadLettered",
        "RuneworkerWaitingForDependency",
        "RuneworkerNoReadyChildren",
        "RuneworkerBrokerBlocked",
        "RuneworkerAckTimeout",
        "RuneworkerStateLost",
    }
    assert unrated_counters(text) == []


def test_scrape_config_matches_alerts_and_default_listen() -> None:
    text = (DEPLOY / "prometheus-scrape.yml").read_text()
    assert re.findall(r"job_name: (\S+)", text) == ["runeworker"]
    assert re.findall(r"- (\S+:\d+)", text) == [metrics.DEFAULT_LISTEN]
    jobs = set(re.findall(r'job="([^"]+)"', (DEPLOY / "prometheus-alerts.yml").read_text()))
    assert jobs == {"runeworker"}


def test_alert_rules_structure() -> None:
    yaml = pytest.importorskip("yaml")
    groups = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 11
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    scrape = yaml.safe_load((DEPLOY / "prometheus-scrape.yml").read_text())
    assert scrape["rule_files"] == ["prometheus-alerts.yml"]
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [metrics.DEFAULT_LISTEN]


@pytest.mark.parametrize(
    ("reason", "counted"),
    [
        # the reasons the supervisor hands `on_child_exit` (tests/e2e/test_supervisor.py shows
        # "drain" for a drained pool): a stopping pool replaces nobody
        ("drain", None),
        ("stop", None),
        ("signal 9", "crash"),
        ("exit 3", "crash"),
        ("boot failed", "crash"),
        ("exit 0", "crash"),  # left unasked (an operator's SIGTERM): replaced
        ("timeout", "timeout"),
        ("recycle", "recycle"),
        ("memory", "memory"),
        ("reload", "reload"),
        ("scale down", "scale"),
    ],
)
def test_a_reaped_child_counts_as_a_restart_unless_its_pool_stops(
    reason: str, counted: str | None
) -> None:
    from runeworker.commands.serve import _restart_reason

    assert _restart_reason(reason) == counted


def test_a_metrics_directory_that_is_a_file_is_named_so(tmp_path: Path) -> None:
    """It read `cannot be prepared: File exists.`"""
    path = tmp_path / "metrics"
    path.write_text("")
    done = run_python(
        "import sys\nfrom runeworker import metrics\nmetrics.prepare_directory(sys.argv[1])\n",
        str(path),
    )
    assert done.returncode == 1
    assert f"The metrics directory {path} is a file, not a directory." in done.stderr


# A supervisor that prepared the directory, with one forked child counting there; the parent
# waits for its stdin to close, the child for SIGTERM (or 30 s).
_HOLDER = textwrap.dedent(
    """
    import os, signal, sys, time
    from runeworker import metrics
    metrics.prepare_directory(sys.argv[1])
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)
        metrics.delivery("workflow.execution", "consumed")  # written at once (no tally)
        time.sleep(30)
        os._exit(0)
    print(pid, flush=True)
    sys.stdin.read()
    """
)
_PREPARE = "import sys\nfrom runeworker import metrics\nmetrics.prepare_directory(sys.argv[1])\n"


def test_a_second_supervisor_on_the_same_directory_refuses_it_and_wipes_nothing(
    tmp_path: Path,
) -> None:
    """A second `serve` given the same metrics.directory (the config tried by hand beside the
    service) deleted the serving children's sample files, then failed on the metrics port:
    their counts were gone from /metrics until a restart."""
    directory = tmp_path / "metrics"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(directory)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdin is not None and holder.stdout is not None
    child = int(holder.stdout.readline())
    try:
        deadline = time.monotonic() + 20
        while not (directory / f"counter_{child}.db").exists():
            assert time.monotonic() < deadline, "the child counted nothing"
            time.sleep(0.05)
        done = run_python(_PREPARE, str(directory))
        assert done.returncode == 1
        assert (
            f"ConfigError: The metrics directory {directory} is in use by another runeworker "
            f"serve (pid {holder.pid}): give each supervisor a metrics.directory of its own."
        ) in done.stderr
        assert (directory / f"counter_{child}.db").exists()  # nothing wiped
        holder.stdin.close()
        assert holder.wait(timeout=20) == 0
        # the lock was the supervisor's alone: its child, still running, does not hold it
        assert run_python(_PREPARE, str(directory)).returncode == 0
    finally:
        holder.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_long_free_form_label_values_read_other_and_are_not_kept() -> None:
    """A message names any node type, of any length: each distinct value was kept (its series,
    the family's cache, the subscriber's) and written into every child's sample file, up to
    MAX_LABEL_VALUES of them however long."""
    family: metrics.Family[Any] = metrics.Family(
        "Counter",
        "runeworker_test_long_total",
        "Test only.",
        ("type", None),
        registry=CollectorRegistry(),
    )
    junk = [f"junk{i}." + "x" * 65536 for i in range(20)]
    for type_ in [*junk, "http", "http"]:
        family.get(type_).inc()
    counted = {
        sample.labels["type"]: sample.value
        for sample in next(iter(family.metric.collect())).samples
        if sample.name.endswith("_total")
    }
    assert counted == {"http": 2, metrics.OVERFLOW_LABEL: 20}
    kept = [v for key in family._cache for v in key] + [v for seen in family._seen for v in seen]
    assert kept and max(len(v) for v in kept) <= metrics.MAX_LABEL_CHARS
    subscriber = WorkerMetrics()
    for type_ in [*junk, "log"]:
        subscriber.on_node_done(type_, "failed", 0.001)
    assert [t for t, _ in subscriber._nodes] == ["log"]
