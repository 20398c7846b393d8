"""The tool-calling loop: ask the model, run the tools it calls, answer, until it answers
without calling one, within `agent.max_rounds` rounds of tool calls."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from runeworker.engine import depth
from runeworker.errors import NodeError
from runeworker.nodes.agent.conversation import (
    Chat,
    Reply,
    ToolCall,
    ToolResult,
    ToolSpec,
    mend,
)
from runeworker.nodes.agent.params import quoted
from runeworker.nodes.agent.transcript import Transcript

AsyncTool = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
BlockingTool = Callable[[Mapping[str, Any]], dict[str, Any]]


class Toolbox:
    """The run's tools by name: blocking ones (HTTP, run on `pool`) and async ones (MCP)."""

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.specs: list[ToolSpec] = []
        self._tools: dict[str, AsyncTool] = {}

    def add(self, spec: ToolSpec, tool: AsyncTool) -> None:
        """Offer `tool` to the model (NodeError when a tool of that name is offered already:
        the providers refuse duplicate declarations)."""
        if spec.name in self._tools:
            raise NodeError(f"agent: two tools are named {quoted(spec.name)}")
        self.specs.append(spec)
        self._tools[spec.name] = tool

    def add_blocking(self, spec: ToolSpec, tool: BlockingTool) -> None:
        """Offer a tool that blocks (the http node): it runs on a thread of the pool."""

        async def run(args: dict[str, Any]) -> dict[str, Any]:
            return await asyncio.get_running_loop().run_in_executor(self.pool, tool, args)

        self.add(spec, run)

    async def call(self, call: ToolCall) -> ToolResult:
        """Run one call; every failure is an answer for the model, never an exception."""
        tool = self._tools.get(call.name)
        if call.problem:
            response = {"error": call.problem}
        elif tool is None:
            response = {"error": f"unknown tool {quoted(call.name)}"}
        else:
            response = await tool(call.args)
        return ToolResult(call, response if depth.exceeds(response) else mend(response))


async def converse(chat: Chat, toolbox: Toolbox, transcript: Transcript, max_rounds: int) -> None:
    """Run the conversation to the model's final answer. A reply's calls run concurrently;
    their results go back in the calls' order."""
    for rounds in itertools.count():
        reply = as_go_reads(await chat.reply())
        transcript.reply(reply)
        if not reply.calls:
            return
        if rounds >= max_rounds:
            raise NodeError(
                f"agent: the model still calls tools after {max_rounds} rounds (agent.max_rounds)"
            )
        results = list(await asyncio.gather(*(toolbox.call(c) for c in reply.calls)))
        transcript.results(results)
        chat.answer(reply, results)


def as_go_reads(reply: Reply) -> Reply:
    """A reply as upstream's Go decoder reads the API's JSON: lone surrogates as U+FFFD; a
    call's arguments nested deeper than `depth.MAX_DEPTH` are answered with that error
    (the output could not hold them, see runeworker/engine/depth.py)."""
    calls = []
    for call in reply.calls:
        args, problem = call.args, call.problem
        if not problem and depth.exceeds(args):
            args, problem = {}, f"the arguments are {depth.TOO_DEEP}"
        calls.append(ToolCall(mend(call.id), mend(call.name), mend(args), problem))
    return Reply(mend(reply.text), tuple(calls), reply.usage)
