"""`http` node: one HTTP request with retries, credentials and safety limits (upstream
services/rune-worker/pkg/nodes/custom/http/http_node.go).

Fixes over the Go worker (services/rune-worker/pkg/nodes/shared/httpcore/): non-string query/header
values are rendered, not
dropped; one connection pool per process; exponential backoff; string bodies keep their own content
type; a response size cap; a deny list of networks checked on every redirect hop.

Parameters are read by `runeworker.nodes.params` (`ignore_ssl` a flag, `retry` a whole number,
`retry_delay` a number of seconds, `timeout` a duration: not positive = `http_default_timeout`).
`worker.node_timeout` (NodeSettings.node_timeout: 80 % of `worker.timeout` unless set; 0 only
where a caller builds its own settings) is the default and upper bound of `timeout` and bounds
the whole node: every attempt and backoff. Header values go out as UTF-8
bytes, as Go writes them (see `_wire_headers`)."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import msgspec
import requests
import urllib3

from runeworker.engine import depth
from runeworker.engine.registry import NodeContext, NodeSettings, node, time_limit_message
from runeworker.engine.resolver import render
from runeworker.errors import NodeError
from runeworker.masking import mask_url_passwords
from runeworker.nodes import params as p

MAX_REDIRECTS = 10
MAX_BACKOFF = 30.0
_CHUNK = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CHARSET = re.compile(r"charset=\"?([\w.:-]+)", re.IGNORECASE)
# Headers that never follow a redirect to another host (nor does the credential's own header).
_SENSITIVE = ("Authorization", "Cookie", "Proxy-Authorization")
_TIMEOUTS = (TimeoutError, urllib3.exceptions.TimeoutError)
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but the tab
_OBJECT = p.Wording(invalid="{name} parameter must be an object")
_URL = p.Wording(invalid="url parameter must be an http or https URL, got {got}")

# The longest `timeout` taken: beyond, the socket's timeout overflows the platform's time_t
# (10**12 s), and nothing waits a week for one answer.
TIMEOUT_MAX = 7 * 86400.0
_sleep = time.sleep  # tests replace it to observe the backoff without waiting
_SESSION: tuple[int, requests.Session] | None = None


class _TransportError(Exception):
    """An attempt failed before a complete response arrived; the attempt may be retried."""

    def __init__(self, prepared: requests.PreparedRequest, reason: str) -> None:
        super().__init__(f"{prepared.method} {prepared.url}: {reason}")


@dataclass(frozen=True)
class _Request:
    prepared: requests.PreparedRequest
    timeout: float
    verify: bool
    attempts: int
    delay: float
    raise_on_status: str
    secret_headers: tuple[str, ...]


@node("http", required=("url",), blocking=True)
def run(ctx: NodeContext) -> dict[str, Any]:
    """Send the request described by the node parameters; output status, body and headers."""
    try:
        return _run(ctx)
    except NodeError as exc:
        # Every message (URLs, transport errors) may quote a credential or a password written
        # in a URL: mask once, here.
        raise NodeError(_masked(ctx, str(exc)), exc.code, exc.details) from None


def _masked(ctx: NodeContext, text: str) -> str:
    """`text` without the node's credential values and without URL passwords."""
    return mask_url_passwords(str(ctx.resolver.mask(text)))


def _run(ctx: NodeContext) -> dict[str, Any]:
    req = _prepare(ctx.params, ctx.credentials, ctx.settings)
    limit = ctx.settings.node_timeout  # the whole node, every attempt and backoff included
    deadline = time.monotonic() + limit if limit > 0 else math.inf
    if ctx.credentials and not req.secret_headers:
        kind = _value(ctx.credentials, "type")
        ctx.log.warning("%s credential holds no secret: the request is sent without it", kind)
    last = ""
    made = 0
    for attempt in range(req.attempts):
        if attempt and req.delay > 0:
            backoff = min(req.delay * 2 ** min(attempt - 1, 32), MAX_BACKOFF)
            _sleep(min(backoff, max(0.0, deadline - time.monotonic())))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # The first attempt starts at once and its timeout is capped at the limit already.
        short = attempt and remaining < req.timeout
        this = replace(req, timeout=round(remaining, 3)) if short else req
        made += 1
        started = time.monotonic()
        try:
            resp, raw = _exchange(this, ctx.settings)
        except _TransportError as exc:
            last = f"http request failed: {exc}"
        else:
            status = resp.status_code
            if not _status_matches(req.raise_on_status, status):
                return _output(resp, raw, int((time.monotonic() - started) * 1000))
            last = f"status code {status} matches raise_on_status pattern: {req.raise_on_status}"
        ctx.log.warning("http attempt %d failed: %s", attempt + 1, _masked(ctx, last))
    if time.monotonic() >= deadline:
        last = f"{time_limit_message(limit)}; last: {last}"
    raise NodeError(f"http request failed after {made} attempts: {last}")


