"""A Rune canvas graph turned into the workflow definition workers run.

The Rune web app keeps a workflow as a React Flow graph (nodes with `type`, `data`, `position`;
edges with `source`, `target`, `sourceHandle`); an official template (rune-org/rune-templates,
`templates/<category>/<name>.json`) carries one as `workflow_data`. When the web app saves a
workflow it turns the graph into the definition the Rune API stores and later publishes to the
workers: `canvasToWorkflowData` and `toWorkerParameters` in apps/web/src/lib/workflow-dsl.ts of
rune-org/rune. This module does the same for every node type that file handles; the facts (type
names, node names, the parameter each canvas field becomes, its default, the edge ids an `if` or a
`switch` routes by) are taken from there, the code is written here.

What the Rune API adds before publishing (services/api/src/workflow/service.py
`resolve_workflow_credentials`) is not done here: a node's `credentials` stays the reference the
canvas holds (`{id, name, type}`), and a template holds none, so a node that needs one (smtp, the
`integration.*` kinds, an agent's model key) fails when it runs, with its usual error.
`missing_credentials` names the nodes the web app would refuse to save for lack of one
(`MissingNodeCredentialsError`); the conversion itself goes on, as the web app does with
`ignoreMissingCredentials`.

JavaScript semantics are kept where they change the result: `JSON.parse` reading every number
as a double (an integer beyond 2**53 is rounded: 9007199254740993 is 9007199254740992), truthiness
(`0`, `""`, `null` are false), `String(x)`, `Number(x)` (a text that is not an ASCII decimal,
`0x`/`0o`/`0b` number or Infinity becomes NaN, which JSON writes as `null`), `trim()`, strict
equality (`e.source === n.id`), a property of a value that is not an object being undefined
(data, a rule, an edge that is a text or a list holds none of its fields), and `JSON.stringify`
writing an integral number without a fraction and leaving out a key whose value is `undefined`.
Where the TypeScript would throw (a field of the wrong type that it calls a string method on, a
label that is true but not a string, a node without data or a position, a null rule or edge, no
edge list), `CanvasError` names the node and the field.

Checked against the TypeScript itself, run by Node on the official templates, the web app's
samples and about nineteen thousand generated canvases (tests/consumers/webapp_canvas). One
difference is left: `{...text}` (an agent message, tool config or header given as a text instead
of an object) splits the text into UTF-16 code units in JavaScript, into code points here, so a
character outside the Basic Multilingual Plane stays whole instead of becoming two lone
surrogates (which no UTF-8 JSON can carry). What the web app does to a template before its
editor holds it (`sanitizeGraph` in apps/web/src/features/canvas/lib/graphIO.ts: unknown node
types and dangling edges dropped, switch handles taken from edge labels, a webhook trigger given
a fresh GUID) is not done here either.

Pure: the standard library and `runeworker.errors` only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from runeworker.errors import WorkflowError

Json = dict[str, Any]


class CanvasError(WorkflowError):
    """A canvas graph that cannot be converted (its shape, not its meaning)."""


# `toWorkerType`: canvas type -> worker type; every other type keeps its name.
WORKER_TYPES = {
    "trigger": "ManualTrigger",
    "scheduledTrigger": "ScheduledTrigger",
    "webhookTrigger": "webhook",
    "if": "conditional",
}
TRIGGER_TYPES = frozenset({"trigger", "scheduledTrigger", "webhookTrigger"})
STICKY_NOTE = "stickyNote"

# `IntegrationNodeKind` (apps/web/src/features/canvas/integrations/types.ts): the integration
# kinds whose `data.arguments` become the parameters. Any other type (an unknown
# `integration.*` included) gets `{}`, as `toWorkerParameters`' default branch gives.
INTEGRATION_KINDS = frozenset(
    {
        *(f"integration.google.gmail.{t}" for t in ("send_email", "read_email", "search_emails")),
        "integration.google.gmail.list_labels",
        *(
            f"integration.google.sheets.{t}"
            for t in (
                "read_range",
                "write_range",
                "append_row",
                "clear",
                "create_sheet",
                "delete_sheet",
                "delete_rows",
                "delete_columns",
                "update_row",
                "create_spreadsheet",
                "delete_spreadsheet",
            )
        ),
        *(
            f"integration.jira.{t}"
            for t in (
                "issue_create",
                "issue_get",
                "issue_update",
                "issue_search",
                "issue_transition_list",
                "issue_transition_apply",
                "comment_create",
                "comment_list",
                "project_list",
                "user_get",
            )
        ),
        *(
            f"integration.microsoft.outlook.{t}"
            for t in ("send_email", "read_email", "search_emails", "list_folders")
        ),
        *(f"integration.slack.chat.{t}" for t in ("post_message", "update", "delete")),
        *(f"integration.slack.conversations.{t}" for t in ("history", "find_message")),
        "integration.slack.users.lookup_by_email",
        *(
            f"integration.telegram.bot.{t}"
            for t in ("send_message", "send_photo", "send_document", "get_updates", "get_chat_id")
        ),
        *(
            f"integration.dropbox.files.{t}"
            for t in ("list_folder", "get_metadata", "get_temporary_link", "delete", "search")
        ),
    }
)

# `NODE_TYPES_REQUIRING_CREDENTIALS` and `nodeTypeRequiresCredential`
# (apps/web/src/lib/credentials.ts).
_NEEDS_CREDENTIAL = frozenset({"smtp"})

# `LEGACY_SMTP_PLACEHOLDER_VALUES` (workflow-dsl.ts): old editor placeholders, never sent.
SMTP_PLACEHOLDERS = frozenset(
    {
        "sender@example.com",
        "recipient@example.com",
        "cc@example.com",
        "bcc@example.com",
        "Email subject line",
        "Email message body",
    }
)

# `switchRuleHandleId` / `switchFallbackHandleId`
# (apps/web/src/features/canvas/utils/switchHandles.ts).
SWITCH_CASE_HANDLE = "switch-case-{}"
SWITCH_FALLBACK_HANDLE = "switch-fallback"
_SWITCH_OPERATORS = frozenset({"==", "!=", ">", "<", ">=", "<=", "contains"})


# -- JavaScript's conversions --------------------------------------------------------------------

# What JavaScript's `\s` and `String.prototype.trim` count as white space (ECMA-262
# WhiteSpace and LineTerminator); Python's `\s` and `str.strip` differ (U+001C..U+001F, U+FEFF).
_JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_SPACES = re.compile(f"[{_JS_SPACE}]+")
_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_-]")
_UNDERSCORES = re.compile(r"_+")
_LEADING_DIGITS = re.compile(r"^[-0-9]+")
_NAME_START = re.compile(r"^[a-zA-Z_]")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RADIX = re.compile(r"0([xXoObB])([0-9a-zA-Z]+)")
_RADIX_BASES = {"x": 16, "o": 8, "b": 2}
_SAFE_INTEGER = 2**53


def js_trim(text: str) -> str:
    """`String.prototype.trim`."""
    return text.strip(_JS_SPACE)


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value: `null`, `false`, `0`, `""` are false; every
    object and array (even empty) is true."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def _is_number(value: Any) -> bool:
    """`typeof value === "number"`."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def js_number_text(value: float) -> str:
    """`Number.prototype.toString()`: the shortest digits that read back, written in plain
    notation from 1e-6 up to 1e21 and in exponent notation (`1e+21`, `1e-7`) outside."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(float(value)))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent = int(exponent) + len(digit_tuple) - len(digits)
    k = len(digits)
    n = k + exponent  # the value is 0.DIGITS x 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def js_string(value: Any) -> str:
    """`String(value)` of a JSON value."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return js_number_text(value) if abs(value) >= 10**21 else str(value)
    if isinstance(value, float):
        return js_number_text(value)
    if isinstance(value, list):
        return ",".join("" if v is None else js_string(v) for v in value)
    return "[object Object]"


