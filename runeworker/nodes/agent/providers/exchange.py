"""One request to an LLM API: timed and counted (`runeworker.engine.registry.Meter`), its
failure turned into a NodeError that says what went wrong and where."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from runeworker.engine.registry import Meter
from runeworker.errors import NodeError
from runeworker.masking import mask_url
from runeworker.nodes.agent.conversation import Usage
from runeworker.nodes.agent.failure import describe

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    """Where one provider's requests go, and what they are counted under."""

    provider: str
    model: str
    base_url: str  # for messages (its password masked)
    timeout: float  # of one request, for messages
    meter: Meter
    # the SDK's exceptions for "no answer" (refused, unresolvable, timed out)
    unreachable: tuple[type[BaseException], ...] = ()

    def where(self) -> str:
        """The API named for a person: its URL and the setting that chooses it."""
        key = f"agent.{self.provider}_base_url"
        env = f"RUNEWORKER_AGENT_{self.provider.upper()}_BASE_URL"
        return f"the {self.provider} API at {mask_url(self.base_url)} (set by {key} or {env})"


async def exchange(
    endpoint: Endpoint, send: Callable[[], Awaitable[T]], usage: Callable[[T], Usage]
) -> T:
    """Await `send()` (one request, with the SDK's own retries) and count it."""
    labels = (endpoint.provider, endpoint.model)
    meter = endpoint.meter
    started = time.monotonic()
    try:
        response = await send()
    except Exception as exc:
        meter.count("llm_requests", (*labels, "error"))
        meter.observe("llm_request_seconds", labels, time.monotonic() - started)
        if isinstance(exc, NodeError):  # an answer found wanting as it came (gemini's hook)
            raise
        raise NodeError(_failure(endpoint, exc)) from exc
    meter.count("llm_requests", (*labels, "success"))
    meter.observe("llm_request_seconds", labels, time.monotonic() - started)
    used = usage(response)
    meter.count("llm_tokens", (*labels, "prompt"), used.prompt)
    meter.count("llm_tokens", (*labels, "completion"), used.completion)
    return response


def _failure(endpoint: Endpoint, exc: BaseException) -> str:
    if isinstance(exc, endpoint.unreachable):
        if "timeout" in type(exc).__name__.lower():
            reason = f"no answer within {endpoint.timeout:g} s (agent.request_timeout)"
        else:
            reason = describe(exc)
        return f"agent: cannot reach {endpoint.where()}: {reason}"
    return f"agent: {endpoint.provider} request failed: {describe(exc)}"


def malformed(provider: str, what: str) -> NodeError:
    """The failure for an answer that is not in the API's shape (`what`: where it is not)."""
    return NodeError(f"agent: {provider} returned a malformed answer: {what}")


def count(value: object) -> int:
    """A token count as an API gives it; anything else (absent, null, text) counts 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0
