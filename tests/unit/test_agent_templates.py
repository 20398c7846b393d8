"""The two official templates that use the agent node (tests/agent_templates.py), end to end
against loopback mocks: the weather API or the feed, Gemini on Vertex AI, a mail relay. In
process (LocalRunner) and as `runeworker run` in a subprocess, configured by the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_templates import FEED, GEMINI_KEY, MODEL, WEATHER, rss_digest, weather_briefing
from llmkit import Mailbox, Mock, Text, Turn, llm, mail_relay, serve

from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.registry import NodeSettings
from runeworker.engine.state import MemoryStore

VERTEX_PATH = f"/v1beta1/publishers/google/models/{MODEL}:generateContent"
BRIEFING = "Feels like 12°C: take a light jacket."
DIGEST = "Today on HN: a Python workflow worker."


@dataclass
class Case:
    """One template: its definition builder, its public API's answer, what the model is told
    and answers, and where the mail's body comes from."""

    build: Callable[[str, int], dict[str, Any]]
    path: str
    answer: Any
    prompt: str
    reply: str
    subject: str


CASES = {
    "daily-weather-briefing": Case(
        weather_briefing,
        "/London?format=j1",
        WEATHER,
        "Based on today's weather: 12 in celsius. Craft an email to the user.",
        BRIEFING,
        "Today's weather briefing",
    ),
    "daily-rss-digest": Case(
        rss_digest,
        "/frontpage",
        Text("application/rss+xml; charset=utf-8", FEED),
        f"Craft a message based on today's rss: {FEED} with the hottest topics.",
        DIGEST,
        "Today's hot topics from HN",
    ),
}


@dataclass
class Stage:
    """The mocks one template run talks to."""

    public: Mock
    gemini: Mock
    mail: Mailbox
    definition: dict[str, Any]


@contextmanager
def stage(case: Case) -> Iterator[Stage]:
    with ExitStack() as stack:
        public = stack.enter_context(serve(lambda request: (200, case.answer)))
        gemini = stack.enter_context(llm("gemini", Turn(text=case.reply, usage=(120, 20))))
        mail = stack.enter_context(mail_relay())
        yield Stage(public, gemini, mail, case.build(public.url, mail.port))


def check(case: Case, stage: Stage) -> None:
    (fetch,) = stage.public.requests
    assert (fetch.method, fetch.path) == ("GET", case.path)
    (ask,) = stage.gemini.requests
    assert ask.path == VERTEX_PATH  # backend "vertex" with an API key: Vertex AI express
    assert ask.headers["x-goog-api-key"] == GEMINI_KEY
    assert ask.body["contents"] == [{"role": "user", "parts": [{"text": case.prompt}]}]
    assert ask.body["generationConfig"] == {"temperature": 0.2}
    assert "tools" not in ask.body
    ((sender, recipients, message),) = stage.mail.mails
    assert sender == "sender@mail.com" and len(recipients) == 1
    assert message["Subject"] == case.subject
    assert message.get_content().strip() == case.reply


@pytest.mark.parametrize("name", CASES)
def test_template_in_process(name: str) -> None:
    case = CASES[name]
    with stage(case) as s:
        settings = NodeSettings(agent_gemini_base_url=s.gemini.url)
        statuses: list[Any] = []
        runner = LocalRunner(Executor(MemoryStore(), settings=settings), on_status=statuses.append)
        done = runner.run(start_message(json.dumps(s.definition).encode()))
        assert done is not None and done.status == "completed", done and done.failure_reason
        check(case, s)
    trail = [(st.node_name, st.status) for st in statuses]
    names = [n["name"] for n in s.definition["nodes"][1:]]
    assert trail == [(n, st) for n in names for st in ("running", "success")]
    agent = done.final_context["$Agent"]
    assert agent == {
        "messages": [{"role": "model", "content": case.reply}],
        "final_response": case.reply,
        "tool_calls": None,  # no tool called: null, as Go writes its nil slice
        "model": MODEL,
        "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140},
    }


@pytest.mark.parametrize("name", CASES)
def test_template_with_runeworker_run(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    with stage(case) as s:
        workflow = tmp_path / f"{name}.json"
        workflow.write_text(json.dumps(s.definition))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNEWORKER_")}
        env["RUNEWORKER_AGENT_GEMINI_BASE_URL"] = s.gemini.url
        proc = subprocess.run(
            [sys.executable, "-m", "runeworker", "run", str(workflow)],
            capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        check(case, s)
    lines = proc.stdout.splitlines()
    assert [line.split()[1:3] for line in lines[:-1]] == [
        [n["name"], st] for n in s.definition["nodes"][1:] for st in ("running", "success")
    ]
    assert lines[-1].startswith("workflow completed in ")
    assert GEMINI_KEY not in proc.stdout + proc.stderr