def js_number(value: Any) -> int | float | None:
    """`Number(value)` of a JSON value, as `JSON.stringify` writes it: an integral number as an
    int, NaN and the infinities as None (JSON `null`)."""
    result: float
    if isinstance(value, bool):
        return int(value)
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        result = value
    elif isinstance(value, str):
        result = _text_number(value)
    elif isinstance(value, list):
        result = _text_number(js_string(value))
    else:
        return None
    return _json_number(result)


def _text_number(text: str) -> float:
    """`StringToNumber`: blank is 0; decimal, `0x`/`0o`/`0b` and `Infinity`, else NaN."""
    text = js_trim(text)
    if not text:
        return 0.0
    if text.lstrip("+-") == "Infinity":
        return -math.inf if text.startswith("-") else math.inf
    if _DECIMAL.fullmatch(text):
        return float(text)
    radix = _RADIX.fullmatch(text)
    if radix:
        try:
            return float(int(radix.group(2), _RADIX_BASES[radix.group(1).lower()]))
        except ValueError:
            return math.nan
    return math.nan


def _json_number(value: float) -> int | float | None:
    """A double as `JSON.stringify` writes it: NaN and the infinities as None (`null`), an
    integral one below 1e21 as the int of the digits JavaScript prints (beyond 2**53 those end
    in zeros: 12345678901234567168.0 is written 12345678901234567000), any other as a float."""
    if math.isnan(value) or math.isinf(value):
        return None
    if value.is_integer() and abs(value) < 1e21:
        return int(value) if abs(value) <= _SAFE_INTEGER else int(js_number_text(value))
    return value


