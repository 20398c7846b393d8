"""The official template sheets-gmail-tracker (rune-org/rune-templates, copied in tests/templates)
run end to end by `runeworker run` as a real process, its Google APIs served by a loopback
stand-in through `RUNEWORKER_INTEGRATIONS_*_BASE_URL`: the sheet is read, every employee goes
through the agent (a deterministic stand-in, tests/agentstandin.py) and the conditional, and the
one employee below 90 % gets a Gmail message."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apimock import MockApi, Reply, serving
from templatekit import definition, with_credentials

TESTS = Path(__file__).resolve().parents[1]
TOKEN = "ya29.tracker-access-token"
GOOGLE = {"id": "cred-g", "name": "Google", "type": "oauth2"}
GOOGLE["values"] = {"access_token": TOKEN, "token_type": "Bearer"}  # type: ignore[assignment]
READ = "integration.google.sheets.read_range"
SEND = "integration.google.gmail.send_email"
SHEET = "1HDiV85V7sHnA_WR2L4dSGYypLiNq6_9x6H6Lcm4SvRI"  # the template's own sheet id
READ_NODE = "cf31d43a-6a5d-4605-9ab8-65d8e1c4fee6"
READ_PATH = f"/sheets/v4/spreadsheets/{SHEET}/values/Sheet1%21A2:Z"
SEND_PATH = "/gmail/gmail/v1/users/me/messages/send"
ROWS = [["Ada Lovelace", "ada@example.com", "20"], ["Bob Idle", "bob@example.com", "9"]]
ROWS.append(["Cy Busy", "cy@example.com", "19"])


def tracker() -> dict[str, Any]:
    """The template's definition as the Rune API sends it, Google credential resolved."""
    return with_credentials(definition("sheets-gmail-tracker"), {READ: GOOGLE, SEND: GOOGLE})


@pytest.fixture
def api() -> Iterator[MockApi]:
    yield from serving()


@pytest.fixture
def google(api: MockApi) -> MockApi:
    """Sheets answers the employee rows, Gmail accepts the message."""
    values = {"range": "Sheet1!A2:Z4", "majorDimension": "ROWS", "values": ROWS}
    api.reply("GET", READ_PATH, Reply(values))
    api.reply("POST", SEND_PATH, Reply({"id": "msg-1", "labelIds": ["SENT"]}))
    return api


def runeworker(command: str, path: Path, api: MockApi) -> subprocess.CompletedProcess[str]:
    """`runeworker <command> <path> [--json]` with the stand-in agent and the Google base URLs
    of the environment (and nothing else of this process's RUNEWORKER_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNEWORKER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env["RUNEWORKER_EXTRA_NODE_MODULES"] = "agentstandin"
    env["RUNEWORKER_INTEGRATIONS_SHEETS_BASE_URL"] = f"{api.url}/sheets"
    env["RUNEWORKER_INTEGRATIONS_GMAIL_BASE_URL"] = f"{api.url}/gmail"
    args = [sys.executable, "-m", "runeworker", command, str(path)]
    args += ["--json"] if command == "run" else []
    return subprocess.run(
        args, env=env, cwd=path.parent, capture_output=True, text=True, timeout=120, check=False
    )


def write(tmp_path: Path, definition: dict[str, Any]) -> Path:
    path = tmp_path / "sheets-gmail-tracker.json"
    path.write_text(json.dumps(definition))
    return path


def decoded(raw: str) -> email.message.EmailMessage:
    data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_the_template_converts_to_the_nodes_the_worker_runs() -> None:
    definition = tracker()
    names = ["Trigger", "Get_Employee_Data", "Each_User", "Agent", "Today_Date"]
    assert [n["name"] for n in definition["nodes"]] == [*names, "Should_Alert", "Send_Email"]
    by_name = {n["name"]: n for n in definition["nodes"]}
    assert by_name["Get_Employee_Data"]["parameters"] == {
        "range": "Sheet1!A2:Z",
        "spreadsheet_id": SHEET,
    }
    assert by_name["Each_User"]["parameters"] == {"input_array": "$Get_Employee_Data.body.values"}
    assert by_name["Should_Alert"]["type"] == "conditional"
    assert set(by_name["Should_Alert"]["parameters"]) == {"true_edge_id", "expression"}
    assert [n["content"][:24] for n in definition["notes"]] == ["This is fetching data fr"]


def test_validate_accepts_the_template(tmp_path: Path, api: MockApi) -> None:
    proc = runeworker("validate", write(tmp_path, tracker()), api)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ") and "(7 nodes, 6 edges)" in proc.stdout


def test_validate_names_a_missing_integration_argument(tmp_path: Path, api: MockApi) -> None:
    definition = tracker()
    reader = next(n for n in definition["nodes"] if n["type"] == READ)
    del reader["parameters"]["spreadsheet_id"]
    proc = runeworker("validate", write(tmp_path, definition), api)
    assert proc.returncode == 1
    assert (
        f"invalid: node {reader['id']}: required parameter 'spreadsheet_id' is missing"
        in proc.stderr
    )


def test_runeworker_run_reads_the_sheet_and_mails_the_employee_below_90_percent(
    tmp_path: Path, google: MockApi
) -> None:
    proc = runeworker("run", write(tmp_path, tracker()), google)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    *statuses, done = [json.loads(line) for line in proc.stdout.splitlines()]
    assert done["status"] == "completed"
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr

    read, send = google.requests
    assert (read.method, read.path, read.query) == ("GET", READ_PATH, {})
    assert (send.method, send.path) == ("POST", SEND_PATH)
    assert {r.headers["authorization"] for r in google.requests} == {f"Bearer {TOKEN}"}
    message = decoded(send.json["raw"])
    assert (message["To"], message["Subject"]) == ("bob@example.com", "Alert")
    assert message.get_content().strip() == (
        "Dear Bob Idle, you logged 9 of 20 working days this month. Please log your time."
    )

    ends = [(s["node_name"], s["status"]) for s in statuses if s["status"] != "running"]
    assert ends.count(("Agent", "success")) == 3 and ends.count(("Should_Alert", "success")) == 3
    assert ends.count(("Send_Email", "success")) == 1
    assert {status for _name, status in ends} == {"success"}
    sent = next(s for s in statuses if s["node_name"] == "Send_Email" and s["status"] == "success")
    assert sent["output"]["status"] == 200
    assert sent["output"]["body"] == {"id": "msg-1", "labelIds": ["SENT"]}


def test_runeworker_run_fails_naming_the_tool_when_sheets_refuses(
    tmp_path: Path, api: MockApi
) -> None:
    api.reply("GET", READ_PATH, Reply({"error": {"code": 403, "status": "PERMISSION_DENIED"}}, 403))
    proc = runeworker("run", write(tmp_path, tracker()), api)
    assert proc.returncode == 1
    done = json.loads(proc.stdout.splitlines()[-1])
    assert done["status"] == "halted"
    reason = f"node Get_Employee_Data ({READ_NODE}) failed: google sheets.read_range: "
    assert done["failure_reason"].startswith(reason + "integration request failed: status=403")
    assert [r.path for r in api.requests] == [READ_PATH]
