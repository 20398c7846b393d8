"""`worker.node_timeout` bounds the nodes that spend CPU over many values, as it bounds the
blocking ones (http, smtp, integrations): edit (and its JavaScript), filter, sort, switch,
conditional and the list input's search fail with "stopped at the node time limit of N s
(worker.node_timeout)" and what they were doing, instead of running until the supervisor
kills the child at `worker.timeout` (its message redelivered, then dead-lettered as poison,
with no error policy applied). Each workload here ran one to a few seconds before, without
an error; under a limit of a fraction of a second it now fails soon after the limit. The
datetime nodes' layouts, quadratic in their length before, are linear now."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import msgspec
import pytest

from runeworker.engine.executor import Executor
from runeworker.engine.local import LocalRunner, start_message
from runeworker.engine.messages import ErrorPayload, NodeStatusMessage
from runeworker.engine.registry import UNTIMED_STEPS, NodeSettings, TimeLimit
from runeworker.engine.state import MemoryStore
from runeworker.nodes.javascript import TIMEOUT_MESSAGE, Budget, ExpressionError, JavaScript

LIMIT = 0.3
SLACK = 0.7  # past the limit: one step in progress, a loaded machine
STOPPED = "stopped at the node time limit of 0.3 s (worker.node_timeout)"
BIG = {"k": "x" * 100_000}  # each `contains` on it renders 100 KB


def outcome(
    node_type: str, params: dict[str, Any], context: dict[str, Any], limit: float
) -> tuple[str, Any]:
    """Run a workflow of one node through the executor under `limit`: the node's last status
    and its output, or its error message (the default error policy halts)."""
    nodes = [{"id": "n", "name": "N", "type": node_type, "parameters": params}]
    start = start_message(json.dumps({"nodes": nodes, "edges": []}).encode())
    raw = {key: msgspec.Raw(msgspec.json.encode(value)) for key, value in context.items()}
    statuses: list[NodeStatusMessage] = []
    executor = Executor(MemoryStore(), settings=NodeSettings(node_timeout=limit))
    done = LocalRunner(executor, statuses.append).run(
        msgspec.structs.replace(start, accumulated_context=raw)
    )
    last = statuses[-1]
    assert done is not None and last.node_id == "n"
    if last.status == "failed":
        assert done.status == "halted"
        assert isinstance(last.error, ErrorPayload)
        return last.status, last.error.message
    return last.status, last.output


def run(node_type: str, params: dict[str, Any], context: dict[str, Any], limit: float) -> Any:
    """The node's output; it succeeded."""
    status, output = outcome(node_type, params, context, limit)
    assert status == "success", output
    return output


def stopped(node_type: str, params: dict[str, Any], context: dict[str, Any]) -> str:
    """The node's error under LIMIT: it failed, soon after the limit."""
    started = time.monotonic()
    status, error = outcome(node_type, params, context, LIMIT)
    took = time.monotonic() - started
    assert status == "failed", error
    assert took < LIMIT + SLACK, f"{took:.2f} s: {error}"
    return str(error)


# -- edit -----------------------------------------------------------------------------------------

# about 20 ms of CPU per value: far under its own 100 ms, 1.2 s for 60 items
BUSY = "{{ (() => { const t = Date.now(); while (Date.now() - t < 20) {} return $json.a })() }}"


def test_an_edit_of_many_values_each_under_its_budget_stops_at_the_node_limit() -> None:
    items = [{"a": i} for i in range(60)]
    params = {"assignments": [{"name": "b", "value": BUSY, "type": "number"}]}
    error = stopped("edit", params, {"$json": items})
    assert error.startswith("apply assignments at index "), error
    assert error.endswith(f": resolve value for 'b': {STOPPED}"), error


def test_an_edit_of_many_references_stops_at_the_node_limit() -> None:
    # no JavaScript: each value renders 100 KB into a text
    items = [{"a": i} for i in range(400)]
    assignments = [{"name": f"x{j}", "value": "$big!"} for j in range(20)]
    error = stopped("edit", {"assignments": assignments}, {"$json": items, "$big": BIG})
    assert error.startswith("apply assignments at index "), error
    assert STOPPED in error, error


def test_an_edit_under_the_limit_is_unchanged() -> None:
    items = [{"a": i} for i in range(3)]
    params = {"assignments": [{"name": "b", "value": "{{ $json.a * 2 }}", "type": "number"}]}
    for limit in (0.0, 48.0, float("inf")):
        out = run("edit", params, {"$json": items}, limit)
        assert out == {"$json": [{"a": 0, "b": 0}, {"a": 1, "b": 2}, {"a": 2, "b": 4}]}


def test_a_value_over_its_own_budget_keeps_upstreams_message() -> None:
    params = {"assignments": [{"name": "b", "value": "{{ (() => { for (;;) {} })() }}"}]}
    assert outcome("edit", params, {"$json": {}}, 48.0) == (
        "failed",
        f"resolve value for 'b': {TIMEOUT_MESSAGE}",
    )


