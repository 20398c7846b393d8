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

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from runeworker.errors import NodeError
from runeworker.integrations.connector import Call, Request

# normalized site URL -> cloud id (upstream's cloudIDCache), the least recently used dropped
# first beyond CLOUD_IDS_KEPT: every distinct site a credential names adds one, and a worker
# serving many tenants runs for months (about 200 bytes each; a site dropped is looked up again)
CLOUD_IDS_KEPT = 1024
_CLOUD_IDS: OrderedDict[str, str] = OrderedDict()


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


def _netloc(url: str) -> str | None:
    """`host:port` of a base URL (Go's url.Host), None when it is not one."""
    try:
        return urlsplit(normalized(url)).netloc.lower()
    except (NodeError, ValueError):
        return None


@dataclass(frozen=True)
class Gateway:
    """The Atlassian gateway: a site behind it is `<gateway>/ex/jira/<cloud id>`."""

    url: str
    netloc: str
    ex: str  # the path prefix of a site behind it

    @classmethod
    def of(cls, url: str) -> Gateway:
        parts = urlsplit(normalized(url))
        return cls(parts.geturl(), parts.netloc.lower(), parts.path.rstrip("/") + "/ex/jira/")

    def holds(self, url: str) -> bool:
        return _netloc(url) == self.netloc

    def site(self, cloud: str, base: str = "") -> str:
        """The gateway URL of `cloud`; `base` is kept when it already is one on this gateway."""
        if not base or not self.holds(base):
            return f"{self.url}/ex/jira/{cloud}"
        parts = urlsplit(base)
        if parts.path.rstrip("/").startswith(self.ex):
            return base
        return parts._replace(path=self.ex + cloud, query="").geturl().rstrip("/")


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


def site_base(call: Call, gateway_url: str) -> str:
    """The base URL the Jira REST paths hang below, for this call's arguments and credential."""
    params, creds = call.ctx.params, call.ctx.credentials
    gateway = Gateway.of(gateway_url)
    base = _first(call.args["base_url"], _param(params, "base_url", "baseUrl"))
    base = base or _credential(creds, "base_url", "site_url", "domain")
    cloud = _first(call.args["cloud_id"], _param(params, "cloud_id", "cloudId"))
    cloud = cloud or _credential(creds, "cloud_id", "cloudId")
    if not cloud and creds.get("type") == "oauth2":
        # A 3LO token only works through the gateway: find the site's cloud id.
        site = _credential(creds, "site_url", "domain")
        if not site and base and _netloc(base) not in (None, gateway.netloc):
            site = normalized(base)
        if site:
            cloud = cloud_id(call, gateway, site)
            base = base or site
    if cloud:
        base = gateway.site(cloud, normalized(base) if base else "")
    elif not base:
        raise NodeError("argument 'base_url' is required")
    result = normalized(base)
    if gateway.holds(result) and not urlsplit(result).path.startswith(gateway.ex):
        where = "/ex/jira/{cloudId}"
        raise NodeError(f"jira oauth base url must include {where}; got {quoted(result)}")
    return result


def cloud_id(call: Call, gateway: Gateway, site: str) -> str:
    """The cloud id of `site` among the resources the call's token may access (cached)."""
    site = normalized(site)
    kept = _CLOUD_IDS.get(site)
    if kept is not None:
        _CLOUD_IDS.move_to_end(site)
        return kept
    req = Request("GET", gateway.url, "/oauth/token/accessible-resources")
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
            while len(_CLOUD_IDS) > CLOUD_IDS_KEPT:
                _CLOUD_IDS.popitem(last=False)
            return found
    raise NodeError(f"no accessible Jira site found for domain: {site}")


def quoted(text: str) -> str:
    """Go's %q of a string, near enough for messages."""
    return msgspec.json.encode(text).decode()
