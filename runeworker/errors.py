"""The one error tree of runeworker. Standard library only, importable from anywhere."""

from __future__ import annotations


class RuneworkerError(Exception):
    """Base class of every error runeworker raises on purpose."""


class MessageError(RuneworkerError):
    """A wire message that cannot be decoded or is missing a required field."""


class WorkflowError(RuneworkerError):
    """A workflow definition that breaks a structural rule (ids, edges, cycles, types)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class ResolveError(RuneworkerError):
    """A template or `$reference` that cannot be resolved against the context."""


class NodeError(RuneworkerError):
    """A node failed. `code` is the wire error code, `details` an optional JSON object."""

    def __init__(
        self,
        message: str,
        code: str = "NODE_EXECUTION_FAILED",
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class UnreadableError(NodeError):
    """JSON a message carries that cannot be read into a value, found when a step first reads
    it (`runeworker.engine.depth.read`): fails the node that meets it, under the node's error
    policy."""


class DepthError(UnreadableError):
    """JSON nested deeper than `runeworker.engine.depth.MAX_DEPTH`: fails the node that meets
    it, under the node's error policy."""


class ConfigError(RuneworkerError):
    """A configuration file, variable or flag with a wrong key or value."""


class BrokerError(RuneworkerError):
    """RabbitMQ is unreachable or refused an operation."""


class CommitInDoubt(BrokerError):
    """A transaction commit was sent and failed: RabbitMQ may have applied all of it, part of
    it (queue by queue) or nothing (runeworker/child/receipts.py)."""


class StateError(RuneworkerError):
    """The state store (Redis) is unreachable or refused an operation."""


class StateLost(RuneworkerError):
    """A step found missing what the state store must hold for its execution: evicted by a
    Redis whose `maxmemory-policy` evicts, expired (`redis.key_ttl`), or gone with a flushed or
    replaced Redis. Not a `StateError`: Redis answers, and waiting brings nothing back. The
    store has kept the step's branch token live, marked lost, so that the step can fail the
    execution through the token protocol (`runeworker.engine.executor.Turn`): an `advance`
    with a failure records it; any other call for that token raises this again.

    `what` names the part that is missing: `execution` (no record of an execution whose
    message carries the `branch_token` of a running one), `branches` (its live branch tokens,
    while it has not ended), `barrier` (a merge or aggregator barrier it had begun)."""

    def __init__(self, execution_id: str, what: str, detail: str) -> None:
        super().__init__(detail)
        self.execution_id = execution_id
        self.what = what


# What `StateLost` says of each part of an execution's state that can be found missing.
_LOST: dict[str, str] = {
    "execution": (
        "the state store holds no record of execution {ex}, though the message's branch_token "
        "is that of a running execution"
    ),
    "branches": (
        "the live branch tokens of execution {ex} are gone from the state store, though it has "
        "not ended"
    ),
    "barrier": (
        "the {where} barrier of execution {ex} is gone from the state store, though branches "
        "had arrived at it"
    ),
}


def state_lost(execution_id: str, what: str, where: str = "") -> StateLost:
    """The `StateLost` of `execution_id` for `what` (`execution`, `branches`, `barrier`, the
    latter naming the barrier `where`)."""
    template = _LOST.get(what, "the {what} state of execution {ex} is gone from the state store")
    detail = template.format(ex=execution_id, what=what, where=where or "merge or aggregator")
    return StateLost(execution_id, what, detail)
