"""Command line: parses argv and dispatches to `runeworker.commands`; no logic of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from runeworker import __version__, logs


def _config_flags(p: argparse.ArgumentParser) -> None:
    """Flags that override the config file and the environment (highest precedence)."""
    p.add_argument("-c", "--config", help="TOML config file (default: $RUNEWORKER_CONFIG)")
    p.add_argument("--processes", type=int, help="worker children (worker.processes)")
    p.add_argument("--prefetch", type=int, help="per-child prefetch (broker.prefetch)")
    p.add_argument("--queue", help="execution queue to consume (broker.queue)")
    p.add_argument("--metrics-listen", help="host:port of /metrics, '' to disable")
    p.add_argument("--log-level", dest="cfg_log_level", help="logging.level")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "worker.processes": args.processes,
        "broker.prefetch": args.prefetch,
        "broker.queue": args.queue,
        "metrics.listen": args.metrics_listen,
        "logging.level": args.cfg_log_level.upper() if args.cfg_log_level else None,
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runeworker", description="Rune workflow worker")
    p.add_argument("--version", action="version", version=f"runeworker {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workflow in this process (no broker)")
    run.add_argument("workflow", help="workflow JSON file, or the name of a shipped example")
    run.add_argument("--input", help="trigger input: JSON object, or @file")
    run.add_argument("--json", action="store_true", help="print the exact wire messages")
    run.add_argument("-v", "--verbose", action="store_true", help="show node log lines")

    val = sub.add_parser("validate", help="check a workflow definition")
    val.add_argument("workflow")

    serve = sub.add_parser("serve", help="run the supervisor and its worker children")
    _config_flags(serve)

    check = sub.add_parser("check-config", help="print the effective config, secrets masked")
    _config_flags(check)

    submit = sub.add_parser("submit", help="publish a workflow run like the Rune API does")
    submit.add_argument("workflow")
    submit.add_argument("--input", help="trigger input: JSON object, or @file")
    submit.add_argument("--wait", action="store_true", help="show statuses until completion")
    submit.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    submit.add_argument(
        "--first-successor",
        action="store_true",
        help="start at the trigger's first successor (what a Go worker needs)",
    )
    _config_flags(submit)

    bench = sub.add_parser("bench", help="measure node throughput and latency against the broker")
    _config_flags(bench)
    bench.add_argument("--workflows", type=int, default=1000)
    bench.add_argument("--nodes", type=int, default=10, help="nodes per workflow")
    bench.add_argument("--context", default="1K", help="context size: 1K, 64K, 1M")
    bench.add_argument(
        "--shape",
        choices=("chain", "branches"),
        default="chain",
        help="chain: --nodes nodes one after the other; branches: fan-out, merge, split and "
        "aggregator (8 nodes, 15 steps; --nodes is ignored)",
    )
    bench.add_argument(
        "--latency-workflows",
        type=int,
        default=50,
        help="workflows run one at a time for the low-load latency",
    )
    bench.add_argument("--timeout", type=float, default=300.0)
    bench.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the load R times, alternating which contender goes first; the verdict "
        "takes the median ratio (a shared VM drifts between two back-to-back runs)",
    )
    bench.add_argument("--sweep", action="store_true", help="run the cost-growth sweeps")
    bench.add_argument("--codec", action="store_true", help="only the codec micro benchmark")
    bench.add_argument(
        "--discard-waiting",
        action="store_true",
        help="purge status/completion messages already waiting in the vhost",
    )

    dlq = sub.add_parser("dlq", help="inspect and replay the dead-letter queue")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list", help="one line per dead-lettered message")
    dlq_list.add_argument("--limit", type=int, default=1000)
    dlq_show = dlq_sub.add_parser("show", help="headers and body of one message")
    dlq_show.add_argument("id", help="message id, or #N / N for the N-th")
    dlq_replay = dlq_sub.add_parser("replay", help="republish to the original queue")
    dlq_replay.add_argument("id", nargs="?")
    dlq_replay.add_argument("--all", action="store_true")
    dlq_replay.add_argument("--to", metavar="QUEUE", help="republish to this queue instead")
    for leaf in (dlq_list, dlq_show, dlq_replay):
        _config_flags(leaf)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        from runeworker.commands.run import run

        logs.setup("INFO" if args.verbose else "ERROR", "text")
        return run(args.workflow, args.input, args.json)
    if args.command == "validate":
        from runeworker.commands.validate import validate

        logs.setup("WARNING", "text")
        return validate(args.workflow)
    if args.command == "serve":
        from runeworker.commands.serve import serve

        return serve(args.config, _overrides(args))
    if args.command == "check-config":
        from runeworker.commands.check_config import check_config

        return check_config(args.config, _overrides(args))
    if args.command == "submit":
        from runeworker.commands.submit import submit_command

        logs.setup("WARNING", "text")
        return submit_command(args, _overrides(args))
    if args.command == "bench":
        from runeworker.commands.bench import bench as run_bench

        logs.setup("WARNING", "text")
        return run_bench(args, _overrides(args))
    if args.command == "dlq":
        from runeworker.commands.dlq import dlq

        logs.setup("WARNING", "text")
        return dlq(args, _overrides(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
