"""Node types of the fault suite, loaded by `serve` through RUNEWORKER_EXTRA_NODE_MODULES.

`fault.spin` never returns: the child running it stops heartbeating, the supervisor kills it
after `worker.timeout`, and the message is redelivered until the poison limit dead-letters it.
"""

from __future__ import annotations

import time
from typing import Any, NoReturn

from runeworker.engine.registry import NodeContext, node


@node("fault.spin")
def spin(_ctx: NodeContext) -> dict[str, Any]:
    """Loop forever (sleeping, so a hung child does not also starve the machine's CPUs)."""
    _forever()


def _forever() -> NoReturn:
    while True:
        time.sleep(0.01)
