"""Soak a worker child's loop with distinct inputs and print its memory every few rounds.

One process runs `runeworker.child.worker.Worker` on the stub broker and in-memory store of
tests/unit/stubbroker.py, as tests/unit/test_worker_loop.py does. Every execution is a new
definition: new node ids and names, a node type that does not exist (one in three), conditional
and switch expressions, templates and `$references` of varying paths, an edit node's JavaScript,
filter and sort rules, date texts and formats, and an http call to a loopback server at a new
127.x.y.z host and path. The messages run in rounds of `--round` executions; between rounds
what the stubs keep (published messages, commits, the store's executions, which Redis expires
in production) is dropped, so what grows is the child's own.

    taskset -c 0 .venv/bin/python tests/soak/distinct_inputs.py . 60000
    ... --long 16000     references, expressions, date texts and formats of 16,000 characters
    ... --pad 5000       a 250 KB literal parameter in every definition
    ... --trace          tracemalloc: what is allocated and kept, by line, at the end
    SOAK_TRIM=1 ...      glibc's malloc_trim(0) before each RSS reading (the live heap)
    SNAP0=20000 ...      with --trace: compare with a snapshot taken at that many messages
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import http.server
import logging
import os
import random
import shutil
import socketserver
import sys
import tempfile
import threading
import time
import tracemalloc
from itertools import pairwise
from typing import Any

KINDS = "log,refs,cond,switch,edit,filter,sort,dates,http,unknown"


def arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tree", help="the runeworker tree to import")
    ap.add_argument("messages", type=int, help="stop after this many deliveries acked")
    ap.add_argument("--round", type=int, default=200, help="executions per round")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--same", action="store_true", help="one definition, repeated")
    ap.add_argument("--pad", type=int, default=0, help="items of a literal parameter")
    ap.add_argument("--long", type=int, default=0, help="characters of the long strings")
    ap.add_argument("--kinds", default=KINDS)
    return ap.parse_args()


args = arguments()
sys.path[:0] = [os.path.abspath(args.tree), os.path.join(os.path.abspath(args.tree), "tests/unit")]
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="soak-prom-")
if args.trace:
    tracemalloc.start(1)

import msgspec  # noqa: E402
import psutil  # noqa: E402
from stubbroker import StubBroker, StubStore  # noqa: E402

from runeworker import logs  # noqa: E402
from runeworker.child.worker import Worker  # noqa: E402
from runeworker.config import load_config  # noqa: E402
from runeworker.engine.messages import NodeExecutionMessage, encode  # noqa: E402
from runeworker.metrics import NodeMeter  # noqa: E402
from runeworker.metrics.subscriber import WorkerMetrics  # noqa: E402

logs.setup("INFO", "json")
logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # noqa: SIM115
kinds = set(args.kinds.split(","))
rnd = random.Random(1)


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"ok": true, "path": "%s"}' % self.path.encode()[:100]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", f"s{random.getrandbits(32)}=1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("0.0.0.0", 0), Answer)  # every 127.x.y.z reaches it
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()


def word(n: int = 8) -> str:
    return "".join(
        rnd.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", k=n)
    )


def when() -> str:
    r = rnd.randint
    return f"20{r(10, 39)}-0{r(1, 9)}-1{r(0, 9)}T0{r(0, 9)}:{r(10, 59)}:{r(10, 59)}Z"


def definition(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chain of distinct nodes and its `$input`."""
    nodes: list[dict[str, Any]] = []
    tag, big = word(6), args.long
    key = f"k{tag}"
    users = [{"name": word(5), "score": rnd.random(), "when": when(), f"x{tag}": word(4)}
             for _ in range(4)]  # fmt: skip
    inp: dict[str, Any] = {"run": tag, key: {f"f{j}": [j, f"v{tag}{j}"] for j in range(3)}}
    inp["users"] = users
    long_field = ("L" + word(big)) if big else "f1"
    if big:
        inp[key][long_field] = [1, "long"]
        for u in users:
            u["note"] = u["when"] + " " + word(big)

    def add(type_: str, params: dict[str, Any]) -> None:
        nodes.append({"id": f"{type_[:3]}-{word(10)}", "name": f"N{word(7)}", "type": type_,
                      "parameters": params})  # fmt: skip

    if "log" in kinds:
        ref = f"{{{{ $input.{key}.f{i % 3}[{i % 2}] }}}} $input.{key}.{long_field}[1]"
        add("log", {"message": f"hi {{{{ $input.run }}}} {ref} {word(5)}"})
    if "refs" in kinds:
        first = nodes[0]["name"] if nodes else "input"
        text = f"$input.{key}.f2[0] and {{{{ ${first}.message }}}}"
        add("log", {"message": f"{text} {{{{ $input.users[{i % 4}].x{tag} }}}}", "level": "info"})
    if "cond" in kinds:
        either = f"('{word(6)}' != '{word(7)}' or $input.{key}.f0[0] > {i})"
        expression = f"$input.run == '{tag}' and {either} and '{word(big)}' != 'x'"
        add("conditional", {"expression": expression})
    if "switch" in kinds:
        rule = {"value": f"$input.{key}.f0[1]", "operator": "==", "compare": f"v{tag}0"}
        add("switch", {"rules": [rule], "routes": []})
    if "edit" in kinds:
        value = f"{{{{ $json.run + '{word(6)}'.toUpperCase() + {i} }}}}"
        assignments = [
            {"name": f"out.{word(5)}", "value": value, "type": "string"},
            {"name": "n", "value": f"x {{{{ {i} * 2 }}}} y", "type": "string"},
        ]
        add("edit", {"mode": "assignments", "target_path": "input", "assignments": assignments})
    if "filter" in kinds:
        rules = [
            {"field": f"$item.x{tag}", "operator": "not contains", "value": word(9)},
            {"field": f"$input.users[0].x{tag}", "operator": "!=", "value": word(6)},
        ]
        if big:
            rules.append({"field": "$item.note", "operator": ">", "value": "0"})
        add("filter", {"input_array": "$input.users", "match_mode": "any", "rules": rules})
    if "sort" in kinds:
        rules = [{"field": "$item.when", "direction": "desc", "type": "date"},
                 {"field": "name", "direction": "asc", "type": "text"}]  # fmt: skip
        add("sort", {"input_array": "$input.users", "rules": rules})
    if "dates" in kinds:
        add("dateTimeParse", {"date": users[0]["when"], "timezone": "Europe/London"})
        layout = f"%Y-%m-%d {word(4 + big)} %H"
        add("dateTimeFormat", {"date": users[1]["when"], "timezone": "UTC", "format": layout})
    if "http" in kinds:
        host = f"127.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
        url = f"http://{host}:{port}/{word(6)}?q={word(5)}"
        headers = {f"X-{word(4)}": word(8)}
        add("http", {"url": url, "method": "GET", "timeout": 10, "retry": 0, "headers": headers})
    if "unknown" in kinds and i % 3 == 0:
        add(f"NoSuch.{word(12)}", {"p": word(5)})
    if args.pad:
        extra = [{"k": word(8), "v": j, "t": [j, str(j)]} for j in range(args.pad)]
        nodes[0]["parameters"]["extra"] = extra
    edges = [{"id": f"e-{word(9)}", "src": a["id"], "dst": b["id"]} for a, b in pairwise(nodes)]
    for k, n in enumerate(nodes):
        nxt = edges[k]["id"] if k < len(edges) else ""
        if n["type"] == "conditional":
            n["parameters"] |= {"true_edge_id": nxt, "false_edge_id": ""}
        if n["type"] == "switch":
            n["parameters"]["routes"] = [nxt] if nxt else []
    return {"nodes": nodes, "edges": edges}, inp


