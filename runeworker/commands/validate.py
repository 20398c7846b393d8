"""`runeworker validate FILE`: report every problem of a workflow at once."""

from __future__ import annotations

import sys

from runeworker.commands.files import note, read_workflow
from runeworker.engine import registry
from runeworker.engine.validation import load_for_validation, runnable_problems
from runeworker.errors import RuneworkerError


def validate(workflow: str) -> int:
    try:
        wf = load_for_validation(read_workflow(workflow, note))
    except (RuneworkerError, OSError) as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    problems = runnable_problems(wf, registry.load())
    for p in problems:
        print(f"invalid: {p}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {workflow}", file=sys.stderr)
        return 1
    print(f"ok: {workflow} ({len(wf.nodes)} nodes, {len(wf.edges)} edges)")
    return 0
