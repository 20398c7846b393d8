"""Structure-aware mutations of execution messages.

A message is a JSON tree (dicts, lists, scalars) plus two kinds of leaves the standard encoder
cannot write: `Lit` (bytes placed as they are: a lone surrogate escape, `1e999`, `NaN`, invalid
UTF-8, nesting 200,000 deep) and `Obj` (an object as a list of pairs: duplicate keys, keys
spelt with escapes). `dumps` writes such a tree.

Each operator takes a random generator, the case's tree and its `Env` and returns what it did
(a `Change`: a one-line description and the words a refusal of it should name). The operators
cover the kinds of bad input a worker meets: wrong JSON types at any path, keys missing, extra
or duplicated, extreme numbers, floats for integers, deep nesting, huge strings, Unicode
oddities, broken graphs (cycles, self-loops, dangling edges, duplicate ids, unknown types,
routes into other nodes' edges), parameters of the wrong type for each node kind, lineage
frames out of range, bad branch tokens, credentials of odd shapes, and bodies that are no
execution message at all (`BODY_OPERATORS`: they work on the encoded bytes).
"""

from __future__ import annotations

import copy
import json
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# -- the tree and its encoding ---------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    """JSON text placed in the output as it is."""

    data: bytes


@dataclass
class Obj:
    """A JSON object written pair by pair (a key may repeat, or be a `Lit`)."""

    pairs: list[tuple[str | Lit, Any]]


def dumps(value: Any) -> bytes:
    """The JSON bytes of a tree of dicts, lists, scalars, `Lit` and `Obj`."""
    out = bytearray()
    _dump(value, out)
    return bytes(out)


def _dump(value: Any, out: bytearray) -> None:
    if isinstance(value, Lit):
        out += value.data
    elif isinstance(value, Obj | dict):
        pairs = value.pairs if isinstance(value, Obj) else list(value.items())
        out += b"{"
        for i, (k, v) in enumerate(pairs):
            if i:
                out += b","
            out += k.data if isinstance(k, Lit) else _string(k)
            out += b":"
            _dump(v, out)
        out += b"}"
    elif isinstance(value, list):
        out += b"["
        for i, v in enumerate(value):
            if i:
                out += b","
            _dump(v, out)
        out += b"]"
    elif isinstance(value, str):
        out += _string(value)
    else:
        out += json.dumps(value).encode()


