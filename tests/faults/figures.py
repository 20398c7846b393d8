"""The figures of a fault scenario: what was planned against what the collector recorded,
and the table the report prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from .collector import Record
from .workflows import Planned

COLUMNS = (
    ("scenario", 15), ("workflows", 9), ("faults", 6), ("compl. missing", 14),
    ("compl. dup", 10), ("compl. wrong", 12), ("status dup", 10), ("status wrong", 12),
    ("left in queues", 14), ("dead/planned", 12), ("open in Redis", 13), ("elapsed", 8),
)  # fmt: skip


@dataclass
class Figures:
    """One scenario's outcome. Every count but the workflows, the faults and the dead
    letters the scenario expects must be 0 for the scenario to pass."""

    scenario: str
    workflows: int
    faults: int
    completions_missing: int  # executions without a completion
    completions_duplicated: int  # completions beyond the first (stray ids included)
    completions_wrong: int  # first completion with another status than planned
    statuses_duplicated: int  # success/failed beyond the first, per (execution, node)
    statuses_wrong: int  # planned node without its status, or with another one, or unplanned
    elapsed: float  # publish -> last completion, seconds
    left_in_queues: int = 0  # ready + unacked in every queue but the dead-letter queue
    dead_lettered: int = 0
    expected_dead: int = 0
    open_in_redis: int = 0  # executions that still have live branch tokens
    serve_exit: int = 0  # exit code of the last `serve` after SIGTERM
    min_faults: int = 0  # fewer faults than this prove too little
    examples: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    logs: str = ""  # the kept directory with the serve logs, when there is one

    def problems(self) -> list[str]:
        """What is wrong, one sentence each; empty when the scenario passed."""
        checks = {
            "completions missing": self.completions_missing,
            "completions duplicated": self.completions_duplicated,
            "completions with the wrong status": self.completions_wrong,
            "node statuses duplicated": self.statuses_duplicated,
            "node statuses missing, wrong or unplanned": self.statuses_wrong,
            "messages left in queues": self.left_in_queues,
            "executions still open in Redis": self.open_in_redis,
        }
        out = [f"{n} {what}" for what, n in checks.items() if n]
        if self.dead_lettered != self.expected_dead:
            out.append(f"{self.dead_lettered} dead letters, expected {self.expected_dead}")
        if self.faults < self.min_faults:
            out.append(f"only {self.faults} faults injected, at least {self.min_faults} planned")
        if self.serve_exit != 0:
            out.append(f"serve exited with {self.serve_exit} on SIGTERM, expected 0")
        return out

    def row(self) -> list[str]:
        return [self.scenario, str(self.workflows), str(self.faults),
                str(self.completions_missing), str(self.completions_duplicated),
                str(self.completions_wrong), str(self.statuses_duplicated),
                str(self.statuses_wrong), str(self.left_in_queues),
                f"{self.dead_lettered}/{self.expected_dead}",
                str(self.open_in_redis), f"{self.elapsed:.1f}s"]  # fmt: skip

    def explain(self) -> str:
        """The problems with examples and the fault timeline (for a failing test)."""
        lines = [f"scenario {self.scenario}: " + ("; ".join(self.problems()) or "ok")]
        lines += [f"  e.g. {e}" for e in self.examples[:10]]
        lines += [f"  fault at {e}" for e in self.events[:40]]
        if self.logs:
            lines.append(f"  serve logs and configs kept in {self.logs}")
        return "\n".join(lines)


def table(all_figures: list[Figures]) -> str:
    """The figures as a plain-text table, one scenario a row."""
    head = "  ".join(name.rjust(width) for name, width in COLUMNS)
    rows = [
        "  ".join(cell.rjust(width) for cell, (_, width) in zip(f.row(), COLUMNS, strict=True))
        for f in all_figures
    ]
    return "\n".join([head, "-" * len(head), *rows])


def tally(name: str, plan: list[Planned], record: Record, faults: int, elapsed: float) -> Figures:
    """Compare the plan with the record."""
    examples: list[str] = []
    planned = {p.execution_id: p for p in plan}
    missing = duplicated = wrong = 0
    for eid, p in planned.items():
        got = record.completions.get(eid, [])
        missing += not got
        duplicated += max(len(got) - 1, 0)
        if got and got[0] != p.completion:
            wrong += 1
            examples.append(f"{p.kind} {eid}: completion {got}, planned {p.completion}")
        elif len(got) > 1:
            examples.append(f"{p.kind} {eid}: completions {got}")
    for eid, got in record.completions.items():
        if eid not in planned:  # not ours: counts as a duplicate of nothing
            duplicated += len(got)
            examples.append(f"completion of unknown execution {eid}: {got}")
    status_dup, status_wrong = _statuses(planned, record, examples)
    return Figures(name, len(plan), faults, missing, duplicated, wrong, status_dup,
                   status_wrong, elapsed, examples=examples)  # fmt: skip


def _statuses(planned: dict[str, Planned], record: Record, examples: list[str]) -> tuple[int, int]:
    duplicated = wrong = 0
    for (eid, node), got in record.terminal.items():
        duplicated += len(got) - 1
        p = planned.get(eid)
        if p is None or node not in p.statuses:
            wrong += 1
            examples.append(f"unplanned status {got} of node {node} in execution {eid}")
        elif len(got) > 1:
            examples.append(f"{p.kind} {eid}: node {node} reported {got}")
    for eid, p in planned.items():
        for node, status in p.statuses.items():
            got = record.terminal.get((eid, node), [])
            if not got or got[0] != status:
                wrong += 1
                examples.append(f"{p.kind} {eid}: node {node} reported {got}, planned {status}")
    return duplicated, wrong
