"""Official templates over the wire: a worker child (in a thread) on the real RabbitMQ and Redis
runs fortune-cookie and help-wanted-issue-finder (tests/templates) converted by
`runeworker.canvas`, started as the Rune API starts them (services/api/src/workflow/queue.py:
`current_node` is the first successor of the trigger), their public API a loopback stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apimock import MockApi, Reply, serving
from templatekit import HELP_WANTED_QUERY, ISSUES, ZEN, definition, node_named, retarget
from wire import Wire, check_status, master, node_statuses

pytestmark = pytest.mark.integration


@pytest.fixture
def api() -> Iterator[MockApi]:
    yield from serving()


def published(name: str, api: MockApi) -> dict[str, Any]:
    """The start message of template `name` as the API publishes it."""
    defn = retarget(definition(name), api.url)
    (trigger,) = [n["id"] for n in defn["nodes"] if n["trigger"]]
    first = next(e["dst"] for e in defn["edges"] if e["src"] == trigger)
    message = master(defn["nodes"], defn["edges"], current=first)
    message["workflow_definition"]["notes"] = defn["notes"]
    return message


USED = {"all_used_input_keys", "used_inputs"}


def ran(wire: Wire, start: dict[str, Any], name: str, used: tuple[bool, bool]) -> dict[str, Any]:
    """The success status of node `name`, after its running one, both checked key by key;
    `used`: whether each reports the other nodes' outputs it read (a conditional resolves its
    raw expression while it runs, so only its success status has them)."""
    node = node_named(start["workflow_definition"], name)
    running, success = node_statuses(wire, start["execution_id"], node["id"], 2)
    check_status(running, "running", {"parameters"} | (USED if used[0] else set()))
    check_status(success, "success", {"parameters", "output"} | (USED if used[1] else set()))
    return success


def test_fortune_cookie_over_the_wire(wire: Wire, api: MockApi) -> None:
    api.reply("GET", "/zen", Reply(ZEN))
    start = published("fortune-cookie", api)
    wire.publish_api(start)
    done = wire.completion(start["execution_id"], timeout=60)
    assert done["status"] == "completed", done.get("failure_reason")
    assert [(r.method, r.path) for r in api.requests] == [("GET", "/zen")]
    fetch = ran(wire, start, "fortune_cookie", (False, False))
    assert (fetch["output"]["status"], fetch["output"]["body"]) == (200, ZEN.decode())
    log = ran(wire, start, "Log", (True, True))
    assert log["parameters"]["message"] == f"Your fortune cookie says: {ZEN.decode()}"
    assert done["final_context"]["$Log"] == log["output"]
    assert done["final_context"]["$fortune_cookie"] == fetch["output"]
    assert len(wire.statuses(start["execution_id"])) == 4
    wire.no_second_completion(start["execution_id"], settle=0)


def test_help_wanted_issue_finder_over_the_wire(wire: Wire, api: MockApi) -> None:
    answer = {"total_count": 2, "incomplete_results": False, "items": ISSUES}
    api.reply("GET", "/search/issues", Reply(answer))
    start = published("help-wanted-issue-finder", api)
    wire.publish_api(start)
    done = wire.completion(start["execution_id"], timeout=60)
    assert done["status"] == "completed", done.get("failure_reason")
    (request,) = api.requests
    assert request.query == HELP_WANTED_QUERY
    decided = ran(wire, start, "If", (False, True))
    assert decided["output"] == {"result": True, "expression": "2 > 0"}
    listed = ran(wire, start, "contribute_to_rune", (True, True))
    assert listed["output"]["message"].startswith("List of issues to contribute to:\n[{")
    statuses = wire.statuses(start["execution_id"])
    assert sorted(g.body["node_name"] for g in statuses) == sorted(
        2 * ["fetch_help_wanted_issues", "If", "contribute_to_rune"]
    )  # all_good never ran: the If followed its true edge only
    assert set(done["final_context"]) == {"$fetch_help_wanted_issues", "$If", "$contribute_to_rune"}
    wire.no_second_completion(start["execution_id"], settle=0)
