"""The pieces of `runeworker bench --node http` that need no broker: the loopback target, the
chain of http nodes (it runs in-process to size the floor's messages) and the floor's caller."""

from __future__ import annotations

import json
import urllib.request

import msgspec
import pytest

from runeworker.bench.floor import _Target
from runeworker.bench.target import ANSWER, HttpTarget
from runeworker.bench.workload import Workload, http_chain_definition


def test_target_answers_every_get_on_loopback_and_counts_them() -> None:
    with HttpTarget(0.0) as target:
        assert target.url.startswith("http://127.0.0.1:")
        for _ in range(3):
            with urllib.request.urlopen(target.url, timeout=10) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "application/json"
                assert resp.read() == ANSWER
        assert target.requests == 3


def test_target_refuses_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="0 or more seconds"):
        HttpTarget(-0.1)


def test_target_releases_its_port_on_close() -> None:
    target = HttpTarget(0.0)
    with target:
        url = target.url
    with pytest.raises(OSError, match=r"[Cc]onnection refused"):
        urllib.request.urlopen(url, timeout=2)


def test_http_chain_is_k_http_nodes_each_calling_the_url_in_order() -> None:
    tree = json.loads(http_chain_definition(4, "http://127.0.0.1:9/"))
    assert [n["id"] for n in tree["nodes"]] == ["n1", "n2", "n3", "n4"]
    assert {n["type"] for n in tree["nodes"]} == {"http"}
    assert {n["parameters"]["url"] for n in tree["nodes"]} == {"http://127.0.0.1:9/"}
    pairs = [(e["src"], e["dst"]) for e in tree["edges"]]
    assert pairs == [("n1", "n2"), ("n2", "n3"), ("n3", "n4")]


def test_http_workload_runs_once_in_process_to_size_every_message() -> None:
    with HttpTarget(0.0) as target:
        work = Workload.build(3, 1024, http_url=target.url)
        assert target.requests == 3  # the sizing run called the target once per node
    assert work.http_url == target.url
    assert len(work.sizes.messages) == len(work.sizes.running) == len(work.sizes.success) == 3
    # each message carries the previous nodes' outputs, so it grows along the chain
    assert work.sizes.messages == sorted(work.sizes.messages)
    assert work.sizes.messages[0] < work.sizes.messages[-1]
    start = msgspec.json.decode(work.start("wf-1"))
    assert start["execution_id"] == "wf-1"
    assert start["current_node"] == "n1"


def test_log_workload_keeps_no_target() -> None:
    assert Workload.build(2, 1024).http_url == ""


def test_floor_target_gets_the_url_over_one_kept_alive_connection() -> None:
    with HttpTarget(0.0) as target:
        caller = _Target(target.url)
        try:
            caller.call()
            first = caller.conn
            caller.call()
            assert caller.conn is first  # HTTP/1.1: the connection is reused
        finally:
            caller.close()
        assert target.requests == 2
