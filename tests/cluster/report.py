"""The cluster scenarios with their figures: `python -m tests.cluster.report [NAME ...]`.

Size: RUNEWORKER_CLUSTER_WORKFLOWS workflows per scenario (1000 by default here; the pytest
sample uses 60). Prints one block per scenario: the fault suite's counts, the timers, the
problems per workflow kind and what was measured (failover windows, stalls, each
supervisor's share of the deliveries).
"""

from __future__ import annotations

import os
import sys
import time

from tests.faults.figures import table

from .scenarios import SCENARIOS


def main(argv: list[str]) -> int:
    count = int(os.environ.get("RUNEWORKER_CLUSTER_WORKFLOWS", "1000"))
    names = argv or list(SCENARIOS)
    results = []
    for name in names:
        start = time.monotonic()
        figures = SCENARIOS[name](count)
        print(f"== {name}: {count} workflows, {time.monotonic() - start:.0f} s with servers")
        print(figures.explain(), flush=True)
        results.append(figures)
    print()
    print(table([f.figures for f in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
