"""`StateStore` over Redis: branch tokens of every execution, one atomic Lua script per call.

The semantics are those of `runeworker.engine.state.MemoryStore` (the shared table in
tests/unit/statecases.py runs against both). Each execution keeps these keys, hash-tagged on
the execution id so that a Redis Cluster keeps them in one slot (a script may only touch keys
of one slot):

    {prefix}exec:{<id>}:branches:live      set   live branch tokens
    {prefix}exec:{<id>}:branches:done      hash  token -> msgpack of the recorded transition
                                                 ({0} for a token retired before it was live)
    {prefix}exec:{<id>}:branches:meta      hash  started_at_ns, steps, failure_status/_reason,
                                                 ended (closed by its last branch), lost and
                                                 lost_by (what of its state a token found
                                                 gone, and that token), and a mark per barrier
                                                 (`runeworker.adapters.redis_flow.MARK_FN`)
    {prefix}exec:{<id>}:branches:failctx   str   context of a failure recorded by a worker
                                                 before 0.9 (which closed at the last branch)
    {prefix}exec:{<id>}:branches:contexts  list  leaf contexts in finishing order
    {prefix}exec:{<id>}:branches:timers    set   ids of the execution's wait/merge timers
    {prefix}exec:{<id>}:started            str   start (epoch ns) of a single-branch execution,
                                                 which uses no branch keys (engine/ledger.py)
    {prefix}exec:{<id>}:barriers           set   names of its barrier keys (a timer's hold
    {prefix}exec:{<id>}:hold               str   keeps them; runeworker/adapters/redis_flow.py)
    {prefix}exec:{<id>}:receipts           hash  "<queue>|<token>|<node>" -> 1 for each step
                                                 whose outcome is published (child/receipts.py)

The barrier and timer keys (`exec:{<id>}:split:...`, `exec:{<id>}:node:...`, `scheduler:*`,
shaped like the Go worker's) are described in `runeworker.adapters.redis_flow`. What a step finds
gone of these (evicted, expired, flushed) it is told (`runeworker.errors.StateLost`; see
`runeworker.engine.state` and `_PROLOGUE_BODY` below), and it fails the execution. Every call
refreshes the TTL of every key it touches (while a wait or merge timer holds the execution, to
the hold's later instant). Commits in doubt, kept until a child publishes them
again, are in `{prefix}{doubts}:*` (runeworker/adapters/redis_doubts.py).

`from_config` builds the client the `[redis]` section describes with redis-py's own clients:
one server (`redis.url`), a master found through Redis Sentinel (`redis.sentinels`,
`redis.service_name`; the pool asks the sentinels again after a failover), or a Redis Cluster
(`redis.cluster`; every script's keys share one hash slot, see `RedisFlow`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
import redis
import redis.sentinel
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import (
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
)

from runeworker.adapters.redis_doubts import RedisDoubts
from runeworker.adapters.redis_eval import Evaluator
from runeworker.adapters.redis_flow import (
    AGGREGATE_FN,
    EXECUTION_KEYS,
    HOLD_FN,
    MERGE_FN,
    Client,
    RedisFlow,
    barrier_of,
    keep_fn,
    redis_reply,
)
from runeworker.config import RedisConfig, mask_url
from runeworker.engine.barriers import HOLD, AggregateArrival, Arrival
from runeworker.engine.messages import COMPLETED
from runeworker.engine.state import (
    JOINING,
    ROOT,
    Admission,
    Arrived,
    Failure,
    Settlement,
    Transition,
    Verdict,
    attempt_key,
    state_lost,
)
from runeworker.errors import StateError
from runeworker.masking import mask_url_passwords

# Receipts (runeworker/child/receipts.py): KEYS are the receipts hashes of the ARGV[2] receipts
# to record, then of those to look up; ARGV[3..] the field of each, in the same order. On one
# server only: the keys belong to many executions, hence many slots of a Cluster.
_RECEIPTS = """
local ttl, n = ARGV[1], tonumber(ARGV[2])
for i = 1, n do
  redis.call('HSET', KEYS[i], ARGV[2 + i], 1)
  redis.call('EXPIRE', KEYS[i], ttl)
