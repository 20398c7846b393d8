"""The engine is pure: importing any module of `runeworker.engine` loads only the standard library,
msgspec (with what msgspec itself needs) and runeworker (docs/ARCHITECTURE.md, import rules).
Checked in a fresh interpreter, since this test process has long since imported the adapters.

`registry.load()` is not called: it imports the node modules, which bring their own I/O
libraries (requests for http) on purpose."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

FORBIDDEN = ("pika", "redis", "prometheus_client", "requests", "psutil")

_PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    import msgspec, msgspec.json, msgspec.structs  # allowed, with whatever msgspec needs
    before = set(sys.modules)
    import runeworker.engine.executor
    import runeworker.engine.local
    import runeworker.engine

    modules = sorted(
        "runeworker.engine." + m.name for m in pkgutil.iter_modules(runeworker.engine.__path__)
    )
    for name in modules:
        importlib.import_module(name)
    loaded = set(sys.modules) - before
    print(json.dumps({"modules": modules, "loaded": sorted(loaded), "all": sorted(sys.modules)}))
    """
)


def _probe() -> dict[str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout)
    return result


def test_engine_imports_no_adapter_library() -> None:
    probe = _probe()
    assert {"runeworker.engine.executor", "runeworker.engine.local"} <= set(probe["modules"])
    assert len(probe["modules"]) >= 10  # every engine module was imported, not a subset
    leaked = [
        name
        for name in probe["all"]
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    ]
    assert leaked == []


def test_engine_imports_only_stdlib_and_msgspec() -> None:
    roots = {name.partition(".")[0] for name in _probe()["loaded"]}
    foreign = roots - set(sys.stdlib_module_names) - {"runeworker", "msgspec"}
    assert foreign == set()
    assert "runeworker" in roots  # the probe did import the engine
