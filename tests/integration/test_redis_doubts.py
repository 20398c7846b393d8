"""Commits in doubt kept in Redis (runeworker/adapters/redis_doubts.py,
runeworker/child/doubts.py) on the real services: the lease decides who may take a kept
commit, and what one broker packed another publishes again byte for byte."""

from __future__ import annotations

import uuid

import pika
import pytest
import redis

from runeworker.adapters.amqp import RESENT_HEADER, Broker
from runeworker.adapters.redis_state import RedisStore
from runeworker.child.doubts import DoubtBook

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> RedisStore:
    return RedisStore.from_url(redis_url, prefix=redis_prefix, ttl_seconds=60)


def test_a_kept_commit_is_taken_once_its_lease_ends_and_by_one_taker(
    store: RedisStore, redis_url: str, redis_prefix: str
) -> None:
    doubts = store.doubts
    doubts.keep("a", b"packed a", HOUR_MS)
    doubts.keep("b", b"packed b", 0)  # its lease ends at once
    assert doubts.take(HOUR_MS, 16) == [("b", b"packed b")]
    assert doubts.take(HOUR_MS, 16) == []  # b is the first taker's now, a still a's
    assert doubts.renew("a", 0) is True
    assert doubts.renew("gone", HOUR_MS) is False
    assert doubts.take(HOUR_MS, 16) == [("a", b"packed a")]
    client = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in client.scan_iter(match=redis_prefix + "*"))
    assert keys == [f"{redis_prefix}{{doubts}}:leases", f"{redis_prefix}{{doubts}}:messages"]
    assert all(client.ttl(k) == -1 for k in keys)  # the only copy: never expires
    doubts.drop("a")
    doubts.drop("b")
    assert list(client.scan_iter(match=redis_prefix + "*")) == []
    client.close()


def test_a_lease_that_is_not_a_number_has_ended(
    store: RedisStore, redis_url: str, redis_prefix: str
) -> None:
    store.doubts.keep("a", b"packed", HOUR_MS)
    client = redis.Redis.from_url(redis_url)
    client.hset(f"{redis_prefix}{{doubts}}:leases", "a", "garbage")
    client.close()
    assert store.doubts.take(HOUR_MS, 16) == [("a", b"packed")]


def test_take_stops_at_its_limit(store: RedisStore) -> None:
    for i in range(5):
        store.doubts.keep(f"d{i}", b"x", 0)
    assert len(store.doubts.take(HOUR_MS, 2)) == 2
    assert len(store.doubts.take(HOUR_MS, 16)) == 3


def test_a_book_keeps_renews_and_drops_its_commit(store: RedisStore) -> None:
    book, other = DoubtBook(store.doubts, lease=3600), DoubtBook(store.doubts, lease=3600)
    book.in_doubt(b"messages")
    assert book.open and other.orphans(0) == []  # leased to `book`
    book.renew()
    book.resolved()
    assert not book.open
    store.doubts.keep("dead-child", b"theirs", 0)
    assert book.orphans(0) == [("dead-child", b"theirs")]
    assert book.orphans(1) == []  # at most one look every ADOPT_EVERY
    book.adopted("dead-child")
    assert store.doubts.take(0, 16) == []


def test_what_one_broker_packed_another_publishes_again_byte_for_byte(amqp_url: str) -> None:
    queue = f"doubt.packed.{uuid.uuid4().hex[:8]}"
    side = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = side.channel()
    channel.queue_declare(queue)
    first, second = Broker([amqp_url]), Broker([amqp_url])
    body = b'{"step": "outcome", "bytes": "\xc3\xa9"}'
    headers = {"x-kept": "yes", "n": 3}
    first.in_doubt.append(
        ("", queue, body, pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                               headers=headers))
    )  # fmt: skip
    packed = first.export_doubt()
    second.connect()
    try:
        assert second.import_doubt(packed) == 1
        assert second.resend_in_doubt() == 1
    finally:
        second.close()
    method, props, got = channel.basic_get(queue, auto_ack=True)
    assert method is not None and got == body
    assert props.content_type == "application/json" and props.delivery_mode == 2
    assert props.headers == {**headers, RESENT_HEADER: True}
    with pytest.raises(ValueError, match="not a packed commit in doubt"):
        second.import_doubt(b"\x93garbage")
    channel.queue_delete(queue)
    side.close()
