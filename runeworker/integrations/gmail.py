"""Gmail (upstream: `services/rune-worker/pkg/integrations/providers/google/gmail/`): the Gmail
API v1 on `[integrations] gmail_base_url`, authorized by the node's credential (oauth2 access
token as `Authorization: Bearer`)."""

from __future__ import annotations

import base64
from typing import Any

from runeworker.integrations.connector import Call, register
from runeworker.integrations.spec import CSV, FLAG, INTEGER, Arg, family, named

MESSAGES = "/gmail/v1/users/me/messages"
MAIL = ("to", "cc", "bcc", "subject", "body")
MAIL_ARGS = tuple(Arg(name, required=name in ("to", "subject", "body")) for name in MAIL)
ID = Arg("id", required=True)


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
    raw = raw_message(*(call.args[name] for name in MAIL))
    return call.send(call.request(body={"raw": raw}))


tool = family("integration.google.gmail", "gmail")
register(
    tool("send_email", "POST", MESSAGES + "/send", *MAIL_ARGS, hook=_send_email),
    tool("read_email", "GET", MESSAGES + "/{id}", ID, Arg("format"), query=named("format")),
    tool(
        "search_emails",
        "GET",
        MESSAGES,
        Arg("q", required=True),
        Arg("maxResults", INTEGER),
        Arg("labelIds", CSV),
        Arg("includeSpamTrash", FLAG),
        query=named("q", "maxResults", "labelIds", "includeSpamTrash"),
    ),
    tool("list_labels", "GET", "/gmail/v1/users/me/labels"),
)
