"""Running one integration kind the way the executor does, against a `tests/apimock.py` stand-in:
every service's base URL is the stand-in under a path prefix of its own (`/gmail`, `/sheets`,
...), so a request also shows which `[integrations] <service>_base_url` it used."""

from __future__ import annotations

from typing import Any

import pytest
from apimock import MockApi

from runeworker.engine import registry
from runeworker.engine.registry import NodeContext, NodeSettings
from runeworker.engine.resolver import Resolver
from runeworker.engine.workflow import parse_definition
from runeworker.errors import NodeError

SERVICES = ("gmail", "sheets", "drive", "dropbox", "outlook", "slack", "telegram")
OAUTH = {"type": "oauth2", "access_token": "ya29.a0-token", "refresh_token": "1//refresh"}
BOT = {"type": "token", "token": "123456:ABC-bot-secret"}


def settings_for(api: MockApi, **extra: Any) -> NodeSettings:
    """Every service on the stand-in under its own path prefix; Jira keeps the default gateway
    unless `extra` names one (a site URL never reaches it)."""
    urls = {f"integrations_{s}_base_url": f"{api.url}/{s}" for s in SERVICES}
    return NodeSettings(**urls | extra)


def context(
    kind: str, params: dict[str, Any], creds: dict[str, Any], settings: NodeSettings
) -> NodeContext:
    """What the executor hands the node: credentials flat with their type, and a resolver that
    masks their values."""
    wf = parse_definition(b'{"nodes":[{"id":"n1","type":"%s"}],"edges":[]}' % kind.encode())
    values = {k: v for k, v in creds.items() if k != "type"}
    return NodeContext(
        workflow_id="wf-1",
        execution_id="ex-1",
        node=wf.nodes[0],
        params=params,
        context={},
        workflow=wf,
        resolver=Resolver({}, credentials=values or None),
        credentials=dict(creds),
        settings=settings,
    )


def run_kind(
    kind: str, params: dict[str, Any], creds: dict[str, Any], settings: NodeSettings
) -> dict[str, Any]:
    """The node's output."""
    spec = registry.get(kind)
    assert spec is not None, f"{kind} is not registered"
    return spec.run(context(kind, params, creds, settings))


def failure(
    kind: str, params: dict[str, Any], creds: dict[str, Any], settings: NodeSettings
) -> NodeError:
    """The NodeError the node fails with."""
    with pytest.raises(NodeError) as info:
        run_kind(kind, params, creds, settings)
    return info.value
