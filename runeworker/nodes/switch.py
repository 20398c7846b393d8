"""`switch` node: the first matching rule picks the route (upstream
services/rune-worker/pkg/nodes/custom/switch/).

`rules` is a list of `{value, operator, compare}`; `routes` lists one edge id per rule plus
one for the fallback (entries may be null for unwired handles). `rules` is a raw parameter:
operands are resolved here with the switch's own rules (a wrapping `{{ }}` is stripped and a
`$reference` may also name a literal context key), so their values keep their JSON types.

A switch of more than `UNTIMED_STEPS` (8) rules is bounded as a whole by `worker.node_timeout`
(counted from its start), looked at before each rule: many rules over large values fail it
(`switch rule I: stopped at the node time limit of S s (worker.node_timeout)`; a rule that
errors is skipped, the time limit is not). Fewer rules cost at most that many comparisons.
"""

from __future__ import annotations

from typing import Any

from runeworker.engine.registry import UNTIMED_STEPS, NodeContext, node
from runeworker.engine.resolver import Resolver, render
from runeworker.engine.workflow import Edge, Node, Workflow
from runeworker.errors import NodeError, ResolveError
from runeworker.nodes import params
from runeworker.nodes.expression import compare, resolve_operand

_RULES = params.Wording(invalid="rules parameter must be a list of rules, not {shown}")
_OPERATOR = params.Wording(
    missing="operator must be a string, not {shown}",
    invalid="operator must be a string, not {shown}",
)


def route_switch(node: Node, output: dict[str, Any] | None, workflow: Workflow) -> list[Edge]:
    """The edge `routes[output_index]`; none when the node failed under `ignore`, the index is
    not an integral number in range, the entry is not a string, or no edge has that id."""
    index = None if output is None else output.get("output_index")
    if isinstance(index, float) and index.is_integer():
        index = int(index)
    routes = node.params.get("routes")
    if isinstance(index, bool) or not isinstance(index, int) or not isinstance(routes, list):
        return []
    if not 0 <= index < len(routes) or not isinstance(routes[index], str):
        return []
    edge = workflow.edge_by_id.get(routes[index])
    return [edge] if edge is not None else []


def _operands(rule: dict[str, Any], resolver: Resolver) -> tuple[Any, str, Any]:
    """(left, operator, right) of one rule, resolved; errors raise NodeError."""
    value = rule.get("value")
    op = params.text(rule, "operator", required=True, keep_blank=True, wording=_OPERATOR)
    # Go renders a non-string `value` and then reads it back as an operand (5 -> "5" -> 5).
    text = value if isinstance(value, str) else render(value)
    left = resolve_operand(text, resolver.lookup_direct, resolver.resolve_value)
    right = rule.get("compare")
    if isinstance(right, str):
        right = resolve_operand(right, resolver.lookup_direct, resolver.resolve_value)
    return left, op, right


def _rules(ctx: NodeContext) -> list[Any]:
    rules = ctx.params.get("rules")
    if isinstance(rules, str) and rules.strip():
        try:
            rules = ctx.resolver.resolve_value(rules)
        except ResolveError as exc:
            raise NodeError(f"rules parameter: {exc}") from exc
    return params.array({"rules": rules}, "rules", wording=_RULES)


def run(ctx: NodeContext) -> dict[str, Any]:
    """Evaluate the rules in order. Output `{"output_index": i, "matched_rule": {value,
    operator, compare}}` (see `_reported`) for the first match, else
    `{"output_index": len(rules), "fallback": True}`. A rule that errors is logged and skipped."""
    rules = _rules(ctx)
    limit = ctx.time_limit() if len(rules) > UNTIMED_STEPS else None
    for index, rule in enumerate(rules):
        if limit is not None and limit.passed():
            raise NodeError(f"switch rule {index}: {limit.message()}")
        if not isinstance(rule, dict):
            continue  # Go skips entries that are not objects
        try:
            left, op, right = _operands(rule, ctx.resolver)
            matched = compare(left, op, right)
        except NodeError as exc:
            reason = ctx.resolver.mask(str(exc))  # an operand may be a credential value
            ctx.log.warning("switch node %s: rule %d skipped: %s", ctx.node.label, index, reason)
            continue
        if matched:
            return {"output_index": index, "matched_rule": _reported(rule, op, ctx.resolver)}
    return {"output_index": len(rules), "fallback": True}


def _reported(rule: dict[str, Any], op: str, resolver: Resolver) -> dict[str, Any]:
    """`matched_rule` as the Go node reports it: its `Rule` struct after the executor resolved
    the parameters, before the evaluator reads the operands. `value` is a string (a resolved
    value that is not is rendered, as Go's `fmt.Sprintf("%v")` does; JSON-like text here, as
    everywhere, see `runeworker.engine.resolver.render`); `compare` keeps the resolved JSON
    type. A reference that does not resolve is reported as written (Go keeps the original
    parameters when resolving them fails)."""

    def resolved(operand: Any) -> Any:
        try:
            return resolver.resolve_value(operand)
        except ResolveError:
            return operand

    value, right = resolved(rule.get("value")), resolved(rule.get("compare"))
    return {"value": render(value), "operator": op, "compare": right}


# Registered by a call rather than a decorator: mutmut skips decorated functions
# (docs/MUTATION.md).
node("switch", raw=("rules",), router=route_switch, single_route=True)(run)
