"""Celery on `runeworker bench`'s workload: chains of K cheap tasks, prefork pool, late acks.

    python deploy/compare/celery_chains.py --processes 1 --prefetch 10 --rounds 3

This file is both the Celery app (the worker imports it as `celery_chains`) and the driver
(run as a script: it starts `celery worker` with P pool processes, publishes N chains, and
measures; see harness.py). Settings, from Celery's documentation:

* `task_acks_late = True`: a task message is acknowledged after the task returned, not when
  it is received (docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late),
  runeworker's behaviour (it acks with the step's results).
* `worker_prefetch_multiplier = X`: the worker's one consumer prefetches X x P messages
  (.../configuration.html#worker-prefetch-multiplier), as P runeworker children prefetch X each.
* `task_ignore_result = True` and no result backend: a chain does not need one; the worker
  sends the next task of the chain with the result as its first argument
  (docs.celeryq.dev/en/stable/userguide/canvas.html#chains).
* Prefork pool with concurrency P (docs.celeryq.dev/en/stable/userguide/workers.html#concurrency);
  gossip, mingle and event heartbeats off: they are cluster chatter, not per-task work.
* Messages persistent and queues durable: Celery's defaults
  (.../configuration.html#task-default-delivery-mode).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import harness
from celery import Celery, chain

QUEUE = "compare.celery"

app = Celery("compare", broker=harness.RABBITMQ_URL)
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # publisher confirms when asked (COMPARE_CONFIRM=1): the `confirm_publish` option of
    # kombu's py-amqp transport (kombu docs, reference "kombu.transport.pyamqp")
    broker_transport_options={"confirm_publish": harness.CONFIRM},
)


@app.task(name="compare.step")
def step(payload: dict[str, Any], k: int, last: bool = False) -> dict[str, Any] | None:
    """One step of the chain; the last one reports the workflow complete."""
    payload = harness.step_work(payload, k)
    if last:
        harness.report_done(payload)
        return None  # as in the Dramatiq script: the last step has no successor
    return payload


def main() -> int:
    args = harness.arguments("celery")

    def publish(workflow: str) -> None:
        first = step.s(harness.make_payload(workflow, args.context), 1, args.nodes == 1)
        rest = [step.s(k, k == args.nodes) for k in range(2, args.nodes + 1)]
        chain(first, *rest).apply_async()

    def worker(done_key: str, log: Path) -> harness.Worker:
        cmd = [
            sys.executable, "-m", "celery", "-A", "celery_chains", "worker",
            "--pool", "prefork", "--concurrency", str(args.processes),
            "--prefetch-multiplier", str(args.prefetch), "--queues", QUEUE,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING",
        ]  # fmt: skip
        # one consumer: the main process reads the queue and hands tasks to the pool
        return harness.Worker(cmd, QUEUE, 1, done_key, log)

    return harness.run("celery", args, worker, publish, [QUEUE])


if __name__ == "__main__":
    sys.exit(main())
