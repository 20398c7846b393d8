"""`null` in an optional field of a wire Struct decodes as if the key were absent.

Go's `encoding/json` leaves a field at its zero value when the JSON says `null`, so every Rune
party may write `null` for a key it has no value for: RTES's own event simulator
(`services/rtes/scripts/simulate_events.py`) sends `"from_node": null`, `"lineage_stack": null`
and nodes with `"output": {}`; other producers write `"credentials": null` or
`"error": null`. msgspec refuses `null` where the type does not allow it.

`TolerantDecoder` keeps msgspec's typed decoder as the only path for messages without such a
`null` (no cost there), and only when that decoder refuses a message that contains `null`, it
removes the optional keys whose value is `null` from the objects that are Structs, at any depth
the Struct types reach (a node's `credentials` inside the workflow definition, a lineage
frame), and decodes again. Values the types leave free (`accumulated_context`, `parameters`,
`Any`, `msgspec.Raw`) are never touched: a `null` there is data. A required field that is
`null` stays so, and msgspec names it (`Expected str, got null - at $.execution_id`). The
pruned objects are rebuilt from the bytes of their members, so the bytes of a `msgspec.Raw`
field survive unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
import msgspec.inspect as mi

T = TypeVar("T")

_NULL = msgspec.Raw(b"null")
_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_array = msgspec.json.Decoder(list[msgspec.Raw])
_encode = msgspec.json.encode


@dataclass
class _Plan:
    """Where Structs are in a type: `kind` is struct, list or dict; `fields` maps the JSON
    name of a struct field to the plan of its value (only fields that hold Structs);
    `optional` names the fields that have a default."""

    kind: str
    fields: dict[str, _Plan] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    items: _Plan | None = None


def _plan(t: mi.Type, seen: dict[type, _Plan]) -> _Plan | None:
    """The plan of a msgspec type, None when no Struct is inside it."""
    if isinstance(t, mi.StructType):
        if t.cls in seen:  # a recursive Struct reuses its plan
            return seen[t.cls]
        optional = frozenset(f.encode_name for f in t.fields if not f.required)
        plan = seen[t.cls] = _Plan("struct", optional=optional)
        for f in t.fields:
            sub = _plan(f.type, seen)
            if sub is not None:
                plan.fields[f.encode_name] = sub
        return plan
    if isinstance(t, mi.ListType | mi.DictType):
        inner = _plan(t.item_type if isinstance(t, mi.ListType) else t.value_type, seen)
        kind = "list" if isinstance(t, mi.ListType) else "dict"
        return None if inner is None else _Plan(kind, items=inner)
    if isinstance(t, mi.UnionType):
        return next((p for p in (_plan(m, seen) for m in t.types) if p is not None), None)
    return None


def _prune(raw: bytes | msgspec.Raw, plan: _Plan) -> bytes | msgspec.Raw:
    """`raw` without the null members of its Struct objects; input of an unexpected shape is
    returned as it is (the typed decoder then reports it)."""
    try:
        if plan.kind == "list":
            assert plan.items is not None
            return _encode([msgspec.Raw(_prune(v, plan.items)) for v in _array.decode(raw)])
        obj = _object.decode(raw)
    except msgspec.DecodeError:
        return raw
    if plan.kind == "dict":
        assert plan.items is not None
        return _encode({k: msgspec.Raw(_prune(v, plan.items)) for k, v in obj.items()})
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if value == _NULL and key in plan.optional:
            continue
        sub = plan.fields.get(key)
        out[key] = value if sub is None else msgspec.Raw(_prune(value, sub))
    return _encode(out)


class TolerantDecoder(Generic[T]):
    """A `msgspec.json.Decoder(type_)` that reads `null` in a Struct field as an absent key."""

    def __init__(self, type_: type[T]) -> None:
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)
        plan = _plan(mi.type_info(type_), {})
        assert plan is not None, f"{type_!r} holds no Struct"
        self._plan = plan

    def decode(self, data: bytes | str) -> T:
        """Decode `data`; raises what `msgspec.json.Decoder.decode` raises."""
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError:
            raw = data.encode() if isinstance(data, str) else data
            if b"null" not in raw:
                raise
            # the second attempt reports whatever is still wrong once nulls mean "absent"
            return self._decoder.decode(_prune(raw, self._plan))