def _prepare(
    params: Mapping[str, Any], credentials: Mapping[str, Any], settings: NodeSettings
) -> _Request:
    method = p.text(params, "method", "GET", other="default").strip()
    if not _TOKEN.fullmatch(method):
        raise NodeError(f"method parameter must be an HTTP method name, got {method!r}")
    # A list becomes one comma-joined field, which HTTP treats as the repeated field (RFC 9110).
    headers = requests.structures.CaseInsensitiveDict(
        {
            canonical_header(k): _join(v)
            for k, v in p.mapping(params, "headers", wording=_OBJECT).items()
        }
    )
    secret = _credential_headers(credentials)
    for name, value in secret.items():
        headers.setdefault(name, value)  # a header the workflow sets itself wins
    body = _body(params.get("body"), headers)
    try:
        prepared = requests.Request(
            method.upper(), _url(params), headers=_wire_headers(headers), data=body
        ).prepare()
    except (requests.RequestException, ValueError) as exc:
        raise NodeError(f"invalid http request: {exc}") from exc
    # worker.node_timeout is the default and the upper bound of the node's own timeout
    cap = settings.node_timeout if settings.node_timeout > 0 else math.inf
    timeout = p.duration(params, "timeout", min(settings.http_default_timeout, cap))
    if timeout > TIMEOUT_MAX:
        raise NodeError(
            f"timeout parameter must be at most {TIMEOUT_MAX:g} seconds (7 days), got {timeout:g}"
        )
    return _Request(
        prepared=prepared,
        timeout=min(timeout, cap),
        verify=not p.flag(params, "ignore_ssl"),
        attempts=p.integer(params, "retry", 0, minimum=0) + 1,
        delay=p.number(params, "retry_delay", 0.0, minimum=0.0),
        raise_on_status=p.text(params, "raise_on_status", other="render").strip(),
        secret_headers=tuple(secret),
    )


def _wire_headers(headers: Mapping[str, str]) -> dict[str, str | bytes]:
    """Header fields as they go on the wire. Values are trimmed of spaces and tabs and sent as
    UTF-8 bytes when they are not ASCII, as Go's net/http writes a string's bytes (Python's
    http.client would refuse text beyond Latin-1, and send Latin-1 text as Latin-1). Names
    that are not HTTP tokens and values with control characters are refused, as Go refuses
    them (`httpguts.ValidHeaderFieldName`, `ValidHeaderFieldValue`)."""
    wire: dict[str, str | bytes] = {}
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise NodeError(f"invalid http request: header name {name!r} is not an HTTP token")
        text = value.strip(" \t")
        if _CONTROL.search(text):
            raise NodeError(
                f"invalid http request: header {name} has a control character in its value"
            )
        wire[name] = text if text.isascii() else text.encode()
    return wire


def _url(params: Mapping[str, Any]) -> str:
    url = p.text(params, "url", required=True, wording=_URL).strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise NodeError(f"url parameter must be an http or https URL, got {url!r}")
    query = p.mapping(params, "query", wording=_OBJECT)
    if not query:
        return parts.geturl()
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in query.items():
        pairs.extend((key, render(v)) for v in (value if isinstance(value, list) else [value]))
    # Sorted by key, values of a key in order: the Go worker's url.Values.Encode().
    pairs.sort(key=lambda pair: pair[0])
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def _join(value: Any) -> str:
    return ", ".join(map(render, value)) if isinstance(value, list) else render(value)


def _body(value: Any, headers: requests.structures.CaseInsensitiveDict[str]) -> bytes | None:
    if value is None or value == {} or value == "":
        return None
    if isinstance(value, str):
        return value.encode()  # raw: the workflow's own Content-Type, if any, describes it
    headers.setdefault("Content-Type", "application/json")
    return msgspec.json.encode(value)