def _as_double(value: int) -> int | float:
    """The number `JSON.parse` reads from an integer's text: beyond 2**53 the nearest double
    (as `_json_number` writes it: 9007199254740993 is 9007199254740992), past the largest
    double Infinity."""
    if abs(value) <= _SAFE_INTEGER:
        return value
    try:
        double = float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    number = _json_number(double)
    return double if number is None else number


def _as_json(value: Any) -> Any:
    """A copy of a JSON value as `JSON.stringify` writes it: integral floats without a
    fraction."""
    return _map_numbers(value, lambda n: _json_number(n) if isinstance(n, float) else n)


def _as_parsed(value: Any) -> Any:
    """A copy of a JSON value as `JSON.parse` reads it: every number a double, so an integer
    beyond 2**53 is rounded (`_as_double`)."""
    return _map_numbers(value, lambda n: _as_double(n) if isinstance(n, int) else n)


def _map_numbers(value: Any, number: Callable[[int | float], Any]) -> Any:
    """A copy of a JSON value with `number` applied to each number (not to booleans).
    Iterative, so that nesting as deep as the JSON reader takes cannot overflow."""
    root = [value]
    pending: list[tuple[Any, Any]] = [(root, 0)]
    while pending:
        container, key = pending.pop()
        item = container[key]
        if isinstance(item, int | float) and not isinstance(item, bool):
            container[key] = number(item)
        elif isinstance(item, dict):
            copied = dict(item)
            container[key] = copied
            pending.extend((copied, k) for k in copied)
        elif isinstance(item, list):
            listed = list(item)
            container[key] = listed
            pending.extend((listed, i) for i in range(len(listed)))
    return root[0]


