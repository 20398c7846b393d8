"""pytest plugin of the mutation runs (`-p tests.mutation.caches`): every test starts with the
`functools` caches of runeworker empty, and the memo dicts of `MEMOS` too.

mutmut 3.8 runs the selected tests once in its main process and forks one worker per mutant from
it. A cache filled there by the unmutated code would hand the mutant the unmutated results, and a
call answered from the cache never reaches mutmut's trampoline, so only the first test to make
that call would count as covering the function.
"""

from __future__ import annotations

import sys

import pytest

# Module-level dicts that keep results across calls the way an `lru_cache` does (the same fork
# problem): module name -> attribute. `depth._verdicts` keeps `unpublishable`'s verdicts on
# large texts; filled by the unmutated code, it answered every mutant of that function.
MEMOS: dict[str, tuple[str, ...]] = {"runeworker.engine.depth": ("_verdicts",)}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Clear every `lru_cache`/`cache` held by a module-level name of a runeworker module, and
    the dicts of `MEMOS`."""
    for name, module in list(sys.modules.items()):
        if name != "runeworker" and not name.startswith("runeworker."):
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()
        for memo in MEMOS.get(name, ()):
            getattr(module, memo).clear()
