"""The LLM providers: one module per API, each imported when a run needs it (its SDK is in
the optional extra, `runeworker.nodes.agent.extra`)."""

from __future__ import annotations

from runeworker.nodes.agent.conversation import Chat
from runeworker.nodes.agent.extra import required
from runeworker.nodes.agent.providers.setup import Setup


def open_chat(setup: Setup) -> Chat:
    """A chat with the provider `setup.model.provider` names (checked by the parameters)."""
    provider = setup.model.provider
    with required():
        if provider == "gemini":
            from runeworker.nodes.agent.providers import gemini

            return gemini.open_chat(setup)
        if provider == "openai":
            from runeworker.nodes.agent.providers import openai

            return openai.open_chat(setup)
        from runeworker.nodes.agent.providers import anthropic

        return anthropic.open_chat(setup)