def _string(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass")


# -- paths -------------------------------------------------------------------------------------

Path = tuple[str | int, ...]


def walk(value: Any, path: Path = (), limit: int = 4000) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) of a plain tree, breadth first, at most `limit` of them."""
    queue: deque[tuple[Path, Any]] = deque([(path, value)])
    seen = 0
    while queue and seen < limit:
        here, v = queue.popleft()
        yield here, v
        seen += 1
        if len(queue) > limit:
            continue  # enough to walk already: do not queue a huge array's items
        if isinstance(v, dict):
            queue.extend(((*here, k), x) for k, x in v.items())
        elif isinstance(v, list):
            queue.extend(((*here, i), x) for i, x in enumerate(v))


def get(tree: Any, path: Path) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def put(tree: Any, path: Path, value: Any) -> None:
    get(tree, path[:-1])[path[-1]] = value


def keys_of(path: Path) -> list[str]:
    """The object keys along a path (what an error about it should name)."""
    return [str(p) for p in path if isinstance(p, str)]


# What a refusal may say about a changed id, type or route: the graph it breaks.
GRAPH_WORDS = ["does not exist", "not found", "shared", "not registered", "cycle", "leaves",
               "create", "empty", "is required"]  # fmt: skip
GRAPH_KEYS = {"id", "src", "dst", "type", "current_node", "error_edge", "true_edge_id",
              "false_edge_id", "routes", "nodes", "edges"}  # fmt: skip


def where(msg: Any, path: Path) -> list[str]:
    """The words naming a path: its keys, the id of the node or edge it lies in, and for an
    id, type or route, the graph rules a changed value may break (read before the change)."""
    out = keys_of(path)
    if len(path) >= 3 and path[0] == "workflow_definition" and isinstance(path[2], int):
        owner = get(msg, path[:3])
        if isinstance(owner, dict) and isinstance(owner.get("id"), str):
            out.append(owner["id"])
    if GRAPH_KEYS & set(out):
        out += GRAPH_WORDS
    return out


def describe(path: Path) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


# -- what an operator did ----------------------------------------------------------------------


@dataclass
class Env:
    """What operators may use: the case's secret, the registered node types, node parameter
    names by type."""

    secret: str
    node_types: list[str]
    closed_port: int


@dataclass
class Change:
    what: str  # one line: the operator and where
    hints: list[str] = field(default_factory=list)  # words a refusal should name (any one)
    # the message stays valid (the same JSON spelt otherwise, an odd credential value): it
    # must not be refused
    benign: bool = False


Operator = Callable[[random.Random, Any, Env], Change]


class Skip(Exception):
    """The operator does not apply to this message (the caller picks another)."""


# -- value pools -------------------------------------------------------------------------------

WEIRD: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 1e308, 2**63, -(2**63) - 1, 2**70, "", " ", "$",
    "{{", "}}", "$input", "{{ $input }}", "$input.x[0]", "{{ $nope.a }}", "$json", "$error",
    [], {}, [[[]]], {"a": None}, [1, "a", None], {"$input": 1}, "5m", "-5s", "999999999999h",
    "1970-01-01", "NaN", "2026-13-45T99:99:99Z", "\u0000", "é", "\u202eevil", "x" * 3000,
    {"provider": 7}, [{"field": None}], {"nested": {"deeper": [{}]}}, "true", "-1", "0.5",
]  # fmt: skip

BIG_NUMBERS: list[Any] = [
    2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, -(2**64), -1, 0, 1e308, -1e308,
    -0.0, 0.5, 1.5, 5e-324, Lit(b"1" + b"0" * 400), Lit(b"-" + b"9" * 400), Lit(b"1e999"),
    Lit(b"-1e999"), Lit(b"1.0"), Lit(b"1E2"), Lit(b"NaN"), Lit(b"Infinity"), Lit(b"-Infinity"),
]  # fmt: skip

# Unicode oddities: written into a string's JSON text (escapes and raw bytes alike).
ODDITIES: list[tuple[str, bytes]] = [
    ("lone high surrogate escape", b"\\ud800"),
    ("lone low surrogate escape", b"\\udfff"),
    ("reversed surrogate pair", b"\\udc00\\ud800"),
    ("NUL escape", b"\\u0000"),
    ("raw control bytes", b"\\u0001\\u001f"),
    ("right-to-left override", "\u202e".encode()),
    ("right-to-left mark and isolate", "\u200f\u2067".encode()),
    ("zero-width joiner and space", "\u200d\u200b".encode()),
    ("byte order mark inside", "\ufeff".encode()),
    ("noncharacter U+FFFF", "\uffff".encode()),
    ("astral emoji", "\U0001f600".encode()),
    ("combining marks", "e\u0301\u0308".encode()),
    ("invalid UTF-8 byte", b"\xff"),
    ("overlong UTF-8", b"\xc0\xaf"),
    ("UTF-8 encoded surrogate", b"\xed\xa0\x80"),
    ("truncated UTF-8 sequence", b"\xe2\x82"),
]

NODE_PARAMS: dict[str, list[str]] = {
    "log": ["message", "level"],
    "conditional": ["expression", "operator", "default", "true_edge_id", "false_edge_id"],
    "switch": ["rules", "routes", "operator"],
    "http": ["url", "method", "headers", "query", "body", "timeout", "retry", "retry_delay",
             "ignore_ssl", "raise_on_status"],
    "smtp": ["from", "to", "cc", "bcc", "subject", "body", "body_type", "html", "security",
             "ignore_ssl"],
    "edit": ["mode", "assignments", "target_path", "array_path"],
    "filter": ["rules", "input_array", "match_mode"],
    "sort": ["rules", "input_array", "default"],
    "limit": ["count", "input_array"],
    "split": ["input_array"],
    "aggregator": ["input_array"],
    "merge": ["wait_mode", "mode", "timeout"],
    "wait": ["amount", "unit", "date_time"],
    "dateTimeNow": ["timezone", "format"],
    "dateTimeAdd": ["date", "amount", "unit", "timezone", "format"],
    "dateTimeSubtract": ["date", "amount", "unit", "timezone", "format"],
    "dateTimeFormat": ["date", "timezone", "format"],
    "dateTimeParse": ["date", "timezone", "format"],
    "agent": ["model", "system_prompt", "messages", "tools", "mcp_servers", "max_rounds"],
}  # fmt: skip

# The node types an operator may give a node: every built-in but those that leave the machine
# without a base URL the harness controls (none: http, smtp, the agent and the integrations
# all reach the loopback server or a closed loopback port) and `wait` (a long wait keeps an
# execution legitimately open; the harness accounts for waits, but a type swap into one
# would make most swaps wait for minutes).
SWAP_TYPES = [t for t in NODE_PARAMS if t != "wait"]
ODD_TYPES = ["fuzz.unknown", "", " log", "Log", "log\u0000", "http\u202e", "x" * 500,
             "integration.nope.nope.nope", "ManualTrigger ", "agent."]  # fmt: skip


def weird_value(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(WEIRD))


def other_type_value(rng: random.Random, old: Any) -> Any:
    """A value of another JSON type than `old`."""
    candidates: list[Any] = [None, True, 0, -7, 2.5, "", "text", [], [old], {}, {"k": old}]
    kinds = {type(old)} | ({int, float} if isinstance(old, int | float) else set())
    picks = [c for c in candidates if type(c) not in kinds or (old is None) != (c is None)]
    if isinstance(old, bool):
        picks = [c for c in candidates if not isinstance(c, bool)]
    return copy.deepcopy(rng.choice(picks))


# -- helpers over messages ---------------------------------------------------------------------


def definition(msg: Any) -> dict[str, Any]:
    d = msg.get("workflow_definition") if isinstance(msg, dict) else None
    if not isinstance(d, dict) or not isinstance(d.get("nodes"), list):
        raise Skip("no definition")
    return d


def nodes(msg: Any) -> list[dict[str, Any]]:
    found = [n for n in definition(msg)["nodes"] if isinstance(n, dict)]
    if not found:
        raise Skip("no nodes")
    return found


def edges(msg: Any) -> list[dict[str, Any]]:
    d = definition(msg)
    if not isinstance(d.get("edges"), list):
        d["edges"] = []
    out: list[dict[str, Any]] = d["edges"]
    return out


def node_ids(msg: Any) -> list[str]:
    return [n["id"] for n in nodes(msg) if isinstance(n.get("id"), str)]


def pick_path(
    rng: random.Random, msg: Any, want: Callable[[Path, Any], bool] | None = None
) -> Path:
    """A random path of the tree (not the root), optionally one whose value `want`s."""
    paths = [p for p, v in walk(msg) if p and (want is None or want(p, v))]
    if not paths:
        raise Skip("no such path")
    # half the time a path in the parts that matter most: top-level keys, the definition's
    # nodes and edges, their parameters and credentials, lineage frames
    focus = [p for p in paths if len(p) <= 2 or p[:2] == ("workflow_definition", "nodes")]
    return rng.choice(focus if focus and rng.random() < 0.5 else paths)


def unique_id(rng: random.Random, prefix: str) -> str:
    return f"{prefix}-{rng.randrange(10**6)}"


# -- operators on the tree ---------------------------------------------------------------------


def op_retype(rng: random.Random, msg: Any, env: Env) -> Change:
    path = pick_path(rng, msg)
    old, hints = get(msg, path), where(msg, path)
    put(msg, path, other_type_value(rng, old))
    return Change(f"retype {describe(path)}", [*hints, "expected"])


def op_delete(rng: random.Random, msg: Any, env: Env) -> Change:
    path = pick_path(rng, msg, lambda p, _v: isinstance(p[-1], str))
    del get(msg, path[:-1])[path[-1]]
    return Change(f"delete {describe(path)}", [str(path[-1]), "required"])


EXTRA_KEYS = ["", "__proto__", "constructor", "$json", "credentials", "k" * 300, "ключ",
              "\u202ekey", "nodes", "id", "type", "ghost", "branch_token", "workflow_definition",
              "accumulated_context", "parameters", "trigger", "error"]  # fmt: skip


def op_extra(rng: random.Random, msg: Any, env: Env) -> Change:
    path = rng.choice([p for p, v in walk(msg) if isinstance(v, dict)])
    obj = get(msg, path) if path else msg
    key = rng.choice(EXTRA_KEYS)
    if key in obj:
        key = key + "_extra"
    obj[key] = weird_value(rng)
    return Change(f"extra key {key[:40]!r} at {describe(path)}", [key, *keys_of(path)[-1:]])


def op_duplicate(rng: random.Random, msg: Any, env: Env) -> Change:
    """One key of an object written twice: the first or the second time with another value."""
    choices = [p for p, v in walk(msg) if isinstance(v, dict) and v]
    path = rng.choice(choices)
    obj = get(msg, path) if path else msg
    items = list(obj.items())
    at = rng.randrange(len(items))
    key, value = items[at]
    other = other_type_value(rng, value) if rng.random() < 0.7 else copy.deepcopy(value)
    pair = (key, other)
    pairs: list[tuple[str | Lit, Any]] = list(items)
    pairs.insert(at if rng.random() < 0.5 else len(pairs), pair)
    replacement = Obj(pairs)
    if path:
        put(msg, path, replacement)
        return Change(f"duplicate key {key!r} at {describe(path)}", [key, "expected"])
    raise Replace(replacement, Change(f"duplicate top-level key {key!r}", [key, "expected"]))


class Replace(Exception):
    """The operator replaces the whole tree (an `Obj` at the top)."""

    def __init__(self, tree: Any, change: Change) -> None:
        super().__init__(change.what)
        self.tree, self.change = tree, change


def _scalar(_p: Path, v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def op_number(rng: random.Random, msg: Any, env: Env) -> Change:
    numeric = [p for p, v in walk(msg) if p and isinstance(v, int | float)
               and not isinstance(v, bool)]  # fmt: skip
    path = rng.choice(numeric) if numeric and rng.random() < 0.7 else pick_path(rng, msg, _scalar)
    value = rng.choice(BIG_NUMBERS)
    hints = [*where(msg, path), "range", "malformed", "expected"]
    put(msg, path, value)
    shown = value.data.decode()[:20] if isinstance(value, Lit) else repr(value)
    return Change(f"number {shown} at {describe(path)}", hints)


def op_float_for_int(rng: random.Random, msg: Any, env: Env) -> Change:
    ints = [p for p, v in walk(msg) if p and isinstance(v, int) and not isinstance(v, bool)]
    path: Path
    if not ints:
        path = rng.choice([("workflow_version",), ("workflow_version_id",)])
        value: Any = 1.5
    else:
        path = rng.choice(ints)
        old = get(msg, path)
        value = Lit(f"{old}.0".encode()) if rng.random() < 0.5 else old + 0.5
    hints = [*where(msg, path), "float"] if path in ints else ["float"]
    put(msg, path, value)
    return Change(f"float for int at {describe(path)}", hints)


def op_deep(rng: random.Random, msg: Any, env: Env) -> Change:
    path = pick_path(rng, msg)
    depth = rng.choice([64, 600, 1500, 10_000, 200_000])
    if rng.random() < 0.5:
        value = Lit(b"[" * depth + b"1" + b"]" * depth)
    else:
        value = Lit(b'{"a":' * depth + b"1" + b"}" * depth)
    hints = [*where(msg, path), "nested", "deep", "depth"]
    put(msg, path, value)
    return Change(f"nested {depth} deep at {describe(path)}", hints)


def op_huge(rng: random.Random, msg: Any, env: Env) -> Change:
    path = pick_path(rng, msg, _scalar)
    size = rng.choice([70_000, 1_000_000, 3_000_000] * 6 + [17_000_000])
    if rng.random() < 0.8:
        value: Any = "x" * size
        what = f"string of {size} chars"
    else:
        value = Lit(b"[" + b",".join([b"0"] * (size // 2)) + b"]")
        what = f"array of {size // 2} items"
    hints = [*where(msg, path), "exceeds"]
    put(msg, path, value)
    return Change(f"{what} at {describe(path)}", hints)


def op_unicode(rng: random.Random, msg: Any, env: Env) -> Change:
    """An oddity written into a string value, or into an object key."""
    name, raw = rng.choice(ODDITIES)
    if rng.random() < 0.25:  # into a key
        choices = [p for p, v in walk(msg) if isinstance(v, dict) and v]
        path = rng.choice(choices)
        obj = get(msg, path) if path else msg
        key = rng.choice(list(obj))
        spelt = Lit(_string(key)[:-1] + raw + b'"')
        pairs: list[tuple[str | Lit, Any]] = [(spelt if k == key else k, v) for k, v in obj.items()]
        hints = [key, "surrogate", "utf-8", "malformed", "required"]
        if path:
            put(msg, path, Obj(pairs))
            return Change(f"{name} in key {key!r} at {describe(path)}", hints)
        raise Replace(Obj(pairs), Change(f"{name} in top-level key {key!r}", hints))
    strings = [p for p, v in walk(msg) if p and isinstance(v, str)]
    if not strings:
        raise Skip("no strings")
    path = rng.choice(strings)
    text = _string(get(msg, path))[1:-1]
    hints = [*where(msg, path), "surrogate", "utf-8", "nul", "malformed"]
    at = rng.randrange(len(text) + 1) if rng.random() < 0.5 else len(text)
    at = _boundary(text, at)
    put(msg, path, Lit(b'"' + text[:at] + raw + text[at:] + b'"'))
    return Change(f"{name} in {describe(path)}", hints)


def _boundary(text: bytes, at: int) -> int:
    """`at`, moved back out of an escape sequence and out of a character's UTF-8 bytes."""

    def inside(i: int) -> bool:
        continuation = i < len(text) and 0x80 <= text[i] < 0xC0
        return continuation or b"\\" in text[max(0, i - 5) : i]

    while at and inside(at):
        at -= 1
    return at


