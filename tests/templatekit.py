"""The official Rune templates of tests/templates as the tests run them: converted by the product
module (`runeworker.canvas`, as the Rune web app converts them), their public API hosts pointed at
a loopback stand-in (only scheme and host change; path and query stay the template's), and, for
the nodes that need one, the credential the Rune API embeds resolved before publishing
(`{id, name, type, values}`: `resolve_workflow_credentials` in
services/api/src/workflow/service.py)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runeworker.canvas import convert

TESTS = Path(__file__).resolve().parent
TEMPLATES = TESTS / "templates"
OFFICIAL = (
    "daily-rss-digest",
    "daily-weather-briefing",
    "fortune-cookie",
    "github-status",
    "help-wanted-issue-finder",
    "maintenance-window-check",
    "sheets-gmail-tracker",
    "uptime-threshold-check",
)


def template(name: str) -> dict[str, Any]:
    """The template file as upstream ships it."""
    data: dict[str, Any] = json.loads((TEMPLATES / f"{name}.json").read_text())
    return data


def definition(name: str) -> dict[str, Any]:
    """The workflow definition of template `name`."""
    return convert(template(name))


def retarget(definition: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A copy whose http nodes call `base_url`'s scheme and host instead of the template's."""
    out = copy.deepcopy(definition)
    scheme, host = urlsplit(base_url)[:2]
    for node in out["nodes"]:
        if node["type"] == "http":
            parts = urlsplit(node["parameters"]["url"])
            node["parameters"]["url"] = urlunsplit((scheme, host, *parts[2:]))
    return out


def with_credentials(
    definition: dict[str, Any], by_type: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """A copy whose nodes of each type in `by_type` carry that resolved credential."""
    out = copy.deepcopy(definition)
    for node in out["nodes"]:
        if node["type"] in by_type:
            node["credentials"] = copy.deepcopy(by_type[node["type"]])
    return out


def node_named(definition: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(n for n in definition["nodes"] if n["name"] == name)
    return found


def runeworker(
    *args: str | Path, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m runeworker ARGS` as a process, with none of this process's RUNEWORKER_*
    variables (but `env`) and the tests folder on the path (stand-in node modules)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNEWORKER_")}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), clean.get("PYTHONPATH")]))
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "runeworker", *map(str, args)],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- what the templates' public APIs are asked and answer -------------------------------------

# GitHub's /zen answers one line of its design philosophy as plain text.
ZEN = b"Approachable is better than simple."
GITHUB_HOME = (
    b'<!DOCTYPE html>\n<html lang="en" data-color-mode="auto" data-light-theme="light">\n'
    b'<head><meta charset="utf-8"><title>GitHub \xc2\xb7 Build and ship software on a single, '
    b"collaborative platform \xc2\xb7 GitHub</title></head>\n<body></body></html>\n"
)
HELP_WANTED_QUERY = {
    "q": ['repo:rune-org/rune is:issue is:open label:\\"help wanted\\"'],
    "per_page": ["10"],
}


def issue(number: int, title: str) -> dict[str, Any]:
    """One item of GitHub's search API answer (the fields a client reads, trimmed)."""
    return {
        "url": f"https://api.github.com/repos/rune-org/rune/issues/{number}",
        "html_url": f"https://github.com/rune-org/rune/issues/{number}",
        "number": number,
        "title": title,
        "state": "open",
        "labels": [{"name": "help wanted", "color": "008672", "default": True}],
        "user": {"login": "octocat", "type": "User"},
        "comments": 2,
        "created_at": "2026-11-02T09:14:03Z",
    }


ISSUES = [issue(412, "Add a Telegram trigger"), issue(398, "Dark mode for the canvas minimap")]


def uptime(percent: float) -> dict[str, Any]:
    """The site-uptime answer the template reads `uptimePercent` of."""
    return {
        "name": "example",
        "url": "https://example.com",
        "status": "up",
        "uptimePercent": percent,
        "checkedAt": "2026-12-03T00:00:00Z",
    }
