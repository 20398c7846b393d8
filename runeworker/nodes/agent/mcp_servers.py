"""MCP servers as tool sets, through the official `mcp` SDK's client (transports `sse` and
`streamable_http`, the default).

Facts from upstream: the credential becomes request headers
(services/rune-worker/pkg/nodes/custom/agent/mcp_loader.go `credentialAsHeaders`: header,
basic_auth, token, api_key; oauth2 is added here, as the http node reads it); a tool's result
is `{"output": structured content}` or `{"output": its text}`, a result flagged as an error is
`{"error": "Tool execution failed. Details: <text>"}` (google/adk-go tool/mcptoolset/tool.go).
Beyond upstream: every server is connected and its tools listed before the first request (a
bad URL fails the node at once, naming the server), a server must connect and finish its
handshake within `agent.request_timeout` (one that never answers fails the node naming it), a
session's close is bounded too, and the http deny list applies to its URL.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent, Tool

from runeworker.engine.registry import NodeSettings
from runeworker.errors import NodeError
from runeworker.masking import mask_url
from runeworker.nodes.agent import tls
from runeworker.nodes.agent.conversation import ToolSpec
from runeworker.nodes.agent.destination import refuse_denied
from runeworker.nodes.agent.failure import describe
from runeworker.nodes.agent.params import McpServerConfig, quoted

log = logging.getLogger("runeworker.node")
MAX_PAGES = 100  # of one tools/list: a server that pages forever cannot hang the run
CLOSE_TIMEOUT = 5.0  # s, at most, to close a session (ending it politely is not worth a run)


def credential_headers(cred: Mapping[str, Any] | None) -> dict[str, str]:
    """The headers a resolved credential adds; an incomplete one adds none (as upstream)."""
    if not cred:
        return {}
    values = cred.get("values") if isinstance(cred.get("values"), dict) else cred
    assert isinstance(values, Mapping)

    def text(key: str) -> str:
        value = values.get(key)
        return value if isinstance(value, str) else ""

    kind = cred.get("type")
    if kind == "header" and text("field") and text("value"):
        return {text("field"): text("value")}
    if kind == "basic_auth" and text("username") and text("password"):
        pair = f"{text('username')}:{text('password')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if kind == "token" and text("token"):
        return {"Authorization": "Bearer " + text("token")}
    if kind == "oauth2" and text("access_token"):
        scheme = (
            text("token_type") if text("token_type").lower() not in ("", "bearer") else "Bearer"
        )
        return {"Authorization": f"{scheme} {text('access_token')}"}
    if kind == "api_key" and text("value"):
        if text("key"):
            return {text("key"): text("value")}
        return {"Authorization": "Bearer " + text("value")}
    return {}


class McpTool:
    """One tool of a connected server."""

    def __init__(self, server: McpServerConfig, client: Client, tool: Tool) -> None:
        self.server = server
        self.client = client
        self.spec = ToolSpec(tool.name, tool.description or "", tool.input_schema)

    async def call(self, args: dict[str, Any]) -> dict[str, Any]:
        """The tool's output, or `{"error": message}`."""
        try:
            result = await self.client.call_tool(self.spec.name, args)
        except Exception as exc:
            name = quoted(self.spec.name)
            return {"error": f"failed to call MCP tool {name} with err: {describe(exc)}"}
        return _response(result)


def _response(result: CallToolResult) -> dict[str, Any]:
    text = "".join(c.text for c in result.content if isinstance(c, TextContent))
    if result.is_error:
        return {"error": "Tool execution failed." + (f" Details: {text}" if text else "")}
    if result.structured_content is not None:
        return {"output": result.structured_content}
    if not text:
        return {"error": "no text content in tool response"}
    return {"output": text}