def op_key_escape(rng: random.Random, msg: Any, env: Env) -> Change:
    """A key spelt with \\u escapes for every character: the same JSON, other bytes."""
    choices = [p for p, v in walk(msg) if isinstance(v, dict) and v]
    # keys where it matters most: credentials, nodes, the top level
    weighted = [p for p in choices if p == () or "credentials" in get(msg, p) or p[-1] == "values"]
    path = rng.choice(weighted if weighted and rng.random() < 0.6 else choices)
    obj = get(msg, path) if path else msg
    key = next((k for k in obj if k == "credentials"), None) or rng.choice(list(obj))
    spelt = Lit(b'"' + "".join(f"\\u{ord(c):04x}" for c in key).encode() + b'"')
    pairs: list[tuple[str | Lit, Any]] = [(spelt if k == key else k, v) for k, v in obj.items()]
    change = Change(f"key {key!r} spelt with escapes at {describe(path)}", [], benign=True)
    if not path:
        raise Replace(Obj(pairs), change)
    put(msg, path, Obj(pairs))
    return change


# graph operators


def op_cycle(rng: random.Random, msg: Any, env: Env) -> Change:
    es = [e for e in edges(msg) if isinstance(e, dict) and isinstance(e.get("src"), str)]
    if not es:
        raise Skip("no edges")
    e = rng.choice(es)
    back = {"id": unique_id(rng, "back"), "src": e.get("dst"), "dst": e["src"]}
    edges(msg).append(back)
    return Change(f"cycle {back['src']} -> {back['dst']}", ["cycle"])


