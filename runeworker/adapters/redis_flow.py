"""Barriers and wait timers of `runeworker.adapters.redis_state.RedisStore`: one atomic Lua
script each.

Semantics are those of `runeworker.engine.barriers.MemoryFlow` (the shared table in
tests/unit/statecases.py runs against both). Key names follow the Go worker's shapes, with the
execution id as Redis Cluster hash tag like the branch keys, and a scope part only inside
split branches (the branch ids of the lineage, see `runeworker.engine.paths.scope_of`):

    exec:{<id>}:split:<split>[:<scope>]:results         hash  item index -> result ('' = ghost)
    exec:{<id>}:split:<split>[:<scope>]:release         str   token of the releasing arrival
    exec:{<id>}:node:<merge>[:<scope>]:barrier:arrivals set   parent node ids
    exec:{<id>}:node:<merge>[:<scope>]:barrier:data     hash  parent -> context ('' = ghost)
    exec:{<id>}:node:<merge>[:<scope>]:barrier:first    str   first arrival (epoch ms)
    exec:{<id>}:node:<merge>[:<scope>]:lock             str   decision: kind, token, parent
    exec:{<id>}:node:<merge>[:<scope>]:barrier:waited   set   tokens answered `waiting`
    scheduler:timers                                    zset  timer id -> due (epoch ms)
    scheduler:processing                                zset  leased id -> lease deadline (ms)
    scheduler:payloads                                  hash  timer id -> frozen message
    exec:{<id>}:branches:timers                         set   the execution's timer ids
    exec:{<id>}:barriers                                set   names of the barrier keys above
    exec:{<id>}:hold                                    str   epoch ms the keys are kept until

each behind the configured key prefix. Every per-execution key gets the store's TTL on every
call; the scheduler keys are global and their entries are removed when a timer is acknowledged
or cancelled.

An arrival marks its barrier in the execution's meta (`MARK_FN`): begun, then decided. meta is
touched by every step, a barrier's keys by its arrivals only, so a mark whose keys are gone is a
barrier evicted, flushed or expired: the arrival is told (`StateLost`) instead of beginning the
barrier again. A due timer whose payload is gone is claimed with an empty one, for the scheduler
to tell.

A timer holds its execution: a wait or merge timeout may be due long after the execution's
last call, and its keys must still be there when it fires. Scheduling one (`hold_execution`)
sets the `hold` key to the due time plus the TTL, expiring itself at the due time, and moves
the expiry of every key of the execution to that instant: the branch keys, the start record and
every barrier the `barriers` registry names (each barrier enters it when it is created). While
the hold lives, a call gives the keys it touches the hold's instant instead of the TTL from now
(`expire`), which is later; once the latest timer is due the hold is gone and the TTL counts
from each call again. So `redis.key_ttl` bounds how long an execution may sit idle between
calls, not how long it may wait. The hold stays when the execution closes: a timer whose
cancel was lost (a crash between the closing step and its cancel) still finds the execution
closed when it fires, and does not open it anew.

Redis Cluster: a script or a MULTI may only touch keys of one hash slot. The per-execution
keys share the slot of their `{<id>}` tag. The timer claim script and the timer transactions
touch the three scheduler keys together, which land in three slots unless tagged: on a
Cluster they are `{scheduler}:timers`, `{scheduler}:processing` and `{scheduler}:payloads`
(one slot, so one node serves every timer). On one server and under Sentinel they keep their
untagged names, so timers pending before an upgrade still fire; timers do not carry over
from one server to a new Cluster (the data moves with a migration, not by configuration).
"""

from __future__ import annotations

from typing import Any

from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import ReadOnlyError, RedisError

from runeworker.adapters.redis_connect import Client, redis_reply
from runeworker.adapters.redis_eval import Evaluator
from runeworker.engine.barriers import Barrier, BarrierState, MergeRule, Timer
from runeworker.engine.state import state_lost
from runeworker.errors import StateError