def test_the_budget_of_a_value_is_what_is_left_of_the_node_limit() -> None:
    js = JavaScript({"$json": "{}"})
    started = time.process_time()
    with pytest.raises(ExpressionError) as info:
        js.evaluate("for (;;) {}", None, Budget(limit=TimeLimit(0.03)))
    assert str(info.value) == "stopped at the node time limit of 0.03 s (worker.node_timeout)"
    assert time.process_time() - started < 0.09  # interrupted at the limit, not after 100 ms
    with pytest.raises(ExpressionError, match=r"^stopped at the node time limit"):
        js.evaluate("1", None, Budget(limit=TimeLimit(1e-9)))  # nothing left: not even begun
    with pytest.raises(ExpressionError, match=f"^{TIMEOUT_MESSAGE}$"):
        js.evaluate("for (;;) {}", None, Budget(limit=TimeLimit(60)))  # its own 100 ms first
    assert js.evaluate("1", None, Budget(limit=TimeLimit(0))) == 1  # 0: no limit


# -- filter, sort, the list input -------------------------------------------------------------


def test_a_filter_of_many_rules_stops_at_the_node_limit_within_an_item() -> None:
    # more than UNTIMED_STEPS rules: timed rule by rule (a `contains` over a list compares
    # every element: 5000 rules over one item of 1000 took 2.5 s)
    items = [{"l": [f"v{i}" for i in range(1000)]}]
    rules = [{"field": "l", "operator": "contains", "value": f"zz{i}"} for i in range(5000)]
    error = stopped("filter", {"rules": rules, "match_mode": "any"}, {"$json": items})
    assert re.fullmatch(f"filter item at index 0 of 1: rule [0-9]+: {re.escape(STOPPED)}", error)


def test_a_filter_of_few_costly_rules_stops_at_the_node_limit() -> None:
    # a `contains` over a list compares every element: timed item by item
    items = [{"l": [f"v{i}" for i in range(200)]} for _ in range(2000)]
    rules = [{"field": "l", "operator": "contains", "value": f"zz{i}"} for i in range(8)]
    error = stopped("filter", {"rules": rules, "match_mode": "any"}, {"$json": items})
    assert error.startswith("filter item at index "), error
    assert error.endswith(f" of 2000: {STOPPED}"), error


def test_a_filter_under_the_limit_is_unchanged() -> None:
    items = [{"a": i} for i in range(5)]
    out = run("filter", {"rules": [{"field": "a", "operator": ">", "value": 2}]},
              {"$json": items}, 48.0)  # fmt: skip
    assert out == {"$json": [{"a": 3}, {"a": 4}], "count": 2, "original_count": 5}


def test_a_sort_of_many_items_stops_at_the_node_limit() -> None:
    items = [{"v": f"abc{i * 7919 % 1_000_003:07d}"} for i in range(60_000)]
    error = stopped("sort", {"rules": [{"field": "v"}]}, {"$json": items})
    # (reading the keys takes a small part of the time: a loaded machine may stop there)
    where = "(sorting 60000 items|reading item [0-9]+ of 60000)"
    assert re.fullmatch(f"sort rule 1: {where}: {re.escape(STOPPED)}", error), error


def test_a_sort_under_the_limit_is_unchanged() -> None:
    items = [{"v": 2}, {"v": 1}, {"v": 3}]
    out = run("sort", {"rules": [{"field": "v", "direction": "desc"}]},
              {"$json": items}, 48.0)  # fmt: skip
    assert out == {"$json": [{"v": 3}, {"v": 2}, {"v": 1}], "count": 3}


def test_the_search_for_an_input_list_stops_at_the_node_limit() -> None:
    # every list found is compared with each distinct one before it: 2000 lists sharing a
    # prefix of 1000 elements take seconds
    lists = {f"k{k}": [0] * 1000 + [k] for k in range(2000)}
    error = stopped("limit", {"count": 1}, {"$a": lists})
    assert error.startswith("input_array is not set; looking for the list to use at $a.k"), error
    assert " of 2000 found): " in error and error.endswith(STOPPED), error


# -- switch and conditional -----------------------------------------------------------------


def test_a_switch_of_many_rules_stops_at_the_node_limit() -> None:
    rules = [{"value": "$big", "operator": "contains", "compare": f"zz{i}"} for i in range(10_000)]
    error = stopped("switch", {"rules": rules}, {"$big": BIG})
    assert error.startswith("switch rule ") and error.endswith(f": {STOPPED}"), error


def test_a_switch_of_a_few_rules_is_not_timed() -> None:
    # a limit already passed: a switch of UNTIMED_STEPS rules never looks at it
    rules = [{"value": "$x", "operator": "==", "compare": str(i)} for i in range(UNTIMED_STEPS)]
    out = run("switch", {"rules": rules}, {"$x": 7}, 1e-9)
    assert out["output_index"] == 7


def test_a_conditional_of_many_comparisons_stops_at_the_node_limit() -> None:
    # 500 comparisons each rendering 1 MB (a short text: its parse takes no time)
    expression = " or ".join(["$big contains 'zz'"] * 500)
    error = stopped("conditional", {"expression": expression}, {"$big": {"k": "x" * 2**20}})
    assert error == f"reading $big: {STOPPED}"