fixed = definition(0) if args.same else None


def start(i: int) -> bytes:
    wf, inp = fixed or definition(i)
    return encode(
        NodeExecutionMessage(
            workflow_id="wf" if fixed else f"wf-{i}",
            execution_id=f"ex-{i}-{word(6)}",
            current_node=wf["nodes"][0]["id"],
            workflow_definition=msgspec.Raw(msgspec.json.encode(wf)),
            accumulated_context={"$input": inp},
        )
    )


cfg = load_config(None, env={}, overrides={"broker.prefetch": 10})
broker, store = StubBroker(), StubStore()
worker = Worker(cfg, broker=broker, store=store, hooks=WorkerMetrics(), meter=NodeMeter())
proc = psutil.Process()
state: dict[str, Any] = {"executions": 0, "acked": 0, "rounds": 0, "t0": time.time()}


def clear(obj: object) -> None:
    for value in vars(obj).values():
        if isinstance(value, dict | set | list):
            value.clear()


def show_outcomes() -> None:
    decode = msgspec.json.decode
    ends = collections.Counter(
        decode(m.body)["status"] for m in broker.waiting("workflow.completion")
    )
    failed = collections.Counter(
        str(d.get("error"))[:80]
        for d in map(decode, (m.body for m in broker.waiting("workflow.node.status")))
        if d.get("status") == "failed" and not str(d.get("error")).count("NoSuch")
    )
    print("completions", dict(ends), "failed nodes (but unknown types)", failed.most_common(4))


def measure() -> None:
    gc.collect()
    if os.environ.get("SOAK_TRIM"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    rss = proc.memory_info().rss / 2**20
    line = f"acked {state['acked']:7d} executions {state['executions']:6d} rss {rss:7.1f} MB"
    line += f" t {time.time() - state['t0']:5.0f} s"
    if args.trace:
        line += f" traced {tracemalloc.get_traced_memory()[0] / 2**20:7.2f} MB"
    print(line, flush=True)
    if args.trace and "snap0" not in state and state["acked"] >= int(os.environ.get("SNAP0", 0)):
        state["snap0"] = tracemalloc.take_snapshot()
    if args.trace and state["acked"] >= args.messages:
        ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
        now = tracemalloc.take_snapshot().filter_traces(ignore)
        for stat in now.compare_to(state["snap0"].filter_traces(ignore), "lineno")[:30]:
            print("   ", stat)


def on_idle() -> None:
    state["acked"] += sum(len(tx.acked) for tx in broker.committed)
    if state["rounds"] == 1:
        show_outcomes()
    for queue, waiting in broker.queues.items():
        if queue not in (cfg.broker.queue, cfg.broker.resume_queue):
            waiting.clear()
    broker.committed.clear()
    broker.unroutable.clear()
    clear(store)
    clear(store.doubts)
    if state["rounds"] % 5 == 0 or state["acked"] >= args.messages:
        measure()
    state["rounds"] += 1
    if state["acked"] >= args.messages:
        worker.stop()
        return
    for _ in range(args.round):
        broker.enqueue(cfg.broker.queue, start(state["executions"]))
        state["executions"] += 1


broker.on_idle = on_idle
try:
    assert worker.run() == 0
finally:
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