end
local found = {}
for i = n + 1, #KEYS do
  found[#found + 1] = redis.call('HEXISTS', KEYS[i], ARGV[2 + i])
end
return found
"""

# The start records `begin` kept (KEYS: one per execution; ARGV: the TTL, then each start
# time): the first record of an execution wins.
_BEGIN = """
local ttl = ARGV[1]
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'NX', 'EX', ttl)
end
return #KEYS
"""

# Shared head of every script: the keys (`EXECUTION_KEYS` first), the token and `touch`,
# which gives the branch keys their TTL (`expire`: the hold's instant while a timer holds
# the execution); the barrier functions give theirs and the registry's, a timer's hold the
# start record's, and the scheduler's keys are global.
_HEAD = (
    keep_fn("KEYS[7]")
    + """
local live, done, meta, failctx = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local contexts, timers, hold, barriers = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local started = KEYS[9]
local token, now, ttl = ARGV[1], ARGV[2], ARGV[3]
local function touch()
  for i = 1, 6 do expire(KEYS[i], ttl) end
end
"""
)

# Shared head of the admit, advance, settle and arrive scripts (`_prologue(anew)`, `anew` a
# Lua expression: a replayed dead letter, see `StateStore.admit`), then the locals every one of
# them reads: m (steps, failure_status, lost, lost_by of meta), steps, failed, recorded (the
# token's advance), is_live, and lost, what of the execution's state the token finds lost (nil
# when nothing; `runeworker.errors.StateLost`).
#
# An unknown execution opens with the token as its only live branch when the token may open
# it (`opens_unknown`: the root, a joining token, `anew`, or a single-branch execution's start
# record, `started`); a joining token (`message_token`) becomes live in an open execution (a
# branch live, no failure) unless it advanced before. Any other token of an unknown execution
# finds it lost ('execution'): derived from a parent that advanced here, its records were
# evicted, expired or flushed since. Unless the execution had ended (`ended`: its mark, or a
# closing record still in `done`): then its meta is made again, marked ended, and the token is
# stale as any late message of an ended execution. A token of a known execution that has not
# ended finds its branches lost when none is live ('branches'; a live set is empty only once
# the execution closed). `lose` keeps the token live and marks meta lost by it (and forgets
# the token's own advance, whose outcome can no longer stand): the step fails the execution
# with an advance that brings the failure; that token is told again until then (and live
# again, should the live set go meanwhile), and when redelivered after it (the failure then
# replays). Other tokens are not told the loss one of them found. started_at_ns stays a
# string: Lua numbers are doubles and would round nanoseconds.
_PROLOGUE_BODY = f"""
local lost = nil
local function joining()
  return string.sub(token, 1, {len(JOINING)}) == '{JOINING}'
end
local function ended()
  if redis.call('HEXISTS', meta, 'ended') == 1 then return true end
  -- an execution closed by a worker before the mark: its closing record (rare path only)
  for _, v in ipairs(redis.call('HVALS', done)) do
    if cmsgpack.unpack(v)[1] ~= 0 then return true end
  end
  return false
end
local function lose(what)
  if redis.call('EXISTS', meta) == 0 then
    redis.call('HSET', meta, 'started_at_ns', now, 'steps', 0)
  end
  redis.call('HSET', meta, 'lost', what, 'lost_by', token)
  redis.call('HDEL', done, token)
  redis.call('SADD', live, token)
  lost = what
end
if redis.call('EXISTS', meta) == 0 then
  if token == '{ROOT}' or joining() or ANEW or redis.call('EXISTS', started) == 1 then
    redis.call('HSET', meta, 'started_at_ns', now, 'steps', 0)
    if redis.call('HEXISTS', done, token) == 0 then redis.call('SADD', live, token) end
  elseif ended() then
    redis.call('HSET', meta, 'started_at_ns', now, 'steps', 0, 'ended', 1)
  else
    lose('execution')
  end
elseif joining() and redis.call('SCARD', live) > 0
    and redis.call('HEXISTS', meta, 'failure_status') == 0
    and redis.call('HEXISTS', done, token) == 0 then
  redis.call('SADD', live, token)
