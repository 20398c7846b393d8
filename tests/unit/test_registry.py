"""The node registry (runeworker/engine/registry.py): what `@node` records, what `load` imports
(the built-ins, plugins of the `runeworker.nodes` entry-point group, the modules named in
RUNEWORKER_EXTRA_NODE_MODULES) and that a broken plugin or module is logged, never raised; and
`TimeLimit`, the node time limit the CPU-bound nodes look at."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runeworker.engine import registry
from runeworker.engine.registry import (
    EXTRA_MODULES_ENV,
    NodeContext,
    NodeSpec,
    TimeLimit,
    TimeLimitPassed,
    node,
    time_limit_message,
)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> dict[str, NodeSpec]:
    """A registry not loaded yet, restored afterwards. The real one is loaded first: the node
    modules register on their first import only, which must fill the table that stays."""
    registry.load()
    table = dict(registry._REGISTRY)
    monkeypatch.setattr(registry, "_REGISTRY", table)
    monkeypatch.setattr(registry, "_loaded", False)
    return table


def _run(ctx: NodeContext) -> dict[str, Any]:
    return {}


def test_node_records_its_spec(fresh: dict[str, NodeSpec]) -> None:
    def route(*_: Any) -> list[Any]:
        return []

    node("t.spec", required=("a", "b"), raw=("r",), blocking=True, router=route, single_route=True)(
        _run
    )
    assert fresh["t.spec"] == NodeSpec(
        "t.spec", _run, ("a", "b"), frozenset({"r"}), True, route, True
    )
    assert node("t.plain")(_run) is _run  # the function itself, unchanged
    assert fresh["t.plain"] == NodeSpec("t.plain", _run)


def test_load_imports_the_built_ins_once(fresh: dict[str, NodeSpec]) -> None:
    loaded = registry.load()
    assert {"log", "http", "conditional", "merge"} <= set(loaded)
    assert registry.get("log") is loaded["log"] and registry.get("teleport") is None
    node("t.after")(_run)
    assert "t.after" in registry.load()  # the same table, not imported again


class _EntryPoint:
    def __init__(self, name: str, value: str, fails: bool) -> None:
        self.name, self.value, self._fails = name, value, fails
        self.loaded = False

    def load(self) -> None:
        self.loaded = True
        if self._fails:
            raise ImportError("no module named plugin_gone")


def test_plugins_are_loaded_and_a_broken_one_is_logged(
    fresh: dict[str, NodeSpec], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = _EntryPoint("good", "plugin_good", False)
    broken = _EntryPoint("broken", "plugin_gone:nodes", True)
    groups: list[str] = []

    def entry_points(*, group: str) -> list[_EntryPoint]:
        groups.append(group)
        return [broken, good]

    monkeypatch.setattr(registry, "entry_points", entry_points)
    with caplog.at_level(logging.ERROR, logger="runeworker.registry"):
        registry.load()
        registry.load()  # loaded once per process: not looked up again
    assert groups == ["runeworker.nodes"] and good.loaded and broken.loaded
    assert [r.getMessage() for r in caplog.records] == [
        "cannot load node plugin broken (plugin_gone:nodes): no module named plugin_gone"
    ]


def test_extra_modules_are_imported_and_a_broken_one_is_logged(
    fresh: dict[str, NodeSpec],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "rw_extra_nodes.py").write_text(
        "from runeworker.engine.registry import node\n"
        "@node('t.extra')\n"
        "def run(ctx):\n"
        "    return {}\n"
    )
    (tmp_path / "rw_broken_nodes.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(EXTRA_MODULES_ENV, " rw_extra_nodes , ,rw_broken_nodes")
    monkeypatch.setattr(registry, "entry_points", lambda *, group: [])
    try:
        with caplog.at_level(logging.ERROR, logger="runeworker.registry"):
            loaded = registry.load()
    finally:
        sys.modules.pop("rw_extra_nodes", None)
        sys.modules.pop("rw_broken_nodes", None)
    assert "t.extra" in loaded
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot import node module rw_broken_nodes named in {EXTRA_MODULES_ENV}: broken on import"
    ]


# -- TimeLimit ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, math.inf, -1])
def test_no_limit(seconds: float) -> None:
    limit = TimeLimit(seconds)
    assert limit.deadline == math.inf and not limit.passed() and limit.left() == math.inf


def test_a_limit_counts_from_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(registry.time, "monotonic", lambda: now[0])
    limit = TimeLimit(2.5)
    assert limit.deadline == 102.5 and limit.left() == 2.5 and not limit.passed()
    now[0] = 102.5
    assert limit.passed() and limit.left() == 0  # at the deadline: passed
    assert limit.message() == "stopped at the node time limit of 2.5 s (worker.node_timeout)"
    with pytest.raises(TimeLimitPassed):  # at the deadline, a timed read is refused too
        limit.timed(str)("$a")
    now[0] = 102.4
    assert limit.timed(str)("$a") == "$a"


def test_timed_reads_until_the_limit_then_names_what_it_was_reading() -> None:
    reads: list[str] = []

    def resolve(text: str) -> str:
        reads.append(text)
        return text.upper()

    assert TimeLimit(60).timed(resolve)("$a") == "$A"
    passed = TimeLimit(1e-9)
    time.sleep(0.001)
    call = passed.timed(resolve)
    with pytest.raises(TimeLimitPassed) as err:
        call("$" + "x" * 59)  # 60 characters: shown whole
    assert str(err.value) == f"reading ${'x' * 59}: {time_limit_message(1e-9)}"
    with pytest.raises(TimeLimitPassed) as err:
        call("$" + "y" * 60)  # 61: cut to 57 and "..."
    assert str(err.value) == f"reading ${'y' * 56}...: {time_limit_message(1e-9)}"
    assert reads == ["$a"]


def test_a_node_s_time_limit_is_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = registry.NodeSettings(node_timeout=7.0)
    ctx: Any = SimpleNamespace(settings=settings)
    assert NodeContext.time_limit(ctx).seconds == 7.0
    assert registry.NodeSettings().node_timeout == 48.0  # 80 % of worker.timeout's 60 s
