"""OpenAI's chat completions API through the openai SDK, with function tools: any compatible
server too (vLLM, Ollama, LM Studio) at `agent.openai_base_url`. Beyond upstream, which refuses
the provider (services/rune-worker/pkg/nodes/custom/agent/model_factory.go).

A server that needs no key gets a placeholder: the SDK insists on one, and only the public API
is refused without a credential (a clear error instead of its 401).
"""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam, ChatCompletionToolParam

from runeworker.errors import NodeError
from runeworker.nodes.agent import tls
from runeworker.nodes.agent.conversation import Reply, ToolCall, ToolResult, Usage
from runeworker.nodes.agent.providers.exchange import Endpoint, exchange
from runeworker.nodes.agent.providers.setup import Setup

PUBLIC = "https://api.openai.com/v1"
KEYLESS = "no-key"  # what a local server that checks nothing receives as the key
_ROLES = {"user": "user", "model": "assistant"}


def open_chat(setup: Setup) -> OpenAIChat:
    """A chat with `setup.model` (NodeError without a key for the public API)."""
    base_url = setup.configured_base_url or PUBLIC
    if not setup.api_key and not setup.configured_base_url:
        raise NodeError(
            "agent: openai provider requires an api_key credential (a server that needs none, "
            "such as Ollama, is named by agent.openai_base_url or RUNEWORKER_AGENT_OPENAI_BASE_URL)"
        )
    settings = setup.settings
    client = openai.AsyncOpenAI(
        api_key=setup.api_key or KEYLESS,
        base_url=base_url,  # explicit: the SDK would read OPENAI_BASE_URL otherwise
        timeout=settings.agent_request_timeout,
        max_retries=settings.agent_max_retries,
        http_client=openai.DefaultAsyncHttpxClient(verify=tls.context()),
    )
    endpoint = Endpoint(
        "openai",
        setup.model.name,
        base_url,
        settings.agent_request_timeout,
        setup.meter,
        (openai.APIConnectionError,),
    )
    return OpenAIChat(client, endpoint, setup)


class OpenAIChat:
    """A chat completions conversation."""

    def __init__(self, client: openai.AsyncOpenAI, endpoint: Endpoint, setup: Setup) -> None:
        self.client = client
        self.endpoint = endpoint
        self.temperature = setup.model.temperature
        self.tools: list[ChatCompletionToolParam] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in setup.tools
        ]
        self.messages: list[ChatCompletionMessageParam] = []
        if setup.system_prompt:
            self.messages.append({"role": "system", "content": setup.system_prompt})
        for m in (*setup.history, setup.prompt):
            if m.role == "model":
                self.messages.append({"role": "assistant", "content": m.content})
            else:
                self.messages.append({"role": "user", "content": m.content})
        self._last: dict[str, Any] = {}

    async def reply(self) -> Reply:
        """Ask the model (one chat completion)."""
        extra: dict[str, Any] = {}
        if self.tools:
            extra["tools"] = self.tools
        if self.temperature is not None:
            extra["temperature"] = self.temperature
        completion = await exchange(
            self.endpoint,
            lambda: self.client.chat.completions.create(
                model=self.endpoint.model, messages=self.messages, **extra
            ),
            _usage,
        )
        if not completion.choices:
            raise NodeError("agent: openai returned no choice")
        message = completion.choices[0].message
        calls, given = [], []
        for call in message.tool_calls or []:
            if call.type != "function":
                continue  # custom (grammar) tools are never offered
            name, arguments = call.function.name, call.function.arguments
            given.append(
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
            calls.append(_call(call.id, name, arguments))
        self._last = {"role": "assistant", "content": message.content, "tool_calls": given}
        return Reply(message.content or "", tuple(calls), _usage(completion))

    def answer(self, reply: Reply, results: list[ToolResult]) -> None:
        """The assistant message with its tool calls, then one tool message per result."""
        self.messages.append(self._last)  # type: ignore[arg-type]  # an assistant message param
        for r in results:
            content = json.dumps(r.response, ensure_ascii=False, default=str)
            self.messages.append({"role": "tool", "tool_call_id": r.call.id, "content": content})

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.close()


def _call(call_id: str, name: str, arguments: str) -> ToolCall:
    try:
        args = json.loads(arguments or "{}")
    except ValueError as exc:
        return ToolCall(call_id, name, {}, f"the arguments are not valid JSON: {exc}")
    if not isinstance(args, dict):
        return ToolCall(call_id, name, {}, "the arguments are not a JSON object")
    return ToolCall(call_id, name, args)


def _usage(completion: ChatCompletion) -> Usage:
    u = completion.usage
    if u is None:
        return Usage()
    return Usage(u.prompt_tokens, u.completion_tokens, u.total_tokens)
