"""Text from the data (a workflow's input, a server's answer, a dead-lettered message) made safe
to print on a terminal or write to a text log: its control characters are written as escapes, so
that it can neither forge a line of the output nor send an escape sequence to the terminal, and
so are the invisible characters that reorder or break what is shown around them (Unicode's
bidirectional controls, the line and paragraph separators)."""

from __future__ import annotations

# C0 (but the tab and, in `multiline`, the newline), DEL and C1 control characters
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0))}
_CONTROLS |= {0x0A: "\\n", 0x0D: "\\r"}
# the bidirectional formatting characters (Unicode's "Trojan Source" set: a right-to-left override
# shows the text after it reversed) and the line and paragraph separators (a new line to many
# viewers)
_CONTROLS |= {
    c: f"\\u{c:04x}"
    for c in (0x061C, 0x200E, 0x200F, *range(0x2028, 0x202F), *range(0x2066, 0x206A))
}
_CONTROLS_BUT_NEWLINE = {c: e for c, e in _CONTROLS.items() if c != 0x0A}


def one_line(text: str) -> str:
    """`text` with its control characters escaped (a newline as `\\n`, ESC as `\\x1b`)."""
    return text.translate(_CONTROLS)


def multiline(text: str) -> str:
    """`text` with its control characters but the newline and the tab escaped."""
    return text.translate(_CONTROLS_BUT_NEWLINE)


# what json.dumps(ensure_ascii=False) leaves raw: DEL and C1 (0x9b is an 8-bit CSI)
_JSON_CONTROLS = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def json_text(text: str) -> str:
    """JSON text written by json.dumps(ensure_ascii=False), its DEL and C1 characters
    escaped as JSON escapes (it stays the same JSON)."""
    return text.translate(_JSON_CONTROLS)
