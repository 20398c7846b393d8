"""One TLS context per process for the agent's HTTP clients. Each SDK client would otherwise
load the CA bundle itself, for every run: about 170 ms of a 220 ms run against a local server
(measured with cProfile on this project's 2-core test machine, `load_verify_locations`)."""

from __future__ import annotations

import os
import ssl

import httpx2

_CONTEXT: tuple[int, ssl.SSLContext] | None = None


def context() -> ssl.SSLContext:
    """The process's client context, as httpx2 makes its default (SSL_CERT_FILE and
    SSL_CERT_DIR honoured); a forked child makes its own."""
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT[0] != os.getpid():
        _CONTEXT = (os.getpid(), httpx2.create_ssl_context())
    return _CONTEXT[1]
