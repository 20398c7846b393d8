"""The shared barrier and timer table (statecases.FLOW_CASES) against the in-memory store."""

from __future__ import annotations

import pytest
from statecases import FLOW_CASES

from runeworker.engine.state import MemoryStore


def test_flow_table_is_complete() -> None:
    assert len(FLOW_CASES) == 15


@pytest.mark.parametrize("name", sorted(FLOW_CASES))
def test_memory_flow(name: str) -> None:
    FLOW_CASES[name](MemoryStore())
