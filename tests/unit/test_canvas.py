"""`runeworker.canvas`: a canvas graph converted as `canvasToWorkflowData` / `toWorkerParameters`
(apps/web/src/lib/workflow-dsl.ts of rune-org/rune) convert it, one test per node type. Every
expected value is what that TypeScript produces once `JSON.stringify` has written it (undefined
keys left out, integral numbers without a fraction)."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest

from runeworker.canvas import (
    INTEGRATION_KINDS,
    CanvasError,
    canvas_graph,
    convert,
    js_number,
    js_number_text,
    js_string,
    missing_credentials,
    sanitize_label,
    to_workflow_data,
)


def cnode(node_id: str, kind: str, **data: Any) -> dict[str, Any]:
    """A canvas node as React Flow keeps it."""
    return {"id": node_id, "type": kind, "position": {"x": 10.0, "y": 20.5}, "data": data}


def cedge(edge_id: str, src: str, dst: str, handle: str | None = None) -> dict[str, Any]:
    edge = {"id": edge_id, "source": src, "target": dst, "type": "default"}
    if handle is not None:
        edge["sourceHandle"] = handle
    return edge


def one(node: dict[str, Any], edges: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The converted node of a graph holding `node` (and the given edges)."""
    (out,) = to_workflow_data({"nodes": [node], "edges": edges or []})["nodes"]
    return out


def params(kind: str, edges: list[dict[str, Any]] | None = None, **data: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = one(cnode("n", kind, label="N", **data), edges)["parameters"]
    return parameters


# -- the node frame -------------------------------------------------------------------------------


def test_a_node_keeps_id_and_position_and_gets_empty_output() -> None:
    out = one(cnode("abc", "log", label="Say it", message="hi"))
    assert out == {
        "id": "abc",
        "name": "Say_it",
        "trigger": False,
        "type": "log",
        "parameters": {"message": "hi"},
        "output": {},
        "position": [10, 20.5],  # JSON.stringify writes 10.0 as 10
    }
    assert list(out) == ["id", "name", "trigger", "type", "parameters", "output", "position"]


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("fetch uptime", "fetch_uptime"),
        ("  Padded  ", "Padded"),  # nodeName trims before sanitizing
        ("a!!b  c", "a_b_c"),  # every other character is `_`, runs collapse
        ("héllo wörld", "h_llo_w_rld"),
        ("123abc", "abc"),  # leading digits go
        ("-9-x", "x"),  # and leading dashes
        ("42", "Node"),  # nothing left: the fallback
        ("x-y_z", "x-y_z"),
        ("__x", "_x"),
        ("😀smile", "_smile"),  # a code point outside the BMP is one `_` after the collapse
        ("\u00a0Nbsp\u00a0", "Nbsp"),  # JavaScript's trim() takes U+00A0
        ("\x1cSep", "_Sep"),  # and not U+001C, which Python's strip() would take
        ("x\u2003y", "x_y"),  # JavaScript's \s matches U+2003
    ],
)
def test_node_names_are_sanitized_labels(label: str, name: str) -> None:
    assert one(cnode("n", "log", label=label))["name"] == name


@pytest.mark.parametrize(("label", "name"), [(None, "DateTimeNow"), ("", "Http"), ("  ", "Log")])
def test_a_node_without_a_label_is_named_after_its_type(label: str | None, name: str) -> None:
    kind = name[0].lower() + name[1:]
    data = {} if label is None else {"label": label}
    assert one(cnode("n", kind, **data))["name"] == name


def test_sanitize_label_returns_the_fallback_for_blank_text() -> None:
    assert sanitize_label(" \t", "Node") == "Node"
    assert sanitize_label("", "") == ""
    assert sanitize_label("9", "") == ""


def test_a_credential_reference_is_copied_and_a_partial_one_dropped() -> None:
    ref = {"id": "7", "name": "Relay", "type": "smtp", "extra": 1}
    assert one(cnode("n", "smtp", credential=ref))["credentials"] == ref
    assert "credentials" not in one(cnode("n", "smtp", credential={"id": 7, "name": "R"}))
    assert "credentials" not in one(cnode("n", "smtp", credential=None))


