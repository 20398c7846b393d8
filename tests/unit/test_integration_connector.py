"""The integration connector's failure paths and the provider rules beyond one plain request:
non-2xx answers, 429/503 with Retry-After, secrets in a URL path, the http node's limits, argument
decoding, Sheets' A1 ranges and sheet lookups, Jira's API versions and site resolution, Gmail's
raw message, Telegram's chat id, all against the `tests/apimock.py` stand-in."""

from __future__ import annotations

import base64
import email
import email.policy
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from apimock import MockApi, Reply, serving
from integrationkit import BOT, OAUTH, failure, run_kind, settings_for

from runeworker.engine import registry
from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import NodeStatusMessage, encode
from runeworker.engine.state import MemoryStore
from runeworker.errors import WorkflowError
from runeworker.integrations import atlassian, connector
from runeworker.nodes import http

registry.load()

READ = "integration.google.gmail.read_email"
READ_PATH = "/gmail/gmail/v1/users/me/messages/m1"
SEND = "integration.telegram.bot.send_message"
TOKEN = "123456:ABC-bot-secret"


@pytest.fixture
def api() -> Iterator[MockApi]:
    yield from serving()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The Retry-After waits, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(connector, "_sleep", slept.append)
    return slept


def read(api: MockApi, **settings: Any) -> dict[str, Any]:
    return run_kind(READ, {"id": "m1"}, OAUTH, settings_for(api, **settings))


def read_error(api: MockApi, **settings: Any) -> str:
    return str(failure(READ, {"id": "m1"}, OAUTH, settings_for(api, **settings)))


# -- non-2xx ----------------------------------------------------------------------------------


def test_non_2xx_fails_with_status_url_and_body_naming_provider_and_tool(api: MockApi) -> None:
    api.reply("GET", READ_PATH, Reply({"error": {"code": 404, "message": "Not Found"}}, 404))
    error = failure(READ, {"id": "m1"}, OAUTH, settings_for(api))
    body = '{"error":{"code":404,"message":"Not Found"}}'
    assert str(error) == (
        f"google gmail.read_email: integration request failed: status=404 "
        f"url={api.url}{READ_PATH} body={body}"
    )
    assert error.details == {"provider": "google", "tool": "gmail.read_email", "status": 404}


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        # Go's json.Marshal of the decoded body: keys sorted, <, > and & escaped
        (
            {"error": {"message": "<b>no</b> & bye", "code": 403, "status": "DENIED"}},
            ' body={"error":{"code":403,"message":"\\u003cb\\u003eno\\u003c/b\\u003e \\u0026 bye",'
            '"status":"DENIED"}}',
        ),
        (
            [{"z": 1, "a": [2, {"y": None, "b": True}]}],
            ' body=[{"a":[2,{"b":true,"y":null}],"z":1}]',
        ),
        (None, ""),  # a JSON null is Go's nil body: no body= at all
    ],
)
def test_non_2xx_json_body_is_quoted_as_go_marshals_it(
    api: MockApi, answer: Any, shown: str
) -> None:
    api.reply("GET", READ_PATH, Reply(answer, 400))
    assert read_error(api) == (
        f"google gmail.read_email: integration request failed: status=400 "
        f"url={api.url}{READ_PATH}{shown}"
    )


def test_non_2xx_text_body_is_quoted_as_text_and_cut(api: MockApi) -> None:
    api.reply("GET", READ_PATH, Reply(b"x" * 5000, 500))
    message = read_error(api)
    assert "status=500" in message and message.endswith("x... (5000 characters)")
    assert message.count("x") == 4096


# -- Retry-After ------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_after_that_delay(api: MockApi, waits: list[float]) -> None:
    api.reply("GET", READ_PATH, Reply({}, 429, {"Retry-After": "3"}), Reply({"id": "m1"}))
    out = read(api)
    assert (out["status"], out["body"]) == (200, {"id": "m1"})
    assert waits == [3.0]
    assert [(r.method, r.path) for r in api.requests] == [("GET", READ_PATH)] * 2


def test_503_with_a_past_http_date_is_retried_at_once(api: MockApi, waits: list[float]) -> None:
    past = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    api.reply("GET", READ_PATH, Reply({}, 503, past), Reply({"id": "m1"}))
    assert read(api)["status"] == 200
    assert waits == [0.0]


def test_retries_stop_after_retry_after_attempts(api: MockApi, waits: list[float]) -> None:
    api.reply("GET", READ_PATH, Reply({"slow": "down"}, 429, {"Retry-After": "1"}))
    message = read_error(api, integrations_retry_after_attempts=2)
    assert message.endswith('body={"slow":"down"} (still 429 after 2 Retry-After retries)')
    assert waits == [1.0, 1.0]
    assert len(api.requests) == 3


def test_a_retry_after_beyond_the_cap_fails_at_once(api: MockApi, waits: list[float]) -> None:
    api.reply("GET", READ_PATH, Reply({}, 503, {"Retry-After": "120"}))
    message = read_error(api, integrations_retry_after_max=10.0)
    assert message.endswith("(Retry-After 120 s exceeds integrations.retry_after_max 10 s)")
    assert waits == [] and len(api.requests) == 1


def test_a_retry_after_past_the_node_time_limit_fails_at_once(
    api: MockApi, waits: list[float]
) -> None:
    """`worker.node_timeout` bounds the whole node, not each exchange: a wait the limit
    cannot hold is not begun (the supervisor would kill the child as hung after it)."""
    api.reply("GET", READ_PATH, Reply({}, 429, {"Retry-After": "8"}))
    message = read_error(api, integrations_retry_after_max=10.0, node_timeout=5.0)
    assert message.endswith(
        "(Retry-After 8 s would pass the node time limit of 5 s, worker.node_timeout)"
    )
    assert waits == [] and len(api.requests) == 1


