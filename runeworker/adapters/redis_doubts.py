"""`DoubtStore` over Redis (runeworker/child/doubts.py): the commits in doubt of every child,
in two hashes that share one hash slot (a Redis Cluster keeps them on one node):

    {prefix}{doubts}:messages   hash  doubt id -> the messages, as the broker packed them
    {prefix}{doubts}:leases     hash  doubt id -> when its lease ends (epoch ms)

They have no TTL: they hold the only copy of published steps until a child publishes them
again. Lease times come from the clocks of the children's hosts; a lease is a minute or more,
far beyond the skew of clocks kept by NTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from runeworker.errors import StateError

# KEYS: messages, leases. ARGV: id, packed, lease end (ms).
_KEEP = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""

# KEYS: messages, leases. ARGV: id, lease end (ms). Reply: 1 renewed, 0 nothing kept.
_RENEW = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: messages, leases. ARGV: id.
_DROP = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# KEYS: messages, leases. ARGV: now (ms), lease (ms), limit. Reply: id, packed, id, packed...
# of at most `limit` kept commits whose lease ended, each leased anew from now.
_TAKE = """
local now, lease, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  if #out >= 2 * limit then break end
  if (tonumber(redis.call('HGET', KEYS[2], id) or '0') or 0) <= now then
    redis.call('HSET', KEYS[2], id, now + lease)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[1], id)
  end
end
return out
"""


class RedisDoubts:
    """The commits in doubt kept on the Redis of `client` (a store's own client)."""

    def __init__(
        self, client: Any, prefix: str, error: Callable[[str, RedisError], StateError]
    ) -> None:
        """`error(what, exc)` turns a RedisError into the store's StateError (its URL masked)."""
        self._keys = [f"{prefix}{{doubts}}:messages", f"{prefix}{{doubts}}:leases"]
        self._error = error
        self._keep = client.register_script(_KEEP)
        self._renew = client.register_script(_RENEW)
        self._take = client.register_script(_TAKE)
        self._drop = client.register_script(_DROP)

    def keep(self, doubt_id: str, packed: bytes, lease_ms: int) -> None:
        self._call("keep a commit in doubt", self._keep, [doubt_id, packed, _now_ms() + lease_ms])

    def renew(self, doubt_id: str, lease_ms: int) -> bool:
        args = [doubt_id, _now_ms() + lease_ms]
        return bool(self._call("renew a commit in doubt", self._renew, args))

    def drop(self, doubt_id: str) -> None:
        self._call("drop a commit in doubt", self._drop, [doubt_id])

    def take(self, lease_ms: int, limit: int) -> list[tuple[str, bytes]]:
        reply = self._call("take commits in doubt", self._take, [_now_ms(), lease_ms, limit])
        return [(bytes(reply[i]).decode(), bytes(reply[i + 1])) for i in range(0, len(reply), 2)]

    def _call(self, what: str, script: Any, args: list[Any]) -> Any:
        try:
            return script(keys=self._keys, args=args)
        except RedisError as exc:
            raise self._error(what, exc) from exc


def _now_ms() -> int:
    return int(time.time() * 1000)
