"""Loopback mock servers speaking the LLM providers' real REST APIs (what their SDKs send and
parse), and a plain JSON API for the agent's HTTP tools. A test scripts the model's turns in
a neutral form; each mock renders them in its API's shape and records every request.

    Gemini     POST /{v1beta|v1beta1}/.../models/{model}:generateContent  functionCall parts
    OpenAI     POST /v1/chat/completions                                 tool_calls
    Anthropic  POST /v1/messages                                         tool_use blocks
"""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON, or the raw text


@dataclass(frozen=True)
class Turn:
    """One scripted model response: text and/or tool calls `(name, args)`, token usage."""

    text: str = ""
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    usage: tuple[int, int] = (10, 5)  # prompt, completion


@dataclass(frozen=True)
class Text:
    """A body that is not JSON (an RSS feed)."""

    content_type: str
    text: str


Answer = tuple[int, Any]  # status, JSON body (or Text)


@dataclass
class Mock:
    """A loopback HTTP server; `respond` answers each request (it runs on a server thread)."""

    respond: Callable[[Request], Answer]
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mock: Mock


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = Request(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        mock = self.server.mock
        with mock.lock:
            mock.requests.append(request)
            status, answer = mock.respond(request)
        if isinstance(answer, Text):
            data, content_type = answer.text.encode(), answer.content_type
        else:
            data, content_type = json.dumps(answer).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(respond: Callable[[Request], Answer]) -> Iterator[Mock]:
    """Run a mock on 127.0.0.1 (a free port) for the block."""
    mock = Mock(respond)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.mock = mock
    mock.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield mock
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- the providers' response shapes ---------------------------------------------------------------


def gemini_response(turn: Turn, index: int) -> dict[str, Any]:
    """A generateContent response (functionCall parts carry no id, like the real API's)."""
    parts: list[dict[str, Any]] = [{"text": turn.text}] if turn.text else []
    parts += [{"functionCall": {"name": n, "args": a}} for n, a in turn.calls]
    prompt, completion = turn.usage
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": prompt + completion,
        },
        "modelVersion": "mock",
        "responseId": f"resp-{index}",
    }


def openai_response(turn: Turn, index: int) -> dict[str, Any]:
    """A chat.completion with tool_calls (ids `call_<turn>_<n>`)."""
    calls = [
        {
            "id": f"call_{index}_{n}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for n, (name, args) in enumerate(turn.calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
    if calls:
        message["tool_calls"] = calls
    prompt, completion = turn.usage
    return {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "mock",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def anthropic_response(turn: Turn, index: int) -> dict[str, Any]:
    """A message with text and tool_use blocks (ids `toolu_<turn>_<n>`)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    content += [
        {"type": "tool_use", "id": f"toolu_{index}_{n}", "name": name, "input": args}
        for n, (name, args) in enumerate(turn.calls)
    ]
    prompt, completion = turn.usage
    return {
        "id": f"msg_{index}",
        "type": "message",
        "role": "assistant",
        "model": "mock",
        "content": content,
        "stop_reason": "tool_use" if turn.calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


RENDER: dict[str, Callable[[Turn, int], dict[str, Any]]] = {
    "gemini": gemini_response,
    "openai": openai_response,
    "anthropic": anthropic_response,
}
# The path each provider's SDK posts to (the mock answers nothing else).
ENDPOINTS: dict[str, Callable[[str], bool]] = {
    "gemini": lambda p: p.endswith(":generateContent"),
    "openai": lambda p: p == "/v1/chat/completions",
    "anthropic": lambda p: p == "/v1/messages",
}


@contextmanager
def llm(provider: str, *turns: Turn) -> Iterator[Mock]:
    """A mock of `provider`'s API answering `turns` in order (then 500s)."""
    script = list(turns)

    def respond(request: Request) -> Answer:
        if request.method != "POST" or not ENDPOINTS[provider](request.path.split("?")[0]):
            return 404, {"error": {"message": f"no route {request.method} {request.path}"}}
        if not script:
            return 500, {"error": {"message": "the script is over"}}
        index = len(turns) - len(script)
        return 200, RENDER[provider](script.pop(0), index)

    with serve(respond) as mock:
        yield mock


def base_url(provider: str, mock: Mock) -> str:
    """The base URL an operator would configure for the mock (OpenAI's includes /v1)."""
    return mock.url + "/v1" if provider == "openai" else mock.url


def llm_requests(mock: Mock) -> list[Request]:
    """The requests the model saw (not the SDK's probes, if any)."""
    return [r for r in mock.requests if r.method == "POST"]


# -- a mail relay for the templates' smtp node ----------------------------------------------------


@dataclass
class Mailbox:
    """What the loopback relay received: (from, to, message) per mail."""

    port: int = 0
    mails: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@contextmanager
def mail_relay() -> Iterator[Mailbox]:
    """An SMTP relay on 127.0.0.1 (aiosmtpd, no TLS, no login) for the block."""
    from aiosmtpd.controller import Controller

    with socket.socket() as sock:  # a free port (aiosmtpd wants one named)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    box = Mailbox(port)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