def op_self_loop(rng: random.Random, msg: Any, env: Env) -> Change:
    nid = rng.choice(node_ids(msg))
    edges(msg).append({"id": unique_id(rng, "self"), "src": nid, "dst": nid})
    return Change(f"self-loop on {nid}", ["cycle", nid])


def op_dangling(rng: random.Random, msg: Any, env: Env) -> Change:
    nid = rng.choice(node_ids(msg))
    missing = unique_id(rng, "missing")
    ends = (nid, missing) if rng.random() < 0.7 else (missing, nid)
    edges(msg).append({"id": unique_id(rng, "dangling"), "src": ends[0], "dst": ends[1]})
    return Change(f"edge {ends[0]} -> {ends[1]}", ["does not exist", missing])


def op_duplicate_node(rng: random.Random, msg: Any, env: Env) -> Change:
    n = copy.deepcopy(rng.choice(nodes(msg)))
    if rng.random() < 0.5:
        n["type"] = rng.choice(SWAP_TYPES)
    definition(msg)["nodes"].insert(rng.randrange(len(definition(msg)["nodes"]) + 1), n)
    return Change(f"node id {n.get('id')!r} twice", ["shared", str(n.get("id"))])


def op_duplicate_edge(rng: random.Random, msg: Any, env: Env) -> Change:
    es = [e for e in edges(msg) if isinstance(e, dict)]
    if not es:
        raise Skip("no edges")
    e = copy.deepcopy(rng.choice(es))
    if rng.random() < 0.5:
        e["dst"] = rng.choice(node_ids(msg))
    edges(msg).append(e)
    return Change(f"edge id {e.get('id')!r} twice", ["shared", str(e.get("id"))])


