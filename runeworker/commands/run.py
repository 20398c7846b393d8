"""`runeworker run WORKFLOW`: execute a workflow in this process, no broker needed.

The nodes see the same settings as under `serve`: the same config file ($RUNEWORKER_CONFIG or
--config), the same environment, the same `config.to_node_settings` (http deny list, limits,
worker.node_timeout) and the same `worker.max_steps`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from runeworker.commands.files import (
    definition_of,
    note,
    read_input,
    read_workflow,
    sample_input,
)
from runeworker.config import Config, load_config, to_node_settings
from runeworker.engine import registry
from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import COMPLETED, NodeStatusMessage, encode
from runeworker.engine.state import MemoryStore
from runeworker.engine.validation import load_for_validation, runnable_problems
from runeworker.errors import ConfigError, RuneworkerError
from runeworker.printable import one_line

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
_MARKS = {"running": "…", "success": "✓", "failed": "✗", "waiting": "⏸"}


def status_line(st: NodeStatusMessage) -> str:
    """One readable line per status: mark, node name, status, duration (and the error)."""
    line = f"{_MARKS.get(st.status, ' ')} {one_line(st.node_name):<24} {st.status:<8}"
    if st.status != "running":
        line += f" {st.duration_ms:>6} ms"
    if st.error:
        line += f"  {one_line(st.error.message)}"
    elif st.output and isinstance(st.output.get("message"), str):
        line += f"  {one_line(st.output['message'])}"
    return line


def local_executor(cfg: Config) -> Executor:
    """The executor `run` uses: in-memory state, the node settings `serve` gives its children."""
    return Executor(MemoryStore(), settings=to_node_settings(cfg), max_steps=cfg.worker.max_steps)


def run(
    workflow: str,
    input_arg: str | None,
    as_json: bool,
    out: TextIO = sys.stdout,
    *,
    config_path: str | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `workflow` to its completion; the exit code: 0 completed, 1 not, 2 bad input, 130
    interrupted (Ctrl-C: a wait or a slow node need not be waited out)."""
    try:
        cfg = load_config(config_path, env=env)
    except ConfigError as exc:  # one line per problem, as check-config prints them
        for problem in str(exc).splitlines():
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    try:
        data = read_workflow(workflow, note)
        wf = load_for_validation(data)  # read errors named as `validate` names them
        definition = definition_of(data)
        inputs = read_input(input_arg)
        if inputs is None:
            inputs = sample_input(definition)
        problems = runnable_problems(wf, registry.load())
        if problems:
            for p in problems:
                print(f"invalid workflow: {p}", file=sys.stderr)
            return EXIT_INVALID
        start = start_message(definition, inputs)
    except (RuneworkerError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID

    def show(st: NodeStatusMessage) -> None:
        if as_json:
            out.write(encode(st).decode() + "\n")
        else:
            out.write(status_line(st) + "\n")
        out.flush()

    try:
        done = LocalRunner(local_executor(cfg), on_status=show).run(start)
    except KeyboardInterrupt:
        print(f"interrupted; execution {start.execution_id} did not complete", file=sys.stderr)
        return EXIT_INTERRUPTED
    if done is None:
        print("workflow ended without a completion (parked at a wait or merge)", file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        out.write(encode(done).decode() + "\n")
    else:
        reason = f": {one_line(done.failure_reason)}" if done.failure_reason else ""
        out.write(f"workflow {done.status} in {done.total_duration_ms} ms{reason}\n")
    return EXIT_OK if done.status == COMPLETED else EXIT_FAILED
