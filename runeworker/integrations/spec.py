"""The declarative vocabulary of the integration catalog: an argument (`Arg`) and a tool (`Tool`).

A tool is data: its node type `integration.<provider>.<service>.<tool>`, the HTTP method, which
configured base URL it talks to, a path template whose `{placeholders}` name arguments, which
arguments become query parameters and which become (dotted, so nested) body keys, plus a hook
where a provider needs more than that (a computed range, a sheet id looked up first, a Jira site
resolved, a bot token put in the path). Upstream Rune writes one Go type per tool
(`services/rune-worker/pkg/integrations/providers/**`); the facts below are taken from there.

Arguments are decoded like upstream's `DecodeArgs` (`services/rune-worker/pkg/integrations/args.go`)
into Go's zero values when absent, with two deliberate differences: numbers and booleans given
as text (what a `{{ }}` template inside a string produces) are accepted, and a wrong type is a
message naming the argument instead of Go's `json: cannot unmarshal ...`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from runeworker.engine.resolver import render
from runeworker.errors import NodeError

if TYPE_CHECKING:
    from runeworker.integrations.connector import Call

Hook = Callable[["Call"], dict[str, Any]]

# The public API of each service; `[integrations] <service>_base_url` replaces one.
BASE_URLS = {
    "gmail": "https://gmail.googleapis.com",
    "sheets": "https://sheets.googleapis.com",
    "drive": "https://www.googleapis.com",
    "dropbox": "https://api.dropboxapi.com",
    "outlook": "https://graph.microsoft.com",
    "slack": "https://slack.com",
    "telegram": "https://api.telegram.org",
    "jira": "https://api.atlassian.com",  # the Atlassian gateway (OAuth 2.0 sites)
}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return render(value)
    raise ValueError("a string")


INT64_MIN = -(2**63)


def float64(value: int | float) -> float:
    """A JSON number as upstream holds it, a float64 (2**53 + 1 is 2**53); one beyond a
    float64's range, which Go's decoder would refuse, is an infinity of its sign."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _integer(value: Any) -> int:
    if value is None or value == "":
        return 0
    number: Any = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ValueError("a whole number")
    if isinstance(number, float) and not number.is_integer():
        raise ValueError("a whole number")
    # Upstream holds a JSON number as a float64 and its DecodeArgs fails one beyond Go's int
    # (64 bits).
    number = float64(number)
    if not INT64_MIN <= number < 2.0**63:
        raise ValueError("a whole number of at most 64 bits")
    return int(number)