def op_drop_node(rng: random.Random, msg: Any, env: Env) -> Change:
    ns = definition(msg)["nodes"]
    n = rng.choice(nodes(msg))
    ns.remove(n)
    nid = str(n.get("id"))
    return Change(f"node {nid} removed", ["does not exist", "not found", nid, "at least one"])


def op_node_type(rng: random.Random, msg: Any, env: Env) -> Change:
    n = rng.choice(nodes(msg))
    if rng.random() < 0.5:
        n["type"] = rng.choice(ODD_TYPES)
        return Change(f"node {n.get('id')} of type {n['type'][:30]!r}",
                      ["not registered", "type", "create"])  # fmt: skip
    n["type"] = rng.choice(SWAP_TYPES)
    return Change(f"node {n.get('id')} made a {n['type']}", [str(n.get("id")), n["type"]])


def op_param(rng: random.Random, msg: Any, env: Env) -> Change:
    """A parameter of the node's kind (or one of another kind) given a value of a wrong type."""
    n = rng.choice(nodes(msg))
    params = n.get("parameters")
    if not isinstance(params, dict):
        params = n["parameters"] = {}
    kind = str(n.get("type"))
    names = list(params) + NODE_PARAMS.get(kind, [])
    if not names or rng.random() < 0.15:
        names = [rng.choice(NODE_PARAMS[rng.choice(list(NODE_PARAMS))])]
    name = rng.choice(names)
    old = params.get(name)
    if isinstance(old, dict | list) and old and rng.random() < 0.5:  # inside it
        inner = [p for p, _v in walk(old) if p]
        path = rng.choice(inner)
        put(old, path, weird_value(rng))
        where = f"{name}{describe(path)[1:]}"
    else:
        params[name] = weird_value(rng) if rng.random() < 0.8 else other_type_value(rng, old)
        where = name
    return Change(f"parameter {where} of {kind} node {n.get('id')}", [name, str(n.get("id"))])


