"""Integration nodes on the wire: a worker child (in a thread) on the real RabbitMQ and Redis runs
the official template sheets-gmail-tracker as the Rune API publishes it, its Google APIs served by
a loopback stand-in named in the `[integrations]` config; and a failing integration node publishes
its provider, tool and status but never its credential."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from agentstandin import standing_in
from apimock import MockApi, Reply, serving
from templatekit import definition, with_credentials
from wire import Wire, check_status, master, node_statuses, running_worker

pytestmark = pytest.mark.integration

TOKEN = "ya29.wire-access-token"
GOOGLE = {"id": "cred-g", "name": "Google", "type": "oauth2", "values": {"access_token": TOKEN}}
READ = "integration.google.sheets.read_range"
SEND = "integration.google.gmail.send_email"
SHEET = "1HDiV85V7sHnA_WR2L4dSGYypLiNq6_9x6H6Lcm4SvRI"  # the template's own sheet id
READ_PATH = f"/sheets/v4/spreadsheets/{SHEET}/values/Sheet1%21A2:Z"
SEND_PATH = "/gmail/gmail/v1/users/me/messages/send"
ROWS = [["Ada Lovelace", "ada@example.com", "20"], ["Bob Idle", "bob@example.com", "9"]]


@pytest.fixture
def google() -> Iterator[MockApi]:
    """The stand-in for the Sheets and Gmail APIs."""
    yield from serving()


@pytest.fixture
def wire(amqp_url: str, redis_url: str, redis_prefix: str, google: MockApi) -> Iterator[Wire]:
    """A worker whose [integrations] send Sheets and Gmail to `google`, the agent stood in for,
    and the test's side of the wire."""
    urls = {f"integrations.{s}_base_url": f"{google.url}/{s}" for s in ("sheets", "gmail")}
    with (
        standing_in(),
        running_worker(amqp_url, redis_url, redis_prefix, **urls),
        contextlib.closing(Wire(amqp_url)) as side,
    ):
        yield side


def tracker() -> dict[str, Any]:
    """The start message of the template, as the API publishes it (credential resolved)."""
    resolved = with_credentials(definition("sheets-gmail-tracker"), {READ: GOOGLE, SEND: GOOGLE})
    trigger = next(n["id"] for n in resolved["nodes"] if n["trigger"])
    return master(resolved["nodes"], resolved["edges"], current=trigger)


def test_sheets_gmail_tracker_over_the_wire(wire: Wire, google: MockApi) -> None:
    google.reply("GET", READ_PATH, Reply({"range": "Sheet1!A2:Z3", "values": ROWS}))
    google.reply("POST", SEND_PATH, Reply({"id": "msg-1"}))
    start = tracker()
    wire.publish_api(start)
    done = wire.completion(start["execution_id"], timeout=60)
    assert done["status"] == "completed", done.get("failure_reason")

    assert [(r.method, r.path) for r in google.requests] == [
        ("GET", READ_PATH),
        ("POST", SEND_PATH),
    ]
    assert {r.headers["authorization"] for r in google.requests} == {f"Bearer {TOKEN}"}
    raw = google.requests[1].json["raw"]
    assert b"To: bob@example.com\r\n" in base64.urlsafe_b64decode(raw + "==")

    reader = next(n["id"] for n in start["workflow_definition"]["nodes"] if n["type"] == READ)
    running, success = node_statuses(wire, start["execution_id"], reader, 2)
    check_status(running, "running", {"parameters"})
    check_status(success, "success", {"parameters", "output"})
    assert success["output"]["body"]["values"] == ROWS
    published = b"".join(g.raw for g in wire.statuses(start["execution_id"]))
    assert TOKEN.encode() not in published and TOKEN not in json.dumps(done)
    wire.no_second_completion(start["execution_id"], settle=0)


def test_a_failing_integration_node_names_provider_tool_and_status(
    wire: Wire, google: MockApi
) -> None:
    google.reply("GET", READ_PATH, Reply({"error": {"message": f"bad token {TOKEN}"}}, 401))
    start = tracker()
    wire.publish_api(start)
    done = wire.completion(start["execution_id"], timeout=60)
    assert done["status"] == "halted"
    reader = next(n["id"] for n in start["workflow_definition"]["nodes"] if n["type"] == READ)
    failed = node_statuses(wire, start["execution_id"], reader, 2)[-1]
    assert failed["status"] == "failed"
    error = failed["error"]
    assert error["message"].startswith(
        "google sheets.read_range: integration request failed: status=401"
    )
    assert error["details"] == {"provider": "google", "tool": "sheets.read_range", "status": 401}
    assert "bad token ***" in error["message"] and TOKEN not in json.dumps(failed)
    assert TOKEN not in json.dumps(done)