def test_retry_after_waits_count_against_the_node_time_limit(
    api: MockApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real waits of 0.3 s under a 0.5 s limit: the second would end past it."""
    import time

    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(connector, "_sleep", sleep)
    api.reply("GET", READ_PATH, Reply({}, 429, {"Retry-After": "0.3"}))
    message = read_error(api, integrations_retry_after_attempts=5, node_timeout=0.5)
    assert "would pass the node time limit of 0.5 s, worker.node_timeout)" in message, message
    assert slept == [0.3] and len(api.requests) == 2


@pytest.mark.parametrize(
    ("status", "headers", "attempts"),
    [(429, {}, 2), (500, {"Retry-After": "1"}, 2), (429, {"Retry-After": "1"}, 0)],
    ids=["429 without Retry-After", "500 is not retried", "retries disabled"],
)
def test_no_retry(
    api: MockApi, waits: list[float], status: int, headers: dict[str, str], attempts: int
) -> None:
    api.reply("GET", READ_PATH, Reply({}, status, headers))
    assert f"status={status}" in read_error(api, integrations_retry_after_attempts=attempts)
    assert waits == [] and len(api.requests) == 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 0 ", 0.0), ("-5", 0.0), ("soon", None), ("", None), ("nan", None)],
)
def test_retry_after_values(value: str, seconds: float | None) -> None:
    assert connector.retry_after({"Retry-After": value}) == seconds


# -- secrets in the path ----------------------------------------------------------------------


def test_telegram_token_is_in_the_path_only_and_hidden_in_errors(api: MockApi) -> None:
    path = f"/telegram/bot{TOKEN}/sendMessage"
    api.reply("POST", path, Reply({"ok": False, "description": "Unauthorized"}, 401))
    error = failure(SEND, {"chat_id": 1, "text": "hi"}, BOT, settings_for(api))
    assert str(error) == (
        "telegram bot.send_message: integration request failed: status=401 "
        f"url={api.url}/telegram/bot***/sendMessage "
        'body={"description":"Unauthorized","ok":false}'
    )
    assert api.only().path == path and "authorization" not in api.only().headers


def test_telegram_token_is_hidden_in_transport_errors(api: MockApi) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    settings = settings_for(api, urls={"telegram": f"http://127.0.0.1:{closed}"})
    message = str(failure(SEND, {"chat_id": 1, "text": "hi"}, BOT, settings))
    assert message.startswith("telegram bot.send_message: http request failed after 1 attempts")
    assert "/bot***/sendMessage" in message and TOKEN not in message and "ABC" not in message


def test_a_failing_telegram_node_publishes_no_token(api: MockApi) -> None:
    """Through the executor: the failed status and the completion hold no secret."""
    api.reply("POST", f"/telegram/bot{TOKEN}/sendMessage", Reply({"echo": TOKEN}, 400))
    node = {"id": "t", "name": "Tell", "type": SEND, "parameters": {"chat_id": 1, "text": "hi"}}
    node["credentials"] = {"id": "c1", "name": "bot", "type": "token", "values": {"token": TOKEN}}
    definition = encode({"nodes": [node], "edges": []})
    statuses: list[NodeStatusMessage] = []
    runner = LocalRunner(Executor(MemoryStore(), settings=settings_for(api)), statuses.append)
    done = runner.run(start_message(definition))
    assert done is not None and done.status == "halted"  # the node's error policy: halt
    published = b"".join(encode(s) for s in statuses) + encode(done)
    assert TOKEN.encode() not in published and b"bot***/sendMessage" in published
    failed = statuses[-1]
    assert [s.status for s in statuses] == ["running", "failed"]
    assert failed.error is not None and failed.error.details == {
        "provider": "telegram",
        "tool": "bot.send_message",
        "status": 400,
    }


@pytest.mark.parametrize(
    ("creds", "message"),
    [
        ({}, "telegram credentials are required"),
        ({"type": "token"}, "telegram bot token is required"),
    ],
)
def test_telegram_needs_a_bot_token(api: MockApi, creds: dict[str, Any], message: str) -> None:
    error = failure(SEND, {"chat_id": 1, "text": "hi"}, creds, settings_for(api))
    assert str(error) == f"telegram bot.send_message: {message}"
    assert api.requests == []


@pytest.mark.parametrize("key", ["access_token", "value"])
def test_telegram_token_from_other_credential_keys(api: MockApi, key: str) -> None:
    run_kind(SEND, {"chat_id": 1, "text": "hi"}, {"type": "api_key", key: TOKEN}, settings_for(api))
    assert api.only().path == f"/telegram/bot{TOKEN}/sendMessage"


# -- the http node's limits and credentials ---------------------------------------------------


def test_the_http_deny_list_holds_for_integrations(api: MockApi) -> None:
    message = read_error(api, http_deny_networks=("127.0.0.0/8",))
    assert "is in the denied network 127.0.0.0/8" in message
    assert message.startswith("google gmail.read_email: ")
    assert api.requests == []


def test_the_response_size_cap_holds_for_integrations(api: MockApi) -> None:
    api.reply("GET", READ_PATH, Reply({"big": "y" * 100}))
    assert "response body exceeds 50 bytes" in read_error(api, http_max_response_bytes=50)


def test_a_credential_the_request_core_cannot_apply_fails_naming_the_tool(api: MockApi) -> None:
    smtp = {"type": "smtp", "host": "mail", "password": "pw"}
    message = str(failure(READ, {"id": "m1"}, smtp, settings_for(api)))
    assert message.startswith("google gmail.read_email: credential type 'smtp' is not supported")
    assert api.requests == []


def test_without_credential_no_authorization_is_sent(api: MockApi) -> None:
    run_kind(READ, {"id": "m1"}, {}, settings_for(api))
    assert "authorization" not in api.only().headers


def http_params(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The parameters each request hands the http node, in order."""
    seen: list[dict[str, Any]] = []
    real = http.run
    monkeypatch.setattr(http, "run", lambda ctx: seen.append(ctx.params) or real(ctx))
    return seen


def test_get_updates_long_poll_extends_the_request_timeout(
    api: MockApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = http_params(monkeypatch)
    settings = settings_for(api, http_default_timeout=30.0)
    run_kind("integration.telegram.bot.get_updates", {"timeout": 50}, BOT, settings)
    run_kind("integration.telegram.bot.get_updates", {}, BOT, settings)
    assert [p.get("timeout") for p in seen] == [80.0, None]
    assert [r.json for r in api.requests] == [{"timeout": 50}, None]


def test_get_updates_huge_long_poll_is_sent_and_its_wait_capped(
    api: MockApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = http_params(monkeypatch)
    settings = settings_for(api, http_default_timeout=30.0)
    for wait in (10**12, 2**62):
        run_kind("integration.telegram.bot.get_updates", {"timeout": wait}, BOT, settings)
    assert [p.get("timeout") for p in seen] == [3630.0, 3630.0]
    assert [r.json for r in api.requests] == [{"timeout": 10**12}, {"timeout": 2**62}]


# -- argument decoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"row_count": "many"}, "argument 'row_count' must be a whole number, got 'many'"),
        ({"row_count": 1.5}, "argument 'row_count' must be a whole number, got '1.5'"),
        ({"row_count": True}, "argument 'row_count' must be a whole number, got 'true'"),
        ({"sheet_name": ["a"]}, """argument 'sheet_name' must be a string, got '["a"]'"""),
        ({"row_count": 0}, "argument 'row_count' must be >= 1"),
        ({"start_row": -2}, "argument 'start_row' must be >= 1"),
        ({"sheet_name": "   "}, "argument 'sheet_name' is required"),
    ],
)
def test_bad_arguments_are_named(api: MockApi, params: dict[str, Any], message: str) -> None:
    base = {"spreadsheet_id": "s", "sheet_name": "Old", "start_row": 1, "row_count": 1}
    error = failure(
        "integration.google.sheets.delete_rows", base | params, OAUTH, settings_for(api)
    )
    assert str(error) == f"google sheets.delete_rows: {message}"
    assert api.requests == []


def test_numbers_and_flags_given_as_text_are_accepted(api: MockApi) -> None:
    params = {"q": "x", "maxResults": "25", "includeSpamTrash": "TRUE", "labelIds": ["A", " B "]}
    run_kind("integration.google.gmail.search_emails", params, OAUTH, settings_for(api))
    assert api.only().query == {
        "q": ["x"],
        "maxResults": ["25"],
        "includeSpamTrash": ["true"],
        "labelIds": ["A,B"],
    }


def test_json_arguments_given_as_text_are_decoded(api: MockApi) -> None:
    params = {"spreadsheet_id": "s", "range": "A1", "values": "[[1, 2]]"}
    run_kind("integration.google.sheets.write_range", params, OAUTH, settings_for(api))
    assert api.only().json == {"range": "A1", "values": [[1, 2]]}


# -- Gmail ------------------------------------------------------------------------------------


def test_gmail_raw_message_is_rfc_2822_base64url(api: MockApi) -> None:
    params = {"to": "ada@example.com", "bcc": "b@x.com", "subject": "Café ✓", "body": "Ünïcode ?>"}
    run_kind("integration.google.gmail.send_email", params, OAUTH, settings_for(api))
    raw = api.only().json["raw"]
    assert "=" not in raw and "+" not in raw and "/" not in raw
    data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    assert b"\r\nBcc: b@x.com\r\n" in data and b"Cc:" not in data
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert (message["To"], message["Subject"]) == ("ada@example.com", "Café ✓")
    assert message.get_content().strip() == "Ünïcode ?>"


# -- Sheets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sheet", "cells", "path"),
    [("Sheet1", "", "Sheet1:clear"), ("Sheet1", "Other!A1", "Other%21A1:clear")],
)
def test_sheets_clear_ranges(api: MockApi, sheet: str, cells: str, path: str) -> None:
    params = {"spreadsheet_id": "s", "sheet_name": sheet, "range": cells}
    run_kind("integration.google.sheets.clear", params, OAUTH, settings_for(api))
    assert api.only().path == f"/sheets/v4/spreadsheets/s/values/{path}"


