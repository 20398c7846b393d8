"""`runeworker check-config`: print the effective configuration with every password masked."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from runeworker.config import config_file, load_config, masked
from runeworker.errors import ConfigError


def render(tree: Mapping[str, Mapping[str, Any]]) -> str:
    """Sections as `[name]`, keys as `key = JSON value`: JSON scalars and arrays are valid TOML,
    so the output can be saved and used as a config file."""
    lines: list[str] = []
    for section, table in tree.items():
        lines += ["", f"[{section}]"] if lines else [f"[{section}]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


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
    print(render(masked(cfg)), end="")
    return 0
