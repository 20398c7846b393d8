"""Logging set-up: JSON lines (the Go worker's format, for journald and log shippers) or text."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

_TEXT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, pid and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(doc, enc_hook=str).decode()


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once for a command."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter(_TEXT)
    handler.setFormatter(formatter)
    # neither format shows the thread or process name: don't look them up for every record
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs every connection step at INFO and each failed connect as several ERROR records
    # with tracebacks; runeworker logs one line per broker event itself, so pika speaks only
    # when the operator asks for DEBUG
    logging.getLogger("pika").setLevel(logging.DEBUG if root.level <= logging.DEBUG else 100)
    # the agent's SDKs log every request (with its URL, which may carry a token) at INFO
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
