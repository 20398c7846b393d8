"""Flow control against the real Redis and RabbitMQ: the executor on `RedisStore` (split,
aggregator, merge, wait), the scheduler publishing to `workflow.resume`, and a worker plus the
scheduler process end to end, after upstream's services/rune-worker/integration/ and e2e/
scenarios."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pika
import pytest
import redis
from wire import (
    DEAD,
    RESUME,
    Wire,
    edge,
    master,
    node,
    node_statuses,
    running_worker,
)

_UNIT = str(Path(__file__).resolve().parent.parent / "unit")
if _UNIT not in sys.path:
    sys.path.insert(0, _UNIT)

from flowkit import (  # noqa: E402
    TRIGGER,
    Pick,
    Run,
    definition,
    drive,
    fifo,
    fire_timers,
    lifo,
    n,
    start,
    step,
)

from runeworker.adapters.amqp import Broker  # noqa: E402
from runeworker.adapters.redis_state import RedisStore  # noqa: E402
from runeworker.child.scheduler import HostLock, Scheduler  # noqa: E402
from runeworker.engine.barriers import AggregateArrival, Arrival, aggregate_hold  # noqa: E402
from runeworker.engine.executor import Executor  # noqa: E402
from runeworker.engine.messages import decode_execution  # noqa: E402
from runeworker.engine.state import Arrived  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_url, prefix=redis_prefix, ttl_seconds=600)
    yield s
    s.close()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the executor on RedisStore -------------------------------------------------------------------


def test_nested_split_on_redis(store: RedisStore) -> None:
    nodes = [n("outer", "split", input_array=[[1, 2], [3]]),
             n("inner", "split", input_array="$item"), n("each", value="$item"),
             {"id": "ia", "name": "InnerAgg", "type": "aggregator"},
             {"id": "oa", "name": "OuterAgg", "type": "aggregator"}]  # fmt: skip
    edges = [("e1", "outer", "inner"), ("e2", "inner", "each"), ("e3", "each", "ia"),
             ("e4", "ia", "oa")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "outer", execution_id=str(uuid.uuid4())),
                executor=Executor(store))  # fmt: skip
    outer = run.completion.final_context["$OuterAgg"]
    assert outer == {"aggregated": [
        {"aggregated": [{"value": 1}, {"value": 2}], "_aggregator_processed_count": 2},
        {"aggregated": [{"value": 3}], "_aggregator_processed_count": 1},
    ], "_aggregator_processed_count": 2}  # fmt: skip


def test_dead_end_and_redelivery_on_redis(store: RedisStore) -> None:
    cond = n("keep", "conditional", expression="$item > 1", true_edge_id="t")
    nodes = [n("split", "split", input_array=[1, 2, 3]), cond, n("x", value="$item"),
             {"id": "agg", "name": "Agg", "type": "aggregator"}]  # fmt: skip
    edges = [("e1", "split", "keep"), ("t", "keep", "x"), ("e2", "x", "agg")]
    executor, run = Executor(store), Run()
    pending = list(
        step(
            executor, start(definition(nodes, edges), "split", execution_id=str(uuid.uuid4())), run
        ).messages
    )
    while pending:
        msg = pending.pop()
        result = step(executor, msg, run)
        if msg.current_node == "agg":
            step(executor, msg, run)  # every aggregator arrival delivered twice
        pending += result.messages
    released = [o for o in run.outputs("Agg") if "aggregated" in o]
    assert released[0] == {
        "aggregated": [{"value": 2}, {"value": 3}],
        "_aggregator_processed_count": 3,
    }
    assert all(o == released[0] for o in released)
    assert {c.status for c in run.completions} == {"completed"}
    assert len({json.dumps(c.final_context, sort_keys=True) for c in run.completions}) == 1


class EarlierRedisStore(RedisStore):
    """The calls a runeworker before hold tokens makes, on the same Redis during a rolling
    upgrade: its aggregator arrivals name no hold (`hold` "", as that version passed), so its
    release retires none, and its waiting arrivals foresee no child."""

    def arrive(
        self,
        execution_id: str,
        token: str,
        now_ns: int,
        max_steps: int,
        arrival: Arrival,
        foreseen: dict[str, list[str]],
    ) -> Arrived:
        if isinstance(arrival, AggregateArrival):
            arrival = msgspec.structs.replace(arrival, hold="")
            foreseen = {**foreseen, "waiting": []}
        return super().arrive(execution_id, token, now_ns, max_steps, arrival, foreseen)


def own_split() -> bytes:
    """A split that runeworker fans out, through a node into its aggregator, then one node."""
    nodes = [n("split", "split", input_array=[1, 2, 3]), n("each", value="$item"),
             {"id": "agg", "name": "Agg", "type": "aggregator"}, n("after", value=1)]  # fmt: skip
    return definition(nodes, [("e1", "split", "each"), ("e2", "each", "agg"),
                              ("e3", "agg", "after")])  # fmt: skip


@pytest.mark.parametrize("pick", [fifo, lifo], ids=["fifo", "lifo"])
def test_a_split_keeps_no_hold_in_its_live_set_on_redis(
    store: RedisStore, redis_url: str, pick: Pick
) -> None:
    """An execution that runeworker runs alone writes what it wrote before aggregator holds
    existed: after every step its live set (`exec:{<id>}:branches:live`) holds exactly the
    tokens of the messages in flight, the waits at the aggregator included (no hold token),
    every step is counted once, and `done` records each stepped token. The one addition: the
    release records the barrier's hold as advanced though it was never live (`{0}`), so a
    waiting arrival advanced only after the release could not park it. Before, the first
    waiting arrival put the hold into the live set."""
    ex = str(uuid.uuid4())
    live_key, done_key, meta_key = store.keys_of(ex, 3)
    client = redis.Redis.from_url(redis_url)
    executor, run = Executor(store), Run()
    queue = deque([start(own_split(), "split", execution_id=ex)])
    stepped = []
    while queue:
        msg = pick(queue)
        stepped.append(msg.branch_token or "root")
        result = step(executor, msg, run)
        queue.extend(result.messages)
        live = {t.decode() for t in client.smembers(live_key)}
        assert live == {m.branch_token for m in queue}, (msg.current_node, live)
    waits = [s.aggregator_state for s in run.statuses if s.node_id == "agg" and s.output]
    assert waits == ["waiting", "waiting", "released"]
    assert run.completion.status == "completed"
    assert run.results[-1].completion is not None
    hold = aggregate_hold("split", "")
    done = {k.decode(): v for k, v in client.hgetall(done_key).items()}
    assert set(done) == {*stepped, hold}
    assert msgspec.msgpack.decode(done[hold]) == [0]
    assert int(client.hget(meta_key, "steps") or 0) == len(stepped)
    client.close()


def test_a_split_released_by_an_earlier_version_completes_on_redis(
    store: RedisStore, redis_url: str, redis_prefix: str
) -> None:
    """A rolling upgrade on the real Redis: this version takes the split, the branches and
    the waiting aggregator arrivals, a runeworker before hold tokens the releasing one (which
    retires no hold). The execution completes once, `completed`. Before, the waiting arrivals
    parked the hold, the release left it live, and the execution never completed."""
    earlier = EarlierRedisStore.from_url(redis_url, prefix=redis_prefix, ttl_seconds=600)
    ex = str(uuid.uuid4())
    executor, old, run = Executor(store), Executor(earlier), Run()
    queue = deque([start(own_split(), "split", execution_id=ex)])
    arrivals = 0
    while queue:
        msg = queue.popleft()
        last = msg.current_node == "agg" and arrivals == 2
        arrivals += msg.current_node == "agg"
        queue.extend(step(old if last else executor, msg, run).messages)
    earlier.close()
    assert arrivals == 3
    assert run.completion.status == "completed"
    assert run.completion.final_context["$Agg"]["aggregated"] == [{"value": v} for v in (1, 2, 3)]
    assert run.results[-1].completion is not None


def test_if_else_merge_on_redis(store: RedisStore) -> None:
    cond = n("check", "conditional", expression="$flag", true_edge_id="t", false_edge_id="f")
    merge = {"id": "merge", "name": "Merge", "type": "merge"}
    nodes = [cond, n("yes"), n("no"), merge, n("end")]
    edges = [("t", "check", "yes"), ("f", "check", "no"), ("e1", "yes", "merge"),
             ("e2", "no", "merge"), ("e3", "merge", "end")]  # fmt: skip
    run = drive(start(definition(nodes, edges), "check", {"$flag": False}, str(uuid.uuid4())),
                executor=Executor(store))  # fmt: skip
    assert run.outputs("Merge")[-1]["_merge_sources"] == ["no"]
    assert run.completion.status == "completed"


def test_merge_parents_one_second_apart_on_redis(store: RedisStore) -> None:
    """As integration/merge_integration_test.go upstream: wait_for_all (timeout 60) fed by two
    parent messages 1 s apart (the gap is the scenario itself) -> one merge success, the
    successor runs once, one completion."""
    merge = {"id": "merge", "name": "Merge", "type": "merge",
             "parameters": {"wait_mode": "wait_for_all", "timeout": 60}}  # fmt: skip
    nodes = [n("s"), n("branch_a"), n("branch_b"), merge, n("end")]
    edges = [("x1", "s", "branch_a"), ("x2", "s", "branch_b"), ("e1", "branch_a", "merge"),
             ("e2", "branch_b", "merge"), ("e3", "merge", "end")]  # fmt: skip
    defn = definition(nodes, edges)
    executor, run = Executor(store), Run()
    opener = start(defn, "s", execution_id=str(uuid.uuid4()))
    tokens = [str(m.branch_token) for m in step(executor, opener, run).messages]
    arrivals = [
        msgspec.structs.replace(
            start(defn, "merge", {"$from": parent}, opener.execution_id),
            from_node=parent, branch_token=token,
        )
        for parent, token in zip(("branch_a", "branch_b"), tokens, strict=True)
    ]  # fmt: skip
    step(executor, arrivals[0], run)
    assert [s.status for s in run.statuses if s.node_id == "merge"] == ["running", "waiting"]
    time.sleep(1.0)
    drive(arrivals[1], executor=executor, run=run)
    merges = [s.status for s in run.statuses if s.node_id == "merge"]
    assert merges == ["running", "waiting", "running", "success"]
    assert run.outputs("END") and len(run.outputs("END")) == 1
    assert run.completion.status == "completed"
    assert len(run.completions) == 1


def test_wait_resumes_through_the_scheduler_on_redis(store: RedisStore) -> None:
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 0}}
    defn = definition(
        [TRIGGER, pause, n("after")], [("e1", "trigger", "pause"), ("e2", "pause", "after")]
    )
    executor, run = Executor(store), Run()
    drive(start(defn, "trigger", execution_id=str(uuid.uuid4())), executor=executor, run=run)
    fired: list[bytes] = []
    assert Scheduler(store, fired.append).tick(now_ms() + 10) == 1
    [resumed] = fired
    result = step(executor, decode_execution(resumed), run, resumed=True)
    drive(*result.messages, executor=executor, run=run)
    assert run.trail == [("Pause", "running"), ("Pause", "waiting"), ("Pause", "success"),
                         ("AFTER", "running"), ("AFTER", "success")]  # fmt: skip
    assert run.completion.status == "completed"


def test_a_wait_longer_than_the_key_ttl_keeps_its_execution(
    redis_url: str, redis_prefix: str
) -> None:
    """Every per-execution key lives `redis.key_ttl` (24 h by default) from the execution's last
    call, and nothing calls while a branch waits: a wait longer than that (`unit: days`) finds
    its execution gone. The resume opens it anew, so the completion loses the contexts of the
    branches that finished before and `total_duration_ms` counts from the resume; a second
    wait in parallel finds its token unknown, never resumes, and its branch is lost (seen with
    `runeworker serve`, `key_ttl = 60` and waits of 70 and 72 s). Here: a 1 s TTL, a 2.5 s wait."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix, ttl_seconds=1)
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 2.5}}
    nodes = [TRIGGER, pause, n("after"), n("quick")]
    edges = [("e1", "trigger", "pause"), ("e2", "pause", "after"), ("e3", "trigger", "quick")]
    executor, run = Executor(store), Run()
    drive(start(definition(nodes, edges), "trigger", execution_id=str(uuid.uuid4())),
          executor=executor, run=run)  # fmt: skip
    assert run.trail[-2:] == [("QUICK", "running"), ("QUICK", "success")] and not run.completions
    time.sleep(3.0)
    fire_timers(executor, run, now_ms() + 10)
    store.close()
    assert run.completion.status == "completed"
    assert set(run.completion.final_context) == {"$Pause", "$AFTER", "$QUICK"}
    assert run.completion.total_duration_ms >= 2_500


