"""Surviving mutants judged equivalent: they change the code but no input can tell them apart.

Keyed by mutmut's mutant name; `line` is (part of) the line the mutant adds, so that a mutant
whose number moved to another change (its function was edited) is reported stale, not excused.
docs/MUTATION.md lists the same entries.
"""

from __future__ import annotations

from typing import NamedTuple


class Equivalent(NamedTuple):
    """Why one surviving mutant is not a gap in the tests."""

    line: str
    reason: str


EQUIVALENT: dict[str, Equivalent] = {}
