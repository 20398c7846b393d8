"""An MCP server on loopback built with the `mcp` SDK's own server (MCPServer) and served by
uvicorn on a thread, over `sse` or `streamable_http`; it records the headers of every HTTP
request it receives. And a server that accepts connections and never answers (`silent_server`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
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
    legacy: bool = False  # answer `server/discover` as a server from before 2026 does
    hang_on_delete: bool = False  # hold a DELETE (the end of a session) until the block ends
    deletes: int = 0
    released: bool = False


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
            if scope["method"] == "DELETE":
                self.mock.deletes += 1
                while self.mock.hang_on_delete and not self.mock.released:
                    await asyncio.sleep(0.05)
            if self.mock.legacy and headers.get("mcp-method") == "server/discover":
                await _method_not_found(receive, send)
                return
        await self.app(scope, receive, send)


async def _method_not_found(receive: Any, send: Any) -> None:
    """JSON-RPC's -32601 for the request in the body (which the client names in a header)."""
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    error = {"code": -32601, "message": "Method not found"}
    answer = json.dumps({"jsonrpc": "2.0", "id": json.loads(body)["id"], "error": error})
    content = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": content})
    await send({"type": "http.response.body", "body": answer.encode()})


@contextmanager
def mcp_server(
    transport: str, legacy: bool = False, hang_on_delete: bool = False
) -> Iterator[McpMock]:
    """Serve the test server on 127.0.0.1 over `transport` for the block (`legacy`: as a
    server that knows only the initialize handshake, which gives a streamable_http client a
    session it ends with a DELETE)."""
    mock = McpMock(legacy=legacy, hang_on_delete=hang_on_delete)
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
        mock.released = True
        runner.should_exit = True
        thread.join(timeout=30)
        sock.close()


# -- a server that accepts connections and never answers ------------------------------------------

HEAD_ONLY = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"


@dataclass
class Silent:
    """The silent server: its endpoint URL and the connections it accepted."""

    url: str = ""
    accepted: list[socket.socket] = field(default_factory=list)

    def closed_by_client(self, wait: float = 5.0) -> list[bool]:
        """For each accepted connection: whether the client closed it (reads reach EOF within
        `wait` s; what it sent is read and dropped)."""
        closed = []
        for conn in list(self.accepted):
            conn.settimeout(wait)
            try:
                while conn.recv(65536):
                    pass
                closed.append(True)
            except OSError:  # a timeout: the client still holds its end
                closed.append(False)
        return closed


@contextmanager
def silent_server(transport: str, headers: bool) -> Iterator[Silent]:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers (`headers`
    False: never a byte), or answers each request's head with the headers of an event stream
    (200, `text/event-stream`, what both transports' servers send) and then nothing, for the
    block."""
    silent = Silent()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            silent.accepted.append(conn)
            if headers:
                head = b""
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    conn.sendall(HEAD_ONLY)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    silent.url = f"http://127.0.0.1:{listener.getsockname()[1]}{PATHS[transport]}"
    try:
        yield silent
    finally:
        stop.set()
        thread.join(timeout=30)
        listener.close()
        for conn in silent.accepted:
            conn.close()
