"""A loopback stand-in for a provider's HTTP API (Google, Jira, Slack, ...): it records every
request as it arrived (path still percent-encoded, query parsed, header names in lower case, body
bytes) and answers from a script: replies queued per `METHOD /path`, the last one repeating,
else `{"ok": true}`. Used by the integration tests of every kind, of `runeworker run` and of a
worker on the wire."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    raw_query: str = ""  # the query as it arrived, still percent-encoded

    @property
    def json(self) -> Any:
        """The body decoded as JSON; None when there is no body."""
        return json.loads(self.raw) if self.raw else None


@dataclass
class Reply:
    """What the server answers: a JSON value (or bytes as they are), status and headers;
    `content_type` replaces the one the body's kind gives (JSON, or plain text for bytes)."""

    body: Any = field(default_factory=lambda: {"ok": True})
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "text/plain; charset=utf-8"
        return json.dumps(
            self.body
        ).encode(), self.content_type or "application/json; charset=utf-8"


class MockApi:
    """The server; `url` is its base, `requests` what it received, in order."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: dict[tuple[str, str], list[Reply]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()

    def reply(self, method: str, path: str, *replies: Reply) -> None:
        """Answer `method path` with `replies` in turn (the last one for every later request)."""
        with self._lock:
            self._script[(method, path)] = list(replies)

    def only(self) -> Recorded:
        """The one request received (fails when there were more or none)."""
        assert len(self.requests) == 1, [f"{r.method} {r.path}" for r in self.requests]
        return self.requests[0]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _answer(self, seen: Recorded) -> Reply:
        with self._lock:
            self.requests.append(seen)
            queued = self._script.get((seen.method, seen.path))
            if not queued:
                return Reply()
            return queued.pop(0) if len(queued) > 1 else queued[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                size = int(self.headers.get("Content-Length") or 0)
                seen = Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {name.lower(): value for name, value in self.headers.items()},
                    self.rfile.read(size),
                    parts.query,
                )
                answer = api._answer(seen)
                data, content_type = answer.encoded()
                self.send_response(answer.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def serving() -> Iterator[MockApi]:
    """A MockApi for a pytest fixture (`yield from serving()`), closed afterwards."""
    api = MockApi()
    try:
        yield api
    finally:
        api.close()