# A barrier's mark in its execution's meta (`mark_of(meta, key)`: the field is the name of the
# barrier's first key without the execution's part, `split:<split>[:<scope>]:results` or
# `node:<merge>[:<scope>]:barrier:first`): 1 once an arrival began it, 2 once it is decided.
# meta is touched by every step of the execution, a barrier's keys only by its arrivals: a mark
# whose keys are gone is a barrier evicted, flushed or expired (an execution idle at a merge
# for longer than `redis.key_ttl` while another branch kept its meta alive), and the arrival
# reports it ({'lost'}, nothing written) instead of beginning it again, which would wait for
# arrivals that already came, or release it twice. Without a meta (none given, or none made:
# a barrier arrived at without admission) nothing is marked.
MARK_FN = """
local function mark_of(meta, key)
  if not meta or redis.call('EXISTS', meta) == 0 then return nil, nil end
  local field = string.sub(key, #meta - 12)  -- meta is <execution's part>branches:meta
  return field, redis.call('HGET', meta, field)
end
"""

# The barrier arrivals as Lua functions, so that `RedisStore.arrive` can run them inside its
# own script (`ARRIVE`, runeworker/adapters/redis_ledger.py). Each returns {state, arrivals,
# first_ms, key1, result1, ...} (keys and results only on release; merge keys are parents), or
# {'lost'}.
AGGREGATE_FN = (
    MARK_FN
    + """
local function aggregate_barrier(results, release, registry, meta, index, total, has, payload,
                                 token, ttl)
  local field, mark = mark_of(meta, results)
  if mark and (redis.call('EXISTS', results) == 0
               or (mark == '2' and redis.call('EXISTS', release) == 0)) then
    return {'lost'}
  end
  local function touch() expire(results, ttl) expire(release, ttl) expire(registry, ttl) end
  local function collect()
    local reply = {'released', redis.call('HLEN', results), 0}
    for i = 0, total - 1 do
      local v = redis.call('HGET', results, tostring(i))
      if v and v ~= '' then reply[#reply + 1] = tostring(i) reply[#reply + 1] = v end
    end
    return reply
  end
  local decided = redis.call('GET', release)
  if decided then
    touch()
    if decided == token then return collect() end
    return {'closed', redis.call('HLEN', results), 0}
  end
  if has then redis.call('HSET', results, index, payload)
  else redis.call('HSETNX', results, index, '') end
  local n = redis.call('HLEN', results)
  if n == 1 then redis.call('SADD', registry, results, release) end
  if n >= total then redis.call('SET', release, token) end
  if field and mark ~= (n >= total and '2' or '1') then
    redis.call('HSET', meta, field, n >= total and 2 or 1)
  end
  touch()
  if n >= total then return collect() end
  return {'waiting', n, 0}
end
"""
)

MERGE_FN = """
local function merge_barrier(arrivals, data, first, lock, waited, registry, meta, parent, has,
                             payload, expected, any, now_ms, timeout, token, ttl)
  local field, mark = mark_of(meta, first)
  if mark and (redis.call('EXISTS', first, arrivals, data) < 3
               or (mark == '2' and redis.call('EXISTS', lock) == 0)) then
    return {'lost'}
  end
  local bkeys = {arrivals, data, first, lock, waited}
  local now = tonumber(now_ms)
  local function touch()
    for i = 1, #bkeys do expire(bkeys[i], ttl) end
    expire(registry, ttl)
  end
  local function head(state)
    return {state, redis.call('SCARD', arrivals), redis.call('GET', first) or '0'}
  end
  local function collect(winner)
    local reply = head('released')
    local found = {}
    if winner ~= '' then found = {winner, redis.call('HGET', data, winner)}
    else found = redis.call('HGETALL', data) end
    for i = 1, #found, 2 do
      if found[i + 1] and found[i + 1] ~= '' then
        reply[#reply + 1] = found[i] reply[#reply + 1] = found[i + 1]
      end
    end
    return reply
  end
  local function decide(kind, winner)
    redis.call('SET', lock, kind .. '\\n' .. token .. '\\n' .. winner)
    if field then redis.call('HSET', meta, field, 2) end
    touch()
    if kind == 'expired' then return head('expired') end
    return collect(winner)
  end
  local decided = redis.call('GET', lock)
  if decided then
    touch()
    local kind, by, winner = string.match(decided, '^(%a+)\\n([^\\n]*)\\n(.*)$')
    if by ~= token then
      -- a replayed arrival counted before the decision reports what it reported then
      if redis.call('SISMEMBER', waited, token) == 1 then return head('waiting') end
      if kind == 'expired' then return head('timed_out') end
      return head('closed')
    end
    if kind == 'expired' then return head('expired') end
    return collect(winner)
  end
  local started = redis.call('GET', first)
  if not started then
    -- a firing timer (parent '') was armed by an arrival that began the barrier: it is lost
    if parent == '' then return {'lost'} end
    redis.call('SET', first, now_ms)
    redis.call('SADD', registry, arrivals, data, first, lock, waited)
    if field then redis.call('HSET', meta, field, 1) end
  elseif has and timeout > 0 and now - tonumber(started) > timeout then
    return decide('expired', parent)
  end
  redis.call('SADD', arrivals, parent)
  if has then redis.call('HSET', data, parent, payload)
  else redis.call('HSETNX', data, parent, '') end
  if any == '1' and has then return decide('released', parent) end
  if redis.call('SCARD', arrivals) >= expected then return decide('released', '') end
  redis.call('SADD', waited, token)
  touch()
  return head('waiting')
end
"""


