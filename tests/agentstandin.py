"""A stand-in for the `agent` node in tests of the official templates (runeworker's own agent
node talks to an LLM; these tests are about the nodes around it). Deterministic: the template
sheets-gmail-tracker asks the model to answer "PASSED" for an employee who logged at least 90 % of
20 working days, else a warning e-mail. The employee is the split item `[name, email, days]`.

Loaded like any local node module: `RUNEWORKER_EXTRA_NODE_MODULES=agentstandin` with this folder
on PYTHONPATH registers it (last, so it replaces a built-in `agent`); in a test process,
`standing_in()` registers it for a while and puts the registry back."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from runeworker.engine import registry
from runeworker.engine.registry import NodeContext


def agent(ctx: NodeContext) -> dict[str, Any]:
    """{"final_response": "PASSED"} or a warning e-mail, from the employee row `$item`."""
    name, _email, days = ctx.context["$item"]
    prompt = " ".join(m["content"] for m in ctx.params.get("messages", []))
    if name not in prompt:  # the template's `User Data: $item` must arrive resolved
        raise AssertionError(f"the user message reached the agent unresolved: {prompt!r}")
    if int(days) >= 18:
        return {"final_response": "PASSED"}
    text = f"Dear {name}, you logged {days} of 20 working days this month. Please log your time."
    return {"final_response": text}


@contextlib.contextmanager
def standing_in() -> Iterator[None]:
    """The stand-in as `agent` inside the block, whatever was registered before it afterwards."""
    specs = registry.load()  # the registry's own table (a node type cannot be unregistered)
    previous = specs.get("agent")
    registry.node("agent")(agent)
    try:
        yield
    finally:
        if previous is None:
            specs.pop("agent", None)
        else:
            specs["agent"] = previous


if __name__ in os.environ.get(registry.EXTRA_MODULES_ENV, "").split(","):
    registry.node("agent")(agent)
