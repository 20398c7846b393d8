"""Mutation score of the engine's core modules, one module at a time, against unit tests only.

    nice -n 10 .venv/bin/python -m tests.mutation.run [MODULE ...] [--jobs N] [--show]

needs the `mutation` extra (`pip install -e '.[test,mutation]'`); docs/MUTATION.md explains the
numbers. Each module gets its own mutmut project in `mutants/<module>/`: links to `runeworker/`
and `tests/`, and a `setup.cfg` whose `[mutmut]` section is the repository's with `only_mutate`
narrowed to the module and the test selection narrowed to the unit tests of that module (mutmut
reads its settings only from the directory it runs in, and runs every test it selects once per
mutant that the test reaches: the small selection keeps a run short). Each run starts from
scratch unless `--keep` is given, so a score never mixes results of older code or tests.

The table counts a timed-out mutant as killed (a mutant that hangs the tests is noticed) and
subtracts the mutants judged equivalent (`tests/mutation/equivalents.py`, each with its reason)
from the total; the score is killed / (mutants - equivalent).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.mutation.equivalents import EQUIVALENT, Equivalent

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "mutants"

# Statuses of mutmut 3.8 (mutmut/stats.py) that mean the tests noticed the mutant.
_KILLED = frozenset({"killed", "timeout", "caught by type check", "segfault"})


@dataclass(frozen=True)
class Target:
    """One module under test and the unit tests that are its own; a target that is not in
    the default run is run only when named."""

    name: str
    source: str
    tests: tuple[str, ...]
    default: bool = True


# The step modules are reached through the executor: every unit test that steps messages
# through `Executor` (directly, through tests/unit/flowkit.py, the interleavings of
# tests/unit/statecases.py or the worker loop of tests/unit/test_worker_loop.py) is one of theirs.
_STEP_TESTS = (
    "tests/unit/test_plan.py",
    "tests/unit/test_executor.py",
    "tests/unit/test_ledger.py",
    "tests/unit/test_turn.py",
    "tests/unit/test_flow_joins.py",
    "tests/unit/test_flow_merge.py",
    "tests/unit/test_flow_merge_timeout.py",
    "tests/unit/test_flow_paths.py",
    "tests/unit/test_flow_split.py",
    "tests/unit/test_flow_state.py",  # the interleavings of two workers' steps (statecases.py)
    "tests/unit/test_flow_wait.py",
    "tests/unit/test_worker_loop.py",
    "tests/unit/test_merge_race.py",  # a merge arrival racing its timeout (also needs Redis)
    "tests/unit/test_arrivals.py",  # barrier arrivals in one store call (the Arriving ledger)
    "tests/unit/test_state_lost.py",  # a step whose execution's state the store lost
    "tests/unit/test_consumer_rules.py",  # upstream consumers' rules on what a step publishes
)

TARGETS = (
    # The lazy context and the depth limits are read through the resolver: their tests are its.
    Target(
        "resolver",
        "runeworker/engine/resolver.py",
        (
            "tests/unit/test_resolver.py",
            "tests/unit/test_context.py",
            "tests/unit/test_depth.py",
            "tests/unit/test_rtes_limits.py",  # what used_inputs publishes of a value RTES refuses
        ),
    ),
    Target("validation", "runeworker/engine/validation.py", ("tests/unit/test_validation.py",)),
    # MemoryStore is both halves of the StateStore protocol: state.py (tokens) inherits
    # barriers.py (barriers, timers); the shared tables of statecases.py drive both.
    Target(
        "state",
        "runeworker/engine/state.py",
        (
            "tests/unit/test_state.py",
            "tests/unit/test_flow_state.py",
            "tests/unit/test_joining_tokens.py",  # the tokens of branches no step foresaw
        ),
    ),
    Target(
        "barriers",
        "runeworker/engine/barriers.py",
        ("tests/unit/test_state.py", "tests/unit/test_flow_state.py"),
    ),
    # Their time limits (above UNTIMED_STEPS rules or operands) are tested with the other nodes'.
    Target(
        "conditional",
        "runeworker/nodes/conditional.py",
        ("tests/unit/test_conditional.py", "tests/unit/test_node_time_limit.py"),
    ),
    Target(
        "switch",
        "runeworker/nodes/switch.py",
        ("tests/unit/test_switch.py", "tests/unit/test_node_time_limit.py"),
    ),
    # One step: its plan, the ledger mode that keeps its branch token, the executor that runs
    # it and the outbox it publishes.
    *(
        Target(name, f"runeworker/engine/{name}.py", _STEP_TESTS)
        for name in ("ledger", "plan", "executor", "outbox")
    ),
    # What a step's node does to the flow: branches, barriers' arrivals, the edges taken, the
    # ghosts sent down dead paths (run when named).
    Target(
        "flow",
        "runeworker/engine/flow.py",
        ("tests/unit/test_flow_edges.py", *_STEP_TESTS),
        default=False,
    ),
    # The graph walks of the flow steps: a split's aggregator and scope, a merge's parents, the
    # dead paths that owe barriers a ghost (run when named).
    Target(
        "paths",
        "runeworker/engine/paths.py",
        ("tests/unit/test_flow_edges.py", *_STEP_TESTS),  # test_flow_paths.py is a step test
        default=False,
    ),
    # A merge's timeout: the timer armed by a waiting arrival and its firing (run when named).
    Target(
        "merge_timer",
        "runeworker/engine/merge_timer.py",
        ("tests/unit/test_merge_timer.py", "tests/unit/test_flow_edges.py", *_STEP_TESTS),
        default=False,
    ),
    # What keeps unreadable and unpublishable JSON out (nesting, numbers RTES cannot read), and
    # how a refused message is identified: run when named.
    Target(
        "depth",
        "runeworker/engine/depth.py",
        (
            "tests/unit/test_depth.py",
            "tests/unit/test_depth_oracle.py",
            "tests/unit/test_rtes_limits.py",
            "tests/unit/test_wire_limits.py",
            "tests/unit/test_message_fuzz.py",
            "tests/unit/test_mirror.py",
        ),
        default=False,
    ),
    Target(
        "rtes_numbers",
        "runeworker/engine/rtes_numbers.py",
        ("tests/unit/test_rtes_numbers.py", "tests/unit/test_rtes_limits.py"),
        default=False,
    ),
    # The wire: the execution message decoded and encoded, the mirror, timestamps.
    Target(
        "messages",
        "runeworker/engine/messages.py",
        (
            "tests/unit/test_executor.py",
            "tests/unit/test_mirror.py",
            "tests/unit/test_message_fuzz.py",
            "tests/unit/test_wire_limits.py",
            "tests/unit/test_consumer_rules.py",
            "tests/unit/test_nulls.py",
            "tests/unit/test_go_fan_out.py",
            "tests/unit/test_rtes_limits.py",
            "tests/unit/test_logs.py",  # the statuses' timestamps
            "tests/unit/test_messages.py",
            "tests/unit/test_context.py",  # the context spliced into the next message
            "tests/unit/test_known_contexts.py",
            "tests/unit/test_known_definitions.py",
        ),
        default=False,
    ),
    # What keeps a step's outcome from being published twice or lost: the receipts of steps
    # published and the commits in doubt kept in Redis; and the timers' scheduler.
    Target(
        "receipts",
        "runeworker/child/receipts.py",
        ("tests/unit/test_receipts.py", "tests/unit/test_worker_loop.py"),
        default=False,
    ),
    Target(
        "doubts",
        "runeworker/child/doubts.py",
        ("tests/unit/test_doubts.py", "tests/unit/test_receipts.py"),
        default=False,
    ),
    Target(
        "scheduler",
        "runeworker/child/scheduler.py",
        ("tests/unit/test_scheduler.py", "tests/unit/test_worker_loop.py"),
        default=False,
    ),
    # The broker's own frames: deliveries read off the socket, publishes, acks and commits
    # written. Their tests talk to the suite's RabbitMQ (each test run makes a vhost of its own).
    Target(
        "amqp_reader",
        "runeworker/adapters/amqp_reader.py",
        (
            "tests/integration/test_amqp_reader.py",
            "tests/integration/test_amqp_reader_streams.py",
            "tests/integration/test_amqp_commit.py",  # the commit-ok it takes
        ),
        default=False,
    ),
    Target(
        "amqp_frames",
        "runeworker/adapters/amqp_frames.py",
        # the reader's tests too: over TLS pika's sends are left alone
        ("tests/integration/test_amqp_frames.py", "tests/integration/test_amqp_reader.py"),
        default=False,
    ),
    Target(
        "amqp_commit",
        "runeworker/adapters/amqp_commit.py",
        # the reader's and the writer's commit-ok and tx.commit are its halves
        (
            "tests/integration/test_amqp_commit.py",
            "tests/integration/test_amqp_reader_streams.py",
        ),
        default=False,
    ),
    # The definition parsed and indexed: what every message's `workflow_definition` becomes.
    Target(
        "workflow",
        "runeworker/engine/workflow.py",
        (
            "tests/unit/test_workflow.py",  # parse_definition, index, start_node, secrets
            "tests/unit/test_workflow_fuzz.py",
            "tests/unit/test_nulls.py",
            "tests/unit/test_validation.py",
            "tests/unit/test_plan.py",
            "tests/unit/test_executor.py",
            "tests/unit/test_depth.py",
            "tests/unit/test_flow_paths.py",
            "tests/unit/test_agent_params.py",  # credentials embedded in tools and MCP servers
            "tests/unit/test_runner.py",  # the start node of `runeworker run`
        ),
        default=False,
    ),
    # The context decoded lazily, copied per step, spliced into the next message.
    Target(
        "context",
        "runeworker/engine/context.py",
        (
            "tests/unit/test_context.py",
            "tests/unit/test_known_contexts.py",
            "tests/unit/test_resolver.py",
            "tests/unit/test_depth.py",
            "tests/unit/test_messages.py",
            "tests/unit/test_executor.py",
            "tests/unit/test_rtes_limits.py",
        ),
        default=False,
    ),
    # What a process keeps of the definitions and contexts it has seen, and nulls read as Go does.
    Target(
        "known_contexts",
        "runeworker/engine/known_contexts.py",
        (
            "tests/unit/test_known_contexts.py",
            "tests/unit/test_messages.py",
            "tests/unit/test_context.py",
            "tests/unit/test_message_fuzz.py",
        ),
        default=False,
    ),
    Target(
        "known_definitions",
        "runeworker/engine/known_definitions.py",
        (
            "tests/unit/test_known_definitions.py",
            "tests/unit/test_plan.py",
            "tests/unit/test_message_fuzz.py",
            "tests/unit/test_executor.py",
        ),
        default=False,
    ),
    Target(
        "nulls",
        "runeworker/engine/nulls.py",
        (
            "tests/unit/test_nulls.py",
            "tests/unit/test_workflow.py",
            "tests/unit/test_messages.py",
            "tests/unit/test_message_fuzz.py",
            "tests/unit/test_executor.py",
        ),
        default=False,
    ),
    # The node registry: built-ins, plugins and extra modules loaded; the time limit of a node.
    Target(
        "registry",
        "runeworker/engine/registry.py",
        (
            "tests/unit/test_registry.py",
            "tests/unit/test_node_time_limit.py",
            "tests/unit/test_node_settings.py",
            "tests/unit/test_executor.py",
        ),
        default=False,
    ),
    # The state store's client side against the suite's Redis: the scripts' arguments built
    # and their replies decoded, the probes, the start records, receipts and attempt counts.
    Target(
        "redis_state",
        "runeworker/adapters/redis_state.py",
        (
            "tests/integration/test_redis_state.py",
            "tests/integration/test_redis_probes.py",
            "tests/integration/test_redis_doubts.py",
            "tests/integration/test_redis_state_lost.py",
            "tests/integration/test_redis_replayed_barriers.py",
            "tests/unit/test_ledger.py",
            "tests/unit/test_merge_race.py",
            "tests/unit/test_receipts.py",
        ),
        default=False,
    ),
    # The child's loop: batches read, stepped, committed; poison, drains, doubts, timers.
    Target(
        "worker",
        "runeworker/child/worker.py",
        (
            "tests/unit/test_worker_loop.py",
            "tests/unit/test_worker_backpressure.py",
            "tests/unit/test_node_settings.py",
            "tests/unit/test_receipts.py",
            "tests/unit/test_wire_limits.py",
            "tests/unit/test_scale_settings.py",
        ),
        default=False,
    ),
    Target(
        "rejection",
        "runeworker/engine/rejection.py",
        (
            "tests/unit/test_rejection.py",
            "tests/unit/test_joining_tokens.py",
            "tests/unit/test_wire_limits.py",
            "tests/unit/test_consumer_rules.py",
            "tests/unit/test_worker_loop.py",
        ),
        default=False,
    ),
)


@dataclass
class Score:
    """Verdicts of one module's mutants."""

    target: Target
    statuses: dict[str, str]  # mutant name -> mutmut status
    equivalent: dict[str, Equivalent] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)  # listed as equivalent, but not (any more)

    @property
    def killed(self) -> list[str]:
        return sorted(n for n, s in self.statuses.items() if s in _KILLED)

    @property
    def survived(self) -> list[str]:
        return sorted(
            n for n, s in self.statuses.items() if s not in _KILLED and n not in self.equivalent
        )

    @property
    def score(self) -> float:
        judged = len(self.statuses) - len(self.equivalent)
        return 100.0 * len(self.killed) / judged if judged else 100.0