def _credential_headers(cred: Mapping[str, Any]) -> dict[str, str]:
    """The header a credential adds (services/rune-worker/pkg/nodes/shared/httpcore/credentials.go;
    docs/WIRE.md section 9); {} without a credential."""
    if not cred:
        return {}
    kind = _value(cred, "type")

    def need(*keys: str) -> list[str]:
        values = [_value(cred, k) for k in keys]
        if not all(values):
            raise NodeError(f"{kind} credential needs {' and '.join(keys)}")
        return values

    if kind == "basic_auth":
        pair = ":".join(need("username", "password")).encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if kind == "header":
        field, value = need("field", "value")
        return {canonical_header(field): value}
    if kind == "token":
        return {"Authorization": "Bearer " + need("token")[0]}
    if kind == "oauth2":
        scheme = _value(cred, "token_type")
        scheme = "Bearer" if scheme.lower() in ("", "bearer") else scheme
        return {"Authorization": f"{scheme} {need('access_token')[0]}"}
    if kind == "api_key":
        return _api_key_header(cred)
    kinds = "basic_auth, header, token, oauth2 or api_key"
    raise NodeError(f"credential type {kind!r} is not supported by the http node (use {kinds})")


def _api_key_header(cred: Mapping[str, Any]) -> dict[str, str]:
    """The header of an `api_key` credential, in each shape Rune writes one (never a query
    parameter: upstream only sends headers):

    * `{key, value}`, upstream's http node (services/rune-worker/pkg/nodes/shared/httpcore/
      credentials.go): `<key>: <value>`, or `Authorization: Bearer <value>` without `key`;
    * `{api_key, base_url}`, the web app's form (apps/web/src/components/credentials/
      AddCredentialDialog.tsx): `Authorization: Bearer <api_key>`. `base_url` is not used:
      the node's `url` is absolute;
    * `{key, header_name}`, services/rune-worker/rfcs/RFC-002-workflow-dsl.md (6.2.2): `key` is
      the secret, sent as `<header_name>: <key>` (also `{api_key, header_name}`).

    Without a secret nothing is sent and the node runs, as upstream runs it."""
    value, key = _value(cred, "value"), _value(cred, "key")
    if value:
        return {canonical_header(key): value} if key else {"Authorization": "Bearer " + value}
    header = _value(cred, "header_name")
    secret = _value(cred, "api_key") or (key if header else "")
    if not secret:
        return {}
    return {canonical_header(header): secret} if header else {"Authorization": "Bearer " + secret}


def _value(cred: Mapping[str, Any], key: str) -> str:
    value = cred.get(key)
    return "" if value is None else render(value).strip()


