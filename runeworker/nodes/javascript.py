"""JavaScript for `{{ }}` expressions of the edit node, as upstream evaluates them with goja
(services/rune-worker/pkg/nodes/custom/edit/edit_node.go, RFC-007): one embedded QuickJS
engine (the `quickjs-ng` package) per node run, with no host access at all.

What an expression sees, as upstream: every context key as a global (`$json`, `$input`,
`$<node name>`, ...; a name that is not a JS identifier is `globalThis["$Fetch Users"]`), with
`$json` the object being edited, and `$credential` when the node has credentials (as in every
runeworker template). Values are copied in as JSON text and parsed on first use in each
expression, so an expression that changes a value changes its own copy only, and a context
value no expression reads costs one string copy. A context value nested deeper than
`runeworker.engine.depth.MAX_DEPTH` throws when read.

Limits: each `evaluate` call has a CPU time budget (QuickJS interrupts the script: the error
is upstream's "expression timeout or cancelled"), cut to what is left of the node's own time
limit (`worker.node_timeout`) when that is less (the error then names that limit), the runtime
a memory cap (`memory_limit`) and a stack cap. A regular expression runs under the same budget:
QuickJS's matcher backtracks and looks at the interrupt, so `/(a+)+$/` over 40 letters fails
at the budget (goja ran a pattern RE2 can read with Go's regexp, in linear time, and answered;
it backtracks too, with regexp2, for backreferences and lookarounds). The engine has no I/O:
no `require`, `import`, `fetch`, `console`, timers, file or network access exist in a bare
QuickJS context. Within one node run, expressions share the global object: a global variable
or a changed built-in made by one expression is seen by the next expressions of the same run
(each run starts afresh).

Errors read as upstream's goja writes them (`Exception.Error()`: the thrown value's `String()`),
without goja's position (` at <eval>:1:1(1)`): `TypeError: ...`, `Error: boom`, and for a thrown
value that is no Error `null`, `undefined`, `42`, `[object Object]` or the string itself (`""`
for an empty one). The value is written in the engine, under the time limit, so an object whose
`toString` never ends times out instead of hanging the worker. QuickJS also throws `null` when
it has no memory left for its own error: a thrown `null` reads as "ran out of memory" unless an
expression of the run holds the word `throw` and the engine's memory is not nearly all in use
(a null thrown by code built at run time, `eval("thr" + "ow null")`, reads as memory).

Results come back as JSON (`JSON.stringify` in the engine, so a `Date` becomes its ISO string,
`undefined` and functions `null`), except numbers, which keep `NaN` and the infinities for
the type cast to judge.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Mapping
from typing import Any, Final

import msgspec
import quickjs

from runeworker.engine import depth
from runeworker.engine.registry import TimeLimit
from runeworker.errors import DepthError, RuneworkerError

TIME_BUDGET: Final = 0.1  # seconds of CPU per expression value, as upstream's evalTimeout
MEMORY_BASE: Final = 64 * 1024 * 1024  # bytes, plus MEMORY_PER_SOURCE_BYTE per byte of context
MEMORY_PER_SOURCE_BYTE: Final = 4
STACK: Final = 512 * 1024  # QuickJS's stack cap: well inside any thread's C stack
TIMEOUT_MESSAGE: Final = "expression timeout or cancelled"
_SAFE_INT = 2**53
STACK_MESSAGE: Final = "expression is nested too deeply (the JavaScript stack overflowed)"
STACK_ERRORS: Final = (
    "RangeError: Maximum call stack size exceeded",
    "InternalError: stack overflow",
)
# QuickJS throws `null` when it has no memory left even for its out-of-memory error, so a thrown
# null reads as the expression's own only when an expression of the run can throw (holds the
# word `throw`) and the engine's memory is not nearly all in use (MEMORY_FULL of the limit).
_THROW: Final = re.compile(r"\bthrow\b")
MEMORY_FULL: Final = 0.9

# Runs once per runtime. The helpers are captured before any expression runs, and the
# globals they live in cannot be replaced by an expression.
_BOOTSTRAP = r"""
(function () {
  var g = globalThis, parse = JSON.parse, stringify = JSON.stringify, keys = Object.keys;
  var define = Object.defineProperty, run = eval, text = String;
  var isError = Function.prototype.call.bind(Object.prototype.isPrototypeOf, Error.prototype);
  var tag = Function.prototype.call.bind(Object.prototype.toString);
  var sources = {}, denied = {}, cache = {}, stamp = {}, used = {}, epoch = 0, context;
  var caught = false, thrown;  // what the last run threw (kept without allocating anything)
  function expose(name) {
    if (name in sources || name in denied) return;
    define(g, name, {
      configurable: false,
      enumerable: false,
      get: function () {
        used[name] = true;
        if (name in denied) throw new Error(denied[name]);
        if (stamp[name] !== epoch) { cache[name] = parse(sources[name]); stamp[name] = epoch; }
        return cache[name];
      },
      set: function (value) { cache[name] = value; stamp[name] = epoch; }
    });
  }
  function fixed(name, fn) { define(g, name, {value: fn, writable: false, configurable: false}); }
  fixed("__rw_source", function (name, text) {
    if (!(name in sources) && !(name in denied) && name in g) return;  // built-ins win
    expose(name); sources[name] = text;
    if (name === "$json") context = text;
  });
  fixed("__rw_deny", function (name, message) {
    if (!(name in sources) && !(name in denied) && name in g) return;
    expose(name); denied[name] = message;
  });
  fixed("__rw_run", function (src, item) {
    epoch++; used = {}; caught = false; thrown = undefined;
    try {
      if (item !== null) { expose("$json"); delete denied["$json"]; sources["$json"] = item; }
      else if (context !== undefined) sources["$json"] = context;
      var value = run(src);  // indirect: global code, the completion value, as goja's RunString
      var kind = typeof value;
      if (kind === "number" || kind === "boolean") return value;
      if (value === null || value === undefined || kind === "function" || kind === "symbol") {
        return null;
      }
      return stringify(value);  // strings too: JSON keeps NUL and lone surrogates escaped
    } catch (e) {
      caught = true; thrown = e;  // an interrupt is uncatchable: it never gets here
      // An object goes no further: the host would write it (toString, stack) out of any time
      // limit. __rw_thrown writes it, under the limit of its own call.
      if (e !== null && (typeof e === "object" || typeof e === "function")) throw 0;
      throw e;
    }
  });
  // What the last run threw: [false] for null (which QuickJS also throws when it has no memory
  // left for an error object), [true, text] for an Error object (its toString), [false, text]
  // for any other value, as goja's Value.String() writes it; null when nothing was caught.
  fixed("__rw_thrown", function () {
    if (!caught) return null;
    var e = thrown;
    caught = false; thrown = undefined;
    if (e === null) return stringify([false]);
    var kind = typeof e, error = (kind === "object" || kind === "function") && isError(e);
    var shown;
    try {
      shown = text(e);
    } catch (_) {
      shown = tag(e);  // no usable toString (Object.create(null)): "[object Object]"
    }
    return stringify([error, shown]);
  });
  fixed("__rw_used", function () { return stringify(keys(used)); });
})();
"""


class ExpressionError(RuneworkerError):
    """An expression failed: a JavaScript error, its budget, or its memory."""


class Budget:
    """CPU seconds left for one value (the blocks of a template share them): `seconds`, or
    what is left of the node's time limit when that is less (`limit`, worker.node_timeout,
    wall-clock seconds: CPU seconds come no faster). `message` is what running out says:
    upstream's "expression timeout or cancelled", or the node's time limit when that cut
    the budget."""

    def __init__(self, seconds: float = TIME_BUDGET, limit: TimeLimit | None = None) -> None:
        self.message = TIMEOUT_MESSAGE
        if limit is not None:
            left = limit.left()
            if left < seconds:
                seconds, self.message = left, limit.message()
        self.deadline = time.process_time() + seconds

    def left(self) -> float:
        seconds = self.deadline - time.process_time()
        if seconds <= 0:
            raise ExpressionError(self.message)
        return seconds


class JavaScript:
    """The JavaScript engine of one node run. `sources` maps each global name to its JSON
    text (`bytes` or `str`) or to a Python value (encoded here). `used` collects the names
    expressions read."""

    def __init__(self, sources: Mapping[str, Any]) -> None:
        texts = {name: _text(value) for name, value in sources.items()}
        size = sum(len(t) for t in texts.values() if t is not None)
        self.memory_limit = MEMORY_BASE + MEMORY_PER_SOURCE_BYTE * size
        self._ctx = quickjs.Context()
        self._ctx.set_memory_limit(self.memory_limit)
        self._ctx.set_max_stack_size(STACK)
        self._ctx.eval(_BOOTSTRAP)
        source, deny = self._ctx.get("__rw_source"), self._ctx.get("__rw_deny")
        for name, text in texts.items():
            if text is None:
                deny(name, f"context value {name} is {depth.TOO_DEEP}")
            else:
                source(name, text)
        self._run = self._ctx.get("__rw_run")
        self._used = self._ctx.get("__rw_used")
        self._thrown = self._ctx.get("__rw_thrown")
        self.used: set[str] = set()
        self._throws = False  # an expression of this run holds the word `throw`

    def evaluate(self, expression: str, item_text: str | None, budget: Budget | None = None) -> Any:
        """The JSON value of `expression` with `$json` parsed from `item_text` (None: as the
        sources say); numbers stay numbers (NaN and the infinities included). Raises
        ExpressionError."""
        budget = budget or Budget()
        self._ctx.set_time_limit(budget.left())
        self._throws = self._throws or _THROW.search(expression) is not None
        try:
            result = self._run(expression, item_text)
        except quickjs.JSException as exc:
            raise ExpressionError(self._describe(exc, budget.message)) from None
        finally:
            self._collect_used()
        if isinstance(result, str):
            try:
                return depth.decode(result, "the expression result")
            except DepthError as exc:
                raise ExpressionError(str(exc)) from None
        integral = isinstance(result, float) and math.isfinite(result) and result.is_integer()
        if integral and abs(result) <= _SAFE_INT:
            return int(result)  # 10 * 25.5 is 255, as JSON and goja's export write it
        return result

    def _collect_used(self) -> None:
        with contextlib.suppress(quickjs.JSException):  # out of memory: nothing to learn
            self.used.update(msgspec.json.decode(self._used()))

    def _describe(self, exc: quickjs.JSException, timeout: str) -> str:
        """The message of a failed evaluation: what the expression threw as goja's
        `Value.String()` writes it (`TypeError: ...`, `42`, `undefined`, `[object Object]`, a
        string itself), upstream's message without goja's ` at <eval>:1:1(1)`; or one of the
        engine's own limits (time, said as `timeout`; memory; stack)."""
        try:
            recorded = self._thrown()
        except quickjs.JSException as failed:  # writing the thrown value failed in turn
            return self._engine_limit(str(failed), timeout) or self._out_of_memory()
        if not isinstance(recorded, str):  # not caught (an interrupt): the binding's text
            text = str(exc)
            if isinstance(exc, quickjs.StackOverflow):
                return STACK_MESSAGE
            return self._engine_limit(text, timeout) or text.splitlines()[0]
        thrown = msgspec.json.decode(recorded)
        if len(thrown) == 1:  # null: thrown by the expression, or QuickJS out of memory
            return "null" if self._throws and not self._memory_full() else self._out_of_memory()
        error, shown = thrown
        if error:
            return self._engine_limit(shown, timeout) or shown
        return shown or '""'  # goja writes an empty string as nothing but its position

    def _engine_limit(self, text: str, timeout: str) -> str | None:
        """The message of an engine limit that `text` (an error's first line) reports; the
        time limit's is `timeout`."""
        first = text.splitlines()[0] if text.strip() else ""
        if first == "InternalError: interrupted":
            return timeout
        if first == "InternalError: out of memory" or first in ("", "null"):
            return self._out_of_memory()  # "null": no memory left to write the error
        if first in STACK_ERRORS:
            return STACK_MESSAGE
        return None

    def _memory_full(self) -> bool:
        """The engine holds nearly all its memory still (a run that ran out kept what it made)."""
        try:
            used = self._ctx.memory()["malloc_size"]
        except (quickjs.JSException, KeyError, TypeError):
            return False
        return bool(used >= MEMORY_FULL * self.memory_limit)

    def _out_of_memory(self) -> str:
        return f"expression ran out of memory (limit {self.memory_limit // 2**20} MiB)"