def test_a_merge_timeout_longer_than_the_key_ttl_times_the_merge_out(
    redis_url: str, redis_prefix: str
) -> None:
    """The same for a `wait_for_all` merge whose `timeout` is longer than `redis.key_ttl`: when
    its timer fires, barrier and execution are gone; the timer opens the execution anew, finds
    a barrier of its own, and closes it as `completed` with an empty final_context, while the
    merge never reports `failed` and its other branch still waits. Here: a 1 s TTL, a 2 s
    timeout."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix, ttl_seconds=1)
    pause = {"id": "pause", "name": "Pause", "type": "wait", "parameters": {"amount": 60}}
    merge = {"id": "merge", "name": "Merge", "type": "merge", "parameters": {"timeout": 2}}
    nodes = [TRIGGER, pause, n("quick"), merge, n("end")]
    edges = [("e1", "trigger", "pause"), ("e2", "trigger", "quick"), ("e3", "pause", "merge"),
             ("e4", "quick", "merge"), ("e5", "merge", "end")]  # fmt: skip
    executor, run = Executor(store), Run()
    drive(start(definition(nodes, edges), "trigger", execution_id=str(uuid.uuid4())),
          executor=executor, run=run)  # fmt: skip
    assert run.trail[-1] == ("Merge", "waiting")
    time.sleep(3.0)
    [timer] = store.claim_due(now_ms(), 10, 60_000)  # the merge's; the pause is due in a minute
    store.ack_timer(timer.timer_id)
    step(executor, decode_execution(timer.payload), run, resumed=True)
    store.close()
    assert run.trail[-1] == ("Merge", "failed")
    assert run.completion.status == "halted"


def test_a_merge_timeout_beyond_any_date_waits_and_releases(
    redis_url: str, redis_prefix: str
) -> None:
    """A merge `timeout` of 1e300 s parks a timer due in no calendar's year: the arrival's
    script holds the execution's keys as long as Redis can say (2^53 ms) instead of failing
    halfway through its writes, and the second arrival releases the merge."""
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    merge = {"id": "merge", "name": "Merge", "type": "merge", "parameters": {"timeout": 1e300}}
    nodes = [TRIGGER, n("left"), n("right"), merge, n("end")]
    edges = [("e1", "trigger", "left"), ("e2", "trigger", "right"), ("e3", "left", "merge"),
             ("e4", "right", "merge"), ("e5", "merge", "end")]  # fmt: skip
    executor, run = Executor(store), Run()
    drive(start(definition(nodes, edges), "trigger", execution_id=str(uuid.uuid4())),
          executor=executor, run=run)  # fmt: skip
    store.close()
    merges = [s.status for s in run.statuses if s.node_id == "merge"]
    assert merges == ["running", "waiting", "running", "success"]
    assert run.completion.status == "completed" and len(run.completions) == 1


# -- the scheduler on the wire ------------------------------------------------------------------


def frozen(execution_id: str) -> bytes:
    return json.dumps({"workflow_id": "42", "execution_id": execution_id, "current_node": "pause",
                       "workflow_definition": {"nodes": [{"id": "pause", "type": "wait"}]},
                       "is_worker_initiated": True}).encode()  # fmt: skip


def resume_messages(amqp_url: str, wanted: set[bytes], timeout: float = 5.0) -> list[bytes]:
    """Read `workflow.resume` until every body of `wanted` came (others are dropped)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        ch = conn.channel()
        while not wanted <= set(got) and time.monotonic() < deadline:
            method, props, body = ch.basic_get(RESUME, auto_ack=True)
            if method is None:
                conn.sleep(0.02)
            elif body in wanted:
                assert (props.content_type, props.delivery_mode) == ("application/json", 2)
                got.append(body)
    finally:
        conn.close()
    return got


