"""Anthropic's messages API through the anthropic SDK, with client tools (tool_use /
tool_result blocks). Beyond upstream, which refuses the provider
(services/rune-worker/pkg/nodes/custom/agent/model_factory.go).

The reply's content blocks go back as they came (thinking blocks carry signatures the API
checks). The API requires `max_tokens`: `agent.anthropic_max_tokens`. `temperature` is sent
in the body as the API reads it (the SDK no longer has a parameter for it).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
from anthropic.types import (
    AssistantMessageParam,
    Message,
    MessageParam,
    ToolParam,
    UserMessageParam,
)

from runeworker.errors import NodeError
from runeworker.nodes.agent import tls
from runeworker.nodes.agent.conversation import Reply, ToolCall, ToolResult, Usage
from runeworker.nodes.agent.providers.exchange import Endpoint, exchange
from runeworker.nodes.agent.providers.setup import Setup

PUBLIC = "https://api.anthropic.com"
KEYLESS = "no-key"  # explicit, so that the SDK never looks for a key or profile of its own


def open_chat(setup: Setup) -> AnthropicChat:
    """A chat with `setup.model` (NodeError without a key for the public API)."""
    base_url = setup.configured_base_url or PUBLIC
    if not setup.api_key and not setup.configured_base_url:
        raise NodeError("agent: anthropic provider requires an api_key credential")
    settings = setup.settings
    client = anthropic.AsyncAnthropic(
        api_key=setup.api_key or KEYLESS,
        base_url=base_url,  # explicit: the SDK would read ANTHROPIC_BASE_URL otherwise
        timeout=settings.agent_request_timeout,
        max_retries=settings.agent_max_retries,
        http_client=anthropic.DefaultAsyncHttpxClient(verify=tls.context()),
    )
    endpoint = Endpoint(
        "anthropic",
        setup.model.name,
        base_url,
        settings.agent_request_timeout,
        setup.meter,
        (anthropic.APIConnectionError,),
    )
    return AnthropicChat(client, endpoint, setup)


class AnthropicChat:
    """A messages conversation."""

    def __init__(self, client: anthropic.AsyncAnthropic, endpoint: Endpoint, setup: Setup) -> None:
        self.client = client
        self.endpoint = endpoint
        self.max_tokens = setup.settings.agent_anthropic_max_tokens
        self.options: dict[str, Any] = {}
        if setup.system_prompt:
            self.options["system"] = setup.system_prompt
        if setup.model.temperature is not None:
            # the SDK (2.x) no longer names it; the messages API and compatible servers read it
            self.options["extra_body"] = {"temperature": setup.model.temperature}
        tools: list[ToolParam] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in setup.tools
        ]
        if tools:
            self.options["tools"] = tools
        self.messages: list[MessageParam] = [
            AssistantMessageParam(role="assistant", content=m.content)
            if m.role == "model"
            else UserMessageParam(role="user", content=m.content)
            for m in (*setup.history, setup.prompt)
        ]
        self._last: Any = []  # the content blocks of the last reply, as request params

    async def reply(self) -> Reply:
        """Ask the model (one messages request)."""
        message = await exchange(
            self.endpoint,
            lambda: self.client.messages.create(
                model=self.endpoint.model,
                max_tokens=self.max_tokens,
                messages=self.messages,
                **self.options,
            ),
            _usage,
        )
        self._last = [block.to_dict() for block in message.content]
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = tuple(_call(b.id, b.name, b.input) for b in message.content if b.type == "tool_use")
        return Reply(text, calls, _usage(message))

    def answer(self, reply: Reply, results: list[ToolResult]) -> None:
        """The assistant turn as it came, then one user turn of tool_result blocks."""
        self.messages.append(AssistantMessageParam(role="assistant", content=self._last))
        blocks: list[Any] = [
            {
                "type": "tool_result",
                "tool_use_id": r.call.id,
                "content": json.dumps(r.response, ensure_ascii=False, default=str),
                "is_error": r.failed,
            }
            for r in results
        ]
        self.messages.append(UserMessageParam(role="user", content=blocks))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.close()


def _call(call_id: str, name: str, arguments: object) -> ToolCall:
    if not isinstance(arguments, dict):
        return ToolCall(call_id, name, {}, "the tool input is not a JSON object")
    return ToolCall(call_id, name, arguments)


def _usage(message: Message) -> Usage:
    u = message.usage
    # cache writes and reads are prompt tokens too (input_tokens counts only the rest)
    prompt = (
        u.input_tokens + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0)
    )
    return Usage(prompt, u.output_tokens, prompt + u.output_tokens)