def op_route(rng: random.Random, msg: Any, env: Env) -> Change:
    """A route or error edge naming an edge that leaves another node, or none at all."""
    routers = [n for n in nodes(msg) if n.get("type") in ("conditional", "switch")]
    n = rng.choice(routers or nodes(msg))
    es = [e for e in edges(msg) if isinstance(e, dict) and e.get("src") != n.get("id")]
    target = rng.choice(es)["id"] if es and rng.random() < 0.7 else unique_id(rng, "no-edge")
    params = n.setdefault("parameters", {})
    if not isinstance(params, dict):
        raise Skip("parameters not an object")
    kind = n.get("type")
    if kind == "conditional":
        key = rng.choice(["true_edge_id", "false_edge_id"])
        params[key] = target
    elif kind == "switch":
        key = "routes"
        params["routes"] = [target, *(params.get("routes") or [])][:4]
    else:
        key = "error_edge"
        n["error"] = {"type": "branch", "error_edge": target}
    return Change(f"{key} of {n.get('id')} -> {target}", ["leaves", str(target), key])


def op_error_policy(rng: random.Random, msg: Any, env: Env) -> Change:
    n = rng.choice(nodes(msg))
    shapes: list[Any] = [
        {"type": "ignore"}, {"type": "halt"}, {"type": "branch"}, {"type": 5},
        {"type": "branch", "error_edge": None}, {"type": "branch", "error_edge": []},
        "ignore", [], 7, {"type": "Branch", "error_edge": "e1"}, {"type": "\u0000"},
    ]  # fmt: skip
    n["error"] = copy.deepcopy(rng.choice(shapes))
    return Change(f"error policy {n['error']!r} on {n.get('id')}", ["error", str(n.get("id"))])


def op_current_node(rng: random.Random, msg: Any, env: Env) -> Change:
    choices: list[Any] = [unique_id(rng, "nowhere"), "", " ", *node_ids(msg)]
    value = rng.choice(choices)
    msg["current_node"] = value
    return Change(f"current_node {value!r}", ["current_node", "not found", str(value)])


def op_credentials(rng: random.Random, msg: Any, env: Env) -> Change:
    """A node's credential block in an odd shape, the secret still inside it."""
    n = rng.choice(nodes(msg))
    s = env.secret
    shapes: list[Any] = [
        {"type": "token", "values": [s]},
        s,
        [s],
        {"type": "token", "values": {"token": {"nested": s}}},
        {"type": "token", "values": {"token": [s, s]}},
        {"type": 7, "values": {"token": s}},
        {"values": {"token": s}},
        {"type": "header", "values": {"field": s, "value": s}},
        {"type": "basic_auth", "values": {"username": s, "password": 12}},
        {"type": "token", "token": s},
        {"type": "kerberos", "values": {"ticket": s}},
        {"id": 5, "name": ["x"], "type": "token", "values": {"token": s}},
        {"type": "token", "values": {"token": s, "extra": None}},
        {"type": "api_key", "values": {"api_key": s, "key": s}},
    ]
    n["credentials"] = copy.deepcopy(rng.choice(shapes))
    return Change(f"credentials of {n.get('id')} shaped {type(n['credentials']).__name__}",
                  ["credentials", str(n.get("id"))])  # fmt: skip


SECRET_ODDITIES = ["\n", "\r\nX-Injected: 1", " ", "\t", "\u0000", "é", "\u202e", "\"'\\",
                   "\x7f", ":", "\u2028", "%0d%0a"]  # fmt: skip


def op_secret_oddity(rng: random.Random, msg: Any, env: Env) -> Change:
    """The planted secret with a character a header or a URL cannot hold: a client library's
    error may quote the value, escaped; it must not reach a status, a completion or the log."""
    holders = [p for p, v in walk(msg) if isinstance(v, str) and env.secret in v]
    if not holders:
        raise Skip("no secret")
    path = rng.choice(holders)
    odd = rng.choice(SECRET_ODDITIES)
    value = get(msg, path)
    put(msg, path, value + odd if rng.random() < 0.6 else odd + value)
    return Change(f"secret at {describe(path)} with {odd!r}", [], benign=True)


