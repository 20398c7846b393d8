"""Date/time layouts: Go reference-time layouts and strftime formats, compiled to one form.

A layout compiles to a tuple of chunks: literal text, or a `Field` named after the Go token it
stands for (`2006`, `Jan`, `_2`, `Z07:00`, `.000`, ...). Formatting and parsing both work on
chunks, so a strftime format (any format containing `%`) gets exactly the parser and formatter
of the equivalent Go layout, and its literal text is never mistaken for a Go token.

Go layouts are split into tokens exactly like Go's `time.nextStdChunk` (reference time
`Mon Jan 2 15:04:05 MST 2006`), and parsing follows `time.Parse`: greedy, left to right, one
or more spaces in the layout match one or more spaces in the value, names match
case-insensitively, a fraction after the seconds is accepted even when the layout has none.
Deliberate differences: fields a layout omits default to 0001-01-01 00:00 (Python has no year
0), and fractions keep microseconds (digits past the sixth are dropped).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NUMERIC_TZ = ("-070000", "-07:00:00", "-0700", "-07:00", "-07")
_ISO_TZ = ("Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07")
# Zone names Go's parseTimeZone accepts, plus `Z`: UTC, GMT, `GMT+3` and `+03` carry an offset.
_ZONE_NAME = re.compile(
    r"UTC|(?:GMT)?([+-])([0-9]+)|GMT|Z(?![A-Za-z])"
    r"|(ChST|MeST|WITA|[A-Z]{3}T?(?![A-Z])|[A-Z]{4}T(?![A-Z]))"
)


class LayoutError(ValueError):
    """A format that cannot be compiled, or a value that does not match a layout."""


@dataclass(frozen=True)
class Field:
    """One layout element. `code` is the Go token (`H` = unpadded 24-hour hour and `z` = a
    lenient numeric offset, both strftime-only); fractions (`frac0`, `frac9`) carry their
    digit count and separator (`.` or `,`; empty for strftime's `%f`)."""

    code: str
    digits: int = 0
    sep: str = ""


Chunk = str | Field
Layout = tuple[Chunk, ...]


@dataclass(frozen=True)
class Parsed:
    """What a value said: its wall-clock time, and its zone as a UTC offset in seconds
    (numeric offsets, `Z`, `UTC`, `GMT+h`) or as an abbreviation the caller must resolve."""

    wall: datetime
    offset: int | None = None
    abbreviation: str | None = None


# Formats compiled, kept: at most 256 of at most KEPT_FORMAT_CHARS each; a longer one is compiled
# each time (by count alone, the cache kept formats of any length, as workflows write them).
KEPT_FORMAT_CHARS = 256


def compile_format(fmt: str) -> Layout:
    """Compile a strftime format (when `fmt` contains `%`) or a Go layout."""
    return _compile_kept(fmt) if len(fmt) <= KEPT_FORMAT_CHARS else _compile(fmt)


def _compile(fmt: str) -> Layout:
    return strftime_layout(fmt) if "%" in fmt else go_layout(fmt)


_compile_kept = lru_cache(maxsize=256)(_compile)


def go_layout(layout: str) -> Layout:
    """Split a Go layout into literal text and fields, as Go's `nextStdChunk` does. In time
    linear in the layout's length (a layout is the workflow's: slicing the rest of it at every
    character took 47 s for a layout of 2 MB)."""
    chunks: list[Chunk] = []
    literal = 0  # where the literal text not yet in `chunks` starts
    i, n = 0, len(layout)
    while i < n:
        hit = _std_at(layout, i)
        if hit is None:
            i += 1
            continue
        if literal < i:
            chunks.append(layout[literal:i])
        chunks.append(hit[0])
        i += hit[1]
        literal = i
    if literal < n:
        chunks.append(layout[literal:])
    return tuple(chunks)


# Go's tokens in the order `nextStdChunk` tries them; `_2006` is a literal `_` before `2006`.
_TOKENS = (
    "January", "Jan", "Monday", "Mon", "MST", "01", "02", "03", "04", "05", "06", "002", "15",
    "1", "2006", "2", "_2006", "_2", "__2", "3", "4", "5", "PM", "pm", *_NUMERIC_TZ, *_ISO_TZ,
)  # fmt: skip
# the same, by first character (two tokens that start differently never both match)
_TOKENS_BY_FIRST = {
    first: tuple(token for token in _TOKENS if token[0] == first)
    for first in dict.fromkeys(token[0] for token in _TOKENS)
}


def _std_at(layout: str, i: int) -> tuple[Field, int] | None:
    """The Go token at `layout[i]` and its length, or None for literal text."""
    char = layout[i]
    for token in _TOKENS_BY_FIRST.get(char, ()):
        if not layout.startswith(token, i):
            continue
        if token == "_2006":
            return None
        # "Jan" and "Mon" followed by a lower-case letter are words ("Janet", "Month").
        if token not in ("Jan", "Mon") or not "a" <= layout[i + 3 : i + 4] <= "z":
            return Field(token), len(token)
    digit = layout[i + 1 : i + 2]
    if char in ".," and digit in ("0", "9"):
        j, n = i + 2, len(layout)
        while j < n and layout[j] == digit:
            j += 1
        if j == n or layout[j] not in "0123456789":
            return Field("frac" + digit, j - i - 1, char), j - i
    return None


# strftime directive (with its optional `-` or `:` flag) -> the Go layout it stands for.
_STRFTIME: dict[str, Layout] = {
    **{k: (Field(v),) for k, v in {
        "Y": "2006", "y": "06", "m": "01", "-m": "1", "d": "02", "-d": "2", "e": "_2",
        "H": "15", "-H": "H", "I": "03", "-I": "3", "M": "04", "-M": "4", "S": "05",
        "-S": "5", "p": "PM", "z": "z", ":z": "-07:00", "Z": "MST", "a": "Mon",
        "A": "Monday", "b": "Jan", "h": "Jan", "B": "January", "j": "002",
    }.items()},
    "f": (Field("frac0", 6, ""),),
    "T": (Field("15"), ":", Field("04"), ":", Field("05")),
    "R": (Field("15"), ":", Field("04")),
    "F": (Field("2006"), "-", Field("01"), "-", Field("02")),
    "D": (Field("01"), "/", Field("02"), "/", Field("06")),
    "%": ("%",), "n": ("\n",), "t": ("\t",),
}  # fmt: skip
_DIRECTIVE = re.compile(r"%([-:]?.)", re.DOTALL)


def strftime_layout(fmt: str) -> Layout:
    """Compile a strftime format; an unknown directive is an error naming it."""
    parts = _DIRECTIVE.split(fmt)  # literal, directive, literal, ..., literal
    if "%" in parts[-1]:
        raise LayoutError(f"format {fmt!r} ends with an incomplete strftime directive")
    chunks: list[Chunk] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            chunks.extend([part] if part else [])
        elif part in _STRFTIME:
            chunks.extend(_STRFTIME[part])
        else:
            raise LayoutError(f"unsupported strftime directive %{part} in format {fmt!r}")
    return tuple(chunks)


_FORMATTERS: dict[str, Callable[[datetime], str]] = {
    "2006": lambda d: f"{d.year:04d}", "06": lambda d: f"{d.year % 100:02d}",
    "January": lambda d: MONTHS[d.month - 1], "Jan": lambda d: MONTHS[d.month - 1][:3],
    "1": lambda d: str(d.month), "01": lambda d: f"{d.month:02d}",
    "Monday": lambda d: WEEKDAYS[d.weekday()], "Mon": lambda d: WEEKDAYS[d.weekday()][:3],
    "2": lambda d: str(d.day), "02": lambda d: f"{d.day:02d}", "_2": lambda d: f"{d.day:2d}",
    "002": lambda d: f"{d.timetuple().tm_yday:03d}",
    "__2": lambda d: f"{d.timetuple().tm_yday:3d}",
    "15": lambda d: f"{d.hour:02d}", "H": lambda d: str(d.hour),
    "3": lambda d: str(d.hour % 12 or 12), "03": lambda d: f"{d.hour % 12 or 12:02d}",
    "4": lambda d: str(d.minute), "04": lambda d: f"{d.minute:02d}",
    "5": lambda d: str(d.second), "05": lambda d: f"{d.second:02d}",
    "PM": lambda d: "PM" if d.hour >= 12 else "AM",
    "pm": lambda d: "pm" if d.hour >= 12 else "am",
}  # fmt: skip


def format_time(moment: datetime, layout: Layout) -> str:
    """Render an aware datetime with a compiled layout."""
    return "".join(c if isinstance(c, str) else _format_field(moment, c) for c in layout)


def _format_field(moment: datetime, field: Field) -> str:
    if field.code in _FORMATTERS:
        return _FORMATTERS[field.code](moment)
    if field.code.startswith("frac"):
        digits = f"{moment.microsecond:06d}000"[: field.digits]
        if field.code == "frac9":
            digits = digits.rstrip("0")
        return field.sep + digits if digits else ""
    return _format_zone(moment, field.code)


def _format_zone(moment: datetime, code: str) -> str:
    offset = moment.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    # Go prints the zone's abbreviation, a fixed zone's offset in the -0700 form.
    if code == "MST" and (isinstance(moment.tzinfo, ZoneInfo) or seconds == 0):
        return moment.tzname() or "UTC"
    if code[0] == "Z" and seconds == 0:
        return "Z"
    code = "-0700" if code in ("MST", "z") else "-" + code[1:]
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    colon = ":" if ":" in code else ""
    text = f"{sign}{seconds // 3600:02d}"
    if code != "-07":
        text += f"{colon}{seconds // 60 % 60:02d}"
    if code in ("-070000", "-07:00:00"):
        text += f"{colon}{seconds % 60:02d}"
    return text


@dataclass
class _Reading:
    """The fields read so far (Go's locals in `time.parse`); 0 month/day/yday = not read."""

    year: int = 1
    month: int = 0
    day: int = 0
    yday: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    micro: int = 0
    ampm: str = ""
    offset: int | None = None
    abbreviation: str | None = None


def parse_time(value: str, layout: Layout) -> Parsed:
    """Read all of `value` with a compiled layout; LayoutError when it does not match. In time
    linear in the lengths of both (each reader takes the position it reads at and returns the
    one after: slicing the rest of the value at every field took 70 s for 2 MB of each)."""
    reading = _Reading()
    pos = 0
    for i, chunk in enumerate(layout):
        if isinstance(chunk, str):
            pos = _skip(value, pos, chunk)
            continue
        pos = _READERS[chunk.code](reading, value, pos, chunk)
        if chunk.code in ("5", "05") and not _fraction_follows(layout, i):
            pos = _loose_fraction(reading, value, pos)
    if pos < len(value):
        raise LayoutError(f"extra text {value[pos:]!r}")
    return _finish(reading)


def _skip(value: str, pos: int, literal: str) -> int:
    """Go's `skip`: a run of spaces in the layout matches a run of spaces in the value."""
    j, m, n = 0, len(literal), len(value)
    while j < m:
        if literal[j] == " ":
            if pos < n and value[pos] != " ":
                raise LayoutError(f"expected a space at {value[pos:]!r}")
            while j < m and literal[j] == " ":
                j += 1
            while pos < n and value[pos] == " ":
                pos += 1
            continue
        end = literal.find(" ", j)
        end = m if end < 0 else end
        if not value.startswith(literal[j:end], pos):
            while j < end and value[pos : pos + 1] == literal[j]:
                j, pos = j + 1, pos + 1
            raise LayoutError(f"expected {literal[j:]!r} at {value[pos:]!r}")
        pos += end - j
        j = end
    return pos


@lru_cache(maxsize=16)
def _digits(least: int, most: int) -> re.Pattern[str]:
    return re.compile(f"[0-9]{{{least},{most}}}")


def _num(s: str, pos: int, fixed: bool, width: int = 2) -> tuple[int, int]:
    """Go's `getnum`: up to `width` digits, exactly `width` when `fixed`; (number, next)."""
    match = _digits(width if fixed else 1, width).match(s, pos)
    if match is None:
        raise LayoutError(f"expected a number at {s[pos:]!r}")
    return int(match.group()), match.end()


# Numeric fields: code -> (attribute, fixed width, most digits, lowest, highest value).
_NUMBERS: dict[str, tuple[str, bool, int, int, int]] = {
    "2006": ("year", True, 4, 0, 9999), "06": ("year", True, 2, 0, 99),
    "1": ("month", False, 2, 1, 12), "01": ("month", True, 2, 1, 12),
    "2": ("day", False, 2, 1, 31), "02": ("day", True, 2, 1, 31), "_2": ("day", False, 2, 1, 31),
    "002": ("yday", True, 3, 1, 366), "__2": ("yday", False, 3, 1, 366),
    "15": ("hour", False, 2, 0, 23), "H": ("hour", False, 2, 0, 23),
    "3": ("hour", False, 2, 0, 12), "03": ("hour", True, 2, 0, 12),
    "4": ("minute", False, 2, 0, 59), "04": ("minute", True, 2, 0, 59),
    "5": ("second", False, 2, 0, 59), "05": ("second", True, 2, 0, 59),
}  # fmt: skip


def _read_number(r: _Reading, s: str, pos: int, f: Field) -> int:
    attribute, fixed, width, low, high = _NUMBERS[f.code]
    if f.code.startswith("_"):  # `_2` may start with one space, `__2` with two
        stop = min(pos + width - 1, len(s))
        while pos < stop and s[pos] == " ":
            pos += 1
    number, pos = _num(s, pos, fixed, width)
    if not low <= number <= high:
        raise LayoutError(f"{number} is out of range {low}..{high}")
    if f.code == "06":
        number += 1900 if number >= 69 else 2000
    setattr(r, attribute, number)
    return pos


def _read_name(r: _Reading, s: str, pos: int, f: Field) -> int:
    names: tuple[str, ...] = MONTHS if f.code in ("Jan", "January") else WEEKDAYS
    if f.code in ("Jan", "Mon"):
        names = tuple(name[:3] for name in names)
    found = [i for i, name in enumerate(names) if s[pos : pos + len(name)].lower() == name.lower()]
    if not found:
        raise LayoutError(f"expected a {f.code} name at {s[pos:]!r}")
    if f.code in ("Jan", "January"):  # Go reads a weekday name and ignores it
        r.month = found[0] + 1
    return pos + len(names[found[0]])


def _read_ampm(r: _Reading, s: str, pos: int, f: Field) -> int:
    if s[pos : pos + 2] not in (("AM", "PM") if f.code == "PM" else ("am", "pm")):
        raise LayoutError(f"expected {f.code} at {s[pos:]!r}")
    r.ampm = s[pos : pos + 2].upper()
    return pos + 2


def _read_zone_name(r: _Reading, s: str, pos: int, f: Field) -> int:
    match = _ZONE_NAME.match(s, pos)
    if match is None:
        raise LayoutError(f"expected a time zone name at {s[pos:]!r}")
    sign, hours, name = match.groups()
    if name:
        r.abbreviation = name
    elif sign and int(hours) > 23:
        raise LayoutError(f"time zone {match.group()} is out of range")
    else:  # UTC, GMT, Z, GMT+3, -03: Go's forms with a known offset
        r.offset = int(hours or 0) * (-3600 if sign == "-" else 3600)
    return match.end()


# "-07:00" -> sign, hours, minutes; strftime's %z takes +hhmm and +hh:mm.
_D2 = "([0-9]{2})"
_OFFSET_SHAPES = {
    c: re.compile(c.replace("-", "([+-])").replace("07", _D2).replace("00", _D2))
    for c in _NUMERIC_TZ
}
_OFFSET_SHAPES["z"] = re.compile(r"([+-])([0-9]{2}):?([0-9]{2})")


def _read_offset(r: _Reading, s: str, pos: int, f: Field) -> int:
    if f.code[0] in "Zz" and s.startswith("Z", pos):
        r.offset = 0
        return pos + 1
    match = _OFFSET_SHAPES["-" + f.code[1:] if f.code[0] == "Z" else f.code].match(s, pos)
    if match is None:
        raise LayoutError(f"expected a UTC offset at {s[pos:]!r}")
    sign, *numbers = match.groups()
    hh, mm, ss = (int(n) for n in [*numbers, "0", "0"][:3])
    if hh > 24 or mm > 60 or ss > 60:  # Go's own limits
        raise LayoutError(f"UTC offset {match.group()} is out of range")
    r.offset = (hh * 3600 + mm * 60 + ss) * (-1 if sign == "-" else 1)
    return match.end()


def _read_fraction(r: _Reading, s: str, pos: int, f: Field) -> int:
    if f.sep:  # Go: the separator, then exactly the layout's digits
        if s[pos : pos + 1] not in (".", ","):
            raise LayoutError(f"expected a fraction at {s[pos:]!r}")
        pos += 1
    match = _digits(f.digits if f.sep else 1, f.digits).match(s, pos)  # %f: 1 to 6
    if match is None:
        raise LayoutError(f"expected a {f.digits}-digit fraction at {s[pos:]!r}")
    r.micro = int(match.group()[:6].ljust(6, "0"))
    return match.end()


def _fraction_follows(layout: Layout, i: int) -> bool:
    """The first field after `layout[i]` is a fraction (looking no further than that field)."""
    for chunk in itertools.islice(layout, i + 1, None):
        if isinstance(chunk, Field):
            return chunk.code.startswith("frac")
    return False


_LOOSE_FRACTION = re.compile(r"[.,]([0-9]+)")


def _loose_fraction(r: _Reading, s: str, pos: int, f: Field | None = None) -> int:
    """An optional `.digits` or `,digits` of any length (what Go accepts after seconds)."""
    match = _LOOSE_FRACTION.match(s, pos)
    if match is None:
        return pos
    r.micro = int(match.group(1)[:6].ljust(6, "0"))
    return match.end()


def _finish(r: _Reading) -> Parsed:
    hour = r.hour
    if r.ampm == "PM" and hour < 12:
        hour += 12
    elif r.ampm == "AM" and hour == 12:
        hour = 0
    try:
        month, day = r.month or 1, r.day or 1
        if r.yday:
            yday = date(r.year, 1, 1) + timedelta(days=r.yday - 1)
            if (r.year, r.month or yday.month, r.day or yday.day) != yday.timetuple()[:3]:
                raise LayoutError(f"day of year {r.yday} does not match the date")
            month, day = yday.month, yday.day
        wall = datetime(r.year, month, day, hour, r.minute, r.second, r.micro)
    except (ValueError, OverflowError) as exc:
        raise LayoutError(str(exc)) from exc
    return Parsed(wall, r.offset, r.abbreviation)


_READERS: dict[str, Callable[[_Reading, str, int, Field], int]] = {
    **dict.fromkeys(_NUMBERS, _read_number),
    **dict.fromkeys(("January", "Jan", "Monday", "Mon"), _read_name),
    **dict.fromkeys(("PM", "pm"), _read_ampm),
    "MST": _read_zone_name,
    **dict.fromkeys((*_NUMERIC_TZ, *_ISO_TZ, "z"), _read_offset),
    "frac0": _read_fraction,
    "frac9": _loose_fraction,
}
