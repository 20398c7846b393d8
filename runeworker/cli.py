"""Command line: parses argv and dispatches to `runeworker.commands`; no logic of its own."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from runeworker import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="runeworker", description="Rune workflow worker")
    p.add_argument("--version", action="version", version=f"runeworker {__version__}")
    p.add_argument("--log-level", default="WARNING", help="log level (default WARNING)")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a workflow in this process (no broker)")
    run.add_argument("workflow", help="workflow JSON file, or the name of a shipped example")
    run.add_argument("--input", help="trigger input: JSON object, or @file")
    run.add_argument("--json", action="store_true", help="print the exact wire messages")

    val = sub.add_parser("validate", help="check a workflow definition")
    val.add_argument("workflow")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "run":
        from runeworker.commands.run import run

        return run(args.workflow, args.input, args.json)
    if args.command == "validate":
        from runeworker.commands.validate import validate

        return validate(args.workflow)
    return 2


if __name__ == "__main__":
    sys.exit(main())
