"""docs/INTEGRATIONS.md lists every integration kind with its request and arguments exactly as the
catalog declares them: its table rows are rendered from `runeworker.integrations` here, so the
page cannot drift. Print the rows to paste after a change:
`.venv/bin/python tests/unit/test_integration_docs.py`."""

from __future__ import annotations

from pathlib import Path

from runeworker.engine import registry
from runeworker.integrations.connector import CATALOG
from runeworker.integrations.spec import TEXT, Arg, Tool

DOC = Path(__file__).resolve().parents[2] / "docs" / "INTEGRATIONS.md"
SITE_ARGS = ("base_url", "cloud_id", "api_version")  # every Jira kind's, told once in the page


def argument(arg: Arg) -> str:
    text = f"`{arg.name}`" + ("\\*" if arg.required or arg.positive else "")
    notes = [] if arg.kind is TEXT else [arg.kind.name]
    notes += [">= 1"] if arg.positive else []
    notes += [f"default {arg.default}"] if arg.default is not None else []
    return text + (f" ({', '.join(notes)})" if notes else "")


def row(tool: Tool) -> str:
    args = [argument(a) for a in tool.args if tool.service != "jira" or a.name not in SITE_ARGS]
    request = f"`{tool.method} {tool.path}`"
    return f"| `{tool.kind}` | {request} | {', '.join(args) or '-'} |"


def rows() -> list[str]:
    registry.load()
    return [row(tool) for tool in CATALOG.values()]


def test_the_page_lists_every_kind_as_declared() -> None:
    documented = [line for line in DOC.read_text().splitlines() if line.startswith("| `integ")]
    assert sorted(documented) == sorted(rows())
    assert len(documented) == 45


if __name__ == "__main__":
    print("\n".join(rows()))
