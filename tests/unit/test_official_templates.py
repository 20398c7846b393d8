"""The eight official Rune templates (tests/templates, copied unchanged from
rune-org/rune-templates) through the `runeworker` command as a real process: each one validates as
the file it is; those that only need HTTP run to their completion with `runeworker run`, their
public API replaced by a loopback stand-in answering what that API answers (only the URL's
scheme and host are rewritten in the converted definition, tests/templatekit.py). The agent
templates run in tests/unit/test_agent_templates.py, sheets-gmail-tracker in
tests/unit/test_template_tracker.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apimock import MockApi, Reply, serving
from templatekit import (
    GITHUB_HOME,
    HELP_WANTED_QUERY,
    ISSUES,
    OFFICIAL,
    TEMPLATES,
    ZEN,
    definition,
    retarget,
    runeworker,
    template,
    uptime,
)

from runeworker.canvas import needs_credential


@pytest.fixture
def api() -> Iterator[MockApi]:
    yield from serving()


def run_template(name: str, api: MockApi, tmp_path: Path) -> tuple[list[dict[str, Any]], Any]:
    """`runeworker run --json` of template `name` retargeted at `api`: (statuses, completion)."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(retarget(definition(name), api.url)))
    proc = runeworker("run", path, "--json", cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    *statuses, done = [json.loads(line) for line in proc.stdout.splitlines()]
    assert done["status"] == ("completed" if proc.returncode == 0 else "halted"), proc.stderr
    return statuses, done


def trail(statuses: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s["node_name"], s["status"]) for s in statuses]


def ran(*names: str) -> list[tuple[str, str]]:
    return [(n, st) for n in names for st in ("running", "success")]


