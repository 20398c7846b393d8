"""The `agent` node: an LLM agent with HTTP tools and MCP servers (upstream's
services/rune-worker/pkg/nodes/custom/agent/), on Gemini as upstream, and on OpenAI's chat
completions (any compatible server) and Anthropic's messages API beyond it.

Modules: `params` (parameters and their checks), `tools` (HTTP tools on the http node),
`mcp_servers` (MCP client), `providers` (one per API), `loop` (tool calling and its limits),
`transcript` (the output), `node` (the node itself). The SDKs are the `agent` extra.
"""

from runeworker.nodes.agent import node as node  # registers the node type
