"""Fault-injection suite: real `runeworker serve` processes, real RabbitMQ and Redis, faults
injected while a mix of workflows runs, and the figures that show nothing was lost or
duplicated. Run it with `python -m tests.faults.report` or `pytest -m faults`."""