class McpServers:
    """The servers of one run, connected on entry (in order) and closed on exit."""

    def __init__(self, servers: tuple[McpServerConfig, ...], settings: NodeSettings) -> None:
        self.servers = servers
        self.settings = settings
        self.tools: list[McpTool] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> McpServers:
        try:
            for server in self.servers:
                client = await self._stack.enter_async_context(self._session(server))
                self.tools += [McpTool(server, client, t) for t in await _list(client, server)]
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._stack.aclose()
        except Exception as failure:  # a session that breaks while closing: the run stands
            log.warning("agent: closing the MCP sessions failed: %s", describe(failure))

    @contextlib.asynccontextmanager
    async def _session(self, server: McpServerConfig) -> AsyncIterator[Client]:
        """A connected session with `server`, within deadlines of its own: the connection and
        the handshake (sse's endpoint event or a response's headers would wait as long as the
        stream may idle) take at most `agent.request_timeout`, the close at most
        `CLOSE_TIMEOUT`.

        One cancel scope encloses the whole session, entered and left in this task as anyio
        requires (the SDK's transports hold task groups open while the session lives); its
        deadline is lifted once connected, and set again when the session closes."""
        where = _where(server)
        try:
            refuse_denied(server.url, self.settings.http_deny_networks)
        except NodeError as exc:
            raise NodeError(f"{where}: {exc}") from None
        request = self.settings.agent_request_timeout
        closing = min(request, CLOSE_TIMEOUT)
        phase = "connect"
        interrupted: BaseException | None = None  # what the run raised through the session
        scope = anyio.CancelScope(deadline=anyio.current_time() + request)
        try:
            with scope:
                async with self._client(server) as client:
                    phase = "run"
                    scope.deadline = math.inf
                    try:
                        yield client
                    except BaseException as exc:
                        interrupted = exc
                        raise
                    finally:
                        phase = "close"
                        scope.deadline = anyio.current_time() + closing
        except Exception as exc:
            if phase == "connect":
                reason = _no_answer(request) if scope.cancel_called else describe(exc)
                raise NodeError(f"{where}: cannot connect: {reason}") from None
            if exc is interrupted:
                raise
            log.warning("agent: closing the session with %s failed: %s", where, describe(exc))
        if phase == "connect":  # the deadline cut the handshake short (the scope took it)
            raise NodeError(f"{where}: cannot connect: {_no_answer(request)}")
        if scope.cancelled_caught:
            log.warning("agent: %s did not close within %g s; left", where, closing)
        if interrupted is not None:  # the close ran out of time while the run's error rose
            raise interrupted

    @contextlib.asynccontextmanager
    async def _client(self, server: McpServerConfig) -> AsyncIterator[Client]:
        """The SDK's client over the server's transport, its HTTP client closed with it."""
        headers = credential_headers(server.credentials)
        request, stream = self.settings.agent_request_timeout, self.settings.agent_total_timeout
        async with contextlib.AsyncExitStack() as stack:
            if server.transport == "sse":
                transport = sse_client(
                    server.url,
                    headers=headers,
                    timeout=request,
                    sse_read_timeout=stream,
                    httpx_client_factory=_client,
                )
            else:
                http_client = _client(headers, httpx2.Timeout(request, read=stream))
                await stack.enter_async_context(http_client)
                transport = streamable_http_client(server.url, http_client=http_client)
            # the initialize handshake alone, as upstream's client (go-sdk v1.5.0 under
            # services/rune-worker/pkg/nodes/custom/agent/mcp_loader.go) makes it: no
            # `server/discover` probe first, which a server that ignores unknown methods
            # leaves unanswered for the SDK's 10 s
            client = Client(transport, read_timeout_seconds=request, cache=None, mode="legacy")
            yield await stack.enter_async_context(client)


def _where(server: McpServerConfig) -> str:
    return f"agent: mcp server {quoted(server.name)} at {mask_url(server.url)}"


def _no_answer(timeout: float) -> str:
    return f"no answer within {timeout:g} s (agent.request_timeout)"


def _client(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
) -> httpx2.AsyncClient:
    """The MCP SDK's client factory, with the process's TLS context."""
    return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, verify=tls.context())


async def _list(client: Client, server: McpServerConfig) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    try:
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
    except Exception as exc:
        raise NodeError(f"{_where(server)}: cannot list its tools: {describe(exc)}") from None
    return tools