def _spread(value: Any) -> Json:
    """`{...value}` of a JSON value."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str | list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


# -- names ----------------------------------------------------------------------------------------


def sanitize_label(raw: str, fallback: str = "") -> str:
    """`sanitizeNodeLabel` (apps/web/src/features/canvas/utils/nodeLabels.ts): white space and
    every character other than ASCII letters, digits, `_` and `-` become `_`, runs of `_` one,
    leading digits and dashes go, and a name that does not start with a letter or `_` gets one."""
    if not js_trim(raw):
        return fallback
    name = _UNDERSCORES.sub("_", _NOT_NAME_CHAR.sub("_", _JS_SPACES.sub("_", raw)))
    name = _LEADING_DIGITS.sub("", name, count=1) or fallback
    if name and not _NAME_START.match(name):
        name = f"_{name}"
    return name


def node_name(kind: str, data: Json, node_id: str = "?") -> str:
    """`nodeName`: the sanitized label (fallback `Node`), else the type with a capital. A label
    that is true but not a string is refused (the TypeScript calls `trim()` on it and throws)."""
    label = data.get("label")
    if js_truthy(label) and not isinstance(label, str):
        raise CanvasError(f"canvas node {node_id}: data.label must be a string")
    if isinstance(label, str) and js_trim(label):
        return sanitize_label(js_trim(label), "Node")
    return kind[:1].upper() + kind[1:]


# -- parameters -----------------------------------------------------------------------------------


class _Data:
    """A canvas node's `data`, read the way the TypeScript reads it."""

    def __init__(self, node_id: str, data: Json) -> None:
        self.node_id = node_id
        self.data = data

    def __contains__(self, key: str) -> bool:
        """`typeof d[key] !== "undefined"` (a JSON `null` is defined)."""
        return key in self.data

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def truthy(self, key: str) -> bool:
        return js_truthy(self.data.get(key))

    def text(self, key: str) -> str | None:
        """`typeof d[key] === "string" && d[key].trim()`: the untrimmed text, else None."""
        value = self.data.get(key)
        return value if isinstance(value, str) and js_trim(value) else None

    def trimmed(self, key: str) -> str | None:
        """The same test, the trimmed text."""
        value = self.text(key)
        return None if value is None else js_trim(value)

    def number(self, key: str) -> int | float | None:
        """`typeof d[key] === "number" && !Number.isNaN(d[key])`: the number, else None."""
        value = self.data.get(key)
        return value if _is_number(value) else None

    def string_method(self, key: str) -> str:
        """A field the TypeScript calls a string method on: anything else would throw."""
        value = self.data.get(key)
        if not isinstance(value, str):
            raise CanvasError(f"canvas node {self.node_id}: data.{key} must be a string")
        return value

    def items(self, key: str) -> list[Any] | None:
        """`Array.isArray(d[key]) && d[key].length > 0`: the list, else None."""
        value = self.data.get(key)
        return value if isinstance(value, list) and value else None

    def rules(self, key: str = "rules") -> list[Json]:
        """`d.rules` entries, each read as an object: `rule.field` of null throws, of any other
        value that is not an object (a string, a number, a list) is undefined."""
        out = []
        for i, rule in enumerate(self.items(key) or []):
            if rule is None:
                raise CanvasError(f"canvas node {self.node_id}: data.{key}[{i}] must be an object")
            out.append(rule if isinstance(rule, dict) else {})
        return out


def _or(value: Any, default: Any) -> Any:
    """`value || default`."""
    return value if js_truthy(value) else default


def _outgoing(node: Json, edges: list[Any]) -> list[Json]:
    """`edges.filter((e) => e.source === n.id)`; an edge that is not an object has no
    `sourceHandle`, so it is never the one an `if` or a `switch` routes by and is left out."""
    return [e for e in edges if isinstance(e, dict) and _same(e, "source", node, "id")]


def _same(a: Json, a_key: str, b: Json, b_key: str) -> bool:
    """`a[a_key] === b[b_key]` of two JSON objects: both undefined (missing), or the same
    primitive of the same type (`1 === 1.0`, `true !== 1`, `null !== undefined`); two objects
    or arrays parsed from JSON are never the same one."""
    if a_key not in a or b_key not in b:
        return a_key not in a and b_key not in b
    x, y = a[a_key], b[b_key]
    if isinstance(x, dict | list) or isinstance(y, dict | list):
        return False
    if isinstance(x, bool) or isinstance(y, bool) or x is None or y is None:
        return x is y
    if _is_number(x) and _is_number(y):
        return bool(x == y)
    return isinstance(x, str) and isinstance(y, str) and x == y


def _handle_edge(outgoing: list[Json], handle: str) -> Json | None:
    """The first outgoing edge leaving by `handle` (`outgoing.find(...)`)."""
    return next((e for e in outgoing if e.get("sourceHandle") == handle), None)


def _http(d: _Data) -> Json:
    params: Json = {}
    if d.truthy("method"):
        params["method"] = js_string(d.get("method")).upper()
    if d.truthy("url"):
        params["url"] = js_string(d.get("url"))
    for key in ("headers", "query"):  # `d.headers && typeof d.headers === "object"`
        if isinstance(d.get(key), dict | list):
            params[key] = d.get(key)
    if "body" in d:
        params["body"] = d.get("body")
    if "timeout" in d:
        params["timeout"] = js_string(d.get("timeout"))
    # The snake_case fields first, then the editor's older camelCase ones.
    retry = d.number("retry") if d.number("retry") is not None else d.number("retries")
    if retry is not None:
        params["retry"] = js_string(retry)
    delay = d.number("retry_delay")
    delay = delay if delay is not None else d.number("retryDelay")
    if delay is not None:
        params["retry_delay"] = js_string(delay)
    raise_on = d.trimmed("raise_on_status") or d.trimmed("raiseOnStatus")
    if raise_on:
        params["raise_on_status"] = raise_on
    for key in ("ignore_ssl", "ignoreSSL"):
        if isinstance(d.get(key), bool):
            params["ignore_ssl"] = d.get(key)
            break
    return params