@pytest.mark.parametrize(
    ("start", "count", "cells"), [("A", 1, "A7:A7"), ("Z", 2, "Z7:AA7"), ("az", 3, "az7:BB7")]
)
def test_sheets_update_row_range(api: MockApi, start: str, count: int, cells: str) -> None:
    params = {"spreadsheet_id": "s", "sheet_name": "T", "row_number": 7, "start_column": start}
    params["values"] = [list(range(count))]
    run_kind("integration.google.sheets.update_row", params, OAUTH, settings_for(api))
    assert api.only().json == {"range": f"T!{cells}", "values": [list(range(count))]}


@pytest.mark.parametrize(
    ("values", "start", "message"),
    [
        ([1, 2], "A", "values must be a two-dimensional array"),
        ([[1], [2]], "A", "values must contain exactly one row"),
        ([[]], "A", "column count must be >= 1"),
        ([[1]], "B2", "column must use letters only"),
        # letters beyond ASCII, though Python's upper() makes A-Z of them (ß -> SS, U+0131 -> I)
        ([[1]], "ß", "column must use letters only"),
        ([[1]], "\u0131", "column must use letters only"),
        ([[1]], "\ufb00", "column must use letters only"),
        ([[1]], "É", "column must use letters only"),
    ],
)
def test_sheets_update_row_rejects(api: MockApi, values: Any, start: str, message: str) -> None:
    params = {"spreadsheet_id": "s", "sheet_name": "T", "row_number": 1, "start_column": start}
    error = failure(
        "integration.google.sheets.update_row",
        params | {"values": values},
        OAUTH,
        settings_for(api),
    )
    assert str(error) == f"google sheets.update_row: {message}"
    assert api.requests == []


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"sheets": [{"properties": {"sheetId": 1, "title": "Other"}}]}, 'sheet "Old" not found'),
        ({"spreadsheetId": "s"}, "unexpected response from sheets api"),
    ],
)
def test_sheets_lookup_failures(api: MockApi, answer: Any, message: str) -> None:
    api.reply("GET", "/sheets/v4/spreadsheets/s", Reply(answer))
    params = {"spreadsheet_id": "s", "sheet_name": "Old"}
    error = failure("integration.google.sheets.delete_sheet", params, OAUTH, settings_for(api))
    assert str(error) == f"google sheets.delete_sheet: {message}"
    assert len(api.requests) == 1


