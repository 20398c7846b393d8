"""Which Jira site a call talks to (upstream: `resolveBaseURL` and `fetchCloudID` in
`services/rune-worker/pkg/integrations/providers/jira/helpers.go`).

A site is named by a URL (`https://team.atlassian.net`, or a Jira Server/Data Center URL) or by
a cloud id. The argument `base_url` / `cloud_id` wins, then the credential's `base_url`,
`site_url` or `domain` / `cloud_id`. An OAuth 2.0 (3LO) token only works through the Atlassian
gateway (`[integrations] jira_base_url`, https://api.atlassian.com), as
`<gateway>/ex/jira/<cloud id>`: without a cloud id, the site URL's id is looked up once per
process in the token's `/oauth/token/accessible-resources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

from runeworker.errors import NodeError
from runeworker.integrations.connector import Call, Request

_CLOUD_IDS: dict[str, str] = {}  # normalized site URL -> cloud id (upstream's cloudIDCache)


def normalized(raw: str) -> str:
    """`team.atlassian.net/` -> `https://team.atlassian.net` (scheme added, trailing / removed)."""
    text = raw.strip()
    if not text:
        raise NodeError("base url is required")
    if "://" not in text:
        text = "https://" + text
    try:
        host = urlsplit(text).hostname
    except ValueError as exc:
        raise NodeError(f"invalid base url: {exc}") from None
    if not host:
        raise NodeError("base url must include host")
    return text.rstrip("/")


def _host(url: str) -> str | None:
    """The host of a base URL, None when it is not one."""
    try:
        return urlsplit(normalized(url)).hostname
    except (NodeError, ValueError):
        return None


def _first(*values: str) -> str:
    return next((v.strip() for v in values if v.strip()), "")


def _param(params: Mapping[str, Any], *keys: str) -> str:
    """A string parameter under one of `keys`, also inside a nested `arguments` object."""
    nested = params.get("arguments")
    scopes = [params, nested] if isinstance(nested, dict) else [params]
    found = [scope.get(key) for key in keys for scope in scopes]
    return _first(*(value for value in found if isinstance(value, str)))


def _credential(creds: Mapping[str, Any], *keys: str) -> str:
    values = creds.get("values")
    scopes = [values, creds] if isinstance(values, dict) else [creds]
    found = [scope.get(key) for key in keys for scope in scopes]
    return _first(*(value for value in found if isinstance(value, str)))


def site_base(call: Call, gateway: str) -> str:
    """The base URL the Jira REST paths hang below, for this call's arguments and credential."""
    params, creds = call.ctx.params, call.ctx.credentials
    base = _first(call.args["base_url"], _param(params, "base_url", "baseUrl"))
    base = base or _credential(creds, "base_url", "site_url", "domain")
    cloud = _first(call.args["cloud_id"], _param(params, "cloud_id", "cloudId"))
    cloud = cloud or _credential(creds, "cloud_id", "cloudId")
    gateway_host = _host(gateway)
    if not cloud and creds.get("type") == "oauth2":
        site = _credential(creds, "site_url", "domain")
        if not site and base and _host(base) not in (None, gateway_host):
            site = normalized(base)
        if site:
            cloud = cloud_id(call, gateway, site)
            base = base or site
    if cloud:
        base = _through_gateway(normalized(base) if base else "", cloud, gateway)
    elif not base:
        raise NodeError("argument 'base_url' is required")
    result = normalized(base)
    parts = urlsplit(result)
    if parts.hostname == gateway_host and not parts.path.startswith("/ex/jira/"):
        raise NodeError(
            f"jira oauth base url must include /ex/jira/{{cloudId}}; got {quoted(result)}"
        )
    return result


def _through_gateway(base: str, cloud: str, gateway: str) -> str:
    """`<gateway>/ex/jira/<cloud>` unless `base` already is such a gateway URL."""
    gateway = normalized(gateway)
    parts = urlsplit(base)
    if not base or parts.hostname != _host(gateway):
        return f"{gateway}/ex/jira/{cloud}"
    if parts.path.rstrip("/").startswith("/ex/jira/"):
        return base
    return parts._replace(path=f"/ex/jira/{cloud}", query="").geturl().rstrip("/")


def cloud_id(call: Call, gateway: str, site: str) -> str:
    """The cloud id of `site` among the resources the call's token may access (cached)."""
    site = normalized(site)
    if site in _CLOUD_IDS:
        return _CLOUD_IDS[site]
    req = Request("GET", gateway, "/oauth/token/accessible-resources")
    out = call.send(req, any_status=True)
    if not 200 <= out["status"] < 300:
        raise NodeError(f"failed to fetch accessible resources: status={out['status']}")
    resources = out["body"]
    if not isinstance(resources, list):
        raise NodeError("unexpected accessible resources response")
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        url, found = resource.get("url"), resource.get("id")
        if not (isinstance(url, str) and url and isinstance(found, str) and found):
            continue
        try:
            same = normalized(url) == site
        except NodeError:
            continue
        if same:
            _CLOUD_IDS[site] = found
            return found
    raise NodeError(f"no accessible Jira site found for domain: {site}")


def quoted(text: str) -> str:
    """Go's %q of a string, near enough for messages."""
    return msgspec.json.encode(text).decode()
