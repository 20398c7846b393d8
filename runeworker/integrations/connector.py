"""The one connector every integration tool goes through (upstream:
`services/rune-worker/pkg/integrations/internal/connector/connector.go`).

A `Call` holds a tool, its decoded arguments and the node context. `Call.send` builds the request
the tool's spec describes and hands it to the `http` node's own request path
(`runeworker.nodes.http.run`: deny list, timeout, response size cap, TLS verification, credential
headers, masking of transport errors), so integrations and the http node cannot drift apart. The
answer is the http node's envelope `{status, status_text, body, headers, duration_ms}`; a non-2xx
status fails the node with the status, URL and body, as upstream. Beyond upstream: a 429 or 503
that says `Retry-After` is retried after that delay while it is within
`[integrations] retry_after_max`, at most `retry_after_attempts` times, and every error names the
provider and the tool. `worker.node_timeout` bounds the whole node, as it bounds the http node's
attempts: every exchange of a call (a tool may make several) and every Retry-After wait.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import msgspec

from runeworker.engine.registry import NodeContext, node, time_limit_message
from runeworker.errors import NodeError
from runeworker.integrations.spec import BASE_URLS, Tool, put
from runeworker.nodes import http

RETRYABLE = frozenset({429, 503})
_SHOWN_BODY = 4096  # characters of an error body quoted in a failure message
# Characters Go's url.PathEscape leaves alone (upstream escapes path arguments with it).
_SEGMENT_SAFE = "$&+:=@"

_sleep = time.sleep  # tests replace it to observe Retry-After waits without waiting

CATALOG: dict[str, Tool] = {}  # node type -> tool, every tool registered so far


@dataclass(frozen=True)
class Request:
    """What one exchange sends. `path` is still a template: placeholders are filled from the
    call's arguments when it is sent (so a secret argument can be shown as `***`)."""

    method: str
    base: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    timeout: float | None = None  # None: the http node's default ([nodes] http_default_timeout)


