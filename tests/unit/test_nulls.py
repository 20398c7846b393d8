"""`null` in an optional field of an execution message or a workflow definition reads as an
absent key, as Go's encoding/json reads it (runeworker.engine.nulls)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from runeworker.engine.messages import StackFrame, decode_execution
from runeworker.engine.nulls import TolerantDecoder
from runeworker.engine.workflow import Credential, ErrorPolicy, parse_definition
from runeworker.errors import MessageError, WorkflowError


def rtes_simulator_message() -> dict[str, Any]:
    """The execution message of services/rtes/scripts/simulate_events.py (publish_execution and
    build_workflow_definition), with its nulls and its nodes' `"output": {}`."""
    smtp_values = {"host": "smtp.example.com", "port": 587, "username": "u", "password": "p"}
    return {
        "workflow_id": "workflow-1",
        "execution_id": "execution-1",
        "current_node": "node-http-1",
        "workflow_definition": {
            "workflow_id": "workflow-1",
            "execution_id": "execution-1",
            "nodes": [
                {
                    "id": "node-http-1",
                    "name": "HTTP Request",
                    "type": "http",
                    "parameters": {"method": "GET", "url": "https://example.com/uuid"},
                },
                {
                    "id": "node-smtp-success",
                    "name": "SMTP Success",
                    "type": "smtp",
                    "parameters": {"to": "to@example.com"},
                    "credentials": {"id": "c", "name": "n", "type": "smtp", "values": smtp_values},
                    "output": {},
                },
            ],
            "edges": [{"id": "e", "src": "node-http-1", "dst": "node-smtp-success"}],
        },
        "accumulated_context": {},
        "lineage_stack": [],
        "from_node": None,
        "is_worker_initiated": True,
    }


def test_the_rtes_simulator_message_decodes() -> None:
    msg = decode_execution(json.dumps(rtes_simulator_message()).encode())
    assert (msg.from_node, msg.is_worker_initiated, msg.lineage_stack) == (UNSET, True, [])
    wf = parse_definition(msg.workflow_definition)
    values = {"host": "smtp.example.com", "port": 587, "username": "u", "password": "p"}
    assert wf.node("node-smtp-success").credentials == Credential("c", "n", "smtp", values)


OPTIONAL_TOP = [
    "from_node",
    "lineage_stack",
    "is_worker_initiated",
    "workflow_version",
    "workflow_version_id",
    "accumulated_context",
    "branch_token",
    "ghost",
    "started_at_ms",
]


@pytest.mark.parametrize("key", OPTIONAL_TOP)
def test_null_in_an_optional_message_field_is_absent(key: str) -> None:
    doc = rtes_simulator_message()
    doc.pop(key, None)
    expected = decode_execution(json.dumps(doc).encode())
    doc[key] = None
    got = decode_execution(json.dumps(doc).encode())
    assert got == expected
    assert getattr(got, key) == getattr(expected, key)


NODE_NULLS = ["type", "name", "trigger", "parameters", "credentials", "error", "output", "notes"]


@pytest.mark.parametrize("key", NODE_NULLS)
def test_null_in_an_optional_node_field_is_absent(key: str) -> None:
    doc = rtes_simulator_message()
    node = doc["workflow_definition"]["nodes"][1]
    node.pop(key, None)
    expected = parse_definition(json.dumps(doc["workflow_definition"]).encode()).nodes[1]
    node[key] = None
    got = parse_definition(json.dumps(doc["workflow_definition"]).encode()).nodes[1]
    assert got == expected


def test_nulls_inside_credentials_error_policies_and_edges() -> None:
    definition = {
        "workflow_id": None,
        "execution_id": None,
        "nodes": [
            {
                "id": "a",
                "credentials": {"id": None, "name": None, "type": "token", "values": None},
                "error": {"type": None, "error_edge": None},
            },
            {"id": "b", "credentials": {"type": "token", "values": {"token": None}}},
        ],
        "edges": None,
    }
    wf = parse_definition(json.dumps(definition).encode())
    a, b = wf.nodes
    assert a.credentials == Credential(type="token")
    assert a.error == ErrorPolicy()
    assert wf.edges == []
    # a null credential value is the value null, not an absent key (values are data)
    assert b.credentials is not None and b.credentials.values == {"token": None}


