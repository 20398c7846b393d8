"""Connecting to the Redis of the `[redis]` section, and naming it without its secrets.

`connect` builds the client with redis-py's own clients: one server (`redis.url`), a master found
through Redis Sentinel (`redis.sentinels`, `redis.service_name`; the pool asks the sentinels again
after a failover), or a Redis Cluster (`redis.cluster`; every script's keys share one hash slot,
see `runeworker.adapters.redis_flow.RedisFlow`). Messages name the server with its passwords
masked (`redis_where` from the configuration, `describe` from a client; `scrub` takes a password
out of redis-py's own text), say an error as Redis said it (`redis_reply`) and what an operator
does about it (`advice`), and warn at start-up of a `maxmemory-policy` that may evict
runeworker's keys (`eviction_warning`).
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

import redis
import redis.sentinel
from redis.cluster import RedisCluster
from redis.exceptions import (
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
)

from runeworker.config import RedisConfig, mask_url
from runeworker.errors import StateError

Client: TypeAlias = "redis.Redis | RedisCluster"  # one server or Sentinel's master, or a Cluster


def connect(r: RedisConfig, **client_kwargs: Any) -> tuple[Client, str]:
    """The client of the Redis `r` describes (one server, a Sentinel-managed master or a
    Cluster), and how messages name it (`redis_where`; one server: `describe`).
    `client_kwargs` override the section's (e.g. a probe's shorter socket timeout). A
    Cluster's client reads the slot layout when it is made: StateError when no node of it
    answers."""
    kwargs: dict[str, Any] = {"socket_timeout": r.socket_timeout, **client_kwargs}
    if r.sentinels:
        return _sentinel_master(r, kwargs), redis_where(r)
    if not r.cluster:
        client = connect_url(r.url, **kwargs)
        return client, describe(client)
    kwargs.setdefault("socket_connect_timeout", 5.0)
    try:
        cluster = RedisCluster.from_url(r.url, **kwargs)
    except (RedisError, RedisClusterException, ValueError) as exc:
        detail = scrub(str(exc), r.url)
        where = redis_where(r)
        raise StateError(f"cannot reach the Redis Cluster at {where}: {detail}") from exc
    return cluster, redis_where(r)


def connect_url(url: str, **client_kwargs: Any) -> redis.Redis:
    """The client of the server of `url` (redis://, rediss:// or unix://); `client_kwargs` go
    to redis-py. Without explicit timeouts, a hung server would block a worker forever."""
    client_kwargs.setdefault("socket_connect_timeout", 5.0)
    client_kwargs.setdefault("socket_timeout", 5.0)
    try:
        return redis.Redis.from_url(url, **client_kwargs)
    except ValueError as exc:
        raise StateError(f"The Redis URL {mask_url(url)} is invalid: {exc}") from exc


def _sentinel_master(r: RedisConfig, kwargs: dict[str, Any]) -> redis.Redis:
    """The client of the master that the sentinels of `r` name; its pool asks them again
    when the master stops answering (a failover). `redis.url` gives the master's username,
    password, database and TLS; a sentinel written as a URL gives the sentinels' own."""
    parts = urlsplit(r.url)
    master: dict[str, Any] = {
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "db": int(parts.path.strip("/") or 0),
    }
    if r.url.startswith("rediss://"):
        master["connection_class"] = redis.sentinel.SentinelManagedSSLConnection
    nodes: list[tuple[str, int]] = []
    auth: dict[str, Any] = {}
    for entry in r.sentinels:
        if "://" in entry:
            parts = urlsplit(entry)
            nodes.append((parts.hostname or "", parts.port or 26379))
            if parts.password and not auth:
                auth = {"username": unquote(parts.username or "") or None}
                auth["password"] = unquote(parts.password)
        else:
            host, _, port = entry.rpartition(":")
            nodes.append((host, int(port)))
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    make: Any = redis.sentinel.Sentinel  # untyped before redis-py 6
    sentinel: Any = make(nodes, sentinel_kwargs={**timeouts, **auth})
    client: redis.Redis = sentinel.master_for(r.service_name, **master, **kwargs)
    return client


def connection_kwargs(client: Client) -> dict[str, Any]:
    """The arguments every connection of `client` is made with (a cluster's: of each node)."""
    if isinstance(client, RedisCluster):
        return dict(client.nodes_manager.connection_kwargs)
    return dict(client.connection_pool.connection_kwargs)


def redis_where(r: RedisConfig) -> str:
    """How messages name the Redis of `r`, passwords masked."""
    if r.sentinels:
        sentinels = ", ".join(mask_url(s) for s in r.sentinels)
        return f"master {r.service_name!r} of the sentinels {sentinels}"
    if r.cluster:
        return f"the cluster of {mask_url(r.url)}"
    return mask_url(r.url)


def describe(client: Client) -> str:
    """A URL naming the server of `client` for messages, its password masked."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()  # type: ignore[no-untyped-call]
        return f"the cluster of redis://{node.host}:{node.port}" if node else "a Redis Cluster"
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    scheme = (
        "rediss" if client.connection_pool.connection_class.__name__.startswith("SSL") else "redis"
    )
    user = kwargs.get("username") or ""
    auth = f"{user}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
    host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"{scheme}://{auth}{host}:{port}/{db}"


def scrub(text: str, url: str) -> str:
    """`text` without the password of `url` (redis-py may quote its connection arguments)."""
    password = urlsplit(url).password if "://" in url else None
    return text.replace(unquote(password), "***") if password else text


# The error codes redis-py takes off the replies it turns into these classes
_CODES = ((OutOfMemoryError, "OOM"), (ReadOnlyError, "READONLY"))


def redis_reply(exc: RedisError) -> str:
    """An error as Redis said it: redis-py drops the code of the replies it has a class for
    (`OOM command not allowed when used memory > 'maxmemory'` reads `command not allowed ...`,
    `READONLY You can't write against a read only replica` reads `You can't write ...`); the
    code is what operators search for, and what tells a full or read-only Redis from a
    failing one."""
    text = str(exc)
    for cls, code in _CODES:
        if isinstance(exc, cls) and not text.startswith(code):
            return f"{code} {text}"
    return text


NO_EVICTION = "noeviction"


def advice(exc: RedisError) -> str:
    """What an operator does about a Redis that refuses writes (deploy/RUNBOOK.md)."""
    if isinstance(exc, OutOfMemoryError):
        return " (Redis is full: raise its maxmemory or free memory; runeworker retries)"
    if isinstance(exc, ReadOnlyError):
        return (
            " (this server is a replica now: point redis.url at the master, or use "
            "redis.sentinels; runeworker retries and reconnects)"
        )
    return ""


def eviction_warning(where: str, policy: str, maxmemory: int) -> str | None:
    """The start-up warning for a Redis whose `maxmemory-policy` may evict runeworker's keys
    (every one of them has a TTL, so the `volatile-*` policies evict them as well as the
    `allkeys-*` ones); None for `noeviction`."""
    if policy == NO_EVICTION:
        return None
    limit = (
        f"maxmemory is {maxmemory} bytes"
        if maxmemory
        else "no maxmemory is set now, so nothing is evicted until one is"
    )
    return (
        f"Redis at {where} has maxmemory-policy {policy} ({limit}): under memory pressure it "
        "evicts runeworker's keys (branch tokens, merge and aggregator barriers, wait timers, "
        "receipts, commits in doubt), and an execution whose keys are evicted fails ('state "
        "lost') or, rarely, completes twice. Set maxmemory-policy noeviction on this Redis (a full "
        "Redis then refuses writes, and runeworker waits for it without losing anything: "
        "deploy/INSTALL.md)"
    )
