"""The two official templates that use the agent node, as the Rune API publishes them: rune-org/
rune-templates `templates/scheduling/daily-weather-briefing.json` and
`templates/social-media/daily-rss-digest.json` (copied in tests/templates), converted by
`runeworker.canvas` as the web app converts them, with the credentials a user attaches before
running them (the API embeds them resolved) and their public URL's host pointed at a loopback
mock (tests/templatekit.py)."""

from __future__ import annotations

from typing import Any

from templatekit import definition, retarget, with_credentials

MODEL = "gemini-3.1-flash-lite-preview"
GEMINI_KEY = "AIza-template-key-0123456789"
# The weather API's answer (wttr.in's `format=j1` shape, trimmed) and the feed's.
WEATHER = {"current_condition": [{"FeelsLikeC": "12", "temp_C": "14", "weatherDesc": []}]}
FEED = (
    '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Hacker News'
    "</title><item><title>Show HN: a Python workflow worker</title></item></channel></rss>"
)
GEMINI = {"id": "7", "name": "Gemini", "type": "gemini_api_key", "values": {"api_key": GEMINI_KEY}}


def _resolved(name: str, base_url: str, smtp_port: int) -> dict[str, Any]:
    relay = {"host": "127.0.0.1", "port": smtp_port, "security": "none"}
    smtp = {"id": "8", "name": "Local relay", "type": "smtp", "values": relay}
    return with_credentials(retarget(definition(name), base_url), {"agent": GEMINI, "smtp": smtp})


def weather_briefing(base_url: str, smtp_port: int) -> dict[str, Any]:
    """Schedule -> weather_in_london (http GET /London?format=j1) -> Agent -> SMTP (body
    `$Agent.messages[0].content`)."""
    return _resolved("daily-weather-briefing", base_url, smtp_port)


def rss_digest(base_url: str, smtp_port: int) -> dict[str, Any]:
    """Schedule -> HTTP (GET /frontpage) -> Agent -> SMTP (body `$Agent.final_response`)."""
    return _resolved("daily-rss-digest", base_url, smtp_port)


def node_id(definition: dict[str, Any], type_: str) -> str:
    """The id of the definition's one node of `type_`."""
    (found,) = [n["id"] for n in definition["nodes"] if n["type"] == type_]
    return found
