"""The loopback HTTP server that the bench's `http` workload calls: it answers every GET after a
fixed delay, like a remote API that takes that long (`runeworker bench --node http`).

It runs in threads of the bench process, one per connection, so that P children calling it at
once each wait the delay and no longer: the figures then show how many children it takes to
keep up with a slow API, not how fast this server is. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

# A small JSON object, as an API's acknowledgement would be; its length is fixed, so the
# messages of every step have the sizes measured once (see `Workload.build`).
ANSWER = b'{"ok":true,"source":"runeworker-bench"}'


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections open, as a real API does for the worker's pooled session.
    protocol_version = "HTTP/1.1"
    # The answer leaves in one segment: written unbuffered, the headers and the body went out
    # as two, and Nagle's algorithm held the body until the client's delayed ACK of the
    # headers (~40 ms on Linux), which every node then paid on top of the delay.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:  # the name http.server dispatches to
        time.sleep(self.server.delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)
        with self.server.lock:
            self.server.requests += 1

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per request would be the bench's own noise."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a connection the worker keeps open must not hold up `close`

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay = delay
        self.requests = 0
        self.lock = threading.Lock()


class HttpTarget:
    """A loopback HTTP server answering after `delay` seconds; use it as a context manager."""

    def __init__(self, delay: float) -> None:
        if delay < 0:
            raise ValueError(f"the HTTP delay must be 0 or more seconds, got {delay}")
        self._server = _Server(delay)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bench-http-target", daemon=True
        )

    @property
    def url(self) -> str:
        """Where the server listens, e.g. `http://127.0.0.1:41234/`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def requests(self) -> int:
        """Requests answered so far."""
        with self._server.lock:
            return self._server.requests

    def __enter__(self) -> HttpTarget:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
