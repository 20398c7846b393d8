"""Reading workflows and inputs given on the command line."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from runeworker.errors import WorkflowError


def example_names() -> list[str]:
    """Names of the example workflows shipped inside the package."""
    root = resources.files("runeworker.examples")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


def read_workflow(arg: str) -> bytes:
    """A file path, or the name of a shipped example (`hello`)."""
    path = Path(arg)
    if path.is_file():
        return path.read_bytes()
    example = resources.files("runeworker.examples").joinpath(f"{arg}.json")
    if example.is_file():
        return example.read_bytes()
    names = ", ".join(example_names())
    raise WorkflowError(f"no such workflow file or example: {arg} (examples: {names})")


def read_input(arg: str | None) -> dict[str, Any] | None:
    """`--input` value: inline JSON, or `@file`. Must be a JSON object."""
    if arg is None:
        return None
    data = Path(arg[1:]).read_bytes() if arg.startswith("@") else arg.encode()
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
