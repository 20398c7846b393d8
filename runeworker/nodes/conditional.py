"""`conditional` node: evaluates a condition and follows its true or false edge (upstream
services/rune-worker/pkg/nodes/custom/conditional/).

`expression` is a raw parameter: the node resolves references itself, as typed operands, so data
containing spaces, quotes or `and`/`or` cannot change the expression, and `"$flag"` alone works.
It is either an expression string (see `runeworker.nodes.expression`) or the RFC-002 structured
form, a list of `{"op1": X, "operator": OP, "op2": Y}` joined by the `operator` parameter
(`and`, the default, or `or`).

An expression of more than `UNTIMED_STEPS` (8) operands or conditions, or longer than
`KEPT_EXPRESSION_CHARS` (512), is bounded as a whole by `worker.node_timeout` (counted from its
start), looked at while it is parsed and before each value an operand reads (when evaluated and
when displayed): many comparisons over large values fail it (`reading $a: stopped at the node
time limit of S s (worker.node_timeout)`, `expression condition 9: stopped at ...`). A smaller
one costs at most that many comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runeworker.engine.registry import (
    UNTIMED_STEPS,
    NodeContext,
    TimeLimit,
    TimeLimitPassed,
    node,
)
from runeworker.engine.resolver import Resolver, render
from runeworker.engine.workflow import Edge, Node, Workflow
from runeworker.errors import NodeError, ResolveError
from runeworker.nodes import params
from runeworker.nodes.expression import (
    KEPT_EXPRESSION_CHARS,
    Expression,
    Interpolate,
    Lookup,
    canonical_operator,
    compare,
)

_JOINER = params.Wording(invalid="operator parameter must be 'and' or 'or', not '{shown}'")


def route_conditional(node: Node, output: dict[str, Any] | None, workflow: Workflow) -> list[Edge]:
    """`true_edge_id` when the result is true; `false_edge_id` when false or the node failed
    under `ignore`. A missing or unknown edge id ends the branch. An edge that is some node's
    error edge may be named here on purpose, so it is not excluded."""
    taken = output is not None and output.get("result") is True
    name = "true_edge_id" if taken else "false_edge_id"
    edge_id = params.text(node.params, name, other="default")  # never raises: routing goes on
    edge = workflow.edge_by_id.get(edge_id) if edge_id else None
    return [edge] if edge is not None else []


@dataclass(frozen=True)
class Condition:
    """One RFC-002 condition: `op1 OPERATOR op2`, operands raw until evaluated."""

    number: int  # 1-based position, for error sentences
    op1: Any
    op: str
    op2: Any

    @classmethod
    def from_raw(cls, number: int, raw: Any) -> Condition:
        """Check the shape of one list entry; a bad one raises NodeError."""
        if not isinstance(raw, dict) or "operator" not in raw:
            raise NodeError(
                f"expression condition {number} must be an object with op1, operator and op2"
            )
        try:
            op = canonical_operator(raw["operator"])
        except NodeError as exc:
            raise NodeError(f"expression condition {number}: {exc}") from exc
        return cls(number, raw.get("op1"), op, raw.get("op2"))

    def _operand(self, resolver: Resolver, name: str, raw: Any) -> Any:
        try:
            return resolver.resolve_value(raw)
        except ResolveError as exc:
            raise NodeError(f"expression condition {self.number}: {name}: {exc}") from exc

    def evaluate(self, resolver: Resolver, limit: TimeLimit | None) -> bool:
        """Resolve both operands (references and templates) and compare them, unless the node's
        time limit has passed (NodeError)."""
        if limit is not None and limit.passed():
            raise self._stopped(limit)
        left = self._operand(resolver, "op1", self.op1)
        right = self._operand(resolver, "op2", self.op2)
        try:
            return compare(left, self.op, right)
        except NodeError as exc:
            raise NodeError(f"expression condition {self.number} ({self.op}): {exc}") from exc

    def _stopped(self, limit: TimeLimit) -> NodeError:
        return NodeError(f"expression condition {self.number}: {limit.message()}")

    def display(self, resolver: Resolver, limit: TimeLimit | None) -> str:
        """`left OP right` with the operands resolved where they can be (NodeError once the
        node's time limit has passed)."""
        if limit is not None and limit.passed():
            raise self._stopped(limit)
        sides = []
        for raw in (self.op1, self.op2):
            try:
                sides.append(render(resolver.resolve_value(raw)))
            except ResolveError:
                sides.append(render(raw))
        return f"{sides[0]} {self.op} {sides[1]}"


def _structured(ctx: NodeContext, raw: list[Any]) -> dict[str, Any]:
    limit = ctx.time_limit() if len(raw) > UNTIMED_STEPS else None
    joiner = params.text(ctx.params, "operator", "and", wording=_JOINER).strip().lower()
    if joiner not in ("and", "or"):
        raise NodeError(f"operator parameter must be 'and' or 'or', not '{ctx.params['operator']}'")
    conditions = [Condition.from_raw(i, c) for i, c in enumerate(raw, 1)]
    results = (c.evaluate(ctx.resolver, limit) for c in conditions)
    result = any(results) if joiner == "or" else all(results)
    text = f" {joiner} ".join(c.display(ctx.resolver, limit) for c in conditions)
    return {"result": result, "expression": text}


def _string(ctx: NodeContext, text: str) -> dict[str, Any]:
    # a long text is parsed each time (a short one's parse is kept): under the limit
    limit = ctx.time_limit() if len(text) > KEPT_EXPRESSION_CHARS else None
    expression = Expression(text, limit)
    if limit is None and expression.operands > UNTIMED_STEPS:
        limit = ctx.time_limit()
    lookup: Lookup = ctx.resolver.lookup
    interpolate: Interpolate = ctx.resolver.resolve_value
    if limit is not None:  # looked at before each value an operand reads
        lookup, interpolate = limit.timed(lookup), limit.timed(interpolate)
    try:
        result = expression.evaluate(lookup, interpolate)
        shown = expression.display(lookup, interpolate)
    except TimeLimitPassed as exc:
        raise NodeError(str(exc)) from None
    return {"result": result, "expression": shown}


def run(ctx: NodeContext) -> dict[str, Any]:
    """Evaluate `expression`; output `{"result": bool, "expression": display text}`."""
    raw = ctx.params.get("expression")
    if isinstance(raw, dict):
        raw = [raw]  # a single structured condition
    if raw is None or raw == [] or (isinstance(raw, str) and not raw.strip()):
        raise NodeError("expression parameter is required")
    if isinstance(raw, bool):
        return {"result": raw, "expression": render(raw)}
    if isinstance(raw, str):
        return _string(ctx, raw)
    if isinstance(raw, list):
        return _structured(ctx, raw)
    raise NodeError(
        f"expression parameter must be a string or a list of conditions, not {render(raw)}"
    )


# Registered by a call rather than a decorator: mutmut skips decorated functions
# (docs/MUTATION.md).
node(
    "conditional",
    required=("expression",),
    raw=("expression",),
    router=route_conditional,
    single_route=True,
)(run)
