"""The one server every fuzzed workflow may reach: 127.0.0.1, any method, any path.

It answers JSON shaped for whoever asks, so that the examples and templates get past their
http, agent and integration nodes into the nodes behind them:

- `...:generateContent` (Gemini), `.../chat/completions` (OpenAI), `.../messages` (Anthropic):
  one final text answer in that provider's response shape;
- `.../values/...` (Google Sheets `read_range`): three rows `[name, email, days]`;
- anything else: the request echoed (method, path, headers), so that a credential the request
  carried comes back in a node's output, which must be masked before it is published.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROWS = [["Ada", "ada@example.com", "19"], ["Bo", "bo@example.com", "3"], ["Cy", "cy@x", "20"]]


def answer(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """The JSON body answering `method path`."""
    route = path.split("?", 1)[0]
    if route.endswith(":generateContent"):
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "fuzz answer"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 1,
                "candidatesTokenCount": 1,
                "totalTokenCount": 2,
            },
            "modelVersion": "loopback",
        }
    if route.endswith("/chat/completions"):
        return {
            "id": "chatcmpl-fuzz",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "loopback",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "fuzz answer"},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    if route.endswith("/messages") and method == "POST":
        return {
            "id": "msg_fuzz",
            "type": "message",
            "role": "assistant",
            "model": "loopback",
            "content": [{"type": "text", "text": "fuzz answer"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    if "/values/" in route:
        return {"range": "Sheet1!A1:C3", "majorDimension": "ROWS", "values": ROWS}
    # the fields the templates read of their public APIs' answers, and the request echoed
    return {
        "ok": True,
        "method": method,
        "path": path,
        "headers": headers,
        "items": [{"title": "one", "html_url": "http://127.0.0.1/1"}],
        "total_count": 1,
        "uptimePercent": 99.5,
        "current_condition": [{"FeelsLikeC": "12", "temp_C": "14", "weatherDesc": []}],
    }


class Loopback:
    """The server, in a thread of this process, until `close()`."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = answer(self.command, self.path, dict(self.headers.items()))
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _reply

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