def _if(node: Json, d: _Data, edges: list[Any]) -> Json:
    outgoing = _outgoing(node, edges)
    params: Json = {}
    for handle in ("true", "false"):
        edge = _handle_edge(outgoing, handle)
        if edge is not None and "id" in edge:  # an undefined id leaves the key out
            params[f"{handle}_edge_id"] = edge["id"]
    expression = d.trimmed("expression")
    if expression:
        params["expression"] = expression
    return params


def _switch_rule(rule: Json) -> Json:
    out: Json = {}
    value = rule.get("value")
    if isinstance(value, str) and js_trim(value):
        out["value"] = js_trim(value)
    operator = rule.get("operator")
    out["operator"] = (
        operator if isinstance(operator, str) and operator in _SWITCH_OPERATORS else "=="
    )
    compare = rule.get("compare")
    if isinstance(compare, str) and js_trim(compare):
        out["compare"] = js_trim(compare)
    return out


def _switch(node: Json, d: _Data, edges: list[Any]) -> Json:
    rules = [_switch_rule(r) for r in d.rules()]
    outgoing = _outgoing(node, edges)
    routes: list[Any] = [None] * (len(rules) + 1)
    for i in range(len(rules)):
        edge = _handle_edge(outgoing, SWITCH_CASE_HANDLE.format(i))
        if edge is not None:
            routes[i] = edge.get("id")
    fallback = _handle_edge(outgoing, SWITCH_FALLBACK_HANDLE)
    if fallback is not None:
        routes[len(rules)] = fallback.get("id")
    params: Json = {}
    if rules:
        params["rules"] = rules
    if any(js_truthy(r) for r in routes):
        params["routes"] = routes
    return params


def _emails(d: _Data, key: str) -> str | list[str] | None:
    """`emailStringToArray`: one address as a string, several as a list, none as undefined."""
    value = d.string_method(key)
    if js_trim(value) in SMTP_PLACEHOLDERS or not js_trim(value):
        return None
    emails = [js_trim(e) for e in value.split(",") if js_trim(e)]
    if len(emails) > 1:
        return emails
    return emails[0] if emails else None


def _smtp(d: _Data) -> Json:
    params: Json = {}
    if d.truthy("from") and not _placeholder(d.get("from")):
        params["from"] = js_string(d.get("from"))
    for key in ("to", "cc", "bcc"):
        if d.truthy(key):
            emails = _emails(d, key)
            if emails is not None:
                params[key] = emails
    for key in ("subject", "body"):
        if d.truthy(key) and not _placeholder(d.get(key)):
            params[key] = js_string(d.get(key))
    return params


def _placeholder(value: Any) -> bool:
    """`isLegacySmtpPlaceholder`."""
    return isinstance(value, str) and js_trim(value) in SMTP_PLACEHOLDERS


def _texts(d: _Data, params: Json, *keys: str) -> Json:
    """Each key whose value is a non-blank string, untrimmed (the date-time nodes)."""
    for key in keys:
        value = d.text(key)
        if value is not None:
            params[key] = value
    return params


def _schedule(d: _Data) -> Json:
    """scheduledTrigger: `amount` as `Number(...)` when defined, `unit` when a string."""
    params: Json = {}
    if "amount" in d:
        params["amount"] = js_number(d.get("amount"))
    if isinstance(d.get("unit"), str):
        params["unit"] = d.get("unit")
    return params


def _wait(d: _Data) -> Json:
    params: Json = {}
    if "amount" in d:
        params["amount"] = js_number(d.get("amount"))
    if d.truthy("unit"):
        params["unit"] = js_string(d.get("unit"))
    return params


def _log(d: _Data) -> Json:
    params: Json = {}
    if isinstance(d.get("message"), str):
        params["message"] = d.get("message")
    if d.truthy("level"):
        params["level"] = d.get("level")
    return params


