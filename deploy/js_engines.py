"""Compare embedded JavaScript engines for the edit node (runeworker/nodes/javascript.py):
per-expression latency, context creation, time limit, memory limit and host access.

Each engine in its own virtualenv (quickjs and quickjs-ng both install a `quickjs` module):
    python3 -m venv /tmp/js && /tmp/js/bin/pip install quickjs-ng
    /tmp/js/bin/python deploy/js_engines.py quickjs-ng    # or: mini-racer, quickjs, dukpy
(dukpy has no time limit: its infinite-loop probe never returns; run it under `timeout`).
`--heavy` adds a loop of heavy built-in calls (split/join of a 200,000-item string): QuickJS
polls its interrupt handler every 10,000 ticks, so there it overruns a 100 ms budget by far."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

CTX = {
    "$json": {"first": "Ada", "last": "Lovelace", "age": 36, "tags": ["a", "b", "c"]},
    "$input": {"name": "Ada", "age": 36},
    "$Fetch": {"status": 200, "body": {"id": 7, "items": list(range(20))}},
}
EXPRS = [
    "$json.first + ' ' + $json.last",
    "$json.first.toUpperCase()",
    "Math.round($json.age / 7)",
    "$json.tags.map(function (t) { return t.toUpperCase(); }).join('-')",
    "JSON.stringify($Fetch.body)",
    "typeof new Date().getTime()",
]
PROLOGUE = "".join(
    f"globalThis[{json.dumps(k)}] = JSON.parse({json.dumps(json.dumps(v))});"
    for k, v in CTX.items()
)
PROBES = [
    "typeof require", "typeof fetch", "typeof std", "typeof os", "typeof XMLHttpRequest",
    "typeof process", "typeof console", "typeof print", "typeof setTimeout", "typeof scriptArgs",
]  # fmt: skip
LOOP = "while (true) {}"
HOG = "var a = []; while (true) { a.push(new Array(1e6).fill(1)); } a.length"
HEAVY = (
    "var big = Array(200000).fill('item').join(','), s = big; "
    "for (;;) { s = s.split(',').join(','); }"
)


def wrap(expr: str) -> str:
    """The expression run with the context as globals, its value as JSON text."""
    return f"(function(){{ {PROLOGUE} return JSON.stringify(({expr})); }})()"


def engine_calls(engine: str) -> tuple[Callable[[], Any], Callable[[Any, str], Any]]:
    """(new context, run code in a context) for `engine`, with a 100 ms and 64 MB budget
    where the engine has one."""
    if engine == "mini-racer":
        from py_mini_racer import MiniRacer  # type: ignore[import-not-found]

        return MiniRacer, lambda ctx, code: ctx.eval(code, timeout=100, max_memory=64 << 20)
    if engine in ("quickjs", "quickjs-ng"):
        import quickjs

        def fresh() -> Any:
            ctx = quickjs.Context()
            ctx.set_time_limit(0.1)
            ctx.set_memory_limit(64 << 20)
            return ctx

        return fresh, lambda ctx, code: ctx.eval(code)
    if engine == "dukpy":
        import dukpy  # type: ignore[import-not-found]

        return dukpy.JSInterpreter, lambda ctx, code: ctx.evaljs(code)
    raise SystemExit(f"unknown engine {engine!r}: mini-racer, quickjs, quickjs-ng or dukpy")


def timed(fn: Callable[[], Any], n: int) -> float:
    """Mean µs of `n` calls of `fn`."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    engine = sys.argv[1]
    fresh, run = engine_calls(engine)
    start = time.perf_counter()
    ctx = fresh()
    print(f"{engine}: first context {(time.perf_counter() - start) * 1e3:.1f} ms")
    for expr in EXPRS:
        print("  ", expr, "->", run(ctx, wrap(expr)))
    reuse = new = 0.0
    for expr in EXPRS:
        code = wrap(expr)
        reuse += timed(lambda: run(ctx, code), 200) / len(EXPRS)  # noqa: B023 (called at once)
        new += timed(lambda: run(fresh(), code), 50) / len(EXPRS)  # noqa: B023
    print(f"  per expression, context reused: {reuse:.0f} us; new context each: {new:.0f} us")
    print("  probes:", {probe: run(ctx, probe) for probe in PROBES})
    probes = [("infinite loop", LOOP), ("memory hog", HOG)]
    if "--heavy" in sys.argv:
        probes.append(("heavy built-ins in a loop", HEAVY))
    limited = ctx
    for name, code in probes:
        limited = fresh()
        start = time.perf_counter()
        try:
            out = f"returned {run(limited, code)!r}"
        except Exception as exc:  # each engine raises its own error type at a limit
            out = f"{type(exc).__name__}: {str(exc)[:80]}"
        print(f"  {name}: {out} after {(time.perf_counter() - start) * 1e3:.0f} ms")
    try:
        print("  context usable after limit:", run(limited, "1+1"))
    except Exception as exc:  # the engine may refuse a context that hit its limit
        print("  context after limit:", type(exc).__name__, str(exc)[:80])
    print(f"  max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
