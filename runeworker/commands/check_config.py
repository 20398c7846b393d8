"""`runeworker check-config`: print the effective configuration with every password masked."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

from runeworker.config import (
    Config,
    config_file,
    load_config,
    mask_url,
    masked,
    to_node_settings,
)
from runeworker.engine.registry import UNTIMED_STEPS
from runeworker.errors import ConfigError


def render(tree: Mapping[str, Mapping[str, Any]]) -> str:
    """Sections as `[name]`, keys as `key = JSON value`: JSON scalars and arrays are valid TOML,
    so the output can be saved and used as a config file."""
    lines: list[str] = []
    for section, table in tree.items():
        lines += ["", f"[{section}]"] if lines else [f"[{section}]"]
        lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """`value` as TOML: JSON, but for the floats JSON has no words for (json.dumps writes
    `Infinity`, which TOML refuses; `worker.timeout = inf` is a valid config)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(value)


def check_config(path: str | None, overrides: Mapping[str, Any]) -> int:
    """Load the config as `serve` would; 0 and the masked config on stdout, or 2 and every
    problem on stderr."""
    try:
        cfg = load_config(path, overrides=overrides)
    except ConfigError as exc:
        for problem in str(exc).splitlines():
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    source = config_file(path, os.environ) or "none (defaults and environment)"
    print(f"# runeworker effective configuration; file: {source}; passwords masked")
    for note in [*topology(cfg), limits(cfg)]:
        print(f"# {note}")
    print(render(masked(cfg)), end="")
    return 0


def topology(cfg: Config) -> list[str]:
    """What the broker and Redis settings amount to, in words: which of `broker.url` and
    `broker.urls` is used, the type the queues are declared with (it must agree with Rune's
    API), and which kind of Redis."""
    b, r = cfg.broker, cfg.redis
    if b.urls:
        nodes = ", ".join(mask_url(url) for url in b.urls)
        broker = f"broker: broker.urls, {len(b.urls)} node(s) tried in order: {nodes}"
        broker += " (broker.url is not used)"
    else:
        broker = f"broker: broker.url {mask_url(b.url)} (broker.urls is empty)"
    queues = f"{b.queue} and {b.resume_queue}"
    if b.queue_type == "classic":
        kind = (
            f"queues: {queues} are classic, declared without arguments as Rune's API "
            "declares them; a queue's type must agree on both sides"
        )
    else:
        kind = (
            f"queues: {queues} (and runeworker's {b.dead_letter_queue}) are declared "
            f"{b.queue_type} (x-queue-type); a queue's type must agree on both sides: Rune's "
            f"API must declare {queues} {b.queue_type} too, or the second declare fails "
            "with PRECONDITION_FAILED"
        )
    if r.sentinels:
        store = f"redis: Sentinel master {r.service_name!r} via {len(r.sentinels)} sentinel(s)"
        store += "; redis.url gives its credentials and database, not its address"
    elif r.cluster:
        store = f"redis: Redis Cluster, layout read from {mask_url(r.url)}"
    else:
        store = f"redis: one server, {mask_url(r.url)}"
    return [broker, kind, store]


def limits(cfg: Config) -> str:
    """The time limits of a node as the nodes get them: `worker.node_timeout` and
    `agent.total_timeout` at 0 stand for a share of `worker.timeout`, which the file shows as 0."""
    nodes = to_node_settings(cfg)

    def said(key: str, value: float, seconds: float) -> str:
        how = "80 % of worker.timeout, as 0 asks" if not value else "as set"
        return f"{key} {seconds:g} s ({how})"

    blocking = said("worker.node_timeout", cfg.worker.node_timeout, nodes.node_timeout)
    agent = said("agent.total_timeout", cfg.agent.total_timeout, nodes.agent_total_timeout)
    return (
        f"limits: a node runs at most worker.timeout {cfg.worker.timeout:g} s (then its child is "
        f"killed as hung); http, smtp, integration, edit, filter and sort nodes (and a "
        f"switch or conditional of more than {UNTIMED_STEPS} rules or operands) stop at "
        f"{blocking}, an agent at {agent}"
    )
