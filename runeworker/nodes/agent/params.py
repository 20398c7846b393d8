"""The agent node's parameters, read and checked before anything is called.

Shapes and messages as upstream's (services/rune-worker/pkg/nodes/custom/agent/params.go,
types.go, message_adapter.go, model_factory.go): entries that are not objects, messages without
a role or content and MCP servers without a URL are skipped; a tool field is a bare value
(fixed), `{mode: "fixed", value}`, or `{mode: "agent", agent: {description, type, required}}`
(the model fills it in). Beyond upstream: numbers are accepted where upstream wants strings
(`timeout: 30`), and message roles other than user and model are refused here rather than by
the provider.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runeworker.engine.resolver import render
from runeworker.errors import NodeError

PROVIDERS = ("gemini", "openai", "anthropic")
GEMINI_BACKENDS = ("ai_studio", "vertex")
ROLES = ("user", "model")
TRANSPORTS = ("sse", "streamable_http")
FIELD_TYPES = ("string", "number", "boolean", "object")
FIXED, AGENT = "fixed", "agent"


def quoted(value: Any) -> str:
    """Go's %q of a string (a JSON string), for messages worded as upstream's."""
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


@dataclass(frozen=True)
class ModelConfig:
    """`model`: which provider, which model, and the Gemini backend."""

    provider: str
    name: str
    backend: str = ""  # gemini only: "" or "ai_studio" (the Gemini API), "vertex"
    temperature: float | None = None


@dataclass(frozen=True)
class Message:
    """One turn of `messages`: role `user` or `model`."""

    role: str
    content: str


@dataclass(frozen=True)
class AgentField:
    """How the model fills in a tool field: a JSON-schema property of the tool."""

    description: str = ""
    type: str = "string"
    required: bool = False


@dataclass(frozen=True)
class FieldMode:
    """A tool field: fixed by the workflow (`value`) or filled in by the model (`agent`)."""

    mode: str = FIXED
    value: Any = None
    agent: AgentField | None = None


@dataclass(frozen=True)
class KVField:
    """A header, query or body field of an HTTP tool."""

    key: str
    value: FieldMode


@dataclass(frozen=True)
class HttpToolConfig:
    """`config` of an `http_request` tool; the request options are the http node's."""

    method: str = "GET"
    url: FieldMode = FieldMode()
    headers: tuple[KVField, ...] = ()
    query: tuple[KVField, ...] = ()
    body: tuple[KVField, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()  # timeout, retry, retry_delay, raise_on_status, ...


@dataclass(frozen=True)
class ToolConfig:
    """One entry of `tools`."""

    name: str
    description: str
    http: HttpToolConfig
    credentials: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class McpServerConfig:
    """One entry of `mcp_servers`."""

    name: str
    transport: str
    url: str
    credentials: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AgentParams:
    """Everything the node was asked to do."""

    model: ModelConfig
    system_prompt: str
    history: tuple[Message, ...]  # the turns before the prompt
    prompt: Message  # the last message, always the user's
    tools: tuple[ToolConfig, ...]
    mcp_servers: tuple[McpServerConfig, ...]


# Request options of the http node a tool passes through as they are (it checks them).
_HTTP_OPTIONS = ("timeout", "retry", "retry_delay", "raise_on_status", "ignore_ssl")


def parse(raw: Mapping[str, Any]) -> AgentParams:
    """Read the node parameters; NodeError with upstream's message when they cannot run."""
    model = _model(raw.get("model"))
    system_prompt = raw.get("system_prompt")
    tools = tuple(_tool(t) for t in _objects(raw.get("tools")))
    servers = tuple(s for s in map(_server, _objects(raw.get("mcp_servers"))) if s is not None)
    history, prompt = _split(_messages(raw.get("messages")))
    return AgentParams(
        model=model,
        system_prompt=system_prompt if isinstance(system_prompt, str) else "",
        history=history,
        prompt=prompt,
        tools=tools,
        mcp_servers=servers,
    )


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _model(raw: Any) -> ModelConfig:
    m = raw if isinstance(raw, dict) else {}
    provider, name = _text(m, "provider"), _text(m, "name")
    if not provider:
        raise NodeError("agent: model.provider is required")
    if not name:
        raise NodeError("agent: model.name is required")
    if provider not in PROVIDERS:
        raise NodeError(f"agent: unknown provider {quoted(provider)}")
    backend = _text(m, "backend")
    if provider == "gemini" and backend not in ("", *GEMINI_BACKENDS):
        raise NodeError(
            f'agent: unknown gemini backend {quoted(backend)} (expected "ai_studio" or "vertex")'
        )
    return ModelConfig(provider, name, backend, _temperature(m.get("temperature")))


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = render(value)  # as JSON: a Python repr (None, True, 'x') names no JSON value
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise NodeError(f"agent: model.temperature must be a number, got {shown}")
    try:  # JSON integers have no bound: one of 400 digits is no double
        temperature = float(value)
    except OverflowError:
        temperature = math.inf
    if not math.isfinite(temperature):
        raise NodeError("agent: model.temperature is out of range")
    return temperature


def _messages(raw: Any) -> list[Message]:
    out = []
    for m in _objects(raw):
        role, content = _text(m, "role"), _text(m, "content")
        if not role or not content:
            continue  # upstream skips them (an empty turn in the editor)
        if role not in ROLES:
            raise NodeError(f'agent: message role must be "user" or "model" (got {quoted(role)})')
        out.append(Message(role, content))
    return out


def _split(messages: list[Message]) -> tuple[tuple[Message, ...], Message]:
    if not messages:
        raise NodeError("agent: at least one message is required")
    *history, last = messages
    if last.role != "user":
        raise NodeError(f'agent: last message must have role "user" (got {quoted(last.role)})')
    return tuple(history), last


def _tool(m: dict[str, Any]) -> ToolConfig:
    kind, name = _text(m, "type"), _text(m, "name")
    if kind != "http_request":
        raise NodeError(
            f"agent: unsupported tool type {quoted(kind)} (only http_request is supported in v0)"
        )
    if not name:
        raise NodeError("agent: tool name is required")
    config = m.get("config")
    if not isinstance(config, dict):
        raise NodeError(f"agent: tool {quoted(name)} is missing config")
    credentials = m.get("credentials")
    return ToolConfig(
        name=name,
        description=_text(m, "description"),
        http=_http_config(config),
        credentials=credentials if isinstance(credentials, dict) and credentials else None,
    )


def _http_config(cfg: dict[str, Any]) -> HttpToolConfig:
    return HttpToolConfig(
        method=_text(cfg, "method") or "GET",
        url=field_mode(cfg.get("url")),
        headers=_kv_fields(cfg.get("headers")),
        query=_kv_fields(cfg.get("query")),
        body=_kv_fields(cfg.get("body")),
        options=tuple(
            (k, v) for k in _HTTP_OPTIONS if (v := _option(k, cfg.get(k))) not in (None, "")
        ),
    )


# The tool options upstream reads as counts of seconds or tries (`parseSecondsOr`,
# `parseIntOr` in services/rune-worker/pkg/nodes/custom/agent/tool_builder.go).
_COUNTS = ("timeout", "retry", "retry_delay")


def _option(name: str, value: Any) -> Any:
    """An http option as the tool passes it on; a count that is not a number (`"abc"`,
    `"30s"`, `true`) is left out, so the tool runs with the default, as upstream's does (the
    http node would refuse it at every call). Numbers and numeric text pass: upstream reads
    only integer text, and ignores a JSON number."""
    if name not in _COUNTS or value is None:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return value if math.isfinite(float(value.strip())) else None
        except ValueError:
            return None
    return None


def field_mode(raw: Any) -> FieldMode:
    """A bare value (fixed), `{mode: "fixed", value}` or `{mode: "agent", agent: {...}}`."""
    if raw is None:
        return FieldMode(FIXED, "")
    if not isinstance(raw, dict):
        return FieldMode(FIXED, raw)
    if raw.get("mode") != AGENT:
        return FieldMode(FIXED, raw.get("value"))
    spec = raw.get("agent")
    if not isinstance(spec, dict):
        spec = {}
    kind = _text(spec, "type") or "string"
    if kind not in FIELD_TYPES:
        raise NodeError(
            f"agent: tool field type {quoted(kind)} is not one of {', '.join(FIELD_TYPES)}"
        )
    required = spec.get("required") is True
    return FieldMode(AGENT, agent=AgentField(_text(spec, "description"), kind, required))


def _kv_fields(raw: Any) -> tuple[KVField, ...]:
    return tuple(
        KVField(key, field_mode(e.get("value"))) for e in _objects(raw) if (key := _text(e, "key"))
    )


def _server(m: dict[str, Any]) -> McpServerConfig | None:
    url = _text(m, "url")
    if not url:
        return None  # upstream skips a server without a URL
    name, transport = _text(m, "name"), _text(m, "transport")
    if transport not in ("", *TRANSPORTS):
        raise NodeError(
            f"agent: mcp server {quoted(name)}: unsupported transport {quoted(transport)} "
            '(expected "sse" or "streamable_http")'
        )
    credentials = m.get("credentials")
    return McpServerConfig(
        name=name,
        transport=transport or "streamable_http",
        url=url,
        credentials=credentials if isinstance(credentials, dict) and credentials else None,
    )
