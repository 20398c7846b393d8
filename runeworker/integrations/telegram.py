"""Telegram (upstream: `services/rune-worker/pkg/integrations/providers/telegram/`): the Bot API on
`[integrations] telegram_base_url`. The bot token of the node's credential (`token`,
`access_token` or `value`) is part of the path, `/bot<token>/<method>`: it is shown as `***` in
every error, and no Authorization header is sent (the path is the Bot API's only authorization)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runeworker.errors import NodeError
from runeworker.integrations.connector import Call, register
from runeworker.integrations.spec import (
    CHAT_ID,
    CSV,
    FLAG,
    INTEGER,
    Arg,
    Hook,
    Tool,
    family,
    float64,
    go_int64,
    named,
)

BOT = "/bot{token}/"
CHAT = Arg("chat_id", CHAT_ID, required=True)
# The most a long poll's `timeout` lengthens its request: a larger wait is no use (the node is
# stuck after `[worker] timeout` anyway) and a wait of 10**12 s overflows the platform's time_t.
LONG_POLL_MAX = 3600
# Upstream sends `caption` and `parse_mode` when they are not "": blanks only go out too.
OPTIONS = (
    Arg("caption", blank=True),
    Arg("parse_mode", blank=True),
    Arg("disable_notification", FLAG),
)
# Where an update carries its chat, in the order upstream looks.
CHAT_HOLDERS = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "my_chat_member",
)
NO_CHAT = "no chat found in updates. Send a message to your bot in Telegram, then try again"


def bot_token(creds: Mapping[str, Any]) -> str:
    """The bot token of a credential (its values, or the flat map)."""
    if not creds:
        raise NodeError("telegram credentials are required")
    values = creds.get("values")
    scope = values if isinstance(values, dict) else creds
    for key in ("token", "access_token", "value"):
        token = scope.get(key)
        if isinstance(token, str) and token:
            return token
    raise NodeError("telegram bot token is required")


def _float(value: Any) -> float:
    """A JSON number as Go's `.(float64)` reads it: anything else is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float64(value)


def _bot(then: Hook | None = None) -> Hook:
    """Put the bot token in the path (a secret argument) instead of a header."""

    def hook(call: Call) -> dict[str, Any]:
        call.args["token"] = bot_token(call.ctx.credentials)
        call.secrets.add("token")
        call.credentials = {}
        return then(call) if then else call.send()

    return hook


def _get_updates(call: Call) -> dict[str, Any]:
    # A long poll holds the answer up to `timeout` seconds: the request may take that long more.
    wait = min(call.args["timeout"], LONG_POLL_MAX)
    timeout = call.ctx.settings.http_default_timeout + wait if wait > 0 else None
    return call.send(call.request(timeout=timeout))


def _get_chat_id(call: Call) -> dict[str, Any]:
    """The chat of the latest pending update: {chat_id, chat_type, chat_name}."""
    body = call.send(call.request(body={"limit": 1}))["body"]
    if not isinstance(body, dict):
        raise NodeError("unexpected response from Telegram")
    # Read with upstream's type assertions: `ok` is the boolean true or a failure, a
    # `description` is text or none.
    if body.get("ok") is not True:
        code, text = go_int64(body.get("error_code")), body.get("description")
        raise NodeError(
            f"telegram API error ({code}): {text}"
            if isinstance(text, str) and text
            else f"telegram API error (code {code})"
        )
    # Upstream reads `result` as a list (`.([]any)`): anything else holds no update. A list
    # whose items are no objects is not empty: it holds no chat.
    result = body.get("result")
    if not isinstance(result, list) or not result:
        name = _bot_username(call)
        where = (
            f"Open Telegram, search for @{name}, and send any message. Then"
            if name
            else ("Send a message to your bot in Telegram first, then")
        )
        raise NodeError(f"no messages yet. {where} run this node again")
    updates = [u for u in result if isinstance(u, dict)]
    if not updates:
        raise NodeError(NO_CHAT)
    latest = max(updates, key=lambda u: _float(u.get("update_id")))  # the first of equals
    holders = [latest.get(key) for key in CHAT_HOLDERS]
    chats = [h["chat"] for h in holders if isinstance(h, dict) and isinstance(h.get("chat"), dict)]
    if not chats:
        raise NodeError(NO_CHAT)
    chat = chats[0]
    name = chat.get("title")
    if not isinstance(name, str):
        first, last = chat.get("first_name"), chat.get("last_name")
        # As upstream: the last name joins any first name given as text, even an empty one.
        name = (
            first + (f" {last}" if isinstance(last, str) else "") if isinstance(first, str) else ""
        )
    kind = chat.get("type")
    return {
        "chat_id": go_int64(chat.get("id")),  # upstream's int64(chatID)
        "chat_type": kind if isinstance(kind, str) else "",
        "chat_name": name,
    }


def _bot_username(call: Call) -> str:
    """The bot's @name for the hint, "" when it cannot be had."""
    try:
        body = call.send(call.request(path=BOT + "getMe", body=None))["body"]
    except NodeError:
        return ""
    ok = isinstance(body, dict) and body.get("ok") is True
    result = body.get("result") if ok else None
    name = result.get("username") if isinstance(result, dict) else None
    return name if isinstance(name, str) else ""


tool = family("integration.telegram.bot", "telegram")


def _send(method: str, content: str) -> Tool:
    """sendMessage / sendPhoto / sendDocument: a chat, the content, formatting options."""
    args: tuple[Arg, ...] = (CHAT, Arg(content, required=True), *OPTIONS)
    if content == "text":  # a message has no caption
        args = tuple(a for a in args if a.name != "caption")
    name = "send_" + method.removeprefix("send").lower()
    return tool(name, "POST", BOT + method, *args, body=named(*(a.name for a in args)), hook=_bot())


UPDATES: tuple[Arg, ...] = (
    Arg("offset", INTEGER, signed=True),
    Arg("limit", INTEGER),
    Arg("timeout", INTEGER),
)
UPDATES += (Arg("allowed_updates", CSV),)

register(
    _send("sendMessage", "text"),
    _send("sendPhoto", "photo"),
    _send("sendDocument", "document"),
    tool(
        "get_updates",
        "POST",
        BOT + "getUpdates",
        *UPDATES,
        body=named(*(a.name for a in UPDATES)),
        hook=_bot(_get_updates),
    ),
    tool("get_chat_id", "POST", BOT + "getUpdates", hook=_bot(_get_chat_id)),
)
