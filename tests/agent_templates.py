"""The two official templates that use the agent node, as worker definitions: what the Rune
web app's `canvasToWorkflowData` (apps/web/src/lib/workflow-dsl.ts) makes of
rune-org/rune-templates `templates/scheduling/daily-weather-briefing.json` and
`templates/social-media/daily-rss-digest.json`, with the credentials a user attaches before
running them (the API embeds them resolved) and the public URLs pointed at loopback mocks.

Node names, parameters, references and model settings are the templates'; the definitions
are written here, not copied.
"""

from __future__ import annotations

import itertools
from typing import Any

MODEL = "gemini-3.1-flash-lite-preview"
GEMINI_KEY = "AIza-template-key-0123456789"
# The weather API's answer (wttr.in's `format=j1` shape, trimmed) and the feed's.
WEATHER = {"current_condition": [{"FeelsLikeC": "12", "temp_C": "14", "weatherDesc": []}]}
FEED = (
    '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Hacker News'
    "</title><item><title>Show HN: a Python workflow worker</title></item></channel></rss>"
)


def _agent(system_prompt: str, content: str) -> dict[str, Any]:
    return {
        "id": "agent",
        "name": "Agent",
        "trigger": False,
        "type": "agent",
        "parameters": {
            "model": {"name": MODEL, "backend": "vertex", "provider": "gemini", "temperature": 0.2},
            "system_prompt": system_prompt,
            "messages": [{"role": "user", "content": content}],  # the editor's ui_id stripped
        },
        "credentials": {
            "id": "7",
            "name": "Gemini",
            "type": "gemini_api_key",
            "values": {"api_key": GEMINI_KEY},
        },
    }


def _http(name: str, url: str) -> dict[str, Any]:
    return {
        "id": "http",
        "name": name,
        "trigger": False,
        "type": "http",
        "parameters": {
            "method": "GET",
            "url": url,
            "timeout": "30",
            "retry": "0",
            "retry_delay": "0",
            "raise_on_status": "4xx,5xx",
        },
    }


def _smtp(to: str, subject: str, body: str, smtp_port: int) -> dict[str, Any]:
    return {
        "id": "smtp",
        "name": "SMTP",
        "trigger": False,
        "type": "smtp",
        "parameters": {"from": "sender@mail.com", "to": [to], "subject": subject, "body": body},
        "credentials": {
            "id": "8",
            "name": "Local relay",
            "type": "smtp",
            "values": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
        },
    }


def _definition(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    trigger = {
        "id": "schedule",
        "name": "Schedule",
        "trigger": True,
        "type": "ScheduledTrigger",
        "parameters": {"amount": 1, "unit": "days"},
    }
    chain = [trigger, *nodes]
    pairs = enumerate(itertools.pairwise(chain))
    edges = [{"id": f"e{i}", "src": a["id"], "dst": b["id"]} for i, (a, b) in pairs]
    return {"nodes": chain, "edges": edges}


def weather_briefing(weather_url: str, smtp_port: int) -> dict[str, Any]:
    """Schedule -> weather_in_london (http) -> Agent -> SMTP (body `$Agent.messages[0].content`)."""
    return _definition(
        [
            _http("weather_in_london", weather_url),
            _agent(
                "You are a helpful weather assistant. Based on the day's weather recommend in few "
                "words what the user should wear throughout the day and/or any needed precautions "
                "they should take.",
                "Based on today's weather: $weather_in_london.body.current_condition[0].FeelsLikeC "
                "in celsius. Craft an email to the user.",
            ),
            _smtp(
                "recipient@mail.com",
                "Today's weather briefing",
                "$Agent.messages[0].content",
                smtp_port,
            ),
        ]
    )


def rss_digest(feed_url: str, smtp_port: int) -> dict[str, Any]:
    """Schedule -> HTTP (the feed) -> Agent -> SMTP (body `$Agent.final_response`)."""
    return _definition(
        [
            _http("HTTP", feed_url),
            _agent(
                "you are a helpful assistant, your job is to brief the user with the top hacker "
                "news daily.",
                "Craft a message based on today's rss: $HTTP.body with the hottest topics.",
            ),
            _smtp(
                "recepient@mail.com",
                "Today's hot topics from HN",
                "$Agent.final_response",
                smtp_port,
            ),
        ]
    )