def go_int64(value: Any) -> int:
    """`int64(v)` of a JSON number as upstream reads it (a float64; anything else is 0): truncated
    toward zero; out of int64's range (1e21) the value amd64 gives, -9223372036854775808 (Go
    leaves the conversion to the platform: upstream's image is built for linux/amd64)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    number = float64(value)
    if math.isnan(number) or not INT64_MIN <= number < 2.0**63:
        return INT64_MIN
    return int(number)


def _flag(value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("true or false")


def _maybe_flag(value: Any) -> bool | None:
    return None if value is None or value == "" else _flag(value)


def _json_text(value: Any, kind: type) -> Any:
    """A JSON editor field may arrive as its text: decode it when it holds a `kind`."""
    if isinstance(value, str) and value.strip():
        with contextlib.suppress(msgspec.DecodeError):
            decoded = msgspec.json.decode(value.encode())
            if isinstance(decoded, kind):
                return decoded
    return value


def _object(value: Any) -> dict[str, Any]:
    value = _json_text(value, dict)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise ValueError("an object")
    return value


def _array(value: Any) -> list[Any]:
    value = _json_text(value, list)
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise ValueError("an array")
    return value


def _csv(value: Any) -> list[str]:
    """Comma-separated text (upstream's `splitCSV`: items trimmed, empty ones dropped); a JSON
    array of items is accepted too."""
    items = value if isinstance(value, list) else _text(value).split(",")
    return [text for text in (_text(item).strip() for item in items) if text]


def _chat_id(value: Any) -> str:
    """Telegram's `chat_id`, a number or an @channel name, as upstream's `chatIDToString` writes
    it: a JSON number (a float64 in Go) as `strconv.FormatInt(int64(v), 10)`, so 1.5 is "1",
    -1001234567890 stays itself and 1e21 is "-9223372036854775808" (`go_int64`); text as it is;
    true/false as `fmt.Sprint` writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("a number or @name")  # no JSON number: Go's decoder refuses it
        if isinstance(value, int) and abs(value) > sys.float_info.max:
            raise ValueError("a number or @name")  # beyond a float64: Go's decoder refuses it
        return str(go_int64(value))
    return _text(value)


@dataclass(frozen=True)
class Kind:
    """How an argument is decoded and documented."""

    name: str  # as docs/INTEGRATIONS.md shows it
    read: Callable[[Any], Any]  # raw JSON value -> typed value; ValueError says what was expected


TEXT = Kind("text", _text)
INTEGER = Kind("integer", _integer)
FLAG = Kind("boolean", _flag)
MAYBE_FLAG = Kind("boolean", _maybe_flag)  # absent and false differ (sent as "false")
OBJECT = Kind("object", _object)
ARRAY = Kind("array", _array)
CSV = Kind("comma-separated list", _csv)
ANY = Kind("any JSON", lambda value: value)
CHAT_ID = Kind("number or @name", _chat_id)


@dataclass(frozen=True)
class Arg:
    """One argument of a tool.

    required: "argument 'x' is required" when unset (text compared after `trim` if set).
    blank: a text of blanks only is set and sent as given (upstream checks `!= ""`, not a
        trimmed value, for this optional argument); otherwise blanks only are unset.
    positive: a count or 1-based index, "argument 'x' must be >= 1" below 1.
    signed: an integer whose negative values mean something (only 0 is unset).
    always: sent even when unset (upstream sends the zero value, e.g. Dropbox `recursive`).
    default: the value of an unset argument (upstream's own defaults, e.g. Jira `api_version`).
    """

    name: str
    kind: Kind = TEXT
    required: bool = False
    trim: bool = False
    blank: bool = False
    positive: bool = False
    signed: bool = False
    always: bool = False
    default: Any = None

    def read(self, params: dict[str, Any]) -> Any:
        """The decoded value of this argument in the node parameters; NodeError when invalid."""
        raw = params.get(self.name)
        try:
            value = self.kind.read(raw)
        except ValueError as exc:
            shown = render(raw)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise NodeError(f"argument '{self.name}' must be {exc}, got {shown!r}") from None
        if self.trim and isinstance(value, str):
            value = value.strip()
        if not self.is_set(value) and self.default is not None:
            value = self.default
        if self.positive and value <= 0:
            raise NodeError(f"argument '{self.name}' must be >= 1")
        if self.required and not self.is_set(value):
            raise NodeError(f"argument '{self.name}' is required")
        return value

    def is_set(self, value: Any) -> bool:
        """False for the values upstream treats as "not given" (and leaves out of requests)."""
        if self.kind in (MAYBE_FLAG, ANY):
            return value is not None
        if self.kind is INTEGER and not self.signed:
            return bool(value > 0)
        if isinstance(value, str):
            return value != "" if self.blank else bool(value.strip())
        return bool(value)


@dataclass(frozen=True)
class Tool:
    """One integration node type.

    service: the base URL it talks to, `[integrations] <service>_base_url`.
    path: template; `{name}` is the argument `name`, percent-encoded as one path segment.
    query: (query key, argument) pairs, each sent when the argument is set.
    body: (body key, argument) pairs, each sent when set (or `always`); `a.b` nests.
    hook: replaces the plain exchange when the provider needs more (see `Call`).
    """

    kind: str
    method: str
    service: str
    path: str
    args: tuple[Arg, ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    body: tuple[tuple[str, str], ...] = ()
    hook: Hook | None = None

    @property
    def provider(self) -> str:
        """`google` of `integration.google.gmail.send_email`."""
        return self.kind.split(".")[1]

    @property
    def tool(self) -> str:
        """`gmail.send_email` of `integration.google.gmail.send_email`."""
        return ".".join(self.kind.split(".")[2:])

    @property
    def required(self) -> tuple[str, ...]:
        """The arguments `runeworker validate` insists on (always needed, whatever else is set)."""
        return tuple(a.name for a in self.args if a.required or a.positive)

    def arg(self, name: str) -> Arg:
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(name)

    def read(self, params: dict[str, Any]) -> dict[str, Any]:
        """Every argument decoded and checked, in declaration order (upstream's order of checks)."""
        return {a.name: a.read(params) for a in self.args}


def family(prefix: str, service: str) -> Callable[..., Tool]:
    """The tool maker of one service: `make(name, method, path, *args, **spec)` is the Tool
    `<prefix>.<name>` on `service`'s base URL."""

    def make(name: str, method: str, path: str, *args: Arg, **spec: Any) -> Tool:
        return Tool(f"{prefix}.{name}", method, service, path, args, **spec)

    return make


def put(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, making the levels on the way."""
    *parents, leaf = key.split(".")
    for parent in parents:
        tree = tree.setdefault(parent, {})
    tree[leaf] = value


def named(*names: str) -> tuple[tuple[str, str], ...]:
    """Query or body pairs that send arguments under their own names."""
    return tuple((name, name) for name in names)