def _mutmut() -> str:
    # The console script, not `python -m mutmut`: mutmut 3.8 sets the multiprocessing start
    # method when its __main__ module is imported and warns when that happens twice.
    beside = Path(sys.executable).with_name("mutmut")
    found = str(beside) if beside.exists() else shutil.which("mutmut")
    if found is None:
        sys.exit("mutmut is not installed: pip install -e '.[test,mutation]'")
    return found


def _project(target: Target, keep: bool) -> Path:
    """The mutmut project of one target: links to the code and tests, and its setup.cfg."""
    work = WORK / target.name
    if work.exists() and not keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("runeworker", "tests"):
        link = work / name
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(ROOT / name, work))
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    if not cfg.has_section("mutmut"):
        sys.exit("setup.cfg has no [mutmut] section")
    cfg["mutmut"]["only_mutate"] = target.source
    cfg["mutmut"]["pytest_add_cli_args_test_selection"] = "\n" + "\n".join(target.tests)
    # A fresh project has no history for git to compare against.
    cfg["mutmut"]["use_git_change_detection"] = "false"
    with open(work / "setup.cfg", "w") as out:
        cfg.write(out)
    return work


def _run(target: Target, jobs: int, keep: bool) -> Path:
    work = _project(target, keep)
    log = work / "mutmut.log"
    print(f"{target.name}: mutmut run ({', '.join(target.tests)}), log in {log}", flush=True)
    with open(log, "w") as out:
        done = subprocess.run(
            [_mutmut(), "run", "--max-children", str(jobs)],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        sys.exit(f"{target.name}: mutmut failed ({done.returncode}):\n" + "\n".join(tail))
    return work


def _diff(work: Path, mutant: str) -> str:
    shown = subprocess.run(
        [_mutmut(), "show", mutant], cwd=work, capture_output=True, text=True, check=False
    )
    return shown.stdout


def _score(target: Target, work: Path) -> Score:
    from mutmut.stats import status_by_exit_code  # the pinned release's table

    meta = work / "mutants" / (target.source + ".meta")
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    result = Score(target, {name: status_by_exit_code[code] for name, code in codes.items()})
    for name, entry in EQUIVALENT.items():
        if not name.startswith(_module_of(target) + "."):
            continue
        # a mutant that only deletes a line is listed by that line, prefixed with "-"
        sign, wanted = ("-", entry.line[1:]) if entry.line.startswith("-") else ("+", entry.line)
        changed = [
            line[1:].strip()
            for line in _diff(work, name).splitlines()
            if line.startswith(sign) and not line.startswith(sign * 3)
        ]
        # The mutant's number moves when its function changes: the listed line must still be
        # the one it adds (or deletes), and the tests must still let it through.
        if result.statuses.get(name) in _KILLED or not any(wanted in a for a in changed):
            result.stale.append(name)
        else:
            result.equivalent[name] = entry
    return result


def _module_of(target: Target) -> str:
    return target.source.removesuffix(".py").replace("/", ".")


def _table(scores: list[Score], markdown: bool) -> str:
    head = ("module", "mutants", "killed", "survived", "equivalent", "score")
    rows = [
        (
            s.target.source,
            str(len(s.statuses)),
            str(len(s.killed)),
            str(len(s.survived)),
            str(len(s.equivalent)),
            f"{s.score:.1f}%",
        )
        for s in scores
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r) for r in [head, *rows])


