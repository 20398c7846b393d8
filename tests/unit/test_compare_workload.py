"""deploy/compare/ measures Celery and Dramatiq on the workload of `runeworker bench`: its
payload must stay the bench's `$input` and its steps must do what the bench's chain checks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from runeworker.bench.workload import make_context

HARNESS = Path(__file__).resolve().parents[2] / "deploy" / "compare" / "harness.py"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # its dataclasses look their module up in sys.modules while the class is made
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("nbytes", [1024, 64 * 1024])
def test_payload_is_the_bench_input(nbytes: int) -> None:
    payload = _harness().make_payload("w1", nbytes)
    bench_input = make_context(nbytes)["$input"]
    assert payload["records"] == bench_input["records"]
    assert payload["run"] == bench_input["run"]
    assert (payload["workflow"], payload["steps"]) == ("w1", 0)


def test_steps_alternate_a_log_output_and_a_condition_on_it() -> None:
    h = _harness()
    payload = h.make_payload("w1")
    for k in range(1, 11):
        payload = h.step_work(payload, k)
    assert payload["steps"] == 10
    assert payload["n1"] == {"level": "info", "message": "step 1 of bench"}
    assert payload["n2"] == {"result": True}
    payload["n9"]["level"] = "error"
    with pytest.raises(ValueError, match="step 10: the condition on n9 is false"):
        h.step_work(payload, 10)