end
local m = redis.call('HMGET', meta, 'steps', 'failure_status', 'lost', 'lost_by')
local steps, failed = tonumber(m[1]), m[2]
local recorded = redis.call('HGET', done, token)
local is_live = redis.call('SISMEMBER', live, token) == 1
if lost then
elseif m[3] and m[4] == token and (recorded or not failed) then
  -- the token that found the loss, again: before its failure (kept live, even should the
  -- live set be evicted in between), or replaying it
  lost = m[3]
  if not recorded and not is_live then
    redis.call('SADD', live, token)
    is_live = true
  end
elseif not recorded and not failed and not is_live and not m[3]
    and redis.call('EXISTS', live) == 0 and not ended() then
  lose('branches')
  is_live = true
end
"""


def _prologue(anew: str = "false") -> str:
    """`_HEAD` and `_PROLOGUE_BODY` with `anew` (a Lua expression) in place."""
    return _HEAD + _PROLOGUE_BODY.replace("ANEW", anew)


_ADMIT = (
    _prologue("ARGV[4] == '1'")
    + """
local verdict = 'run'
if lost then verdict = 'lost'
elseif recorded then verdict = 'replay'
elseif failed then verdict = 'cancelled'
elseif not is_live then verdict = 'stale'
end
touch()
if lost then return {'lost', lost} end
return {verdict, steps}
"""
)

# The advance itself, shared by the scripts below. It reads the locals has_leaf, leaf,
# has_failure, f_status, f_reason, f_context and children (a table of child tokens); the token
# is live. Reply (also what `done` records): {0} while open,
# {1, '', '', started_at_ns, context...} for the completing advance, {2, failure_status,
# failure_reason, started_at_ns, timer ids joined by newlines, failing context} for the
# failure that closes the execution at once: the live set goes (every later message of the
# execution is cancelled) and the timers are the step's to cancel. A failure recorded by a
# worker before 0.9 (failctx set, live branches left) still closes at the last branch, as
# that worker would have: {1, failure_status, failure_reason, started_at_ns, context}. A hold
# token among the children (an aggregator's, `HOLD`) goes live only when nothing else would:
# decided here, in the same script as the rest of the advance (`StateStore.advance`).
_ADVANCE_BODY = """
redis.call('HINCRBY', meta, 'steps', 1)
redis.call('SREM', live, token)
local result = {0}
if has_failure == '1' and redis.call('HEXISTS', meta, 'failure_status') == 0 then
  redis.call('HSET', meta, 'failure_status', f_status, 'failure_reason', f_reason)
  local owned = table.concat(redis.call('SMEMBERS', timers), '\\n')
  result = {2, f_status, f_reason, redis.call('HGET', meta, 'started_at_ns'), owned, f_context}
  redis.call('DEL', live, contexts)
elseif redis.call('HEXISTS', meta, 'failure_status') == 1 then
  if redis.call('SCARD', live) == 0 and redis.call('EXISTS', failctx) == 1 then
    local m = redis.call('HMGET', meta, 'started_at_ns', 'failure_status', 'failure_reason')
    result = {1, m[2], m[3], m[1], redis.call('GET', failctx)}
    redis.call('DEL', failctx, contexts)
  end
