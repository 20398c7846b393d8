"""The scale-out settings (issue 15): several broker nodes, the queue type, Redis Sentinel and
Redis Cluster; how check-config explains them and masks their passwords; the broker endpoint
over several nodes; the poison count a quorum queue keeps (`x-delivery-count`)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pika
import pytest
from stubbroker import StubBroker, StubStore
from test_worker_loop import QUEUE, Crash, crashes, make_worker, message, run_until_idle

from runeworker.adapters.amqp import Broker, Endpoint, delivery_count, typed_queues
from runeworker.adapters.redis_connect import redis_where
from runeworker.adapters.redis_state import RedisStore
from runeworker.commands.check_config import check_config
from runeworker.config import RedisConfig, load_config, masked
from runeworker.errors import BrokerError, ConfigError

NODES = ["amqp://rune:pw-a1@a:5672/", "amqp://rune:pw-b2@b:5672/", "amqp://rune:pw-c3@c:5672/"]
QUORUM = {"x-queue-type": "quorum"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runeworker.toml"
    path.write_text(text)
    return path


# -- config ---------------------------------------------------------------------------------


def test_defaults_keep_one_broker_classic_queues_and_one_redis() -> None:
    cfg = load_config(None, env={})
    assert cfg.broker.urls == [] and cfg.broker.queue_type == "classic"
    assert cfg.redis.sentinels == [] and cfg.redis.service_name == "" and not cfg.redis.cluster


def test_urls_from_the_file_and_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, f"[broker]\nurls = {json.dumps(NODES)}\nqueue_type = 'quorum'\n")
    cfg = load_config(path, env={})
    assert cfg.broker.urls == NODES and cfg.broker.queue_type == "quorum"
    env = {"RUNEWORKER_BROKER_URLS": ", ".join(NODES[:2])}
    assert load_config(None, env=env).broker.urls == NODES[:2]


def test_url_and_urls_are_one_or_the_other(tmp_path: Path) -> None:
    path = write(tmp_path, f"[broker]\nurls = {json.dumps(NODES)}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={"RABBITMQ_URL": "amqp://x:secret-x@h/"})
    assert str(err.value) == (
        f"broker.urls ({path}) and broker.url (RABBITMQ_URL) are both set: set broker.urls "
        "for a cluster's nodes or broker.url for one, not both"
    )
    assert "secret-x" not in str(err.value)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"RUNEWORKER_BROKER_URLS": "amqp://a/,http://u:pw-9@b/"},
         "RUNEWORKER_BROKER_URLS: [1]: expected a URL starting with amqp:// or amqps://, "
         "got 'http://u:***@b/'"),
        ({"RUNEWORKER_BROKER_QUEUE_TYPE": "mirrored"},
         "RUNEWORKER_BROKER_QUEUE_TYPE: expected one of 'classic', 'quorum', got 'mirrored'"),
        ({"RUNEWORKER_REDIS_CLUSTER": "maybe"},
         "RUNEWORKER_REDIS_CLUSTER: expected true or false, got 'maybe'"),
        ({"RUNEWORKER_REDIS_SENTINELS": "h:1,nohost"},
         "RUNEWORKER_REDIS_SENTINELS: [1]: expected host:port or "
         "redis://[user:password@]host:port, got 'nohost'"),
        ({"RUNEWORKER_REDIS_SENTINELS": "h:26379"},
         "redis.sentinels (RUNEWORKER_REDIS_SENTINELS) needs redis.service_name, the master's "
         "name"),
        ({"RUNEWORKER_REDIS_SERVICE_NAME": "m"},
         "redis.service_name (RUNEWORKER_REDIS_SERVICE_NAME) is only used with redis.sentinels"),
        ({"RUNEWORKER_REDIS_SENTINELS": "h:26379", "RUNEWORKER_REDIS_SERVICE_NAME": "m",
          "RUNEWORKER_REDIS_CLUSTER": "true"},
         "redis.sentinels (RUNEWORKER_REDIS_SENTINELS) and redis.cluster "
         "(RUNEWORKER_REDIS_CLUSTER) are both set: Redis Sentinel and Redis Cluster are two "
         "different deployments; choose one"),
        ({"RUNEWORKER_REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:6379/3"},
         "redis.cluster (RUNEWORKER_REDIS_CLUSTER): a Redis Cluster has database 0 only"),
        ({"RUNEWORKER_REDIS_CLUSTER": "yes", "REDIS_URL": "unix:///run/redis.sock"},
         "redis.url must be redis:// or rediss:// with sentinels or a cluster"),
    ],
)  # fmt: skip
def test_bad_scale_settings_are_named(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env=env)
    assert problem in str(err.value).splitlines()
    assert "pw-9" not in str(err.value)


def test_booleans_from_the_environment() -> None:
    for text, value in (("true", True), ("FALSE", False), ("1", True), ("no", False)):
        assert load_config(None, env={"RUNEWORKER_REDIS_CLUSTER": text}).redis.cluster is value


def test_masked_hides_the_passwords_in_lists() -> None:
    env = {"RUNEWORKER_BROKER_URLS": ",".join(NODES),
           "RUNEWORKER_REDIS_SENTINELS": "h:26379,redis://:sent-pw@s2:26379",
           "RUNEWORKER_REDIS_SERVICE_NAME": "m"}  # fmt: skip
    tree = masked(load_config(None, env=env))
    assert tree["broker"]["urls"] == [u.replace(u[12:17], "***") for u in NODES]
    assert tree["redis"]["sentinels"] == ["h:26379", "redis://:***@s2:26379"]
    assert not {"pw-a1", "pw-b2", "pw-c3", "sent-pw"} & set(json.dumps(tree).split('"'))


def test_check_config_says_which_url_and_that_queue_types_must_agree(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    path = write(tmp_path, f"[broker]\nurls = {json.dumps(NODES)}\nqueue_type = 'quorum'\n"
                 "[redis]\nurl = 'redis://:redis-pw@x/2'\nsentinels = ['s1:26379']\n"
                 "service_name = 'rw'\n")  # fmt: skip
    assert check_config(str(path), {}) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("# ") and ":" in line][1:]
    assert notes == [
        "# broker: broker.urls, 3 node(s) tried in order: amqp://rune:***@a:5672/, "
        "amqp://rune:***@b:5672/, amqp://rune:***@c:5672/ (broker.url is not used)",
        "# queues: workflow.execution and workflow.resume (and runeworker's "
        "runeworker.dead-letter) are declared quorum (x-queue-type); a queue's type must agree "
        "on both sides: Rune's API must declare workflow.execution and workflow.resume quorum "
        "too, or the second declare fails with PRECONDITION_FAILED",
        "# redis: Sentinel master 'rw' via 1 sentinel(s); redis.url gives its credentials and "
        "database, not its address",
        "# limits: a node runs at most worker.timeout 60 s (then its child is killed as hung); "
        "http, smtp, integration, edit, filter and sort nodes (and a switch or "
        "conditional of more than 8 rules or operands) stop at worker.node_timeout 48 s (80 % "
        "of worker.timeout, as 0 asks), an agent at agent.total_timeout 48 s (80 % of "
        "worker.timeout, as 0 asks)",
    ]
    assert "pw-a1" not in out and "redis-pw" not in out


def test_check_config_of_the_defaults_names_the_one_broker_and_classic_queues(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    for var in ("RABBITMQ_URL", "REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    assert check_config(None, {}) == 0
    out = capsys.readouterr().out
    assert "# broker: broker.url amqp://guest:***@127.0.0.1:5672/ (broker.urls is empty)" in out
    assert (
        "# queues: workflow.execution and workflow.resume are classic, declared without "
        "arguments as Rune's API declares them; a queue's type must agree on both sides"
    ) in out
    assert "# redis: one server, redis://127.0.0.1:6379/0" in out


def test_check_config_says_the_node_time_limits_a_zero_stands_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RUNEWORKER_CONFIG", raising=False)
    overrides = {"worker.timeout": 10.0, "worker.node_timeout": 7.5}
    assert check_config(None, overrides) == 0
    out = capsys.readouterr().out
    assert "node_timeout = 7.5" in out and "total_timeout = 0.0" in out  # the file's values
    assert (
        "# limits: a node runs at most worker.timeout 10 s (then its child is killed as hung); "
        "http, smtp, integration, edit, filter and sort nodes (and a switch or "
        "conditional of more than 8 rules or operands) stop at worker.node_timeout 7.5 s (as "
        "set), an agent at agent.total_timeout 8 s (80 % of worker.timeout, as 0 asks)"
    ) in out


# -- the broker over several nodes ----------------------------------------------------------


def test_endpoint_gives_pika_every_node_in_order() -> None:
    cfg = load_config(None, env={"RUNEWORKER_BROKER_URLS": ",".join(NODES)})
    endpoint = Endpoint.of(cfg.broker)
    params = endpoint.parameters("runeworker")
    assert [(p.host, p.port) for p in params] == [("a", 5672), ("b", 5672), ("c", 5672)]
    assert all(p.connection_attempts == 3 and p.retry_delay == 1.0 for p in params)
    assert endpoint.where == ", ".join(u.replace(u[12:17], "***") for u in NODES)
    assert Endpoint.of(load_config(None, env={}).broker).urls == (
        "amqp://guest:guest@127.0.0.1:5672/",
    )


def test_endpoint_errors_mask_every_nodes_password() -> None:
    endpoint = Endpoint(tuple(NODES))
    error = endpoint.error("cannot connect", OSError(f"refused by {NODES[1]} pw-c3"))
    assert "pw-a1" not in str(error) and "pw-b2" not in str(error) and "pw-c3" not in str(error)
    assert str(error).startswith("cannot connect at amqp://rune:***@a:5672/, ")


def test_connect_tries_the_next_node_when_one_is_down() -> None:
    """pika walks the list: a node that refuses is skipped, and every refusal is reported."""
    dead = ["amqp://guest:guest@127.0.0.1:1/", "amqp://guest:guest@127.0.0.1:2/"]
    with pytest.raises(Exception) as err:
        Endpoint(tuple(dead), connection_attempts=1, retry_delay=0).connect("t")
    assert "127.0.0.1:1" in str(err.value) and "127.0.0.1:2" in str(err.value)


def test_quorum_types_the_work_queues_and_the_dead_letter_queue_only() -> None:
    classic = load_config(None, env={}).broker
    assert typed_queues(classic) == {} and Broker.of(classic).typed_queues == {}
    quorum = load_config(None, env={"RUNEWORKER_BROKER_QUEUE_TYPE": "quorum"}).broker
    assert Broker.of(quorum).typed_queues == {
        "workflow.execution": QUORUM,
        "workflow.resume": QUORUM,
        "runeworker.dead-letter": QUORUM,
    }


def test_delivery_count_reads_the_quorum_header() -> None:
    assert delivery_count({"x-delivery-count": 2}) == 2
    assert delivery_count({}) is None
    assert delivery_count({"x-delivery-count": True}) is None
    assert delivery_count({"x-delivery-count": "2"}) is None


QUORUM_QUEUES = {"broker.queue_type": "quorum"}


@pytest.mark.parametrize("count", [0, 1, 99])
def test_on_a_classic_queue_a_publishers_delivery_count_decides_nothing(
    broker: StubBroker, store: StubStore, count: int
) -> None:
    """A classic queue keeps no count, but it keeps the headers a publisher sets: an
    `x-delivery-count` that came with the message must neither spare a message that kills its
    child from the poison count (0 forever) nor make a healthy one poison at once."""
    crashes.clear()
    body = message("ex-poison", node_type="test.crash")
    broker.enqueue(QUEUE, body, headers={"x-delivery-count": count})
    for _ in range(3):
        worker = make_worker(broker, store)
        broker.on_idle = worker.stop  # refused early: the loop goes idle instead of crashing
        with pytest.raises(Crash):
            worker.run()
        broker.close()  # the child died: its connection goes, the delivery comes back
    worker = make_worker(broker, store)
    broker.on_idle = worker.stop
    try:
        worker.run()
    except Crash:
        pytest.fail("run a fourth time: the poison count was skipped")
    assert crashes == ["ex-poison"] * 3
    [copy] = broker.waiting("runeworker.dead-letter")
    assert copy.headers["x-runeworker-reason"] == (
        "message was delivered 3 times without completing; poison"
    )


def test_a_quorum_queues_delivery_count_decides_poison_without_redis(
    broker: StubBroker, store: StubStore
) -> None:
    """On a quorum queue the broker counts the deliveries: the worker trusts the header and
    asks Redis for nothing (the classic path's count stays untouched)."""
    body = message("ex-q")
    broker.enqueue(QUEUE, body, headers={"x-delivery-count": 3}, redelivered=True)
    run_until_idle(make_worker(broker, store, settings=QUORUM_QUEUES), broker)
    [tx] = [tx for tx in broker.committed if tx.acked]
    [copy] = tx.to("runeworker.dead-letter")
    assert copy.headers["x-runeworker-reason"] == (
        "message was delivered 3 times without completing; poison"
    )
    assert store.count_attempt(body) == 1  # the first count: the worker never asked


def test_a_quorum_redelivery_under_the_limit_runs(broker: StubBroker, store: StubStore) -> None:
    broker.enqueue(QUEUE, message("ex-r"), headers={"x-delivery-count": 1}, redelivered=True)
    run_until_idle(make_worker(broker, store, settings=QUORUM_QUEUES), broker)
    assert broker.waiting("runeworker.dead-letter") == []
    assert [json.loads(m.body)["status"] for m in broker.waiting("workflow.completion")] == [
        "completed"
    ]


# -- Redis topologies -----------------------------------------------------------------------


def test_redis_where_names_each_topology_masked() -> None:
    one = RedisConfig(url="redis://:pw@h:6379/0")
    assert redis_where(one) == "redis://:***@h:6379/0"
    sentinel = RedisConfig(sentinels=["s1:26379", "redis://:spw@s2:26379"], service_name="m")
    assert redis_where(sentinel) == ("master 'm' of the sentinels s1:26379, redis://:***@s2:26379")
    assert redis_where(RedisConfig(url="redis://:pw@n1:7000/0", cluster=True)) == (
        "the cluster of redis://:***@n1:7000/0"
    )


def test_a_sentinel_store_is_made_without_reaching_any_server() -> None:
    """The pool asks the sentinels for the master at the first command, so a child can be
    made while they are down (it then waits, as for a single Redis)."""
    cfg = RedisConfig(url="redis://:master-pw@ignored:6379/4", sentinels=["127.0.0.1:1"],
                      service_name="m", socket_timeout=0.2)  # fmt: skip
    store = RedisStore.from_config(cfg)
    try:
        kwargs = store._client.connection_pool.connection_kwargs
        assert (kwargs["password"], kwargs["db"]) == ("master-pw", 4)
        assert store.ping() is False
    finally:
        store.close()


def test_the_scheduler_keys_stay_untagged_off_a_cluster() -> None:
    store = RedisStore.from_config(RedisConfig(key_prefix="p:"))
    try:
        assert store._timer_keys() == ["p:scheduler:timers", "p:scheduler:processing",
                                       "p:scheduler:payloads"]  # fmt: skip
    finally:
        store.close()


def test_pika_accepts_the_list() -> None:
    """pika's BlockingConnection takes a sequence of parameters (the list `connect` passes)."""
    assert "sequence" in (pika.BlockingConnection.__init__.__doc__ or "")


def test_a_connect_with_a_beat_tries_each_node_once_and_reports_each() -> None:
    """A worker child connects with `before_each` (its beat between tries): each node is tried
    once, in order, whatever `connection_attempts` says (the child retries with its own
    backoff), and every node's failure is named, its password masked."""
    dead = ["amqp://guest:pw-a1@127.0.0.1:1/", "amqp://guest:pw-b2@127.0.0.1:2/"]
    beats: list[int] = []
    endpoint = Endpoint(tuple(dead), connection_attempts=5, retry_delay=10)
    with pytest.raises(BrokerError) as err:
        endpoint.connect("t", lambda: beats.append(1) is None)
    assert beats == [1, 1]
    assert "127.0.0.1:1/:" in str(err.value) and "127.0.0.1:2/:" in str(err.value)
    assert "pw-a1" not in str(err.value) and "pw-b2" not in str(err.value)


def test_a_connect_with_a_beat_stops_when_asked() -> None:
    endpoint = Endpoint(("amqp://guest:guest@127.0.0.1:1/",))
    with pytest.raises(BrokerError, match="stopped while connecting"):
        endpoint.connect("t", lambda: False)


def test_a_broker_that_never_answers_costs_one_handshake_timeout_per_try() -> None:
    """A broker that takes the TCP connection and never speaks AMQP: one try ends after
    `handshake_timeout` as a BrokerError (pika raises its connector's own exception there)."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        url = f"amqp://guest:guest@127.0.0.1:{mute.getsockname()[1]}/"
        endpoint = Endpoint((url,), handshake_timeout=0.5)
        began = time.monotonic()
        with pytest.raises(BrokerError, match="cannot connect to RabbitMQ"):
            endpoint.connect("t", lambda: True)
        assert time.monotonic() - began < 5.0  # pika's default alone: 15 s
        with pytest.raises(BrokerError, match="cannot connect to RabbitMQ"):
            endpoint.connect("t")  # pika's own attempts: also a BrokerError, not a crash
