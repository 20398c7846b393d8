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

    # UTC; the seconds part of the time, formatted once per second (strftime is a good part of a
    # record's cost, and the log node writes one record per step)
    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        secs = int(record.created)
        if secs != self._second[0]:
            self._second = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
        doc: dict[str, Any] = {
            "time": f"{self._second[1]}.{int(record.msecs):03d}Z",
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
    else:
        formatter = logging.Formatter(_TEXT)
    handler.setFormatter(formatter)
    # neither format shows the thread or process name, nor the caller's file and line: don't
    # look them up for every record (the "Optimization" table of the logging HOWTO)
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None
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
