"""The operator's deny list (`nodes.http_deny_networks`, which the http node checks on every
hop) for the URLs the agent connects to itself: MCP servers named by the workflow."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from runeworker.errors import NodeError


def refuse_denied(url: str, networks: tuple[str, ...]) -> None:
    """NodeError when `url` is not http(s), or its host resolves into a denied network."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise NodeError("the URL must be an http or https URL")
    if not networks:
        return
    try:
        denied = [ipaddress.ip_network(n, strict=False) for n in networks]
        port = parts.port
    except ValueError as exc:
        raise NodeError(f"cannot check the URL against http_deny_networks: {exc}") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise NodeError(f"cannot resolve {parts.hostname}: {reason}") from exc
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]))
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        for net in denied:
            if ip in net or (mapped is not None and mapped in net):
                raise NodeError(
                    f"destination {parts.hostname} ({ip}) is in the denied network {net}"
                )
