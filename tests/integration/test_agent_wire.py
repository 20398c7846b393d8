"""The agent node over the wire: a worker child (in a thread) against the real RabbitMQ and
Redis runs the two official templates that use it (tests/agent_templates.py) against loopback
mocks of their public API, of Gemini and of a mail relay, as the Rune API starts them; and a
slow model outlasts the heartbeat with `running` published before the request."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from agent_templates import (
    FEED,
    GEMINI_KEY,
    MODEL,
    WEATHER,
    node_id,
    rss_digest,
    weather_briefing,
)
from llmkit import Request, Text, Turn, gemini_response, llm, mail_relay, serve
from wire import (
    STATUS,
    Wire,
    check_status,
    drain_from,
    master,
    node_statuses,
    running_worker,
    vhost_of,
    worker_connections,
)

pytestmark = pytest.mark.integration

CASES: dict[str, tuple[Callable[[str, int], dict[str, Any]], str, Any, str]] = {
    "daily-weather-briefing": (weather_briefing, "/London?format=j1", WEATHER, "Wear a jacket."),
    "daily-rss-digest": (
        rss_digest,
        "/frontpage",
        Text("application/rss+xml", FEED),
        "HN today: a Python worker.",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_template_over_the_wire(
    name: str, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    build, path, answer, reply = CASES[name]
    with (
        serve(lambda request: (200, answer)) as public,
        llm("gemini", Turn(text=reply, usage=(100, 9))) as gemini,
        mail_relay() as mail,
        running_worker(amqp_url, redis_url, redis_prefix, **{"agent.gemini_base_url": gemini.url}),
    ):
        defn = build(public.url, mail.port)
        m = master(defn["nodes"], defn["edges"], current=node_id(defn, "http"))
        eid = m["execution_id"]
        wire = Wire(amqp_url)
        try:
            wire.publish_api(m)
            done = wire.completion(eid, timeout=60)
            assert done["status"] == "completed", done
            running, success = node_statuses(wire, eid, node_id(defn, "agent"), 2)
            used = {"all_used_input_keys", "used_inputs"}  # $weather_in_london or $HTTP
            check_status(running, "running", {"parameters"} | used)
            check_status(success, "success", {"parameters", "output"} | used)
            assert success["output"] == {
                "messages": [{"role": "model", "content": reply}],
                "final_response": reply,
                "tool_calls": None,  # no tool called: null, as Go writes its nil slice
                "model": MODEL,
                "usage": {"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109},
            }
            assert done["final_context"]["$Agent"] == success["output"]
            published = [g.raw for g in wire.statuses(eid) + wire.completions(eid)]
            assert not any(GEMINI_KEY.encode() in raw for raw in published)
            wire.no_second_completion(eid)
        finally:
            wire.close()
    (fetch,) = public.requests
    assert fetch.path == path
    (ask,) = gemini.requests
    assert ask.path == f"/v1beta1/publishers/google/models/{MODEL}:generateContent"
    assert ask.headers["x-goog-api-key"] == GEMINI_KEY
    ((_sender, _to, message),) = mail.mails
    assert message.get_content().strip() == reply


def test_a_slow_model_outlasts_the_heartbeat(
    amqp_url: str, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 4 s model request with a 1 s heartbeat: `running` is on the status queue while the
    request waits, the connection is the same throughout, one completion."""
    caplog.set_level(logging.INFO, logger="runeworker")
    vhost = vhost_of(amqp_url)
    seen_while_waiting: list[str] = []
    wire = Wire(amqp_url)
    eid = ""

    def slow(request: Request) -> tuple[int, Any]:
        drain_from(amqp_url, wire, STATUS)  # what RTES can read while the model thinks
        seen_while_waiting.extend(s.body["status"] for s in wire.statuses(eid))
        time.sleep(4)  # the slow model is the point of the test
        return 200, gemini_response(Turn(text="done"), 0)

    try:
        with serve(slow) as gemini:
            settings = {"broker.heartbeat": 1, "agent.gemini_base_url": gemini.url}
            with running_worker(amqp_url, redis_url, redis_prefix, **settings):
                connections = worker_connections(vhost)
                assert [timeout for _name, timeout in connections] == [1]
                agent = weather_briefing("http://127.0.0.1:9/unused", 9)["nodes"][2]
                agent["parameters"]["messages"] = [{"role": "user", "content": "slowly"}]
                start = {"id": "start", "name": "Start", "type": "ManualTrigger", "trigger": True}
                edges = [{"id": "e", "src": "start", "dst": agent["id"]}]
                m = master([start, agent], edges, current=agent["id"])
                eid = m["execution_id"]
                wire.publish_api(m)
                done = wire.completion(eid, timeout=60)
                assert done["status"] == "completed", json.dumps(done)
                assert done["final_context"]["$Agent"]["final_response"] == "done"
                assert worker_connections(vhost) == connections
                wire.no_second_completion(eid)
    finally:
        wire.close()
    assert seen_while_waiting == ["running"]
    assert len(gemini.requests) == 1  # not retried, not redelivered
    assert [r for r in caplog.records if "connection lost" in r.getMessage()] == []