# -- validate -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OFFICIAL)
def test_every_official_template_validates_as_shipped(name: str, tmp_path: Path) -> None:
    graph = template(name)["workflow_data"]
    nodes = [n for n in graph["nodes"] if n["type"] != "stickyNote"]
    path = TEMPLATES / f"{name}.json"
    proc = runeworker("validate", path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"ok: {path} ({len(nodes)} nodes, {len(graph['edges'])} edges)\n"
    notes = proc.stderr.splitlines()
    assert notes[0] == f"note: {path}: a Rune template, converted as the Rune web app does"
    uncredentialed = [n["data"]["label"] for n in nodes if needs_credential(n["type"])]
    assert [line.split()[2] for line in notes[1:]] == uncredentialed
    assert all("holds no credential" in line for line in notes[1:])


def test_a_bare_canvas_graph_validates_and_runs(tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(template("maintenance-window-check")["workflow_data"]))
    proc = runeworker("validate", path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "a Rune canvas graph, converted" in proc.stderr
    proc = runeworker("run", path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("workflow completed in ")


def test_validate_names_the_problem_of_a_broken_template(tmp_path: Path) -> None:
    broken = template("fortune-cookie")
    broken["workflow_data"]["edges"][1]["target"] = "nowhere"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    proc = runeworker("validate", path, cwd=tmp_path)
    assert proc.returncode == 1
    assert "nowhere" in proc.stderr and "invalid:" in proc.stderr


def test_a_template_of_the_wrong_shape_is_refused_not_crashed(tmp_path: Path) -> None:
    bad = template("fortune-cookie")
    bad["workflow_data"]["nodes"][1]["type"] = "smtp"  # the request node made a mail node
    bad["workflow_data"]["nodes"][1]["data"]["to"] = 1  # whose recipient is a number
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    for command in ("validate", "run"):
        proc = runeworker(command, path, cwd=tmp_path)
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr
        assert "data.to must be a string" in proc.stderr


# -- run, HTTP only -------------------------------------------------------------------------------


def test_fortune_cookie_logs_githubs_zen(api: MockApi, tmp_path: Path) -> None:
    api.reply("GET", "/zen", Reply(ZEN))
    statuses, done = run_template("fortune-cookie", api, tmp_path)
    assert [(r.method, r.path, r.query) for r in api.requests] == [("GET", "/zen", {})]
    assert trail(statuses) == ran("fortune_cookie", "Log")
    context = done["final_context"]
    assert context["$fortune_cookie"]["status"] == 200
    assert context["$fortune_cookie"]["body"] == ZEN.decode()
    assert context["$Log"]["message"] == f"Your fortune cookie says: {ZEN.decode()}"
    assert context["$Log"]["level"] == "info"


def test_github_status_up_sends_no_mail(api: MockApi, tmp_path: Path) -> None:
    api.reply("GET", "/", Reply(GITHUB_HOME, content_type="text/html; charset=utf-8"))
    statuses, done = run_template("github-status", api, tmp_path)
    assert [(r.method, r.path) for r in api.requests] == [("GET", "/")]
    assert trail(statuses) == ran("github_status", "If")
    context = done["final_context"]
    assert context["$github_status"]["status"] == 200
    assert "<title>GitHub" in context["$github_status"]["body"]
    assert context["$If"] == {"result": False, "expression": "200 != 200"}
    assert "$SMTP" not in context  # the If has no false edge: the execution ends there


def test_github_status_down_halts_at_the_request(api: MockApi, tmp_path: Path) -> None:
    """The template's request raises on 4xx and 5xx, so a GitHub that answers 503 fails the
    request node (upstream's http node does the same) and the mail branch never runs."""
    unicorn = Reply(b"<html><body>No server is currently available</body></html>", status=503)
    api.reply("GET", "/", unicorn)
    statuses, done = run_template("github-status", api, tmp_path)
    assert trail(statuses) == [("github_status", "running"), ("github_status", "failed")]
    assert done["failure_reason"].startswith("node github_status (")
    assert "503" in statuses[-1]["error"]["message"]


def test_help_wanted_issue_finder_lists_the_issues(api: MockApi, tmp_path: Path) -> None:
    answer = {"total_count": 2, "incomplete_results": False, "items": ISSUES}
    api.reply("GET", "/search/issues", Reply(answer))
    statuses, done = run_template("help-wanted-issue-finder", api, tmp_path)
    (request,) = api.requests
    assert (request.method, request.path, request.query) == (
        "GET",
        "/search/issues",
        HELP_WANTED_QUERY,
    )
    assert trail(statuses) == ran("fetch_help_wanted_issues", "If", "contribute_to_rune")
    context = done["final_context"]
    assert context["$If"] == {"result": True, "expression": "2 > 0"}
    message = context["$contribute_to_rune"]["message"]
    head, listed = message.split("\n", 1)
    assert head == "List of issues to contribute to:"
    assert json.loads(listed) == ISSUES
    assert "$all_good" not in context


def test_help_wanted_issue_finder_without_issues(api: MockApi, tmp_path: Path) -> None:
    empty = {"total_count": 0, "incomplete_results": False, "items": []}
    api.reply("GET", "/search/issues", Reply(empty))
    statuses, done = run_template("help-wanted-issue-finder", api, tmp_path)
    assert trail(statuses) == ran("fetch_help_wanted_issues", "If", "all_good")
    assert done["final_context"]["$all_good"]["message"] == "the rune team has it under control."
    assert "$contribute_to_rune" not in done["final_context"]


@pytest.mark.parametrize(
    ("percent", "branch", "message"),
    [(99.9995, "five_9s", "5 9's achieved"), (99.95, "not_five_9s", "5 9's not achieved yet")],
)
def test_uptime_threshold_check_takes_the_branch_of_the_percentage(
    api: MockApi, tmp_path: Path, percent: float, branch: str, message: str
) -> None:
    api.reply("GET", "/api/public/example", Reply(uptime(percent)))
    statuses, done = run_template("uptime-threshold-check", api, tmp_path)
    assert [(r.method, r.path) for r in api.requests] == [("GET", "/api/public/example")]
    assert trail(statuses) == ran("fetch_uptime", "If", branch)
    context = done["final_context"]
    assert context["$If"] == {"result": percent >= 99.999, "expression": f"{percent} >= 99.999"}
    assert context[f"${branch}"]["message"] == message
    assert sorted(k for k in context if k.endswith("9s")) == [f"${branch}"]


def test_maintenance_window_check_runs_from_the_template_file(tmp_path: Path) -> None:
    """No HTTP: the template file itself is given to `runeworker run`."""
    proc = runeworker("run", TEMPLATES / "maintenance-window-check.json", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    *statuses, done = [json.loads(line) for line in proc.stdout.splitlines()]
    context = done["final_context"]
    hour = context["$dateTimeParse"]["hour"]
    late = hour >= 22
    branch, message = ("Log", "Maintenance Window") if late else ("Log_2", "Normal Window")
    assert trail(statuses) == ran("dateTimeNow", "dateTimeParse", "If", branch)
    assert context["$If"]["result"] is late
    assert context[f"${branch}"]["message"] == message
    assert context["$dateTimeNow"]["result"].endswith("Z")  # the format in UTC


def test_a_node_that_needs_a_credential_fails_with_its_own_error(
    api: MockApi, tmp_path: Path
) -> None:
    """A template carries no credential: the agent of daily-rss-digest fails as it always does
    without a key, after the feed was fetched."""
    api.reply("GET", "/frontpage", Reply(b'<rss version="2.0"><channel/></rss>'))
    statuses, done = run_template("daily-rss-digest", api, tmp_path)
    assert trail(statuses) == [*ran("HTTP"), ("Agent", "running"), ("Agent", "failed")]
    assert (
        statuses[-1]["error"]["message"] == "agent: gemini provider requires an api_key credential"
    )
    assert done["failure_reason"].startswith("node Agent (")


# -- convert --------------------------------------------------------------------------------------


def test_convert_prints_the_definition_and_names_the_nodes_without_credential(
    tmp_path: Path,
) -> None:
    proc = runeworker("convert", TEMPLATES / "github-status.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == definition("github-status")
    assert proc.stderr == "note: node SMTP (smtp) holds no credential\n"
    converted = tmp_path / "github-status.json"
    converted.write_text(proc.stdout)
    proc = runeworker("convert", converted, cwd=tmp_path)
    assert proc.returncode == 2
    assert "not a Rune template nor a canvas graph" in proc.stderr
    proc = runeworker("validate", converted, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""  # a definition is read as it is
