"""The branch-token protocol of `runeworker.adapters.redis_state.RedisStore` on the server: the
keys of an execution and one atomic Lua script per call (admit, advance, settle, arrive, retire),
with the scripts of the records the store keeps beside them (start records, step receipts,
attempt counts).

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
    {prefix}exec:{<id>}:ended              str   1 once the execution closed (completed or
                                                 failed): the sign of its end that a late
                                                 message finds when meta and done are gone
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
again, are in `{prefix}{doubts}:*` (runeworker/adapters/redis_doubts.py). The redeliveries of a
message are counted in `{prefix}attempts:{<message key>}` and its `:spared` flag (`COUNT_ATTEMPT`).

`RedisStore` registers these scripts and calls them: it builds their arguments and decodes their
replies (the layouts are in the comments below), through runeworker/adapters/redis_eval.py.
"""

from __future__ import annotations

from runeworker.adapters.redis_flow import (
    AGGREGATE_FN,
    EXECUTION_KEYS,
    HOLD_FN,
    MERGE_FN,
    keep_fn,
)
from runeworker.engine.barriers import HOLD
from runeworker.engine.state import JOINING, ROOT

# Shared head of every script: the keys (`EXECUTION_KEYS` first), the token and `touch`,
# which gives the branch keys their TTL (`expire`: the hold's instant while a timer holds
# the execution); the barrier functions give theirs and the registry's, a timer's hold the
# start record's, and the scheduler's keys are global.
_HEAD = (
    keep_fn("KEYS[7]")
    + """
local live, done, meta, failctx = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local contexts, timers, hold, barriers = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local started, ended_key = KEYS[9], KEYS[10]
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
  if redis.call('EXISTS', ended_key) == 1 then return true end
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


ADMIT = (
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
if result[1] ~= 0 then
  -- closed: the end is marked in a key of its own too, so that an evicting Redis must take
  -- meta, done and this key before a late message can find the execution lost (`ended`)
  redis.call('SET', ended_key, 1)
  expire(ended_key, ttl)
end
redis.call('HSET', done, token, cmsgpack.pack(result))
touch()
"""
assert HOLD == "hold:"  # the prefix of a hold token, as _ADVANCE_BODY tests it

# ARGV: token, now, ttl, has_leaf, leaf, has_failure, status, reason, failing context,
# children... Reply: that of _ADVANCE_BODY (a replay returns the recorded one), or {3, what}
# when the token finds its execution's state lost and brings no failure (nothing recorded).
ADVANCE = (
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
# `StateStore.settle`). ARGV: those of ADVANCE with max_steps and anew inserted before the
# children (ARGV[10], ARGV[11]). Reply: {'limit', verdict} (nothing recorded), {'stale'},
# {'lost', what}, or {verdict, advance reply...} with verdict replay (the recorded reply),
# cancelled (nothing recorded: a failure closed the execution; a branch still live under a
# failure of a worker before 0.9 is absorbed) or run.
SETTLE = (
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
# Reply: that of ADVANCE. An unknown execution records nothing (no prologue: retiring must not
# open one); a token not live yet is recorded as advanced ({0}), so the advance that would add
# it later skips it.
RETIRE = (
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


# `StateStore.arrive`: admit (as SETTLE), the barrier arrival, the retiring of the merge's
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
ARRIVE = (
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
  barrier = aggregate_barrier(KEYS[11], KEYS[12], barriers, meta, ARGV[8], tonumber(ARGV[9]),
                              ARGV[10] == '1', ARGV[11], token, ttl)
else
  local timeout = tonumber(ARGV[14])
  if verdict == 'replay' then timeout = 0 end  -- a replay never expires the barrier
  barrier = merge_barrier(KEYS[11], KEYS[12], KEYS[13], KEYS[14], KEYS[15], barriers, meta,
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
if #KEYS == 18 then park = ARGV[15] end
if park ~= '' and (state == 'released' or state == 'expired') then
  -- decided: the timer has no job left (`cancel_timer`)
  redis.call('ZREM', KEYS[16], park)
  redis.call('ZREM', KEYS[17], park)
  redis.call('HDEL', KEYS[18], park)
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
      redis.call('HSET', KEYS[18], park, ARGV[16])
      redis.call('ZREM', KEYS[17], park)
      redis.call('ZADD', KEYS[16], due, park)
      local exec_keys = {live, done, meta, failctx, contexts, timers, barriers, started, ended_key}
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
# the KEYS indexes of _HEAD and ARRIVE
assert EXECUTION_KEYS[6:] == ("hold", "barriers", "started", "ended")
# the first item of an advance's reply when the token found its execution's state lost
LOST = 3


# -- the records beside the branch tokens ----------------------------------------------------

# Receipts (runeworker/child/receipts.py): KEYS are the receipts hashes of the ARGV[2] receipts
# to record, then of those to look up; ARGV[3..] the field of each, in the same order. On one
# server only: the keys belong to many executions, hence many slots of a Cluster.
RECEIPTS = """
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
BEGIN = """
local ttl = ARGV[1]
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'NX', 'EX', ttl)
end
return #KEYS
"""

# KEYS: the attempt count, the spared flag; ARGV: TTL. A spared redelivery consumes the flag
# and is not counted (worker drains, `runeworker.child.worker`).
COUNT_ATTEMPT = """
if redis.call('DEL', KEYS[2]) == 1 then
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
"""