def test_missing_credentials_names_smtp_and_integration_nodes_without_one() -> None:
    graph = {
        "nodes": [
            cnode("a", "smtp", label="Mail"),
            cnode("b", "smtp", label="Other", credential={"id": "1", "name": "R", "type": "smtp"}),
            cnode("c", "integration.slack.chat.post_message", label="Post"),
            cnode("d", "http", label="Get"),
            cnode("e", "agent", label="Agent"),  # the web app does not ask the agent for one
        ],
        "edges": [],
    }
    assert missing_credentials(graph) == [
        ("Mail", "smtp"),
        ("Post", "integration.slack.chat.post_message"),
    ]


def test_edges_become_src_dst_keeping_a_label_when_present() -> None:
    graph = {
        "nodes": [cnode("a", "trigger"), cnode("1", "log")],
        "edges": [
            {"id": "e1", "source": "a", "target": 1, "label": "true", "labelStyle": {}},
            {"id": "e2", "source": "a", "target": "1"},
            {"id": "e3", "source": "a", "target": "1", "label": None},
        ],
    }
    assert to_workflow_data(graph)["edges"] == [
        {"id": "e1", "src": "a", "dst": "1", "label": "true"},
        {"id": "e2", "src": "a", "dst": "1"},
        {"id": "e3", "src": "a", "dst": "1", "label": None},
    ]


def test_sticky_notes_leave_the_nodes_for_the_notes() -> None:
    note = cnode("s", "stickyNote", label="Note", content="Read me", width=200, height=100.0)
    note["data"] |= {"color": "pink", "fontSize": "md"}
    bare = cnode("t", "stickyNote", color="", fontSize=None, width="wide")
    data = to_workflow_data({"nodes": [cnode("a", "trigger"), note, bare], "edges": []})
    assert [n["id"] for n in data["nodes"]] == ["a"]
    assert data["notes"] == [
        {
            "id": "s",
            "content": "Read me",
            "x": 10,
            "y": 20.5,
            "width": 200,
            "height": 100,
            "color": "pink",
            "font_size": "md",
        },
        {"id": "t", "content": "", "x": 10, "y": 20.5},
    ]


# -- triggers -------------------------------------------------------------------------------------


def test_manual_trigger() -> None:
    out = one(cnode("t", "trigger", label="Trigger"))
    assert (out["type"], out["trigger"], out["parameters"]) == ("ManualTrigger", True, {})
    assert "webhook_guid" not in out


def test_scheduled_trigger_amount_is_a_number_and_unit_any_string() -> None:
    out = one(cnode("t", "scheduledTrigger", label="Every", amount="2", unit="minutes"))
    assert (out["type"], out["trigger"]) == ("ScheduledTrigger", True)
    assert out["parameters"] == {"amount": 2, "unit": "minutes"}
    assert params("scheduledTrigger", amount="often", unit="") == {"amount": None, "unit": ""}
    assert params("scheduledTrigger", unit=3) == {}


def test_webhook_trigger_carries_its_guid_and_no_parameters() -> None:
    out = one(cnode("w", "webhookTrigger", label="Hook", webhookGuid="g-1", path="/x"))
    assert (out["type"], out["trigger"], out["webhook_guid"]) == ("webhook", True, "g-1")
    assert out["parameters"] == {}
    assert list(out)[4] == "webhook_guid"  # between type and parameters
    assert "webhook_guid" not in one(cnode("w", "webhookTrigger", webhookGuid=""))


# -- flow -----------------------------------------------------------------------------------------


