"""`runeworker bench` on a tiny load against the session's own vhost: both contenders finish every
workflow, the printed figures are consistent with each other, and the bench leaves no queue,
message or Redis key behind. Plus the pure parts (trace arithmetic, sweep plan, codec)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from typing import Any

import pika
import pytest
import redis
from wire import _ctl_json, rabbit_queues, vhost_of

from runeworker.adapters import amqp
from runeworker.bench import floor
from runeworker.bench.codec import codec_benchmark, codec_message, runeworker_step, stdlib_step
from runeworker.bench.floor import FloorPool, FloorQueues, declare
from runeworker.bench.workload import (
    Load,
    Trace,
    Workload,
    chain_definition,
    figures,
    percentile,
)
from runeworker.cli import _overrides, _parser
from runeworker.commands.bench import bench, parse_size, sweep_loads

ROW = re.compile(r"^(?P<label>\S+(?: \S+)*)\s{2,}(?P<rw>\S+(?: \S+)*)\s{2,}(?P<fl>\S+(?: \S+)*)$")


def _args(**changes: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "config": None,
        "workflows": 4,
        "nodes": 4,
        "context": "1K",
        "latency_workflows": 2,
        "timeout": 60.0,
        "sweep": False,
        "codec": False,
        "rounds": 1,
        "discard_waiting": True,  # other tests of the session may have left statuses behind
    }
    values.update(changes)
    return argparse.Namespace(**values)


def _rows(out: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            rows[m["label"]] = (m["rw"].strip(), m["fl"].strip())
    return rows


def _three(text: str) -> list[float]:
    return [float(x) for x in text.split("/")]


@pytest.mark.integration
def test_bench_prints_complete_and_consistent_figures(
    amqp_url: str, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = {
        "broker.url": amqp_url,
        "redis.url": redis_url,
        "redis.key_prefix": redis_prefix,
        "worker.processes": 1,
        "broker.prefetch": 10,
    }
    assert bench(_args(), overrides) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert out.startswith("runeworker bench: 4 workflows x 4 nodes, P=1, prefetch 10")
    assert rows["workflows completed"] == ("4/4", "4/4")
    assert rows["success statuses"] == ("16/16", "16/16")
    assert rows["running statuses"] == ("16/16", "16/16")
    assert rows["low-load workflows completed"] == ("2/2", "2/2")
    rates = [float(x) for x in rows["node executions/s"]]
    walls = [float(x) / 1e3 for x in rows["wall ms"]]
    for rate, wall in zip(rates, walls, strict=True):
        assert wall > 0
        assert rate == pytest.approx(16 / wall, rel=0.02, abs=0.1)
    for label in ("latency under load p50/p95/p99 ms", "latency at low load p50/p95/p99 ms"):
        for column in rows[label]:
            p50, p95, p99 = _three(column)
            assert 0 < p50 <= p95 <= p99 < 10_000, (label, column)
    cpu = [float(x) for x in rows["CPU ms/node (contender processes)"]]
    assert all(c > 0 for c in cpu)
    rss = [[float(m) for m in column.split()] for column in rows["RSS MB per process"]]
    assert [len(r) for r in rss] == [1, 1]  # P=1: one child, one floor process
    assert all(5 < m < 1000 for r in rss for m in r)
    ratio = float(re.search(r"ratio runeworker/floor: ([\d.]+)%", out)[1])  # type: ignore[index]
    assert ratio == pytest.approx(rates[0] / rates[1] * 100, abs=0.2)
    assert re.search(r"per-node overhead at low load .*: p50 -?[\d.]+ ms, p99 -?[\d.]+ ms", out)
    _nothing_left(amqp_url, redis_url, redis_prefix)


@pytest.mark.integration
def test_bench_rounds_report_every_ratio_and_the_median(
    amqp_url: str, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = {"broker.url": amqp_url, "redis.url": redis_url, "redis.key_prefix": redis_prefix}
    assert bench(_args(rounds=3, workflows=2, latency_workflows=1), overrides) == 0
    out = capsys.readouterr().out
    heads = re.findall(r"-- round (\d) of 3 \((\w+) first\)", out)
    assert heads == [("1", "floor"), ("2", "runeworker"), ("3", "floor")]
    ratios = [float(x) for x in re.findall(r"ratio runeworker/floor: ([\d.]+)%", out)]
    summary = re.search(r"ratio per round: (.*); median ([\d.]+)% \((meets|MISSES)", out)
    assert summary is not None and len(ratios) == 3
    assert [float(x.rstrip("%")) for x in summary[1].split(", ")] == ratios
    assert float(summary[2]) == sorted(ratios)[1]
    assert len(re.findall(r"^workflows completed ", out, re.MULTILINE)) == 3
    _nothing_left(amqp_url, redis_url, redis_prefix)


@pytest.mark.integration
def test_bench_http_workload_runs_chains_of_http_nodes_against_its_loopback_target(
    amqp_url: str, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = {
        "broker.url": amqp_url,
        "redis.url": redis_url,
        "redis.key_prefix": redis_prefix,
        "worker.processes": 2,
        "broker.prefetch": 1,
    }
    args = _args(node="http", http_delay=0.0, workflows=3, nodes=3, latency_workflows=1)
    assert bench(args, overrides) == 0
    out = capsys.readouterr().out
    head = re.match(r"runeworker bench: 3 workflows x 3 http nodes calling (\S+), P=2", out)
    assert head is not None and head[1].startswith("http://127.0.0.1:")
    rows = _rows(out)
    assert rows["workflows completed"] == ("3/3", "3/3")
    assert rows["success statuses"] == ("9/9", "9/9")
    assert rows["running statuses"] == ("9/9", "9/9")
    assert rows["low-load workflows completed"] == ("1/1", "1/1")
    for label in ("RSS MB per process at start", "RSS MB per process"):
        sizes = [[float(m) for m in column.split()] for column in rows[label]]
        assert [len(r) for r in sizes] == [2, 2], label  # P=2 children, 2 floor processes
    _nothing_left(amqp_url, redis_url, redis_prefix)


def test_bench_http_workload_is_one_load_not_a_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench(_args(node="http", http_delay=0.1, sweep=True), {}) == 2
    assert "--sweep measures the log chain only" in capsys.readouterr().err


def test_bench_http_delay_must_be_sensible(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench(_args(node="http", http_delay=-1.0), {}) == 2
    assert "--http-delay must be 0 to 60 seconds, got -1.0" in capsys.readouterr().err


@pytest.mark.integration
def test_bench_on_quorum_queues_completes_with_publisher_confirms(
    quorum_amqp_url: str, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`broker.queue_type = "quorum"`: the bench's queue is declared quorum, as serve declares
    it (it was classic: every child failed with PRECONDITION_FAILED and the bench waited 60 s
    for consumers), and both contenders finish every workflow."""
    overrides = {
        "broker.url": quorum_amqp_url,
        "broker.queue_type": "quorum",
        "redis.url": redis_url,
        "redis.key_prefix": redis_prefix,
        "worker.processes": 1,
        "broker.prefetch": 10,
    }
    assert bench(_args(workflows=3, nodes=3, latency_workflows=1), overrides) == 0
    out = capsys.readouterr().out
    assert out.startswith("runeworker bench: 3 workflows x 3 nodes, P=1, prefetch 10")
    assert "quorum queues (publisher confirms)" in out.splitlines()[0]
    rows = _rows(out)
    assert rows["workflows completed"] == ("3/3", "3/3")
    assert rows["success statuses"] == ("9/9", "9/9")
    assert rows["running statuses"] == ("9/9", "9/9")
    assert rows["low-load workflows completed"] == ("1/1", "1/1")
    assert all(float(x) > 0 for x in rows["node executions/s"])
    for column in rows["latency at low load p50/p95/p99 ms"]:
        p50, p95, p99 = _three(column)
        assert 0 < p50 <= p95 <= p99 < 10_000, column
    queues = rabbit_queues(vhost_of(quorum_amqp_url))
    # serve typed its resume and dead-letter queues; Rune's output queues stay classic
    assert queues["workflow.resume"]["arguments"] == [["x-queue-type", "longstr", "quorum"]]
    for q in ("workflow.node.status", "workflow.completion", "workflow.worker.initiated"):
        assert queues[q]["arguments"] == [], q
    _nothing_left(quorum_amqp_url, redis_url, redis_prefix)