class StatusError(NodeError):
    """The service answered with a status outside 2xx."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Call:
    """One execution of a tool: its arguments (hooks may add computed ones), the base URL, the
    credential the request core applies as a header, and the arguments that are secrets."""

    tool: Tool
    ctx: NodeContext
    args: dict[str, Any]
    base: str
    credentials: Mapping[str, Any]
    secrets: set[str] = field(default_factory=set)
    # when `worker.node_timeout` runs out for the whole node (inf: no limit)
    deadline: float = field(default=math.inf)

    def __post_init__(self) -> None:
        limit = self.ctx.settings.node_timeout
        if limit > 0 and self.deadline == math.inf:
            self.deadline = time.monotonic() + limit

    def request(self, **changes: Any) -> Request:
        """The request the tool's spec describes, with `changes` (Request fields) applied."""
        spec = self.tool
        plain = Request(spec.method, self.base, spec.path, self._query(), self._body())
        return dataclasses.replace(plain, **changes)

    def send(self, request: Request | None = None, *, any_status: bool = False) -> dict[str, Any]:
        """Exchange `request` (default: `self.request()`); the http node's envelope. A status
        outside 2xx raises StatusError unless `any_status`."""
        req = request or self.request()
        url, shown = self._url(req, hide=False), self._url(req, hide=True)
        params: dict[str, Any] = {"method": req.method, "url": url, "query": dict(req.query)}
        if req.body is not None:
            params["body"] = req.body
        if req.timeout is not None:
            params["timeout"] = req.timeout
        sub = dataclasses.replace(self.ctx, params=params, credentials=dict(self.credentials))
        out, note = self._exchange(sub, f"{req.method} {shown}")
        status = int(out["status"])
        if not any_status and not 200 <= status < 300:
            message = f"integration request failed: status={status} url={shown}"
            raise StatusError(message + _shown_body(out["body"]) + note, status)
        return out

    def _exchange(self, sub: NodeContext, shown: str) -> tuple[dict[str, Any], str]:
        """http.run, again after each honoured Retry-After; (envelope, note for a failure)."""
        settings = self.ctx.settings
        attempts = settings.integrations_retry_after_attempts
        for attempt in range(attempts + 1):
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise NodeError(f"{shown}: {time_limit_message(settings.node_timeout)}")
            # the http node bounds its attempts by what is left of the whole node's limit
            if left != math.inf:
                sub = dataclasses.replace(
                    sub, settings=dataclasses.replace(settings, node_timeout=left)
                )
            try:
                out = http.run(sub)
            except NodeError as exc:  # the message quotes the URL: hide the secret arguments
                raise NodeError(self.hide(str(exc)), exc.code, exc.details) from None
            status = int(out["status"])
            wait = retry_after(out["headers"]) if status in RETRYABLE else None
            if wait is None:
                return out, ""
            if wait > settings.integrations_retry_after_max:
                limit = f"{settings.integrations_retry_after_max:g}"
                return (
                    out,
                    f" (Retry-After {wait:g} s exceeds integrations.retry_after_max {limit} s)",
                )
            if wait >= self.deadline - time.monotonic():
                return out, (
                    f" (Retry-After {wait:g} s would pass the node time limit of "
                    f"{settings.node_timeout:g} s, worker.node_timeout)"
                )
            if attempt == attempts:
                return out, f" (still {status} after {attempts} Retry-After retries)"
            self.ctx.log.warning(
                "%s: %s answered %d, retrying after %g s", self.tool.kind, shown, status, wait
            )
            _sleep(wait)
        raise AssertionError("unreachable: the last attempt returns")

    def hide(self, text: str) -> str:
        """`text` with the values of secret arguments (and their URL forms) replaced by ***."""
        for name in self.secrets:
            value = str(self.args.get(name) or "")
            if value:
                text = text.replace(quote(value, safe=_SEGMENT_SAFE), "***").replace(value, "***")
        return text

    def _url(self, req: Request, *, hide: bool) -> str:
        path = req.path
        for name, value in self.args.items():
            if "{" + name + "}" in path:
                hidden = hide and name in self.secrets
                shown = "***" if hidden else quote(str(value), safe=_SEGMENT_SAFE)
                path = path.replace("{" + name + "}", shown)
        # Joined, not resolved: a base URL may carry a path prefix (a proxy, a test server);
        # upstream's url.ResolveReference would drop it for an absolute path.
        return req.base.rstrip("/") + "/" + path.lstrip("/")

    def _query(self) -> dict[str, str]:
        out = {}
        for key, name in self.tool.query:
            value = self.args[name]
            if self.tool.arg(name).is_set(value):
                out[key] = _query_text(value)
        return out

    def _body(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for key, name in self.tool.body:
            value, arg = self.args[name], self.tool.arg(name)
            if arg.always or arg.is_set(value):
                put(out, key, value)
        return out or None


# Go's json.Marshal escapes these inside strings (HTML-safe JSON); in JSON text they occur in
# strings only, so escaping them throughout is the same.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _shown_body(body: Any) -> str:
    """` body=<body>` of a failure message, as upstream's connector.Error writes it: text as it is,
    JSON as Go's json.Marshal re-encodes it (object keys sorted, `<>&` escaped), nothing for a
    JSON `null` (Go's nil body); cut after _SHOWN_BODY characters."""
    if body is None:
        return ""
    if isinstance(body, str):
        text = body
    else:
        text = msgspec.json.encode(body, order="sorted").decode().translate(_GO_ESCAPES)
    if len(text) > _SHOWN_BODY:
        text = text[:_SHOWN_BODY] + f"... ({len(text)} characters)"
    return f" body={text}"


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delay or HTTP date); None without one."""
    raw = str(headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def execute(tool: Tool, ctx: NodeContext) -> dict[str, Any]:
    """Run `tool` for one node execution; every failure names the provider and the tool."""
    call: Call | None = None
    try:
        base = ctx.settings.integrations_base_urls.get(tool.service) or BASE_URLS[tool.service]
        call = Call(tool, ctx, tool.read(ctx.params), base, ctx.credentials)
        return tool.hook(call) if tool.hook else call.send()
    except NodeError as exc:
        message = call.hide(str(exc)) if call else str(exc)
        details: dict[str, object] = {"provider": tool.provider, "tool": tool.tool}
        if isinstance(exc, StatusError):
            details["status"] = exc.status
        raise NodeError(f"{tool.provider} {tool.tool}: {message}", exc.code, details) from None


def register(*tools: Tool) -> None:
    """Make each tool a node type (blocking, like http: `running` is committed first). A kind
    registered already, or twice among `tools`, is refused before any is registered (as
    upstream's `integrations.Register` panics on a duplicate kind)."""
    kinds = [tool.kind for tool in tools]
    for kind in kinds:
        if kind in CATALOG or kinds.count(kind) > 1:
            raise ValueError(f"duplicate integration kind {kind}")
    for tool in tools:
        CATALOG[tool.kind] = tool
        node(tool.kind, required=tool.required, blocking=True)(partial(execute, tool))
