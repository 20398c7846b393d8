"""Every one of the 45 integration kinds against a loopback stand-in of its API: the request
upstream Rune builds for it (method, path, query, Authorization, JSON body; facts from
`services/rune-worker/pkg/integrations/providers/**`) and the http node's output envelope (or the
kind's own output). Each service gets its own base URL path prefix, so the test also shows which
`[integrations] <service>_base_url` a kind uses."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from apimock import MockApi, Reply, serving
from integrationkit import BOT, OAUTH, failure, run_kind, settings_for

from runeworker.canvas import INTEGRATION_KINDS
from runeworker.engine import registry
from runeworker.integrations.connector import CATALOG, register

registry.load()  # registers the integration kinds (fills CATALOG)
JIRA_BASIC = {"type": "basic_auth", "username": "ada@example.com", "password": "jira-api-token"}
SITE = "<site>"  # replaced by the Jira site URL (a path of the stand-in server)
SHEET_LOOKUP = "/sheets/v4/spreadsheets/sheet-1"
TABS = {"sheets": [{"properties": {"sheetId": 0, "title": "Sheet1"}}]}
TABS["sheets"].append({"properties": {"sheetId": 77, "title": "Old"}})


def adf(text: str) -> dict[str, Any]:
    paragraph = {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    return {"type": "doc", "version": 1, "content": [paragraph]}


def raw_mail(*lines: str) -> str:
    return base64.urlsafe_b64encode("\r\n".join(lines).encode()).decode().rstrip("=")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Case:
    """One kind: its parameters and the request upstream sends for them. `request` is
    "METHOD path", the path below the service's base URL (a Jira path below the site).
    `lookups` are requests that come first, answered by `replies`; `output` is the kind's own
    output when it is not the envelope."""

    kind: str
    params: dict[str, Any]
    request: str
    query: dict[str, list[str]] = field(default_factory=dict)
    body: Any = None
    creds: dict[str, Any] = field(default_factory=lambda: dict(OAUTH))
    auth: str | None = "Bearer ya29.a0-token"
    lookups: tuple[str, ...] = ()
    replies: tuple[tuple[str, str, Reply], ...] = ()
    answer: Any = None
    output: Any = None

    @property
    def method(self) -> str:
        return self.request.split(" ")[0]

    @property
    def path(self) -> str:
        return self.request.split(" ")[1]


def maker(prefix: str, **common: Any) -> Any:
    """Cases of one service: `make(tool, params, "METHOD path", ...)`."""

    def make(tool: str, params: dict[str, Any], request: str, *rest: Any, **kw: Any) -> Case:
        return Case(f"{prefix}.{tool}", params, request, *rest, **common | kw)

    return make


def gmail() -> list[Case]:
    case, msgs = maker("integration.google.gmail"), "/gmail/v1/users/me/messages"
    mail = ["To: ada@example.com", "Cc: cc@example.com", "Subject: Report  Bcc: evil@x"]
    mail += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8", "", "Hello\nWorld"]
    send = {"to": "ada@example.com", "cc": "cc@example.com", "bcc": "", "bodyType": "text"}
    send |= {"subject": "Report\r\nBcc: evil@x", "body": "Hello\nWorld"}
    search = {"q": "is:unread", "maxResults": 10, "labelIds": "INBOX, UNREAD"}
    search_query = {"q": ["is:unread"], "maxResults": ["10"], "labelIds": ["INBOX,UNREAD"]}
    search |= {"includeSpamTrash": True}
    search_query |= {"includeSpamTrash": ["true"]}
    return [
        case("send_email", send, f"POST {msgs}/send", body={"raw": raw_mail(*mail)}),
        case(
            "read_email",
            {"id": "18c/1", "format": "full"},
            f"GET {msgs}/18c%2F1",
            {"format": ["full"]},
        ),
        case("search_emails", search, f"GET {msgs}", search_query),
        case("list_labels", {}, "GET /gmail/v1/users/me/labels"),
    ]


def sheets() -> list[Case]:
    case = maker("integration.google.sheets")
    sid = {"spreadsheet_id": "sheet-1"}
    values = "/v4/spreadsheets/sheet-1/values/"
    batch = "POST /v4/spreadsheets/sheet-1:batchUpdate"
    lookup = {"lookups": (f"GET {SHEET_LOOKUP}",), "replies": (("GET", SHEET_LOOKUP, Reply(TABS)),)}
    user_entered = {"valueInputOption": ["USER_ENTERED"]}
    grid = {"title": "Q3", "gridProperties": {"rowCount": 100, "columnCount": 5}}
    write = sid | {"range": "Sheet1!A1:B2", "value_input_option": "USER_ENTERED"}
    append = sid | {"sheet_name": " My Sheet ", "value_input_option": "RAW", "values": [["a", 1]]}
    update = sid | {"sheet_name": "Sheet1", "row_number": 4, "start_column": "B"}
    update |= {"value_input_option": "USER_ENTERED", "values": [[1, 2, 3]]}

    def dimension(kind: str, start: int, end: int) -> dict[str, Any]:
        where = {"sheetId": 77, "dimension": kind, "startIndex": start, "endIndex": end}
        return {"requests": [{"deleteDimension": {"range": where}}]}

    return [
        case("read_range", sid | {"range": "Sheet1!A2:Z"}, f"GET {values}Sheet1%21A2:Z"),
        case(
            "write_range",
            write | {"values": [[1, 2], [3, 4]]},
            f"PUT {values}Sheet1%21A1:B2",
            user_entered,
            {"range": "Sheet1!A1:B2", "values": [[1, 2], [3, 4]]},
        ),
        case(
            "append_row",
            append,
            f"POST {values}My%20Sheet:append",
            {"valueInputOption": ["RAW"]},
            {"values": [["a", 1]]},
        ),
        case(
            "clear",
            sid | {"sheet_name": "Sheet1", "range": "A1:C3"},
            f"POST {values}Sheet1%21A1:C3:clear",
        ),
        case(
            "create_sheet",
            sid | {"title": " Q3 ", "rows": 100, "columns": "5"},
            batch,
            body={"requests": [{"addSheet": {"properties": grid}}]},
        ),
        case(
            "delete_sheet",
            sid | {"sheet_name": "Old"},
            batch,
            body={"requests": [{"deleteSheet": {"sheetId": 77}}]},
            **lookup,
        ),
        case(
            "delete_rows",
            sid | {"sheet_name": "Old", "start_row": 2, "row_count": 3},
            batch,
            body=dimension("ROWS", 1, 4),
            **lookup,
        ),
        case(
            "delete_columns",
            sid | {"sheet_name": "Old", "start_column": "b", "column_count": 2},
            batch,
            body=dimension("COLUMNS", 1, 3),
            **lookup,
        ),
        case(
            "update_row",
            update,
            f"PUT {values}Sheet1%21B4:D4",
            user_entered,
            {"range": "Sheet1!B4:D4", "values": [[1, 2, 3]]},
        ),
        case(
            "create_spreadsheet",
            {"title": "Budget"},
            "POST /v4/spreadsheets",
            body={"properties": {"title": "Budget"}},
        ),
        case("delete_spreadsheet", sid, "DELETE /drive/v3/files/sheet-1"),
    ]


def jira() -> list[Case]:
    auth = basic("ada@example.com", "jira-api-token")
    make = maker("integration.jira", creds=dict(JIRA_BASIC), auth=auth)
    issue = "/site/rest/api/3/issue/OPS-1"
    key = {"issue_id_or_key": "OPS-1"}

    def case(tool: str, params: dict[str, Any], request: str, *rest: Any, **kw: Any) -> Case:
        return make(tool, {"base_url": SITE} | params, request, *rest, **kw)

    create = {"project_key": "OPS", "issue_type": "Task", "summary": " Disk full "}
    create |= {"description": "on db-1", "labels": "infra, urgent", "priority": "High"}
    create |= {"fields": {"customfield_1": "x", "priority": {"id": "1"}}}
    fields = {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "Disk full"}
    fields |= {"priority": {"id": "1"}, "description": adf("on db-1")}
    fields |= {"labels": ["infra", "urgent"], "customfield_1": "x"}
    update = key | {"summary": "New", "notify_users": False, "api_version": "v2"}
    update |= {"update": {"labels": [{"add": "x"}]}}
    search = {"jql": "project = OPS", "max_results": 50, "start_at": 0}
    search |= {"fields": "summary, status", "validate_query": "true"}
    found = {"jql": "project = OPS", "maxResults": 50, "fields": ["summary", "status"]}
    resolution = {"fields": {"resolution": {"name": "Done"}}}
    listing = key | {"start_at": 0, "max_results": 20, "order_by": "-created"}
    return [
        case("issue_create", create, "POST /site/rest/api/3/issue", body={"fields": fields}),
        case(
            "issue_get",
            key | {"fields": "*all", "expand": "names"},
            f"GET {issue}",
            {"fields": ["*all"], "expand": ["names"]},
        ),
        case(
            "issue_update",
            update,
            "PUT /site/rest/api/2/issue/OPS-1",
            {"notifyUsers": ["false"]},
            {"fields": {"summary": "New"}, "update": {"labels": [{"add": "x"}]}},
        ),
        case(
            "issue_search",
            search,
            "POST /site/rest/api/3/search/jql",
            body=found | {"validateQuery": True},
        ),
        case(
            "issue_transition_list",
            key | {"expand": "transitions.fields"},
            f"GET {issue}/transitions",
            {"expand": ["transitions.fields"]},
        ),
        case(
            "issue_transition_apply",
            key | {"transition_id": "31"} | resolution,
            f"POST {issue}/transitions",
            body={"transition": {"id": "31"}} | resolution,
        ),
        case(
            "comment_create",
            key | {"text_body": " Looks good "},
            f"POST {issue}/comment",
            body={"body": adf("Looks good")},
        ),
        case(
            "comment_list",
            listing,
            f"GET {issue}/comment",
            {"maxResults": ["20"], "orderBy": ["-created"]},
        ),
        case(
            "project_list",
            {"start_at": 10, "max_results": 5},
            "GET /site/rest/api/3/project/search",
            {"startAt": ["10"], "maxResults": ["5"]},
        ),
        case(
            "user_get",
            {"query": " ada ", "account_id": "acc-1"},
            "GET /site/rest/api/3/user/search",
            {"query": ["ada"]},
        ),
    ]


def outlook() -> list[Case]:
    case = maker("integration.microsoft.outlook")

    def to(address: str) -> dict[str, Any]:
        return {"emailAddress": {"address": address}}

    message = {"subject": "S", "body": {"contentType": "Text", "content": "B"}}
    message |= {"toRecipients": [to("a@x.com"), to("b@x.com")], "ccRecipients": [to("c@x.com")]}
    send = {"to": "a@x.com, b@x.com", "cc": "c@x.com", "subject": "S", "body": "B"}
    send |= {"save_to_sent_items": True}
    search = {"q": "invoice", "maxResults": 5, "labelIds": "inbox"}
    return [
        case(
            "send_email",
            send,
            "POST /v1.0/me/sendMail",
            body={"message": message, "saveToSentItems": True},
        ),
        case(
            "read_email",
            {"id": "AAMk=", "select": "subject,from"},
            "GET /v1.0/me/messages/AAMk=",
            {"$select": ["subject,from"]},
        ),
        case(
            "search_emails",
            search,
            "GET /v1.0/me/mailFolders/inbox/messages",
            {"$search": ['"invoice"'], "$top": ["5"]},
        ),
        case("list_folders", {}, "GET /v1.0/me/mailFolders"),
    ]


def telegram() -> list[Case]:
    make = maker("integration.telegram.bot", creds=dict(BOT), auth=None)
    update = {"update_id": 5, "message": {"chat": {"id": 777, "type": "private"}}}
    update["message"]["chat"] |= {"first_name": "Ada", "last_name": "L"}
    older = {"update_id": 4, "channel_post": {"chat": {"id": 1, "type": "channel", "title": "x"}}}

    def case(tool: str, params: dict[str, Any], method: str, body: Any, **kw: Any) -> Case:
        return make(tool, params, f"POST /bot123456:ABC-bot-secret/{method}", body=body, **kw)

    message = {"chat_id": -100123, "text": "hi", "parse_mode": "HTML"}
    photo = {"chat_id": "@chan", "photo": "https://x/p.png", "caption": "c"}
    updates = {"offset": -1, "limit": 10, "allowed_updates": ["message", "channel_post"]}
    chat = {"chat_id": 777, "chat_type": "private", "chat_name": "Ada L"}
    return [
        case(
            "send_message",
            message | {"disable_notification": True},
            "sendMessage",
            message | {"chat_id": "-100123", "disable_notification": True},
        ),
        case("send_photo", photo, "sendPhoto", photo),
        case(
            "send_document",
            {"chat_id": 42.0, "document": "file-id", "disable_notification": False},
            "sendDocument",
            {"chat_id": "42", "document": "file-id"},
        ),
        case(
            "get_updates",
            updates | {"allowed_updates": "message, channel_post"},
            "getUpdates",
            updates,
        ),
        case(
            "get_chat_id",
            {},
            "getUpdates",
            {"limit": 1},
            answer={"ok": True, "result": [update, older]},
            output=chat,
        ),
    ]


def dropbox() -> list[Case]:
    case, path = maker("integration.dropbox.files"), {"path": "/a.txt"}
    search = {"query": "report", "path": "/docs", "filename_only": True}
    return [
        case("list_folder", {}, "POST /2/files/list_folder", body={"path": "", "recursive": False}),
        case("get_metadata", path, "POST /2/files/get_metadata", body=path),
        case("get_temporary_link", path, "POST /2/files/get_temporary_link", body=path),
        case("delete", path, "POST /2/files/delete_v2", body=path),
        case(
            "search",
            search,
            "POST /2/files/search_v2",
            body={"query": "report", "options": {"path": "/docs", "filename_only": True}},
        ),
    ]


def slack() -> list[Case]:
    case, chan = maker("integration.slack"), {"channel": "C1"}
    found = {"text": "got Error 500 at 3", "ts": "2"}
    history = {"ok": True, "messages": [{"text": "fine", "ts": "1"}, found]}
    edit = chan | {"ts": "1712.5", "text": "edited"}
    return [
        case(
            "chat.post_message",
            chan | {"text": "hi"},
            "POST /api/chat.postMessage",
            body=chan | {"text": "hi"},
        ),
        case("chat.update", edit, "POST /api/chat.update", body=edit),
        case(
            "chat.delete",
            chan | {"ts": "1712.5"},
            "POST /api/chat.delete",
            body=chan | {"ts": "1712.5"},
        ),
        case(
            "conversations.history",
            chan | {"limit": 10},
            "GET /api/conversations.history",
            {"channel": ["C1"], "limit": ["10"]},
        ),
        case(
            "conversations.find_message",
            chan | {"keyword": "Error 500"},
            "GET /api/conversations.history",
            {"channel": ["C1"], "limit": ["100"]},
            answer=history,
            output={"found": True, "message": found},
        ),
        case(
            "users.lookup_by_email",
            {"email": "ada@example.com"},
            "GET /api/users.lookupByEmail",
            {"email": ["ada@example.com"]},
        ),
    ]


CASES = gmail() + sheets() + jira() + outlook() + telegram() + dropbox() + slack()
BY_KIND = {c.kind: c for c in CASES}


# -- the harness ------------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[MockApi]:
    yield from serving()


def site_params(case: Case, api: MockApi) -> dict[str, Any]:
    return {k: f"{api.url}/site" if v == SITE else v for k, v in case.params.items()}


def full_path(case: Case) -> str:
    service = CATALOG[case.kind].service
    return case.path if service == "jira" else f"/{service}{case.path}"


# -- the tests --------------------------------------------------------------------------------


def test_the_catalog_is_upstreams_45_kinds() -> None:
    registered = {t for t in registry.load() if t.startswith("integration.")}
    # INTEGRATION_KINDS: upstream's IntegrationNodeKind list, the kinds the web app converts.
    assert len(INTEGRATION_KINDS) == 45
    assert registered == set(CATALOG) == INTEGRATION_KINDS == set(BY_KIND)
    assert all(registry.load()[kind].blocking for kind in registered)


@pytest.mark.parametrize("case", CASES, ids=[c.kind.removeprefix("integration.") for c in CASES])
def test_kind_sends_upstreams_request(case: Case, api: MockApi) -> None:
    answer = case.answer if case.answer is not None else {"kind": case.kind}
    for method, path, reply in case.replies:
        api.reply(method, path, reply)
    api.reply(case.method, full_path(case), Reply(answer, headers={"X-Trace": "t-1"}))

    out = run_kind(case.kind, site_params(case, api), case.creds, settings_for(api))

    seen = api.requests
    assert [f"{r.method} {r.path}" for r in seen[:-1]] == list(case.lookups)
    sent = seen[-1]
    assert (sent.method, sent.path, sent.query) == (case.method, full_path(case), case.query)
    assert sent.json == case.body
    if case.body is not None:
        assert sent.headers["content-type"] == "application/json"
    for r in seen:
        assert r.headers.get("authorization") == case.auth, r.path
    if case.output is not None:
        assert out == case.output
        return
    assert set(out) == {"status", "status_text", "body", "headers", "duration_ms"}
    assert (out["status"], out["status_text"], out["body"]) == (200, "200 OK", answer)
    assert out["headers"]["X-Trace"] == "t-1"
    assert out["headers"]["Content-Type"].startswith("application/json")
    assert type(out["duration_ms"]) is int and out["duration_ms"] >= 0


def _required() -> list[tuple[str, str, str]]:
    """(kind, argument, upstream's message) for every argument a kind cannot do without."""
    out = []
    for case in CASES:
        for arg in CATALOG[case.kind].args:
            if arg.name in case.params and (arg.required or arg.positive):
                verb = "must be >= 1" if arg.positive else "is required"
                out.append((case.kind, arg.name, f"argument '{arg.name}' {verb}"))
    return out


@pytest.mark.parametrize(("kind", "name", "message"), _required())
def test_missing_argument_fails_with_upstreams_message_and_sends_nothing(
    kind: str, name: str, message: str, api: MockApi
) -> None:
    case = BY_KIND[kind]
    params = site_params(case, api)
    del params[name]
    error = failure(kind, params, case.creds, settings_for(api))
    provider, tool = kind.split(".")[1], ".".join(kind.split(".")[2:])
    assert str(error) == f"{provider} {tool}: {message}"
    assert error.details == {"provider": provider, "tool": tool}
    assert api.requests == []


@pytest.mark.parametrize("twice", [False, True])
def test_a_kind_registered_twice_is_refused(twice: bool) -> None:
    # services/rune-worker/pkg/integrations/registry_test.go (TestRegisterDuplicatePanics):
    # a second tool of a kind already registered is refused, and the first one stays
    first = CATALOG["integration.slack.chat.delete"]
    spec = registry.load()[first.kind]
    other = dataclasses.replace(first, method="GET")
    fresh = dataclasses.replace(first, kind="integration.test.fresh")
    tools = (fresh, fresh) if twice else (fresh, other)
    with pytest.raises(ValueError, match="duplicate integration kind integration"):
        register(*tools)
    assert CATALOG[first.kind] is first and registry.load()[first.kind] is spec
    assert "integration.test.fresh" not in CATALOG
    assert "integration.test.fresh" not in registry.load()
