"""What every provider needs to open a chat, and the API key rule they share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runeworker.engine.registry import Meter, NodeSettings
from runeworker.nodes.agent.conversation import ToolSpec
from runeworker.nodes.agent.params import Message, ModelConfig


@dataclass(frozen=True)
class Setup:
    """One run's model, conversation seed and tools, with the operator's settings."""

    model: ModelConfig
    api_key: str  # "" when the node has no credential
    system_prompt: str
    history: tuple[Message, ...]
    prompt: Message
    tools: tuple[ToolSpec, ...]
    settings: NodeSettings
    meter: Meter

    @property
    def configured_base_url(self) -> str:
        """The operator's base URL for this provider ("" = the public API)."""
        s = self.settings
        urls = {
            "gemini": s.agent_gemini_base_url,
            "openai": s.agent_openai_base_url,
            "anthropic": s.agent_anthropic_base_url,
        }
        return urls[self.model.provider]


def api_key(credentials: Mapping[str, Any]) -> str:
    """The API key of the node credential: `api_key`, else `key` (upstream's pickAPIKey in
    model_factory.go; the executor hands the values flat, with the credential's type)."""
    for name in ("api_key", "key"):
        value = credentials.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""