else
  -- a token that already advanced never becomes live again (a late replay of its parent); a
  -- hold token only when nothing else would be live (`StateStore.advance`)
  local holds = {}
  for _, child in ipairs(children) do
    if string.sub(child, 1, 5) == 'hold:' then holds[#holds + 1] = child
    elseif redis.call('HEXISTS', done, child) == 0 then redis.call('SADD', live, child) end
  end
  if #holds > 0 and redis.call('SCARD', live) == 0 then
    for _, child in ipairs(holds) do
      if redis.call('HEXISTS', done, child) == 0 then redis.call('SADD', live, child) end
    end
  end
  if redis.call('SCARD', live) > 0 then
    if has_leaf == '1' then redis.call('RPUSH', contexts, leaf) end
  else
    redis.call('HSET', meta, 'ended', 1)  -- told apart from a lost live set (`ended`)
    result = {1, '', '', redis.call('HGET', meta, 'started_at_ns')}
    for _, ctx in ipairs(redis.call('LRANGE', contexts, 0, -1)) do result[#result + 1] = ctx end
    if has_leaf == '1' then result[#result + 1] = leaf end
    -- the closing record holds the contexts now; replays read only `done`
    redis.call('DEL', contexts)
  end
end
redis.call('HSET', done, token, cmsgpack.pack(result))
touch()
"""
assert HOLD == "hold:"  # the prefix of a hold token, as _ADVANCE_BODY tests it

# ARGV: token, now, ttl, has_leaf, leaf, has_failure, status, reason, failing context,
# children... Reply: that of _ADVANCE_BODY (a replay returns the recorded one), or {3, what}
# when the token finds its execution's state lost and brings no failure (nothing recorded).
_ADVANCE = (
    _prologue()
    + """
if lost and ARGV[6] ~= '1' then touch() return {3, lost} end
if recorded then touch() return cmsgpack.unpack(recorded) end
if not is_live then touch() return {0} end
local has_leaf, leaf, has_failure = ARGV[4], ARGV[5], ARGV[6]
local f_status, f_reason, f_context = ARGV[7], ARGV[8], ARGV[9]
local children = {}
for i = 10, #ARGV do children[#children + 1] = ARGV[i] end
"""
    + _ADVANCE_BODY
    + "return result\n"
)


# The verdict of `settle` and `arrive`, after the prologue: verdict ('run', 'replay' or
# 'cancelled' for a live token of a failed execution); a stale token, or a token of a failed
# execution that is not live, ends the script here, and so does a lost one ({'lost', what})
# unless it brings a failure (`has_failure`, a Lua expression: that failure is recorded).
def _verdict(has_failure: str = "false") -> str:
    return f"""
local verdict = 'run'
if lost and not ({has_failure}) then touch() return {{'lost', lost}} end
if recorded then verdict = 'replay'
elseif is_live then
  if failed then verdict = 'cancelled' end
elseif failed then touch() return {{'cancelled', 0}}
else touch() return {{'stale'}}
end
"""


# Admit and advance in one round trip, for a step whose node already ran (see
# `StateStore.settle`). ARGV: those of _ADVANCE with max_steps and anew inserted before the
# children (ARGV[10], ARGV[11]). Reply: {'limit', verdict} (nothing recorded), {'stale'},
# {'lost', what}, or {verdict, advance reply...} with verdict replay (the recorded reply),
# cancelled (nothing recorded: a failure closed the execution; a branch still live under a
# failure of a worker before 0.9 is absorbed) or run.
_SETTLE = (
    _prologue("ARGV[11] == '1'")
    + _verdict("ARGV[6] == '1'")
    + """
if verdict ~= 'cancelled' and steps >= tonumber(ARGV[10]) then touch() return {'limit', verdict} end
local reply
if recorded then
  touch()
  reply = cmsgpack.unpack(recorded)
else
  local has_leaf, leaf, has_failure = ARGV[4], ARGV[5], ARGV[6]
  local f_status, f_reason, f_context = ARGV[7], ARGV[8], ARGV[9]
  local children = {}
  if verdict == 'cancelled' then has_leaf, has_failure = '0', '0'
  else for i = 12, #ARGV do children[#children + 1] = ARGV[i] end end
"""
    + _ADVANCE_BODY
    + """
  reply = result
end
table.insert(reply, 1, verdict)
return reply
"""
)

# `StateStore.retire`. ARGV: token, now, ttl, counted ('0': retiring a live token is no step).
# Reply: that of _ADVANCE. An unknown execution records nothing (no prologue: retiring must not
# open one); a token not live yet is recorded as advanced ({0}), so the advance that would add
# it later skips it.
_RETIRE = (
    _HEAD
    + """
if redis.call('EXISTS', meta) == 0 then return {0} end
local recorded = redis.call('HGET', done, token)
if recorded then touch() return cmsgpack.unpack(recorded) end
if redis.call('SISMEMBER', live, token) == 0 then
  redis.call('HSET', done, token, cmsgpack.pack({0}))
  touch()
  return {0}
end
local has_leaf, leaf, has_failure = '0', '', '0'
local f_status, f_reason, f_context, children = '', '', '', {}
"""
    + _ADVANCE_BODY
    + """
if ARGV[4] == '0' then redis.call('HINCRBY', meta, 'steps', -1) end  -- the advance counted one
return result
"""
)


# `StateStore.arrive`: admit (as _SETTLE), the barrier arrival, the retiring of the merge's
# timer token when the arrival decided (of the aggregator's hold token when it released), and
# the advance when the outcome was foreseen, in one round trip. KEYS: the execution's (keys_of),
# then the barrier's (aggregate_keys or merge_keys), then for a merge that parks its timer
# (`MergeArrival.park`) the scheduler's timers, processing and payloads. ARGV: token, now, ttl,
# max_steps, the foresight (msgpack map: outcome -> child tokens), kind ('aggregate' or
# 'merge'), the timer or hold token to retire ('' for none), then the barrier's: index, total,
# has_payload, payload (aggregate) or parent, has_payload, payload, expected, any, now_ms,
# timeout_ms, and with the scheduler's keys the timer's id and resume message (merge). Reply:
# {'stale'}, {'limit', verdict}, {'lost', what} (the execution's state, or the barrier it
# began, is lost: `_prologue`, `lose`), {'cancelled', n, advance reply...} (nothing but the
# absorbing recorded, n = 0), or {verdict, n, barrier reply (n items), advance reply when
# foreseen}. `touch` refreshes the execution's keys only: the barrier functions refresh theirs
# whenever they run (an arrival that ends before them changes none of them), and the
# scheduler's are global.
_ARRIVE = (
    _prologue()
    + AGGREGATE_FN
    + MERGE_FN
    + HOLD_FN
    + _verdict()
    + """
local has_leaf, leaf, has_failure = '0', '', '0'
local f_status, f_reason, f_context, children = '', '', '', {}
if verdict == 'cancelled' then
"""
    + _ADVANCE_BODY
    + """
  table.insert(result, 1, 0)
  table.insert(result, 1, 'cancelled')
  return result
end
if steps >= tonumber(ARGV[4]) then touch() return {'limit', verdict} end
local barrier
if ARGV[6] == 'aggregate' then
  barrier = aggregate_barrier(KEYS[10], KEYS[11], barriers, meta, ARGV[8], tonumber(ARGV[9]),
                              ARGV[10] == '1', ARGV[11], token, ttl)
else
  local timeout = tonumber(ARGV[14])
  if verdict == 'replay' then timeout = 0 end  -- a replay never expires the barrier
  barrier = merge_barrier(KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14], barriers, meta,
                          ARGV[8], ARGV[9] == '1', ARGV[10], tonumber(ARGV[11]), ARGV[12],
                          ARGV[13], timeout, token, ttl)
end
local state = barrier[1]
if state == 'lost' then
  -- begun, and gone since: nothing was written; the step fails the execution
  lose('barrier')
  touch()
  return {'lost', 'barrier'}
end
local timer = ARGV[7]
if timer ~= '' and (state == 'released' or state == 'expired')
    and redis.call('HEXISTS', done, timer) == 0 then
  -- retired before this arrival's own advance, so it never closes the execution; a merge's
  -- timer token counts as a step, an aggregator's hold token (which never runs) does not
  if redis.call('SREM', live, timer) == 1 and ARGV[6] == 'merge' then
    redis.call('HINCRBY', meta, 'steps', 1)
  end
  redis.call('HSET', done, timer, cmsgpack.pack({0}))
end
local park = ''
if #KEYS == 17 then park = ARGV[15] end
if park ~= '' and (state == 'released' or state == 'expired') then
  -- decided: the timer has no job left (`cancel_timer`)
  redis.call('ZREM', KEYS[15], park)
  redis.call('ZREM', KEYS[16], park)
  redis.call('HDEL', KEYS[17], park)
end
local outcome = state
if state == 'released' and #barrier <= 3 then outcome = 'dead' end
local reply = {verdict, #barrier}
for _, v in ipairs(barrier) do reply[#reply + 1] = v end
local foreseen = cmsgpack.unpack(ARGV[5])[outcome]
if park ~= '' and state == 'waiting' then
  -- parks the timer's token while the timer is not due (`barriers.parked`); a RUN stores the
  -- timer first (`schedule`), so its token is never live without it
  foreseen = {}
  local due = tonumber(barrier[3]) + tonumber(ARGV[14])
  if tonumber(ARGV[13]) < due then
    foreseen = {timer}
    if verdict == 'run' then
      redis.call('SADD', timers, park)
      redis.call('HSET', KEYS[17], park, ARGV[16])
      redis.call('ZREM', KEYS[16], park)
      redis.call('ZADD', KEYS[15], due, park)
      local exec_keys = {live, done, meta, failctx, contexts, timers, barriers, KEYS[9]}
      hold_execution(hold, barriers, exec_keys, due, ttl)
      kept_until = redis.call('GET', hold)  -- for the `touch` below
    end
  end
end
if foreseen == nil then touch() return reply end
local advanced
if recorded then
  touch()
  advanced = cmsgpack.unpack(recorded)
else
  children = foreseen
"""
    + _ADVANCE_BODY
    + """
  advanced = result
end
for _, v in ipairs(advanced) do reply[#reply + 1] = v end
return reply
"""
)
# the KEYS indexes of _HEAD and _ARRIVE
assert EXECUTION_KEYS[6:] == ("hold", "barriers", "started")
# the first item of an advance's reply when the token found its execution's state lost
_LOST = 3


# KEYS: the attempt count, the spared flag; ARGV: TTL. A spared redelivery consumes the flag
# and is not counted (worker drains, `runeworker.child.worker`).
_COUNT_ATTEMPT = """
if redis.call('DEL', KEYS[2]) == 1 then
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
"""


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
        kwargs = _connection_kwargs(client)
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
        self._where = where or _describe(client)
        self._secret = str(kwargs.get("password") or "")
        self._begun: list[tuple[str, int]] = []  # start records waiting for `flush`
        self._eval = Evaluator(client)
        self._admit_script: Script = client.register_script(_ADMIT)
        self._advance_script: Script = client.register_script(_ADVANCE)
        self._settle_script: Script = client.register_script(_SETTLE)
        self._retire_script: Script = client.register_script(_RETIRE)
        self._arrive_script: Script = client.register_script(_ARRIVE)
        self._count_script: Script = client.register_script(_COUNT_ATTEMPT)
        self._receipts_script: Script = client.register_script(_RECEIPTS)
        self._begin_script: Script = client.register_script(_BEGIN)
        self.doubts = RedisDoubts(client, prefix, self._error)  # runeworker/child/doubts.py
        self._register_flow_scripts()

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "", ttl_seconds: int = 86400, **client_kwargs: Any
    ) -> RedisStore:
        """Store on the server of `url` (redis://, rediss:// or unix://); `client_kwargs` go to
        redis-py. Without explicit timeouts, a hung server would block a worker forever."""
        client_kwargs.setdefault("socket_connect_timeout", 5.0)
        client_kwargs.setdefault("socket_timeout", 5.0)
        try:
            client = redis.Redis.from_url(url, **client_kwargs)
        except ValueError as exc:
            raise StateError(f"The Redis URL {mask_url(url)} is invalid: {exc}") from exc
        return cls(client, prefix=prefix, ttl_seconds=ttl_seconds)

    @classmethod
    def from_config(cls, r: RedisConfig, **client_kwargs: Any) -> RedisStore:
        """Store on the Redis the `[redis]` section describes: one server, a Sentinel-managed
        master or a Cluster. `client_kwargs` override the section's (e.g. a probe's shorter
        socket timeout). A Cluster's client reads the slot layout when it is made: StateError
        when no node of it answers."""
        kwargs: dict[str, Any] = {"socket_timeout": r.socket_timeout, **client_kwargs}
        prefix, ttl = r.key_prefix, r.key_ttl
        if r.sentinels:
            master = _sentinel_master(r, kwargs)
            return cls(master, prefix=prefix, ttl_seconds=ttl, where=redis_where(r))
        if not r.cluster:
            return cls.from_url(r.url, prefix=prefix, ttl_seconds=ttl, **kwargs)
        kwargs.setdefault("socket_connect_timeout", 5.0)
        try:
            client = RedisCluster.from_url(r.url, **kwargs)
        except (RedisError, RedisClusterException, ValueError) as exc:
            detail = scrub(str(exc), r.url)
            where = redis_where(r)
            raise StateError(f"cannot reach the Redis Cluster at {where}: {detail}") from exc
        return cls(client, prefix=prefix, ttl_seconds=ttl, where=redis_where(r))

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
        if int(reply[0]) == _LOST:
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
        return f"refuses writes: {detail}{_advice(exc)}"

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
    """Decode the reply of an advance (see `_ADVANCE_BODY`): {0} open, {1, status, reason,
    started, contexts...} closed, {2, status, reason, started, timers, context} closed by a
    failure that names the execution's timers."""
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


NO_EVICTION = "noeviction"


def _advice(exc: RedisError) -> str:
    """What an operator does about a Redis that refuses writes (deploy/RUNBOOK.md)."""
    if isinstance(exc, OutOfMemoryError):
        return " (Redis is full: raise its maxmemory or free memory; runeworker retries)"
    if isinstance(exc, ReadOnlyError):
        return (
            " (this server is a replica now: point redis.url at the master, or use "
            "redis.sentinels; runeworker retries and reconnects)"
        )
    return ""


def eviction_warning(where: str, policy: str, maxmemory: int) -> str | None:
    """The start-up warning for a Redis whose `maxmemory-policy` may evict runeworker's keys
    (every one of them has a TTL, so the `volatile-*` policies evict them as well as the
    `allkeys-*` ones); None for `noeviction`."""
    if policy == NO_EVICTION:
        return None
    limit = (
        f"maxmemory is {maxmemory} bytes"
        if maxmemory
        else "no maxmemory is set now, so nothing is evicted until one is"
    )
    return (
        f"Redis at {where} has maxmemory-policy {policy} ({limit}): under memory pressure it "
        "evicts runeworker's keys (branch tokens, merge and aggregator barriers, wait timers, "
        "receipts, commits in doubt), and an execution whose keys are evicted fails ('state "
        "lost') or, rarely, completes twice. Set maxmemory-policy noeviction on this Redis (a full "
        "Redis then refuses writes, and runeworker waits for it without losing anything: "
        "deploy/INSTALL.md)"
    )


def redis_where(r: RedisConfig) -> str:
    """How messages name the Redis of `r`, passwords masked."""
    if r.sentinels:
        sentinels = ", ".join(mask_url(s) for s in r.sentinels)
        return f"master {r.service_name!r} of the sentinels {sentinels}"
    if r.cluster:
        return f"the cluster of {mask_url(r.url)}"
    return mask_url(r.url)


def scrub(text: str, url: str) -> str:
    """`text` without the password of `url` (redis-py may quote its connection arguments)."""
    password = urlsplit(url).password if "://" in url else None
    return text.replace(unquote(password), "***") if password else text


def _sentinel_master(r: RedisConfig, kwargs: dict[str, Any]) -> redis.Redis:
    """The client of the master that the sentinels of `r` name; its pool asks them again
    when the master stops answering (a failover). `redis.url` gives the master's username,
    password, database and TLS; a sentinel written as a URL gives the sentinels' own."""
    parts = urlsplit(r.url)
    master: dict[str, Any] = {
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "db": int(parts.path.strip("/") or 0),
    }
    if r.url.startswith("rediss://"):
        master["connection_class"] = redis.sentinel.SentinelManagedSSLConnection
    nodes: list[tuple[str, int]] = []
    auth: dict[str, Any] = {}
    for entry in r.sentinels:
        if "://" in entry:
            parts = urlsplit(entry)
            nodes.append((parts.hostname or "", parts.port or 26379))
            if parts.password and not auth:
                auth = {"username": unquote(parts.username or "") or None}
                auth["password"] = unquote(parts.password)
        else:
            host, _, port = entry.rpartition(":")
            nodes.append((host, int(port)))
    timeouts = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    make: Any = redis.sentinel.Sentinel  # untyped before redis-py 6
    sentinel: Any = make(nodes, sentinel_kwargs={**timeouts, **auth})
    client: redis.Redis = sentinel.master_for(r.service_name, **master, **kwargs)
    return client


def _connection_kwargs(client: Client) -> dict[str, Any]:
    """The arguments every connection of `client` is made with (a cluster's: of each node)."""
    if isinstance(client, RedisCluster):
        return dict(client.nodes_manager.connection_kwargs)
    return dict(client.connection_pool.connection_kwargs)


def _describe(client: Client) -> str:
    """A URL naming the server of `client` for messages, its password masked."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()  # type: ignore[no-untyped-call]
        return f"the cluster of redis://{node.host}:{node.port}" if node else "a Redis Cluster"
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    scheme = (
        "rediss" if client.connection_pool.connection_class.__name__.startswith("SSL") else "redis"
    )
    user = kwargs.get("username") or ""
    auth = f"{user}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
    host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"{scheme}://{auth}{host}:{port}/{db}"