def _date_shift(d: _Data) -> Json:
    """dateTimeAdd and dateTimeSubtract."""
    params = _texts(d, {}, "date")
    if "amount" in d:
        params["amount"] = js_number(d.get("amount"))
    if d.truthy("unit"):
        params["unit"] = d.get("unit")
    return _texts(d, params, "format", "timezone")


def _edit(d: _Data) -> Json:
    params: Json = {}
    if d.truthy("mode"):
        params["mode"] = js_string(d.get("mode"))
    assignments = d.rules("assignments")
    if assignments:
        params["assignments"] = [
            {
                "name": _or(a.get("name"), ""),
                "value": _or(a.get("value"), ""),
                "type": _or(a.get("type"), "string"),
            }
            for a in assignments
        ]
    return params


def _input_array(d: _Data) -> Json:
    value = d.trimmed("input_array")
    return {"input_array": value} if value else {}


def _filter(d: _Data) -> Json:
    params = _input_array(d)
    if d.truthy("match_mode"):
        params["match_mode"] = d.get("match_mode")
    rules = d.rules()
    if rules:
        params["rules"] = [
            {
                "field": _or(r.get("field"), ""),
                "operator": _or(r.get("operator"), "=="),
                "value": _or(r.get("value"), ""),
            }
            for r in rules
        ]
    return params


def _sort(d: _Data) -> Json:
    params = _input_array(d)
    rules = d.rules()
    if rules:
        params["rules"] = [
            {
                "field": _or(r.get("field"), ""),
                "direction": _or(r.get("direction"), "asc"),
                "type": _or(r.get("type"), "auto"),
            }
            for r in rules
        ]
    return params


def _limit(d: _Data) -> Json:
    params = _input_array(d)
    if "count" in d and d.get("count") != "":
        params["count"] = js_number(d.get("count"))
    return params


def _split(d: _Data) -> Json:
    # The canvas calls it `array_field`, the worker `input_array`.
    return {"input_array": js_string(d.get("array_field"))} if d.truthy("array_field") else {}


def _merge(d: _Data) -> Json:
    params: Json = {}
    if d.truthy("wait_mode"):
        params["wait_mode"] = js_string(d.get("wait_mode"))
    if "timeout" in d:
        params["timeout"] = js_number(d.get("timeout"))
    return params


def _without_ui_id(value: Any) -> Json:
    """`stripAgentMessageUiId` / `stripAgentKvFieldUiId`: a copy without the editor's `ui_id`."""
    out = _spread(value)
    out.pop("ui_id", None)
    return out


def _agent_tool(node_id: str, tool: Any) -> Json:
    """`stripAgentToolUiId`: the tool and its header, query and body fields without `ui_id`."""
    out = _without_ui_id(tool)
    if out.get("config") is None:  # `next.config.headers` of no config throws
        raise CanvasError(f"canvas node {node_id}: every agent tool needs a config object")
    config = _spread(out["config"])  # `{...next.config}`: a text or a list by its indices
    for key in ("headers", "query", "body"):
        fields = config.get(key)
        if fields is None:
            config.pop(key, None)  # `undefined?.map(...)` is undefined: the key is left out
        elif isinstance(fields, list):
            config[key] = [_without_ui_id(f) for f in fields]
        else:
            raise CanvasError(f"canvas node {node_id}: agent tool config.{key} must be a list")
    out["config"] = config
    return out


def _agent(node_id: str, d: _Data) -> Json:
    params: Json = {}
    if d.truthy("model"):
        params["model"] = d.get("model")
    system_prompt = d.get("system_prompt")
    if isinstance(system_prompt, str) and system_prompt:
        params["system_prompt"] = system_prompt
    messages = d.items("messages")
    if messages:
        params["messages"] = [_without_ui_id(m) for m in messages]
    tools = d.items("tools")
    if tools:
        params["tools"] = [_agent_tool(node_id, t) for t in tools]
    servers = d.items("mcp_servers")
    if servers:
        params["mcp_servers"] = servers
    return params