def op_lineage(rng: random.Random, msg: Any, env: Env) -> Change:
    stack = msg.get("lineage_stack")
    ids = node_ids(msg)
    frame = {"split_node_id": rng.choice(ids), "branch_id": unique_id(rng, "b"),
             "item_index": 0, "total_items": 1}  # fmt: skip
    if not isinstance(stack, list) or not stack or rng.random() < 0.2:
        count = rng.choice([1, 1, 2, 1000])
        msg["lineage_stack"] = [dict(frame, branch_id=f"b{i}") for i in range(count)]
        return Change(f"{count} lineage frames added", ["lineage_stack", "split"])
    i = rng.randrange(len(stack))
    f = stack[i]
    if not isinstance(f, dict):
        raise Skip("frame not an object")
    found = f.get("total_items")
    total = found if isinstance(found, int) else 1
    key, value = rng.choice([
        ("item_index", -1), ("item_index", total), ("item_index", total + 5),
        ("item_index", 2**31), ("item_index", 2**63 - 1), ("item_index", 2**64),
        ("total_items", 0), ("total_items", -3), ("total_items", 10**6), ("total_items", 2**63),
        ("branch_id", ""), ("branch_id", "a|b\\c"), ("branch_id", "x" * 10_000),
        ("split_node_id", unique_id(rng, "no-split")), ("split_node_id", rng.choice(ids)),
        ("split_node_id", ""), ("item_index", None), ("branch_id", None),
    ])  # fmt: skip
    f[key] = value
    return Change(f"lineage_stack[{i}].{key} = {value!r}"[:80], ["lineage_stack", key])


def op_token(rng: random.Random, msg: Any, env: Env) -> Change:
    ids = node_ids(msg)
    key, value = rng.choice([
        ("branch_token", ""), ("branch_token", "root"), ("branch_token", unique_id(rng, "t")),
        ("branch_token", "x" * 20_000), ("branch_token", "a|b\\c|"), ("branch_token", "root/0"),
        ("branch_token", " "), ("from_node", unique_id(rng, "nobody")), ("from_node", ""),
        ("from_node", rng.choice(ids)), ("ghost", True), ("ghost", False),
        ("started_at_ms", -1), ("started_at_ms", 0), ("started_at_ms", 2**62),
        ("started_at_ms", 2**63 - 1), ("outer_keys", []), ("outer_keys", [1]),
        ("outer_keys", [{"$json": [1, 2]}] * 3), ("outer_keys", [{"$json": None}]),
        ("is_worker_initiated", False), ("is_worker_initiated", True),
    ])  # fmt: skip
    msg[key] = value
    return Change(f"{key} = {value!r}"[:80], [key])


def op_ids(rng: random.Random, msg: Any, env: Env) -> Change:
    """The ids with oddities around them (the case stays attributable: the execution id keeps
    the case's own id inside it)."""
    key = rng.choice(["execution_id", "workflow_id", "execution_id"])
    old = msg.get(key) if isinstance(msg.get(key), str) else "id"
    name, value = rng.choice([
        ("NUL", Lit(_string(old)[:-1] + b'\\u0000"')),
        ("leading space", " " + old), ("right-to-left override", "\u202e" + old),
        ("10,000 chars", old + "y" * 10_000), ("lone surrogate", Lit(_string(old)[:-1] +
                                                                     b'\\udfff"')),
        ("newline", old + "\n"), ("emoji", old + "\U0001f4a5"), ("braces", "{" + old + "}"),
        ("invalid UTF-8", Lit(_string(old)[:-1] + b'\xff"')),
    ])  # fmt: skip
    msg[key] = value
    return Change(f"{key} with {name}", [key, "surrogate", "utf-8", "nul", "malformed"])


def op_context(rng: random.Random, msg: Any, env: Env) -> Change:
    """The accumulated context replaced by odd entries (or odd in shape)."""
    shapes: list[Any] = [
        None, {"$input": None}, {"$json": "not an object"}, {"": 1}, {"$error": [1]},
        {"$input": {"users": "none"}, "$trigger": 5}, {"$item": {"a": [None] * 3}},
        {"$input": {"items": [{"x": i} for i in range(2000)]}},
        {"$Collect": {"aggregated": None}}, {"$split": 1}, {"$input": "x" * 5000},
    ]  # fmt: skip
    ctx = copy.deepcopy(rng.choice(shapes))
    msg["accumulated_context"] = ctx
    return Change(f"accumulated_context = {json.dumps(ctx)[:60]}", ["accumulated_context"])


