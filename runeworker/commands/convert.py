"""`runeworker convert FILE`: print the workflow definition of a Rune template or canvas graph,
as the Rune web app converts it (`runeworker.canvas`), so that credentials can be added to it
before `run` or `submit` (a template carries none)."""

from __future__ import annotations

import sys
from typing import TextIO

import msgspec

from runeworker import canvas
from runeworker.commands.files import read_source
from runeworker.errors import RuneworkerError

EXIT_OK, EXIT_INVALID = 0, 2


def convert(workflow: str, out: TextIO = sys.stdout) -> int:
    """Write the definition as indented JSON; exit 2 when the file is not a canvas graph. The
    nodes that need a credential and hold none are named on stderr."""
    try:
        doc = msgspec.json.decode(read_source(workflow))
        graph = canvas.canvas_graph(doc)
        if graph is None:
            raise canvas.CanvasError(
                "not a Rune template nor a canvas graph (a workflow definition needs no conversion)"
            )
        definition = canvas.to_workflow_data(graph)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        print(f"error: {workflow} is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except RecursionError:
        print(f"error: {workflow} is nested too deeply to be read", file=sys.stderr)
        return EXIT_INVALID
    except (RuneworkerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    out.write(msgspec.json.format(msgspec.json.encode(definition), indent=2).decode() + "\n")
    for name, kind in canvas.missing_credentials(graph):
        print(f"note: node {name} ({kind}) holds no credential", file=sys.stderr)
    return EXIT_OK