def _details(score: Score, work: Path, show: bool) -> None:
    other = Counter(s for n, s in score.statuses.items() if n in score.survived)
    if score.survived:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(other.items()))
        print(f"\n{score.target.name}: {len(score.survived)} not killed ({kinds}):")
        for name in score.survived:
            print(f"  {name}")
            if show:
                print("    " + _diff(work, name).replace("\n", "\n    "))
    for name in score.stale:
        print(f"\n{score.target.name}: {name} is listed as equivalent but was killed or changed")
    if score.equivalent and show:
        print(f"\n{score.target.name}: equivalent mutants")
        for name, entry in sorted(score.equivalent.items()):
            print(f"  {name}: {entry.reason}")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen modules (the core ones by default) and print the table; exit status 1
    when a module is below --fail-under or an equivalent listed is stale."""
    names = [t.name for t in TARGETS]
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    core = [t.name for t in TARGETS if t.default]
    parser.add_argument(
        "modules",
        nargs="*",
        choices=[[], *names],
        metavar="MODULE",
        help=f"any of {', '.join(names)} (default: {', '.join(core)})",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutmut workers")
    parser.add_argument("--keep", action="store_true", help="reuse mutants/<module>/ results")
    parser.add_argument("--show", action="store_true", help="print survivors' diffs")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--fail-under", type=float, default=0.0, metavar="PCT", help="exit 1 below PCT"
    )
    args = parser.parse_args(argv)
    chosen = [t for t in TARGETS if t.name in args.modules or (not args.modules and t.default)]
    scores: list[Score] = []
    for target in chosen:
        work = _run(target, args.jobs, args.keep)
        scores.append(_score(target, work))
        _details(scores[-1], work, args.show)
    print()
    print(_table(scores, args.markdown))
    low = [s.target.name for s in scores if s.score < args.fail_under]
    if low:
        print(f"below {args.fail_under}%: {', '.join(low)}")
    return 1 if low or any(s.stale for s in scores) else 0


if __name__ == "__main__":
    sys.exit(main())
