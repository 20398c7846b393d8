"""Run the fault scenarios and print their figures.

    python -m tests.faults.report [--workflows N] [--scenario NAME ...] [--repeat K]

from the repository root, with RabbitMQ on 127.0.0.1:5672 and Redis on 127.0.0.1:6379 (or
RUNEWORKER_TEST_AMQP / RUNEWORKER_TEST_REDIS). Exits 1 when any scenario lost, duplicated or
stranded anything, and prints what and where.
"""

from __future__ import annotations

import argparse
import sys
import time

from .figures import Figures, table
from .scenarios import SCENARIOS

DEFAULT_WORKFLOWS = 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workflows", type=int, default=DEFAULT_WORKFLOWS,
                        help=f"workflows per scenario (default {DEFAULT_WORKFLOWS})")  # fmt: skip
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only this scenario (repeatable); default: all")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="run each scenario K times")
    args = parser.parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    began = time.monotonic()
    results: list[Figures] = []
    for _ in range(args.repeat):
        for name in names:
            print(f"running {name}: {SCENARIOS[name].description} ...", flush=True)
            figures = SCENARIOS[name].run(args.workflows)
            results.append(figures)
            ok = "  ok" + (f" (logs kept in {figures.logs})" if figures.logs else "")
            print(figures.explain() if figures.problems() else ok, flush=True)
    print()
    print(table(results))
    print(f"\n{len(results)} runs in {time.monotonic() - began:.0f} s")
    failed = [f for f in results if f.problems()]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