def worker_parameters(node: Json, edges: list[Any]) -> Json:
    """`toWorkerParameters`: the worker parameters of one canvas node."""
    kind, node_id = node["type"], _who(node)
    d = _Data(node_id, _data(node))
    if kind in INTEGRATION_KINDS:
        arguments = d.get("arguments")
        return {} if arguments is None else arguments  # `d.arguments ?? {}`
    match kind:
        case "http":
            return _http(d)
        case "if":
            return _if(node, d, edges)
        case "switch":
            return _switch(node, d, edges)
        case "smtp":
            return _smtp(d)
        case "wait":
            return _wait(d)
        case "log":
            return _log(d)
        case "dateTimeNow":
            return _texts(d, {}, "format", "timezone")
        case "dateTimeAdd" | "dateTimeSubtract":
            return _date_shift(d)
        case "dateTimeFormat":
            return _texts(d, {}, "date", "format", "timezone")
        case "dateTimeParse":
            return _texts(d, {}, "date", "timezone")
        case "scheduledTrigger":
            return _schedule(d)
        case "edit":
            return _edit(d)
        case "filter":
            return _filter(d)
        case "sort":
            return _sort(d)
        case "limit":
            return _limit(d)
        case "split":
            return _split(d)
        case "merge":
            return _merge(d)
        case "agent":
            return _agent(node_id, d)
        case _:  # trigger, webhookTrigger, aggregator and any type the web app does not know
            return {}


# -- the graph ------------------------------------------------------------------------------------


def _credential(data: Json) -> Json | None:
    """`extractNodeCredential`: a copy of `data.credential` when it is a `{id, type, name}`
    reference (`isCredentialRef`: all three strings)."""
    ref = data.get("credential")
    if isinstance(ref, dict) and all(isinstance(ref.get(k), str) for k in ("id", "type", "name")):
        return dict(ref)
    return None


def needs_credential(kind: str) -> bool:
    """`nodeTypeRequiresCredential`."""
    return kind in _NEEDS_CREDENTIAL or kind.startswith("integration.")


def _who(node: Json) -> str:
    """How an error names a node: its id (any JSON value the canvas gave it), `?` without one."""
    node_id = node.get("id", "?")
    return node_id if isinstance(node_id, str) else repr(node_id)


def _data(node: Json) -> Json:
    """`n.data || {}` read as an object: the properties of a text, number, boolean or list
    that the conversion reads are all undefined, so such data holds none of its fields."""
    data = node.get("data")
    return data if isinstance(data, dict) else {}


def _checked_nodes(graph: Json) -> list[Json]:
    """The nodes, each checked for what the TypeScript would throw on: a node that is null or
    whose type is not a string (`nodeTypeRequiresCredential` calls `startsWith` on it), a node
    without a position (`n.position.x`), a node other than a sticky note without data
    (`nodeName` reads `n.data.label`). Its id may be anything, or missing."""
    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        raise CanvasError("canvas graph: nodes must be a list")
    for i, n in enumerate(nodes):
        if not isinstance(n, dict) or not isinstance(n.get("type"), str):
            raise CanvasError(f"canvas node {i}: must be an object with a string type")
        if n.get("position") is None:
            raise CanvasError(f"canvas node {_who(n)}: position must be an object with x and y")
        if n.get("data") is None and n["type"] != STICKY_NOTE:
            raise CanvasError(f"canvas node {_who(n)}: data must be an object")
    return nodes


def _checked_edges(graph: Json) -> list[Any]:
    """The edges: a list (`edges.map`), no entry of it null (`e.id` of null throws). An entry
    that is not an object is an edge without any of its fields."""
    edges = graph.get("edges")
    if not isinstance(edges, list):
        raise CanvasError("canvas graph: edges must be a list")
    for i, e in enumerate(edges):
        if e is None:
            raise CanvasError(f"canvas edge {i}: must not be null")
    return edges


def _position(node: Json) -> Json:
    """`n.position`, read as an object (the x and y of anything else are undefined)."""
    position = node["position"]
    return position if isinstance(position, dict) else {}


def _note(node: Json) -> Json:
    """`toWorkflowNote`: an undefined id, x or y is left out."""
    d = _data(node)
    content = d.get("content")
    note: Json = {"id": node["id"]} if "id" in node else {}
    note["content"] = content if isinstance(content, str) else ""
    position = _position(node)
    for key in ("x", "y"):
        if key in position:
            note[key] = position[key]
    for key in ("width", "height"):
        if _is_number(d.get(key)):
            note[key] = d[key]
    if js_truthy(d.get("color")):
        note["color"] = d["color"]
    if js_truthy(d.get("fontSize")):
        note["font_size"] = d["fontSize"]
    return note


