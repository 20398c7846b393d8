"""A stand-in for the `agent` node in tests of the official templates (runeworker's own agent
node talks to an LLM; these tests are about the nodes around it). Deterministic: the template
sheets-gmail-tracker asks the model to answer "PASSED" for an employee who logged at least 90 % of
20 working days, else a warning e-mail. The employee is the split item `[name, email, days]`.

Loaded like any local node module: `RUNEWORKER_EXTRA_NODE_MODULES=agentstandin` with this folder
on PYTHONPATH (registered last, it replaces a built-in `agent`). Importing it registers it."""

from __future__ import annotations

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


registry.node("agent")(agent)
