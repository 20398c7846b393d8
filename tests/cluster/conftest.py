"""The cluster suite runs only when asked for with `-m cluster` (deploy/SCALING.md): it starts
a RabbitMQ cluster, Redis Sentinel and a Redis Cluster of its own, which a plain `pytest` run
should not pay for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the suite reuses the fault suite's modules as `tests.faults.*`, also under a bare `pytest`
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "cluster" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="cluster suite: pytest -m cluster tests/cluster")
    for item in items:
        # the marker, not `item.keywords`: those hold every parent's name too, and a checkout
        # in a directory named "cluster" would skip the whole test suite
        if item.get_closest_marker("cluster") is not None:
            item.add_marker(skip)