# -- Jira -------------------------------------------------------------------------------------


@pytest.fixture
def gateway() -> Iterator[MockApi]:
    """The Atlassian gateway stand-in (another server than the site: hosts are compared)."""
    atlassian._CLOUD_IDS.clear()
    yield from serving()
    atlassian._CLOUD_IDS.clear()


def jira(
    api: MockApi, gateway: MockApi, tool: str, params: dict[str, Any], creds: dict[str, Any]
) -> dict[str, Any]:
    settings = settings_for(api, urls={"jira": f"{gateway.url}/gw"})
    return run_kind(f"integration.jira.{tool}", params, creds, settings)


def jira_error(
    api: MockApi, gateway: MockApi, tool: str, params: dict[str, Any], creds: dict[str, Any]
) -> str:
    settings = settings_for(api, urls={"jira": f"{gateway.url}/gw"})
    return str(failure(f"integration.jira.{tool}", params, creds, settings))


def test_jira_cloud_id_argument_goes_through_the_gateway(api: MockApi, gateway: MockApi) -> None:
    params = {"cloud_id": "c-7", "issue_id_or_key": "OPS-1"}
    jira(api, gateway, "issue_get", params, {"type": "token", "token": "pat"})
    assert gateway.only().path == "/gw/ex/jira/c-7/rest/api/3/issue/OPS-1"
    assert gateway.only().headers["authorization"] == "Bearer pat"


def test_jira_oauth_site_is_resolved_to_its_cloud_id_once(api: MockApi, gateway: MockApi) -> None:
    resources = [{"id": "c-1", "url": "https://other.atlassian.net"}]
    resources.append({"id": "c-9", "url": "https://team.atlassian.net/"})
    gateway.reply("GET", "/gw/oauth/token/accessible-resources", Reply(resources))
    creds = OAUTH | {"site_url": "team.atlassian.net"}
    for key in ("OPS-1", "OPS-2"):
        jira(api, gateway, "issue_get", {"issue_id_or_key": key}, creds)
    assert [r.path for r in gateway.requests] == [
        "/gw/oauth/token/accessible-resources",
        "/gw/ex/jira/c-9/rest/api/3/issue/OPS-1",
        "/gw/ex/jira/c-9/rest/api/3/issue/OPS-2",
    ]
    assert {r.headers["authorization"] for r in gateway.requests} == {"Bearer ya29.a0-token"}


def test_jira_oauth_site_not_accessible(api: MockApi, gateway: MockApi) -> None:
    gateway.reply("GET", "/gw/oauth/token/accessible-resources", Reply([]))
    params = {"base_url": "https://team.atlassian.net"}
    message = jira_error(api, gateway, "project_list", params, OAUTH)
    assert message == (
        "jira project_list: no accessible Jira site found for domain: https://team.atlassian.net"
    )
    # A site named by the credential is masked like every credential value.
    creds = OAUTH | {"site_url": "https://team.atlassian.net"}
    message = jira_error(api, gateway, "project_list", {}, creds)
    assert message == "jira project_list: no accessible Jira site found for domain: ***"


def test_jira_oauth_accessible_resources_refused(api: MockApi, gateway: MockApi) -> None:
    gateway.reply("GET", "/gw/oauth/token/accessible-resources", Reply({}, 401))
    message = jira_error(api, gateway, "project_list", {"base_url": "team.atlassian.net"}, OAUTH)
    assert message == "jira project_list: failed to fetch accessible resources: status=401"


def test_jira_site_from_the_credential(api: MockApi, gateway: MockApi) -> None:
    creds = {"type": "token", "token": "pat", "base_url": f"{api.url}/jira-dc/"}
    jira(api, gateway, "project_list", {"api_version": "2", "start_at": 5}, creds)
    assert (api.only().path, api.only().query) == ("/jira-dc/rest/api/2/project", {})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "argument 'base_url' is required"),
        ({"api_version": "4", "base_url": "x.net"}, 'unsupported api_version "4"'),
    ],
)
def test_jira_site_errors(
    api: MockApi, gateway: MockApi, params: dict[str, Any], message: str
) -> None:
    creds = {"type": "token", "token": "pat"}
    assert (
        jira_error(api, gateway, "project_list", params, creds) == f"jira project_list: {message}"
    )


def test_jira_gateway_url_needs_a_cloud_path(api: MockApi, gateway: MockApi) -> None:
    params = {"base_url": f"{gateway.url}/gw/"}
    message = jira_error(api, gateway, "project_list", params, {"type": "token", "token": "pat"})
    assert message.endswith(f'must include /ex/jira/{{cloudId}}; got "{gateway.url}/gw"')
    assert gateway.requests == []


def site(api: MockApi, **params: Any) -> dict[str, Any]:
    return {"base_url": f"{api.url}/site"} | params


@pytest.mark.parametrize(
    ("tool", "params", "path", "query"),
    [
        ("issue_search", {"jql": "x", "api_version": "V2"}, "/site/rest/api/2/search", {}),
        ("user_get", {"username": "ada", "api_version": "2"}, "/site/rest/api/2/user", "username"),
        ("user_get", {"user_key": "k1", "api_version": "2"}, "/site/rest/api/2/user", "key"),
        ("user_get", {"account_id": "a1", "username": "x"}, "/site/rest/api/3/user", "accountId"),
    ],
)
def test_jira_version_variants(
    api: MockApi, gateway: MockApi, tool: str, params: dict[str, Any], path: str, query: Any
) -> None:
    jira(api, gateway, tool, site(api, **params), {"type": "token", "token": "pat"})
    sent = api.only()
    assert sent.path == path
    if query:
        assert list(sent.query) == [query]