def test_if_routes_by_its_true_and_false_handles() -> None:
    edges = [
        cedge("in", "x", "n"),
        cedge("t1", "n", "a", "true"),
        cedge("t2", "n", "b", "true"),  # find(): the first edge of a handle wins
        cedge("f1", "n", "c", "false"),
        cedge("o", "other", "n", "true"),  # not leaving this node
    ]
    out = one(cnode("n", "if", label="If", expression="  $a.b > 1 "), edges)
    assert out["type"] == "conditional"
    assert out["parameters"] == {
        "true_edge_id": "t1",
        "false_edge_id": "f1",
        "expression": "$a.b > 1",
    }
    assert params("if", expression="   ") == {}
    assert params("if", [cedge("f", "n", "c", "false")]) == {"false_edge_id": "f"}


def test_switch_rules_and_routes() -> None:
    rules = [
        {"value": " $x.kind ", "operator": "==", "compare": " a ", "ui": 1},
        {"value": "$x.n", "operator": "~=", "compare": "  "},  # unknown operator is ==
        {"operator": "contains"},
    ]
    edges = [
        cedge("r0", "n", "a", "switch-case-0"),
        cedge("r2", "n", "c", "switch-case-2"),
        cedge("r9", "n", "d", "switch-case-9"),  # no such rule: not a route
        cedge("fb", "n", "e", "switch-fallback"),
    ]
    assert params("switch", edges, rules=rules) == {
        "rules": [
            {"value": "$x.kind", "operator": "==", "compare": "a"},
            {"value": "$x.n", "operator": "=="},
            {"operator": "contains"},
        ],
        "routes": ["r0", None, "r2", "fb"],
    }


def test_switch_without_edges_has_no_routes_and_without_rules_only_the_fallback() -> None:
    assert params("switch", rules=[{"value": "v"}]) == {"rules": [{"value": "v", "operator": "=="}]}
    assert params("switch", [cedge("fb", "n", "e", "switch-fallback")]) == {"routes": ["fb"]}
    assert params("switch", rules="not a list") == {}


def test_wait() -> None:
    assert params("wait", amount="5", unit="minutes") == {"amount": 5, "unit": "minutes"}
    assert params("wait", amount="", unit=7) == {"amount": 0, "unit": "7"}  # Number("") is 0
    assert params("wait", unit="") == {}


def test_merge() -> None:
    assert params("merge", wait_mode="wait_for_all", timeout="30") == {
        "wait_mode": "wait_for_all",
        "timeout": 30,
    }
    assert params("merge", wait_mode="", timeout=None) == {"timeout": 0}  # Number(null) is 0
    assert params("merge") == {}


def test_aggregator_has_no_parameters() -> None:
    assert params("aggregator", input_array="$x", anything=1) == {}


def test_split_reads_array_field_as_input_array() -> None:
    assert params("split", array_field="$Get.body.values") == {"input_array": "$Get.body.values"}
    assert params("split", array_field=5) == {"input_array": "5"}
    assert params("split", input_array="$x") == {}


# -- I/O nodes ------------------------------------------------------------------------------------


def test_http_fields() -> None:
    data = {
        "method": "post",
        "url": "https://api.example.com/x",
        "headers": {"X-A": "1"},
        "query": {"q": "rune"},
        "body": {"a": 1},
        "timeout": 30,
        "retry": 2,
        "retry_delay": 1.5,
        "raise_on_status": " 4xx,5xx ",
        "ignore_ssl": False,
    }
    assert params("http", **data) == {
        "method": "POST",
        "url": "https://api.example.com/x",
        "headers": {"X-A": "1"},
        "query": {"q": "rune"},
        "body": {"a": 1},
        "timeout": "30",
        "retry": "2",
        "retry_delay": "1.5",
        "raise_on_status": "4xx,5xx",
        "ignore_ssl": False,
    }


def test_http_reads_the_legacy_camel_case_fields_after_the_snake_case_ones() -> None:
    legacy = {"retries": 3, "retryDelay": 250, "raiseOnStatus": "5xx", "ignoreSSL": True}
    assert params("http", url="u", **legacy) == {
        "url": "u",
        "retry": "3",
        "retry_delay": "250",
        "raise_on_status": "5xx",
        "ignore_ssl": True,
    }
    both = {"retry": 0, "retries": 3, "raise_on_status": "  ", "raiseOnStatus": "5xx"}
    assert params("http", **both) == {"retry": "0", "raise_on_status": "5xx"}


