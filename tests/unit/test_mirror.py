"""The mirror of a start message (`masked_mirror`, docs/WIRE.md section 6): RTES stores the
mirrored definition's nodes in MongoDB (`upsert_execution_definition` in upstream's
services/rtes/src/infra/execution_store.rs) and serves them back to the web app. RTES blanks a
node's own `credentials` itself (`normalize_node`), but keeps `parameters` as they come, so the
credentials the API embeds in an agent's `parameters.tools[]` and `parameters.mcp_servers[]`
(`_resolve_agent_nested_credentials` in services/api/src/workflow/service.py) must be masked by
the worker before they are mirrored."""

from __future__ import annotations

from typing import Any

import msgspec

from runeworker.engine.messages import decode_execution, masked_mirror


def _credential(cid: str, kind: str, **values: str) -> dict[str, Any]:
    return {"id": cid, "name": f"cred {cid}", "type": kind, "values": values}


def _start(nodes: list[dict[str, Any]]) -> bytes:
    return msgspec.json.encode(
        {
            "workflow_id": "12",
            "workflow_version": 3,
            "workflow_version_id": 31,
            "execution_id": "ex-mirror",
            "current_node": nodes[0]["id"],
            "workflow_definition": {"nodes": nodes, "edges": []},
            "accumulated_context": {},
        }
    )


def _agent() -> dict[str, Any]:
    return {
        "id": "agent",
        "name": "Agent",
        "type": "agent",
        "credentials": _credential("1", "gemini_api_key", api_key="NODE-SECRET"),
        "parameters": {
            "model": {"provider": "gemini", "name": "gemini-2.5-flash"},
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {
                    "type": "http_request",
                    "name": "lookup",
                    "credential": {"id": "3"},
                    "credentials": _credential("3", "token", token="TOOL-SECRET"),
                    "config": {"method": "GET", "url": {"mode": "fixed", "value": "http://x"}},
                },
                {  # the flat form, which the agent reads too
                    "type": "http_request",
                    "name": "flat",
                    "credentials": {
                        "id": "5",
                        "type": "header",
                        "field": "X-Key",
                        "value": "FLAT-SECRET",
                    },
                    "config": {"method": "GET", "url": {"mode": "fixed", "value": "http://y"}},
                },
            ],
            "mcp_servers": [
                {
                    "name": "docs",
                    "transport": "sse",
                    "url": "http://mcp",
                    "credential": {"id": "4"},
                    "credentials": _credential("4", "header", field="X-Api", value="MCP-SECRET"),
                }
            ],
        },
    }


def test_the_mirror_masks_the_credentials_embedded_in_an_agents_parameters() -> None:
    mirrored = masked_mirror(decode_execution(_start([_agent()])))
    for secret in (b"NODE-SECRET", b"TOOL-SECRET", b"FLAT-SECRET", b"MCP-SECRET"):
        assert secret not in mirrored, secret
    params = msgspec.json.decode(mirrored)["workflow_definition"]["nodes"][0]["parameters"]
    tool, flat = params["tools"]
    assert tool["credentials"] == {"id": "3", "name": "cred 3", "type": "token",
                                   "values": {"token": "***"}}  # fmt: skip
    assert tool["credential"] == {"id": "3"}  # the reference stays, it unlocks nothing
    assert flat["credentials"] == {"id": "5", "type": "header", "field": "***", "value": "***"}
    assert params["mcp_servers"][0]["credentials"]["values"] == {"field": "***", "value": "***"}


def test_odd_shapes_are_mirrored_unchanged_but_a_credential_that_is_no_object() -> None:
    """Lists that are not lists are left as they are; a `credentials` that is no object may be
    a secret itself (a bare token), so it is masked whole."""
    log = {"id": "say", "name": "Say", "type": "log", "parameters": {"message": "hi",
           "tools": "not a list", "mcp_servers": [{"credentials": "a-bare-token"}]}}  # fmt: skip
    body = _start([log])
    mirrored = masked_mirror(decode_execution(body))
    assert b"a-bare-token" not in mirrored
    expected = msgspec.json.decode(body)["workflow_definition"]
    expected["nodes"][0]["parameters"]["mcp_servers"][0]["credentials"] = "***"
    assert msgspec.json.decode(mirrored)["workflow_definition"] == expected