@pytest.mark.parametrize(
    ("tool", "params", "message"),
    [
        ("issue_create", {}, "argument 'fields' is required"),
        (
            "issue_create",
            {"summary": "s", "fields": {"project": {"key": "P"}}},
            "arguments 'project_key', 'issue_type', and 'summary' are required when fields are "
            "not provided",
        ),
        ("issue_update", {"issue_id_or_key": "P-1"}, "argument 'fields' or 'update' is required"),
        (
            "comment_create",
            {"issue_id_or_key": "P-1", "body": None, "text_body": "  "},
            "argument 'body' or 'text_body' is required",
        ),
        (
            "issue_transition_apply",
            {"issue_id_or_key": "P-1"},
            "argument 'transition_id' or 'transition' is required",
        ),
        (
            "user_get",
            {"username": "ada"},
            "provide a 'query' (name/email) to search, or an 'account_id' (v3) / 'username' (v2) "
            "for exact lookup",
        ),
    ],
)
def test_jira_argument_rules(
    api: MockApi, gateway: MockApi, tool: str, params: dict[str, Any], message: str
) -> None:
    error = jira_error(api, gateway, tool, site(api, **params), {"type": "token", "token": "p"})
    assert error == f"jira {tool}: {message}"
    assert api.requests == [] and gateway.requests == []


def test_jira_comment_with_an_adf_body_and_transition_object(
    api: MockApi, gateway: MockApi
) -> None:
    doc = {"type": "doc", "version": 1, "content": []}
    creds = {"type": "token", "token": "p"}
    jira(api, gateway, "comment_create", site(api, issue_id_or_key="P-1", body=doc), creds)
    transition = {"id": "5", "looped": True}
    params = site(api, issue_id_or_key="P-1", transition_id="3", transition=transition)
    jira(api, gateway, "issue_transition_apply", params, creds)
    assert [r.json for r in api.requests] == [{"body": doc}, {"transition": transition}]


# -- Telegram, Slack, Outlook, Dropbox --------------------------------------------------------


def test_telegram_get_chat_id_without_updates_names_the_bot(api: MockApi) -> None:
    bot = f"/telegram/bot{TOKEN}/"
    api.reply("POST", bot + "getUpdates", Reply({"ok": True, "result": []}))
    api.reply("POST", bot + "getMe", Reply({"ok": True, "result": {"username": "rune_bot"}}))
    error = failure("integration.telegram.bot.get_chat_id", {}, BOT, settings_for(api))
    assert str(error) == (
        "telegram bot.get_chat_id: no messages yet. Open Telegram, search for @rune_bot, and "
        "send any message. Then run this node again"
    )
    assert [r.path for r in api.requests] == [bot + "getUpdates", bot + "getMe"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            {"ok": False, "error_code": 409, "description": "Conflict"},
            "telegram API error (409): Conflict",
        ),
        ({"ok": False}, "telegram API error (code 0)"),
        ({"ok": True, "result": [{"update_id": 1, "poll": {}}]}, "no chat found in updates."),
    ],
)
def test_telegram_get_chat_id_failures(api: MockApi, answer: Any, message: str) -> None:
    api.reply("POST", f"/telegram/bot{TOKEN}/getUpdates", Reply(answer))
    error = failure("integration.telegram.bot.get_chat_id", {}, BOT, settings_for(api))
    assert str(error).startswith(f"telegram bot.get_chat_id: {message}")


@pytest.mark.parametrize("result", [5, True, "abc", {"update_id": 1}, None])
def test_telegram_get_chat_id_result_that_is_no_list_holds_no_update(
    api: MockApi, result: Any
) -> None:
    bot = f"/telegram/bot{TOKEN}/"
    api.reply("POST", bot + "getUpdates", Reply({"ok": True, "result": result}))
    api.reply("POST", bot + "getMe", Reply({"ok": True, "result": {"username": "rune_bot"}}))
    error = failure("integration.telegram.bot.get_chat_id", {}, BOT, settings_for(api))
    assert str(error).startswith("telegram bot.get_chat_id: no messages yet. Open Telegram")
    assert error.details == {"provider": "telegram", "tool": "bot.get_chat_id"}
    assert [r.path for r in api.requests] == [bot + "getUpdates", bot + "getMe"]


def test_telegram_chat_title_wins(api: MockApi) -> None:
    chat = {"id": -100, "type": "supergroup", "title": "Ops", "first_name": "x"}
    answer = {"ok": True, "result": [{"update_id": 1, "edited_message": {"chat": chat}}]}
    api.reply("POST", f"/telegram/bot{TOKEN}/getUpdates", Reply(answer))
    out = run_kind("integration.telegram.bot.get_chat_id", {}, BOT, settings_for(api))
    assert out == {"chat_id": -100, "chat_type": "supergroup", "chat_name": "Ops"}


@pytest.mark.parametrize(
    ("names", "shown"),
    [
        ({"first_name": "", "last_name": "Lovelace"}, " Lovelace"),
        ({"first_name": "Ada", "last_name": ""}, "Ada "),
        ({"first_name": "Ada"}, "Ada"),
        ({"first_name": 5, "last_name": "Lovelace"}, ""),
        ({"last_name": "Lovelace"}, ""),
    ],
)
def test_telegram_chat_name_joins_names_as_upstream(
    api: MockApi, names: dict[str, Any], shown: str
) -> None:
    chat = {"id": 9, "type": "private"} | names
    answer = {"ok": True, "result": [{"update_id": 1, "message": {"chat": chat}}]}
    api.reply("POST", f"/telegram/bot{TOKEN}/getUpdates", Reply(answer))
    out = run_kind("integration.telegram.bot.get_chat_id", {}, BOT, settings_for(api))
    assert out == {"chat_id": 9, "chat_type": "private", "chat_name": shown}