def test_http_keeps_a_null_body_and_drops_what_is_not_of_its_type() -> None:
    data = {"body": None, "timeout": 30.0, "retry": "3", "headers": "X: 1", "ignore_ssl": "yes"}
    assert params("http", method="", url="", **data) == {"body": None, "timeout": "30"}


def test_smtp_addresses_and_placeholders() -> None:
    data = {
        "from": "me@mail.com",
        "to": " a@mail.com , b@mail.com,, ",
        "cc": "c@mail.com",
        "bcc": " , ",
        "subject": "Hi",
        "body": "Hello",
    }
    assert params("smtp", **data) == {
        "from": "me@mail.com",
        "to": ["a@mail.com", "b@mail.com"],
        "cc": "c@mail.com",
        "subject": "Hi",
        "body": "Hello",
    }
    placeholders = {
        "from": "sender@example.com",
        "to": " recipient@example.com ",
        "subject": "Email subject line",
        "body": "Email message body",
    }
    assert params("smtp", **placeholders) == {}


def test_smtp_address_that_is_not_text_is_refused_like_the_typescript_throws() -> None:
    with pytest.raises(CanvasError, match=r"canvas node n: data.to must be a string"):
        params("smtp", to=["a@mail.com"])


def test_log() -> None:
    assert params("log", message="", level="warn") == {"message": "", "level": "warn"}
    assert params("log", message=5, level="") == {}


def test_agent() -> None:
    model = {"name": "gemini-3.1-flash-lite-preview", "provider": "gemini", "temperature": 0.2}
    tool = {
        "ui_id": "tool_1",
        "name": "lookup",
        "credential": {"id": "3"},
        "config": {
            "url": "https://x",
            "headers": [{"ui_id": "field_1", "key": "A", "value": "1"}],
            "query": None,
        },
    }
    data = {
        "model": model,
        "system_prompt": "Be brief.",
        "messages": [{"role": "user", "ui_id": "message_1", "content": "$x"}],
        "tools": [tool],
        "mcp_servers": [{"url": "https://mcp"}],
    }
    assert params("agent", **data) == {
        "model": model,
        "system_prompt": "Be brief.",
        "messages": [{"role": "user", "content": "$x"}],
        "tools": [
            {
                "name": "lookup",
                "credential": {"id": "3"},
                "config": {"url": "https://x", "headers": [{"key": "A", "value": "1"}]},
            }
        ],
        "mcp_servers": [{"url": "https://mcp"}],
    }
    empty = {"model": None, "system_prompt": "", "messages": [], "tools": [], "mcp_servers": []}
    assert params("agent", **empty) == {}


def test_agent_tool_without_config_is_refused() -> None:
    with pytest.raises(CanvasError, match="agent tool needs a config"):
        params("agent", tools=[{"name": "t"}])


# -- date and time --------------------------------------------------------------------------------


def test_date_time_now() -> None:
    assert params("dateTimeNow", format="2006-01-02", timezone=" UTC ") == {
        "format": "2006-01-02",
        "timezone": " UTC ",  # tested trimmed, sent as typed
    }
    assert params("dateTimeNow", format="  ", timezone=3) == {}


@pytest.mark.parametrize("kind", ["dateTimeAdd", "dateTimeSubtract"])
def test_date_time_add_and_subtract(kind: str) -> None:
    data = {"date": "$now", "amount": "1.5", "unit": "hours", "format": "F", "timezone": "UTC"}
    assert params(kind, **data) == {
        "date": "$now",
        "amount": 1.5,
        "unit": "hours",
        "format": "F",
        "timezone": "UTC",
    }
    assert params(kind, date=" ", amount=2, unit="") == {"amount": 2}


