"""The JSON log line, the log node's `logged_at` and the statuses' `executed_at` (rfc3339)
each format their seconds once per second, so the cache must follow the clock (forwards and
backwards) and never show a stale second. No library logs a request URL, at any level."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from runeworker import logs
from runeworker.logs import JsonFormatter
from runeworker.nodes.log import _logged_at


def _line(formatter: JsonFormatter, created: float) -> dict[str, object]:
    record = logging.LogRecord("runeworker.node", logging.INFO, "", 0, "%s", ("hi",), None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    record.node_id = "n1"
    return json.loads(formatter.format(record))


def test_json_time_follows_every_second() -> None:
    formatter = JsonFormatter()
    times = [_line(formatter, t)["time"] for t in (1700000000.5, 1700000000.75, 1700000001.25,
                                                   1699999999.0, 1700000000.5)]  # fmt: skip
    assert times == [
        "2023-11-14T22:13:20.500Z",
        "2023-11-14T22:13:20.750Z",
        "2023-11-14T22:13:21.250Z",
        "2023-11-14T22:13:19.000Z",
        "2023-11-14T22:13:20.500Z",
    ]


def test_json_line_keeps_its_fields() -> None:
    line = _line(JsonFormatter(), 1700000000.5)
    assert line == {
        "time": "2023-11-14T22:13:20.500Z",
        "level": "info",
        "logger": "runeworker.node",
        "msg": "hi",
        "pid": line["pid"],
        "node_id": "n1",
    }
    assert isinstance(line["pid"], int)


def test_logged_at_follows_every_second() -> None:
    stamps = [_logged_at(s) for s in (1700000000, 1700000000, 1700000061, 1700000000)]
    assert stamps == [
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:14:21Z",
        "2023-11-14T22:13:20Z",
    ]


def test_rfc3339_follows_every_second() -> None:
    """`executed_at` of statuses: its seconds are formatted once per second."""
    from runeworker.engine.messages import rfc3339

    ns = [1_700_000_000_500_000_000, 1_700_000_000_000_000_001, 1_700_000_061_250_000_000,
          1_699_999_999_999_999_999, 1_700_000_000_500_000_000]  # fmt: skip
    assert [rfc3339(n) for n in ns] == [
        "2023-11-14T22:13:20.500000000Z",
        "2023-11-14T22:13:20.000000001Z",
        "2023-11-14T22:14:21.250000000Z",
        "2023-11-14T22:13:19.999999999Z",
        "2023-11-14T22:13:20.500000000Z",
    ]


def test_json_line_has_every_extra_field_in_order() -> None:
    """Extra fields follow the record's own attributes: all of them, in the order given, from
    `Logger.log(..., extra=...)` and from a record a factory subclass made."""
    formatter = JsonFormatter()
    logger = logging.getLogger("runeworker.test")
    extra = {"workflow_id": "w", "execution_id": "e", "node_id": "n", "z_last": [1]}
    record = logger.makeRecord("runeworker.test", logging.INFO, "", 0, "%s", ("m",), None,
                               extra=extra)  # fmt: skip
    line = json.loads(formatter.format(record))
    assert list(line)[5:] == ["workflow_id", "execution_id", "node_id", "z_last"]
    assert line["z_last"] == [1] and line["msg"] == "m"

    class Tagged(logging.LogRecord):
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.tag = "first"  # set before the record's own attributes
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    tagged = Tagged("runeworker.test", logging.INFO, "", 0, "%s", ("m",), None)
    assert json.loads(formatter.format(tagged))["tag"] == "first"


def test_no_http_library_logs_a_request_url_even_at_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """urllib3 (under requests: the http node and the integrations) logs every request line at
    DEBUG, query string included, where a `{{ $credential.token }}` may stand."""
    secret = "tok-Secret-0815"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        logs.setup("DEBUG", "text")
        url = f"http://127.0.0.1:{server.server_address[1]}/x?k={secret}"
        assert requests.get(url, timeout=10).status_code == 204
        logging.getLogger("runeworker.test").debug("debug lines are written")
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert "debug lines are written" in err and secret not in err


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def _text(message: str, exc: bool = False) -> str:
    record = logging.LogRecord("runeworker.node", logging.INFO, "", 0, "%s", (message,), None)
    if exc:
        try:
            raise ValueError(message)
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    return logs.TextFormatter().format(record)


@pytest.mark.parametrize(
    "forged",
    [
        "ok\n2026-01-01 00:00:00,000 ERROR runeworker.child[1]: forged",
        "ok\r2026-01-01 forged",
        "\x1b[2J\x1b]0;title\x07",
        "\x9b31m C1 CSI",
        "bidi \u202e txt.exe \u2066 \u2069 \u200f",
        "separators \u2028 and \u2029",
    ],
)
def test_text_line_escapes_what_could_forge_or_reorder_a_line(forged: str) -> None:
    line = _text(forged)
    assert "\n" not in line and "\r" not in line
    assert not any(ch in line for ch in "\x1b\x07\x9b\u202e\u2066\u2069\u200f\u2028\u2029")
    # each escaped character is written as an escape, not dropped
    assert line.endswith(": " + forged.translate(logs_escapes()))


def logs_escapes() -> dict[int, str]:
    from runeworker.printable import one_line

    return {c: one_line(chr(c)) for c in range(0x3000)}


def test_text_traceback_keeps_its_newlines_but_escapes_the_rest() -> None:
    line = _text("bad \x1b[31m value", exc=True)
    assert "Traceback (most recent call last):" in line and "\n" in line
    assert "\x1b" not in line and "\\x1b[31m" in line


def test_a_traceback_cannot_start_a_line_that_looks_like_a_record() -> None:
    forged = "bad\n2026-01-01 00:00:00,000 ERROR runeworker.child[1]: forged"
    first, *rest = _text(forged, exc=True).split("\n")
    assert first.endswith(": bad\\n2026-01-01 00:00:00,000 ERROR runeworker.child[1]: forged")
    assert rest[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in rest), rest
    assert "  2026-01-01 00:00:00,000 ERROR runeworker.child[1]: forged" in rest


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_huge_message_is_clipped_and_says_by_how_much(fmt: str) -> None:
    big = "x" * (logs.MAX_MESSAGE + 5000)
    message = _text(big).split(": ", 1)[1] if fmt == "text" else str(_line_of(big)["msg"])
    assert message == "x" * logs.MAX_MESSAGE + "... (5000 more characters not logged)"
    # at the limit nothing is cut
    exact = "y" * logs.MAX_MESSAGE
    assert (_text(exact).split(": ", 1)[1] if fmt == "text" else _line_of(exact)["msg"]) == exact


def _line_of(message: str) -> dict[str, object]:
    record = logging.LogRecord("runeworker.node", logging.INFO, "", 0, "%s", (message,), None)
    return json.loads(JsonFormatter().format(record))
