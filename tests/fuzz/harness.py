"""Fuzzed execution messages through a real `runeworker serve`, and the promises checked.

`Run` makes a RabbitMQ vhost and a Redis key prefix of its own, starts the loopback server,
captures the seeds (tests/fuzz/corpus.py), starts `python -m runeworker serve` with 1 or 2
children on that vhost, publishes the cases batch by batch as the Rune API publishes (default
exchange, persistent, no content type) and reads everything the worker publishes: statuses,
completions, mirrors, dead letters, and a copy of its next messages. After each batch it waits
until the batch has settled, then checks (`Checker`):

- the supervisor and its children: none exited, none restarted (the serve log names every
  spawn and every exit), no Python traceback in the log, no node raising and no step failing
  with an exception (`node ... raised`, `step of execution ... failed`: a bug, whose error the
  user reads as `TypeError: ...`);
- the queues: the execution and resume queues drain (nothing ready, nothing unacknowledged);
- each execution a case can be identified by (its ids read with Python's json, the top level
  holding strict JSON): exactly one completion, or it is legitimately still waiting (a wait
  node's or a merge's timer in Redis); a message no execution can be told from (not JSON, not
  an object, ids missing or unreadable): no more than one completion, and its dead-letter copy;
- every dead-letter copy carries a reason (`x-runeworker-reason`) that names what is wrong
  (one of the words its mutation gives, `mutate.Change.hints`), and no traceback; a refused
  message whose execution can be identified gets a `failed` completion, and an execution
  that fails as refused has a dead-letter copy;
- no status error, completion failure reason or dead-letter reason holds a traceback;
- no planted secret (`corpus.secret_of`) in the log, a status, a completion, a mirror, a
  dead-letter reason or a next message's context, unless the mutation took it out of its
  `credentials` object (then it is no credential any more).

Cases are reproducible one by one: case `i` of seed `s` is built from `random.Random(f"{s}/{i}")`
alone, so `--only i` rebuilds exactly that message.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
import redis

from runeworker.adapters.amqp import COMPLETION_QUEUE, MIRROR_QUEUE, STATUS_QUEUE
from runeworker.config import BrokerConfig, load_config, to_node_settings
from runeworker.engine import registry
from runeworker.engine.barriers import HOLD

from . import corpus, mutate
from .loopback import Loopback

RABBIT = os.environ.get("RUNEWORKER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS = os.environ.get("RUNEWORKER_TEST_REDIS", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parents[2]

# the queues and exchange of the serve under test: its config's defaults, and the fixed names of
# what it publishes (runeworker/adapters/amqp.py)
_BROKER = BrokerConfig()
EXECUTION, RESUME = _BROKER.queue, _BROKER.resume_queue
STATUS, COMPLETION, MIRROR = STATUS_QUEUE, COMPLETION_QUEUE, MIRROR_QUEUE
DEAD, EXCHANGE = _BROKER.dead_letter_queue, _BROKER.exchange
TAP = "tap"
SERVICES = ("gmail", "sheets", "drive", "dropbox", "outlook", "slack", "telegram", "jira")
# Every network but loopback: a fuzzed workflow must not reach beyond this machine, whatever
# URL a mutation writes.
DENY = ["0.0.0.0/2", "64.0.0.0/3", "96.0.0.0/4", "112.0.0.0/5", "120.0.0.0/6", "124.0.0.0/7",
        "126.0.0.0/8", "128.0.0.0/1", "2000::/3", "fc00::/7", "fe80::/10"]  # fmt: skip
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\n\s+File \"[^\"]+\", line \d+")
SETTLE_TIMEOUT = float(os.environ.get("RUNEWORKER_FUZZ_SETTLE", "120"))
GRACE = 1.0  # after a batch settled: time for a late duplicate to show


# -- cases -------------------------------------------------------------------------------------


@dataclass
class Reading:
    """The case's body read independently of runeworker (Python's json)."""

    kind: str  # "ids": the execution is identifiable; "none": it is not; "unsure": undecided
    execution_id: str = ""
    confined: bool = True  # every copy of the secret sits inside a `credentials` object


@dataclass
class Case:
    index: int
    seed: str
    changes: list[mutate.Change]
    body: bytes
    secret: str
    reading: Reading
    queue: str = "workflow.execution"  # where it is published (a timer's payload: resume)
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str | None = None

    @property
    def what(self) -> str:
        return "; ".join(c.what for c in self.changes)

    @property
    def hints(self) -> list[str]:
        """Words of which a refusal must name one; none when a change allows any reason."""
        if any(not c.hints for c in self.changes):
            return []
        return [h for c in self.changes for h in c.hints if h]


class NotJson(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise NotJson(f"{name} is no JSON")


def _clean(text: str) -> bool:
    """No surrogate (a lone escape, or an undecodable byte read with surrogateescape)."""
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def read_body(body: bytes, secret: str) -> Reading:
    """Whether the body identifies an execution: a JSON object whose `workflow_id` and
    `execution_id` are non-empty strings (the execution id without NUL, which no execution id
    can hold: docs/WIRE.md section 3.5), and whose top level is strict JSON and Unicode text.
    Below the top level, what Python's json reads (NaN, lone surrogates) leaves the ids
    readable; what it cannot read at all leaves it undecided (`unsure`)."""
    text = body.decode("utf-8", "surrogateescape")
    try:
        tree = json.loads(text)
    except (ValueError, RecursionError):
        return Reading("unsure")
    if not isinstance(tree, dict):
        return Reading("none")
    wid, eid = tree.get("workflow_id"), tree.get("execution_id")
    if not (isinstance(wid, str) and isinstance(eid, str) and wid and eid):
        return Reading("none")
    if "\x00" in eid or not _clean(wid) or not _clean(eid):
        return Reading("none")
    try:  # the top level itself: no NaN, no lone surrogate, no undecodable byte
        top = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        top = None
    scalars = (
        [] if top is None else [k for k in tree] + [v for v in tree.values() if isinstance(v, str)]
    )
    if top is None and not _top_level_strict(text):
        return Reading("unsure", eid)
    if not all(_clean(s) for s in scalars):
        return Reading("unsure", eid)
    return Reading("ids", eid, _confined(tree, secret))


def _top_level_strict(text: str) -> bool:
    """Whether the NaN/Infinity literals Python's json read are all below the top level."""
    depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|-?\b(?:NaN|Infinity)\b', text, re.DOTALL):
        token = m.group()
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
        elif depth <= 1:
            return False
    return True