def test_date_time_format() -> None:
    assert params("dateTimeFormat", date="$d", format="F", timezone="UTC", unit="x") == {
        "date": "$d",
        "format": "F",
        "timezone": "UTC",
    }


def test_date_time_parse() -> None:
    assert params("dateTimeParse", date="$d", timezone="UTC", format="F") == {
        "date": "$d",
        "timezone": "UTC",
    }


# -- data nodes -----------------------------------------------------------------------------------


def test_edit_assignments_get_their_defaults() -> None:
    assignments = [
        {"name": "a", "value": "$x", "type": "number"},
        {"value": 0},  # `a.value || ""`: 0 is falsy
        {"name": "c", "value": True, "type": ""},
    ]
    assert params("edit", mode="keep_only_set", assignments=assignments) == {
        "mode": "keep_only_set",
        "assignments": [
            {"name": "a", "value": "$x", "type": "number"},
            {"name": "", "value": "", "type": "string"},
            {"name": "c", "value": True, "type": "string"},
        ],
    }
    assert params("edit", mode="", assignments=[]) == {}


def test_filter() -> None:
    rules = [{"field": "age", "operator": ">", "value": "30"}, {"field": "name"}]
    rules.append({"field": None, "operator": "", "value": 0})  # `||` replaces every falsy value
    assert params("filter", input_array=" $rows ", match_mode="any", rules=rules) == {
        "input_array": "$rows",
        "match_mode": "any",
        "rules": [
            {"field": "age", "operator": ">", "value": "30"},
            {"field": "name", "operator": "==", "value": ""},
            {"field": "", "operator": "==", "value": ""},
        ],
    }


def test_sort() -> None:
    rules = [{"field": "age", "direction": "desc", "type": "number"}, {"field": "name"}]
    assert params("sort", input_array="$rows", rules=rules) == {
        "input_array": "$rows",
        "rules": [
            {"field": "age", "direction": "desc", "type": "number"},
            {"field": "name", "direction": "asc", "type": "auto"},
        ],
    }


def test_limit() -> None:
    assert params("limit", input_array="$rows", count="10") == {"input_array": "$rows", "count": 10}
    assert params("limit", count="") == {}
    assert params("limit", count="ten") == {"count": None}  # NaN, which JSON writes as null


def test_a_rule_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(CanvasError, match=r"data.rules\[0\] must be an object"):
        params("filter", rules=[None])


# -- integrations ---------------------------------------------------------------------------------


def test_integration_arguments_are_the_parameters() -> None:
    kind = "integration.google.sheets.read_range"
    arguments = {"range": "Sheet1!A2:Z", "spreadsheet_id": "abc", "n": 2.0}
    out = one(cnode("n", kind, label="Read", arguments=arguments, integrationKind=kind))
    assert (out["type"], out["parameters"]) == (kind, {**arguments, "n": 2})
    assert params(kind) == {}  # `d.arguments ?? {}`


def test_an_integration_kind_upstream_does_not_list_gets_no_parameters() -> None:
    assert params("integration.example.thing.do", arguments={"a": 1}) == {}
    assert one(cnode("n", "custom", a=1))["type"] == "custom"


def test_the_integration_kinds_are_upstreams_45() -> None:
    assert len(INTEGRATION_KINDS) == 45
    assert "integration.dropbox.files.get_temporary_link" in INTEGRATION_KINDS


# -- JavaScript's conversions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (30.0, "30"),
        (1.5, "1.5"),
        (-0.5, "-0.5"),
        (1e16, "10000000000000000"),  # Python's repr writes 1e+16
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (123456.789, "123456.789"),
        (math.inf, "Infinity"),
    ],
)
def test_js_number_text(value: float, text: str) -> None:
    assert js_number_text(value) == text


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (" 12 ", 12),
        ("0x1f", 31),
        ("1e3", 1000),
        (".5", 0.5),
        ("", 0),
        ("12px", None),
        ("Infinity", None),
        ("inf", None),  # float() would take it, Number() does not
        ("1_000", None),
        (True, 1),
        (None, 0),
        ([], 0),
        (["7"], 7),
        ({}, None),
    ],
)
def test_js_number(value: Any, number: float | None) -> None:
    assert js_number(value) == number


