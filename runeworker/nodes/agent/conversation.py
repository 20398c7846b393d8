"""What the tool-calling loop and the providers exchange, whatever the provider.

Each provider keeps the conversation in its own API's form (Gemini contents with their thought
signatures, OpenAI chat messages, Anthropic content blocks) and hands the loop a `Reply`: the
text, the tool calls and the token usage of one model response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

# A lone UTF-16 surrogate: what Python's json makes of `"\ud83d"` (half of an emoji)
_LONE_SURROGATE = re.compile("[\\ud800-\\udfff]")


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, description and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for. `problem`: its arguments could not be read (the call is
    answered with that error instead of being run)."""

    id: str
    name: str
    args: dict[str, Any]
    problem: str = ""


@dataclass(frozen=True)
class ToolResult:
    """The answer to one call: the tool's response object (`{"error": ...}` when it failed)."""

    call: ToolCall
    response: dict[str, Any]

    @property
    def failed(self) -> bool:
        """The response is an error (Anthropic marks such a tool_result `is_error`)."""
        return set(self.response) == {"error"}


@dataclass(frozen=True)
class Usage:
    """Tokens of one request."""

    prompt: int = 0
    completion: int = 0
    total: int = 0


@dataclass(frozen=True)
class Reply:
    """One model response."""

    text: str
    calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)


class Chat(Protocol):
    """A conversation with one model, seeded with the system prompt, the history and the
    prompt. `reply` asks the model; `answer` adds that reply and the tool results to the
    conversation, so that the next `reply` continues it."""

    async def reply(self) -> Reply:
        """Send the conversation; the model's response (NodeError when the request fails)."""
        ...

    def answer(self, reply: Reply, results: list[ToolResult]) -> None:
        """Add `reply` (the last one) and the results of its calls, in the calls' order."""
        ...

    async def close(self) -> None:
        """Release the connections."""
        ...


def mend(value: Any) -> Any:
    """`value` with every lone surrogate in its strings read as U+FFFD, as Go's encoding/json
    reads the escape (no UTF-8 encoder takes one: the http node's body, the status, the next
    request would fail on it). For values at most `runeworker.engine.depth.MAX_DEPTH` deep:
    it recurses."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {mend(k): mend(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mend(v) for v in value]
    return value
