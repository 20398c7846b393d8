"""`runeworker submit WORKFLOW`: play the Rune master API and start an execution on the broker.

The start message goes out exactly as the API publishes it (services/api/src/workflow/queue.py;
docs/WIRE.md section 3.4): through the
default exchange `""` with routing key = the execution queue (`broker.queue`), `delivery_mode`
2, no `content_type`, body = workflow_id, workflow_version, workflow_version_id, execution_id
(uuid4), current_node, workflow_definition, accumulated_context. The queue is declared first as
the API does (durable, no arguments: the declaration every Rune party makes), and the publish
is confirmed by the broker, so a printed execution id is an execution that was accepted.

`current_node` is the trigger node: runeworker treats a trigger as a pass-through to ALL its
successors. A Go worker would instead execute the trigger node itself; the API sends it the
FIRST successor of the trigger (other successors never start). `--first-successor` targets
that node, the API way, for a pool of Go workers.

`--wait` watches the execution through an exclusive, auto-delete, server-named queue bound to
the `workflows` exchange with the status and completion routing keys: the broker gives it a
COPY of every message, so RTES, the archivist and any other consumer still get theirs. The
queue is bound before the start message is published, so no status can be missed.

Exit codes: 0 submitted (or, with --wait, completed); 1 the execution failed or halted;
2 invalid workflow, input or broker error; 3 --timeout passed without a completion;
130 interrupted (the execution goes on on the workers).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import msgspec
import pika

from runeworker.adapters.amqp import (
    AMQP_ERRORS,
    COMMAND_HANDSHAKE_TIMEOUT,
    COMPLETION_QUEUE,
    STATUS_QUEUE,
    Endpoint,
    queue_arguments,
)
from runeworker.commands.files import (
    definition_of,
    note,
    read_input,
    read_workflow,
    sample_input,
)
from runeworker.commands.run import status_line
from runeworker.config import Config, load_config
from runeworker.engine import registry
from runeworker.engine.local import start_message
from runeworker.engine.messages import (
    COMPLETED,
    CompletionMessage,
    NodeExecutionMessage,
    NodeStatusMessage,
    encode,
)
from runeworker.engine.validation import load_for_validation, runnable_problems
from runeworker.engine.workflow import parse_definition
from runeworker.errors import BrokerError, ConfigError, RuneworkerError, WorkflowError
from runeworker.printable import one_line

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_PERSISTENT = 2
_POLL_SECONDS = 0.5  # longest single wait on the socket; bounds the reaction to the deadline

OnStatus = Callable[[NodeStatusMessage], None]

_status_decoder = msgspec.json.Decoder(NodeStatusMessage)
_completion_decoder = msgspec.json.Decoder(CompletionMessage)


def submit(
    workflow: str,
    input_arg: str | None,
    wait: bool,
    timeout: float | None,
    cfg: Config,
    out: TextIO = sys.stdout,
    *,
    first_successor: bool = False,
    workflow_id: str | None = None,
) -> int:
    """Validate `workflow`, publish its start message, print the execution id; with `wait`,
    print each status of the execution and return its outcome. `timeout` (seconds from the
    publish; None = no limit) only applies to `wait`. `workflow_id` defaults to the file stem."""
    try:
        start = prepare(
            workflow, input_arg, first_successor=first_successor, workflow_id=workflow_id
        )
    except InvalidWorkflow as exc:
        for problem in exc.problems:
            print(f"invalid workflow: {problem}", file=sys.stderr)
        return EXIT_INVALID
    except (RuneworkerError, OSError) as exc:  # the file, the input, --first-successor
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    master = MasterClient(cfg)
    published = False
    try:
        master.connect()
        if wait:
            master.watch()
        master.publish(start)
        published = True
        out.write(start.execution_id + "\n")
        out.flush()
        if not wait:
            return EXIT_OK
        return _follow(master, start.execution_id, timeout, out)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        fate = "goes on on the workers" if published else "was not submitted"
        print(f"interrupted; execution {start.execution_id} {fate}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        master.close()


def submit_command(args: argparse.Namespace, overrides: Mapping[str, Any]) -> int:
    """`cli` entry: load the config (`args.config` < environment < `overrides`), then
    `submit` with the parsed flags. A config problem is exit 2, one line per problem."""
    try:
        cfg = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        for problem in str(exc).splitlines():
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    return submit(
        args.workflow,
        args.input,
        args.wait,
        args.timeout,
        cfg,
        sys.stdout,  # looked up now: a redirected stdout is not the default bound at import
        first_successor=args.first_successor,
    )


class InvalidWorkflow(WorkflowError):
    """A definition that was read but breaks rules of the graph; `problems` lists them all."""


def prepare(
    workflow: str,
    input_arg: str | None,
    *,
    first_successor: bool = False,
    workflow_id: str | None = None,
) -> NodeExecutionMessage:
    """The start message of a new execution of a valid workflow. Raises InvalidWorkflow whose
    `problems` lists every problem of the definition, WorkflowError for a file or an input
    that cannot be read (named as `validate` and `run` name them)."""
    data = read_workflow(workflow, note)
    wf = load_for_validation(data)
    definition = definition_of(data)
    inputs = read_input(input_arg)
    if inputs is None:  # a shipped example submits as it runs: with its sample input
        inputs = sample_input(definition)
    problems = runnable_problems(wf, registry.load())
    if problems:
        raise InvalidWorkflow(f"{len(problems)} problem(s)", [str(p) for p in problems])
    start = start_message(definition, inputs, workflow_id=workflow_id or Path(workflow).stem)
    if first_successor:
        start.current_node = first_successor_of(definition, start.current_node)
    return start


def first_successor_of(definition: bytes, trigger_id: str) -> str:
    """The node the Rune API starts: the destination of the first edge leaving the trigger."""
    wf = parse_definition(definition)
    if not any(n.id == trigger_id and n.trigger for n in wf.nodes):
        raise WorkflowError("--first-successor needs a trigger node, and the workflow has none")
    for edge in wf.edges:
        if edge.src == trigger_id:
            return edge.dst
    raise WorkflowError(f"--first-successor: trigger node {trigger_id} has no outgoing edge")


def _follow(master: MasterClient, execution_id: str, timeout: float | None, out: TextIO) -> int:
    def show(status: NodeStatusMessage) -> None:
        out.write(status_line(status) + "\n")
        out.flush()

    deadline = None if timeout is None else time.monotonic() + timeout
    done = master.wait(execution_id, deadline, show)
    if done is None:
        print(
            f"no completion of execution {execution_id} within {timeout} s "
            "(--timeout; it may still be running)",
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    reason = f": {one_line(done.failure_reason)}" if done.failure_reason else ""
    out.write(f"workflow {done.status} in {done.total_duration_ms} ms{reason}\n")
    out.flush()
    return EXIT_OK if done.status == COMPLETED else EXIT_FAILED


class MasterClient:
    """One AMQP connection playing the Rune master: publishes like the API, watches like RTES.

    Not `runeworker.adapters.amqp.Broker`: that is the worker's transactional channel, which stamps
    `application/json` on every message, where the API sends none."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.endpoint = Endpoint.of(cfg.broker, handshake_timeout=COMMAND_HANDSHAKE_TIMEOUT)
        self._conn: Any = None
        self._ch: Any = None
        self._watch_queue = ""
        self._execution_id = ""
        self._on_status: OnStatus | None = None
        self._done: CompletionMessage | None = None

    def connect(self) -> None:
        """Open the connection and a channel in publisher-confirm mode."""
        self._conn = self.endpoint.connect("runeworker submit")
        with self.endpoint.errors("cannot connect to RabbitMQ"):
            self._ch = self._conn.channel()
            self._ch.confirm_delivery()

    def watch(self) -> None:
        """Bind a private queue to the status and completion routing keys and consume it."""
        b = self.cfg.broker
        with self.endpoint.errors(f"cannot watch exchange {b.exchange}"):
            # Declared exactly as the worker, RTES and the archivist declare it.
            self._ch.exchange_declare(b.exchange, exchange_type="topic", durable=True)
            declared = self._ch.queue_declare("", exclusive=True, auto_delete=True)
            self._watch_queue = declared.method.queue
            for key in (STATUS_QUEUE, COMPLETION_QUEUE):
                self._ch.queue_bind(self._watch_queue, b.exchange, routing_key=key)
            # auto_ack: the queue holds copies nobody else wants; nothing to hand back.
            self._ch.basic_consume(self._watch_queue, self._on_message, auto_ack=True)

    def publish(self, start: NodeExecutionMessage) -> None:
        """Publish `start` as the API does; returns once the broker confirmed it."""
        queue = self.cfg.broker.queue
        with self.endpoint.errors(f"cannot publish the start message to queue {queue}"):
            arguments = queue_arguments(self.cfg.broker.queue_type)  # as the workers declare it
            self._ch.queue_declare(queue, durable=True, arguments=arguments)
            self._ch.basic_publish(
                "",
                queue,
                encode(start),
                pika.BasicProperties(delivery_mode=_PERSISTENT),
                mandatory=True,
            )

    def wait(
        self, execution_id: str, deadline: float | None, on_status: OnStatus
    ) -> CompletionMessage | None:
        """Pass each status of `execution_id` to `on_status` until its completion (returned),
        or None once the monotonic `deadline` has passed."""
        self._execution_id, self._on_status, self._done = execution_id, on_status, None
        with self.endpoint.errors("lost the connection while waiting"):
            while self._done is None:
                left = _POLL_SECONDS if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return None
                self._conn.process_data_events(time_limit=min(left, _POLL_SECONDS))
        return self._done

    def close(self) -> None:
        """Close the connection (the broker deletes the private queue with it)."""
        conn, self._conn, self._ch = self._conn, None, None
        if conn is not None and conn.is_open:
            with contextlib.suppress(*AMQP_ERRORS):
                conn.close()

    def _on_message(self, _ch: Any, method: Any, _props: Any, body: bytes) -> None:
        if self._done is not None:
            return  # a copy that arrived in the same read as the completion
        try:
            if method.routing_key == COMPLETION_QUEUE:
                done = _completion_decoder.decode(body)
                if done.execution_id == self._execution_id:
                    self._done = done
                return
            status = _status_decoder.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return  # another producer's message on a shared key; never ours to judge
        if status.execution_id == self._execution_id and self._on_status is not None:
            self._on_status(status)