def _confined(tree: Any, secret: str) -> bool:
    """Every string holding the secret lies under a `credentials` key."""
    for path, value in mutate.walk(tree, limit=200_000):
        if isinstance(value, str) and secret in value and "credentials" not in path:
            return False
    return True


def build_case(seed: int, index: int, seeds: list[corpus.Seed], env: mutate.Env) -> Case:
    """Case `index` of run `seed`: one seed message, mutated (reproducible from the two)."""
    rng = random.Random(f"{seed}/{index}")
    secret = corpus.secret_of(index)
    env = mutate.Env(secret, env.node_types, env.closed_port)
    names = mutate.OPERATORS
    first = names[(index + seed) % len(names)]  # every operator in turn, details at random
    ops = [first] + [rng.choice(list(mutate.TREE_OPERATORS)) for _ in range(2)
                     if rng.random() < 0.2]  # fmt: skip
    for _attempt in range(50):
        s = rng.choice(seeds)
        tree = corpus.with_secret(s.tree, secret)
        own = tree["execution_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        # a captured next message under a fresh execution id: its own branch token names a
        # branch of an execution the state store never held (a step tells that loss and fails
        # the execution, CHANGELOG "State lost from Redis"); without one it is the branch a Go
        # worker publishes, which opens the execution (docs/WIRE.md section 12.1). Operators
        # still write tokens of their own (`mutate.py`).
        if tree.get("from_node") and tree.get("branch_token") not in (None, "root"):
            del tree["branch_token"]
        changes: list[mutate.Change] = []
        try:
            for name in ops:
                if name in mutate.BODY_OPERATORS:
                    continue
                if not isinstance(tree, dict):
                    break  # replaced by an Obj: later operators have no tree to work on
                try:
                    changes.append(mutate.TREE_OPERATORS[name](rng, tree, env))
                except mutate.Replace as r:
                    tree, change = r.tree, r.change
                    changes.append(change)
        except mutate.Skip:
            continue
        body = mutate.dumps(tree)
        for name in ops:
            if name in mutate.BODY_OPERATORS:
                body, change = mutate.BODY_OPERATORS[name](rng, body)
                changes.append(change)
        reading = read_body(body, secret)
        if reading.execution_id and own not in reading.execution_id:
            continue  # an execution id another case may have too ("text"): not attributable
        # a timer's payload comes back on the resume queue; now and then any message does
        queue = RESUME if (s.resume and rng.random() < 0.9) or rng.random() < 0.05 else EXECUTION
        headers: dict[str, Any] = {}
        content_type = None
        if rng.random() < 0.15:
            headers, content_type, change = mutate.properties(rng)
            changes.append(change)
        if queue != EXECUTION:  # where a timer's payload belongs; anything else is refused
            what = (
                "on the resume queue" if s.resume else "a message of no timer on the resume queue"
            )
            changes.append(mutate.Change(what, ["wait", "resume"], benign=s.resume))
        return Case(index, s.name, changes, body, secret, reading, queue, headers, content_type)
    raise AssertionError(f"case {index}: no seed takes operator {first}")


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Got:
    queue: str
    raw: bytes
    headers: dict[str, Any]
    body: Any


@dataclass
class Violation:
    kind: str
    case: int | None  # None: not tied to one case
    detail: str

    def __str__(self) -> str:
        where = f"case {self.case}" if self.case is not None else "run"
        return f"[{self.kind}] {where}: {self.detail}"


@dataclass
class Report:
    seed: int
    cases: list[Case] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    waiting: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def explain(self, limit: int = 60) -> str:
        lines = [
            f"{len(self.cases)} cases (seed {self.seed}) in {self.seconds:.0f} s: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            f"{len(self.violations)} violations",
        ]
        by_case = {c.index: c for c in self.cases}
        for v in self.violations[:limit]:
            lines.append(str(v))
            if v.case is not None and v.case in by_case:
                c = by_case[v.case]
                lines.append(f"    seed {c.seed}: {c.what}")
        if len(self.violations) > limit:
            lines.append(f"... and {len(self.violations) - limit} more")
        bad = sorted({v.case for v in self.violations if v.case is not None})
        if bad:
            only = ",".join(map(str, bad[:40]))
            lines.append(f"again: python -m tests.fuzz.run --seed {self.seed} --only {only}")
        return "\n".join(lines)


def _ctl(*args: str) -> str:
    out = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    return out.stdout


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run:
    """One fuzzing run: vhost, prefix, loopback server, serve, collector (a context manager)."""

    def __init__(self, seed: int, processes: int = 2, directory: Path | None = None) -> None:
        self.seed = seed
        self.processes = processes
        self.tag = uuid.uuid4().hex[:10]
        self.vhost = f"rwfuzz-{self.tag}"
        self.prefix = f"rwfuzz:{self.tag}:"
        self.url = f"{RABBIT}/{quote(self.vhost, safe='')}"
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix="rwfuzz-"))
        self.port = closed_port()
        self.loopback = Loopback()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "serve.log"
        self.got: dict[str, list[Got]] = defaultdict(list)
        self.completions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dead: dict[bytes, list[Got]] = defaultdict(list)
        self.statuses: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.dead_of: set[str] = set()  # execution ids of dead-letter copies that parse
        self.scanned: dict[str, int] = defaultdict(int)  # per place: what secrets() read
        self.bodies: Counter[bytes] = Counter()  # of every case published
        self.queues: dict[bytes, set[str]] = defaultdict(set)  # where each body was published
        self.log_seen = 0
        self.redis = redis.Redis.from_url(REDIS)
        self.conn: Any = None
        self.config = self.dir / "runeworker.toml"

    # -- set-up and tear-down

    def __enter__(self) -> Run:
        _ctl("add_vhost", self.vhost)
        _ctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        try:
            self._write_config()
            cfg = load_config(self.config, env={})
            self.seeds = corpus.seeds(self.loopback.url, self.port, to_node_settings(cfg))
            self.env = mutate.Env("", sorted(registry.load()), self.port)
            self._open_collector()
            self._start_serve()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.conn is not None:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self.conn.close()
        self.loopback.close()
        with contextlib.suppress(subprocess.SubprocessError):
            _ctl("delete_vhost", self.vhost)
        keys = list(self.redis.scan_iter(match=self.prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            self.redis.delete(*keys[i : i + 500])
        self.redis.close()
        if self._own_dir and not os.environ.get("RUNEWORKER_FUZZ_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def _write_config(self) -> None:
        base = self.loopback.url
        tables: dict[str, dict[str, Any]] = {
            "broker": {"url": self.url, "prefetch": 10, "max_deliveries": 3, "retry_delay": 0.2},
            "redis": {"url": REDIS, "key_prefix": self.prefix, "key_ttl": 3600},
            "worker": {
                "processes": self.processes,
                "timeout": 30.0,
                "graceful_timeout": 10.0,
                "node_timeout": 5.0,
            },
            "supervisor": {"restart_backoff": 0.1, "restart_backoff_max": 0.5, "crash_limit": 1000},
            "metrics": {"listen": ""},
            "nodes": {"http_deny_networks": DENY, "http_default_timeout": 5.0, "smtp_timeout": 5.0},
            "integrations": {f"{s}_base_url": base for s in SERVICES}
            | {"retry_after_max": 0.0, "retry_after_attempts": 0},
            "agent": {
                "gemini_base_url": base,
                "openai_base_url": base + "/v1",
                "anthropic_base_url": base,
                "max_retries": 0,
                "request_timeout": 5.0,
                "total_timeout": 10.0,
            },
            "logging": {"level": "INFO", "format": "text"},
        }
        self.config.write_text(
            "".join(
                f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
                for name, table in tables.items()
            )
        )

    def _open_collector(self) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
        self.ch = self.conn.channel()
        ch = self.ch
        ch.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        for q in (EXECUTION, RESUME, STATUS, COMPLETION, MIRROR):
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, EXCHANGE, routing_key=q)
        ch.queue_declare(DEAD, durable=True)
        tap = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(tap, EXCHANGE, routing_key=EXECUTION)
        for q, name in ((STATUS, STATUS), (COMPLETION, COMPLETION), (MIRROR, MIRROR),
                        (DEAD, DEAD), (tap, TAP)):  # fmt: skip
            ch.basic_consume(q, self._collect(name), auto_ack=True)
        self.pub = self.conn.channel()
        self.pub.confirm_delivery()

    def _collect(self, name: str) -> Any:
        def on_message(_ch: Any, _method: Any, props: Any, raw: bytes) -> None:
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                body = None
            got = Got(name, raw, dict(props.headers or {}), body)
            self.got[name].append(got)
            eid = str(body.get("execution_id")) if isinstance(body, dict) else ""
            if name == COMPLETION and eid:
                self.completions[eid].append(body)
            if name == STATUS and eid:
                self.statuses[eid].append(body)
            if name == DEAD:
                self.dead[raw].append(got)
                if eid:
                    self.dead_of.add(eid)

        return on_message

    def _start_serve(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RUNEWORKER_", "RABBITMQ_", "WORKFLOW_", "REDIS_"))
        }
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        log = open(self.log_path, "wb")  # noqa: SIM115 (the child process keeps it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runeworker", "serve", "-c", str(self.config)],
            cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while len(re.findall(r"child \d+ consuming ", self.log())) < self.processes:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{self.log()[-3000:]}")
            self.conn.sleep(0.1)
        self.spawned = self.spawns()

    # -- reading

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def spawns(self) -> list[str]:
        return re.findall(r"spawned child (\d+)", self.log())

    def pump(self, seconds: float) -> None:
        self.conn.process_data_events(time_limit=seconds)

    def ready(self, queue: str) -> int:
        return int(self.pub.queue_declare(queue, passive=True).method.message_count)

    def unacked(self) -> dict[str, tuple[int, int]]:
        out = _ctl("list_queues", "-p", self.vhost, "name", "messages_ready",
                   "messages_unacknowledged", "--formatter", "json")  # fmt: skip
        return {r["name"]: (r["messages_ready"], r["messages_unacknowledged"])
                for r in json.loads(out or "[]")}  # fmt: skip

    def timers(self, execution_id: str) -> int:
        """What keeps the execution open with nothing left to step: its wait or merge timers,
        and an aggregator's hold token (a split branch alone at its aggregator, waiting for
        siblings no message brings: the execution stays open, as upstream's aggregator does;
        CHANGELOG "Mixed pools")."""
        base = f"{self.prefix}exec:{{{execution_id}}}:branches:"
        held = [t for t in self.redis.smembers(base + "live") if t.startswith(HOLD.encode())]
        return int(self.redis.scard(base + "timers")) + len(held)

    # -- one batch

    def publish(self, cases: list[Case]) -> None:
        for c in cases:
            self.bodies[c.body] += 1
            self.queues[c.body].add(c.queue)
            props = pika.BasicProperties(
                delivery_mode=2, headers=c.headers or None, content_type=c.content_type
            )
            self.pub.basic_publish("", c.queue, c.body, props)

    def settle(self, cases: list[Case]) -> list[Violation]:
        """Until every identifiable execution completed (or waits on a timer), every
        unidentifiable message is dead-lettered and the queues are empty; then a grace."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            self.pump(0.2)
            missing = self._unsettled(cases)
            if not missing and self.ready(EXECUTION) == 0 and self.ready(RESUME) == 0:
                counts = self.unacked()
                if all(counts.get(q, (0, 0)) == (0, 0) for q in (EXECUTION, RESUME)):
                    break
            if time.monotonic() > deadline:
                counts = self.unacked()
                return [Violation("stuck", c.index, why) for c, why in missing] + [
                    Violation("queue", None, f"{q}: ready {r}, unacknowledged {u}")
                    for q, (r, u) in counts.items()
                    if q in (EXECUTION, RESUME) and (r or u)
                ]
            if self.proc is not None and self.proc.poll() is not None:
                return [Violation("serve", None, f"serve exited {self.proc.returncode}")]
        end = time.monotonic() + GRACE
        while time.monotonic() < end:
            self.pump(0.1)
        return []

    def _unsettled(self, cases: list[Case]) -> list[tuple[Case, str]]:
        out = []
        for c in cases:
            r = c.reading
            if r.kind == "ids" and not self.completions.get(r.execution_id):
                if not self.timers(r.execution_id):
                    out.append((c, f"no completion for {r.execution_id}, no timer"))
            elif r.kind != "ids" and not self.dead.get(c.body):
                eid = r.execution_id
                if not (r.kind == "unsure" and eid and (self.completions.get(eid) or
                                                        self.timers(eid))):  # fmt: skip
                    out.append((c, "no dead-letter copy"))
        return out

    def batch(self, cases: list[Case], report: Report) -> None:
        self.publish(cases)
        report.violations += self.settle(cases)
        report.violations += Checker(self, report).check(cases)


class Checker:
    """The promises, checked over one settled batch (the log and the queues over the run)."""

    def __init__(self, run: Run, report: Report) -> None:
        self.run = run
        self.report = report

    def check(self, cases: list[Case]) -> list[Violation]:
        out: list[Violation] = []
        for c in cases:
            out += self.case(c)
        out += self.process()
        out += self.secrets(cases)
        out += self.readable()
        return out

    def readable(self) -> list[Violation]:
        """What the worker published since the last batch is JSON every Rune party reads:
        UTF-8, no lone surrogate, no NaN or Infinity (RTES's serde and the archivist's pydantic
        refuse such a message: it is lost to them); and what RTES reads (statuses, completions,
        mirrors) within its serde_json's limits: nested at most 127 levels, every number one a
        double holds (`_beyond_rtes`)."""
        run, out = self.run, []
        for name in (STATUS, COMPLETION, MIRROR, TAP):
            new = run.got[name][run.scanned["readable " + name] :]
            run.scanned["readable " + name] = len(run.got[name])
            for g in new:
                problem = _unreadable(g.raw)
                if not problem and name != TAP:
                    problem = _beyond_rtes(g.raw)
                if problem:
                    eid = _execution_of(g.raw)
                    ids = {c.reading.execution_id: c.index for c in self.report.cases}
                    out.append(Violation("unreadable-output", ids.get(eid),
                                         f"{name} message: {problem}"))  # fmt: skip
        return out

    def case(self, c: Case) -> list[Violation]:
        run, r, out = self.run, c.reading, []
        copies = run.dead.get(c.body, [])
        eid = r.execution_id
        done = run.completions.get(eid, []) if eid else []
        same = run.bodies[c.body]  # b"" may be the body of several cases
        if len(copies) > same:
            out.append(Violation("dead-letter", c.index, f"{len(copies)} dead-letter copies"))
        if copies and all(ch.benign for ch in c.changes):
            reason = str(copies[0].headers.get("x-runeworker-reason"))[:300]
            out.append(Violation("refused-valid", c.index, f"a valid message refused: {reason!r}"))
        for got in copies:
            if got.headers.get("x-runeworker-queue") not in run.queues[c.body]:
                where = got.headers.get("x-runeworker-queue")
                out.append(Violation("dead-letter", c.index, f"queue header {where!r}"))
            reason = str(got.headers.get("x-runeworker-reason") or "")
            if not reason:
                out.append(Violation("dead-letter", c.index, "a copy without a reason"))
            elif TRACEBACK.search(reason):
                out.append(Violation("traceback", c.index, f"dead-letter reason {reason!r}"))
            elif c.hints and not any(h.lower() in reason.lower() for h in c.hints):
                out.append(Violation("vague", c.index, f"reason {reason[:300]!r} names none of "
                                     f"{sorted(set(c.hints))[:8]}"))  # fmt: skip
        if r.kind == "ids":
            if len(done) > 1:
                statuses = [d.get("status") for d in done]
                out.append(Violation("completions", c.index, f"{len(done)}: {statuses}"))
            if not done:
                if run.timers(eid):
                    self.report.waiting.append(c.index)
                    self.report.outcomes["waiting"] += 1
                return out  # settle() reported it when it has no timer
            status = done[0].get("status")
            self.report.outcomes[str(status)] += 1
            if copies and status != "failed":
                out.append(Violation("refused", c.index, f"dead-lettered, completion {status}"))
            if status == "failed" and not copies and eid not in run.dead_of:
                reason = str(done[0].get("failure_reason"))[:200]
                if "maximum of" not in reason:  # the step limit fails without refusing
                    out.append(Violation("refused", c.index,
                                         f"failed ({reason!r}), no dead-letter copy"))  # fmt: skip
        else:
            self.report.outcomes["dead-lettered" if copies else "nothing"] += 1
            if r.kind == "none" and done:
                out.append(Violation("completions", c.index, "unidentifiable, completed"))
            if len(done) > 1:
                out.append(Violation("completions", c.index, f"{len(done)} completions"))
            waits = r.kind == "unsure" and not done and bool(eid) and bool(run.timers(eid))
            if not copies and (r.kind == "none" or len(done) != 1) and not waits:
                # undecided (bytes Python cannot read, below or beside the ids): refused with a
                # copy, or run as the message it is (an unknown top-level key is ignored)
                out.append(Violation("dead-letter", c.index, "refused without a copy"))
        for d in done:
            text = str(d.get("failure_reason") or "")
            if TRACEBACK.search(text):
                out.append(Violation("traceback", c.index, f"failure_reason {text[:300]!r}"))
        for st in run.statuses.get(eid, []) if eid else []:
            err = st.get("error")
            text = json.dumps(err) if err else ""
            if TRACEBACK.search(text):
                out.append(Violation("traceback", c.index, f"status error {text[:300]}"))
        return out

    def process(self) -> list[Violation]:
        """The serve log since the last batch: spawns, exits, tracebacks, raised nodes."""
        run = self.run
        text = run.log()
        new, run.log_seen = text[run.log_seen :], len(text)
        out = []
        if run.spawns() != run.spawned:
            out.append(Violation("child", None, f"children spawned {run.spawns()}, "
                                 f"expected {run.spawned}"))  # fmt: skip
        for line in new.splitlines():  # substrings first: log lines may be megabytes long
            kind = ""
            if "runeworker.supervisor" in line and (
                "exited" in line or "failed after it was ready" in line or "no heartbeat" in line
            ):
                kind = "child"
            elif ") raised" in line and re.search(r"node \S+ \([^)]*\) raised", line):
                kind = "raised"
            elif "step of execution" in line and re.search(r"step of execution \S+ failed", line):
                kind = "step-exception"
            if kind:
                out.append(Violation(kind, self._case_of(line, new), line[:300]))
        if "Traceback (most recent call last)" in new:
            at = new.index("Traceback (most recent call last)")
            start = new.rfind("\n", 0, new.rfind("\n", 0, at - 1))
            block = new[start + 1 : at + 4000]
            line = block.split("\n", 1)[0]
            out.append(Violation("traceback", self._case_of(line, new), "in the log:\n" + block))
        return out

    def _case_of(self, line: str, log: str) -> int | None:
        """The case a log line is about: the execution id it names, or for `node X (T) raised`
        the execution its next line of the same process names (`node X (T) of execution E
        failed`)."""
        found = self._case_in(line[:2000])
        m = re.search(r"\[(\d+)\]: node (\S+) \(([^)]*)\) raised", line)
        if found is None and m:
            pid, node, kind = m.groups()
            after = log[log.find(line) + len(line) :]
            failed = re.search(rf"\[{pid}\]: node {re.escape(node)} \({re.escape(kind)}\) of "
                               r"execution (\S+) failed", after)  # fmt: skip
            if failed:
                found = self._case_in(failed.group(1))
        return found

    def _case_in(self, text: str) -> int | None:
        """The case whose execution id the text names."""
        ids = {c.reading.execution_id: c.index for c in self.report.cases}
        for m in re.finditer(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text):
            if m.group() in ids:
                return ids[m.group()]
        return None

    def secrets(self, cases: list[Case]) -> list[Violation]:
        """A planted secret anywhere it must not be."""
        run = self.run
        confined = {c.secret: c for c in self.report.cases if c.reading.confined}
        out = []
        log = run.log()
        places: list[tuple[str, str]] = [("log", log[run.scanned["log"] :])]
        run.scanned["log"] = len(log)
        for name in (STATUS, COMPLETION, MIRROR, TAP, DEAD):
            new = run.got[name][run.scanned[name] :]
            run.scanned[name] = len(run.got[name])
            if name == DEAD:
                places += [(name, str(g.headers.get("x-runeworker-reason"))) for g in new]
            elif name == TAP:
                places += [(name, _text(_without_definition(g))) for g in new]
            else:
                places += [(name, _text(g.raw)) for g in new]
        found: set[tuple[str, int]] = set()
        for where, text in places:
            for m in re.finditer(re.escape(corpus.SECRET_MARK) + r"\d{6}", text):
                case = confined.get(m.group())
                if case is not None and (where, case.index) not in found:
                    found.add((where, case.index))
                    around = text[max(0, m.start() - 150) : m.end() + 50]
                    out.append(Violation("secret", case.index, f"in {where}: ...{around!r}"))
        return out


def _unreadable(raw: bytes) -> str:
    """Why strict JSON readers refuse `raw`; "" when they read it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}: {raw[max(0, exc.start - 60) : exc.end + 20]!r}"
    try:
        tree = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        return f"not JSON: {exc}"
    try:
        json.dumps(tree, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate: {exc.object[max(0, exc.start - 60) : exc.end + 20]!r}"
    return ""


# RTES's serde_json: `remaining_depth` counts down from 128 and fails at 0 (at most 127 levels);
# a number no double holds is out of range
RTES_DEPTH = 127


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise NotJson(f"a number no double holds: {text[:24]} ({len(text)} characters)")
    return number


def _beyond_rtes(raw: bytes) -> str:
    """Why RTES's serde_json refuses `raw`, strict JSON: nested deeper than 127 levels, or a
    number no double holds; "" when it reads it."""
    level = deepest = 0
    for m in re.finditer(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', raw, re.DOTALL):
        token = m.group()
        if token[0] == 0x22:
            continue
        level += 1 if token in (b"[", b"{") else -1
        deepest = max(deepest, level)
    if deepest > RTES_DEPTH:
        return f"nested {deepest} levels deep (RTES reads at most {RTES_DEPTH})"
    try:
        json.loads(raw, parse_int=_finite, parse_float=_finite)
    except NotJson as exc:
        return str(exc)
    except (ValueError, RecursionError) as exc:
        return f"not JSON: {exc}"
    return ""


def _execution_of(raw: bytes) -> str:
    m = re.search(rb'"execution_id":"((?:[^"\\]|\\.)*)"', raw)
    return m.group(1).decode("utf-8", "replace") if m else ""


def _text(raw: bytes) -> str:
    """The bytes as text, JSON escapes decoded (a secret spelt with escapes is found too)."""
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", "replace")


def _without_definition(got: Got) -> bytes:
    """A next message without its definition (it carries the credentials by design)."""
    body = got.body
    if body is None:  # not UTF-8, say (what `readable` reports): read as well as it goes
        with contextlib.suppress(ValueError, RecursionError):
            body = json.loads(got.raw.decode("utf-8", "surrogateescape"))
    if isinstance(body, dict):
        return json.dumps({k: v for k, v in body.items() if k != "workflow_definition"},
                          ensure_ascii=False).encode("utf-8", "surrogateescape")  # fmt: skip
    return got.raw


def fuzz(
    seed: int,
    count: int,
    *,
    processes: int = 2,
    batch: int = 50,
    only: list[int] | None = None,
    dump: Path | None = None,
    progress: bool = False,
) -> Report:
    """Run `count` cases of `seed` (or only the case numbers `only`) through a fresh serve."""
    started = time.monotonic()
    report = Report(seed)
    with Run(seed, processes) as run:
        numbers = only if only is not None else list(range(count))
        for i in range(0, len(numbers), batch):
            cases = [build_case(seed, n, run.seeds, run.env) for n in numbers[i : i + batch]]
            report.cases += cases
            run.batch(cases, report)
            if progress:
                print(f"{len(report.cases)} cases, {len(report.violations)} violations",
                      file=sys.stderr, flush=True)  # fmt: skip
        if dump is not None:
            write_dump(dump, report)
    report.seconds = time.monotonic() - started
    return report


def write_dump(directory: Path, report: Report) -> None:
    """Each violating case's body and what was found, for minimizing by hand."""
    directory.mkdir(parents=True, exist_ok=True)
    by_case = {c.index: c for c in report.cases}
    grouped: dict[int, list[Violation]] = defaultdict(list)
    for v in report.violations:
        if v.case is not None:
            grouped[v.case].append(v)
    for index, found in grouped.items():
        c = by_case[index]
        (directory / f"case-{index}.body").write_bytes(c.body)
        lines = [f"seed {c.seed}: {c.what}", *map(str, found)]
        (directory / f"case-{index}.txt").write_text("\n".join(lines) + "\n")


def iterate_cases(seed: int, numbers: list[int]) -> Iterator[Case]:
    """The cases of `seed` without a serve (seeds captured against a throwaway server)."""
    loopback = Loopback()
    try:
        cfg = load_config(None, env={})
        seeds = corpus.seeds(loopback.url, closed_port(), to_node_settings(cfg))
        env = mutate.Env("", sorted(registry.load()), closed_port())
        for n in numbers:
            yield build_case(seed, n, seeds, env)
    finally:
        loopback.close()