def _node(node: Json, edges: list[Any]) -> Json:
    kind, data = node["type"], _data(node)
    out: Json = {"id": node["id"]} if "id" in node else {}  # an undefined id is left out
    out["name"] = node_name(kind, data, _who(node))
    out["trigger"] = kind in TRIGGER_TYPES
    out["type"] = WORKER_TYPES.get(kind, kind)
    if kind == "webhookTrigger" and js_truthy(data.get("webhookGuid")):
        out["webhook_guid"] = data["webhookGuid"]
    out["parameters"] = worker_parameters(node, edges)
    out["output"] = {}
    position = _position(node)  # `[n.position.x, n.position.y]`: undefined is written null
    out["position"] = [position.get("x"), position.get("y")]
    credential = _credential(data)
    if credential is not None:
        out["credentials"] = credential
    return out


def _edge(edge: Any) -> Json:
    """`{id, src: String(e.source), dst: String(e.target), label}`: an undefined id or label is
    left out, an undefined source or target is the text `undefined`."""
    edge = edge if isinstance(edge, dict) else {}
    out: Json = {"id": edge["id"]} if "id" in edge else {}
    out["src"] = js_string(edge["source"]) if "source" in edge else "undefined"
    out["dst"] = js_string(edge["target"]) if "target" in edge else "undefined"
    if "label" in edge:  # `label: e.label`: a missing label is left out, a null one kept
        out["label"] = edge["label"]
    return out


def to_workflow_data(graph: Json) -> Json:
    """`canvasToWorkflowData(nodes, edges, {ignoreMissingCredentials: true})`: the definition
    `{nodes, edges, notes}` of a canvas graph `{nodes, edges}`; sticky notes go to `notes`.
    The graph is first read as `JSON.parse` reads it (every number a double)."""
    _checked_nodes(graph), _checked_edges(graph)
    parsed: Json = _as_parsed({"nodes": graph["nodes"], "edges": graph["edges"]})
    nodes, edges = parsed["nodes"], parsed["edges"]
    try:
        definition = {
            "nodes": [_node(n, edges) for n in nodes if n["type"] != STICKY_NOTE],
            "edges": [_edge(e) for e in edges],
            "notes": [_note(n) for n in nodes if n["type"] == STICKY_NOTE],
        }
    except RecursionError:  # `String(x)` of an array nested hundreds of levels deep
        raise CanvasError("canvas graph: a value is nested too deeply to convert") from None
    result: Json = _as_json(definition)
    return result


def missing_credentials(graph: Json) -> list[tuple[str, str]]:
    """`(name, type)` of the nodes that need a credential and hold none: the nodes the web app
    names in `MissingNodeCredentialsError`."""
    return [
        (node_name(n["type"], _data(n), _who(n)), n["type"])
        for n in _checked_nodes(graph)
        if n["type"] != STICKY_NOTE
        and needs_credential(n["type"])
        and _credential(_data(n)) is None
    ]


# -- recognising a canvas graph -------------------------------------------------------------------


def canvas_graph(doc: Any) -> Json | None:
    """The canvas graph of a document, or None when it is none: a template (an object whose
    `workflow_data` is a canvas graph) or a bare canvas graph (`nodes` that carry `data` and a
    `{x, y}` position and no worker `parameters`)."""
    if not isinstance(doc, dict):
        return None
    graph = doc.get("workflow_data")
    if isinstance(graph, dict) and _is_canvas(graph):
        return graph
    return doc if _is_canvas(doc) else None


def _is_canvas(graph: Json) -> bool:
    nodes = graph.get("nodes")
    return (
        isinstance(nodes, list)
        and bool(nodes)
        and all(
            isinstance(n, dict)
            and "parameters" not in n
            and isinstance(n.get("data"), dict)
            and isinstance(n.get("position"), dict)
            for n in nodes
        )
    )


def convert(doc: Any) -> Json:
    """The definition of a template or a bare canvas graph (CanvasError when it is neither)."""
    graph = canvas_graph(doc)
    if graph is None:
        raise CanvasError("not a canvas graph: nodes must carry data and an {x, y} position")
    return to_workflow_data(graph)
