"""The agent node's parameters, HTTP tool schemas and requests, credentials, output folding:
pure parts, no SDK needed (upstream's params_test.go, tool_builder_test.go and
model_factory_test.go cases, and more)."""

from __future__ import annotations

from typing import Any

import pytest

from runeworker.engine.workflow import embedded_credentials
from runeworker.errors import NodeError
from runeworker.nodes.agent.conversation import Reply, ToolCall, ToolResult, Usage
from runeworker.nodes.agent.failure import describe
from runeworker.nodes.agent.params import (
    AGENT,
    AgentField,
    FieldMode,
    HttpToolConfig,
    KVField,
    Message,
    parse,
)
from runeworker.nodes.agent.providers.setup import api_key
from runeworker.nodes.agent.tools import flat_credentials, property_name, request_params, schema
from runeworker.nodes.agent.transcript import Transcript

MODEL = {"provider": "gemini", "name": "gemini-flash-latest"}
HELLO = [{"role": "user", "content": "Hello"}]


def agent_field(description: str = "", kind: str = "string", required: bool = True) -> FieldMode:
    return FieldMode(AGENT, agent=AgentField(description, kind, required))


def fixed(value: Any) -> FieldMode:
    return FieldMode("fixed", value)


# -- parameters ----------------------------------------------------------------------------------


def test_parse_happy_path() -> None:
    raw = {
        "model": {**MODEL, "backend": "vertex", "temperature": 0.5},
        "system_prompt": "You are helpful.",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "model", "content": "reply", "ui_id": "message_1"},
            {"role": "user", "content": ""},  # an empty turn of the editor: skipped
            "not an object",
            {"role": "user", "content": "follow-up"},
        ],
        "tools": [
            {
                "type": "http_request",
                "name": "get_weather",
                "description": "Get the weather",
                "config": {
                    "method": "POST",
                    "url": {"mode": "fixed", "value": "https://example.com"},
                    "body": [
                        {
                            "key": "city",
                            "value": {
                                "mode": "agent",
                                "agent": {
                                    "description": "city name",
                                    "type": "string",
                                    "required": True,
                                },
                            },
                        }
                    ],
                    "timeout": 5,
                    "retry": "2",
                    "raise_on_status": "",
                },
            }
        ],
        "mcp_servers": [
            {"name": "github", "transport": "streamable_http", "url": "https://example.com/mcp"},
            {"name": "no url", "transport": "sse", "url": ""},  # skipped, as upstream
        ],
    }
    p = parse(raw)
    assert (p.model.provider, p.model.name, p.model.backend, p.model.temperature) == (
        "gemini", "gemini-flash-latest", "vertex", 0.5,
    )  # fmt: skip
    assert p.system_prompt == "You are helpful."
    assert p.history == (Message("user", "first"), Message("model", "reply"))
    assert p.prompt == Message("user", "follow-up")
    (tool,) = p.tools
    assert (tool.name, tool.description, tool.http.method) == (
        "get_weather",
        "Get the weather",
        "POST",
    )
    assert tool.http.url == fixed("https://example.com")
    assert tool.http.body == (KVField("city", agent_field("city name")),)
    assert tool.http.options == (("timeout", 5), ("retry", "2"))
    assert [(s.name, s.transport, s.url) for s in p.mcp_servers] == [
        ("github", "streamable_http", "https://example.com/mcp")
    ]