def keep_fn(hold: str) -> str:
    """Lua defining `expire(key, ttl)`, which the scripts give every per-execution key they
    touch: the TTL from now, or while a timer holds the execution (`hold`, a Lua expression
    naming its hold key) the hold's instant, which is later (see the module's docstring)."""
    return f"""
local kept_until = redis.call('GET', {hold})
local function expire(key, ttl)
  if kept_until then redis.call('PEXPIREAT', key, kept_until)
  else redis.call('EXPIRE', key, ttl) end
end
"""


# Keeps an execution's keys until `due` (epoch ms) + `ttl` seconds at least: `keys` (the
# execution's, see `RedisStore.keys_of`, the hold key excluded) and the barriers `registry`
# names. A timer due already (by the server's clock: TIME, which Redis 5 and later allow
# before writes) needs no hold: the keys' TTL from now outlasts it.
HOLD_FN = """
local function hold_execution(hold, registry, keys, due, ttl)
  local clock = redis.call('TIME')
  -- a due time past 2^53 ms (the year 287396: a timeout of 1e300 s) holds until then; beyond,
  -- PEXPIREAT would refuse the instant and fail the script after some of its writes
  due = math.min(tonumber(due), 2 ^ 53)
  if due <= tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) then return end
  local at = math.min(due + tonumber(ttl) * 1000, 2 ^ 53)
  if at <= tonumber(redis.call('GET', hold) or '0') then return end
  at = string.format('%.0f', at)
  redis.call('SET', hold, at)
  redis.call('PEXPIREAT', hold, string.format('%.0f', due))
  for _, key in ipairs(keys) do redis.call('PEXPIREAT', key, at) end
  for _, key in ipairs(redis.call('SMEMBERS', registry)) do redis.call('PEXPIREAT', key, at) end
end
"""

# KEYS: results, release, then the execution's barrier registry, hold key and meta. ARGV:
# index, total, has_payload, payload, token, ttl.
_AGGREGATE = (
    keep_fn("KEYS[4]")
    + AGGREGATE_FN
    + "return aggregate_barrier(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[1], tonumber(ARGV[2]), "
    "ARGV[3] == '1', ARGV[4], ARGV[5], ARGV[6])\n"
)

# KEYS: arrivals, data, first, lock, waited, then the execution's barrier registry, hold key
# and meta. ARGV: parent, has_payload, payload, expected, any, now_ms, timeout_ms, token, ttl.
_MERGE = (
    keep_fn("KEYS[7]")
    + MARK_FN
    + MERGE_FN
    + "return merge_barrier(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[8], "
    "ARGV[1], ARGV[2] == '1', ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7]), "
    "ARGV[8], ARGV[9])\n"
)

