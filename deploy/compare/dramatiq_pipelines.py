"""Dramatiq on `runeworker bench`'s workload: pipelines of K cheap actors on RabbitMQ.

    python deploy/compare/dramatiq_pipelines.py --processes 1 --prefetch 10 --rounds 3

This file is both the Dramatiq module (the worker imports it as `dramatiq_pipelines`) and the
driver (run as a script: it starts `dramatiq` with P processes, publishes N pipelines and
measures; see harness.py). Settings, from Dramatiq's documentation and source:

* `RabbitmqBroker` with its defaults: durable queues, persistent messages, no publisher confirms
  (`confirm_delivery=False`; dramatiq.io/reference.html, "RabbitmqBroker").
* `pipeline([...])`: the Pipelines middleware enqueues the next message with the result as its
  last argument after a message succeeded (dramatiq.io/cookbook.html#pipelines); no result
  backend is needed.
* `--threads 1`: one message at a time per process, like a runeworker child.
* `dramatiq_queue_prefetch = X`: the environment variable the worker reads for its consumer's
  prefetch (`QUEUE_PREFETCH` in dramatiq/worker.py; the default is twice the threads).
* A message is acknowledged after its actor ran and its middleware (the pipeline's enqueue
  included) returned: the worker thread hands it back to the consumer thread, which acks
  (`post_process_message` in dramatiq/worker.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import dramatiq
import harness
from dramatiq.brokers.rabbitmq import RabbitmqBroker

QUEUE = "compare.dramatiq"

# confirm_delivery only when asked (COMPARE_CONFIRM=1): every enqueue then waits for RabbitMQ
dramatiq.set_broker(RabbitmqBroker(url=harness.RABBITMQ_URL, confirm_delivery=harness.CONFIRM))


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def step(k: int, last: bool, payload: dict[str, Any]) -> dict[str, Any] | None:
    """One step of the pipeline (the payload comes last: the previous step's result)."""
    payload = harness.step_work(payload, k)
    if last:
        harness.report_done(payload)
        return None  # nothing to pipe: a value would be logged as discarded, once per workflow
    return payload


def main() -> int:
    args = harness.arguments("dramatiq")

    def publish(workflow: str) -> None:
        first = step.message(1, args.nodes == 1, harness.make_payload(workflow, args.context))
        rest = [step.message(k, k == args.nodes) for k in range(2, args.nodes + 1)]
        dramatiq.pipeline([first, *rest]).run()

    def worker(done_key: str, log: Path) -> harness.Worker:
        # dramatiq reads this lower-case name (QUEUE_PREFETCH in dramatiq/worker.py)
        os.environ["dramatiq_queue_prefetch"] = str(args.prefetch)  # noqa: SIM112
        cmd = [
            sys.executable, "-m", "dramatiq", "dramatiq_pipelines",
            "--processes", str(args.processes), "--threads", "1",
        ]  # fmt: skip
        # one consumer of the queue per process (plus one of its delay queue)
        return harness.Worker(cmd, QUEUE, args.processes, done_key, log)

    queues = [QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"]
    return harness.run("dramatiq", args, worker, publish, queues)


if __name__ == "__main__":
    sys.exit(main())
