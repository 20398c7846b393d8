"""The definition parsed and indexed (runeworker/engine/workflow.py): what is refused and the
words that say why, the lookup tables, duplicate ids, the credentials embedded in parameters."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from runeworker.engine.workflow import parse_definition
from runeworker.errors import WorkflowError


def _definition(nodes: list[dict[str, Any]], edges: list[dict[str, str]] | None = None) -> bytes:
    return json.dumps({"nodes": nodes, "edges": edges or []}).encode()


def test_raw_bytes_parse_as_the_bytes_do() -> None:
    data = _definition(
        [{"id": "a", "name": "A"}, {"id": "b"}], [{"id": "e", "src": "a", "dst": "b"}]
    )
    from_raw = parse_definition(msgspec.Raw(data))
    from_bytes = parse_definition(data)
    assert from_raw.nodes == from_bytes.nodes and from_raw.edges == from_bytes.edges
    assert from_raw.outgoing == {"a": [from_raw.edges[0]]}


def test_aliases_map_each_id_to_its_label_and_the_first_node_of_an_id_wins() -> None:
    wf = parse_definition(
        _definition([{"id": "n1", "name": "Fetch"}, {"id": "n2"}, {"id": "n1", "name": "Again"}])
    )
    assert wf.aliases == {"n1": "Fetch", "n2": "n2"}
    assert wf.by_id["n1"].name == "Fetch"
    assert wf.node("n2").label == "n2"


def test_a_node_that_is_not_in_the_definition_is_named() -> None:
    wf = parse_definition(_definition([{"id": "a"}]))
    with pytest.raises(WorkflowError) as err:
        wf.node("ghost")
    assert str(err.value) == "current_node ghost not found in workflow definition"


def _tool(secret: str) -> dict[str, Any]:
    return {"name": "t", "credentials": {"id": "c", "name": "n", "values": {"key": secret}}}


def test_embedded_credentials_are_kept_for_the_node_that_holds_them_only() -> None:
    wf = parse_definition(
        _definition(
            [
                {"id": "plain", "parameters": {"tools": []}},
                {"id": "agent", "parameters": {"tools": [_tool("s3cret")]}},
            ]
        )
    )
    assert wf.embedded == {"agent": [{"key": "s3cret"}]}
    assert wf.secret_blocks == [{"key": "s3cret"}]


def test_a_duplicate_id_brings_no_embedded_credentials_to_the_node_that_runs() -> None:
    # the node that runs under an id is its first; a later duplicate's embedded credentials
    # are masked in the completion (secret_blocks) but are not that node's own
    wf = parse_definition(
        _definition(
            [
                {"id": "a", "parameters": {"url": "https://example.test/"}},
                {"id": "a", "parameters": {"tools": [_tool("other")]}},
            ]
        )
    )
    assert wf.embedded == {}
    assert wf.secret_blocks == [{"key": "other"}]


def test_a_password_in_a_url_is_a_secret_block_of_its_node() -> None:
    wf = parse_definition(
        _definition([{"id": "h", "parameters": {"url": "https://ann:pw1@host.test/x"}}])
    )
    assert [list(block.values()) for block in wf.embedded["h"]] == [[["pw1"]]]


def test_node_credentials_are_secret_values_by_node_and_key() -> None:
    wf = parse_definition(
        _definition([{"id": "a", "credentials": {"type": "token", "values": {"token": "t0k"}}}])
    )
    assert wf.secret_values == {"a.token": "t0k"}


def test_a_definition_nested_too_deeply_is_refused_with_that_reason() -> None:
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    data = b'{"nodes":[{"id":"a","parameters":' + deep + b"}]}"
    with pytest.raises(WorkflowError) as err:
        parse_definition(data)
    assert str(err.value) == "workflow_definition: JSON nested too deeply"


def test_a_number_no_double_holds_is_refused_naming_go_and_rtes() -> None:
    data = b'{"nodes":[{"id":"a","parameters":{"n":1e400}}]}'
    with pytest.raises(WorkflowError) as err:
        parse_definition(data)
    message = str(err.value)
    assert message.startswith("workflow_definition: ")
    assert message.endswith(
        " (no IEEE double holds it; Go's encoding/json and RTES's serde_json refuse it)"
    )


def test_bytes_that_are_not_utf8_are_refused_at_their_offset() -> None:
    data = b'{"nodes":[{"id":"a","notes":"\xff"}]}'
    with pytest.raises(WorkflowError) as err:
        parse_definition(data)
    assert str(err.value) == "workflow_definition: invalid UTF-8 at byte 29: invalid start byte"


def test_a_definition_without_nodes_is_refused() -> None:
    with pytest.raises(WorkflowError) as err:
        parse_definition(b'{"nodes":[]}')
    assert str(err.value) == "workflow_definition must contain at least one node"


def test_ids_of_the_wrong_type_are_refused_as_go_refuses_them() -> None:
    with pytest.raises(WorkflowError) as err:
        parse_definition(b'{"workflow_id":5,"nodes":[{"id":"a"}]}')
    assert str(err.value) == "workflow_definition: Expected `str`, got `int` - at `$.workflow_id`"