@pytest.mark.parametrize("bad", ["abc", "30s", True, [5], {"s": 5}, "nan", float("inf")])
def test_a_tool_count_that_is_no_number_leaves_the_default(bad: Any) -> None:
    """Upstream's tool builder falls back to its defaults (`parseSecondsOr`, `parseIntOr`); the
    http node would refuse such a value at every call, and the tool would never run."""
    http = {"method": "GET", "url": "https://example.com", "timeout": bad, "retry": bad,
            "retry_delay": bad, "raise_on_status": "5xx"}  # fmt: skip
    tool = {"name": "t", "description": "d", "type": "http_request", "config": http}
    raw = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    (parsed,) = parse(raw).tools
    assert parsed.http.options == (("raise_on_status", "5xx"),)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "agent: model.provider is required"),
        ({"model": {"name": "x"}}, "agent: model.provider is required"),
        ({"model": {"provider": "gemini"}}, "agent: model.name is required"),
        ({"model": {"provider": "bogus", "name": "x"}}, 'agent: unknown provider "bogus"'),
        (
            {"model": {**MODEL, "backend": "bogus"}},
            'agent: unknown gemini backend "bogus" (expected "ai_studio" or "vertex")',
        ),
        ({"model": {**MODEL, "temperature": "hot"}}, "agent: model.temperature must be a number"),
        (  # found by fuzzing: the value was shown as a Python repr, [{'a': None}]
            {"model": {**MODEL, "temperature": [{"a": None, "b": True}]}},
            'agent: model.temperature must be a number, got [{"a":null,"b":true}]',
        ),
        ({"model": {**MODEL, "temperature": 10**400}}, "agent: model.temperature is out of range"),
        ({"model": {**MODEL, "temperature": 10**5000}}, "agent: model.temperature is out of range"),
        ({"model": MODEL}, "agent: at least one message is required"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": ""}]},
            "agent: at least one message",
        ),
        (
            {"model": MODEL, "messages": [*HELLO, {"role": "model", "content": "b"}]},
            'agent: last message must have role "user" (got "model")',
        ),
        (
            {"model": MODEL, "messages": [{"role": "system", "content": "x"}]},
            'agent: message role must be "user" or "model" (got "system")',
        ),
        (
            {
                "model": MODEL,
                "messages": HELLO,
                "tools": [{"type": "shell", "name": "x", "config": {}}],
            },
            'agent: unsupported tool type "shell" (only http_request is supported in v0)',
        ),
        (
            {"model": MODEL, "messages": HELLO, "tools": [{"type": "http_request", "config": {}}]},
            "agent: tool name is required",
        ),
        (
            {"model": MODEL, "messages": HELLO, "tools": [{"type": "http_request", "name": "t"}]},
            'agent: tool "t" is missing config',
        ),
        (
            {
                "model": MODEL,
                "messages": HELLO,
                "mcp_servers": [{"name": "gh", "transport": "stdio", "url": "http://x"}],
            },
            'agent: mcp server "gh": unsupported transport "stdio" (expected "sse" or',
        ),
    ],
)
def test_parse_refuses_with_upstreams_messages(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(NodeError) as caught:
        parse(raw)
    assert str(caught.value).startswith(message)


def test_openai_and_anthropic_are_accepted_beyond_upstream() -> None:
    for provider in ("openai", "anthropic"):
        assert (
            parse({"model": {"provider": provider, "name": "m"}, "messages": HELLO}).model.provider
            == provider
        )


def test_field_modes() -> None:
    from runeworker.nodes.agent.params import field_mode

    assert field_mode(None) == fixed("")
    assert field_mode("bare") == fixed("bare")
    assert field_mode(10) == fixed(10)
    assert field_mode({"mode": "fixed", "value": 3}) == fixed(3)
    assert field_mode({"mode": "agent"}) == FieldMode(AGENT, agent=AgentField())
    with pytest.raises(NodeError, match='tool field type "date" is not one of'):
        field_mode({"mode": "agent", "agent": {"type": "date"}})


# -- HTTP tools ----------------------------------------------------------------------------------


def test_only_agent_fields_become_properties() -> None:
    cfg = HttpToolConfig(
        method="POST",
        url=fixed("https://example.com"),
        headers=(
            KVField("Authorization", fixed("Bearer xyz")),
            KVField("X-User-Id", agent_field("the user id")),
        ),
        body=(KVField("city", agent_field("city name")), KVField("limit", fixed(10))),
    )
    parameters, slots = schema(cfg)
    assert parameters == {
        "type": "object",
        "properties": {
            "header_X_User_Id": {"type": "string", "description": "the user id"},
            "body_city": {"type": "string", "description": "city name"},
        },
        "required": ["header_X_User_Id", "body_city"],
    }
    assert [(s.prop, s.kind, s.key) for s in slots] == [
        ("header_X_User_Id", "header", "X-User-Id"),
        ("body_city", "body", "city"),
    ]


def test_schema_names_and_types() -> None:
    cfg = HttpToolConfig(
        url=agent_field("where", required=False),
        query=(KVField("page size", agent_field(kind="number", required=False)),),
    )
    parameters, _ = schema(cfg)
    assert parameters == {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "where"},
            "query_page_size": {"type": "number", "description": ""},
        },
    }
    assert property_name("a.b-c/d") == "a_b_c_d"
    assert schema(HttpToolConfig(url=fixed("https://x")))[0] == {"type": "object", "properties": {}}


