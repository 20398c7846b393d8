"""Differential check of `runeworker.canvas` against the web app's own `canvasToWorkflowData`
(apps/web/src/lib/workflow-dsl.ts of rune-org/rune), bundled with esbuild and run by Node.

    python compare.py --driver driver.cjs --templates DIR --samples DIR [--show N] [--seed N]

Every canvas (the official templates' `workflow_data`, the web app's samples, and canvases
generated here) is written once as JSON text; Node reads that text and runs the TypeScript,
runeworker decodes the same bytes with msgspec (as the CLI does) and runs `to_workflow_data`.
Both results are compared as JSON values, key order aside and with int and float kept apart
(`1` and `1.0` are different text on the wire). The TypeScript throwing and runeworker raising
`CanvasError` is agreement. Exit 1 when any canvas differs, the one known difference aside
(`KNOWN`: a text spread into an object, split by UTF-16 code units in JavaScript).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from runeworker import canvas

# -- values a field may plausibly hold, as JSON text ---------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"

    __str__ = __repr__


MISSING: Any = _Missing()
VALUES: list[Any] = [
    MISSING,
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "7",
    "-3",
    "1.5",
    "0.1",
    "2.50",
    "1.0",
    "1e21",
    "1e-7",
    "5e-324",
    "123456789012345678901",
    "12345678901234567890",
    "9007199254740993",
    '""',
    '" "',
    '"\\t\\n "',
    '"abc"',
    '"  abc  "',
    '"5"',
    '" 5 "',
    '"0x1F"',
    '"0b101"',
    '"0o17"',
    '"-0x1F"',
    '"1e3"',
    '".5"',
    '"5."',
    '"Infinity"',
    '"-Infinity"',
    '"infinity"',
    '"NaN"',
    '"1_000"',
    '"\\u0661\\u0662"',
    '"\\u00a0 5\\u00a0"',
    '"\\ufeff7"',
    '"\\u001c7"',
    '"\\u180e7"',
    '"h\\u00e9llo w\\u00f6rld"',
    '"\\ud83d\\ude00 x"',
    '"GET"',
    '"post"',
    '"a@x.com"',
    '"a@x.com, b@y.com"',
    '" ,a@x.com,, "',
    '",,"',
    '"recipient@example.com"',
    '" Email subject line "',
    '"sender@example.com"',
    '"{{ $json.x }}"',
    '"true"',
    '"hours"',
    "[]",
    "[1]",
    '["5"]',
    "[1,2]",
    '["a","b"]',
    "[null]",
    '[[1,[2,null]],"x"]',
    "[{}]",
    "{}",
    '{"a":1}',
    '{"x":"y","1":2}',
]

NODE_FIELDS: dict[str, list[str]] = {
    "trigger": [],
    "webhookTrigger": ["webhookGuid"],
    "scheduledTrigger": ["amount", "unit"],
    "http": [
        "method",
        "url",
        "headers",
        "query",
        "body",
        "timeout",
        "retry",
        "retries",
        "retry_delay",
        "retryDelay",
        "raise_on_status",
        "raiseOnStatus",
        "ignore_ssl",
        "ignoreSSL",
    ],
    "if": ["expression"],
    "switch": ["rules"],
    "smtp": ["from", "to", "cc", "bcc", "subject", "body"],
    "wait": ["amount", "unit"],
    "log": ["message", "level"],
    "dateTimeNow": ["format", "timezone"],
    "dateTimeAdd": ["date", "amount", "unit", "format", "timezone"],
    "dateTimeSubtract": ["date", "amount", "unit", "format", "timezone"],
    "dateTimeFormat": ["date", "format", "timezone"],
    "dateTimeParse": ["date", "timezone"],
    "edit": ["mode", "assignments"],
    "filter": ["input_array", "match_mode", "rules"],
    "sort": ["input_array", "rules"],
    "limit": ["input_array", "count"],
    "split": ["array_field"],
    "aggregator": ["anything"],
    "merge": ["wait_mode", "timeout"],
    "agent": ["model", "system_prompt", "messages", "tools", "mcp_servers"],
    "stickyNote": ["content", "width", "height", "color", "fontSize"],
    "integration.slack.chat.post_message": ["arguments"],
    "integration.nobody.knows": ["arguments"],
    "somethingElse": ["x"],
    "": [],
}
ENTRY_FIELDS = {  # the fields of one entry of a list field
    ("switch", "rules"): ["value", "operator", "compare"],
    ("edit", "assignments"): ["name", "value", "type"],
    ("filter", "rules"): ["field", "operator", "value"],
    ("sort", "rules"): ["field", "direction", "type"],
    ("agent", "messages"): ["role", "content", "ui_id"],
    ("agent", "tools"): ["name", "config", "ui_id"],
}
OPERATORS = ['"=="', '"!="', '">"', '"<"', '">="', '"<="', '"contains"', '"=~"', '" == "']
EXTRA_VALUES = {"operator": OPERATORS, "color": ['"yellow"'], "fontSize": ['"lg"']}


def obj(pairs: list[tuple[str, Any]]) -> str:
    """A JSON object from (key, JSON text) pairs; MISSING values left out."""
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs if v is not MISSING) + "}"


def node(
    node_id: str,
    kind: str,
    data: str | Any = "{}",
    position: str = '{"x":10,"y":20.5}',
    extra: str = "",
) -> str:
    pairs: list[tuple[str, Any]] = [
        ("id", json.dumps(node_id)),
        ("type", json.dumps(kind)),
        ("position", position),
        ("data", data),
    ]
    text = obj(pairs)
    return text[:-1] + extra + "}" if extra else text


def edge(edge_id: Any, src: Any, dst: Any, handle: Any = MISSING, label: Any = MISSING) -> str:
    return obj(
        [
            ("id", edge_id),
            ("source", src),
            ("target", dst),
            ("sourceHandle", handle),
            ("label", label),
            ("type", '"default"'),
        ]
    )


def graph(nodes: list[str], edges: list[str] | None = None) -> str:
    if edges is None:
        return '{"nodes":[' + ",".join(nodes) + "]}"
    return '{"nodes":[' + ",".join(nodes) + '],"edges":[' + ",".join(edges) + "]}"


def generated(integration_kinds: list[str], seed: int) -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    add = cases.append
    kinds = [*NODE_FIELDS, *integration_kinds[:4]]
    # every integration kind either side knows, and near misses
    near = ["integration.slack.chat", "integration.slack.chat.post_message ", "Integration.x"]
    for kind in [*integration_kinds, *near]:
        for value in [MISSING, "null", "{}", '{"a":1,"b":[2.0]}', "[]", '"x"', "0"]:
            data = obj([("label", '"N"'), ("arguments", value)])
            add((f"integration {kind} arguments={value}", graph([node("n", kind, data)], [])))
    # every field of every node type, alone, in every value
    for kind, fields in NODE_FIELDS.items():
        for field in fields:
            for value in VALUES + EXTRA_VALUES.get(field, []):
                data = obj([("label", '"N"'), (field, value)])
                add((f"field {kind}.{field}={value}", graph([node("n", kind, data)], [])))
    # the label, the credential and `data` itself, on every node type
    for kind in kinds:
        for value in VALUES:
            add((f"label {kind}={value}", graph([node("n", kind, obj([("label", value)]))], [])))
        refs = ['{"id":"c","type":"smtp","name":"M"}', '{"id":"c","type":"smtp","name":5}']
        for value in [*VALUES, *refs]:
            data = obj([("label", '"N"'), ("credential", value)])
            add((f"credential {kind}={value}", graph([node("n", kind, data)], [])))
        for value in VALUES:
            add((f"data {kind}={value}", graph([node("n", kind, value)], [])))
        for value in VALUES:
            add(
                (
                    f"position {kind}={value}",
                    graph([node("n", kind, '{"label":"N"}', position=value)], []),
                )
            )
        for value in VALUES:
            add(
                (
                    f"position.x {kind}={value}",
                    graph(
                        [
                            node(
                                "n", kind, '{"label":"N"}', position=obj([("x", value), ("y", "1")])
                            )
                        ],
                        [],
                    ),
                )
            )
    # entries of list fields: every value as an entry, and every entry field in every value
    for (kind, field), entry_fields in ENTRY_FIELDS.items():
        for value in VALUES:
            if value is MISSING:
                continue
            data = obj([("label", '"N"'), (field, f"[{value}]")])
            add((f"entry {kind}.{field}[{value}]", graph([node("n", kind, data)], [])))
        for sub in entry_fields:
            for value in VALUES + EXTRA_VALUES.get(sub, []):
                entry = obj([(sub, value)] + ([("config", "{}")] if sub != "config" else []))
                if kind != "agent":
                    entry = obj([(sub, value)])
                data = obj([("label", '"N"'), (field, f"[{entry}]")])
                add((f"entry {kind}.{field}[].{sub}={value}", graph([node("n", kind, data)], [])))
    # an agent tool's config lists and their entries
    for key in ("headers", "query", "body"):
        for value in VALUES:
            tool = '{"name":"t","config":' + obj([(key, value)]) + "}"
            data = obj([("label", '"N"'), ("tools", f"[{tool}]")])
            add((f"entry agent-tool config.{key}={value}", graph([node("n", "agent", data)], [])))
            if value is not MISSING:
                tool = '{"name":"t","config":' + obj([(key, f"[{value}]")]) + "}"
                data = obj([("label", '"N"'), ("tools", f"[{tool}]")])
                add(
                    (
                        f"entry agent-tool config.{key}[{value}]",
                        graph([node("n", "agent", data)], []),
                    )
                )
        field = '{"key":"k","value":"v","ui_id":"u"}'
        tool = '{"ui_id":"t1","name":"t","config":{"' + key + '":[' + field + "]}}"
        add(
            (
                f"entry agent-tool config.{key} ui_id",
                graph([node("n", "agent", obj([("label", '"N"'), ("tools", f"[{tool}]")]))], []),
            )
        )
    # if and switch edges in every handle form
    handles = [
        MISSING,
        "null",
        '"true"',
        '"false"',
        '"True"',
        '" true"',
        '"switch-case-0"',
        '"switch-case-1"',
        '"switch-case-2"',
        '"switch-case-00"',
        '"switch-case-10"',
        '"switch-fallback"',
        '"fallback"',
        '"case 1"',
        "0",
        "true",
        "[]",
    ]
    rules2 = '[{"value":"{{ $json.a }}","operator":"==","compare":"1"},{"value":"x"}]'
    for kind, data in (
        ("if", '{"label":"I","expression":" a == b "}'),
        ("switch", '{"label":"S","rules":' + rules2 + "}"),
    ):
        for h in handles:
            add(
                (
                    f"edge {kind} handle={h}",
                    graph(
                        [node("a", kind, data), node("b", "log", '{"label":"L"}')],
                        [edge('"e1"', '"a"', '"b"', h)],
                    ),
                )
            )
        for h1, h2 in itertools.product(handles, repeat=2):
            add(
                (
                    f"edge {kind} handles={h1},{h2}",
                    graph(
                        [
                            node("a", kind, data),
                            node("b", "log", '{"label":"L"}'),
                            node("c", "log", '{"label":"M"}'),
                        ],
                        [edge('"e1"', '"a"', '"b"', h1), edge('"e2"', '"a"', '"c"', h2)],
                    ),
                )
            )
        for eid in (MISSING, "null", '""', "0", "5", '"dup"', "[]", "{}", "false"):
            for h in ('"true"', '"false"', '"switch-case-0"', '"switch-fallback"'):
                add(
                    (
                        f"edge {kind} id={eid} handle={h}",
                        graph(
                            [node("a", kind, data), node("b", "log", "{}")],
                            [edge(eid, '"a"', '"b"', h), edge('"dup"', '"a"', '"b"', h)],
                        ),
                    )
                )
    # edges of every shape
    for field in ("id", "source", "target", "label"):
        for value in VALUES:
            parts = {"id": '"e1"', "source": '"a"', "target": '"b"', "label": MISSING}
            parts[field] = value
            add(
                (
                    f"edge field-{field}={value}",
                    graph(
                        [node("a", "trigger", "{}"), node("b", "log", "{}")],
                        [edge(parts["id"], parts["source"], parts["target"], label=parts["label"])],
                    ),
                )
            )
    for value in VALUES:
        if value is not MISSING:
            add((f"edge entry={value}", graph([node("a", "trigger", "{}")], [value])))
    for value in VALUES:
        if value is not MISSING and not value.startswith("["):
            add(
                (
                    f"graph edges={value}",
                    '{"nodes":[' + node("a", "trigger", "{}") + '],"edges":' + value + "}",
                )
            )
            add((f"graph nodes-entry={value}", '{"nodes":[' + value + '],"edges":[]}'))
    add(("graph edges missing", graph([node("a", "trigger", "{}")])))
    # ids of every type, duplicate ids, orphans, edges to missing nodes
    for value in VALUES:
        if value is not MISSING:
            add(
                (
                    f"graph node-id={value}",
                    '{"nodes":['
                    + obj(
                        [
                            ("id", value),
                            ("type", '"log"'),
                            ("position", '{"x":1,"y":2}'),
                            ("data", '{"label":"L"}'),
                        ]
                    )
                    + '],"edges":[]}',
                )
            )
            add(
                (
                    f"graph node-type={value}",
                    '{"nodes":['
                    + obj(
                        [
                            ("id", '"n"'),
                            ("type", value),
                            ("position", '{"x":1,"y":2}'),
                            ("data", '{"label":"L"}'),
                        ]
                    )
                    + '],"edges":[]}',
                )
            )
    add(
        (
            "graph node-id missing",
            '{"nodes":[{"type":"log","position":{"x":1,"y":2},"data":{}}],"edges":[]}',
        )
    )
    add(
        (
            "graph node-type missing",
            '{"nodes":[{"id":"n","position":{"x":1,"y":2},"data":{}}],"edges":[]}',
        )
    )
    add(
        (
            "graph duplicate ids",
            graph(
                [
                    node("a", "trigger", "{}"),
                    node("a", "if", '{"expression":"x"}'),
                    node("b", "log", "{}"),
                ],
                [edge('"e"', '"a"', '"b"', '"true"'), edge('"e"', '"a"', '"b"', '"false"')],
            ),
        )
    )
    add(
        (
            "graph orphans and missing targets",
            graph(
                [node("a", "trigger", "{}"), node("o", "log", "{}"), node("s", "stickyNote", "{}")],
                [
                    edge('"e1"', '"a"', '"ghost"'),
                    edge('"e2"', '"ghost"', '"a"'),
                    edge('"e3"', '"a"', '"s"'),
                ],
            ),
        )
    )
    add(("graph empty", graph([], [])))
    add(
        (
            "graph duplicate keys",
            '{"nodes":[{"id":"a","id":"b","type":"log","type":"wait",'
            '"position":{"x":1,"y":2},"data":{"amount":"3","amount":"4","label":"x","label":"y"}}],'
            '"edges":[]}',
        )
    )
    add(
        (
            "graph proto key",
            '{"nodes":[{"id":"a","type":"http","position":{"x":1,"y":2},'
            '"data":{"__proto__":{"url":"u"},"headers":{"__proto__":1}}}],"edges":[]}',
        )
    )
    cases += randomised(random.Random(seed))
    return cases


def _value(rnd: random.Random, field: str) -> Any:
    return rnd.choice(VALUES + EXTRA_VALUES.get(field, []))


def _data(rnd: random.Random, kind: str) -> str:
    """A node's data with each of its fields present half the time, in a random value; a list
    field's entries built from their own fields."""
    pairs: list[tuple[str, Any]] = [("label", rnd.choice(['"N"', '"my node"', MISSING, '""']))]
    for field in NODE_FIELDS[kind]:
        if rnd.random() < 0.5:
            continue
        entry_fields = ENTRY_FIELDS.get((kind, field))
        if entry_fields and rnd.random() < 0.7:
            entries = [
                obj([(f, _value(rnd, f)) for f in entry_fields if rnd.random() < 0.6])
                for _ in range(rnd.randint(1, 3))
            ]
            if field == "tools":
                entries = ['{"name":"t","config":{}}', *entries[1:]]
            pairs.append((field, "[" + ",".join(entries) + "]"))
        else:
            pairs.append((field, _value(rnd, field)))
    return obj(pairs)