def test_slack_find_message_without_a_match(api: MockApi) -> None:
    api.reply("GET", "/slack/api/conversations.history", Reply({"messages": [{"text": "ok"}]}))
    params = {"channel": "C1", "keyword": "boom", "limit": 5}
    out = run_kind("integration.slack.conversations.find_message", params, OAUTH, settings_for(api))
    assert out == {"found": False}
    assert api.only().query == {"channel": ["C1"], "limit": ["5"]}


def test_outlook_search_without_folder_or_words(api: MockApi) -> None:
    run_kind("integration.microsoft.outlook.search_emails", {}, OAUTH, settings_for(api))
    assert (api.only().path, api.only().query) == ("/outlook/v1.0/me/messages", {})


def test_dropbox_search_without_options(api: MockApi) -> None:
    run_kind("integration.dropbox.files.search", {"query": "q"}, OAUTH, settings_for(api))
    assert api.only().json == {"query": "q"}


# -- upstream's checks of optional text and its conversions of numbers -------------------------


@pytest.mark.parametrize(
    ("chat_id", "sent"),
    [
        # chatIDToString: a JSON number is a float64, written as strconv.FormatInt(int64(v), 10)
        (1.5, "1"),
        (-1.5, "-1"),
        (42.0, "42"),
        (-1001234567890, "-1001234567890"),
        (2**53 + 1, "9007199254740992"),  # a float64 cannot hold it: Go sends its neighbour
        (1e21, "-9223372036854775808"),  # int64 of a float64 beyond its range, as on amd64
        (-1e21, "-9223372036854775808"),
        (2**63, "-9223372036854775808"),
        (-(2**63), "-9223372036854775808"),
        # text as it is; fmt.Sprint of a boolean
        ("1.5", "1.5"),
        (" 12 ", " 12 "),
        ("@channel", "@channel"),
        (True, "true"),
    ],
)
def test_telegram_chat_id_is_written_as_upstreams_chat_id_to_string(
    api: MockApi, chat_id: Any, sent: str
) -> None:
    run_kind(SEND, {"chat_id": chat_id, "text": "hi"}, BOT, settings_for(api))
    assert api.only().json == {"chat_id": sent, "text": "hi"}


def test_telegram_chat_id_beyond_a_double_is_refused(api: MockApi) -> None:
    # refused with the definition, as Go's decoder refuses it (no float64 holds it): the node
    # never sees it
    where = r"^workflow_definition: Number out of range - at `\$\.nodes\[0\]\.parameters\.chat_id`"
    with pytest.raises(WorkflowError, match=where):
        failure(SEND, {"chat_id": 10**400, "text": "hi"}, BOT, settings_for(api))
    assert api.requests == []


def test_telegram_ids_of_an_answer_are_int64_of_a_float64(api: MockApi) -> None:
    chat = {"id": 1e21, "type": "channel", "title": "Big"}
    updates = [{"update_id": 2, "message": {"chat": {"id": 5}}}]
    updates.append({"update_id": 2.5, "channel_post": {"chat": chat}})
    api.reply("POST", f"/telegram/bot{TOKEN}/getUpdates", Reply({"ok": True, "result": updates}))
    out = run_kind("integration.telegram.bot.get_chat_id", {}, BOT, settings_for(api))
    assert out == {"chat_id": -(2**63), "chat_type": "channel", "chat_name": "Big"}


def test_telegram_error_code_is_int64_of_a_float64(api: MockApi) -> None:
    answer = {"ok": False, "error_code": 401.9, "description": "Unauthorized"}
    api.reply("POST", f"/telegram/bot{TOKEN}/getUpdates", Reply(answer))
    error = failure("integration.telegram.bot.get_chat_id", {}, BOT, settings_for(api))
    assert str(error) == "telegram bot.get_chat_id: telegram API error (401): Unauthorized"


@pytest.mark.parametrize(
    ("kind", "params", "body"),
    [
        # `if args.Caption != ""`, `if args.ParseMode != ""`: blanks go out as they are
        (
            "send_photo",
            {"chat_id": 1, "photo": "p", "caption": "  ", "parse_mode": " "},
            {"chat_id": "1", "photo": "p", "caption": "  ", "parse_mode": " "},
        ),
        (
            "send_document",
            {"chat_id": 1, "document": "d", "caption": "\t", "parse_mode": ""},
            {"chat_id": "1", "document": "d", "caption": "\t"},
        ),
        (
            "send_message",
            {"chat_id": 1, "text": "hi", "parse_mode": "  "},
            {"chat_id": "1", "text": "hi", "parse_mode": "  "},
        ),
        # allowed_updates goes through splitCSV (trimmed): blanks are no list
        ("get_updates", {"allowed_updates": " , "}, None),
    ],
)
def test_telegram_optional_text_of_blanks_is_sent_as_upstream(
    api: MockApi, kind: str, params: dict[str, Any], body: Any
) -> None:
    run_kind(f"integration.telegram.bot.{kind}", params, BOT, settings_for(api))
    assert api.only().json == body


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("  ", {"query": "q", "options": {"path": "  "}}),  # `if args.Path != ""`
        ("", {"query": "q"}),
    ],
)
def test_dropbox_search_path_of_blanks_is_sent(api: MockApi, path: str, body: Any) -> None:
    params = {"query": "q", "path": path}
    run_kind("integration.dropbox.files.search", params, OAUTH, settings_for(api))
    assert api.only().json == body


ADF_HI = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}],
}


