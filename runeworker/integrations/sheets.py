"""Google Sheets (upstream: `services/rune-worker/pkg/integrations/providers/google/sheets/`): the
Sheets API v4 on `[integrations] sheets_base_url`, and the Drive API v3 on `drive_base_url` to
delete a spreadsheet (a spreadsheet is a Drive file). Ranges are A1 notation (`Sheet1!A1:C3`),
sent as one percent-encoded path segment; `value_input_option` is the API's `valueInputOption`
query parameter (`RAW` or `USER_ENTERED`). Tools that address a tab by name (delete a tab, rows,
columns) first look its numeric `sheetId` up, as upstream does."""

from __future__ import annotations

from typing import Any

import msgspec

from runeworker.errors import NodeError
from runeworker.integrations.connector import Call, register
from runeworker.integrations.spec import ARRAY, INTEGER, Arg, Tool, family, go_int64, named

SPREADSHEET = "/v4/spreadsheets/{spreadsheet_id}"
VALUES = SPREADSHEET + "/values/{range}"
VALUES_OF_TAB = SPREADSHEET + "/values/{sheet_name}"
BATCH = SPREADSHEET + ":batchUpdate"
SHEET_FIELDS = "sheets.properties(sheetId,title)"

SPREADSHEET_ID = Arg("spreadsheet_id", required=True)
SHEET_NAME = Arg("sheet_name", required=True, trim=True)
VALUE_INPUT = Arg("value_input_option")
VALUES_ARG = Arg("values", ARRAY, required=True)
VALUE_INPUT_QUERY = (("valueInputOption", "value_input_option"),)
RANGE = Arg("range", required=True)
TAB = (SPREADSHEET_ID, SHEET_NAME)


def count(name: str) -> Arg:
    """A count or a 1-based row number: "must be >= 1"."""
    return Arg(name, INTEGER, positive=True)


def column_index(column: str) -> int:
    """1-based index of a column name (`A` = 1, `AA` = 27); lower case is accepted. Letters are
    ASCII's only, as upstream's `columnIndex` checks them one by one (str.upper() would make
    `SS` of `ß` and `I` of dotless i, U+0131)."""
    if not column:
        raise NodeError("column is required")
    index = 0
    for char in column:
        if not ("A" <= char <= "Z" or "a" <= char <= "z"):
            raise NodeError("column must use letters only")
        index = index * 26 + ord(char.upper()) - ord("A") + 1
    return index


def column_name(index: int) -> str:
    """The column name of a 1-based index (27 -> `AA`)."""
    name = ""
    while index > 0:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def row_range(sheet: str, start_column: str, row: int, count: int) -> str:
    """A1 range of `count` cells of row `row` from `start_column`: `Sheet1!B4:D4`."""
    start = column_index(start_column)
    if count <= 0:
        raise NodeError("column count must be >= 1")
    return f"{sheet}!{start_column}{row}:{column_name(start + count - 1)}{row}"


def sheet_id(call: Call) -> int:
    """The numeric id of the tab named `sheet_name` (one GET of the spreadsheet's tabs)."""
    query = {"fields": SHEET_FIELDS}
    out = call.send(call.request(method="GET", path=SPREADSHEET, query=query, body=None))
    body = out["body"]
    tabs = body.get("sheets") if isinstance(body, dict) else None
    if not isinstance(tabs, list):
        raise NodeError("unexpected response from sheets api")
    name = call.args["sheet_name"]
    for tab in tabs:
        props = tab.get("properties") if isinstance(tab, dict) else None
        if not isinstance(props, dict) or props.get("title") != name:
            continue
        found = props.get("sheetId")
        if isinstance(found, int | float) and not isinstance(found, bool):
            return go_int64(found)  # upstream's int() of the float64 it decoded
    raise NodeError(f"sheet {msgspec.json.encode(name).decode()} not found")


