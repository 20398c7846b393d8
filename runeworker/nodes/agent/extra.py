"""The optional dependencies of the agent node, `pip install 'runeworker[agent]'`: without them
the node is still registered (a workflow naming it is valid) and fails saying what to install."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from runeworker.errors import NodeError

INSTALL = "pip install 'runeworker[agent]'"
# top-level modules of the extra's distributions (google-genai, openai, anthropic, mcp, httpx2)
SDK_MODULES = frozenset({"google", "openai", "anthropic", "mcp", "mcp_types", "httpx2"})


@contextlib.contextmanager
def required() -> Iterator[None]:
    """Turn the import of a missing SDK inside the block into a NodeError naming the extra."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in SDK_MODULES:
            raise
        raise NodeError(
            f"agent: the agent node needs the agent extra ({exc.name} is not installed): {INSTALL}"
        ) from None
