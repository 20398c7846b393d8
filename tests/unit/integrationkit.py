"""Running one integration kind as a one-node workflow through the executor (so its statuses are
what a worker would publish, masking included), against a `tests/apimock.py` stand-in: every
service's base URL is the stand-in under a path prefix of its own (`/gmail`, `/sheets`, ...), so
a request also shows which `[integrations] <service>_base_url` it used."""

from __future__ import annotations

from typing import Any

from apimock import MockApi

from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import NodeStatusMessage, encode
from runeworker.engine.registry import NodeSettings
from runeworker.engine.state import MemoryStore
from runeworker.errors import NodeError

SERVICES = ("gmail", "sheets", "drive", "dropbox", "outlook", "slack", "telegram")
OAUTH = {"type": "oauth2", "access_token": "ya29.a0-token", "refresh_token": "1//refresh"}
BOT = {"type": "token", "token": "123456:ABC-bot-secret"}


def settings_for(api: MockApi, urls: dict[str, str] | None = None, **extra: Any) -> NodeSettings:
    """Every service on the stand-in under its own path prefix, then `urls`; Jira keeps the
    public gateway unless `urls` names one (a site URL never reaches it)."""
    base = {service: f"{api.url}/{service}" for service in SERVICES} | (urls or {})
    return NodeSettings(integrations_base_urls=base, **extra)


def definition(kind: str, params: dict[str, Any], creds: dict[str, Any]) -> bytes:
    """A workflow of one node of `kind`; `creds` flat with their type, as the executor hands
    them to a node (the definition carries them as the Rune API does: type and values)."""
    node: dict[str, Any] = {"id": "n1", "name": "Node", "type": kind, "parameters": params}
    if creds:
        values = {k: v for k, v in creds.items() if k != "type"}
        node["credentials"] = {"id": "c1", "name": "c", "type": creds["type"], "values": values}
    return encode({"nodes": [node], "edges": []})


def last_status(
    kind: str, params: dict[str, Any], creds: dict[str, Any], settings: NodeSettings
) -> NodeStatusMessage:
    statuses: list[NodeStatusMessage] = []
    runner = LocalRunner(Executor(MemoryStore(), settings=settings), statuses.append)
    runner.run(start_message(definition(kind, params, creds)))
    assert [s.status for s in statuses][:1] == ["running"], statuses
    return statuses[-1]


def run_kind(
    kind: str, params: dict[str, Any], creds: dict[str, Any], settings: NodeSettings
) -> dict[str, Any]:
    """The node's output (its success status)."""
    status = last_status(kind, params, creds, settings)
    assert status.status == "success", status.error
    assert status.output is not None
    return status.output


def failure(
    kind: str, params: dict[str, Any], creds: dict[str, Any], settings: NodeSettings
) -> NodeError:
    """The error of the node's failed status."""
    status = last_status(kind, params, creds, settings)
    assert status.status == "failed" and status.error is not None, status
    details = status.error.details if isinstance(status.error.details, dict) else None
    return NodeError(status.error.message, status.error.code, details)
