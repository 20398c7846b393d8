"""Dropbox (upstream: `services/rune-worker/pkg/integrations/providers/dropbox/`): the API v2 RPC
endpoints on `[integrations] dropbox_base_url`; every argument travels in the JSON body of a
POST, authorized by the node's credential (oauth2 access token as `Authorization: Bearer`)."""

from __future__ import annotations

from runeworker.integrations.connector import register
from runeworker.integrations.spec import FLAG, INTEGER, Arg, Tool

PATH = Arg("path", required=True)


def _files(tool: str, endpoint: str, *args: Arg, body: tuple[tuple[str, str], ...] = ()) -> Tool:
    """A `files/*` endpoint whose body is its arguments (`body` when the keys differ)."""
    pairs = body or tuple((a.name, a.name) for a in args)
    return Tool(
        f"integration.dropbox.files.{tool}",
        "POST",
        "dropbox",
        f"/2/files/{endpoint}",
        args,
        body=pairs,
    )


register(
    # `path` "" is the root folder: sent as it is, like `recursive` false.
    _files(
        "list_folder",
        "list_folder",
        Arg("path", always=True),
        Arg("recursive", FLAG, always=True),
        Arg("limit", INTEGER),
    ),
    _files("get_metadata", "get_metadata", PATH),
    _files("get_temporary_link", "get_temporary_link", PATH),
    _files("delete", "delete_v2", PATH),
    _files(
        "search",
        "search_v2",
        Arg("query", required=True),
        Arg("path"),
        Arg("filename_only", FLAG),
        body=(
            ("query", "query"),
            ("options.path", "path"),
            ("options.filename_only", "filename_only"),
        ),
    ),
)
