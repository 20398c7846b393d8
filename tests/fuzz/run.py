"""`python -m tests.fuzz.run`: fuzz a real `runeworker serve` (tests/fuzz/README.md).

Exit status 0 when every promise held, 1 when a violation was found (each is listed, with the
command that builds its cases again), 2 on a usage error."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from .harness import fuzz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__)
    parser.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    parser.add_argument("--cases", type=int, default=2000, help="cases (default 2000)")
    parser.add_argument("--batch", type=int, default=50, help="cases per batch (default 50)")
    parser.add_argument(
        "--processes", type=int, default=2, choices=(1, 2), help="serve's children (default 2)"
    )
    parser.add_argument("--only", default="", help="comma-separated case numbers to run alone")
    parser.add_argument("--dump", type=Path, help="write each violating case's body here")
    parser.add_argument("--limit", type=int, default=200, help="violations listed (default 200)")
    args = parser.parse_args(argv)
    # SIGTERM ends the run as Ctrl-C does: serve stopped, vhost and Redis keys deleted
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.getLogger("runeworker").setLevel(logging.ERROR)  # the seeds' runs, in this process
    only = [int(n) for n in args.only.split(",") if n.strip()] or None
    report = fuzz(args.seed, args.cases, processes=args.processes, batch=args.batch,
                  only=only, dump=args.dump, progress=True)  # fmt: skip
    print(report.explain(args.limit))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