def _batch(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    """One `spreadsheets.batchUpdate` holding `request`."""
    return call.send(call.request(path=BATCH, body={"requests": [request]}))


def _delete_dimension(call: Call, dimension: str, start: int, count: int) -> dict[str, Any]:
    where = {"sheetId": sheet_id(call), "dimension": dimension}
    where |= {"startIndex": start, "endIndex": start + count}
    return _batch(call, {"deleteDimension": {"range": where}})


def _delete_rows(call: Call) -> dict[str, Any]:
    return _delete_dimension(call, "ROWS", call.args["start_row"] - 1, call.args["row_count"])


def _delete_columns(call: Call) -> dict[str, Any]:
    start = column_index(call.args["start_column"]) - 1
    return _delete_dimension(call, "COLUMNS", start, call.args["column_count"])


def _delete_sheet(call: Call) -> dict[str, Any]:
    return _batch(call, {"deleteSheet": {"sheetId": sheet_id(call)}})


def _create_sheet(call: Call) -> dict[str, Any]:
    a = call.args
    props: dict[str, Any] = {"title": a["title"]}
    grid = {key: a[name] for key, name in (("rowCount", "rows"), ("columnCount", "columns"))}
    grid = {key: value for key, value in grid.items() if value > 0}
    if grid:
        props["gridProperties"] = grid
    return _batch(call, {"addSheet": {"properties": props}})


def _clear(call: Call) -> dict[str, Any]:
    # An empty range clears the whole tab; a range without a tab is taken in `sheet_name`.
    sheet, cells = call.args["sheet_name"], call.args["range"]
    call.args["range"] = sheet if not cells else cells if "!" in cells else f"{sheet}!{cells}"
    return call.send()


def _update_row(call: Call) -> dict[str, Any]:
    a = call.args
    if not all(isinstance(row, list) for row in a["values"]):
        raise NodeError("values must be a two-dimensional array")
    if len(a["values"]) != 1:
        raise NodeError("values must contain exactly one row")
    cells = a["range"] = row_range(
        a["sheet_name"], a["start_column"], a["row_number"], len(a["values"][0])
    )
    return call.send(call.request(body={"range": cells, "values": a["values"]}))


tool = family("integration.google.sheets", "sheets")


def _writing(name: str, method: str, path: str, *args: Arg, **spec: Any) -> Tool:
    """A tool that writes `values`, interpreted as `value_input_option` says."""
    args += (VALUES_ARG, VALUE_INPUT)
    return tool(name, method, path, *args, query=VALUE_INPUT_QUERY, **spec)


START_COLUMN = Arg("start_column", required=True, trim=True)
ROWS = (count("start_row"), count("row_count"))
COLUMNS = (START_COLUMN, count("column_count"))
NEW_TAB = (SPREADSHEET_ID, Arg("title", required=True, trim=True))
GRID = (Arg("rows", INTEGER), Arg("columns", INTEGER))
ROW = (count("row_number"), START_COLUMN)

register(
    tool("read_range", "GET", VALUES, SPREADSHEET_ID, RANGE),
    _writing("write_range", "PUT", VALUES, SPREADSHEET_ID, RANGE, body=named("range", "values")),
    _writing("append_row", "POST", VALUES_OF_TAB + ":append", *TAB, body=named("values")),
    _writing("update_row", "PUT", VALUES, *TAB, *ROW, hook=_update_row),
    tool("clear", "POST", VALUES + ":clear", *TAB, Arg("range", trim=True), hook=_clear),
    tool("delete_sheet", "POST", BATCH, *TAB, hook=_delete_sheet),
    tool("delete_rows", "POST", BATCH, *TAB, *ROWS, hook=_delete_rows),
    tool("delete_columns", "POST", BATCH, *TAB, *COLUMNS, hook=_delete_columns),
    tool("create_sheet", "POST", BATCH, *NEW_TAB, *GRID, hook=_create_sheet),
    tool(
        "create_spreadsheet",
        "POST",
        "/v4/spreadsheets",
        Arg("title", required=True),
        body=(("properties.title", "title"),),
    ),
    # A spreadsheet is a Drive file: deleting it is Drive's business.
    family("integration.google.sheets", "drive")(
        "delete_spreadsheet", "DELETE", "/drive/v3/files/{spreadsheet_id}", SPREADSHEET_ID
    ),
)