def test_js_string() -> None:
    assert [js_string(v) for v in (None, True, 3, 10**22, [1, None, "a"], {})] == [
        "null",
        "true",
        "3",
        "1e+22",
        "1,,a",
        "[object Object]",
    ]


# -- what is a canvas graph -----------------------------------------------------------------------


def test_a_template_and_a_bare_graph_are_canvas_graphs_a_definition_is_not() -> None:
    graph = {"nodes": [cnode("a", "trigger")], "edges": []}
    assert canvas_graph({"name": "T", "workflow_data": graph}) is graph
    assert canvas_graph(graph) is graph
    definition = {"nodes": [{"id": "a", "type": "log", "parameters": {}}], "edges": []}
    assert canvas_graph(definition) is None
    assert canvas_graph({"workflow_data": definition}) is None
    assert canvas_graph({"workflow_definition": definition}) is None
    assert canvas_graph({"nodes": []}) is None
    assert canvas_graph([graph]) is None


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"nodes": {}, "edges": []}, "nodes must be a list"),
        ({"nodes": [{"id": "a", "data": {}, "position": {}}], "edges": []}, "string type"),
        ({"nodes": [{"id": "a", "type": 5, "data": {}, "position": {}}], "edges": []}, "type"),
        ({"nodes": [None], "edges": []}, "canvas node 0: must be an object"),
        ({"nodes": [{"id": "a", "type": "log", "position": {}}], "edges": []}, "data must be"),
        ({"nodes": [{"id": "a", "type": "log", "data": {}}], "edges": []}, "a: position"),
        ({"nodes": [], "edges": {}}, "edges must be a list"),
    ],
)
def test_a_graph_of_the_wrong_shape_is_refused(graph: dict[str, Any], message: str) -> None:
    with pytest.raises(CanvasError, match=message):
        to_workflow_data(graph)


def test_convert_refuses_what_is_not_a_canvas_graph() -> None:
    with pytest.raises(CanvasError, match="not a canvas graph"):
        convert({"nodes": [{"id": "a", "parameters": {}}]})


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def test_a_deeply_nested_value_converts_without_overflowing() -> None:
    body = nested(950)  # about as deep as msgspec reads, too deep for a recursive walk
    converted = params("http", body=body, timeout=1.0)["body"]
    assert msgspec.json.encode(converted) == msgspec.json.encode(body)


def test_a_value_too_deep_to_convert_is_refused_not_crashed() -> None:
    with pytest.raises(CanvasError, match="nested too deeply"):
        params("http", url=nested(5000))  # `String(url)` of a nested array


# -- found by running the web app's own conversion ------------------------------------------------
# Each case below is a canvas for which `canvasToWorkflowData` (apps/web/src/lib/workflow-dsl.ts
# of rune-org/rune, bundled and run by Node; tests/consumers/webapp_canvas) and runeworker gave
# different results. The expected values are what the TypeScript printed.


def test_integers_beyond_double_precision_are_rounded_as_json_parse_reads_them() -> None:
    node = {
        "id": "n",
        "type": "wait",
        "position": {"x": 12345678901234567890, "y": 9007199254740993},
        "data": {"label": "W", "amount": 123456789012345678901, "unit": "hours"},
    }
    out = one(node)
    assert out["position"] == [12345678901234567000, 9007199254740992]
    assert out["parameters"] == {"amount": 123456789012345680000, "unit": "hours"}
    assert params("http", retry=9007199254740993, url=12345678901234567890) == {
        "retry": "9007199254740992",  # String(2 ** 53 + 1 as a double)
        "url": "12345678901234567000",
    }
    hook = one(cnode("n", "webhookTrigger", webhookGuid=12345678901234567890))
    assert hook["webhook_guid"] == 12345678901234567000
    assert params("log", level=[9007199254740993]) == {"level": [9007199254740992]}


