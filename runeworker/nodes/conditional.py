"""`conditional` node: evaluates a condition and follows its true or false edge (upstream
services/rune-worker/pkg/nodes/custom/conditional/).

`expression` is a raw parameter: the node resolves references itself, as typed operands, so data
containing spaces, quotes or `and`/`or` cannot change the expression, and `"$flag"` alone works.
It is either an expression string (see `runeworker.nodes.expression`) or the RFC-002 structured
form, a list of `{"op1": X, "operator": OP, "op2": Y}` joined by the `operator` parameter
(`and`, the default, or `or`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runeworker.engine.registry import NodeContext, node
from runeworker.engine.resolver import Resolver, render
from runeworker.engine.workflow import Edge, Node, Workflow
from runeworker.errors import NodeError, ResolveError
from runeworker.nodes import params
from runeworker.nodes.expression import Expression, canonical_operator, compare

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

    def evaluate(self, resolver: Resolver) -> bool:
        """Resolve both operands (references and templates) and compare them."""
        left = self._operand(resolver, "op1", self.op1)
        right = self._operand(resolver, "op2", self.op2)
        try:
            return compare(left, self.op, right)
        except NodeError as exc:
            raise NodeError(f"expression condition {self.number} ({self.op}): {exc}") from exc

    def display(self, resolver: Resolver) -> str:
        """`left OP right` with the operands resolved where they can be."""
        sides = []
        for raw in (self.op1, self.op2):
            try:
                sides.append(render(resolver.resolve_value(raw)))
            except ResolveError:
                sides.append(render(raw))
        return f"{sides[0]} {self.op} {sides[1]}"


def _structured(ctx: NodeContext, raw: list[Any]) -> dict[str, Any]:
    joiner = params.text(ctx.params, "operator", "and", wording=_JOINER).strip().lower()
    if joiner not in ("and", "or"):
        raise NodeError(f"operator parameter must be 'and' or 'or', not '{ctx.params['operator']}'")
    conditions = [Condition.from_raw(i, c) for i, c in enumerate(raw, 1)]
    results = (c.evaluate(ctx.resolver) for c in conditions)
    result = any(results) if joiner == "or" else all(results)
    text = f" {joiner} ".join(c.display(ctx.resolver) for c in conditions)
    return {"result": result, "expression": text}


def _string(ctx: NodeContext, text: str) -> dict[str, Any]:
    expression = Expression(text)
    lookup, interpolate = ctx.resolver.lookup, ctx.resolver.resolve_value
    result = expression.evaluate(lookup, interpolate)
    return {"result": result, "expression": expression.display(lookup, interpolate)}


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
