"""Dropbox (upstream: `services/rune-worker/pkg/integrations/providers/dropbox/`): the API v2 RPC
endpoints on `[integrations] dropbox_base_url`; every argument travels in the JSON body of a
POST, authorized by the node's credential (oauth2 access token as `Authorization: Bearer`)."""

from __future__ import annotations

from runeworker.integrations.connector import register
from runeworker.integrations.spec import FLAG, INTEGER, Arg, Tool, family, named

PATH = Arg("path", required=True)
tool = family("integration.dropbox.files", "dropbox")


def _files(name: str, endpoint: str, *args: Arg) -> Tool:
    """A `files/*` endpoint whose JSON body is its arguments."""
    return tool(name, "POST", f"/2/files/{endpoint}", *args, body=named(*(a.name for a in args)))


# Search options nest under "options", which is left out when none is set.
SEARCH_BODY: tuple[tuple[str, str], ...] = (("query", "query"), ("options.path", "path"))
SEARCH_BODY += (("options.filename_only", "filename_only"),)

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
    tool(
        "search",
        "POST",
        "/2/files/search_v2",
        Arg("query", required=True),
        Arg("path", blank=True),  # upstream: `if args.Path != ""`
        Arg("filename_only", FLAG),
        body=SEARCH_BODY,
    ),
)
