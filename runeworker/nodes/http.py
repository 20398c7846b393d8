"""`http` node: one HTTP request with retries, credentials and safety limits (reference 5.1).

Fixes over the Go worker (reference 8, item 28): non-string query and header values are rendered
instead of dropped, one connection pool per process, exponential retry backoff, string bodies keep
their own content type, a response size cap, and a deny list of destination networks that is
checked on every redirect hop.
"""

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
from dataclasses import dataclass
from email.message import Message
from functools import lru_cache
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import msgspec
import requests
import urllib3

from runeworker.engine.registry import NodeContext, NodeSettings, node
from runeworker.engine.resolver import render
from runeworker.errors import NodeError

MAX_REDIRECTS = 10
MAX_BACKOFF = 30.0
_CHUNK = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CRED_TYPES = "basic_auth, header, token, oauth2 or api_key"
# Headers that must not follow a redirect to another host (plus the credential's own header).
_SENSITIVE = ("Authorization", "Cookie", "Proxy-Authorization")

# Tests replace this to observe the backoff without waiting.
_sleep = time.sleep
_SESSION: tuple[int, requests.Session] | None = None

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_TIMEOUTS = (TimeoutError, urllib3.exceptions.TimeoutError)
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


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
        # Every message (URLs, transport errors) may quote a credential: mask once, here.
        raise NodeError(str(ctx.resolver.mask(str(exc))), exc.code, exc.details) from None


def _run(ctx: NodeContext) -> dict[str, Any]:
    req = _prepare(ctx.params, ctx.credentials, ctx.settings)
    last = ""
    for attempt in range(req.attempts):
        if attempt and req.delay > 0:
            _sleep(min(req.delay * 2 ** min(attempt - 1, 32), MAX_BACKOFF))
        started = time.monotonic()
        try:
            resp, raw = _exchange(req, ctx.settings)
        except _TransportError as exc:
            last = f"http request failed: {exc}"
        else:
            status = resp.status_code
            if not _status_matches(req.raise_on_status, status):
                return _output(resp, raw, int((time.monotonic() - started) * 1000))
            last = f"status code {status} matches raise_on_status pattern: {req.raise_on_status}"
        ctx.log.warning(
            "http attempt %d of %d failed: %s", attempt + 1, req.attempts, ctx.resolver.mask(last)
        )
    raise NodeError(f"http request failed after {req.attempts} attempts: {last}")


def _prepare(
    params: Mapping[str, Any], credentials: Mapping[str, Any], settings: NodeSettings
) -> _Request:
    method = params.get("method") or "GET"
    if not isinstance(method, str) or not _TOKEN.fullmatch(method.strip()):
        raise NodeError(f"method parameter must be an HTTP method name, got {method!r}")
    headers = requests.structures.CaseInsensitiveDict(_headers(params.get("headers")))
    secret = _credential_headers(credentials)
    for name, value in secret.items():
        headers.setdefault(name, value)
    body = _body(params.get("body"), headers)
    try:
        prepared = requests.Request(
            method.strip().upper(), _url(params), headers=dict(headers), data=body
        ).prepare()
    except (requests.RequestException, ValueError) as exc:
        raise NodeError(f"invalid http request: {exc}") from exc
    timeout = _number(params, "timeout")
    return _Request(
        prepared=prepared,
        timeout=timeout if timeout and timeout > 0 else settings.http_default_timeout,
        verify=not _flag(params, "ignore_ssl"),
        attempts=_retries(params) + 1,
        delay=_number(params, "retry_delay", minimum=0.0) or 0.0,
        raise_on_status=render(params.get("raise_on_status") or "").strip(),
        secret_headers=tuple(secret),
    )