def _floor_channel(vhost: str, queue: str) -> dict[str, Any]:
    """transactional and confirm of the channel that consumes `queue`."""
    consumers = _ctl_json("list_consumers", "-p", vhost, "queue_name", "channel_pid")
    pids = {c["channel_pid"] for c in consumers if c["queue_name"] == queue}
    channels = _ctl_json("list_channels", "pid", "transactional", "confirm")
    found = [c for c in channels if c["pid"] in pids]
    assert len(found) == 1, (queue, consumers, found)
    return found[0]


@pytest.mark.integration
@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_floor_commits_and_declares_as_runeworker_does(
    queue_type: str, amqp_url: str, quorum_amqp_url: str, redis_url: str
) -> None:
    """The floor's work queue has the type of runeworker's, its status, completion and mirror
    queues the type of Rune's (classic); it commits with transactions on classic queues and with
    publisher confirms on quorum queues, and finishes a workflow either way."""
    url = quorum_amqp_url if queue_type == "quorum" else amqp_url
    vhost = vhost_of(url)
    base = f"runeworker.bench.floortest{queue_type}"
    fq = FloorQueues("workflows", base, f"{base}.status", f"{base}.completion", f"{base}.mirror")
    typed = {fq.work: {"x-queue-type": "quorum"}} if queue_type == "quorum" else {}
    listed = [["x-queue-type", "longstr", "quorum"]] if queue_type == "quorum" else []
    work = Workload.build(3, 256)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    declare(ch, fq, typed)
    pool = FloorPool(url, fq, work.sizes, redis_url)
    # prefetch 1: each step's delivery comes only once the step before it is acked
    pool.start(1, 1, 100, confirm=queue_type == "quorum")

    def counts() -> dict[str, int]:
        return {q: ch.queue_declare(q, passive=True).method.message_count for q in fq.all}

    def until(done: Any, what: str) -> None:
        deadline = time.monotonic() + 60  # against a hang, not a measure
        while not done():
            assert pool.alive(), f"the floor exited before {what}"
            if time.monotonic() > deadline:
                pytest.fail(f"the floor did not {what} within 60 s; queues: {counts()}")
            conn.sleep(0.05)

    try:
        until(lambda: ch.queue_declare(fq.work, passive=True).method.consumer_count, "consume")
        queues = rabbit_queues(vhost)
        assert queues[fq.work]["arguments"] == listed
        assert [queues[q]["arguments"] for q in fq.all[1:]] == [[], [], []]
        channel = _floor_channel(vhost, fq.work)
        confirm = queue_type == "quorum"
        assert (channel["transactional"], channel["confirm"]) == (not confirm, confirm)
        body = work.sizes.messages[0] * b"x"
        ch.basic_publish("", fq.work, body, pika.BasicProperties(message_id="0.0"))
        # three nodes: running and success each, the completion, the mirror of the start
        expected = {fq.work: 0, fq.status: 6, fq.completion: 1, fq.mirror: 1}
        until(lambda: counts() == expected, "finish the workflow")
    finally:
        pool.stop()
        for q in fq.all:
            ch.queue_delete(q)
        conn.close()


