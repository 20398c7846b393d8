"""`runeworker bench`: runeworker against the bare pika floor on the configured broker and Redis.

Without options it measures one load (the sizes come from the flags and the config) and prints
both contenders side by side with their ratio; `--sweep` measures a table of loads, one axis at a
time; `--codec` times the message codec alone (no broker). `--node http` measures chains of
`http` nodes instead, calling a loopback server of the bench that answers after `--http-delay`
(how a pool sizes for blocking nodes: deploy/TUNING.md). `--queue-type quorum` (or
`broker.queue_type`) measures both on quorum queues, where they commit with publisher confirms.
Exit codes: 0 measured, 1 the bench ran but a contender lost or failed workflows, 2 config or
broker problem.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TextIO

from runeworker.bench.codec import codec_benchmark
from runeworker.bench.contenders import BenchRun, Result
from runeworker.bench.target import HttpTarget
from runeworker.bench.workload import BenchError, Figures, Load, Workload, percentile
from runeworker.config import load_config
from runeworker.errors import ConfigError, RuneworkerError

EXIT_OK, EXIT_INCOMPLETE, EXIT_ERROR = 0, 1, 2
TARGET_RATIO = 0.70
SWEEP_NODES = 5000  # node executions per sweep point (throughput phase)
SWEEP_BYTES = 400 * 2**20  # bytes of execution messages per sweep point, at most


def bench(args: argparse.Namespace, overrides: Mapping[str, Any]) -> int:
    """Entry point for the cli (see the module docstring for the flags it reads)."""
    out: TextIO = sys.stdout
    if args.codec:
        return _codec(out)
    try:
        cfg = load_config(args.config, overrides=overrides)
    except ConfigError as exc:  # one line per problem, as check-config prints them
        for problem in str(exc).splitlines():
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    base = Load(
        workflows=args.workflows,
        nodes=args.nodes,
        processes=cfg.worker.processes,
        prefetch=cfg.broker.prefetch,
        context_bytes=parse_size(args.context),
        latency_workflows=args.latency_workflows,
        timeout=args.timeout,
        shape=getattr(args, "shape", "chain"),
    )
    node, delay = getattr(args, "node", "log"), getattr(args, "http_delay", 0.1)
    if node == "http" and args.sweep:
        print("bench error: --sweep measures the log chain only; drop --node http", file=sys.stderr)
        return EXIT_ERROR
    if node == "http" and not 0 <= delay <= 60:
        print(f"bench error: --http-delay must be 0 to 60 seconds, got {delay}", file=sys.stderr)
        return EXIT_ERROR
    session: BenchRun | None = None
    try:
        with contextlib.ExitStack() as stack:
            url = ""
            if node == "http":
                url = stack.enter_context(HttpTarget(delay)).url
            session = BenchRun(cfg, discard_waiting=args.discard_waiting)
            if args.sweep:
                return _sweep(session, base, out)
            rounds = max(1, args.rounds)
            return _single(session, base, cfg.broker.batch_max, out, rounds, http_url=url)
    except (BenchError, RuneworkerError, OSError) as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if session is not None:
            session.close()


def parse_size(text: str | int) -> int:
    """'64K', '1M', '1024' -> bytes."""
    if isinstance(text, int):
        return text
    units = {"K": 2**10, "M": 2**20}
    t = text.strip().upper().removesuffix("B")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def _size(n: float) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB"


# -- one load -----------------------------------------------------------------------------------


def _single(
    session: BenchRun,
    load: Load,
    batch_max: int,
    out: TextIO,
    rounds: int = 1,
    *,
    http_url: str = "",
) -> int:
    work = Workload.build(load.nodes, load.context_bytes, load.shape, http_url=http_url)
    load = replace(load, nodes=work.nodes)
    shape = f"http nodes calling {http_url}" if http_url else "nodes"
    if load.shape != "chain":
        shape += f" ({work.running_per_workflow} steps, parallel branches)"
    out.write(
        f"runeworker bench: {load.workflows} workflows x {load.nodes} {shape}, "
        f"P={load.processes}, prefetch {load.prefetch}, batch_max {batch_max}, "
        f"{_commits(session)}, "
        f"context {_size(load.context_bytes)} (first message {_size(work.sizes.messages[0])}, "
        f"last {_size(work.sizes.messages[-1])})\n"
    )
    out.flush()
    complete, ratios = True, []
    for r in range(rounds):
        if rounds > 1:
            first = "runeworker" if r % 2 else "floor"
            out.write(f"\n-- round {r + 1} of {rounds} ({first} first)\n")
        floor, rw = session.compare(load, work, runeworker_first=bool(r % 2))
        ratios.append(_report(floor, rw, load, out, work))
        complete = complete and _complete(floor, work) and _complete(rw, work)
    if rounds > 1:
        median = percentile(ratios, 50)
        verdict = "meets" if median >= TARGET_RATIO else "MISSES"
        listed = ", ".join(f"{x * 100:.1f}%" for x in ratios)
        out.write(f"\nratio per round: {listed}; median {median * 100:.1f}% ({verdict} the "
                  "70% target)\n")  # fmt: skip
    return EXIT_OK if complete else EXIT_INCOMPLETE


def _commits(session: BenchRun) -> str:
    """How both contenders commit, which follows `broker.queue_type`."""
    if session.confirm:
        return f"{session.cfg.broker.queue_type} queues (publisher confirms)"
    return f"{session.cfg.broker.queue_type} queues (transactions)"


def _complete(r: Result, work: Workload) -> bool:
    return all(
        f.completed == f.workflows
        and f.successes == f.workflows * work.successes_per_workflow
        and f.running == f.workflows * work.running_per_workflow
        for f in (r.load, r.idle)
    )


def _lat(f: Figures) -> str:
    return "/".join(f"{f.percentile(p):.2f}" for p in (50, 95, 99))


def _report(floor: Result, rw: Result, load: Load, out: TextIO, work: Workload) -> float:
    """Print both contenders side by side; returns the throughput ratio."""
    rows: list[tuple[str, str, str]] = []
    successes, running = work.successes_per_workflow, work.running_per_workflow

    def row(label: str, get: Any) -> None:
        rows.append((label, str(get(rw)), str(get(floor))))

    row("workflows completed", lambda r: f"{r.load.completed}/{r.load.workflows}")
    row("success statuses", lambda r: f"{r.load.successes}/{r.load.workflows * successes}")
    row("running statuses", lambda r: f"{r.load.running}/{r.load.workflows * running}")
    row("node executions/s", lambda r: f"{r.load.rate:.1f}")
    row("wall ms", lambda r: f"{r.load.wall * 1e3:.2f}")
    row("latency under load p50/p95/p99 ms", lambda r: _lat(r.load))
    row("low-load workflows completed", lambda r: f"{r.idle.completed}/{r.idle.workflows}")
    row("latency at low load p50/p95/p99 ms", lambda r: _lat(r.idle))
    row("CPU ms/node (contender processes)", lambda r: f"{r.cpu_ms_per_node:.3f}")
    row("RSS MB per process at start", lambda r: " ".join(f"{m:.1f}" for m in r.rss_start_mb))
    row("RSS MB per process", lambda r: " ".join(f"{m:.1f}" for m in r.rss_mb))
    for service in sorted(rw.services_ms_per_node):
        row(f"{service} CPU ms/node", lambda r, s=service: f"{r.services_ms_per_node[s]:.3f}")
    width = max(len(r[0]) for r in rows)
    out.write(f"{'':{width}}  {'runeworker':>18}  {'floor':>18}\n")
    for label, a, b in rows:
        out.write(f"{label:{width}}  {a:>18}  {b:>18}\n")
    ratio = rw.load.rate / floor.load.rate if floor.load.rate else 0.0
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    out.write(f"ratio runeworker/floor: {ratio * 100:.1f}% ({verdict} the 70% target)\n")
    o50, o99 = (rw.idle.percentile(p) - floor.idle.percentile(p) for p in (50, 99))
    out.write(
        f"per-node overhead at low load (runeworker minus floor latency): "
        f"p50 {o50:.2f} ms, p99 {o99:.2f} ms (targets 1 and 5 ms)\n"
    )
    out.flush()
    return ratio


# -- sweeps -------------------------------------------------------------------------------------


def sweep_loads(base: Load) -> list[tuple[str, Load]]:
    """One axis at a time around the base load (context 1 KB, 10 nodes, P=1, prefetch 10)."""
    centre = replace(base, context_bytes=1024, nodes=10, processes=1, prefetch=10)
    points = [
        (f"context {_size(c)}", replace(centre, context_bytes=c)) for c in (1024, 64 * 2**10, 2**20)
    ]
    points += [(f"{k} nodes", replace(centre, nodes=k)) for k in (100, 500)]
    points += [("P=2", replace(centre, processes=2))]
    points += [(f"prefetch {x}", replace(centre, prefetch=x)) for x in (1, 100)]
    return points


def _sized(load: Load, work: Workload) -> Load:
    """Workflows per point: about SWEEP_NODES node executions and at most SWEEP_BYTES."""
    per_workflow = sum(work.sizes.messages)
    n = min(SWEEP_NODES // load.nodes, SWEEP_BYTES // per_workflow)
    n = max(n, 2 * load.processes)
    latency = max(2, min(load.latency_workflows, 1000 // load.nodes))
    return replace(load, workflows=n, latency_workflows=latency)


def _sweep(session: BenchRun, base: Load, out: TextIO) -> int:
    out.write(
        f"{'point':<16}{'N':>5}{'rw n/s':>9}{'floor n/s':>10}{'ratio':>7}{'rw p50/p99 ms':>15}"
        f"{'fl p50/p99 ms':>15}{'rw CPU ms/n':>12}{'rw RSS MB':>10}  complete\n"
    )
    ok = True
    long_run: tuple[Result, Result, Workload] | None = None
    for label, point in sweep_loads(base):
        work = Workload.build(point.nodes, point.context_bytes, point.shape)
        load = _sized(replace(point, nodes=work.nodes), work)
        floor, rw = session.compare(load, work)
        complete = _complete(floor, work) and _complete(rw, work)
        ok = ok and complete
        ratio = rw.load.rate / floor.load.rate if floor.load.rate else 0.0
        out.write(
            f"{label:<16}{load.workflows:>5}{rw.load.rate:>9.0f}{floor.load.rate:>10.0f}"
            f"{ratio * 100:>6.0f}%{_p(rw.idle):>15}{_p(floor.idle):>15}"
            f"{rw.cpu_ms_per_node:>12.3f}{max(rw.rss_mb, default=0):>10.1f}  "
            f"{'yes' if complete else 'NO: workflows or statuses lost'}\n"
        )
        out.flush()
        if point.nodes == 500:
            long_run = (floor, rw, work)
    if long_run is not None:
        _growth(*long_run, out)
    return EXIT_OK if ok else EXIT_INCOMPLETE


def _p(f: Figures) -> str:
    return f"{f.percentile(50):.2f}/{f.percentile(99):.2f}"


def _growth(floor: Result, rw: Result, work: Workload, out: TextIO) -> None:
    """Median low-load latency around node 10 and node 490 of the 500-node workflow."""
    for node in (10, 490):
        window = range(node - 5, node + 5)  # 0-based steps around the 1-based node number
        med = {
            r.name: percentile([v for k in window for v in r.idle.by_step.get(k, [])], 50)
            for r in (rw, floor)
        }
        out.write(
            f"500-node workflow, node {node}: runeworker {med['runeworker']:.2f} ms, floor "
            f"{med['floor']:.2f} ms per node (median of nodes {node - 4}-{node + 5}, low load; "
            f"message {_size(work.sizes.messages[node - 1])})\n"
        )


# -- codec --------------------------------------------------------------------------------------


def _codec(out: TextIO) -> int:
    r = codec_benchmark()
    out.write(
        f"codec: decode + update + encode of a {_size(r.size)} execution message "
        f"(100-node workflow, 50-node context)\n"
        f"  runeworker {r.runeworker_us:.1f} us, stdlib json {r.stdlib_us:.1f} us: "
        f"{r.ratio:.1f}x ({'meets' if r.ratio >= 10 else 'MISSES'} the 10x target)\n"
    )
    return EXIT_OK
