"""The agent node's MCP servers, against a server built with the `mcp` SDK's own MCPServer on
loopback (tests/mcpkit.py), over both transports upstream offers."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from llmkit import Turn, base_url, llm, llm_requests
from mcpkit import mcp_server

from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import CompletionMessage, NodeStatusMessage
from runeworker.engine.registry import NodeSettings
from runeworker.engine.state import MemoryStore
from runeworker.nodes.agent.mcp_servers import credential_headers

TRANSPORTS = ("streamable_http", "sse")
MCP_TOKEN = "mcp-SECRET-token-42"


def definition(servers: list[dict[str, Any]]) -> bytes:
    agent = {
        "id": "agent",
        "name": "Agent",
        "type": "agent",
        "parameters": {
            "model": {"provider": "openai", "name": "m"},
            "messages": [{"role": "user", "content": "Add 2 and 3, shout hi, try broken."}],
            "mcp_servers": servers,
        },
    }
    trigger = {"id": "start", "name": "Start", "type": "ManualTrigger", "trigger": True}
    return msgspec.json.encode(
        {"nodes": [trigger, agent], "edges": [{"id": "e", "src": "start", "dst": "agent"}]}
    )


def server(url: str, transport: str) -> dict[str, Any]:
    values = {"token": MCP_TOKEN}
    return {
        "name": "calc",
        "transport": transport,
        "url": url,
        "credentials": {"id": "4", "name": "MCP", "type": "token", "values": values},
    }


def run(defn: bytes, settings: NodeSettings) -> tuple[list[NodeStatusMessage], CompletionMessage]:
    statuses: list[NodeStatusMessage] = []
    executor = Executor(MemoryStore(), settings=settings)
    done = LocalRunner(executor, on_status=statuses.append).run(start_message(defn, {}))
    assert done is not None
    return statuses, done


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mcp_tools_in_a_tool_calling_exchange(transport: str) -> None:
    calls = (("add", {"a": 2, "b": 3}), ("shout", {"text": "hi"}), ("broken", {"reason": "test"}))
    with mcp_server(transport) as mcp, llm("openai", Turn(calls=calls), Turn(text="5")) as model:
        settings = NodeSettings(agent_openai_base_url=base_url("openai", model))
        statuses, done = run(definition([server(mcp.url, transport)]), settings)
    assert done.status == "completed", done.failure_reason

    first, second = llm_requests(model)
    offered = {t["function"]["name"]: t["function"] for t in first.body["tools"]}
    assert set(offered) == {"add", "shout", "broken"}
    assert offered["add"]["description"] == "Add two integers."
    add_schema = offered["add"]["parameters"]  # the server's own input schema, as it lists it
    assert (add_schema["type"], add_schema["required"]) == ("object", ["a", "b"])
    assert set(add_schema["properties"]) == {"a", "b"}

    assert sorted(mcp.calls) == sorted([(name, args) for name, args in calls])
    assert mcp.headers and all(h["authorization"] == f"Bearer {MCP_TOKEN}" for h in mcp.headers)

    results = [m["content"] for m in second.body["messages"] if m["role"] == "tool"]
    sent = [msgspec.json.decode(r) for r in results]
    # the server words the failure (mcp 2.0 adds the exception's text to it)
    failed = "Tool execution failed. Details: Error executing tool broken"
    assert sent[:2] == [{"output": {"sum": 5}}, {"output": "HI"}]
    assert set(sent[2]) == {"error"} and sent[2]["error"].startswith(failed)
    output = done.final_context["$Agent"]
    assert [(c["name"], c["args"], c["response"]) for c in output["tool_calls"]] == [
        ("add", {"a": 2, "b": 3}, {"output": {"sum": 5}}),
        ("shout", {"text": "hi"}, {"output": "HI"}),
        ("broken", {"reason": "test"}, sent[2]),
    ]
    assert output["final_response"] == "5"
    published = b"".join(msgspec.json.encode(s) for s in statuses)
    assert MCP_TOKEN.encode() not in published


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unreachable_server_fails_the_node_naming_it(transport: str) -> None:
    with mcp_server(transport) as mcp:
        url = mcp.url  # closed when the block ends
    settings = NodeSettings(agent_openai_base_url="http://127.0.0.1:9/v1")
    statuses, done = run(definition([server(url, transport)]), settings)
    assert done.status == "halted"
    message = statuses[-1].error.message if statuses[-1].error else ""
    assert message.startswith(f'agent: mcp server "calc" at {url}: cannot connect: ')


def test_the_deny_list_holds_for_mcp_servers() -> None:
    settings = NodeSettings(
        agent_openai_base_url="http://127.0.0.1:9/v1", http_deny_networks=("127.0.0.0/8",)
    )
    url = "http://127.0.0.1:9/mcp"
    statuses, _ = run(definition([server(url, "streamable_http")]), settings)
    message = statuses[-1].error.message if statuses[-1].error else ""
    assert message == (
        f'agent: mcp server "calc" at {url}: destination 127.0.0.1 (127.0.0.1) is in the '
        "denied network 127.0.0.0/8"
    )


@pytest.mark.parametrize(
    ("credential", "headers"),
    [
        ({"type": "header", "values": {"field": "X-Token", "value": "v"}}, {"X-Token": "v"}),
        (
            {"type": "basic_auth", "values": {"username": "u", "password": "p"}},
            {"Authorization": "Basic dTpw"},
        ),
        ({"type": "token", "values": {"token": "t"}}, {"Authorization": "Bearer t"}),
        ({"type": "api_key", "values": {"key": "X-Key", "value": "v"}}, {"X-Key": "v"}),
        ({"type": "api_key", "values": {"value": "v"}}, {"Authorization": "Bearer v"}),
        ({"type": "oauth2", "values": {"access_token": "a"}}, {"Authorization": "Bearer a"}),
        ({"type": "token", "token": "flat"}, {"Authorization": "Bearer flat"}),
        ({"type": "basic_auth", "values": {"username": "u"}}, {}),  # incomplete: none
        ({"type": "smtp", "values": {"host": "h"}}, {}),
        (None, {}),
    ],
)
def test_credential_headers(credential: dict[str, Any] | None, headers: dict[str, str]) -> None:
    assert credential_headers(credential) == headers
