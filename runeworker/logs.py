"""Logging set-up: JSON lines (the Go worker's format, for journald and log shippers) or text."""

from __future__ import annotations

import logging
import sys
import time
from itertools import islice
from typing import Any

import msgspec

from runeworker.printable import multiline, one_line

_TEXT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
_RECORD = logging.LogRecord("", 0, "", 0, "", None, None).__dict__
_STANDARD = frozenset(_RECORD) | {"message"}
# a record's own attributes come first in its __dict__ (set by LogRecord.__init__), `extra`
# fields after them (makeRecord refuses any that would replace one): only the tail is searched
_OWN = len(_RECORD)
_LogRecord = logging.LogRecord
# one encoder for every record (`msgspec.json.encode(..., enc_hook=str)` sets one up per call);
# a value JSON has no type for is written as its str()
_encode = msgspec.json.Encoder(enc_hook=str).encode
# the longest message (and traceback) a record writes, in characters: a value from the data can
# be megabytes (a log node's message, a node type quoted in an error), and a line that long is
# split or dropped by journald (LineMax, 48 KiB by default) and by most log shippers
MAX_MESSAGE = 16 * 1024


def clip(text: str) -> str:
    """`text`, cut to `MAX_MESSAGE` characters with a note of how many were left out."""
    if len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE} more characters not logged)"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, pid and any `extra` fields."""

    # UTC; the seconds part of the time, formatted once per second (strftime is a good part of a
    # record's cost, and the log node writes one record per step)
    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        secs, second = int(record.created), self._second
        if secs != second[0]:
            second = self._second = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
        doc: dict[str, Any] = {
            "time": f"{second[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": clip(record.getMessage()),
            "pid": record.process,
        }
        fields = record.__dict__.items()
        for key, value in islice(fields, _OWN, None) if type(record) is _LogRecord else fields:
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = clip(self.formatException(record.exc_info))
        return _encode(doc).decode()


class TextFormatter(logging.Formatter):
    """`_TEXT` lines whose message cannot break the line: its control characters, bidirectional
    controls and line separators are written as escapes (`runeworker/printable.py`), so that a
    value from the data (a log node's message, a server's answer in an error) can neither forge
    a line nor reorder one; a traceback keeps its newlines, nothing else, and is indented."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(clip(record.message))
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        # every line indented: an exception message holding a newline (an error quoting the
        # data) cannot start a line that looks like a record of its own
        text = multiline(clip(super().formatException(ei)))
        return "\n".join("  " + line for line in text.split("\n"))


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once for a command."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = TextFormatter()
    handler.setFormatter(formatter)
    # neither format shows the thread or process name, nor the caller's file and line: don't
    # look them up for every record (`_srcfile = None` is how the logging module skips the
    # caller lookup)
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
    # the agent's SDKs log every request (with its URL, which may carry a token) at INFO, and
    # urllib3 (under requests: the http node, the integrations) every request line at DEBUG
    for name in ("httpx", "httpx2", "urllib3"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