# KEYS: timers, processing, payloads. ARGV: now_ms, limit, lease deadline (ms). A due id
# without its payload (written with it, removed with it: the payloads hash was evicted or
# flushed) is dropped and returned with an empty payload (`Timer.payload`).
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local reply = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local payload = redis.call('HGET', KEYS[3], id)
  if payload then
    redis.call('ZADD', KEYS[2], ARGV[3], id)
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = payload or ''
end
return reply
"""

# KEYS: timers, processing. ARGV: now_ms. Expired leases become due now, in batches.
_RELEASE = """
local moved = 0
repeat
  local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 500)
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZADD', KEYS[1], ARGV[1], id)
  end
  moved = moved + #ids
until #ids < 500
return moved
"""

# The keys of one execution as the scripts take them (KEYS in this order, behind
# `{prefix}exec:{<id>}:`): the six branch keys of runeworker/adapters/redis_ledger.py, which
# every call of the execution touches, and the hold; then the barrier registry (touched with
# the barriers) and the start record of a single-branch execution (written once, moved by a
# hold; the branch scripts read whether it exists when they find no record of the
# execution, see `opens_unknown`), and the mark of its end (written by the advance that
# closes it, read when its other records are gone: runeworker/adapters/redis_ledger.py).
EXECUTION_KEYS = (
    "branches:live", "branches:done", "branches:meta", "branches:failctx",
    "branches:contexts", "branches:timers", "hold", "barriers", "started", "ended",
)  # fmt: skip
_TIMERS, _HOLD, _REGISTRY, _META = (
    EXECUTION_KEYS.index(k) for k in ("branches:timers", "hold", "barriers", "branches:meta")
)

# The owner's part of `schedule`: the id into the execution's set of timers, and the hold. It
# reads the locals `owner` (index in KEYS of the execution's first key; all of them follow, in
# the order of `EXECUTION_KEYS`), `id`, `due` and `ttl`.
_OWNER_PART = f"""
local hold = KEYS[owner + {_HOLD}]
local exec_keys = {{}}
for i = owner, owner + {len(EXECUTION_KEYS) - 1} do
  if i ~= owner + {_HOLD} then exec_keys[#exec_keys + 1] = KEYS[i] end
end
local timers = KEYS[owner + {_TIMERS}]
redis.call('SADD', timers, id)
hold_execution(hold, KEYS[owner + {_REGISTRY}], exec_keys, due, ttl)
local kept = redis.call('GET', hold)
if kept then redis.call('PEXPIREAT', timers, kept) else redis.call('EXPIRE', timers, ttl) end
"""

# `schedule`. KEYS: timers, processing, payloads, then the owner's keys (one server: the whole
# schedule is one script; a Cluster runs _OWN first, in the execution's slot). ARGV: id,
# due_ms, payload, ttl.
_SCHEDULE = (
    HOLD_FN
    + """
local id, due, ttl, owner = ARGV[1], ARGV[2], ARGV[4], 4
if #KEYS > 3 then
"""
    + _OWNER_PART
    + """
end
redis.call('HSET', KEYS[3], id, ARGV[3])
redis.call('ZREM', KEYS[2], id)
redis.call('ZADD', KEYS[1], due, id)
return 1
"""
)

# The owner's part of `schedule` on a Cluster. KEYS: the owner's. ARGV: id, due_ms, ttl.
_OWN = HOLD_FN + "local id, due, ttl, owner = ARGV[1], ARGV[2], ARGV[3], 1\n" + _OWNER_PART

# `cancel_timer`. KEYS: the sorted sets to remove the id from, then the payloads hash.
# ARGV: id.
_DROP_TIMER = """
for i = 1, #KEYS - 1 do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('HDEL', KEYS[#KEYS], ARGV[1])
return 1
"""

# `ack_timer`. KEYS: processing, payloads. ARGV: id. The payload goes only with the lease: a
# timer scheduled again since its claim (no longer leased) keeps the payload it was given.
_ACK_TIMER = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
"""

_STATES = {s.value: s for s in BarrierState}


class RedisFlow:
    """The barrier and timer half of `RedisStore` (which sets the attributes below)."""

    _client: Client
    _eval: Evaluator  # runs the scripts (a kept connection; redis-py's Script on a Cluster)
    _prefix: str
    _scheduler: str  # "scheduler:", or "{scheduler}:" on a Cluster
    _ttl: int
    _where: str
    _secret: str

    def _reconnect(self) -> None:
        """Drop every connection, the kept one of the scripts included: the next command
        connects again. After a `READONLY` reply: a failover behind a plain URL (a DNS name, a
        virtual IP or a proxy moved to the new master) leaves the connections already open
        on the old master, now a replica, and only a new connection reaches the new one
        (Sentinel's connections do this themselves). Only on that error, never per step."""
        self._eval.close()
        if isinstance(self._client, RedisCluster):
            return  # its client finds the new primaries by itself (MOVED, a failed node)
        self._client.connection_pool.disconnect()

    def _register_flow_scripts(self) -> None:
        self._aggregate_script: Script = self._client.register_script(_AGGREGATE)
        self._merge_script: Script = self._client.register_script(_MERGE)
        self._claim_script: Script = self._client.register_script(_CLAIM)
        self._release_script: Script = self._client.register_script(_RELEASE)
        self._schedule_script: Script = self._client.register_script(_SCHEDULE)
        self._own_script: Script = self._client.register_script(_OWN)
        self._drop_timer_script: Script = self._client.register_script(_DROP_TIMER)
        self._ack_timer_script: Script = self._client.register_script(_ACK_TIMER)

    # -- barriers -----------------------------------------------------------------------

    def aggregate(
        self,
        execution_id: str,
        split_id: str,
        scope: str,
        index: int,
        total: int,
        token: str,
        payload: bytes | None,
    ) -> Barrier:
        """See `StateStore.aggregate`."""
        keys = [*self.aggregate_keys(execution_id, split_id, scope), *self._held(execution_id)]
        flag, body = (1, payload) if payload is not None else (0, b"")
        args = [index, total, flag, body, token, self._ttl]
        reply = self._call("aggregate", execution_id, self._aggregate_script, keys, args)
        if reply[0] == b"lost":
            raise state_lost(execution_id, "barrier", f"aggregator (split {split_id})")
        return barrier_of(reply, by_name=False)

    def merge_arrive(
        self,
        execution_id: str,
        merge_id: str,
        scope: str,
        parent: str,
        token: str,
        payload: bytes | None,
        rule: MergeRule,
        now_ms: int,
    ) -> Barrier:
        """See `StateStore.merge_arrive`."""
        keys = [*self.merge_keys(execution_id, merge_id, scope), *self._held(execution_id)]
        flag, body = (1, payload) if payload is not None else (0, b"")
        args = [parent, flag, body, rule.expected, int(rule.any), now_ms, rule.timeout_ms]
        args += [token, self._ttl]
        reply = self._call("merge", execution_id, self._merge_script, keys, args)
        if reply[0] == b"lost":
            raise state_lost(execution_id, "barrier", f"merge {merge_id}")
        return barrier_of(reply, by_name=True)

    def aggregate_keys(self, execution_id: str, split_id: str, scope: str) -> list[str]:
        """KEYS of `aggregate_barrier`: the results and the release of one split's run."""
        base = self._exec_key(execution_id, "split", split_id, scope)
        return [base + ":results", base + ":release"]

    def merge_keys(self, execution_id: str, merge_id: str, scope: str) -> list[str]:
        """KEYS of `merge_barrier`: arrivals, data, first, lock and waited of one merge."""
        base = self._exec_key(execution_id, "node", merge_id, scope)
        keys = [base + ":barrier:arrivals", base + ":barrier:data", base + ":barrier:first"]
        return [*keys, base + ":lock", base + ":barrier:waited"]

    def _held(self, execution_id: str) -> list[str]:
        """The barrier registry, the hold key and the meta (the barriers' marks, `MARK_FN`)
        of an execution."""
        base = f"{self._prefix}exec:{{{execution_id}}}:"
        return [base + EXECUTION_KEYS[i] for i in (_REGISTRY, _HOLD, _META)]

    def keys_of(self, execution_id: str, count: int = len(EXECUTION_KEYS)) -> list[str]:
        """The first `count` Redis keys of one execution, in the order the scripts take them
        (`EXECUTION_KEYS`)."""
        base = f"{self._prefix}exec:{{{execution_id}}}:"
        return [base + suffix for suffix in EXECUTION_KEYS[:count]]

    def _exec_key(self, execution_id: str, kind: str, node_id: str, scope: str) -> str:
        base = f"{self._prefix}exec:{{{execution_id}}}:{kind}:{node_id}"
        return f"{base}:{scope}" if scope else base

    # -- timers -------------------------------------------------------------------------

    def _timer_keys(self) -> list[str]:
        base = self._prefix + self._scheduler
        return [base + k for k in ("timers", "processing", "payloads")]

    def schedule(self, timer_id: str, due_ms: int, payload: bytes, *, owner: str = "") -> None:
        """See `StateStore.schedule`: the id into the owner's set of timers (the execution's
        hash slot: a failure's advance reads it), payload and due entry (the scheduler's
        slot), in one script on one server. On a Cluster the owner's set is written first by
        a script of its own: an id recorded without its timer (a crash in between) only
        costs a cancel that finds nothing."""
        keys = self._timer_keys()
        args = [timer_id, due_ms, payload, self._ttl]
        what = f"schedule of timer {timer_id!r}"
        if owner:
            owned = self.keys_of(owner)
            if isinstance(self._client, RedisCluster):
                self._call(what, "", self._own_script, owned, [timer_id, due_ms, self._ttl])
            else:
                keys += owned
        self._call(what, "", self._schedule_script, keys, args)

    def claim_due(self, now_ms: int, limit: int, lease_ms: int) -> list[Timer]:
        """See `StateStore.claim_due`."""
        args = [now_ms, limit, now_ms + lease_ms]
        reply = self._call("timer claim", "", self._claim_script, self._timer_keys(), args)
        return [Timer(reply[i].decode(), bytes(reply[i + 1])) for i in range(0, len(reply), 2)]

    def release_expired(self, now_ms: int) -> int:
        """See `StateStore.release_expired`."""
        keys = self._timer_keys()[:2]
        return int(self._call("timer sweep", "", self._release_script, keys, [now_ms]))

    def ack_timer(self, timer_id: str) -> None:
        """See `StateStore.ack_timer`."""
        keys = self._timer_keys()[1:]  # processing, payloads
        self._call(f"ack of timer {timer_id!r}", "", self._ack_timer_script, keys, [timer_id])

    def cancel_timer(self, timer_id: str) -> None:
        """See `StateStore.cancel_timer`."""
        keys = self._timer_keys()  # timers, processing, payloads
        self._call(f"cancel of timer {timer_id!r}", "", self._drop_timer_script, keys, [timer_id])

    def next_due(self) -> int | None:
        """See `StateStore.next_due`."""
        try:
            first = self._client.zrange(self._timer_keys()[0], 0, 0, withscores=True)
        except RedisError as exc:
            raise self._error("timer lookup", exc) from exc
        return int(first[0][1]) if first else None

    # -- errors -------------------------------------------------------------------------

    def _call(
        self, op: str, execution_id: str, script: Script, keys: list[str], args: list[Any]
    ) -> Any:
        try:
            return self._eval(script, keys, args)
        except RedisError as exc:
            what = f"{op} of execution {execution_id!r}" if execution_id else op
            raise self._error(what, exc) from exc

    def _error(self, what: str, exc: RedisError) -> StateError:
        if isinstance(exc, ReadOnlyError):
            self._reconnect()
        detail = redis_reply(exc)
        detail = detail.replace(self._secret, "***") if self._secret else detail
        return StateError(f"The Redis {what} on {self._where} failed: {detail}")


def barrier_of(reply: list[Any], *, by_name: bool) -> Barrier:
    """Decode a script reply; merge parents come in hash order and are sorted by name (item
    indexes already come in index order)."""
    state, arrived, first = reply[0].decode(), int(reply[1]), int(reply[2])
    pairs = sorted(
        ((reply[i].decode(), bytes(reply[i + 1])) for i in range(3, len(reply), 2)),
        key=(lambda kv: kv[0]) if by_name else (lambda kv: int(kv[0])),
    )
    return Barrier(_STATES[state], arrived, [k for k, _ in pairs], [v for _, v in pairs], first)
