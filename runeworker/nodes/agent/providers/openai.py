"""OpenAI's chat completions API through the openai SDK, with function tools: any compatible
server too (vLLM, Ollama, LM Studio) at `agent.openai_base_url`. Beyond upstream, which refuses
the provider (services/rune-worker/pkg/nodes/custom/agent/model_factory.go).

A server that needs no key gets a placeholder: the SDK insists on one, and only the public API
is refused without a credential (a clear error instead of its 401).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessage,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from runeworker.engine import depth
from runeworker.errors import NodeError
from runeworker.nodes.agent import tls
from runeworker.nodes.agent.conversation import Reply, ToolCall, ToolResult, Usage, mend
from runeworker.nodes.agent.providers.exchange import Endpoint, count, exchange, malformed
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
        text, calls, given = _read(completion)
        # the text goes back as the loop reads it (runeworker/nodes/agent/loop.py `as_go_reads`)
        self._last = {"role": "assistant", "content": mend(text) or None, "tool_calls": given}
        return Reply(text, tuple(calls), _usage(completion))

    def answer(self, reply: Reply, results: list[ToolResult]) -> None:
        """The assistant message with its tool calls, then one tool message per result."""
        self.messages.append(self._last)  # type: ignore[arg-type]  # an assistant message param
        for r in results:
            content = json.dumps(r.response, ensure_ascii=False, default=str)
            self.messages.append({"role": "tool", "tool_call_id": r.call.id, "content": content})

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.close()


def _read(completion: object) -> tuple[str, list[ToolCall], list[dict[str, Any]]]:
    """The text and tool calls of the first choice, and the calls as they go back. The SDK
    builds its objects without checking them: every field is checked here."""
    if not isinstance(completion, ChatCompletion):
        raise malformed("openai", "the answer is not a JSON object")
    choices = completion.choices
    if not isinstance(choices, list) or not choices:
        raise NodeError("agent: openai returned no choice")
    message = getattr(choices[0], "message", None)
    if not isinstance(message, ChatCompletionMessage):
        raise malformed("openai", "choices[0].message is not an object")
    text = message.content
    if text is not None and not isinstance(text, str):
        raise malformed("openai", "choices[0].message.content is not text")
    tool_calls = message.tool_calls
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise malformed("openai", "choices[0].message.tool_calls is not a list")
    calls, given = [], []
    for n, call in enumerate(tool_calls or []):
        where = f"choices[0].message.tool_calls[{n}]"
        if not isinstance(call, openai.BaseModel):
            raise malformed("openai", f"{where} is not an object")
        if getattr(call, "type", None) not in (None, "function"):
            continue  # custom (grammar) tools are never offered; a call without a type is taken
        function = getattr(call, "function", None)
        if not isinstance(function, openai.BaseModel):
            raise malformed("openai", f"{where}.function is not an object")
        name = getattr(function, "name", None)
        if not isinstance(name, str):
            raise malformed("openai", f"{where}.function.name is not text")
        call_id = getattr(call, "id", None)
        if not isinstance(call_id, str) or not call_id:
            call_id = f"call_{uuid.uuid4().hex}"  # a server that numbers no call
        tool_call, arguments = _call(call_id, name, getattr(function, "arguments", None))
        calls.append(tool_call)
        function_param = {"name": name, "arguments": arguments}
        given.append({"id": call_id, "type": "function", "function": function_param})
    return text or "", calls, given


def _call(call_id: str, name: str, arguments: object) -> tuple[ToolCall, str]:
    """The call, and its arguments as the API wants them back (a JSON text)."""
    if arguments is None or arguments == "":
        return ToolCall(call_id, name, {}), "{}"
    if isinstance(arguments, dict):  # an object where the API has its JSON text
        return ToolCall(call_id, name, arguments), json.dumps(arguments, default=str)
    if not isinstance(arguments, str):
        return ToolCall(call_id, name, {}, "the arguments are not a JSON object"), "{}"
    try:
        args = json.loads(arguments)
    except ValueError as exc:
        return ToolCall(call_id, name, {}, f"the arguments are not valid JSON: {exc}"), arguments
    except RecursionError:
        problem = f"the arguments are {depth.TOO_DEEP}"
        return ToolCall(call_id, name, {}, problem), arguments
    if not isinstance(args, dict):
        return ToolCall(call_id, name, {}, "the arguments are not a JSON object"), arguments
    return ToolCall(call_id, name, args), arguments


def _usage(completion: object) -> Usage:
    u = getattr(completion, "usage", None)
    return Usage(
        count(getattr(u, "prompt_tokens", None)),
        count(getattr(u, "completion_tokens", None)),
        count(getattr(u, "total_tokens", None)),
    )
