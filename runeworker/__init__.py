"""runeworker: a Rune workflow worker (prefork pika consumers, Redis state, embedded runner).

The small public API for node authors lives here: `node` registers a node type,
`NodeContext` is what a node receives, `NodeError` is what it raises.
"""

from __future__ import annotations

__version__ = "0.1.0"

from runeworker.engine.registry import NodeContext, NodeSpec, node
from runeworker.errors import NodeError, RuneworkerError

__all__ = ["NodeContext", "NodeError", "NodeSpec", "RuneworkerError", "__version__", "node"]