def test_credentials_anywhere_in_a_refused_definition_are_masked_too() -> None:
    """A definition the step will refuse (its nodes under a misspelt key) is mirrored first:
    the credentials of the objects it holds, at any depth, must not reach RTES."""
    agent = _agent()
    body = msgspec.json.encode(
        {
            "workflow_id": "12",
            "execution_id": "ex-mirror",
            "current_node": "agent",
            "workflow_definition": {"Nodes": [agent], "edges": [{"deep": [[agent]]}]},
            "accumulated_context": {},
        }
    )
    mirrored = masked_mirror(decode_execution(body))
    for secret in (b"NODE-SECRET", b"TOOL-SECRET", b"FLAT-SECRET", b"MCP-SECRET"):
        assert secret not in mirrored, secret
    definition = msgspec.json.decode(mirrored)["workflow_definition"]
    node = definition["edges"][0]["deep"][0][0]
    assert node["credentials"] == {"id": "1", "name": "cred 1", "type": "gemini_api_key",
                                   "values": {"api_key": "***"}}  # fmt: skip
    assert node["parameters"]["model"] == {"provider": "gemini", "name": "gemini-2.5-flash"}


def _escaped(key: str) -> str:
    """`key` as a JSON string of \\u escapes only: the same key to every JSON reader."""
    return '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"'


def test_a_credentials_key_spelt_with_escapes_is_masked_too() -> None:
    """Found by tests/fuzz: a node's `credentials` key written `"\\u0063redentials"` (JSON
    that every reader takes for `credentials`, and so does the step, which runs the node with
    them) was mirrored with its values in clear, since the bytes never held `"credentials"`.
    Likewise one nested where no node holds it, beside a plain one."""
    log = {"id": "say", "name": "Say", "type": "log", "parameters": {"message": "hi"},
           "credentials": _credential("1", "token", token="NODE-SECRET")}  # fmt: skip
    body = _start([log]).replace(b'"credentials"', _escaped("credentials").encode())
    msg = decode_execution(body)
    assert msgspec.json.decode(bytes(msg.workflow_definition))["nodes"][0]["credentials"]
    mirrored = msgspec.json.decode(masked_mirror(msg))  # a secret spelt with escapes counts too
    assert "NODE-SECRET" not in msgspec.json.encode(mirrored).decode()
    assert mirrored["workflow_definition"]["nodes"][0]["credentials"]["values"] == {"token": "***"}

    agent = _agent()
    agent["parameters"]["extra"] = {"credentials": _credential("9", "token", token="DEEP-SECRET")}
    body = _start([agent]).replace(b'{"credentials"', b"{" + _escaped("credentials").encode())
    assert body.count(b'"credentials"') == 4  # the node's own and the three embedded ones
    mirrored = msgspec.json.decode(masked_mirror(decode_execution(body)))
    assert "DEEP-SECRET" not in msgspec.json.encode(mirrored).decode()


def test_a_definition_no_json_reader_takes_is_mirrored_empty() -> None:
    """Found by tests/fuzz: invalid UTF-8 where the worker's types skip it (an edge's `label`,
    the web app's `notes`) reached the mirror byte for byte, and RTES (serde) refuses the whole
    mirror: the execution was lost to it. Such a definition is refused by the step (its
    `failed` status names it); its mirror carries no definition, as one that cannot be masked."""
    body = _start([{"id": "say", "name": "Say", "type": "log", "parameters": {"message": "hi"}}])
    body = body.replace(b'"edges":[]', b'"edges":[],"notes":"caf\xe9"')
    mirrored = masked_mirror(decode_execution(body))
    mirrored.decode("utf-8")  # strict: raises on invalid UTF-8
    assert msgspec.json.decode(mirrored)["workflow_definition"] == {}
