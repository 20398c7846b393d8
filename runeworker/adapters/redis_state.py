"""`StateStore` over Redis: branch tokens of every execution, one atomic Lua script per call.

`RedisStore` is the client side of the scripts: the keys of an execution and the branch-token
protocol in Lua are in runeworker/adapters/redis_ledger.py, the barriers and timers in its base
`RedisFlow` (runeworker/adapters/redis_flow.py). A call sends its script with the arguments built
here on a kept connection (runeworker/adapters/redis_eval.py), decodes the reply, and turns a
RedisError into a StateError that names the server without its password. The store also keeps
the start records of single-branch executions, the receipts of published steps and the attempt
counts of redelivered messages, answers the probes (`ping_problem`, `write_problem`,
`memory_policy`), and holds the commits in doubt (runeworker/adapters/redis_doubts.py).
`from_config` makes its client with `runeworker.adapters.redis_connect.connect`: one server, a
Sentinel-managed master or a Redis Cluster.
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import ReadOnlyError, RedisError

from runeworker.adapters import redis_ledger
from runeworker.adapters.redis_connect import (
    NO_EVICTION,
    Client,
    advice,
    connect,
    connect_url,
    connection_kwargs,
    describe,
    redis_reply,
)
from runeworker.adapters.redis_doubts import RedisDoubts
from runeworker.adapters.redis_eval import Evaluator
from runeworker.adapters.redis_flow import RedisFlow, barrier_of
from runeworker.config import RedisConfig
from runeworker.engine.barriers import AggregateArrival, Arrival
from runeworker.engine.messages import COMPLETED
from runeworker.engine.state import (
    Admission,
    Arrived,
    Failure,
    Settlement,
    Transition,
    Verdict,
    attempt_key,
    state_lost,
)
from runeworker.masking import mask_url_passwords


class RedisStore(RedisFlow):
    """`StateStore` on a Redis server; safe to share between threads (redis-py pools)."""

    def __init__(
        self, client: Client, *, prefix: str = "", ttl_seconds: int = 86400, where: str = ""
    ) -> None:
        """`where`: how messages name the server(s), passwords masked (default: from `client`)."""
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be a positive number of seconds, not {ttl_seconds}")
        if "{" in prefix or "}" in prefix:
            # a brace in the prefix would become the cluster hash tag instead of the id
            raise ValueError(f"the key prefix {prefix!r} must not contain '{{' or '}}'")
        kwargs = connection_kwargs(client)
        if kwargs.get("decode_responses"):
            raise ValueError("the Redis client must not decode responses: contexts are bytes")
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        # the scheduler's keys share a slot only with a hash tag (see RedisFlow); a script
        # touches one slot, so on a Cluster an arrival cannot schedule its merge's timer
        cluster = isinstance(client, RedisCluster)
        self._scheduler = "{scheduler}:" if cluster else "scheduler:"
        self.parks_in_arrival = not cluster
        self._where = where or describe(client)
        self._secret = str(kwargs.get("password") or "")
        self._begun: list[tuple[str, int]] = []  # start records waiting for `flush`
        self._eval = Evaluator(client)
        self._admit_script: Script = client.register_script(redis_ledger.ADMIT)
        self._advance_script: Script = client.register_script(redis_ledger.ADVANCE)
        self._settle_script: Script = client.register_script(redis_ledger.SETTLE)
        self._retire_script: Script = client.register_script(redis_ledger.RETIRE)
        self._arrive_script: Script = client.register_script(redis_ledger.ARRIVE)
        self._count_script: Script = client.register_script(redis_ledger.COUNT_ATTEMPT)
        self._receipts_script: Script = client.register_script(redis_ledger.RECEIPTS)
        self._begin_script: Script = client.register_script(redis_ledger.BEGIN)
        self.doubts = RedisDoubts(client, prefix, self._error)  # runeworker/child/doubts.py
        self._register_flow_scripts()

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "", ttl_seconds: int = 86400, **client_kwargs: Any
    ) -> RedisStore:
        """Store on the server of `url` (redis://, rediss:// or unix://); `client_kwargs` go to
        redis-py (`connect_url`)."""
        return cls(connect_url(url, **client_kwargs), prefix=prefix, ttl_seconds=ttl_seconds)

    @classmethod
    def from_config(cls, r: RedisConfig, **client_kwargs: Any) -> RedisStore:
        """Store on the Redis the `[redis]` section describes: one server, a Sentinel-managed
        master or a Cluster (`connect`, which `client_kwargs` go to; StateError when no node
        of a Cluster answers)."""
        client, where = connect(r, **client_kwargs)
        return cls(client, prefix=r.key_prefix, ttl_seconds=r.key_ttl, where=where)

    def admit(self, execution_id: str, token: str, now_ns: int, *, anew: bool = False) -> Admission:
        """Check a delivered token; opens the execution when it is unknown and the token may
        open it; `StateLost` when its state is lost (see `StateStore.admit`)."""
        args = [token, now_ns, self._ttl, int(anew)]
        verdict, steps = self._run("admit", self._admit_script, execution_id, args)
        if verdict == b"lost":
            raise state_lost(execution_id, steps.decode())
        return Admission(Verdict(verdict.decode()), int(steps))

    def advance(
        self,
        execution_id: str,
        token: str,
        children: list[str],
        leaf_context: bytes | None,
        failure: Failure | None,
        now_ns: int,
    ) -> Transition:
        """Replace `token` by `children` atomically; see `StateStore.advance`."""
        args = self._advance_args(token, leaf_context, failure, now_ns) + children
        reply = self._run("advance", self._advance_script, execution_id, args)
        if int(reply[0]) == redis_ledger.LOST:
            raise state_lost(execution_id, reply[1].decode())
        return _transition(reply)

    def _advance_args(
        self, token: str, leaf_context: bytes | None, failure: Failure | None, now_ns: int
    ) -> list[str | bytes | int]:
        """ARGV[1..9] of the advance and settle scripts."""
        args: list[str | bytes | int] = [token, now_ns, self._ttl]
        args += [1, leaf_context] if leaf_context is not None else [0, b""]
        if failure is None:
            args += [0, b"", b"", b""]
        else:
            args += [1, failure.status, failure.reason, failure.context]
        return args

    def settle(
        self,
        execution_id: str,
        token: str,
        children: list[str],
        leaf_context: bytes | None,
        failure: Failure | None,
        now_ns: int,
        max_steps: int,
        *,
        anew: bool = False,
    ) -> Settlement:
        """`admit` and `advance` in one round trip; see `StateStore.settle`."""
        args = self._advance_args(token, leaf_context, failure, now_ns)
        args += [max_steps, int(anew), *children]
        reply = self._run("settle", self._settle_script, execution_id, args)
        verdict = reply[0].decode()
        if verdict == "lost":
            raise state_lost(execution_id, reply[1].decode())
        if verdict == "limit":
            return Settlement(Verdict(reply[1].decode()), None)
        if verdict == "stale":
            return Settlement(Verdict.STALE, Transition(closed=False))
        return Settlement(Verdict(verdict), _transition(reply[1:]))

    def arrive(
        self,
        execution_id: str,
        token: str,
        now_ns: int,
        max_steps: int,
        arrival: Arrival,
        foreseen: dict[str, list[str]],
    ) -> Arrived:
        """Admit, arrive and (when foreseen) advance in one round trip; see
        `StateStore.arrive`."""
        keys = self.keys_of(execution_id)
        args: list[str | bytes | int] = [token, now_ns, self._ttl, max_steps, _pack(foreseen)]
        flag, body = (1, arrival.payload) if arrival.payload is not None else (0, b"")
        if isinstance(arrival, AggregateArrival):
            keys += self.aggregate_keys(execution_id, arrival.split_id, arrival.scope)
            args += ["aggregate", arrival.hold, arrival.index, arrival.total, flag, body]
        else:
            rule = arrival.rule
            keys += self.merge_keys(execution_id, arrival.merge_id, arrival.scope)
            args += ["merge", arrival.timer_token, arrival.parent, flag, body, rule.expected]
            args += [int(rule.any), arrival.now_ms, rule.timeout_ms]
            park = arrival.park
            if park is not None:
                if not self.parks_in_arrival:
                    raise ValueError("a Redis Cluster cannot park a timer in an arrival")
                keys += self._timer_keys()
                args += [park.timer_id, park.payload]
        try:
            reply = self._eval(self._arrive_script, keys, args)
        except RedisError as exc:
            raise self._error(f"arrival of execution {execution_id!r}", exc) from exc
        verdict = reply[0].decode()
        if verdict == "stale":
            return Arrived(Verdict.STALE, None, Transition(closed=False))
        if verdict == "limit":
            return Arrived(Verdict(reply[1].decode()), None, None)
        if verdict == "lost":
            what = reply[1].decode()
            where = ""
            if what == "barrier":
                where = (
                    f"aggregator (split {arrival.split_id})"
                    if isinstance(arrival, AggregateArrival)
                    else f"merge {arrival.merge_id}"
                )
            raise state_lost(execution_id, what, where)
        n = int(reply[1])
        if verdict == "cancelled":
            absorbed = _transition(reply[2:]) if len(reply) > 2 else Transition(closed=False)
            return Arrived(Verdict.CANCELLED, None, absorbed)
        barrier = barrier_of(reply[2 : 2 + n], by_name=not isinstance(arrival, AggregateArrival))
        rest = reply[2 + n :]
        return Arrived(Verdict(verdict), barrier, _transition(rest) if rest else None)

    def retire(
        self, execution_id: str, token: str, now_ns: int, *, counted: bool = True
    ) -> Transition:
        """Retire `token` for good, live yet or not; see `StateStore.retire`."""
        args = [token, now_ns, self._ttl, int(counted)]
        return _transition(self._run("retire", self._retire_script, execution_id, args))

    def count_attempt(self, body: bytes) -> int:
        """Count one more redelivery of the message `body`, unless a drain spared it; returns
        the count so far."""
        try:
            count = self._eval(self._count_script, self._attempt_keys(body), [self._ttl])
        except RedisError as exc:
            raise self._error("attempt count", exc) from exc
        return int(count)

    def spare_attempts(self, bodies: list[bytes]) -> None:
        """Mark each body's next redelivery as no attempt (a flag, so two drains before the
        next delivery still spare one redelivery, not two)."""
        if not bodies:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for body in bodies:
                pipe.set(self._attempt_keys(body)[1], 1, ex=self._ttl)
            pipe.execute()
        except RedisError as exc:
            raise self._error("attempt sparing", exc) from exc

    def _attempt_keys(self, body: bytes) -> list[str]:
        """The count and the spared flag of a message, in one hash slot."""
        base = f"{self._prefix}attempts:{{{attempt_key(body)}}}"
        return [base, base + ":spared"]

    def receipts(self, record: list[tuple[str, str]], check: list[tuple[str, str]]) -> list[bool]:
        """Record `record`, then look up `check`: one pipeline (one round trip on one server;
        per master on a Cluster). A receipt is a field of the execution's `receipts` hash,
        kept `key_ttl` seconds from its last write (runeworker/child/receipts.py)."""
        pairs = [*record, *check]
        keys = [self._receipts_key(execution_id) for execution_id, _ in pairs]
        try:
            if not isinstance(self._client, RedisCluster):  # one script: a third of the CPU
                args = [self._ttl, len(record), *(name for _, name in pairs)]
                replies = self._eval(self._receipts_script, keys, args)
                return [bool(r) for r in replies]
            cluster: Any = self._client  # RedisCluster's pipeline is untyped
            pipe = cluster.pipeline(transaction=False)  # the keys span slots
            for key, (_, name) in zip(keys[: len(record)], record, strict=True):
                pipe.hset(key, name, 1)
                pipe.expire(key, self._ttl)
            for key, (_, name) in zip(keys[len(record) :], check, strict=True):
                pipe.hexists(key, name)
            replies = pipe.execute()
        except RedisError as exc:
            raise self._error("receipts", exc) from exc
        return [bool(r) for r in replies[len(replies) - len(check) :]]

    def _receipts_key(self, execution_id: str) -> str:
        return f"{self._prefix}exec:{{{execution_id}}}:receipts"

    def schedule(self, timer_id: str, due_ms: int, payload: bytes, *, owner: str = "") -> None:
        """See `RedisFlow.schedule`; a wait as a single-branch execution's first step writes
        its start record first, so that the timer's hold keeps it."""
        if owner and any(execution_id == owner for execution_id, _ in self._begun):
            self.flush()
        super().schedule(timer_id, due_ms, payload, owner=owner)

    def begin(self, execution_id: str, now_ns: int) -> None:
        """Record the start of a single-branch execution; the first record wins. The write
        waits for the next `flush` (the worker flushes before every broker commit, so no
        later step of the execution can run before it) or `started_at`."""
        self._begun.append((execution_id, now_ns))

    def flush(self) -> None:
        """Send the start records `begin` kept, in one round trip (one script on one server,
        a third of a pipeline's client CPU; a pipeline on a Cluster, whose keys span slots).
        On an error they are dropped: the steps that made them are not committed and will
        run again."""
        if self._begun:
            try:
                if isinstance(self._client, RedisCluster):
                    self._pipeline_begun().execute()
                else:
                    begun, self._begun = self._begun, []
                    keys = [self._started_key(execution_id) for execution_id, _ in begun]
                    self._eval(self._begin_script, keys, [self._ttl, *(ns for _, ns in begun)])
            except RedisError as exc:
                raise self._error("start records", exc) from exc

    def started_at(self, execution_id: str) -> int:
        """Start time recorded by `begin`, else by `admit` (a step of the execution may have
        run on the full protocol, e.g. on an older worker); 0 when unknown."""
        pipe = self._pipeline_begun()
        pipe.get(self._started_key(execution_id))
        pipe.hget(self.keys_of(execution_id)[2], "started_at_ns")
        try:
            *_, begun, admitted = pipe.execute()
        except RedisError as exc:
            raise self._error(f"start lookup of execution {execution_id!r}", exc) from exc
        found = begun if begun is not None else admitted
        return int(found) if found is not None else 0

    def _pipeline_begun(self) -> Pipeline:
        """A pipeline that starts with the kept start records (and forgets them)."""
        begun, self._begun = self._begun, []
        pipe = self._client.pipeline(transaction=False)
        for execution_id, now_ns in begun:
            pipe.set(self._started_key(execution_id), now_ns, nx=True, ex=self._ttl)
        return pipe

    def ping(self) -> bool:
        """True when the server answers (the readiness probe); never raises."""
        return self.ping_problem() is None

    def ping_problem(self) -> str | None:
        """None when the server answers PING, else why not: the client's error (`Connection
        refused`, `invalid username-password pair`), which holds no password; never raises."""
        try:
            return None if self._client.ping() else "no answer to PING"
        except RedisError as exc:
            return f"no answer to PING: {mask_url_passwords(str(exc)) or type(exc).__name__}"

    def write_problem(self) -> str | None:
        """None when the server takes a write, else why not, as Redis says it: `OOM command
        not allowed when used memory > 'maxmemory'` (full, policy noeviction), `READONLY You
        can't write against a read only replica` (a replica now), a timeout (paused or slow);
        never raises. PING answers in all three cases. One SET of a key of its own that
        expires at once; only while a child connects or waits, never per step. A read-only
        server's connections are closed (`_reconnect`), so the next try connects anew."""
        try:
            self._client.set(f"{self._prefix}probe:write", b"1", px=1000)
        except ReadOnlyError as exc:
            self._reconnect()
            return self._refused(exc)
        except RedisError as exc:
            return self._refused(exc)
        return None

    def _refused(self, exc: RedisError) -> str:
        detail = mask_url_passwords(redis_reply(exc)) or type(exc).__name__
        detail = detail.replace(self._secret, "***") if self._secret else detail
        return f"refuses writes: {detail}{advice(exc)}"

    def memory_policy(self) -> tuple[str, int] | None:
        """(`maxmemory-policy`, `maxmemory` in bytes) of the server, read from `INFO memory`
        (CONFIG GET is often renamed or refused on managed Redis, INFO is not); on a Cluster,
        the first primary whose policy evicts, else any. None when INFO does not say (or
        fails); never raises."""
        try:
            if isinstance(self._client, RedisCluster):
                cluster: Any = self._client
                reply = cluster.info("memory", target_nodes=RedisCluster.PRIMARIES)
                # one primary: its INFO; several: node name -> INFO
                infos = [reply] if "maxmemory_policy" in reply else list(reply.values())
            else:
                infos = [self._client.info("memory")]
        except RedisError:
            return None
        found = [
            (str(info["maxmemory_policy"]), int(info.get("maxmemory") or 0))
            for info in infos
            if isinstance(info, dict) and "maxmemory_policy" in info
        ]
        if not found:
            return None
        return next((f for f in found if f[0] != NO_EVICTION), found[0])

    def close(self) -> None:
        """Close the client and its connections."""
        self._eval.close()
        self._client.close()

    def _started_key(self, execution_id: str) -> str:
        return f"{self._prefix}exec:{{{execution_id}}}:started"

    def _run(self, op: str, script: Script, execution_id: str, args: list[Any]) -> Any:
        try:
            # EVALSHA, and the script loaded again on NOSCRIPT (runeworker/adapters/redis_eval.py)
            return self._eval(script, self.keys_of(execution_id), args)
        except RedisError as exc:
            raise self._error(f"{op} of execution {execution_id!r}", exc) from exc


_PACK = msgspec.msgpack.Encoder()


def _pack(foreseen: dict[str, list[str]]) -> bytes:
    """The foresight as the arrive script unpacks it (cmsgpack: a map of arrays of strings)."""
    return _PACK.encode(foreseen)


def _transition(reply: list[Any]) -> Transition:
    """Decode the reply of an advance (see `_ADVANCE_BODY` in redis_ledger.py): {0} open,
    {1, status, reason, started, contexts...} closed, {2, status, reason, started, timers,
    context} closed by a failure that names the execution's timers."""
    closing = int(reply[0])
    if closing == 0:
        return Transition(closed=False)
    status, reason, started = reply[1:4]
    timers: list[str] = []
    if closing == 2:
        timers = sorted(t for t in reply[4].decode().split("\n") if t)  # SMEMBERS: any order
        reply = reply[1:]
    contexts = [bytes(c) for c in reply[4:]]
    return Transition(
        True, status.decode() or COMPLETED, reason.decode(), int(started), contexts, timers
    )
