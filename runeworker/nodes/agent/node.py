"""The `agent` node: one LLM conversation with tools, from the parameters to upstream's output.

It blocks (the executor commits its `running` status before it starts, and a worker child
serves heartbeats while it runs). The run is one asyncio loop on the node's thread: the SDK
clients, the MCP sessions and the tool calls share it, and `agent.total_timeout` bounds all of
it. `tools` and `mcp_servers` are resolved here, not by the executor, so that the credential
blocks the API embeds in them are never read as templates.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.engine.workflow import EMBEDDED_CREDENTIAL_LISTS
from runeworker.errors import NodeError, ResolveError
from runeworker.nodes.agent.extra import required
from runeworker.nodes.agent.loop import Toolbox, converse
from runeworker.nodes.agent.params import AgentParams, parse
from runeworker.nodes.agent.providers import open_chat
from runeworker.nodes.agent.providers.setup import Setup, api_key
from runeworker.nodes.agent.tools import HttpTool
from runeworker.nodes.agent.transcript import Transcript

TOOL_THREADS = 4  # HTTP tool calls of one reply that run at once


@node("agent", blocking=True, raw=EMBEDDED_CREDENTIAL_LISTS)
def run(ctx: NodeContext) -> dict[str, Any]:
    """Run the agent; output `{messages, final_response, tool_calls, model, usage}`."""
    params = parse(_resolved(ctx))
    return asyncio.run(_bounded(ctx, params))


def _resolved(ctx: NodeContext) -> dict[str, Any]:
    params = dict(ctx.params)
    for name in EMBEDDED_CREDENTIAL_LISTS:
        entries = params.get(name)
        try:
            if isinstance(entries, str):  # the whole list from the context: `$Setup.tools`
                params[name] = ctx.resolver.resolve_value(entries)
                continue
            if not isinstance(entries, list):
                continue
            params[name] = [
                {
                    k: v if k == "credentials" else ctx.resolver.resolve_value(v)
                    for k, v in e.items()
                }
                if isinstance(e, dict)
                else e
                for e in entries
            ]
        except ResolveError as exc:
            raise NodeError(f"parameter '{name}': {exc}") from None
    return params


async def _bounded(ctx: NodeContext, params: AgentParams) -> dict[str, Any]:
    limit = ctx.settings.agent_total_timeout
    try:
        async with asyncio.timeout(limit) as deadline:
            return await _agent(ctx, params)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise NodeError(
            f"agent: the run took longer than {limit:g} s (agent.total_timeout)"
        ) from None


async def _agent(ctx: NodeContext, params: AgentParams) -> dict[str, Any]:
    # HTTP tools block; their threads are not waited for when the run ends early (a request
    # still in flight finishes on its own timeout)
    pool = ThreadPoolExecutor(TOOL_THREADS, thread_name_prefix="agent-tool")
    try:
        async with contextlib.AsyncExitStack() as stack:
            toolbox = Toolbox(pool)
            for config in params.tools:
                tool = HttpTool(config, ctx)
                toolbox.add_blocking(tool.spec, tool.call)
            if params.mcp_servers:
                with required():
                    from runeworker.nodes.agent.mcp_servers import McpServers
                servers = McpServers(params.mcp_servers, ctx.settings)
                await stack.enter_async_context(servers)
                for mcp_tool in servers.tools:
                    toolbox.add(mcp_tool.spec, mcp_tool.call)
            chat = open_chat(_setup(ctx, params, toolbox))
            stack.push_async_callback(chat.close)
            transcript = Transcript(params.model.name)
            await converse(chat, toolbox, transcript, ctx.settings.agent_max_rounds)
            return transcript.output()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _setup(ctx: NodeContext, params: AgentParams, toolbox: Toolbox) -> Setup:
    return Setup(
        model=params.model,
        api_key=api_key(ctx.credentials),
        system_prompt=params.system_prompt,
        history=params.history,
        prompt=params.prompt,
        tools=tuple(toolbox.specs),
        settings=ctx.settings,
        meter=ctx.meter,
    )
