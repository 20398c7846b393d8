"""Fixtures of the worker-loop unit tests: the in-memory broker and store of stubbroker.py (a
module may define its own of the same name)."""

from __future__ import annotations

import pytest
from stubbroker import StubBroker, StubStore


@pytest.fixture
def broker() -> StubBroker:
    return StubBroker()


@pytest.fixture
def store() -> StubStore:
    return StubStore()
