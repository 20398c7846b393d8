"""The shared StateStore table (statecases.py) against the in-memory store."""

from __future__ import annotations

import pytest
from statecases import CASES

from runeworker.engine.state import MemoryStore


def test_table_covers_every_behaviour() -> None:
    assert len(CASES) == 24


@pytest.mark.parametrize("name", sorted(CASES))
def test_memory_store(name: str) -> None:
    CASES[name](MemoryStore())