def test_preseeded_timer_is_published_to_resume(
    amqp_url: str, store: RedisStore, redis_url: str, redis_prefix: str
) -> None:
    """As integration/wait_integration_test.go and pkg/scheduler/scheduler_test.go upstream: due
    timers go verbatim to workflow.resume and their entries are removed; a future timer is
    untouched."""
    bodies = {frozen(str(uuid.uuid4())) for _ in range(2)}
    for i, body in enumerate(sorted(bodies)):
        store.schedule(f"due-{i}", now_ms() - 1000, body)
    store.schedule("future", now_ms() + 3_600_000, frozen("later"))
    broker = Broker(amqp_url)
    broker.connect()
    broker.declare([RESUME], DEAD)
    calls: list[str] = []

    def publish(body: bytes) -> None:
        calls.append("publish")
        broker.publish(RESUME, body)

    def commit() -> None:
        calls.append("commit")
        broker.commit()

    # One round publishes every due timer, then commits them together (one broker round trip):
    # counted, not timed, so a loaded machine cannot fail it.
    assert Scheduler(store, publish, commit=commit).tick() == 2
    assert calls == ["publish", "publish", "commit"]
    broker.close()
    client = redis.Redis.from_url(redis_url)
    assert client.zrange(redis_prefix + "scheduler:timers", 0, -1) == [b"future"]
    assert client.hkeys(redis_prefix + "scheduler:payloads") == [b"future"]
    assert client.zcard(redis_prefix + "scheduler:processing") == 0
    client.close()
    assert sorted(resume_messages(amqp_url, bodies)) == sorted(bodies)


