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