def canonical_header(name: str) -> str:
    """Go's canonical header form (`content-type` -> `Content-Type`); odd names stay as they are."""
    if not _TOKEN.fullmatch(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _status_matches(pattern: str, status: int) -> bool:
    """raise_on_status grammar: `a, b` or `a or b` (any), `a and b` (all); `4xx` or `404`."""
    spec = pattern.strip().lower()
    for separator, combine in ((",", any), (" or ", any), (" and ", all)):
        if separator in spec:
            return combine(_status_is(p, status) for p in spec.split(separator))
    return _status_is(spec, status)


def _status_is(pattern: str, status: int) -> bool:
    p = pattern.strip()
    if len(p) == 3 and p[0] in "2345" and p[1:] == "xx":
        return status // 100 == int(p[0])
    return p.isascii() and p.isdigit() and int(p) == status  # unknown patterns never match


def _session() -> requests.Session:
    """The process's session (connection pools); a forked child makes its own."""
    global _SESSION
    if _SESSION is None or _SESSION[0] != os.getpid():
        _SESSION = (os.getpid(), requests.Session())
    return _SESSION[1]


def _exchange(req: _Request, settings: NodeSettings) -> tuple[requests.Response, bytes]:
    """One attempt: send, follow redirects (deny list checked per hop), read the capped body."""
    session = _session()
    deadline = time.monotonic() + req.timeout
    prepared = req.prepared
    for _hop in range(MAX_REDIRECTS + 1):
        _check_destination(prepared, settings.http_deny_networks)
        resp = _send(session, prepared, req, deadline)
        location = session.get_redirect_target(resp)
        if location is None:
            return resp, _read_body(resp, req, settings.http_max_response_bytes, deadline)
        resp.close()  # a redirect's body is never read: nothing unbounded enters memory
        prepared = _redirected(prepared, resp.status_code, location, req.secret_headers)
    raise _TransportError(req.prepared, f"stopped after {MAX_REDIRECTS} redirects")


def _send(
    session: requests.Session, prepared: requests.PreparedRequest, req: _Request, deadline: float
) -> requests.Response:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _TransportError(prepared, f"timed out after {req.timeout:g} s")
    try:
        # The adapter, not session.send: no cookie jar shared between executions, no proxies
        # or .netrc from the environment, and every redirect hop passes the deny list.
        adapter = session.get_adapter(prepared.url or "")
        with warnings.catch_warnings():
            if not req.verify:  # the workflow asked for it; do not warn on every request
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            return adapter.send(
                prepared, stream=True, timeout=remaining, verify=req.verify, proxies={}
            )
    except requests.RequestException as exc:
        raise _TransportError(prepared, _describe(exc, req.timeout)) from exc


def _redirected(
    prev: requests.PreparedRequest, status: int, location: str, secret_headers: tuple[str, ...]
) -> requests.PreparedRequest:
    """The next hop, with Go's rules: 301/302/303 become a GET without a body (except HEAD),
    307/308 repeat method and body; credentials follow only to the same host and port."""
    url = urljoin(prev.url or "", location)
    nxt = prev.copy()
    try:
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise requests.exceptions.InvalidSchema("not an http or https URL")
        nxt.prepare_url(url, None)
    except requests.RequestException as exc:
        raise _TransportError(prev, f"bad redirect to {url}: {exc}") from exc
    if status in (301, 302, 303):
        nxt.method = nxt.method if nxt.method in ("GET", "HEAD") else "GET"
        nxt.body = None
        for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
            nxt.headers.pop(name, None)
    old, new = urlsplit(prev.url or ""), urlsplit(nxt.url or "")
    upgrade = (old.scheme, new.scheme) == ("http", "https")
    if old.hostname != new.hostname or not (upgrade or old.port == new.port):
        for name in (*_SENSITIVE, *secret_headers):
            nxt.headers.pop(name, None)
    return nxt


def _read_body(resp: requests.Response, req: _Request, cap: int, deadline: float) -> bytes:
    """The decoded body, refused beyond `cap` bytes and beyond the attempt's deadline."""
    prepared = resp.request
    buf = bytearray()
    try:
        # Counted while streaming, after decoding: a declared length can lie or be compressed.
        for chunk in resp.iter_content(_CHUNK):
            buf += chunk
            if len(buf) > cap:
                raise NodeError(f"response body exceeds {cap} bytes")
            if time.monotonic() > deadline:
                raise _TransportError(prepared, f"timed out after {req.timeout:g} s")
    except requests.RequestException as exc:
        raise _TransportError(prepared, _describe(exc, req.timeout)) from exc
    finally:
        resp.close()  # returns the connection to the pool when the body was read to the end
    return bytes(buf)


def _check_destination(prepared: requests.PreparedRequest, networks: tuple[str, ...]) -> None:
    """Refuse a host that resolves into a denied network (cloud metadata, link-local, ...)."""
    try:
        denied = [ipaddress.ip_network(n, strict=False) for n in networks]
    except ValueError as exc:
        raise NodeError(f"http_deny_networks setting has an invalid network: {exc}") from exc
    if not denied:
        return
    parts = urlsplit(prepared.url or "")
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _TransportError(prepared, f"cannot resolve {host}: {reason}") from exc
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]))
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        for net in denied:
            if ip in net or (mapped is not None and mapped in net):
                raise NodeError(f"destination {host} ({ip}) is in the denied network {net}")


def _describe(exc: BaseException, timeout: float) -> str:
    """The innermost cause of a transport error instead of urllib3's nested reprs."""
    root = exc
    for _ in range(16):  # requests -> urllib3 -> socket: a few links (bounded: no cycle risk)
        root = root.__cause__ or root.__context__ or root
    if isinstance(exc, requests.Timeout) or isinstance(root, _TIMEOUTS):
        return f"timed out after {timeout:g} s"
    if isinstance(root, OSError) and isinstance(root.strerror, str) and root.strerror:
        return root.strerror
    return str(root) or str(exc)


def _output(resp: requests.Response, raw: bytes, duration_ms: int) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name in resp.raw.headers:
        headers.setdefault(canonical_header(name), resp.raw.headers.getlist(name)[0])
    reason = resp.reason or _PHRASES.get(resp.status_code, "")
    return {
        "status": resp.status_code,
        "status_text": f"{resp.status_code} {reason}".strip(),
        "body": _parse_body(raw, resp.headers.get("Content-Type", "")),
        "headers": headers,
        "duration_ms": duration_ms,
    }


def _parse_body(raw: bytes, content_type: str) -> Any:
    """Parsed JSON when the body is valid JSON, else text in the declared charset (UTF-8)."""
    if not raw:
        return ""
    with contextlib.suppress(msgspec.DecodeError):
        return depth.decode(raw, "response body")  # too deep: DepthError fails the node
    charset = _CHARSET.search(content_type)
    try:
        return raw.decode(charset.group(1) if charset else "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return raw.decode("utf-8", errors="replace")
