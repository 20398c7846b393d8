"""Gmail (upstream: `services/rune-worker/pkg/integrations/providers/google/gmail/`): the Gmail
API v1 on `[integrations] gmail_base_url`, authorized by the node's credential (oauth2 access
token as `Authorization: Bearer`)."""

from __future__ import annotations

import base64
from typing import Any

from runeworker.integrations.connector import Call, register
from runeworker.integrations.spec import CSV, FLAG, INTEGER, Arg, Tool

MESSAGES = "/gmail/v1/users/me/messages"


def raw_message(to: str, cc: str, bcc: str, subject: str, body: str) -> str:
    """An RFC 2822 plain-text message, base64url without padding (the API's `raw` field),
    built line by line as upstream's `buildRawMessage`."""

    def header(value: str) -> str:
        # A line break in a header value would let the value add headers of its own.
        return value.replace("\r", " ").replace("\n", " ")

    lines = [f"To: {header(to)}"]
    lines += [f"Cc: {header(cc)}"] if header(cc) else []
    lines += [f"Bcc: {header(bcc)}"] if header(bcc) else []
    lines += [f"Subject: {header(subject)}", "MIME-Version: 1.0"]
    lines += ["Content-Type: text/plain; charset=UTF-8", "", body]
    return base64.urlsafe_b64encode("\r\n".join(lines).encode()).decode().rstrip("=")


def _send_email(call: Call) -> dict[str, Any]:
    a = call.args
    raw = raw_message(a["to"], a["cc"], a["bcc"], a["subject"], a["body"])
    return call.send(call.request(body={"raw": raw}))


register(
    Tool(
        "integration.google.gmail.send_email",
        "POST",
        "gmail",
        MESSAGES + "/send",
        args=(
            Arg("to", required=True),
            Arg("cc"),
            Arg("bcc"),
            Arg("subject", required=True),
            Arg("body", required=True),
        ),
        hook=_send_email,
    ),
    Tool(
        "integration.google.gmail.read_email",
        "GET",
        "gmail",
        MESSAGES + "/{id}",
        args=(Arg("id", required=True), Arg("format")),
        query=(("format", "format"),),
    ),
    Tool(
        "integration.google.gmail.search_emails",
        "GET",
        "gmail",
        MESSAGES,
        args=(
            Arg("q", required=True),
            Arg("maxResults", INTEGER),
            Arg("labelIds", CSV),
            Arg("includeSpamTrash", FLAG),
        ),
        query=tuple((name, name) for name in ("q", "maxResults", "labelIds", "includeSpamTrash")),
    ),
    Tool("integration.google.gmail.list_labels", "GET", "gmail", "/gmail/v1/users/me/labels"),
)