@pytest.mark.integration
@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_bench_refuses_a_vhost_whose_queues_have_the_other_type(
    queue_type: str,
    amqp_url: str,
    quorum_amqp_url: str,
    redis_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A vhost where workflow.resume was declared with the other type (a bench or worker of the
    other queue type ran there): every serve child's declare would fail; the bench says so and
    what to do at once, instead of waiting 60 s for consumers."""
    url = amqp_url if queue_type == "quorum" else quorum_amqp_url
    other = None if queue_type == "quorum" else {"x-queue-type": "quorum"}
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_declare("workflow.resume", durable=True, arguments=other)
    conn.close()
    overrides = {"broker.url": url, "broker.queue_type": queue_type, "redis.url": redis_url}
    assert bench(_args(), overrides) == 2
    err = capsys.readouterr().err
    assert "this vhost holds queues of another type than runeworker serve declares" in err
    assert f"broker.queue_type = '{queue_type}'" in err
    assert "workflow.resume (PRECONDITION_FAILED - inequivalent arg 'x-queue-type'" in err
    assert "run the bench in a fresh vhost" in err
    assert [q for q in rabbit_queues(vhost_of(url)) if q.startswith("runeworker.bench.")] == []


def test_bench_queue_type_flag_overrides_the_config() -> None:
    args = _parser().parse_args(["bench", "--queue-type", "quorum"])
    assert _overrides(args)["broker.queue_type"] == "quorum"
    assert _overrides(_parser().parse_args(["bench"]))["broker.queue_type"] is None
    with pytest.raises(SystemExit):
        _parser().parse_args(["bench", "--queue-type", "lazy"])
    help_text = subprocess.run(
        [sys.executable, "-m", "runeworker", "bench", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--queue-type {classic,quorum}" in help_text


def test_floor_waits_for_confirms_as_runeworker_does() -> None:
    """The floor cannot import runeworker: its confirm wait and nack pause are copies."""
    assert (floor._CONFIRM_WAIT, floor._NACK_PAUSE) == (amqp.CONFIRM_WAIT, amqp.NACK_PAUSE)


def _nothing_left(amqp_url: str, redis_url: str, redis_prefix: str) -> None:
    queues = rabbit_queues(vhost_of(amqp_url))
    assert [q for q in queues if q.startswith("runeworker.bench.")] == []
    for q in ("workflow.node.status", "workflow.completion", "workflow.worker.initiated"):
        assert queues[q]["messages"] == 0, q
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{redis_prefix}bench:*")) == []
    finally:
        client.close()


@pytest.mark.integration
def test_bench_refuses_a_vhost_whose_status_queue_has_messages(
    amqp_url: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.queue_declare("workflow.completion", durable=True)
    ch.basic_publish("", "workflow.completion", b"{}")
    try:
        overrides = {"broker.url": amqp_url, "redis.url": redis_url}
        assert bench(_args(discard_waiting=False), overrides) == 2
        err = capsys.readouterr().err
        assert "workflow.completion holds 1 message(s) the bench would consume" in err
    finally:
        ch.queue_purge("workflow.completion")
        conn.close()


# -- pure parts ----------------------------------------------------------------------------------


def test_figures_take_node_latencies_from_consecutive_successes() -> None:
    trace = Trace(
        published={"a": 1_000_000, "b": 2_000_000},
        success={"a": {0: 2_500_000, 1: 3_000_000}, "b": {0: 2_250_000, 1: 4_250_000}},
        completed={"a": 3_100_000, "b": 4_300_000},
        running=4,
        successes=4,
        completions=2,
    )
    f = figures(trace, workflows=2, nodes=2)
    assert f.latencies == [1.5, 0.5, 0.25, 2.0]
    assert f.by_step == {0: [1.5, 0.25], 1: [0.5, 2.0]}
    assert f.wall == pytest.approx(0.0033)
    assert f.rate == pytest.approx(4 / 0.0033)
    assert (f.completed, f.successes, f.running) == (2, 4, 4)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([3.0], 99) == 3.0


def test_chain_alternates_log_and_conditional_on_the_next_edge() -> None:
    import json

    d = json.loads(chain_definition(4))
    assert [n["type"] for n in d["nodes"]] == ["log", "conditional", "log", "conditional"]
    assert d["nodes"][1]["parameters"]["true_edge_id"] == "e2"
    assert d["nodes"][3]["parameters"]["true_edge_id"] == ""
    assert [(e["src"], e["dst"]) for e in d["edges"]] == [("n1", "n2"), ("n2", "n3"), ("n3", "n4")]


def test_sweep_moves_one_axis_at_a_time() -> None:
    points = sweep_loads(Load(processes=2, prefetch=50, nodes=7, context_bytes=5))
    got = [(label, p.context_bytes, p.nodes, p.processes, p.prefetch) for label, p in points]
    assert got == [
        ("context 1.0 KB", 1024, 10, 1, 10),
        ("context 64.0 KB", 65536, 10, 1, 10),
        ("context 1.0 MB", 1048576, 10, 1, 10),
        ("100 nodes", 1024, 100, 1, 10),
        ("500 nodes", 1024, 500, 1, 10),
        ("P=2", 1024, 10, 2, 10),
        ("prefetch 1", 1024, 10, 1, 1),
        ("prefetch 100", 1024, 10, 1, 100),
    ]


def test_parse_size() -> None:
    assert [parse_size(t) for t in ("1K", "64k", "1M", "1.5KB", "300")] == [
        1024,
        65536,
        1048576,
        1536,
        300,
    ]


def test_codec_paths_agree_and_runeworker_is_faster() -> None:
    body = codec_message()
    assert 38_000 < len(body) < 52_000
    import json

    assert json.loads(runeworker_step(body)) == json.loads(stdlib_step(body))
    result = codec_benchmark(rounds=2, per_round=20)
    assert result.size == len(body)
    assert result.ratio > 2  # typically 10x or more; kept loose for a loaded CI machine


def test_branch_script_replays_every_step_of_the_workflow() -> None:
    """The floor's script for the branch shape: 15 steps (n4 twice, n6 and n7 once per item),
    one mirror-able first step, one completion, every next message pointing at a later step."""
    work = Workload.build(10, 1024, "branches")
    script = work.sizes.script
    assert [st["node"] + 1 for st in script] == [1, 2, 3, 4, 4, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8]
    assert work.running_per_workflow == 15
    assert work.successes_per_workflow == 14  # the merge's first arrival reports waiting
    assert work.statuses_per_workflow == 30
    assert [st["completion"] > 0 for st in script].count(True) == 1
    children = sorted(child for st in script for _, child in st["nexts"])
    assert children == list(range(1, 15))
    assert all(child > i for i, st in enumerate(script) for _, child in st["nexts"])


@pytest.mark.integration
def test_bench_branches_completes_with_the_same_statuses_on_both_sides(
    amqp_url: str, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = {
        "broker.url": amqp_url,
        "redis.url": redis_url,
        "redis.key_prefix": redis_prefix,
        # two children: their merge arrivals interleave (a lost completion once, see
        # deploy/PERFORMANCE.md and statecases.INTERLEAVINGS)
        "worker.processes": 2,
    }
    assert bench(_args(shape="branches", workflows=3), overrides) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert out.startswith("runeworker bench: 3 workflows x 8 nodes (15 steps, parallel branches)")
    assert rows["workflows completed"] == ("3/3", "3/3")
    assert rows["success statuses"] == ("42/42", "42/42")
    assert rows["running statuses"] == ("45/45", "45/45")
    assert rows["low-load workflows completed"] == ("2/2", "2/2")
    for column in rows["latency at low load p50/p95/p99 ms"]:
        p50, p95, p99 = _three(column)
        assert 0 <= p50 <= p95 <= p99 < 10_000, column
    _nothing_left(amqp_url, redis_url, redis_prefix)