@pytest.mark.parametrize(
    ("params", "body"),
    [
        # `if bodyContent == nil`: any body but null goes as it is, "" too
        ({"body": "", "text_body": "unused"}, {"body": ""}),
        ({"body": "", "text_body": ""}, {"body": ""}),
        ({"body": 0}, {"body": 0}),
        ({"body": None, "text_body": " hi "}, {"body": ADF_HI}),
        ({"text_body": " hi "}, {"body": ADF_HI}),
    ],
)
def test_jira_comment_body_is_used_unless_null(
    api: MockApi, gateway: MockApi, params: dict[str, Any], body: Any
) -> None:
    creds = {"type": "token", "token": "p"}
    jira(api, gateway, "comment_create", site(api, issue_id_or_key="P-1", **params), creds)
    assert api.only().json == body


@pytest.mark.parametrize(
    ("params", "extra"),
    [
        # `if args.Fields != ""` then splitCSV: text with no items is Go's nil slice, `null`
        ({"fields": "  ", "expand": " , "}, {"fields": None, "expand": None}),
        ({"fields": " a, b ,", "expand": ""}, {"fields": ["a", "b"]}),
        ({"fields": "", "expand": []}, {}),
    ],
)
def test_jira_search_lists_of_no_items_are_null(
    api: MockApi, gateway: MockApi, params: dict[str, Any], extra: dict[str, Any]
) -> None:
    creds = {"type": "token", "token": "p"}
    jira(api, gateway, "issue_search", site(api, jql="project = P", **params), creds)
    assert api.only().json == {"jql": "project = P"} | extra


@pytest.mark.parametrize(
    ("tool", "params", "query", "body"),
    [
        # upstream compares these with "" as given: blanks are sent
        ("issue_transition_apply", {"transition_id": " "}, {}, {"transition": {"id": " "}}),
        ("user_get", {"account_id": "  "}, {"accountId": ["  "]}, None),
        # and trims these (addQuery, the convenience fields, the query of user_get)
        ("issue_get", {"fields": "  ", "expand": "\t"}, {}, None),
        ("comment_list", {"order_by": "  ", "expand": " "}, {}, None),
        ("issue_transition_list", {"expand": "  "}, {}, None),
        ("user_get", {"query": "  ", "account_id": "a-1"}, {"accountId": ["a-1"]}, None),
        ("issue_update", {"summary": "  ", "update": {"x": []}}, {}, {"update": {"x": []}}),
    ],
)
def test_jira_optional_text_of_blanks_as_upstream(
    api: MockApi,
    gateway: MockApi,
    tool: str,
    params: dict[str, Any],
    query: dict[str, Any],
    body: Any,
) -> None:
    creds = {"type": "token", "token": "p"}
    jira(api, gateway, tool, site(api, issue_id_or_key="P-1", **params), creds)
    assert (api.only().query, api.only().json) == (query, body)


OUTLOOK_MESSAGE = "/outlook/v1.0/me/messages/m"
GMAIL_MESSAGE = "/gmail/gmail/v1/users/me/messages/m"


@pytest.mark.parametrize(
    ("kind", "params", "path", "query"),
    [
        # outlook search: `if args.Q != ""`, `if args.LabelIDs != ""`
        (
            "microsoft.outlook.search_emails",
            {"q": "  ", "labelIds": " "},
            "/outlook/v1.0/me/mailFolders/%20/messages",
            {"$search": ['"  "']},
        ),
        # optionalQuery trims: blanks are not sent
        ("microsoft.outlook.read_email", {"id": "m", "select": "  "}, OUTLOOK_MESSAGE, {}),
        ("google.gmail.read_email", {"id": "m", "format": " "}, GMAIL_MESSAGE, {}),
    ],
)
def test_mail_optional_text_of_blanks_as_upstream(
    api: MockApi, kind: str, params: dict[str, Any], path: str, query: dict[str, Any]
) -> None:
    run_kind(f"integration.{kind}", params, OAUTH, settings_for(api))
    assert (api.only().path, api.only().query) == (path, query)


def test_gmail_cc_of_blanks_is_a_header_as_upstream(api: MockApi) -> None:
    # `if cc := sanitizeHeaderValue(args.CC); cc != ""`: not trimmed
    params = {"to": "a@x", "cc": "  ", "bcc": "", "subject": "s", "body": "b"}
    run_kind("integration.google.gmail.send_email", params, OAUTH, settings_for(api))
    raw = api.only().json["raw"]
    lines = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().split("\r\n")
    assert lines[:3] == ["To: a@x", "Cc:   ", "Subject: s"]


def test_sheets_value_input_option_of_blanks_is_not_sent(api: MockApi) -> None:
    params = {"spreadsheet_id": "s", "range": "A1", "values": [[1]], "value_input_option": "  "}
    run_kind("integration.google.sheets.write_range", params, OAUTH, settings_for(api))
    assert api.only().query == {}


@pytest.mark.parametrize(
    ("params", "sent"),
    [
        ({"offset": 2**53 + 1}, {"offset": 2**53}),  # a float64 in upstream
        ({"offset": -(2**63)}, {"offset": -(2**63)}),
        ({"limit": "1e3"}, {"limit": 1000}),
    ],
)
def test_integers_are_read_through_a_float64(
    api: MockApi, params: dict[str, Any], sent: dict[str, Any]
) -> None:
    run_kind("integration.telegram.bot.get_updates", params, BOT, settings_for(api))
    assert api.only().json == sent


@pytest.mark.parametrize("value", [2**63, 1e21, -1e19, 10**400])
def test_integers_beyond_64_bits_are_refused_as_upstream(api: MockApi, value: Any) -> None:
    # upstream's DecodeArgs cannot put them in a Go int
    params = {"offset": value}
    if value == 10**400:  # no float64 holds it either: refused with the definition
        with pytest.raises(WorkflowError, match=r"Number out of range - at `.*\.offset`"):
            failure("integration.telegram.bot.get_updates", params, BOT, settings_for(api))
    else:
        error = failure("integration.telegram.bot.get_updates", params, BOT, settings_for(api))
        assert "argument 'offset' must be a whole number of at most 64 bits" in str(error)
    assert api.requests == []