def test_nulls_in_data_are_kept() -> None:
    doc = rtes_simulator_message()
    doc["from_node"] = None
    doc["accumulated_context"] = {"$input": {"x": None}, "$empty": None}
    doc["workflow_definition"]["nodes"][0]["parameters"] = {"body": None, "list": [None]}
    msg = decode_execution(json.dumps(doc).encode())
    assert msg.accumulated_context == {"$input": {"x": None}, "$empty": None}
    params = parse_definition(msg.workflow_definition).nodes[0].parameters
    assert params == {"body": None, "list": [None]}


def test_the_definition_bytes_survive_unchanged() -> None:
    doc = rtes_simulator_message()
    definition = json.dumps(doc["workflow_definition"], indent=1).encode()
    body = json.dumps({**doc, "workflow_definition": "MARK"}).encode()
    body = body.replace(b'"MARK"', definition)
    msg = decode_execution(body)
    assert bytes(msg.workflow_definition) == definition


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"execution_id": None}, "$.execution_id"),
        ({"current_node": None}, "$.current_node"),
        ({"workflow_definition": None}, "workflow_definition"),
        ({"lineage_stack": [{"split_node_id": None}]}, "$.lineage_stack[0].split_node_id"),
        ({"from_node": 3}, "$.from_node"),
    ],
)
def test_nulls_in_required_fields_and_wrong_types_are_still_refused(
    change: dict[str, Any], where: str
) -> None:
    doc = {**rtes_simulator_message(), **change}
    with pytest.raises((MessageError, WorkflowError)) as info:
        parse_definition(decode_execution(json.dumps(doc).encode()).workflow_definition)
    assert where in str(info.value)


def test_a_required_null_inside_the_definition_is_named() -> None:
    data = b'{"nodes": [{"id": "a"}], "edges": [{"id": "e", "src": "a", "dst": null}]}'
    with pytest.raises(WorkflowError, match=r"Expected `str`, got `null` - at `\$.edges\[0\].dst`"):
        parse_definition(data)


class _Leaf(msgspec.Struct):
    a: int = 0
    tag: str = ""


class _Tree(msgspec.Struct):
    name: str
    child: _Tree | None = None
    kids: dict[str, list[StackFrame]] = msgspec.field(default_factory=dict)
    note: str = ""
    leaves: list[_Leaf] = msgspec.field(default_factory=list)
    by_name: dict[str, _Leaf] = msgspec.field(default_factory=dict)
    either: _Leaf | int | None = None
    label: str | None = None  # a union without a Struct
    data: Any = None


def test_recursive_structs_lists_and_dicts_of_structs() -> None:
    frame = {"split_node_id": "s", "branch_id": "b", "item_index": 0, "total_items": 1}
    data = {"name": "a", "note": None, "child": {"name": "b", "note": None, "child": None}}
    data["kids"] = {"k": [frame]}
    got = TolerantDecoder(_Tree).decode(json.dumps(data))
    assert got == _Tree("a", _Tree("b"), {"k": [StackFrame("s", "b", 0, 1)]})


# -- the plan of a type built afresh, its nulls where Structs are (found by mutation testing) --


def test_nulls_are_absent_in_structs_inside_lists_dicts_unions_and_recursion() -> None:
    decoder = TolerantDecoder(_Tree)
    got = decoder.decode(
        b'{"name":"t","leaves":[{"a":null,"tag":"x"}],"by_name":{"k":{"a":null,"tag":null}},'
        b'"child":{"name":"c","leaves":null,"child":{"name":"g","either":null}},'
        b'"either":{"a":null},"label":null,"data":{"a":null}}'
    )
    assert got == _Tree(
        "t",
        _Tree("c", child=_Tree("g")),
        leaves=[_Leaf(0, "x")],
        by_name={"k": _Leaf()},
        either=_Leaf(),
        label=None,
        data={"a": None},  # free data keeps its null
    )


def test_a_required_field_that_is_null_is_named() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Expected `str`, got `null` - at `\$.name`"):
        TolerantDecoder(_Tree).decode(b'{"name":null,"leaves":null}')
    with pytest.raises(
        msgspec.ValidationError, match=r"Expected `int`, got `str` - at `\$.by_name\[...\].a`"
    ):
        TolerantDecoder(_Tree).decode(b'{"name":"t","by_name":{"k":{"a":"x","tag":null}}}')


def test_a_type_without_structs_is_refused() -> None:
    with pytest.raises(AssertionError, match="holds no Struct"):
        TolerantDecoder(dict[str, int])