@pytest.mark.parametrize("kind", ["wait", "scheduledTrigger", "dateTimeAdd"])
def test_number_of_text_reads_ascii_digits_only(kind: str) -> None:
    assert params(kind, amount="\u0661\u0662") == {"amount": None}  # Arabic-Indic 12: NaN
    assert params("limit", count="\uff17") == {"count": None}  # a fullwidth 7
    assert params("merge", timeout="\u0663") == {"timeout": None}


def test_a_rule_that_is_not_an_object_has_none_of_its_fields() -> None:
    assert params("switch", rules=[1, "5", [2], True])["rules"] == [{"operator": "=="}] * 4
    assert params("filter", rules=["x"])["rules"] == [{"field": "", "operator": "==", "value": ""}]
    sort_rule = {"field": "", "direction": "asc", "type": "auto"}
    assert params("sort", rules=[0, False])["rules"] == [sort_rule, sort_rule]
    assignment = {"name": "", "value": "", "type": "string"}
    assert params("edit", assignments=[[1], "a"])["assignments"] == [assignment, assignment]
    with pytest.raises(CanvasError, match=r"canvas node n: data.assignments\[1\] must be"):
        params("edit", assignments=[{}, None])  # `a.name` of null throws


def test_a_switch_operator_that_is_not_text_is_written_as_equals() -> None:
    rules = [{"operator": []}, {"operator": {"op": ">"}}, {"operator": [">"]}, {"operator": 1}]
    assert params("switch", rules=rules)["rules"] == [{"operator": "=="}] * 4


@pytest.mark.parametrize("label", [5, True, [], ["x"], {}, {"a": 1}])
def test_a_label_that_is_not_text_is_refused_like_the_typescript_throws(label: Any) -> None:
    with pytest.raises(CanvasError, match=r"canvas node n: data.label must be a string"):
        one(cnode("n", "log", label=label))
    with pytest.raises(CanvasError, match=r"data.label"):
        missing_credentials({"nodes": [cnode("n", "smtp", label=label)], "edges": []})


@pytest.mark.parametrize("label", [0, False, None, "", " "])
def test_a_false_label_names_the_node_after_its_type(label: Any) -> None:
    assert one(cnode("n", "log", label=label))["name"] == "Log"


def test_a_sticky_note_label_is_never_read() -> None:
    note = cnode("s", "stickyNote", label=5, content="c")
    assert to_workflow_data({"nodes": [note], "edges": []})["notes"] == [
        {"id": "s", "content": "c", "x": 10, "y": 20.5}
    ]


@pytest.mark.parametrize("data", [None, "missing"])
def test_a_node_without_data_is_refused_a_sticky_note_without_it_is_empty(data: Any) -> None:
    node: dict[str, Any] = {"id": "n", "type": "http", "position": {"x": 1, "y": 2}}
    if data is None:
        node["data"] = None
    with pytest.raises(CanvasError, match="canvas node n: data must be an object"):
        to_workflow_data({"nodes": [node], "edges": []})
    note = {**node, "type": "stickyNote"}
    assert to_workflow_data({"nodes": [note], "edges": []})["notes"] == [
        {"id": "n", "content": "", "x": 1, "y": 2}
    ]


@pytest.mark.parametrize("data", [3, 0, True, False, "", "abc", [], [1, 2]])
def test_data_that_is_not_an_object_has_none_of_its_fields(data: Any) -> None:
    node = {"id": "n", "type": "wait", "position": {"x": 1, "y": 2}, "data": data}
    out = to_workflow_data({"nodes": [node], "edges": []})["nodes"][0]
    assert (out["name"], out["parameters"]) == ("Wait", {})


@pytest.mark.parametrize("position", ["abc", [1, 2], 7, True, {"z": 1}])
def test_a_position_that_is_not_an_object_has_no_x_and_y(position: Any) -> None:
    node = {"id": "n", "type": "log", "position": position, "data": {}}
    assert to_workflow_data({"nodes": [node], "edges": []})["nodes"][0]["position"] == [None, None]
    note = {**node, "type": "stickyNote"}
    assert to_workflow_data({"nodes": [note], "edges": []})["notes"] == [{"id": "n", "content": ""}]