def randomised(rnd: random.Random) -> list[tuple[str, str]]:
    """Nodes with several fields set at once, and graphs of several nodes whose edges join them
    (or no node) by random handles, ids repeated."""
    cases = []
    kinds = [k for k, fields in NODE_FIELDS.items() if fields]
    for kind in kinds:
        for i in range(150):
            cases.append((f"random {kind} #{i}", graph([node("n", kind, _data(rnd, kind))], [])))
    handles = [
        MISSING,
        '"true"',
        '"false"',
        '"switch-case-0"',
        '"switch-case-1"',
        '"switch-fallback"',
        "null",
    ]
    for i in range(400):
        kinds_here = [rnd.choice([*kinds, "if", "switch", "if", "switch"]) for _ in range(5)]
        ids = [rnd.choice(["a", "b", "c", "d", "e"]) for _ in kinds_here]
        nodes = [node(n, k, _data(rnd, k)) for n, k in zip(ids, kinds_here, strict=True)]
        edges = [
            edge(
                rnd.choice(['"e1"', '"e2"', '"e3"', MISSING]),
                json.dumps(rnd.choice(ids)),
                json.dumps(rnd.choice([*ids, "ghost"])),
                rnd.choice(handles),
                rnd.choice([MISSING, '"true"', '"case 1"', "null"]),
            )
            for _ in range(rnd.randint(0, 6))
        ]
        cases.append((f"random graph #{i}", graph(nodes, edges)))
    return cases


