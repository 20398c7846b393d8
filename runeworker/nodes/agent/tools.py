"""HTTP tools: an `http_request` tool is one request of the http node (`runeworker.nodes.http`:
deny list on every hop, response size cap, timeout, retries with backoff, credentials), whose
fields the workflow fixes or the model fills in.

Facts from upstream (services/rune-worker/pkg/nodes/custom/agent/tool_builder.go): each field
in `agent` mode becomes a property of the tool's JSON schema, named `url`, `header_<key>`,
`query_<key>` or `body_<key>` (the key with every character outside [A-Za-z0-9_] turned into
`_`); fixed values and the model's arguments are merged, the body is sent only when it has a
field; a failed request answers the model `{"error": ...}` instead of failing the run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runeworker.engine.registry import NodeContext
from runeworker.engine.resolver import Resolver, render
from runeworker.errors import NodeError
from runeworker.nodes import http
from runeworker.nodes.agent.conversation import ToolSpec
from runeworker.nodes.agent.params import AGENT, FieldMode, HttpToolConfig, ToolConfig

_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_]")
URL, HEADER, QUERY, BODY = "url", "header", "query", "body"


def property_name(key: str) -> str:
    """A field key as a schema property name: `X-User-Id` -> `X_User_Id`."""
    return _NOT_A_NAME.sub("_", key)


@dataclass(frozen=True)
class Slot:
    """A field the model fills in: where its argument goes in the request."""

    prop: str
    kind: str  # url, header, query or body
    key: str  # the header, query or body key ("" for the URL)


def schema(cfg: HttpToolConfig) -> tuple[dict[str, Any], tuple[Slot, ...]]:
    """The JSON schema of the tool's arguments and the slots its properties fill."""
    props: dict[str, Any] = {}
    required: list[str] = []
    slots: list[Slot] = []

    def add(prop: str, field: FieldMode, kind: str, key: str) -> None:
        if field.mode != AGENT or field.agent is None:
            return
        props[prop] = {"type": field.agent.type, "description": field.agent.description}
        if field.agent.required:
            required.append(prop)
        slots.append(Slot(prop, kind, key))

    add("url", cfg.url, URL, "")
    for kind, fields in ((HEADER, cfg.headers), (QUERY, cfg.query), (BODY, cfg.body)):
        for f in fields:
            add(f"{kind}_{property_name(f.key)}", f.value, kind, f.key)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out, tuple(slots)


def request_params(
    cfg: HttpToolConfig, slots: tuple[Slot, ...], args: Mapping[str, Any]
) -> dict[str, Any]:
    """The http node parameters of one call: fixed values, then the model's arguments."""
    url = cfg.url.value if cfg.url.mode != AGENT and isinstance(cfg.url.value, str) else ""
    headers = {f.key: render(f.value.value) for f in cfg.headers if _fixed(f.value)}
    query = {f.key: render(f.value.value) for f in cfg.query if _fixed(f.value)}
    body = {f.key: f.value.value for f in cfg.body if f.value.mode != AGENT}
    has_body = bool(body)
    for slot in slots:
        if slot.prop not in args:
            continue
        value = args[slot.prop]
        if slot.kind == URL:
            url = value if isinstance(value, str) else url
        elif slot.kind == HEADER:
            headers[slot.key] = render(value)
        elif slot.kind == QUERY:
            query[slot.key] = render(value)
        else:
            body[slot.key] = value
            has_body = True
    if not url:
        raise NodeError("url is empty")
    params: dict[str, Any] = {"method": cfg.method, "url": url, **dict(cfg.options)}
    if headers:
        params["headers"] = headers
    if query:
        params["query"] = query
    if has_body:
        params["body"] = body
    return params


def _fixed(field: FieldMode) -> bool:
    return field.mode != AGENT and field.value is not None and field.value != ""


def flat_credentials(cred: Mapping[str, Any] | None) -> dict[str, Any]:
    """An embedded `{id, name, type, values}` block as the http node reads a credential:
    the values with the type beside them (a flat block is taken as it is)."""
    if not cred:
        return {}
    values = cred.get("values")
    flat = dict(values) if isinstance(values, dict) else dict(cred)
    flat.pop("id", None), flat.pop("name", None)
    if isinstance(cred.get("type"), str):
        flat["type"] = cred["type"]
    return flat


class HttpTool:
    """One `http_request` tool, called from a worker thread (the http node blocks)."""

    def __init__(self, config: ToolConfig, ctx: NodeContext) -> None:
        parameters, self.slots = schema(config.http)
        self.spec = ToolSpec(config.name, config.description, parameters)
        self.config = config
        credentials = flat_credentials(config.credentials)
        # the http node masks its errors with its context's resolver: this tool's secrets
        self._ctx = dataclasses.replace(
            ctx, params={}, credentials=credentials, resolver=Resolver({}, credentials=credentials)
        )

    def call(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The http node's output, or `{"error": message}`."""
        try:
            params = request_params(self.config.http, self.slots, args)
            return http.run(dataclasses.replace(self._ctx, params=params))
        except NodeError as exc:
            return {"error": str(exc)}