TREE_OPERATORS: dict[str, Operator] = {
    "retype": op_retype,
    "delete": op_delete,
    "extra": op_extra,
    "duplicate": op_duplicate,
    "number": op_number,
    "float_for_int": op_float_for_int,
    "deep": op_deep,
    "huge": op_huge,
    "unicode": op_unicode,
    "key_escape": op_key_escape,
    "cycle": op_cycle,
    "self_loop": op_self_loop,
    "dangling": op_dangling,
    "duplicate_node": op_duplicate_node,
    "duplicate_edge": op_duplicate_edge,
    "drop_node": op_drop_node,
    "node_type": op_node_type,
    "param": op_param,
    "route": op_route,
    "error_policy": op_error_policy,
    "current_node": op_current_node,
    "credentials": op_credentials,
    "secret_oddity": op_secret_oddity,
    "lineage": op_lineage,
    "token": op_token,
    "ids": op_ids,
    "context": op_context,
}

# -- operators on the bytes ---------------------------------------------------------------------

BodyOperator = Callable[[random.Random, bytes], tuple[bytes, Change]]
NOT_JSON = "malformed", "truncated", "expected", "trailing", "utf-8", "json"


def body_not_json(rng: random.Random, body: bytes) -> tuple[bytes, Change]:
    data = rng.choice([
        b"not json at all", b"{", b"}", b"\x00\x01\x02", b"<xml/>", b"{'a': 1}",
        bytes(rng.randrange(256) for _ in range(64)), b"\xef\xbb\xbf" + body, b"\xff" + body,
        b"{workflow_id: 1}", b'{"a":1,}', b"[1,2,", b"--\n" + body,
    ])  # fmt: skip
    return data, Change("a body that is no JSON", list(NOT_JSON))


def body_empty(rng: random.Random, body: bytes) -> tuple[bytes, Change]:
    data = rng.choice([b"", b" ", b"\n", b"\t\r\n "])
    return data, Change(f"empty body {data!r}", list(NOT_JSON))


def body_top_level(rng: random.Random, body: bytes) -> tuple[bytes, Change]:
    data = rng.choice([
        b"[" + body + b"]", b'"' + body[:40].replace(b'"', b"'") + b'"', b"42", b"null", b"true",
        b"[]", b"{}", b"-0", b"1e999", b"[" + body + b"," + body + b"]",
    ])  # fmt: skip
    return data, Change("a body that is no object", ["expected", "required", "object", "number"])


def body_truncate(rng: random.Random, body: bytes) -> tuple[bytes, Change]:
    at = rng.randrange(1, max(2, len(body)))
    return body[:at], Change(f"truncated at byte {at}", list(NOT_JSON))


def body_trailing(rng: random.Random, body: bytes) -> tuple[bytes, Change]:
    tail = rng.choice([b" garbage", body, b"\x00", b"}", b"\n{}"])
    return body + tail, Change("trailing bytes", list(NOT_JSON))


def body_bytes(rng: random.Random, body: bytes) -> tuple[bytes, Change]:
    b = bytearray(body)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(b))
        b[at] = rng.randrange(256)
    return bytes(b), Change("bytes flipped")  # anything may break: any reason will do


BODY_OPERATORS: dict[str, BodyOperator] = {
    "not_json": body_not_json,
    "empty": body_empty,
    "top_level": body_top_level,
    "truncate": body_truncate,
    "trailing": body_trailing,
    "bytes": body_bytes,
}

OPERATORS = [*TREE_OPERATORS, *BODY_OPERATORS]


# -- the delivery's properties -----------------------------------------------------------------

PROPERTIES: list[tuple[str, dict[str, Any], str | None]] = [
    ("resent header", {"x-runeworker-resent": True}, "application/json"),
    ("resent header, not a boolean", {"x-runeworker-resent": "yes"}, None),
    ("replayed header", {"x-runeworker-replayed": True}, None),
    ("delivery count -1", {"x-delivery-count": -1}, None),
    ("delivery count 2^40", {"x-delivery-count": 2**40}, None),
    ("delivery count as text", {"x-delivery-count": "many"}, None),
    ("a reason header already", {"x-runeworker-reason": "spoofed"}, None),
    ("content type text/plain", {}, "text/plain"),
    ("content type latin-1 JSON", {}, "application/json; charset=latin-1"),
    ("content type of 300 chars", {}, "x/" + "y" * 250),
]


def properties(rng: random.Random) -> tuple[dict[str, Any], str | None, Change]:
    """Headers and a content type of the delivery: none of them may make a message invalid."""
    name, headers, content_type = rng.choice(PROPERTIES)
    return dict(headers), content_type, Change(f"delivery with {name}", [], benign=True)
