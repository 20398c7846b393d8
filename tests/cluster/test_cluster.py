"""The scale-out suite (issue 15): real clustered servers on loopback, started by
tests/cluster/servers.py, and `runeworker serve` supervisors playing separate hosts.

Run it with `pytest -m cluster tests/cluster`. Size: RUNEWORKER_CLUSTER_WORKFLOWS workflows
per scenario, 60 by default (the CI sample); the figures in deploy/SCALING.md come from
`RUNEWORKER_CLUSTER_WORKFLOWS=1000 python -m tests.cluster.report`.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from runeworker.adapters.redis_flow import _CLAIM
from runeworker.adapters.redis_state import RedisStore
from runeworker.config import RedisConfig
from tests.integration.holdcase import timer_holds_its_execution

from .scenarios import SCENARIOS, SHARED_STATE_KINDS
from .servers import ClusterRedis

_UNIT = str(Path(__file__).resolve().parent.parent / "unit")
if _UNIT not in sys.path:
    sys.path.insert(0, _UNIT)

from statecases import CASES, FLOW_CASES, LOST_CASES, redis_evictor  # noqa: E402

pytestmark = pytest.mark.cluster

WORKFLOWS = int(os.environ.get("RUNEWORKER_CLUSTER_WORKFLOWS", "60"))


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[ClusterRedis]:
    cluster = ClusterRedis()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_store(redis_cluster: ClusterRedis) -> Iterator[RedisStore]:
    prefix = f"rwcluster:{uuid.uuid4().hex[:10]}:"
    store = RedisStore.from_config(RedisConfig(url=redis_cluster.url, cluster=True,
                                               key_prefix=prefix, key_ttl=600))  # fmt: skip
    yield store
    store.close()


@pytest.mark.parametrize("name", sorted(CASES) + sorted(FLOW_CASES))
def test_every_state_case_runs_on_a_redis_cluster(name: str, cluster_store: RedisStore) -> None:
    """The StateStore table (branch tokens, split aggregation, merges, wait timers) on 3
    masters: a script or MULTI whose keys span two slots would fail with CROSSSLOT."""
    (CASES.get(name) or FLOW_CASES[name])(cluster_store)


@pytest.mark.parametrize("name", sorted(LOST_CASES))
def test_every_state_lost_case_runs_on_a_redis_cluster(
    name: str, cluster_store: RedisStore
) -> None:
    """State lost to eviction (runeworker/engine/state.py `StateLost`) told on 3 masters as
    on one Redis: an execution's keys are deleted as eviction would, on the master holding
    their slot (they share their hash tag)."""
    client: Any = cluster_store._client  # a RedisCluster: scans every master
    prefix = cluster_store._prefix

    LOST_CASES[name](cluster_store, redis_evictor(client, prefix))


def test_the_scheduler_keys_share_one_slot_only_with_their_tag(
    redis_cluster: ClusterRedis,
) -> None:
    """Why the scheduler keys are `{scheduler}:*` on a cluster: untagged, the claim script's
    three keys hash to different slots and the server refuses it."""
    tagged = [f"p:{{scheduler}}:{k}" for k in ("timers", "processing", "payloads")]
    untagged = [f"p:scheduler:{k}" for k in ("timers", "processing", "payloads")]
    client = redis.RedisCluster.from_url(redis_cluster.url)
    try:
        assert len({client.keyslot(k) for k in tagged}) == 1
        assert len({client.keyslot(k) for k in untagged}) == 3
        node = client.get_node_from_key(untagged[0])
        plain = redis.Redis(host=node.host, port=node.port)
        with pytest.raises(redis.ResponseError, match=r"don't hash to the same slot|MOVED"):
            plain.eval(_CLAIM, 3, *untagged, 0, 10, 100)
        plain.close()
    finally:
        client.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str) -> None:
    figures = SCENARIOS[name](WORKFLOWS)
    excused = SHARED_STATE_KINDS if name == "sentinel-kill" else ()
    assert not figures.problems(excused=excused), figures.explain()
    assert figures.figures.workflows == WORKFLOWS


def test_a_timer_holds_its_execution_on_a_cluster(cluster_store: RedisStore) -> None:
    """The owner's part of a schedule runs in the execution's slot (`_OWN`) and holds its keys
    as on one server."""
    timer_holds_its_execution(cluster_store, cluster_store._client, 600)


def test_receipts_of_executions_on_several_masters(cluster_store: RedisStore) -> None:
    """The receipts of a batch belong to executions in different slots: on a Cluster they are
    written and read with a pipeline, not one script (which would fail with CROSSSLOT)."""
    receipts = [(f"ex-{i}", f"workflow.execution|t{i}|n") for i in range(12)]
    assert cluster_store.receipts(receipts[:6], receipts) == [True] * 6 + [False] * 6
    assert cluster_store.receipts(receipts[6:], receipts) == [True] * 12


def test_commits_in_doubt_are_kept_and_taken_on_a_cluster(cluster_store: RedisStore) -> None:
    """The commits in doubt (runeworker/adapters/redis_doubts.py) live in two hashes of one
    slot (`{doubts}`): every script of them runs on a Cluster."""
    doubts = cluster_store.doubts
    doubts.keep("a", b"packed", 0)
    assert doubts.renew("a", 0) is True
    assert doubts.take(60_000, 16) == [("a", b"packed")]
    doubts.drop("a")
    assert doubts.take(0, 16) == [] and doubts.renew("a", 0) is False
