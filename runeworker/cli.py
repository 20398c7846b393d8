"""Command line: parses argv and dispatches to `runeworker.commands`; no logic of its own."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from runeworker import __version__, logs


def _config_flags(p: argparse.ArgumentParser, *flags: str) -> None:
    """-c, plus the named flags that override the config file and the environment (highest
    precedence); each command lists only the flags it uses."""
    p.add_argument("-c", "--config", help="TOML config file (default: $RUNEWORKER_CONFIG)")
    if "processes" in flags:
        p.add_argument("--processes", type=int, metavar="N", help="worker children")
    if "prefetch" in flags:
        p.add_argument("--prefetch", type=int, metavar="N", help="prefetch per consumer")
    if "queue" in flags:
        p.add_argument("--queue", metavar="NAME", help="execution queue (broker.queue)")
    if "queue_type" in flags:
        p.add_argument(
            "--queue-type",
            dest="queue_type",
            choices=["classic", "quorum"],
            help="broker.queue_type (default classic): the type the execution queue is "
            "declared with; on quorum queues both contenders commit with publisher confirms "
            "instead of transactions (a vhost used with the other type is refused: use a "
            "fresh one)",
        )
    if "metrics" in flags:
        p.add_argument(
            "--metrics-listen", metavar="HOST:PORT", help="address of /metrics, '' to disable"
        )
    if "logging" in flags:
        p.add_argument(
            "--log-level",
            dest="log_level",
            metavar="LEVEL",
            type=str.upper,
            choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
            help="DEBUG, INFO, WARNING, ERROR or CRITICAL (logging.level)",
        )
        p.add_argument(
            "--log-format", dest="log_format", choices=["json", "text"], help="logging.format"
        )


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (a usage error otherwise, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds >= 0 (`inf` waits without end)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


_SERVE_FLAGS = ("processes", "prefetch", "queue", "metrics", "logging")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "worker.processes": getattr(args, "processes", None),
        "broker.prefetch": getattr(args, "prefetch", None),
        "broker.queue": getattr(args, "queue", None),
        "broker.queue_type": getattr(args, "queue_type", None),
        "metrics.listen": getattr(args, "metrics_listen", None),
        "logging.level": getattr(args, "log_level", None),
        "logging.format": getattr(args, "log_format", None),
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
    run.add_argument(
        "-c",
        "--config",
        help="TOML config file for the node settings (default: $RUNEWORKER_CONFIG)",
    )

    val = sub.add_parser("validate", help="check a workflow definition")
    val.add_argument(
        "workflow",
        help="workflow JSON file (definition, execution message, Rune template or "
        "canvas graph), or the name of a shipped example",
    )

    conv = sub.add_parser(
        "convert", help="print the workflow definition of a Rune template or canvas graph"
    )
    conv.add_argument("workflow", help="template or canvas graph JSON file")

    serve = sub.add_parser("serve", help="run the supervisor and its worker children")
    _config_flags(serve, *_SERVE_FLAGS)

    check = sub.add_parser("check-config", help="print the effective config, secrets masked")
    _config_flags(check, *_SERVE_FLAGS)

    submit = sub.add_parser("submit", help="publish a workflow run like the Rune API does")
    submit.add_argument("workflow", help="workflow JSON file, or the name of a shipped example")
    submit.add_argument("--input", help="trigger input: JSON object, or @file")
    submit.add_argument("--wait", action="store_true", help="show statuses until completion")
    submit.add_argument(
        "--timeout",
        type=_seconds,
        default=300.0,
        metavar="SECONDS",
        help="with --wait: seconds to wait for the completion (default 300; exit 3 after)",
    )
    submit.add_argument(
        "--first-successor",
        action="store_true",
        help="start at the trigger's first successor (what a Go worker needs)",
    )
    _config_flags(submit, "queue")

    bench = sub.add_parser("bench", help="measure node throughput and latency against the broker")
    _config_flags(bench, "processes", "prefetch", "queue_type")
    bench.add_argument(
        "--workflows", type=int, default=1000, help="workflows of the load phase (default 1000)"
    )
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
    bench.add_argument(
        "--timeout", type=float, default=300.0, help="seconds one phase may take (default 300)"
    )
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
    bench.add_argument(
        "--node",
        choices=("log", "http"),
        default="log",
        help="log: chains of log and conditional nodes (cheap); http: chains of http nodes "
        "calling a loopback server of the bench that answers after --http-delay",
    )
    bench.add_argument(
        "--http-delay",
        type=float,
        default=0.1,
        help="seconds the loopback server takes to answer each http node (--node http)",
    )

    dlq = sub.add_parser("dlq", help="inspect and replay the dead-letter queue")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list", help="one line per dead-lettered message")
    dlq_list.add_argument(
        "--limit", type=_positive_int, default=1000, metavar="N", help="list at most N (1000)"
    )
    dlq_show = dlq_sub.add_parser("show", help="headers and body of one message")
    dlq_show.add_argument("id", help="message id, or #N / N for the N-th")
    dlq_replay = dlq_sub.add_parser("replay", help="republish to the original queue")
    dlq_replay.add_argument("id", nargs="?", help="message id, or #N / N for the N-th")
    dlq_replay.add_argument("--all", action="store_true", help="every message, in order")
    dlq_replay.add_argument("--to", metavar="QUEUE", help="republish to this queue instead")
    for leaf in (dlq_list, dlq_show, dlq_replay):
        _config_flags(leaf)
    return p


# The signals that are commands to `serve` (drain, stop, reload, scale up and down) and whose
# default action ends or stops the process: held from here until the supervisor's handlers take
# them (`Arbiter._setup_signals`), so that one sent while `serve` starts is acted on, not fatal
# (a TERM then drains a supervisor with nothing to drain yet, and `serve` exits 0, as a stop
# of a running one does; nothing before the handlers blocks on the network, so a held signal
# waits for the imports and the config only). SIGINT stays Python's: Ctrl-C while it starts
# is a KeyboardInterrupt (`main`).
SERVE_COMMANDS = {signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU}


def main(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv)[:1] == ["serve"]:
        signal.pthread_sigmask(signal.SIG_BLOCK, SERVE_COMMANDS)
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:  # Ctrl-C: `run` and `submit` say what became of the execution
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`runeworker run ... | head`): no traceback, and nothing more
        # to flush into the closed pipe at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from runeworker.commands.run import run

        logs.setup("INFO" if args.verbose else "ERROR", "text")
        return run(args.workflow, args.input, args.json, config_path=args.config)
    if args.command == "validate":
        from runeworker.commands.validate import validate

        logs.setup("WARNING", "text")
        return validate(args.workflow)
    if args.command == "convert":
        from runeworker.commands.convert import convert

        return convert(args.workflow, sys.stdout)
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
