"""Slack (upstream: `services/rune-worker/pkg/integrations/providers/slack/`): the Web API on
`[integrations] slack_base_url`, authorized by the node's credential (a bot or user token as
`Authorization: Bearer`). As upstream, an answer `{"ok": false, ...}` with status 200 is a
success whose body says what Slack refused."""

from __future__ import annotations

from typing import Any

from runeworker.integrations.connector import Call, register
from runeworker.integrations.spec import INTEGER, Arg, Tool, family, named

CHANNEL = Arg("channel", required=True)
TS = Arg("ts", required=True)
TEXT = Arg("text", required=True)
LIMIT = Arg("limit", INTEGER)


def _find_message(call: Call) -> dict[str, Any]:
    """The first of the channel's latest `limit` messages whose text holds `keyword`:
    {found, message}, or {found: false}."""
    body = call.send()["body"]
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages if isinstance(messages, list) else []:
        text = message.get("text") if isinstance(message, dict) else None
        if isinstance(text, str) and call.args["keyword"] in text:
            return {"found": True, "message": message}
    return {"found": False}


tool = family("integration.slack", "slack")


def _chat(name: str, endpoint: str, *args: Arg) -> Tool:
    """chat.*: a POST whose JSON body is its arguments."""
    return tool(name, "POST", f"/api/{endpoint}", *args, body=named(*(a.name for a in args)))


HISTORY = "/api/conversations.history"
HISTORY_QUERY = named("channel", "limit")
FIND = (CHANNEL, Arg("keyword", required=True), Arg("limit", INTEGER, default=100))
LOOKUP = "/api/users.lookupByEmail"

register(
    _chat("chat.post_message", "chat.postMessage", CHANNEL, TEXT),
    _chat("chat.update", "chat.update", CHANNEL, TS, TEXT),
    _chat("chat.delete", "chat.delete", CHANNEL, TS),
    tool("conversations.history", "GET", HISTORY, CHANNEL, LIMIT, query=HISTORY_QUERY),
    tool(
        "conversations.find_message", "GET", HISTORY, *FIND, query=HISTORY_QUERY, hook=_find_message
    ),
    tool("users.lookup_by_email", "GET", LOOKUP, Arg("email", required=True), query=named("email")),
)