# -- get_chat_id reads the answer with Go's type assertions ------------------------------------
# services/rune-worker/pkg/integrations/providers/telegram/telegram_test.go (TestGetChatID,
# TestGetChatIDInvalidToken, TestGetChatIDNoUpdates) with answers of other JSON types; what
# upstream does with them is get_chat_id.go's `.(bool)`, `.(string)`, `.([]any)`.

GET_CHAT_ID = "integration.telegram.bot.get_chat_id"
CHAT_UPDATE = {"update_id": 1, "message": {"chat": {"id": 7, "type": "private", "title": "T"}}}


@pytest.mark.parametrize("result", [[5], [None], ["x", []], [True]])
def test_telegram_updates_that_are_no_objects_hold_no_chat(api: MockApi, result: Any) -> None:
    # `len(results) == 0` counts every item; an item that is no object is skipped afterwards,
    # and no update left is "no chat found" (getMe is not asked)
    bot = f"/telegram/bot{TOKEN}/"
    api.reply("POST", bot + "getUpdates", Reply({"ok": True, "result": result}))
    error = failure(GET_CHAT_ID, {}, BOT, settings_for(api))
    assert str(error) == (
        "telegram bot.get_chat_id: no chat found in updates. Send a message to your bot in "
        "Telegram, then try again"
    )
    assert [r.path for r in api.requests] == [bot + "getUpdates"]


@pytest.mark.parametrize("ok", [1, "true", [True], {"a": 1}])
def test_telegram_ok_that_is_no_boolean_is_an_api_error(api: MockApi, ok: Any) -> None:
    # `ok, _ := respBody["ok"].(bool)`: anything but the boolean true is a failure
    answer = {"ok": ok, "error_code": 502, "description": "Bad Gateway", "result": [CHAT_UPDATE]}
    api.reply("POST", f"/telegram/bot{TOKEN}/getUpdates", Reply(answer))
    error = failure(GET_CHAT_ID, {}, BOT, settings_for(api))
    assert str(error) == "telegram bot.get_chat_id: telegram API error (502): Bad Gateway"


@pytest.mark.parametrize("description", [5, True, {"text": "Unauthorized"}, ["Unauthorized"]])
def test_telegram_description_that_is_no_text_is_not_shown(api: MockApi, description: Any) -> None:
    # `desc, _ := respBody["description"].(string)`: only text is a description
    answer = {"ok": False, "error_code": 401, "description": description}
    api.reply("POST", f"/telegram/bot{TOKEN}/getUpdates", Reply(answer))
    error = failure(GET_CHAT_ID, {}, BOT, settings_for(api))
    assert str(error) == "telegram bot.get_chat_id: telegram API error (code 401)"


@pytest.mark.parametrize("ok", [1, "true"])
def test_telegram_get_me_ok_that_is_no_boolean_names_no_bot(api: MockApi, ok: Any) -> None:
    # getBotUsername: `ok, _ := body["ok"].(bool)`; not true is "api error", so no name
    bot = f"/telegram/bot{TOKEN}/"
    api.reply("POST", bot + "getUpdates", Reply({"ok": True, "result": []}))
    api.reply("POST", bot + "getMe", Reply({"ok": ok, "result": {"username": "rune_bot"}}))
    error = failure(GET_CHAT_ID, {}, BOT, settings_for(api))
    assert str(error) == (
        "telegram bot.get_chat_id: no messages yet. Send a message to your bot in Telegram "
        "first, then run this node again"
    )


@pytest.mark.parametrize(
    ("found", "sent"),
    [
        (12.0, 12),  # delete_sheet_test.go: a float64 sheetId
        (7.9, 7),
        (1e21, -(2**63)),  # Go's int() of a float64 beyond int64, as amd64 gives it
    ],
)
def test_sheets_sheet_id_is_go_int_of_a_float64(api: MockApi, found: float, sent: int) -> None:
    # services/rune-worker/pkg/integrations/providers/google/sheets/delete_sheet_test.go with
    # other sheet ids; helpers.go's resolveSheetID sends `int(props["sheetId"].(float64))`
    tabs = {"sheets": [{"properties": {"sheetId": found, "title": "Old"}}]}
    api.reply("GET", "/sheets/v4/spreadsheets/s", Reply(tabs))
    params = {"spreadsheet_id": "s", "sheet_name": "Old"}
    run_kind("integration.google.sheets.delete_sheet", params, OAUTH, settings_for(api))
    assert api.requests[-1].json == {"requests": [{"deleteSheet": {"sheetId": sent}}]}


def test_jira_cloud_ids_kept_are_bounded_least_recently_used_first(
    api: MockApi, gateway: MockApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each distinct site an OAuth credential names is looked up once and kept: a worker that
    serves many tenants for months must not keep every site it ever saw."""
    monkeypatch.setattr(atlassian, "CLOUD_IDS_KEPT", 4)
    sites = [f"https://t{i}.atlassian.net" for i in range(10)]
    resources = [{"id": f"c-{i}", "url": site} for i, site in enumerate(sites)]
    gateway.reply("GET", "/gw/oauth/token/accessible-resources", Reply(resources))
    for site in sites:
        jira(api, gateway, "issue_get", {"issue_id_or_key": "OPS-1"}, OAUTH | {"site_url": site})
        assert len(atlassian._CLOUD_IDS) <= 4
    lookups = len(gateway.requests)
    # the last four are kept: no lookup; the first was dropped: looked up again
    jira(api, gateway, "issue_get", {"issue_id_or_key": "OPS-2"}, OAUTH | {"site_url": sites[-1]})
    assert len(gateway.requests) == lookups + 1
    jira(api, gateway, "issue_get", {"issue_id_or_key": "OPS-3"}, OAUTH | {"site_url": sites[0]})
    assert [r.path for r in gateway.requests[lookups + 1 :]] == [
        "/gw/oauth/token/accessible-resources",
        "/gw/ex/jira/c-0/rest/api/3/issue/OPS-3",
    ]
