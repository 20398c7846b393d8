"""Gemini through google-genai: generateContent with function declarations, on the Gemini API
(backend `ai_studio`, the default) or Vertex AI (`vertex`, with an API key: express mode), as
upstream's model_factory.go. API versions as upstream's Go SDK: v1beta and v1beta1.

The model's contents go back into the conversation as they came (a Gemini 3 function call
carries a thought signature the next request must return). A call without an id gets one named
like upstream's ADK (`adk-<uuid>`) for the output, and goes back without it, as ADK does.
"""

from __future__ import annotations

import uuid

import httpx2
from google import genai
from google.genai import types

from runeworker.errors import NodeError
from runeworker.nodes.agent import tls
from runeworker.nodes.agent.conversation import Reply, ToolCall, ToolResult, Usage
from runeworker.nodes.agent.providers.exchange import Endpoint, exchange, malformed
from runeworker.nodes.agent.providers.setup import Setup

PUBLIC = {
    "ai_studio": "https://generativelanguage.googleapis.com/",
    "vertex": "https://aiplatform.googleapis.com/",
}
API_VERSIONS = {"ai_studio": "v1beta", "vertex": "v1beta1"}


def open_chat(setup: Setup) -> GeminiChat:
    """A chat with `setup.model` (NodeError without an API key, as upstream)."""
    if not setup.api_key:
        raise NodeError("agent: gemini provider requires an api_key credential")
    backend = setup.model.backend or "ai_studio"
    base_url = setup.configured_base_url or PUBLIC[backend]
    settings = setup.settings
    options = types.HttpOptions(
        base_url=base_url,
        api_version=API_VERSIONS[backend],
        timeout=int(settings.agent_request_timeout * 1000),
        retry_options=types.HttpRetryOptions(attempts=settings.agent_max_retries + 1),
        client_args={"verify": tls.context()},
        async_client_args={
            "verify": tls.context(),
            "ssl": tls.context(),  # websockets
            "event_hooks": {"response": [_refuse_no_object]},
        },
    )
    client = genai.Client(vertexai=backend == "vertex", api_key=setup.api_key, http_options=options)
    endpoint = Endpoint(
        "gemini",
        setup.model.name,
        base_url,
        settings.agent_request_timeout,
        setup.meter,
        (httpx2.TransportError,),
    )
    return GeminiChat(client, endpoint, _config(setup), _contents(setup))


# What a successful answer's body holds when it is no JSON object, by its first character: the
# SDK reads a list or a text as an answer without candidates, and fails on a number.
_NO_OBJECT = {
    b"[": "a list",
    b'"': "a string",
    b"t": "true or false",
    b"f": "true or false",
    b"n": "null",
    b"": "an empty body",
    **{bytes([c]): "a number" for c in b"-0123456789"},
}


async def _refuse_no_object(response: httpx2.Response) -> None:
    """An httpx response hook: a successful answer whose body is no JSON object fails, naming
    what it is (the SDK keeps nothing of the body it reads). Not JSON at all: the SDK says."""
    if response.is_success:
        await response.aread()  # the SDK then reads it from memory
        what = _NO_OBJECT.get(response.content.lstrip()[:1])
        if what:
            raise malformed("gemini", f"the answer is not a JSON object but {what}")


def _config(setup: Setup) -> types.GenerateContentConfig:
    declarations = [
        types.FunctionDeclaration(
            name=t.name, description=t.description, parameters_json_schema=t.parameters
        )
        for t in setup.tools
    ]
    return types.GenerateContentConfig(
        system_instruction=setup.system_prompt or None,
        temperature=setup.model.temperature,
        tools=[types.Tool(function_declarations=declarations)] if declarations else None,
        # the loop runs the tools (and counts the rounds), never the SDK
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )


def _contents(setup: Setup) -> list[types.Content]:
    turns = [*setup.history, setup.prompt]
    return [types.Content(role=m.role, parts=[types.Part(text=m.content)]) for m in turns]


class GeminiChat:
    """A generateContent conversation."""

    def __init__(
        self,
        client: genai.Client,
        endpoint: Endpoint,
        config: types.GenerateContentConfig,
        contents: list[types.Content],
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.config = config
        self.contents = contents
        self._last: types.Content | None = None
        self._made_up: set[str] = set()  # call ids this side invented

    async def reply(self) -> Reply:
        """Ask the model (one generateContent request)."""
        response = await exchange(
            self.endpoint,
            lambda: self.client.aio.models.generate_content(
                model=self.endpoint.model, contents=self.contents, config=self.config
            ),
            _usage,
        )
        if not response.candidates:
            feedback = response.prompt_feedback
            if feedback and feedback.block_reason:
                reason = getattr(feedback.block_reason, "value", feedback.block_reason)  # an enum
                raise NodeError(f"agent: gemini returned no answer (prompt blocked: {reason})")
            raise NodeError("agent: gemini returned no candidates and no block reason")
        content = response.candidates[0].content or types.Content(role="model", parts=[])
        self._last = content
        parts = content.parts or []
        text = "".join(p.text for p in parts if p.text and not p.thought)
        calls = tuple(self._call(p.function_call) for p in parts if p.function_call)
        return Reply(text, calls, _usage(response))

    def _call(self, fc: types.FunctionCall) -> ToolCall:
        call_id = fc.id
        if not call_id:
            call_id = f"adk-{uuid.uuid4()}"
            self._made_up.add(call_id)
        return ToolCall(call_id, fc.name or "", dict(fc.args or {}))

    def answer(self, reply: Reply, results: list[ToolResult]) -> None:
        """The model's content as it came, then the function responses in one user turn."""
        assert self._last is not None, "answer() follows reply()"
        self.contents.append(self._last)
        parts = [
            types.Part(
                function_response=types.FunctionResponse(
                    id=None if r.call.id in self._made_up else r.call.id,
                    name=r.call.name,
                    response=r.response,
                )
            )
            for r in results
        ]
        self.contents.append(types.Content(role="user", parts=parts))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.aio.aclose()


def _usage(response: types.GenerateContentResponse) -> Usage:
    u = response.usage_metadata
    if u is None:
        return Usage()
    # the SDK leaves an absent count None
    return Usage(u.prompt_token_count or 0, u.candidates_token_count or 0, u.total_token_count or 0)