def _url(params: Mapping[str, Any]) -> str:
    url = params.get("url")
    if url is None or (isinstance(url, str) and not url.strip()):
        raise NodeError("url parameter is required")
    if not isinstance(url, str):
        raise NodeError("url parameter must be a string")
    parts = urlsplit(url.strip())
    try:
        parts.port  # noqa: B018 - validates the port before anything is sent
    except ValueError as exc:
        raise NodeError(f"url parameter has an invalid port: {url}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise NodeError(f"url parameter must be an http or https URL, got {url!r}")
    query = params.get("query")
    if query is None or query == {}:
        return parts.geturl()
    if not isinstance(query, dict):
        raise NodeError("query parameter must be an object")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in query.items():
        pairs.extend((key, render(v)) for v in (value if isinstance(value, list) else [value]))
    # Sorted by key, values of a key in order: the Go worker's url.Values.Encode().
    pairs.sort(key=lambda pair: pair[0])
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NodeError("headers parameter must be an object")
    out: dict[str, str] = {}
    for name, item in value.items():
        # Repeated fields are equivalent to one comma-joined field (RFC 9110, 5.3).
        text = ", ".join(map(render, item)) if isinstance(item, list) else render(item)
        out[canonical_header(name)] = text
    return out


def _body(value: Any, headers: requests.structures.CaseInsensitiveDict[str]) -> bytes | None:
    if value is None or value == {} or value == "":
        return None
    if isinstance(value, str):
        return value.encode()  # raw: the caller's Content-Type, if any, describes it
    headers.setdefault("Content-Type", "application/json")
    return msgspec.json.encode(value)


def _credential_headers(cred: Mapping[str, Any]) -> dict[str, str]:
    """The header a credential adds (reference 5.1); {} without a credential."""
    if not cred:
        return {}
    kind = _value(cred, "type")

    def need(*keys: str) -> list[str]:
        values = [_value(cred, k) for k in keys]
        if not all(values):
            raise NodeError(f"{kind} credential needs {' and '.join(keys)}")
        return values

    if kind == "basic_auth":
        user, password = need("username", "password")
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": "Basic " + pair}
    if kind == "header":
        field, value = need("field", "value")
        return {canonical_header(field): value}
    if kind == "token":
        return {"Authorization": "Bearer " + need("token")[0]}
    if kind == "oauth2":
        token = need("access_token")[0]
        scheme = _value(cred, "token_type")
        return {
            "Authorization": f"{'Bearer' if scheme.lower() in ('', 'bearer') else scheme} {token}"
        }
    if kind == "api_key":
        value = need("value")[0]
        key = _value(cred, "key")
        return {canonical_header(key): value} if key else {"Authorization": "Bearer " + value}
    raise NodeError(
        f"credential type {kind!r} is not supported by the http node (use {_CRED_TYPES})"
    )


def _value(cred: Mapping[str, Any], key: str) -> str:
    value = cred.get(key)
    return "" if value is None else render(value).strip()


def _number(params: Mapping[str, Any], name: str, minimum: float | None = None) -> float | None:
    """A number of seconds or a count given as a JSON number or a numeric string."""
    value = params.get(name)
    if value is None or value == "":
        return None
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        least = "" if minimum is None else f" >= {minimum:g}"
        raise NodeError(f"{name} parameter must be a number{least}, got {value!r}")
    return number


def _retries(params: Mapping[str, Any]) -> int:
    retry = _number(params, "retry", minimum=0.0) or 0.0
    if not retry.is_integer():
        raise NodeError(f"retry parameter must be a whole number, got {params.get('retry')!r}")
    return int(retry)


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", ""):
        return value.strip().lower() == "true"
    raise NodeError(f"{name} parameter must be true or false, got {value!r}")


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
    pid = os.getpid()
    if _SESSION is None or _SESSION[0] != pid:
        _SESSION = (pid, requests.Session())
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
            return resp, _read_body(resp, prepared, req, settings.http_max_response_bytes, deadline)
        resp.close()  # the body of a redirect is not read: nothing unbounded enters memory
        prepared = _redirected(session, prepared, resp, location, req.secret_headers)
    raise _TransportError(req.prepared, f"stopped after {MAX_REDIRECTS} redirects")


def _send(
    session: requests.Session, prepared: requests.PreparedRequest, req: _Request, deadline: float
) -> requests.Response:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _TransportError(prepared, f"timed out after {req.timeout:g} s")
    try:
        # The adapter, not session.send: no cookie jar shared between executions, no proxies
        # or .netrc from the environment, and redirects stay under our control.
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
    session: requests.Session,
    prev: requests.PreparedRequest,
    resp: requests.Response,
    location: str,
    secret_headers: tuple[str, ...],
) -> requests.PreparedRequest:
    """The next hop, with Go's rules: 301/302/303 become a GET without a body (except HEAD),
    307/308 repeat method and body; credentials do not follow to another host."""
    url = urljoin(prev.url or "", location)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise _TransportError(prev, f"redirect to unsupported URL {url}")
    nxt = prev.copy()
    try:
        nxt.prepare_url(url, None)
    except requests.RequestException as exc:
        raise _TransportError(prev, f"bad redirect: {exc}") from exc
    if resp.status_code in (301, 302, 303):
        if nxt.method not in ("GET", "HEAD"):
            nxt.method = "GET"
        nxt.body = None
        for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
            nxt.headers.pop(name, None)
    if not _same_site(prev.url or "", url):
        for name in (*_SENSITIVE, *secret_headers):
            nxt.headers.pop(name, None)
    return nxt