@pytest.mark.parametrize("position", [None, "missing"])
def test_a_node_without_a_position_is_refused(position: Any) -> None:
    node: dict[str, Any] = {"id": "n", "type": "log", "data": {}}
    if position is None:
        node["position"] = None
    with pytest.raises(CanvasError, match="canvas node n: position must be an object"):
        to_workflow_data({"nodes": [node], "edges": []})


def test_a_node_id_is_kept_whatever_its_type_and_left_out_when_missing() -> None:
    nodes = [
        {"type": "log", "position": {"x": 1, "y": 2}, "data": {}},
        {"id": 5, "type": "log", "position": {"x": 1, "y": 2}, "data": {}},
        {"id": None, "type": "stickyNote", "position": {"x": 1, "y": 2}, "data": {}},
    ]
    out = to_workflow_data({"nodes": nodes, "edges": []})
    assert ["id" in n for n in out["nodes"]] == [False, True]
    assert out["nodes"][1]["id"] == 5
    assert out["notes"] == [{"id": None, "content": "", "x": 1, "y": 2}]


def test_an_edge_without_source_or_target_names_them_undefined() -> None:
    edges: list[Any] = [{"id": "e1", "target": "b"}, {"id": "e2", "source": "a"}, {}]
    assert to_workflow_data({"nodes": [], "edges": edges})["edges"] == [
        {"id": "e1", "src": "undefined", "dst": "b"},
        {"id": "e2", "src": "a", "dst": "undefined"},
        {"src": "undefined", "dst": "undefined"},
    ]


@pytest.mark.parametrize("entry", [1, "e", True, [], ["a"]])
def test_an_edge_that_is_not_an_object_has_none_of_its_fields(entry: Any) -> None:
    graph = {"nodes": [cnode("a", "if", expression="x")], "edges": [entry]}
    out = to_workflow_data(graph)
    assert out["edges"] == [{"src": "undefined", "dst": "undefined"}]
    assert out["nodes"][0]["parameters"] == {"expression": "x"}


def test_a_null_edge_and_a_missing_edge_list_are_refused_like_the_typescript_throws() -> None:
    with pytest.raises(CanvasError, match=r"canvas edge 0: must not be null"):
        to_workflow_data({"nodes": [], "edges": [None]})
    with pytest.raises(CanvasError, match=r"canvas graph: edges must be a list"):
        to_workflow_data({"nodes": [cnode("a", "trigger")]})


def test_an_edge_leaves_a_node_only_when_source_and_id_are_strictly_equal() -> None:
    nodes = [
        {"id": 1, "type": "if", "position": {"x": 0, "y": 0}, "data": {}},
        {"type": "if", "position": {"x": 0, "y": 0}, "data": {}},
        {"id": True, "type": "if", "position": {"x": 0, "y": 0}, "data": {}},
        {"id": {"k": 1}, "type": "if", "position": {"x": 0, "y": 0}, "data": {}},
    ]
    edges = [
        {"id": "t1", "source": 1.0, "target": "x", "sourceHandle": "true"},  # 1 === 1.0
        {"id": "t2", "source": None, "target": "x", "sourceHandle": "true"},  # null !== undefined
        {"id": "t3", "target": "x", "sourceHandle": "false"},  # undefined === undefined
        {"id": "t4", "source": 1, "target": "x", "sourceHandle": "false"},  # true !== 1
        {"id": "t5", "source": {"k": 1}, "target": "x", "sourceHandle": "true"},  # two objects
    ]
    out = to_workflow_data({"nodes": nodes, "edges": edges})["nodes"]
    assert [n["parameters"] for n in out] == [
        {"true_edge_id": "t1", "false_edge_id": "t4"},
        {"false_edge_id": "t3"},
        {},
        {},
    ]
