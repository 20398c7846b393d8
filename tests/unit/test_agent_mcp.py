"""The agent node's MCP servers, against a server built with the `mcp` SDK's own MCPServer on
loopback (tests/mcpkit.py), over both transports upstream offers."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import msgspec
import pytest
import quickjs  # noqa: F401  # its one worker thread starts on import, not in a test's run
from llmkit import Turn, base_url, llm, llm_requests
from mcpkit import mcp_server, silent_server

from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import CompletionMessage, NodeStatusMessage
from runeworker.engine.registry import NodeSettings
from runeworker.engine.state import MemoryStore
from runeworker.errors import NodeError
from runeworker.nodes.agent.mcp_servers import McpServers, credential_headers
from runeworker.nodes.agent.params import McpServerConfig

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
    # the initialize handshake alone, as upstream's go-sdk client: no `server/discover` probe
    # (streamable_http names each request's method in a header)
    assert all(h.get("mcp-method") != "server/discover" for h in mcp.headers)

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


SLACK = 3.0  # s beyond agent.request_timeout for a run that fails (a loaded two-core machine)


def no_answer(url: str, timeout: float) -> str:
    reason = f"no answer within {timeout:g} s (agent.request_timeout)"
    return f'agent: mcp server "calc" at {url}: cannot connect: {reason}'


def a_working_exchange(transport: str) -> None:
    """An agent node using an MCP server that answers, start to end."""
    calls = (("add", {"a": 2, "b": 3}),)
    with mcp_server(transport) as mcp, llm("openai", Turn(calls=calls), Turn(text="5")) as model:
        settings = NodeSettings(agent_openai_base_url=base_url("openai", model))
        _, done = run(definition([server(mcp.url, transport)]), settings)
    assert done.status == "completed", done.failure_reason
    assert done.final_context["$Agent"]["final_response"] == "5"


@pytest.mark.parametrize("headers", [False, True], ids=["mute", "headers-only"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_that_never_answers_fails_the_node_within_the_request_timeout(
    transport: str, headers: bool
) -> None:
    settings = NodeSettings(
        agent_openai_base_url="http://127.0.0.1:9/v1",
        agent_request_timeout=1.0,
        agent_total_timeout=30.0,
    )
    threads = set(threading.enumerate())
    with silent_server(transport, headers) as silent:
        started = time.monotonic()
        statuses, done = run(definition([server(silent.url, transport)]), settings)
        took = time.monotonic() - started
        closed = silent.closed_by_client()
    assert done.status == "halted"
    message = statuses[-1].error.message if statuses[-1].error else ""
    assert message == no_answer(silent.url, 1.0)
    assert took < 1.0 + SLACK, f"the node failed after {took:.1f} s"
    # nothing of the run is left: every connection closed, no thread of its own
    assert closed and all(closed), closed
    assert set(threading.enumerate()) <= threads
    a_working_exchange(transport)  # the next agent node in the process runs as ever


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_silent_server_leaves_no_task_behind(transport: str) -> None:
    settings = NodeSettings(agent_request_timeout=0.5)

    async def connect(url: str) -> set[asyncio.Task[Any]]:
        config = McpServerConfig("calc", transport, url)
        with pytest.raises(NodeError) as failed:
            async with asyncio.timeout(10), McpServers((config,), settings):
                pass
        assert str(failed.value) == no_answer(url, 0.5)
        current = asyncio.current_task()
        return {task for task in asyncio.all_tasks() if task is not current}

    with silent_server(transport, headers=True) as silent:
        assert asyncio.run(connect(silent.url)) == set()
        assert all(silent.closed_by_client())


def test_a_session_that_does_not_end_in_time_is_left(caplog: pytest.LogCaptureFixture) -> None:
    # the server holds the DELETE that ends a streamable_http session: the run completes
    # once the close has had its time, min(agent.request_timeout, 5 s)
    calls = (("add", {"a": 2, "b": 3}),)
    with (
        mcp_server("streamable_http", legacy=True, hang_on_delete=True) as mcp,
        llm("openai", Turn(calls=calls), Turn(text="5")) as model,
    ):
        settings = NodeSettings(
            agent_openai_base_url=base_url("openai", model),
            agent_request_timeout=2.0,
            agent_total_timeout=15.0,
        )
        started = time.monotonic()
        _, done = run(definition([server(mcp.url, "streamable_http")]), settings)
        took = time.monotonic() - started
    assert mcp.deletes == 1
    assert done.status == "completed", done.failure_reason
    assert took < 2.0 + SLACK, f"the node completed after {took:.1f} s"
    assert f'agent: mcp server "calc" at {mcp.url} did not close within 2 s' in caplog.text


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