def _text(value: Any) -> str | None:
    """The JSON text of a value for the engine; None when it nests too deeply."""
    if isinstance(value, msgspec.Raw | bytes):
        text = bytes(value).decode()
        return None if depth.json_exceeds(text) else text
    if depth.exceeds(value):
        return None
    return msgspec.json.encode(value).decode()


class Template:
    """A value with `{{ expression }}` blocks. `whole`: the value is one block, blanks around
    allowed, and keeps the expression's JSON type, as upstream's `^\\s*\\{\\{(.+)\\}\\}\\s*$`:
    a value that starts with `{{` and ends with `}}` is one expression when the braces it opens
    close before its last `}}` (`{{ xs.map(x => {return {id: x}}) }}`). Otherwise a block ends
    at the first `}}` outside a JavaScript string literal (write `{ a: { b: 1 } }` with a blank
    to nest object literals in one), and every block is evaluated and rendered into the text
    around it (runeworker's own: upstream keeps such a value as literal text)."""

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self.parts = parts  # (is an expression, text) in order
        expressions = [text for code, text in parts if code]
        literal = "".join(text for code, text in parts if not code)
        self.whole = len(expressions) == 1 and not literal.strip()
        self.expression = expressions[0]  # the expression of a whole value

    @classmethod
    def parse(cls, text: str) -> Template | None:
        """The blocks of `text`, or None when it holds no complete block."""
        whole = _whole(text)
        if whole is not None:
            return whole
        parts: list[tuple[bool, str]] = []
        pos = 0
        while True:
            start = text.find("{{", pos)
            end = -1 if start < 0 else _block_end(text, start + 2)
            if end < 0:
                break
            parts += [(False, text[pos:start]), (True, text[start + 2 : end - 2].strip())]
            pos = end
        if not parts:
            return None
        parts.append((False, text[pos:]))
        return cls([(code, t) for code, t in parts if code or t])


def _whole(text: str) -> Template | None:
    """`text` as one block when it is `{{ ... }}` (blanks around) and the first `}}` outside
    string literals and outside the braces opened inside is its last one; else None."""
    start, stop = len(text) - len(text.lstrip()), len(text.rstrip())
    if not text.startswith("{{", start) or stop - start < 4 or text[stop - 2 : stop] != "}}":
        return None
    if _block_end(text, start + 2, nested=True) != stop:
        return None
    parts = [
        (False, text[:start]),
        (True, text[start + 2 : stop - 2].strip()),
        (False, text[stop:]),
    ]
    return Template([(code, t) for code, t in parts if code or t])


def _block_end(text: str, pos: int, *, nested: bool = False) -> int:
    """The index after the `}}` that closes a block opened before `pos`; -1 when none.
    `nested`: a `}` closes a brace opened after `pos` first."""
    quote, depth = "", 0
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\":
                pos += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif nested and char == "{":
            depth += 1
        elif nested and char == "}" and depth:
            depth -= 1
        elif text.startswith("}}", pos):
            return pos + 2
        pos += 1
    return -1