def test_request_merges_fixed_and_agent_values() -> None:
    cfg = HttpToolConfig(
        method="POST",
        url=fixed("https://example.com/api"),
        headers=(KVField("X-User-Id", agent_field()), KVField("X-Static", fixed("yes"))),
        query=(KVField("n", agent_field(kind="number")),),
        body=(KVField("city", agent_field()), KVField("limit", fixed(10))),
        options=(("timeout", "5"),),
    )
    _, slots = schema(cfg)
    args = {"header_X_User_Id": "user-42", "query_n": 3, "body_city": "Paris", "other": 1}
    assert request_params(cfg, slots, args) == {
        "method": "POST",
        "url": "https://example.com/api",
        "timeout": "5",
        "headers": {"X-Static": "yes", "X-User-Id": "user-42"},
        "query": {"n": "3"},
        "body": {"limit": 10, "city": "Paris"},
    }


def test_request_url_from_the_model_and_no_body_without_fields() -> None:
    cfg = HttpToolConfig(url=agent_field(), body=(KVField("q", agent_field(required=False)),))
    _, slots = schema(cfg)
    assert request_params(cfg, slots, {"url": "https://x/y"}) == {
        "method": "GET",
        "url": "https://x/y",
    }
    with pytest.raises(NodeError, match="url is empty"):
        request_params(cfg, slots, {"body_q": "a"})


def test_flat_credentials() -> None:
    embedded = {
        "id": "3",
        "name": "wx",
        "type": "header",
        "values": {"field": "X-Key", "value": "v"},
    }
    assert flat_credentials(embedded) == {"field": "X-Key", "value": "v", "type": "header"}
    assert flat_credentials({"type": "token", "token": "t"}) == {"type": "token", "token": "t"}
    assert flat_credentials(None) == {}


def test_embedded_credentials_are_found_for_masking() -> None:
    params = {
        "tools": [
            {
                "name": "a",
                "credentials": {"id": "1", "name": "n", "type": "token", "values": {"token": "T1"}},
            },
            {"name": "b"},
            "junk",
        ],
        "mcp_servers": [
            {"credentials": {"type": "api_key", "value": "V2", "id": "2", "name": "m"}}
        ],
        "other": [{"credentials": {"values": {"token": "not an embedding place"}}}],
    }
    assert embedded_credentials(params) == [{"token": "T1"}, {"type": "api_key", "value": "V2"}]
    assert embedded_credentials(None) == []


# -- model credentials, output, errors -----------------------------------------------------------


def test_api_key_of_the_node_credential() -> None:
    assert api_key({"type": "gemini_api_key", "api_key": " sk-test "}) == "sk-test"
    assert api_key({"key": "flat-key"}) == "flat-key"
    assert api_key({"api_key": "", "key": "k"}) == "k"
    assert api_key({}) == ""


def test_transcript_folds_a_run_in_upstreams_shape() -> None:
    t = Transcript("m1")
    first = Reply(
        "Let me look.",
        (ToolCall("c1", "get", {"q": 1}), ToolCall("c2", "put", {})),
        Usage(10, 2, 12),
    )
    t.reply(first)
    t.results(
        [ToolResult(first.calls[0], {"status": 200}), ToolResult(first.calls[1], {"error": "x"})]
    )
    t.reply(Reply("Done.", (), Usage(20, 3, 23)))
    assert t.output() == {
        "messages": [
            {"role": "model", "content": "Let me look."},
            {"role": "model", "content": "Done."},
        ],
        "final_response": "Done.",
        "tool_calls": [
            {"id": "c1", "name": "get", "args": {"q": 1}, "response": {"status": 200}},
            {"id": "c2", "name": "put", "args": {}, "response": {"error": "x"}},
        ],
        "model": "m1",
        "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35},
    }
    assert ToolResult(first.calls[1], {"error": "x"}).failed
    assert not ToolResult(first.calls[0], {"status": 200}).failed


def test_a_final_reply_without_text_leaves_final_response_empty() -> None:
    t = Transcript("m")
    t.reply(Reply(""))
    assert (t.output()["messages"], t.output()["final_response"]) == (None, "")


def test_describe_finds_the_innermost_cause() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("Connection error.") from inner
    except RuntimeError as outer:
        assert describe(ExceptionGroup("group", [outer])) == "Connection refused"
    assert describe(ValueError("plain")) == "plain"
    assert describe(ValueError()) == "ValueError"
