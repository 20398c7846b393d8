"""The node's output, folded from the replies and tool results of a run, in upstream's shape
(services/rune-worker/pkg/nodes/custom/agent/output_collector.go):

    {messages: [{role: "model", content}], final_response, tool_calls: [{id, name, args,
     response}], model, usage: {prompt_tokens, completion_tokens, total_tokens}}

`messages` holds the model's text of each response that had some (the seeded history and the
prompt are not repeated: `$Agent.messages[0].content` is the model's first text, which the
daily-weather-briefing template mails). `final_response` is the text of the response that
called no tool. `messages` and `tool_calls` are `null` while they hold nothing, as upstream
writes its nil slices (a run that called no tool has `"tool_calls": null`). One difference:
upstream keeps the usage of the last request only, believing the counts cumulative (its comment
says so); here they are summed over the run's requests, which is what the run used.
"""

from __future__ import annotations

from typing import Any

from runeworker.nodes.agent.conversation import Reply, ToolResult, Usage

MODEL_ROLE = "model"


class Transcript:
    """Collects one run."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.final_response = ""
        self.usage = Usage()
        self._pending: list[dict[str, Any]] = []  # the entries of the last reply's calls

    def reply(self, reply: Reply) -> None:
        """A model response: its text, its calls (answered later), its tokens."""
        if reply.text:
            self.messages.append({"role": MODEL_ROLE, "content": reply.text})
            if not reply.calls:
                self.final_response = reply.text
        self._pending = [{"id": c.id, "name": c.name, "args": c.args} for c in reply.calls]
        self.tool_calls += self._pending
        u = self.usage
        self.usage = Usage(
            u.prompt + reply.usage.prompt,
            u.completion + reply.usage.completion,
            u.total + reply.usage.total,
        )

    def results(self, results: list[ToolResult]) -> None:
        """The responses to the calls of the last reply, in the calls' order."""
        for entry, result in zip(self._pending, results, strict=True):
            entry["response"] = result.response
        self._pending = []

    def output(self) -> dict[str, Any]:
        """The node output."""
        return {
            "messages": self.messages or None,
            "final_response": self.final_response,
            "tool_calls": self.tool_calls or None,
            "model": self.model,
            "usage": {
                "prompt_tokens": self.usage.prompt,
                "completion_tokens": self.usage.completion,
                "total_tokens": self.usage.total,
            },
        }