def _same_site(old_url: str, new_url: str) -> bool:
    """Credentials may follow a redirect to the same host and port, or an http -> https upgrade."""
    old, new = urlsplit(old_url), urlsplit(new_url)
    upgrade = (old.scheme, new.scheme) == ("http", "https")
    return old.hostname == new.hostname and (upgrade or old.port == new.port)


def _read_body(
    resp: requests.Response,
    prepared: requests.PreparedRequest,
    req: _Request,
    cap: int,
    deadline: float,
) -> bytes:
    """The decoded body, refused beyond `cap` bytes and beyond the attempt's deadline."""
    declared = resp.headers.get("Content-Length", "")
    buf = bytearray()
    try:
        # A declared length is the encoded size: only a plain body can be refused up front.
        if declared.isdigit() and int(declared) > cap and "Content-Encoding" not in resp.headers:
            raise NodeError(f"response body exceeds {cap} bytes")
        for chunk in resp.iter_content(_CHUNK):
            buf += chunk
            if len(buf) > cap:
                raise NodeError(f"response body exceeds {cap} bytes")
            if time.monotonic() > deadline:
                raise _TransportError(prepared, f"timed out after {req.timeout:g} s")
    except requests.RequestException as exc:
        raise _TransportError(prepared, _describe(exc, req.timeout)) from exc
    finally:
        resp.close()  # releases the connection to the pool when the body was read to the end
    return bytes(buf)


def _check_destination(prepared: requests.PreparedRequest, networks: tuple[str, ...]) -> None:
    """Refuse a host that resolves into a denied network (cloud metadata, link-local, ...)."""
    if not networks:
        return
    denied = _networks(tuple(networks))
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


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(e, strict=False) for e in entries)
    except ValueError as exc:
        raise NodeError(f"http_deny_networks setting has an invalid network: {exc}") from exc


def _describe(exc: BaseException, timeout: float) -> str:
    """The innermost cause of a transport error instead of urllib3's nested reprs."""
    root, seen = exc, set()
    while id(root) not in seen:
        seen.add(id(root))
        inner = getattr(root, "reason", None)
        if not isinstance(inner, BaseException):
            first = root.args[0] if root.args else None
            inner = root.__cause__ or (first if isinstance(first, BaseException) else None)
        if inner is None:
            break
        root = inner
    if isinstance(exc, requests.Timeout) or isinstance(root, _TIMEOUTS):
        return f"timed out after {timeout:g} s"
    if isinstance(root, OSError) and isinstance(root.strerror, str) and root.strerror:
        return root.strerror
    return str(root) or type(root).__name__


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
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        pass
    msg = Message()
    msg["Content-Type"] = content_type or "text/plain"
    charset = msg.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")