def file_cases(kind: str, paths: list[Path], key: str | None) -> list[tuple[str, str]]:
    out = []
    for path in sorted(paths):
        doc = json.loads(path.read_text())
        graph_doc = doc[key] if key else doc
        out.append((f"{kind} {path.name}", json.dumps(graph_doc)))
    return out


# -- running both ---------------------------------------------------------------------------------


def run_node(driver: Path, texts: list[str]) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write("[" + ",".join(texts) + "]")
    try:
        out = subprocess.run(["node", str(driver), f.name], capture_output=True, check=True)
    finally:
        Path(f.name).unlink()
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


def run_python(text: str) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(text.encode("utf-8", "surrogatepass"))
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return {"unreadable": str(exc)}
    if not isinstance(doc, dict):
        return {"error": "not an object"}
    try:
        definition = canvas.to_workflow_data(doc)
        encoded = msgspec.json.encode(definition)
    except canvas.CanvasError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # any other exception is a finding
        return {"crash": f"{type(exc).__name__}: {exc}"}
    return {"ok": json.loads(encoded)}


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values: key order aside, int and float apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def code_points(value: Any) -> Any:
    """A JSON value with each object that spreads a text (`{...text}`: keys "0".."n", one UTF-16
    code unit each) re-spread by code points, as Python spreads it."""
    if isinstance(value, list):
        return [code_points(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: code_points(v) for k, v in value.items()}
    if list(out) != [str(i) for i in range(len(out))] or not all(
        isinstance(v, str) and len(v) == 1 for v in out.values()
    ):
        return out
    text = "".join(out.values()).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return {str(i): c for i, c in enumerate(text)}


KNOWN = "known: `{...text}` splits a text by UTF-16 code units, Python by code points"


def verdict(ts: dict[str, Any], py: dict[str, Any]) -> str | None:
    if "ok" in ts and "ok" in py:
        if same(ts["ok"], py["ok"]):
            return None
        return KNOWN if same(code_points(ts["ok"]), py["ok"]) else "different output"
    if "error" in ts and "error" in py:
        return None
    if "error" in ts:
        return "TypeScript throws, runeworker " + ("converts" if "ok" in py else next(iter(py)))
    return "TypeScript converts, runeworker " + next(iter(py))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--driver", type=Path, required=True)
    parser.add_argument("--templates", type=Path, help="rune-templates checkout (templates/)")
    parser.add_argument("--samples", type=Path, help="apps/web/src/features/canvas/samples")
    parser.add_argument("--show", type=int, default=3, help="examples shown per kind of finding")
    parser.add_argument("--dump", type=Path, help="write every difference here as JSON")
    parser.add_argument("--seed", type=int, default=1, help="seed of the randomised canvases")
    args = parser.parse_args()
    cases: list[tuple[str, str]] = []
    if args.templates:
        cases += file_cases("template", list(args.templates.rglob("*.json")), "workflow_data")
    if args.samples:
        cases += file_cases("sample", list(args.samples.glob("*.json")), None)
    listed = subprocess.run(
        ["node", str(args.driver), "--integration-kinds"], capture_output=True, check=True
    )
    ts_kinds = set(json.loads(listed.stdout))
    if ts_kinds != canvas.INTEGRATION_KINDS:
        print("integration kinds differ: " + ", ".join(sorted(ts_kinds ^ canvas.INTEGRATION_KINDS)))
    cases += generated(sorted(ts_kinds | canvas.INTEGRATION_KINDS), args.seed)
    ts_results = run_node(args.driver, [text for _, text in cases])
    counts: Counter[str] = Counter(name.split(" ", 1)[0] for name, _ in cases)
    agree: Counter[str] = Counter()
    refused = 0
    findings: dict[str, list[tuple[str, str, dict[str, Any], dict[str, Any]]]] = {}
    for (name, text), ts in zip(cases, ts_results, strict=True):
        py = run_python(text)
        problem = verdict(ts, py)
        if not problem:
            agree[name.split(" ", 1)[0]] += 1
            refused += "error" in ts
        else:
            findings.setdefault(problem, []).append((name, text, ts, py))
    print(
        f"{len(cases)} canvases compared (agreeing/all, by kind): "
        + ", ".join(f"{k} {agree[k]}/{n}" for k, n in counts.items())
    )
    differing = sum(len(v) for v in findings.values())
    print(f"{len(cases) - differing} agree ({refused} of them refused by both), {differing} differ")
    for problem, items in findings.items():
        print(f"\n== {problem}: {len(items)}")
        for name, text, ts, py in items[: args.show]:
            print(
                f"-- {name}\n   canvas: {text[:300]}\n   ts: {json.dumps(ts)[:400]}"
                f"\n   py: {json.dumps(py)[:400]}"
            )
        if len(items) > args.show:
            print("   also: " + "; ".join(n for n, *_ in items[args.show : args.show + 40]))
    if args.dump:
        args.dump.write_text(
            json.dumps(
                [
                    {"problem": p, "name": n, "canvas": t, "ts": ts, "py": py}
                    for p, items in findings.items()
                    for n, t, ts, py in items
                ],
                indent=1,
            )
        )
    return 1 if set(findings) - {KNOWN} else 0


if __name__ == "__main__":
    sys.exit(main())
