"""Fixtures shared by the `runeworker serve` tests of this folder (tests/e2e/serving.py holds
their helpers); a module may override one, as test_flow_control.py does for its private node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serving import Rune


@pytest.fixture
def rune(amqp_url: str) -> Iterator[Rune]:
    """The API's side (start messages, completions) on the session's vhost."""
    client = Rune(amqp_url)
    try:
        yield client
    finally:
        client.close()
