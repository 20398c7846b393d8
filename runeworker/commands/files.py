"""Reading workflows and inputs given on the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from runeworker import canvas
from runeworker.errors import WorkflowError


def example_names() -> list[str]:
    """Names of the example workflows shipped inside the package."""
    root = resources.files("runeworker.examples")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


# what some editors (Notepad) write before UTF-8 text; RFC 8259 lets a JSON reader ignore it,
# and msgspec calls it "invalid character (byte 0)"
_BOM = b"\xef\xbb\xbf"


def read_source(arg: str) -> bytes:
    """The bytes of a file path, or of the shipped example of that name (`hello`)."""
    path = Path(arg)
    if path.exists() and not path.is_dir():  # a file, or a pipe: `<(jq ...)`, /dev/stdin
        return path.read_bytes().removeprefix(_BOM)
    example = resources.files("runeworker.examples").joinpath(f"{arg}.json")
    if example.is_file():
        return example.read_bytes()
    if path.is_dir():
        raise WorkflowError(f"{arg} is a directory, not a workflow file")
    names = ", ".join(example_names())
    raise WorkflowError(f"no such workflow file or example: {arg} (examples: {names})")


def read_workflow(arg: str, on_note: Callable[[str], None] | None = None) -> bytes:
    """A file path, or the name of a shipped example (`hello`): a workflow definition or an
    execution message as they are, a Rune template or a bare canvas graph converted to the
    definition the web app makes of it (`runeworker.canvas`). `on_note` hears what a conversion
    should tell a person: that it happened, and which nodes hold no credential."""
    return _converted(arg, read_source(arg), on_note)


def note(text: str) -> None:
    """Print a conversion note to stderr (stdout may carry `--json` messages)."""
    print(f"note: {text}", file=sys.stderr)


def _converted(arg: str, data: bytes, on_note: Callable[[str], None] | None) -> bytes:
    try:
        doc = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return data  # the readers below name the JSON error
    graph = canvas.canvas_graph(doc)
    if graph is None:
        return data
    definition = msgspec.json.encode(canvas.to_workflow_data(graph))
    if on_note is not None:
        what = "template" if graph is not doc else "canvas graph"
        on_note(f"{arg}: a Rune {what}, converted as the Rune web app does")
        for name, kind in canvas.missing_credentials(graph):
            on_note(
                f"node {name} ({kind}) holds no credential (a template carries none): "
                "it fails when it runs unless one is added to the definition"
            )
    return definition


def read_input(arg: str | None) -> dict[str, Any] | None:
    """`--input` value: inline JSON, or `@file`. Must be a JSON object."""
    if arg is None:
        return None
    if arg.startswith("@"):
        try:
            data = Path(arg[1:]).read_bytes().removeprefix(_BOM)
        except OSError as exc:
            raise WorkflowError(f"--input {arg}: cannot read the file: {exc.strerror}") from None
    else:
        # an argument that is not UTF-8 reaches Python as surrogate escapes: give its bytes
        # back, and the JSON reader names the invalid UTF-8
        data = arg.encode("utf-8", "surrogateescape")
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"--input is not valid JSON: {exc}") from exc
    except RecursionError:
        raise WorkflowError("--input is nested too deeply to be read") from None
    if not isinstance(value, dict):
        raise WorkflowError("--input must be a JSON object")
    return value


def definition_of(data: bytes) -> bytes:
    """The definition bytes of a bare definition or of a whole execution message."""
    try:
        doc = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"workflow is not valid JSON: {exc}") from exc
    except RecursionError:
        raise WorkflowError("workflow is nested too deeply to be read") from None
    if isinstance(doc, dict) and isinstance(doc.get("workflow_definition"), dict):
        return msgspec.json.encode(doc["workflow_definition"])
    return data


def sample_input(definition: bytes) -> dict[str, Any] | None:
    """`metadata.sample_input` of a definition: the input `runeworker run` uses when none is
    given, so that shipped examples run as typed."""
    try:
        doc = msgspec.json.decode(definition)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    sample = meta.get("sample_input") if isinstance(meta, dict) else None
    return sample if isinstance(sample, dict) else None
