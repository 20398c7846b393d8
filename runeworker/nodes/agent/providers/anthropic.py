"""Anthropic's messages API through the anthropic SDK, with client tools (tool_use /
tool_result blocks). Beyond upstream, which refuses the provider
(services/rune-worker/pkg/nodes/custom/agent/model_factory.go).

The reply's content blocks go back as they came (thinking blocks carry signatures the API
checks); a tool_use block without an id gets one, named as upstream's ADK names a call without
one (`adk-<uuid>`), and goes back with it, so that its tool_result names it. The API requires
`max_tokens`: `agent.anthropic_max_tokens`. `temperature` is sent in the body as the API reads
it (the SDK no longer has a parameter for it).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import anthropic
from anthropic.types import (
    AssistantMessageParam,
    Message,
    MessageParam,
    ToolParam,
    UserMessageParam,
)

from runeworker.engine import depth
from runeworker.errors import NodeError
from runeworker.nodes.agent import tls
from runeworker.nodes.agent.conversation import Reply, ToolCall, ToolResult, Usage, mend
from runeworker.nodes.agent.providers.exchange import Endpoint, count, exchange, malformed
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
        blocks = _blocks(message)
        texts: list[str] = []
        calls: list[ToolCall] = []
        given: list[dict[str, Any]] = []
        for n, block in enumerate(blocks):
            kind = getattr(block, "type", None)
            if kind == "text":
                text = getattr(block, "text", None)
                if not isinstance(text, str):
                    raise malformed("anthropic", f"content[{n}].text is not text")
                texts.append(text)
            if kind == "tool_use":
                call = _call(n, block)
                calls.append(call)
                # as it came (the SDK would warn of an id or input of another type), with the
                # id its tool_result names, made up or not
                given.append({**block.to_dict(warnings=False), "id": call.id})
            else:
                given.append(block.to_dict())
        # the blocks go back as the loop reads them (runeworker/nodes/agent/loop.py `as_go_reads`)
        self._last = given if depth.exceeds(given) else mend(given)
        return Reply("".join(texts), tuple(calls), _usage(message))

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


def _blocks(message: object) -> list[anthropic.BaseModel]:
    """The content blocks of a message. The SDK builds its objects without checking them."""
    if not isinstance(message, Message):
        raise malformed("anthropic", "the answer is not a JSON object")
    content: object = message.content
    if not isinstance(content, list):
        raise malformed("anthropic", "content is not a list")
    blocks: list[anthropic.BaseModel] = []
    for n, block in enumerate(content):
        if not isinstance(block, anthropic.BaseModel):
            raise malformed("anthropic", f"content[{n}] is not an object")
        blocks.append(block)
    return blocks


def _call(n: int, block: anthropic.BaseModel) -> ToolCall:
    call_id, name = getattr(block, "id", None), getattr(block, "name", None)
    if not isinstance(call_id, str) or not call_id:
        # a server that numbers no call: an id as upstream's ADK makes one (`adk-<uuid>`), which
        # the tool_use block and its tool_result carry back (the API wants them paired)
        call_id = f"adk-{uuid.uuid4()}"
    if not isinstance(name, str):
        raise malformed("anthropic", f"content[{n}].name is not text")
    arguments = getattr(block, "input", None)
    if not isinstance(arguments, dict):
        return ToolCall(call_id, name, {}, "the tool input is not a JSON object")
    return ToolCall(call_id, name, arguments)


def _usage(message: object) -> Usage:
    u = getattr(message, "usage", None)
    # cache writes and reads are prompt tokens too (input_tokens counts only the rest)
    prompt = sum(
        count(getattr(u, field, None))
        for field in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    completion = count(getattr(u, "output_tokens", None))
    return Usage(prompt, completion, prompt + completion)
