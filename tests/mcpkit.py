"""An MCP server on loopback built with the `mcp` SDK's own server (MCPServer) and served by
uvicorn on a thread, over `sse` or `streamable_http`; it records the headers of every HTTP
request it receives."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

PATHS = {"sse": "/sse", "streamable_http": "/mcp"}


@dataclass
class McpMock:
    """The running server: its endpoint URL, the headers it saw, the calls its tools got."""

    url: str = ""
    headers: list[dict[str, str]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def build(mock: McpMock) -> MCPServer:
    """A server with two tools: `add` (structured output) and `shout` (text), and `broken`."""
    server: MCPServer = MCPServer("runeworker-test")

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> dict[str, int]:
        mock.calls.append(("add", {"a": a, "b": b}))
        return {"sum": a + b}

    @server.tool(description="Upper-case a text.", structured_output=False)
    def shout(text: str) -> str:
        mock.calls.append(("shout", {"text": text}))
        return text.upper()

    @server.tool(description="Always fails.")
    def broken(reason: str) -> str:
        mock.calls.append(("broken", {"reason": reason}))
        raise ValueError(f"broken on purpose: {reason}")

    return server


class _Recorder:
    """ASGI middleware: keep each HTTP request's headers."""

    def __init__(self, app: Any, mock: McpMock) -> None:
        self.app, self.mock = app, mock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.mock.headers.append(headers)
        await self.app(scope, receive, send)


@contextmanager
def mcp_server(transport: str) -> Iterator[McpMock]:
    """Serve the test server on 127.0.0.1 over `transport` for the block."""
    mock = McpMock()
    server = build(mock)
    app = server.sse_app() if transport == "sse" else server.streamable_http_app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_Recorder(app, mock), log_level="warning", lifespan="on")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not runner.started:  # an event uvicorn sets; bounded so a broken start fails
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the MCP test server did not start")
        time.sleep(0.01)
    mock.url = f"http://127.0.0.1:{port}{PATHS[transport]}"
    try:
        yield mock
    finally:
        runner.should_exit = True
        thread.join(timeout=30)
        sock.close()