def test_a_conditional_of_many_conditions_stops_at_the_node_limit() -> None:
    conditions = [{"op1": "$big", "operator": "contains", "op2": "zz"}] * 6000
    params = {"expression": conditions, "operator": "or"}
    error = stopped("conditional", params, {"$big": BIG})
    # stopped while evaluating, at a condition past the first (the display would stop at 1)
    found = re.fullmatch(rf"expression condition (\d+): {re.escape(STOPPED)}", error)
    assert found and int(found[1]) > 1, error


def test_a_conditional_evaluated_in_time_stops_while_displayed() -> None:
    """`or` stops evaluating at its first true condition; the display then renders every
    operand (6000 of 100 KB): it looks at the limit too, and stops at a later condition."""
    first = {"op1": "$a", "operator": "==", "op2": "1"}
    conditions = [first] + [{"op1": "$big", "operator": "contains", "op2": "zz"}] * 6000
    params = {"expression": conditions, "operator": "or"}
    error = stopped("conditional", params, {"$a": 1, "$big": BIG})
    found = re.fullmatch(rf"expression condition (\d+): {re.escape(STOPPED)}", error)
    assert found and int(found[1]) > 1, error


def test_an_interpolated_operand_is_read_under_the_limit() -> None:
    """An operand such as `x{{$a}}` is read through the resolver's interpolation, which the
    limit times as it times a reference."""
    expression = " and ".join(["x{{$a}} == x1"] * 5)  # 10 operands: timed
    status, error = outcome("conditional", {"expression": expression}, {"$a": 1}, 1e-9)
    assert (status, error) == (
        "failed",
        "reading x{{$a}}: stopped at the node time limit of 1e-09 s (worker.node_timeout)",
    )
    assert run("conditional", {"expression": expression}, {"$a": 1}, 10.0)["result"] is True


def test_a_long_expression_is_parsed_under_the_node_limit() -> None:
    # 1.3 MB of text: its parse alone took 4 s (16 MB, which a message may hold: 50 s)
    expression = " or ".join(["$a.b == 1"] * 100_000)
    error = stopped("conditional", {"expression": expression}, {"$a": {"b": 1}})
    assert error.startswith(f"parsing the expression ({len(expression)} characters) at "), error
    assert error.endswith(STOPPED), error


def test_a_small_conditional_is_not_timed() -> None:
    expression = "$a == 1 and $b == 2 and $a != $b and $b > $a"  # 8 operands
    out = run("conditional", {"expression": expression}, {"$a": 1, "$b": 2}, 1e-9)
    assert out == {"result": True, "expression": "1 == 1 and 2 == 2 and 1 != 2 and 2 > 1"}


# -- datetime layouts: linear -----------------------------------------------------------------


def test_a_long_layout_is_compiled_and_read_in_linear_time() -> None:
    # 1.1 MB of layout and as much of date: about 20 s before (every field sliced the rest of
    # the layout and of the text), about 1 s now
    layout, text = "2006-01-02 " * 100_000, "2024-01-02 " * 100_000
    started = time.monotonic()
    out = run("dateTimeFormat", {"date": text, "format": layout}, {}, 48.0)
    assert time.monotonic() - started < 6
    assert out["result"] == text and out["unix"] == 1704153600


def test_a_catastrophic_regular_expression_stops_at_the_budget() -> None:
    # The only user regexes a node runs are JavaScript's. QuickJS's matcher backtracks, but it
    # looks at the interrupt: they are bounded. (goja ran this pattern with Go's RE2, in linear
    # time, and falls back to backtracking regexp2 only for what RE2 lacks, backreferences
    # and lookarounds: here such a value fails at its budget where goja answered.)
    js = JavaScript({"$json": "{}"})
    started = time.process_time()
    with pytest.raises(ExpressionError, match=f"^{TIMEOUT_MESSAGE}$"):
        js.evaluate('/(a+)+$/.test("a".repeat(40) + "b")', None, Budget())
    assert time.process_time() - started < 1


# -- conditional: which forms are timed (each test kills a mutant of the choice) -------------


def test_a_short_expression_of_more_than_eight_operands_is_timed() -> None:
    expression = " and ".join(["$a == 1"] * 5)  # 10 operands, 39 characters
    status, error = outcome("conditional", {"expression": expression}, {"$a": 1}, 1e-9)
    assert (status, error) == (
        "failed",
        "reading $a: stopped at the node time limit of 1e-09 s (worker.node_timeout)",
    )


def test_an_expression_of_512_characters_and_eight_operands_is_not_timed() -> None:
    expression = "$a == 1 and $a == 1 and $a == 1 and $a == '"
    expression += "x" * (511 - len(expression)) + "'"
    assert len(expression) == 512
    out = run("conditional", {"expression": expression}, {"$a": 1}, 1e-9)
    assert out["result"] is False


def test_eight_conditions_are_not_timed() -> None:
    conditions = [{"op1": "$a", "operator": "==", "op2": "1"}] * UNTIMED_STEPS
    out = run("conditional", {"expression": conditions}, {"$a": 1}, 1e-9)
    assert out["result"] is True
