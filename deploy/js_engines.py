"""Compare embedded JavaScript engines for the edit node (runeworker/nodes/javascript.py):
per-expression latency, context creation, time limit, memory limit and host access.

Each engine in its own virtualenv (quickjs and quickjs-ng both install a `quickjs` module):
    python3 -m venv /tmp/js && /tmp/js/bin/pip install quickjs-ng
    /tmp/js/bin/python deploy/js_engines.py quickjs-ng    # or: mini-racer, quickjs, dukpy
(dukpy has no time limit: its infinite-loop probe never returns; run it under `timeout`).
`--heavy` adds a loop of heavy built-in calls (split/join of a 200,000-item string): QuickJS
polls its interrupt handler every 10,000 ticks, so there it overruns a 100 ms budget by far."""
import json, sys, time

engine = sys.argv[1]
CTX = {"$json": {"first": "Ada", "last": "Lovelace", "age": 36, "tags": ["a", "b", "c"]},
       "$input": {"name": "Ada", "age": 36}, "$Fetch": {"status": 200, "body": {"id": 7, "items": list(range(20))}}}
EXPRS = ["$json.first + ' ' + $json.last", "$json.first.toUpperCase()", "Math.round($json.age / 7)",
         "$json.tags.map(function (t) { return t.toUpperCase(); }).join('-')", "JSON.stringify($Fetch.body)",
         "typeof new Date().getTime()"]
PROLOGUE = "".join(f"globalThis[{json.dumps(k)}] = JSON.parse({json.dumps(json.dumps(v))});" for k, v in CTX.items())
PROBES = ["typeof require", "typeof fetch", "typeof std", "typeof os", "typeof XMLHttpRequest", "typeof process",
          "typeof console", "typeof print", "typeof setTimeout", "typeof scriptArgs"]
LOOP = "while (true) {}"
HOG = "var a = []; while (true) { a.push(new Array(1e6).fill(1)); } a.length"

def wrap(expr):
    return f"(function(){{ {PROLOGUE} return JSON.stringify(({expr})); }})()"

if engine == "mini-racer":
    from py_mini_racer import MiniRacer
    def fresh(): return MiniRacer()
    def run(ctx, code): return ctx.eval(code, timeout=100, max_memory=64 << 20)
elif engine in ("quickjs", "quickjs-ng"):
    import quickjs
    def fresh():
        c = quickjs.Context(); c.set_time_limit(0.1); c.set_memory_limit(64 << 20); return c
    def run(ctx, code): return ctx.eval(code)
elif engine == "dukpy":
    import dukpy
    def fresh(): return dukpy.JSInterpreter()
    def run(ctx, code): return ctx.evaljs(code)

def timed(fn, n):
    t = time.perf_counter()
    for _ in range(n): fn()
    return (time.perf_counter() - t) / n * 1e6

t0 = time.perf_counter(); c = fresh(); first = (time.perf_counter() - t0) * 1e3
print(f"{engine}: first context {first:.1f} ms")
for e in EXPRS: print("  ", e, "->", run(c, wrap(e)))
n = 200
reuse = sum(timed(lambda: run(c, wrap(e)), n) for e in EXPRS) / len(EXPRS)
newctx = sum(timed(lambda: run(fresh(), wrap(e)), 50) for e in EXPRS) / len(EXPRS)
print(f"  per expression, context reused: {reuse:.0f} us; new context each: {newctx:.0f} us")
print("  probes:", {p: run(c, p) for p in PROBES})
HEAVY = ("var big = Array(200000).fill('item').join(','), s = big; "
         "for (;;) { s = s.split(',').join(','); }")
probes = [("infinite loop", LOOP), ("memory hog", HOG)]
if "--heavy" in sys.argv:
    probes.append(("heavy built-ins in a loop", HEAVY))
for name, code in probes:
    cc = fresh(); t = time.perf_counter()
    try:
        r = run(cc, code); out = f"returned {r!r}"
    except Exception as exc:
        out = f"{type(exc).__name__}: {str(exc)[:80]}"
    print(f"  {name}: {out} after {(time.perf_counter()-t)*1e3:.0f} ms")
try:
    print("  context usable after limit:", run(cc, "1+1"))
except Exception as exc:
    print("  context after limit:", type(exc).__name__, str(exc)[:80])
import resource; print(f"  max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MB")
