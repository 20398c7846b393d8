"""Jira (upstream: `services/rune-worker/pkg/integrations/providers/jira/`): the REST API v3
(Cloud, the default) or v2 (`api_version`), below the site `atlassian.site_base` resolves.
The credential authorizes the request (oauth2 or token as `Authorization: Bearer`, basic_auth for
an e-mail and API token). Plain text becomes Atlassian Document Format where v3 wants it
(description, comment). Every tool checks its own arguments before the site is resolved, so a
bad call fails without reaching the network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runeworker.errors import NodeError
from runeworker.integrations.atlassian import quoted, site_base
from runeworker.integrations.connector import Call, register
from runeworker.integrations.spec import (
    ANY,
    CSV,
    INTEGER,
    MAYBE_FLAG,
    OBJECT,
    Arg,
    Hook,
    Tool,
    family,
    named,
    put,
)

# Request fields (path, query, body) of one call, computed and checked without the network.
Shape = Callable[[Call], dict[str, Any]]

API = "/rest/api/{api_version}"
ISSUE = API + "/issue/{issue_id_or_key}"
SITE = (Arg("base_url", trim=True), Arg("cloud_id", trim=True), Arg("api_version"))
ISSUE_KEY = Arg("issue_id_or_key", required=True)
PAGE = (Arg("start_at", INTEGER), Arg("max_results", INTEGER))
PAGE_QUERY = (("startAt", "start_at"), ("maxResults", "max_results"))
# The simple fields of an issue: argument -> where it goes among the fields.
SIMPLE_FIELDS = {"project_key": "project.key", "issue_type": "issuetype.name"}
SIMPLE_FIELDS |= {"summary": "summary", "priority": "priority.name"}
SIMPLE_FIELDS |= {"assignee_account_id": "assignee.accountId"}
SIMPLE_FIELDS |= {"reporter_account_id": "reporter.accountId"}
CONVENIENCE = tuple(Arg(name, trim=True) for name in (*SIMPLE_FIELDS, "description"))
CONVENIENCE += (Arg("labels", CSV),)
RAW_FIELDS = (Arg("fields", OBJECT), Arg("update", OBJECT))


def adf(text: str) -> dict[str, Any]:
    """One paragraph of plain text in Atlassian Document Format."""
    paragraph = {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    return {"type": "doc", "version": 1, "content": [paragraph]}


def api_version(raw: str) -> str:
    """ "2" or "3" of `2`, `v3`, `V2`...; "3" when unset."""
    text = raw.strip()
    if not text:
        return "3"
    version = text.lower().removeprefix("v")
    if version not in ("2", "3"):
        raise NodeError(f"unsupported api_version {quoted(raw)}")
    return version


def issue_fields(a: dict[str, Any]) -> dict[str, Any]:
    """The issue fields of the convenience arguments merged under the raw `fields` (which win)."""
    fields: dict[str, Any] = {}
    for name, where in SIMPLE_FIELDS.items():
        if a[name]:
            put(fields, where, a[name])
    if a["description"]:
        fields["description"] = adf(a["description"])
    if a["labels"]:
        fields["labels"] = a["labels"]
    raw: dict[str, Any] = a["fields"]
    return fields | raw


def _with_update(body: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    return body | ({"update": a["update"]} if a["update"] else {})


def _issue_create(call: Call) -> dict[str, Any]:
    fields = issue_fields(call.args)
    if not fields:
        raise NodeError("argument 'fields' is required")
    if any(fields.get(name) is None for name in ("project", "issuetype", "summary")):
        raise NodeError(
            "arguments 'project_key', 'issue_type', and 'summary' are required when fields "
            "are not provided"
        )
    return {"body": _with_update({"fields": fields}, call.args)}


def _issue_update(call: Call) -> dict[str, Any]:
    fields = issue_fields(call.args)
    if not fields and not call.args["update"]:
        raise NodeError("argument 'fields' or 'update' is required")
    return {"body": _with_update({"fields": fields} if fields else {}, call.args)}


def _transition_apply(call: Call) -> dict[str, Any]:
    a = call.args
    if not a["transition_id"] and not a["transition"]:
        raise NodeError("argument 'transition_id' or 'transition' is required")
    transition = ({"id": a["transition_id"]} if a["transition_id"] else {}) | a["transition"]
    body = {"transition": transition} | ({"fields": a["fields"]} if a["fields"] else {})
    return {"body": _with_update(body, a)}


def _comment_create(call: Call) -> dict[str, Any]:
    # As upstream: `text_body` only when `body` is absent or null; any other body goes as it
    # is, "" too (`if bodyContent == nil`).
    content, text = call.args["body"], call.args["text_body"].strip()
    if content is None:
        if not text:
            raise NodeError("argument 'body' or 'text_body' is required")
        content = adf(text)
    return {"body": {"body": content}}


def _issue_search(call: Call) -> dict[str, Any]:
    # v3's /search is retired in Jira Cloud: /search/jql is its successor.
    path = API + ("/search/jql" if call.args["api_version"] == "3" else "/search")
    # Upstream sends `splitCSV(fields)` whenever `fields != ""`: a text of blanks and commas
    # only is a list of no items, which Go's nil slice writes as `null`.
    body = call.request().body or {}
    for name in ("fields", "expand"):
        given = call.ctx.params.get(name)
        if isinstance(given, str) and given != "" and not call.args[name]:
            body[name] = None
    return {"path": path, "body": body}


def _project_list(call: Call) -> dict[str, Any]:
    # v2 has no paginated search: the plain list, without paging parameters.
    return {"path": API + "/project", "query": {}} if call.args["api_version"] == "2" else {}


def _user_get(call: Call) -> dict[str, Any]:
    a, v2 = call.args, call.args["api_version"] == "2"
    if a["query"].strip():
        return {"path": API + "/user/search", "query": {"query": a["query"].strip()}}
    for name, key, allowed in (
        ("account_id", "accountId", True),
        ("username", "username", v2),
        ("user_key", "key", v2),
    ):
        if allowed and a[name]:
            return {"path": API + "/user", "query": {key: a[name]}}
    raise NodeError(
        "provide a 'query' (name/email) to search, or an 'account_id' (v3) / 'username' (v2) "
        "for exact lookup"
    )


def _site(shape: Shape | None) -> Hook:
    """Check and shape the request, resolve the site, send."""

    def hook(call: Call) -> dict[str, Any]:
        call.args["api_version"] = api_version(call.args["api_version"])
        changes = shape(call) if shape else {}
        call.base = site_base(call, call.base)
        return call.send(call.request(**changes))

    return hook


def _tool(
    name: str, method: str, path: str, *args: Arg, shape: Shape | None = None, **spec: Any
) -> Tool:
    """A Jira tool: every one takes the site arguments and resolves the site to send."""
    make = family("integration.jira", "jira")
    return make(name, method, path, *args, *SITE, hook=_site(shape), **spec)


EXPAND = Arg("expand")
TRANSITIONS = ISSUE + "/transitions"
COMMENTS = ISSUE + "/comment"
SEARCH: tuple[Arg, ...] = (Arg("jql", required=True), *PAGE, Arg("fields", CSV), Arg("expand", CSV))
SEARCH += (Arg("validate_query", MAYBE_FLAG),)
SEARCH_BODY = (("jql", "jql"), *PAGE_QUERY, *named("fields", "expand"))
SEARCH_BODY += (("validateQuery", "validate_query"),)
TRANSITION = (Arg("transition_id"), Arg("transition", OBJECT), *RAW_FIELDS)
COMMENT = (Arg("body", ANY), Arg("text_body"))
COMMENT_PAGE = (*PAGE, Arg("order_by"), EXPAND)
NOTIFY = Arg("notify_users", MAYBE_FLAG)
USER = tuple(map(Arg, ("query", "account_id", "username", "user_key")))
COMMENT_LIST_QUERY = (*PAGE_QUERY, ("orderBy", "order_by"), ("expand", "expand"))

register(
    _tool("issue_create", "POST", API + "/issue", *RAW_FIELDS, *CONVENIENCE, shape=_issue_create),
    _tool(
        "issue_get", "GET", ISSUE, ISSUE_KEY, Arg("fields"), EXPAND, query=named("fields", "expand")
    ),
    _tool(
        "issue_update",
        "PUT",
        ISSUE,
        ISSUE_KEY,
        *RAW_FIELDS,
        NOTIFY,
        *CONVENIENCE,
        query=(("notifyUsers", "notify_users"),),
        shape=_issue_update,
    ),
    _tool(
        "issue_search", "POST", API + "/search/jql", *SEARCH, body=SEARCH_BODY, shape=_issue_search
    ),
    _tool("issue_transition_list", "GET", TRANSITIONS, ISSUE_KEY, EXPAND, query=named("expand")),
    _tool(
        "issue_transition_apply",
        "POST",
        TRANSITIONS,
        ISSUE_KEY,
        *TRANSITION,
        shape=_transition_apply,
    ),
    _tool("comment_create", "POST", COMMENTS, ISSUE_KEY, *COMMENT, shape=_comment_create),
    _tool("comment_list", "GET", COMMENTS, ISSUE_KEY, *COMMENT_PAGE, query=COMMENT_LIST_QUERY),
    _tool(
        "project_list", "GET", API + "/project/search", *PAGE, query=PAGE_QUERY, shape=_project_list
    ),
    _tool("user_get", "GET", API + "/user", *USER, shape=_user_get),
)
