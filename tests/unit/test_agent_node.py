"""The agent node through the executor, against loopback mocks of each provider's REST API
(tests/llmkit.py) and of the JSON API its HTTP tool calls: the requests the SDKs send, the
tool-calling exchange, the output, the limits, the failures and what stays secret."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import msgspec
import pytest
from llmkit import Mock, Request, Text, Turn, base_url, llm, llm_requests, serve

from runeworker.engine import registry
from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import CompletionMessage, NodeStatusMessage
from runeworker.engine.registry import NodeSettings
from runeworker.engine.state import MemoryStore
from runeworker.nodes.agent import providers
from runeworker.nodes.agent.conversation import ToolCall, ToolSpec
from runeworker.nodes.agent.loop import Toolbox

PROVIDERS = ("gemini", "openai", "anthropic")
MODEL_KEY = "sk-model-SECRET-1234"
TOOL_KEY = "wx-tool-SECRET-5678"
SYSTEM = "You answer briefly."
HISTORY = [{"role": "user", "content": "Hi"}, {"role": "model", "content": "Hello! Ask away."}]
PROMPT = "What is the weather in $input.city?"
ASKED = "What is the weather in Paris?"
SCHEMA = {
    "type": "object",
    "properties": {
        "query_city": {"type": "string", "description": "the city"},
        "header_X_Unit": {"type": "string", "description": "metric or imperial"},
    },
    "required": ["query_city"],
}
CALL = ("get_weather", {"query_city": "Paris", "header_X_Unit": "metric"})
SCRIPT = (
    Turn(text="Let me look.", calls=(CALL,), usage=(30, 7)),
    Turn(text="21 degrees in Paris.", usage=(50, 6)),
)


class RecordingMeter:
    """A Meter that keeps what it is told."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, tuple[str, ...], float]] = []
        self.observed: list[tuple[str, tuple[str, ...]]] = []

    def count(self, name: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        self.counts.append((name, labels, amount))

    def observe(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self.observed.append((name, labels))


def by_model(description: str, required: bool) -> dict[str, Any]:
    spec = {"description": description, "type": "string", "required": required}
    return {"mode": "agent", "agent": spec}


def weather_tool(url: str, **config: Any) -> dict[str, Any]:
    credential = {"field": "X-Api-Key", "value": TOOL_KEY}
    return {
        "type": "http_request",
        "name": "get_weather",
        "description": "Current weather of a city.",
        "credentials": {"id": "9", "name": "Weather", "type": "header", "values": credential},
        "config": {
            "method": "GET",
            "url": {"mode": "fixed", "value": url},
            "headers": [
                {"key": "X-Unit", "value": by_model("metric or imperial", False)},
                {"key": "Accept", "value": {"mode": "fixed", "value": "application/json"}},
            ],
            "query": [{"key": "city", "value": by_model("the city", True)}],
            **config,
        },
    }


def definition(provider: str, parameters: dict[str, Any], credential: bool = True) -> bytes:
    agent: dict[str, Any] = {
        "id": "agent",
        "name": "Agent",
        "type": "agent",
        "parameters": {
            "model": {"provider": provider, "name": f"{provider}-model-1", "temperature": 0.2},
            "system_prompt": SYSTEM,
            "messages": [*HISTORY, {"role": "user", "content": PROMPT}],
            **parameters,
        },
    }
    if credential:
        kind = "gemini_api_key" if provider == "gemini" else "api_key"
        agent["credentials"] = {
            "id": "5",
            "name": "LLM",
            "type": kind,
            "values": {"api_key": MODEL_KEY},
        }
    trigger = {"id": "start", "name": "Start", "type": "ManualTrigger", "trigger": True}
    edges = [{"id": "e1", "src": "start", "dst": "agent"}]
    return msgspec.json.encode({"nodes": [trigger, agent], "edges": edges})


def run(
    defn: bytes, settings: NodeSettings, meter: RecordingMeter | None = None
) -> tuple[list[NodeStatusMessage], CompletionMessage]:
    statuses: list[NodeStatusMessage] = []
    executor = Executor(MemoryStore(), settings=settings, meter=meter or RecordingMeter())
    done = LocalRunner(executor, on_status=statuses.append).run(
        start_message(defn, {"city": "Paris"})
    )
    assert done is not None
    return statuses, done


def settings_for(provider: str, mock: Mock, **more: Any) -> NodeSettings:
    fields: dict[str, Any] = {
        "http_deny_networks": (),
        f"agent_{provider}_base_url": base_url(provider, mock),
    }
    return NodeSettings(**{**fields, **more})


@contextmanager
def weather_api(status: int = 200) -> Iterator[Mock]:
    def answer(request: Request) -> tuple[int, Any]:
        # echoes the key it got: the node must not hand it on
        return status, {"temp_c": 21, "got_key": request.headers.get("x-api-key")}

    with serve(answer) as api:
        yield api


def failure(statuses: list[NodeStatusMessage]) -> str:
    (failed,) = [s for s in statuses if s.status == "failed"]
    assert failed.error is not None
    return failed.error.message


# -- the exchange, per provider ------------------------------------------------------------------


def check_first_request(provider: str, request: Request) -> None:
    body, headers = request.body, request.headers
    if provider == "openai":
        assert request.path == "/v1/chat/completions"
        assert headers["authorization"] == f"Bearer {MODEL_KEY}"
        assert body["model"] == "openai-model-1"
        assert body["temperature"] == 0.2
        assert body["messages"] == [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! Ask away."},
            {"role": "user", "content": ASKED},
        ]
        function = {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": SCHEMA,
        }
        assert body["tools"] == [{"type": "function", "function": function}]
    elif provider == "anthropic":
        assert request.path == "/v1/messages"
        # the SDK sends the key as x-api-key (1.x) or as a bearer token (2.x)
        assert MODEL_KEY in (
            headers.get("x-api-key"),
            headers.get("authorization", "").removeprefix("Bearer "),
        )
        assert "anthropic-version" in headers
        assert (body["model"], body["max_tokens"], body["temperature"]) == (
            "anthropic-model-1",
            4096,
            0.2,
        )
        assert body["system"] == SYSTEM
        assert body["messages"] == [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! Ask away."},
            {"role": "user", "content": ASKED},
        ]
        assert body["tools"] == [
            {
                "name": "get_weather",
                "description": "Current weather of a city.",
                "input_schema": SCHEMA,
            }
        ]
    else:
        assert request.path == "/v1beta/models/gemini-model-1:generateContent"
        assert headers["x-goog-api-key"] == MODEL_KEY
        assert body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello! Ask away."}]},
            {"role": "user", "parts": [{"text": ASKED}]},
        ]
        assert body["generationConfig"] == {"temperature": 0.2}
        (declaration,) = body["tools"][0]["functionDeclarations"]
        assert (declaration["name"], declaration["description"]) == (
            "get_weather",
            "Current weather of a city.",
        )
        # the SDK sends the proto field by its snake_case name, which the API reads too
        assert (
            declaration.get("parametersJsonSchema", declaration.get("parameters_json_schema"))
            == SCHEMA
        )


def check_tool_answer(provider: str, request: Request, call_id: str) -> dict[str, Any]:
    """The second request carries the model's call and the tool's response; returns it."""
    body = request.body
    if provider == "openai":
        assistant, tool = body["messages"][-2:]
        assert assistant["role"] == "assistant" and assistant["content"] == "Let me look."
        assert [c["id"] for c in assistant["tool_calls"]] == [call_id]
        assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == CALL[1]
        assert (tool["role"], tool["tool_call_id"]) == ("tool", call_id)
        response: dict[str, Any] = json.loads(tool["content"])
    elif provider == "anthropic":
        assistant, user = body["messages"][-2:]
        assert assistant["role"] == "assistant"
        assert [b["type"] for b in assistant["content"]] == ["text", "tool_use"]
        assert assistant["content"][1]["input"] == CALL[1]
        (result,) = user["content"]
        assert (result["type"], result["tool_use_id"], result["is_error"]) == (
            "tool_result",
            call_id,
            False,
        )
        response = json.loads(result["content"])
    else:
        model, user = body["contents"][-2:]
        assert model == {
            "role": "model",
            "parts": [
                {"text": "Let me look."},
                {"functionCall": {"name": "get_weather", "args": CALL[1]}},
            ],
        }
        (part,) = user["parts"]
        assert user["role"] == "user"
        # the id was made up here (Gemini sends none): it does not go back
        assert set(part["functionResponse"]) == {"name", "response"}
        assert part["functionResponse"]["name"] == "get_weather"
        response = part["functionResponse"]["response"]
    return response


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_multi_turn_tool_calling_exchange(provider: str) -> None:
    meter = RecordingMeter()
    with weather_api() as api, llm(provider, *SCRIPT) as model:
        statuses, done = run(
            definition(provider, {"tools": [weather_tool(api.url + "/weather")]}),
            settings_for(provider, model),
            meter,
        )
    assert done.status == "completed", done.failure_reason
    assert [(s.node_name, s.status) for s in statuses] == [
        ("Agent", "running"),
        ("Agent", "success"),
    ]
    first, second = llm_requests(model)
    check_first_request(provider, first)

    (seen,) = api.requests
    assert (seen.method, seen.path) == ("GET", "/weather?city=Paris")
    assert (seen.headers["x-unit"], seen.headers["accept"]) == ("metric", "application/json")
    assert seen.headers["x-api-key"] == TOOL_KEY  # the tool's credential, as the http node sends it

    output = done.final_context["$Agent"]
    call_id = output["tool_calls"][0]["id"]
    expected_id = {"openai": "call_0_0", "anthropic": "toolu_0_0"}.get(provider)
    assert call_id == expected_id or (provider == "gemini" and call_id.startswith("adk-"))
    sent = check_tool_answer(provider, second, call_id)
    assert (sent["status"], sent["body"]) == (
        200,
        {"temp_c": 21, "got_key": TOOL_KEY},
    )  # to the model

    response = output["tool_calls"][0]["response"]
    assert set(response) == {"status", "status_text", "body", "headers", "duration_ms"}
    assert output == {
        "messages": [
            {"role": "model", "content": "Let me look."},
            {"role": "model", "content": "21 degrees in Paris."},
        ],
        "final_response": "21 degrees in Paris.",
        "tool_calls": [
            {"id": call_id, "name": "get_weather", "args": CALL[1], "response": response}
        ],
        "model": f"{provider}-model-1",
        "usage": {"prompt_tokens": 80, "completion_tokens": 13, "total_tokens": 93},
    }
    assert (response["status"], response["status_text"]) == (200, "200 OK")
    assert response["body"] == {"temp_c": 21, "got_key": "***"}  # an echoed secret is masked

    labels = (provider, f"{provider}-model-1")
    assert meter.counts == [
        ("llm_requests", (*labels, "success"), 1.0),
        ("llm_tokens", (*labels, "prompt"), 30),
        ("llm_tokens", (*labels, "completion"), 7),
        ("llm_requests", (*labels, "success"), 1.0),
        ("llm_tokens", (*labels, "prompt"), 50),
        ("llm_tokens", (*labels, "completion"), 6),
    ]
    assert meter.observed == [("llm_request_seconds", labels)] * 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_lists_with_nothing_in_them_are_null_as_go_writes_them(provider: str) -> None:
    # upstream's outputCollector (services/rune-worker/pkg/nodes/custom/agent/output_collector.go)
    # starts `messages` and `tool_calls` as nil slices and appends to them; its result() map is
    # marshalled as it is, so a run that called no tool publishes `"tool_calls": null` (what
    # `{{ $Agent.tool_calls ? ... }}` tests), and a run without text `"messages": null`
    with llm(provider, Turn(text="21 degrees.")) as model:
        statuses, done = run(definition(provider, {}), settings_for(provider, model))
    assert done.status == "completed", done.failure_reason
    output = done.final_context["$Agent"]
    assert output["tool_calls"] is None
    assert output["messages"] == [{"role": "model", "content": "21 degrees."}]
    assert b'"tool_calls":null' in msgspec.json.encode(statuses[-1])

    with weather_api() as api, llm(provider, Turn(calls=(CALL,)), Turn()) as model:
        _, done = run(
            definition(provider, {"tools": [weather_tool(api.url + "/w")]}),
            settings_for(provider, model),
        )
    assert done.status == "completed", done.failure_reason
    output = done.final_context["$Agent"]
    assert (output["messages"], output["final_response"]) == (None, "")
    assert [c["name"] for c in output["tool_calls"]] == ["get_weather"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_secret_in_statuses(provider: str) -> None:
    with weather_api() as api, llm(provider, *SCRIPT) as model:
        statuses, done = run(
            definition(provider, {"tools": [weather_tool(api.url + "/weather")]}),
            settings_for(provider, model),
        )
    published = b"".join(msgspec.json.encode(s) for s in statuses) + msgspec.json.encode(done)
    assert b"SECRET" not in published
    running = statuses[0].parameters
    assert running is not msgspec.UNSET
    assert running["tools"][0]["credentials"]["values"] == {"field": "X-Api-Key", "value": "***"}


def test_the_vertex_backend_speaks_vertex_ai_express() -> None:
    with llm("gemini", Turn(text="ok")) as model:
        defn = definition("gemini", {})
        doc = msgspec.json.decode(defn)
        doc["nodes"][1]["parameters"]["model"]["backend"] = "vertex"
        _, done = run(msgspec.json.encode(doc), settings_for("gemini", model))
    assert done.status == "completed", done.failure_reason
    (request,) = model.requests
    assert request.path == "/v1beta1/publishers/google/models/gemini-model-1:generateContent"
    assert request.headers["x-goog-api-key"] == MODEL_KEY


# -- tools that fail, and models that misbehave ---------------------------------------------------


def test_a_failed_tool_request_goes_back_to_the_model() -> None:
    with weather_api(status=503) as api, llm("openai", *SCRIPT) as model:
        tool = weather_tool(api.url + "/weather", raise_on_status="5xx")
        _, done = run(definition("openai", {"tools": [tool]}), settings_for("openai", model))
    assert done.status == "completed", done.failure_reason
    error = (
        "http request failed after 1 attempts: status code 503 matches raise_on_status pattern: 5xx"
    )
    assert done.final_context["$Agent"]["tool_calls"][0]["response"] == {"error": error}
    tool_message = llm_requests(model)[1].body["messages"][-1]
    assert json.loads(tool_message["content"]) == {"error": error}


def test_the_deny_list_holds_for_tools() -> None:
    with weather_api() as api, llm("openai", *SCRIPT) as model:
        tool = weather_tool(api.url + "/weather")
        settings = settings_for("openai", model, http_deny_networks=("127.0.0.0/8",))
        _, done = run(definition("openai", {"tools": [tool]}), settings)
    assert done.status == "completed", done.failure_reason
    response = done.final_context["$Agent"]["tool_calls"][0]["response"]
    assert response == {
        "error": "destination 127.0.0.1 (127.0.0.1) is in the denied network 127.0.0.0/8"
    }
    assert api.requests == []


def test_calls_the_tools_cannot_run_are_answered_with_errors() -> None:
    script = (
        Turn(calls=(("nope", {}), ("get_weather", {"query_city": 5}))),
        Turn(text="sorry"),
    )
    with weather_api() as api, llm("openai", *script) as model:
        _, done = run(
            definition("openai", {"tools": [weather_tool(api.url + "/w")]}),
            settings_for("openai", model),
        )
    calls = done.final_context["$Agent"]["tool_calls"]
    assert calls[0]["response"] == {"error": 'unknown tool "nope"'}
    assert calls[1]["response"]["status"] == 200
    assert api.requests[0].path == "/w?city=5"  # a number the model gave is rendered


def test_too_many_rounds_fail_the_node() -> None:
    call = Turn(calls=(CALL,))
    with weather_api() as api, llm("openai", call, call, Turn(text="never")) as model:
        settings = settings_for("openai", model, agent_max_rounds=1)
        statuses, done = run(
            definition("openai", {"tools": [weather_tool(api.url + "/w")]}), settings
        )
    assert done.status == "halted"
    assert (
        failure(statuses) == "agent: the model still calls tools after 1 rounds (agent.max_rounds)"
    )
    assert len(llm_requests(model)) == 2 and len(api.requests) == 1


def test_the_total_time_limit_fails_the_node() -> None:
    release = threading.Event()

    def stall(request: Request) -> tuple[int, Any]:
        release.wait(30)  # until the test is done: the node gives up first
        return 500, {}

    with serve(stall) as model:
        settings = NodeSettings(
            agent_openai_base_url=model.url + "/v1", agent_total_timeout=0.5, agent_max_retries=0
        )
        statuses, _ = run(definition("openai", {}), settings)
        release.set()
    assert failure(statuses) == "agent: the run took longer than 0.5 s (agent.total_timeout)"


def test_an_api_error_fails_the_node_with_the_key_masked() -> None:
    def refuse(request: Request) -> tuple[int, Any]:
        key = request.headers.get("authorization", "")
        return 401, {
            "error": {
                "message": f"Incorrect API key provided: {key}",
                "type": "invalid_request_error",
            }
        }

    with serve(refuse) as model:
        statuses, _ = run(
            definition("openai", {}), NodeSettings(agent_openai_base_url=model.url + "/v1")
        )
    message = failure(statuses)
    assert message.startswith("agent: openai request failed: Error code: 401")
    assert "Incorrect API key provided: Bearer ***" in message and MODEL_KEY not in message


def test_no_server_is_named_with_the_setting_that_points_at_it() -> None:
    with serve(lambda r: (200, {})) as gone:
        url = gone.url + "/v1"
    statuses, _ = run(
        definition("openai", {}), NodeSettings(agent_openai_base_url=url, agent_max_retries=0)
    )
    assert failure(statuses).startswith(
        f"agent: cannot reach the openai API at {url} (set by agent.openai_base_url or "
        "RUNEWORKER_AGENT_OPENAI_BASE_URL): "
    )


# -- credentials and the extra -------------------------------------------------------------------


def test_gemini_requires_an_api_key_as_upstream() -> None:
    statuses, _ = run(definition("gemini", {}, credential=False), NodeSettings())
    assert failure(statuses) == "agent: gemini provider requires an api_key credential"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_keyless_server_needs_a_configured_url(provider: str) -> None:
    statuses, _ = run(definition(provider, {}, credential=False), NodeSettings())
    assert failure(statuses).startswith(
        f"agent: {provider} provider requires an api_key credential"
    )
    with llm(provider, Turn(text="ok")) as model:
        _, done = run(definition(provider, {}, credential=False), settings_for(provider, model))
    assert done.final_context["$Agent"]["final_response"] == "ok"
    assert MODEL_KEY not in json.dumps(model.requests[0].headers)


def test_without_the_extra_the_node_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` fail
    monkeypatch.delitem(sys.modules, "runeworker.nodes.agent.providers.openai", raising=False)
    monkeypatch.delattr(providers, "openai", raising=False)  # as if it was never imported
    statuses, _ = run(
        definition("openai", {}), NodeSettings(agent_openai_base_url="http://127.0.0.1:9/v1")
    )
    assert failure(statuses) == (
        "agent: the agent node needs the agent extra (openai is not installed): "
        "pip install 'runeworker[agent]'"
    )


def test_the_node_is_registered_blocking_without_the_sdks() -> None:
    spec = registry.get("agent")
    assert spec is not None and spec.blocking
    assert spec.raw == frozenset({"tools", "mcp_servers"})


def test_tool_fields_are_resolved_but_credentials_are_not() -> None:
    tool = weather_tool("$input.api/weather")
    tool["credentials"]["values"]["value"] = "key-with-$input.city-inside"
    with (
        weather_api() as api,
        llm(
            "openai", Turn(calls=(("get_weather", {"query_city": "Oslo"}),)), Turn(text="ok")
        ) as model,
    ):
        defn = definition("openai", {"tools": [tool]})
        executor = Executor(MemoryStore(), settings=settings_for("openai", model))
        done = LocalRunner(executor).run(start_message(defn, {"city": "Paris", "api": api.url}))
    assert done is not None and done.status == "completed", done and done.failure_reason
    assert api.requests[0].path == "/weather?city=Oslo"
    assert api.requests[0].headers["x-api-key"] == "key-with-$input.city-inside"


def test_two_tools_of_one_name_are_refused() -> None:
    tool = weather_tool("http://127.0.0.1:9/w")
    statuses, _ = run(
        definition("openai", {"tools": [tool, tool]}),
        NodeSettings(agent_openai_base_url="http://127.0.0.1:9/v1"),
    )
    assert failure(statuses) == 'agent: two tools are named "get_weather"'


def test_the_tools_may_come_whole_from_the_context() -> None:
    with weather_api() as api, llm("openai", *SCRIPT) as model:
        defn = definition("openai", {"tools": "$input.tools"})
        executor = Executor(MemoryStore(), settings=settings_for("openai", model))
        inputs = {"city": "Paris", "tools": [weather_tool(api.url + "/weather")]}
        done = LocalRunner(executor).run(start_message(defn, inputs))
    assert done is not None and done.status == "completed", done and done.failure_reason
    assert api.requests[0].path == "/weather?city=Paris"
    assert llm_requests(model)[0].body["tools"][0]["function"]["name"] == "get_weather"


# -- answers that are not in the API's shape ------------------------------------------------------


def scripted(*answers: tuple[int, Any]) -> Iterator[Mock]:
    """A mock answering `answers` in order (then 500s), whatever was asked."""
    script = list(answers)
    return serve(lambda request: script.pop(0) if script else (500, {}))


def completion(message: Any, **more: Any) -> tuple[int, Any]:
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return 200, {"id": "c", "object": "chat.completion", "choices": [choice], **more}


def function_call(name: Any, arguments: Any) -> dict[str, Any]:
    function = {"name": name, "arguments": arguments}
    call = {"id": "call_1", "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ((200, Text("text/html", "<html>busy</html>")), "the answer is not a JSON object"),
        ((200, [1, 2]), "the answer is not a JSON object"),
        (completion(None), "choices[0].message is not an object"),
        (completion("hi"), "choices[0].message is not an object"),
        (completion({"role": "assistant", "content": 5}), "choices[0].message.content is not text"),
        (
            completion({"role": "assistant", "content": None, "tool_calls": "x"}),
            "choices[0].message.tool_calls is not a list",
        ),
        (
            completion({"role": "assistant", "content": None, "tool_calls": [None]}),
            "choices[0].message.tool_calls[0] is not an object",
        ),
        (
            completion({"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}),
            "choices[0].message.tool_calls[0].function is not an object",
        ),
        (
            completion(function_call(None, "{}")),
            "choices[0].message.tool_calls[0].function.name is not text",
        ),
    ],
)
def test_a_malformed_chat_completion_fails_the_node_saying_where(
    answer: tuple[int, Any], what: str
) -> None:
    with scripted(answer) as model:
        settings = NodeSettings(agent_openai_base_url=model.url + "/v1", agent_max_retries=0)
        statuses, _ = run(definition("openai", {}), settings)
    assert failure(statuses) == f"agent: openai returned a malformed answer: {what}"


def test_odd_tool_calls_and_usage_of_a_compatible_server() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    calls = [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"query_city": "A"}}},
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": deep}},
    ]
    first = completion(
        {"role": "assistant", "content": None, "tool_calls": calls},
        usage={"prompt_tokens": None, "completion_tokens": 4},
    )
    with weather_api() as api, scripted(first, completion({"content": "ok"})) as model:
        settings = settings_for("openai", model, agent_max_retries=0)
        _, done = run(definition("openai", {"tools": [weather_tool(api.url + "/w")]}), settings)
    assert done.status == "completed", done.failure_reason
    output = done.final_context["$Agent"]
    made_up, deep_call = output["tool_calls"]
    # an object where the API has a JSON text is taken; a call without an id gets one
    assert made_up["args"] == {"query_city": "A"} and made_up["id"].startswith("call_")
    assert made_up["response"]["status"] == 200 and api.requests[0].path == "/w?city=A"
    assert deep_call["response"] == {"error": "the arguments are nested deeper than 100 levels"}
    assert output["usage"] == {"prompt_tokens": 0, "completion_tokens": 4, "total_tokens": 0}
    sent = llm_requests(model)[1].body["messages"][-3]["tool_calls"]
    assert [c["id"] for c in sent] == [made_up["id"], "c2"]
    assert json.loads(sent[0]["function"]["arguments"]) == {"query_city": "A"}


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ((200, [1, 2]), "a malformed answer: the answer is not a JSON object but a list"),
        ((200, "busy"), "a malformed answer: the answer is not a JSON object but a string"),
        ((200, 5), "a malformed answer: the answer is not a JSON object but a number"),
        ((200, None), "a malformed answer: the answer is not a JSON object but null"),
        ((200, False), "a malformed answer: the answer is not a JSON object but true or false"),
        (
            (200, Text("application/json", "")),
            "a malformed answer: the answer is not a JSON object but an empty body",
        ),
        ((200, {"candidates": []}), "no candidates and no block reason"),
        (
            (200, {"promptFeedback": {"blockReason": "SAFETY"}}),
            "no answer (prompt blocked: SAFETY)",
        ),
    ],
)
def test_a_gemini_answer_without_candidates_says_why_it_fails(
    answer: tuple[int, Any], what: str
) -> None:
    with scripted(answer) as model:
        settings = settings_for("gemini", model, agent_max_retries=0)
        statuses, _ = run(definition("gemini", {}), settings)
    assert failure(statuses) == f"agent: gemini returned {what}"


def message(content: Any, **more: Any) -> tuple[int, Any]:
    usage = {"input_tokens": 3, "output_tokens": 2}
    body = {"id": "m", "type": "message", "role": "assistant", "content": content, "usage": usage}
    return 200, {**body, **more}


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ((200, Text("text/html", "<html>busy</html>")), "the answer is not a JSON object"),
        (message(None), "content is not a list"),
        (message("hi"), "content is not a list"),
        (message([None]), "content[0] is not an object"),
        (message([{"type": "text"}]), "content[0].text is not text"),
        (
            message([{"type": "text", "text": "a"}, {"type": "text", "text": 5}]),
            "content[1].text is not text",
        ),
        (
            message([{"type": "tool_use", "id": "t", "name": None, "input": {}}]),
            "content[0].name is not text",
        ),
    ],
)
def test_a_malformed_anthropic_message_fails_the_node_saying_where(
    answer: tuple[int, Any], what: str
) -> None:
    with scripted(answer) as model:
        settings = NodeSettings(agent_anthropic_base_url=model.url, agent_max_retries=0)
        statuses, _ = run(definition("anthropic", {}), settings)
    assert failure(statuses) == f"agent: anthropic returned a malformed answer: {what}"


@pytest.mark.parametrize("given_id", [None, "", 5], ids=["absent", "empty", "number"])
def test_an_anthropic_tool_use_without_an_id_gets_one(given_id: Any) -> None:
    use: dict[str, Any] = {"type": "tool_use", "name": "get_weather", "input": {"query_city": "A"}}
    if given_id is not None:
        use["id"] = given_id
    other = {"type": "tool_use", "name": "get_weather", "input": {"query_city": "B"}}
    first = message([{"type": "text", "text": "Let me look."}, use, other])
    with weather_api() as api, scripted(first, message([{"type": "text", "text": "ok"}])) as model:
        settings = settings_for("anthropic", model, agent_max_retries=0)
        _, done = run(definition("anthropic", {"tools": [weather_tool(api.url + "/w")]}), settings)
    assert done.status == "completed", done.failure_reason
    output = done.final_context["$Agent"]
    ids = [c["id"] for c in output["tool_calls"]]
    # named as upstream's ADK names a call without an id, one each
    assert all(i.startswith("adk-") for i in ids) and len(set(ids)) == 2, ids
    assert sorted(r.path for r in api.requests) == ["/w?city=A", "/w?city=B"]
    assistant, user = llm_requests(model)[1].body["messages"][-2:]
    # the tool_use blocks go back with the ids their tool_results name
    assert [b.get("id") for b in assistant["content"]] == [None, *ids]
    assert [b["tool_use_id"] for b in user["content"]] == ids
    assert output["final_response"] == "ok"


def test_anthropic_token_counts_that_are_no_numbers_count_zero() -> None:
    text = [{"type": "text", "text": "ok"}]
    usage = {"input_tokens": None, "output_tokens": "2", "cache_read_input_tokens": 4}
    with scripted(message(text, usage=usage)) as model:
        settings = NodeSettings(agent_anthropic_base_url=model.url, agent_max_retries=0)
        _, done = run(definition("anthropic", {}), settings)
    assert done.status == "completed", done.failure_reason
    output = done.final_context["$Agent"]
    assert output["usage"] == {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}


# -- what Go's decoder reads differently ---------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_half_an_emoji_reads_as_the_replacement_character(provider: str) -> None:
    # the JSON escape "\ud83d" without its other half: Go reads U+FFFD, Python a lone surrogate
    # that no UTF-8 encoder takes (the executor could not publish the status)
    turn = Turn(text="half \ud83d", calls=(("get_weather", {"query_city": "P\ud83d"}),))
    with weather_api() as api, llm(provider, turn, Turn(text="done \udc00")) as model:
        _, done = run(
            definition(provider, {"tools": [weather_tool(api.url + "/w")]}),
            settings_for(provider, model),
        )
    assert done.status == "completed", done.failure_reason
    output = done.final_context["$Agent"]
    assert output["messages"][0]["content"] == "half \ufffd"
    assert output["final_response"] == "done \ufffd"
    assert output["tool_calls"][0]["args"] == {"query_city": "P\ufffd"}
    assert api.requests[0].path == "/w?city=P%EF%BF%BD"
    if provider != "gemini":  # its SDK sends the model's content back as it came (escaped)
        assert "half \ufffd" in json.dumps(llm_requests(model)[1].body, ensure_ascii=False)


def test_arguments_nested_too_deeply_are_answered_with_an_error() -> None:
    nested: Any = "x"
    for _ in range(150):
        nested = [nested]
    turn = Turn(calls=(("get_weather", {"query_city": nested}),))
    with weather_api() as api, llm("anthropic", turn, Turn(text="done")) as model:
        _, done = run(
            definition("anthropic", {"tools": [weather_tool(api.url + "/w")]}),
            settings_for("anthropic", model),
        )
    assert done.status == "completed", done.failure_reason
    (call,) = done.final_context["$Agent"]["tool_calls"]
    error = "the arguments are nested deeper than 100 levels"
    assert (call["args"], call["response"]) == ({}, {"error": error})
    assert api.requests == []


def test_a_tool_response_with_half_an_emoji_reads_as_go_reads_it() -> None:
    async def tool(args: dict[str, Any]) -> dict[str, Any]:
        return {"output": {"text\udc00": ["a\ud800b"]}}

    toolbox = Toolbox(ThreadPoolExecutor(1))
    toolbox.add(ToolSpec("t", "", {"type": "object"}), tool)
    result = asyncio.run(toolbox.call(ToolCall("1", "t", {})))
    assert result.response == {"output": {"text\ufffd": ["a\ufffdb"]}}
