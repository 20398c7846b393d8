"""The message fuzzer (tests/fuzz/README.md) in the normal suite: a small seeded sample through a
real `runeworker serve` on RabbitMQ and Redis, and the harness's own parts without them.

Size: RUNEWORKER_FUZZ_CASES cases (200 by default, about half a minute) of run
RUNEWORKER_FUZZ_SEED (1); a bigger run: `python -m tests.fuzz.run --cases 4000 --seed 3`."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from runeworker.config import load_config, to_node_settings

from . import corpus, mutate
from .harness import (
    DEAD,
    STATUS,
    Case,
    Checker,
    Got,
    Report,
    Run,
    _unreadable,
    build_case,
    fuzz,
    read_body,
)
from .loopback import Loopback

CASES = int(os.environ.get("RUNEWORKER_FUZZ_CASES", "200"))
SEED = int(os.environ.get("RUNEWORKER_FUZZ_SEED", "1"))


@pytest.mark.integration
@pytest.mark.e2e
def test_fuzzed_messages_keep_every_promise() -> None:
    report = fuzz(SEED, CASES)
    assert len(report.cases) == CASES
    assert not report.violations, report.explain()
    # the sample reached every kind of outcome: it is not all refused, nor all run
    assert {"completed", "failed", "halted", "dead-lettered"} <= set(report.outcomes), (
        report.outcomes
    )


# -- the harness's parts --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds() -> Iterator[list[corpus.Seed]]:
    loopback = Loopback()
    try:
        yield corpus.seeds(loopback.url, 9, to_node_settings(load_config(None, env={})))
    finally:
        loopback.close()


ENV = mutate.Env("", [], 9)


def test_the_seeds_hold_start_and_mid_workflow_messages_of_every_workflow(
    seeds: list[corpus.Seed],
) -> None:
    workflows = {s.name.split("/")[0] for s in seeds}
    shipped = {p.stem for p in corpus.EXAMPLES.glob("*.json")}
    assert workflows == shipped | {p.stem for p in corpus.TEMPLATES.glob("*.json")}
    mid = [s.tree for s in seeds if s.mid]
    assert any(t.get("lineage_stack") for t in mid)  # split branches
    assert any(t["current_node"] == "join" and t.get("from_node") for t in mid)  # merge arrivals
    assert any(t["current_node"] == "after" for t in mid)  # after a resumed wait
    # every credential's value is the placeholder a case replaces with its own secret
    assert sum(json.dumps(s.tree).count(corpus.PLACEHOLDER) for s in seeds) > len(seeds)


def test_a_case_is_rebuilt_byte_for_byte_from_its_seed_and_number(
    seeds: list[corpus.Seed],
) -> None:
    for n in (0, 7, 31, 64):
        assert build_case(5, n, seeds, ENV).body == build_case(5, n, seeds, ENV).body
    assert build_case(5, 1, seeds, ENV).body != build_case(6, 1, seeds, ENV).body


def test_every_operator_applies(seeds: list[corpus.Seed]) -> None:
    """The first operator of case n is OPERATORS[(n + seed) % len]: each one is taken."""
    for n in range(len(mutate.OPERATORS)):
        case = build_case(0, n, seeds, ENV)
        assert case.changes, mutate.OPERATORS[n]
        assert corpus.secret_of(n) in case.secret


def test_the_encoder_writes_what_the_standard_one_cannot() -> None:
    tree = mutate.Obj([("a", 1), ("a", mutate.Lit(b"1e999")), (mutate.Lit(b'"\\u0062"'), "\x00")])
    assert mutate.dumps(tree) == b'{"a":1,"a":1e999,"\\u0062":"\\u0000"}'
    assert mutate.dumps({"k": [None, True, 1.5, "é"]}) == '{"k":[null,true,1.5,"é"]}'.encode()


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"workflow_id":"w","execution_id":"e","current_node":"a"}', "ids"),
        (b'{"workflow_id":"w","execution_id":"e","x":{"v":NaN}}', "ids"),  # below the top
        (b'{"workflow_id":"w","execution_id":"e","v":NaN}', "unsure"),  # at the top
        (b'{"workflow_id":"w","execution_id":"e\\u0000"}', "none"),  # no execution can have it
        (b'{"workflow_id":"w","execution_id":"e\\udc00"}', "none"),  # no text can hold it
        (b'{"workflow_id":"w","execution_id":"e","current_node":"\xff"}', "unsure"),
        (b'{"workflow_id":"w","execution_id":""}', "none"),
        (b'{"workflow_id":"w","execution_id":"e"', "unsure"),  # truncated
        (b'["w"]', "none"),
        (b"", "unsure"),
    ],
)
def test_reading_a_body_independently_of_the_worker(body: bytes, kind: str) -> None:
    assert read_body(body, "s3cret").kind == kind


def test_a_secret_outside_its_credentials_is_not_held_against_the_worker() -> None:
    node = {"credentials": {"values": {"t": "s3cret!"}}}
    inside = {"workflow_id": "w", "execution_id": "e", "workflow_definition": {"nodes": [node]}}
    assert read_body(json.dumps(inside).encode(), "s3cret").confined
    outside = {**inside, "accumulated_context": {"$x": "s3cret!"}}
    assert not read_body(json.dumps(outside).encode(), "s3cret").confined


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a":"ok \xc3\xa9"}', ""),
        (b'{"a":"\xe9"}', "invalid UTF-8"),
        (b'{"a":"\\ud800"}', "lone surrogate"),
        (b'{"a":NaN}', "not JSON"),
    ],
)
def test_what_no_rune_party_can_read_is_named(raw: bytes, problem: str) -> None:
    found = _unreadable(raw)
    assert (problem in found) if problem else found == ""


def _case(index: int, body: bytes) -> Case:
    secret = corpus.secret_of(index)
    return Case(
        index, "test", [mutate.Change("test", ["x"])], body, secret, read_body(body, secret)
    )


def _observed(directory: Path, cases: list[Case]) -> Run:
    """The observations of a run, without its services: one child, nothing received yet."""
    run = Run.__new__(Run)
    run.log_path = directory / "serve.log"
    run.log_path.write_text("spawned child 1\n")
    run.spawned, run.log_seen = ["1"], 0
    run.got, run.completions = defaultdict(list), defaultdict(list)
    run.dead, run.statuses, run.scanned = defaultdict(list), defaultdict(list), defaultdict(int)
    run.dead_of, run.bodies = set(), Counter(c.body for c in cases)
    run.queues = defaultdict(set, {c.body: {c.queue} for c in cases})
    run.timers = lambda execution_id: 0  # type: ignore[method-assign]
    return run


def test_the_checker_reports_a_leak_a_traceback_and_a_lost_message(tmp_path: Path) -> None:
    """The checks can fail: a worker that leaked a planted secret in a status, wrote a traceback
    into a dead-letter reason, completed an execution twice and dead-lettered nothing for an
    unreadable body."""
    secret = corpus.secret_of(3)
    good = {"workflow_id": "w", "execution_id": "e-3", "workflow_definition": {"nodes": [
        {"id": "a", "credentials": {"values": {"token": secret}}}]}}  # fmt: skip
    cases = [_case(3, json.dumps(good).encode()), _case(4, b"not json")]
    run = _observed(tmp_path, cases)
    status = {"execution_id": "e-3", "node_id": "a", "status": "failed",
              "error": {"message": f"Bearer {secret} refused"}}  # fmt: skip
    run.got[STATUS].append(Got(STATUS, json.dumps(status).encode(), {}, status))
    run.statuses["e-3"].append(status)
    reason = 'Traceback (most recent call last):\n  File "x.py", line 1'
    run.got[DEAD].append(Got(DEAD, cases[0].body, {"x-runeworker-reason": reason}, None))
    run.dead[cases[0].body].append(run.got[DEAD][-1])
    run.completions["e-3"] += [{"execution_id": "e-3", "status": "failed"}] * 2
    report = Report(1, cases=cases)
    kinds = {(v.kind, v.case) for v in Checker(run, report).check(cases)}
    expected = {("secret", 3), ("traceback", 3), ("completions", 3), ("dead-letter", 4)}
    assert expected <= kinds, kinds