def test_worker_holding_the_host_lock_fires_timers(
    amqp_url: str, store: RedisStore, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Only the worker that holds the scheduler lock fires due timers; when the holder goes
    away, the worker takes over. A copy queue bound to `workflows` sees what is fired (the
    worker itself consumes `workflow.resume`)."""
    body = frozen(str(uuid.uuid4()))
    lock = str(tmp_path / "scheduler.lock")
    other = HostLock(lock)
    assert other.acquire()  # someone else holds the lock: nothing fires
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.exchange_declare("workflows", exchange_type="topic", durable=True)
    copy = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(copy, "workflows", routing_key=RESUME)

    def fired(timeout: float) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, _props, got = ch.basic_get(copy, auto_ack=True)
            if method is not None:
                return [got]
            conn.sleep(0.05)
        return []

    store.schedule("t", now_ms(), body)
    try:
        with running_worker(amqp_url, redis_url, redis_prefix, scheduler_lock=lock):
            assert fired(1.5) == []
            other.release()  # the holder is gone: the worker takes the lock on its next tick
            assert fired(5.0) == [body]
    finally:
        conn.close()
    assert store.next_due() is None


# -- a worker and the scheduler end to end ------------------------------------------------------


class Users(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/users":
            data: Any = [{"id": i} for i in (1, 2, 3)]
        else:
            data = {"id": int(self.path.rsplit("/", 1)[1]), "name": f"user {self.path}"}
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def users() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Users)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_split_wait_and_merge_on_the_wire(
    amqp_url: str, redis_url: str, redis_prefix: str, users: str, tmp_path: Path
) -> None:
    """Upstream's integration/http_split_aggregate_test.go and e2e/wait_e2e_test.go in one
    workflow: fetch users, one http call per user, aggregate; in parallel a wait; a merge joins
    both; exactly one completion."""
    nodes = [node("trigger", "ManualTrigger", "Start"),
             node("fetch", "http", "Fetch_Users", url=users + "/users", method="GET"),
             node("split", "split", "Each", input_array="$Fetch_Users.body"),
             node("one", "http", "Fetch_One", url=users + "/users/$item.id", method="GET"),
             node("agg", "aggregator", "Aggregate_Users"),
             node("pause", "wait", "Pause", amount=0.3, unit="seconds"),
             node("join", "merge", "Join"),
             node("done", "log", "Done", message="all done")]  # fmt: skip
    edges = [edge("trigger", "fetch"), edge("fetch", "split"), edge("split", "one"),
             edge("one", "agg"), edge("trigger", "pause"), edge("agg", "join"),
             edge("pause", "join"), edge("join", "done")]  # fmt: skip
    start_msg = master(nodes, edges)
    eid = start_msg["execution_id"]
    lock = str(tmp_path / "scheduler.lock")
    with running_worker(amqp_url, redis_url, redis_prefix, scheduler_lock=lock):
        wire = Wire(amqp_url)
        try:
            wire.publish_api(start_msg)
            done = wire.completion(eid, timeout=20)
            wire.no_second_completion(eid)
            pause = node_statuses(wire, eid, "pause", 3)
        finally:
            wire.close()
    assert done["status"] == "completed"
    aggregated = done["final_context"]["$Aggregate_Users"]["aggregated"]
    assert [a["body"]["id"] for a in aggregated] == [1, 2, 3]
    assert [s["status"] for s in pause] == ["running", "waiting", "success"]
    assert pause[2]["output"] == pause[1]["output"]
    assert done["final_context"]["$Join"]["_merge_sources"] == ["agg", "pause"]
    assert done["final_context"]["$Done"]["message"] == "all done"


def test_the_context_after_an_aggregator_is_the_same_in_every_run_on_the_wire(
    amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    """Deterministic joins on the wire: three workers take the branches of a split in whatever
    order the broker hands them out; `$json` set before the split survives the branches'
    own, an item's error branch leaves no `$error`, and every run ends with the same final
    context."""
    items = [{"name": {"first": "ann"}}, {"name": "bob"}, {"name": {"first": "cy"}}]
    risky = node("risky", "log", "Risky", message="$item.name.first")
    risky["error"] = {"type": "branch", "error_edge": "to_handler"}
    nodes = [node("trigger", "ManualTrigger", "Start"),
             node("prep", "edit", "Prep", assignments=[{"name": "stage", "value": "before"}]),
             node("split", "split", "Each", input_array=items),
             node("tag", "edit", "Tag", assignments=[{"name": "who", "value": "$item.name"}]),
             risky,
             node("handler", "log", "Handler", message="$error.message"),
             node("agg", "aggregator", "Collect"),
             node("after", "log", "After", message="$json.stage")]  # fmt: skip
    edges = [edge("trigger", "prep"), edge("prep", "split"), edge("split", "tag"),
             edge("tag", "risky"), edge("risky", "agg"),
             edge("risky", "handler", "to_handler"), edge("handler", "agg"),
             edge("agg", "after")]  # fmt: skip
    starts = [master(nodes, edges) for _ in range(6)]
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(running_worker(amqp_url, redis_url, redis_prefix))
        wire = Wire(amqp_url)
        try:
            for m in starts:
                wire.publish_api(m)
            finals = [wire.completion(m["execution_id"], timeout=30) for m in starts]
        finally:
            wire.close()
    for done in finals:
        assert done["status"] == "completed", done
    contexts = [without_clock(done["final_context"]) for done in finals]
    assert all(c == contexts[0] for c in contexts), contexts
    final = contexts[0]
    assert final["$json"] == {"stage": "before"}
    assert "$error" not in final and "$item" not in final
    assert not {"$Tag", "$Risky", "$Handler"} & set(final)
    assert final["$After"]["message"] == "before"
    assert len(final["$Collect"]["aggregated"]) == 3


def without_clock(value: Any) -> Any:
    """`value` without the log node's `logged_at`, the one part that differs run to run."""
    if isinstance(value, dict):
        return {k: without_clock(v) for k, v in value.items() if k != "logged_at"}
    if isinstance(value, list):
        return [without_clock(v) for v in value]
    return value
