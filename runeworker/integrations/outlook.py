"""Microsoft Outlook (upstream:
`services/rune-worker/pkg/integrations/providers/microsoft/outlook/`): Microsoft Graph v1.0 on
`[integrations] outlook_base_url`, the signed-in user's mailbox (`/me`), authorized by the node's
credential (oauth2 access token as `Authorization: Bearer`)."""

from __future__ import annotations

from typing import Any

from runeworker.integrations.connector import Call, register
from runeworker.integrations.spec import CSV, FLAG, INTEGER, Arg, family


def recipients(addresses: list[str]) -> list[dict[str, Any]]:
    """Graph's recipient objects of plain addresses."""
    return [{"emailAddress": {"address": address}} for address in addresses]


def _send_email(call: Call) -> dict[str, Any]:
    a = call.args
    message: dict[str, Any] = {
        "subject": a["subject"],
        "body": {"contentType": "Text", "content": a["body"]},
        "toRecipients": recipients(a["to"]),
    }
    for key, name in (("ccRecipients", "cc"), ("bccRecipients", "bcc")):
        if a[name]:
            message[key] = recipients(a[name])
    body = {"message": message, "saveToSentItems": a["save_to_sent_items"]}
    return call.send(call.request(body=body))


def _search_emails(call: Call) -> dict[str, Any]:
    # Graph's $search wants the words in double quotes; a folder id narrows it to that folder.
    a, query = call.args, dict(call.request().query)
    if a["q"]:
        query["$search"] = f'"{a["q"]}"'
    path = "/v1.0/me/mailFolders/{labelIds}/messages" if a["labelIds"] else "/v1.0/me/messages"
    return call.send(call.request(path=path, query=query))


tool = family("integration.microsoft.outlook", "outlook")
MAIL_ARGS: tuple[Arg, ...] = (Arg("to", CSV, required=True), Arg("cc", CSV), Arg("bcc", CSV))
MAIL_ARGS += (Arg("subject", required=True), Arg("body", required=True))
SEARCH_ARGS = (Arg("q"), Arg("maxResults", INTEGER), Arg("labelIds"))

register(
    tool(
        "send_email",
        "POST",
        "/v1.0/me/sendMail",
        *MAIL_ARGS,
        Arg("save_to_sent_items", FLAG),
        hook=_send_email,
    ),
    tool(
        "read_email",
        "GET",
        "/v1.0/me/messages/{id}",
        Arg("id", required=True),
        Arg("select"),
        query=(("$select", "select"),),
    ),
    tool(
        "search_emails",
        "GET",
        "/v1.0/me/messages",
        *SEARCH_ARGS,
        query=(("$top", "maxResults"),),
        hook=_search_emails,
    ),
    tool("list_folders", "GET", "/v1.0/me/mailFolders"),
)
