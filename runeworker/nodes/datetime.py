"""Date/time nodes: `dateTimeNow`, `dateTimeAdd`, `dateTimeSubtract`, `dateTimeFormat` and
`dateTimeParse` (reference 5.12, with the fixes of 8 item 31).

Common parameters: `timezone` (IANA name, default and blank = UTC) and `format` (a Go layout
such as `2006-01-02 15:04 MST`, or a strftime format such as `%Y-%m-%d %H:%M %Z`, recognised by
its `%`; default RFC 3339). Results are expressed in `timezone`.

`date` may be text (tried with the node's own `format` first, then `PARSE_LAYOUTS` in order;
naive text is wall-clock time in `timezone`) or a JSON number of seconds since the Unix epoch;
a number whose magnitude exceeds `EPOCH_MS_THRESHOLD` (1e11, about the year 5138 in seconds)
is read as milliseconds. A zone abbreviation in the text must be UTC, GMT, Z, or one the zone
of `timezone` uses in that year (`EET` in Africa/Cairo, `EST` or `EDT` in America/New_York);
any other abbreviation is an error naming it, where Go silently reads it as UTC.

Arithmetic: seconds, minutes and hours are exact durations; days and weeks move the calendar
date keeping the wall-clock time across DST changes; months and years do the same and clamp
the day to the end of the target month (Jan 31 + 1 month = Feb 28 or 29, Feb 29 + 1 year =
Feb 28). Go normalises the overflow instead (Jan 31 + 1 month = Mar 3); clamping is what a
person means by "one month later". A wall-clock time that a DST change skips is moved forward
by the length of the gap (02:30 on a spring-forward day becomes 03:30).
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from runeworker.engine.registry import NodeContext, node
from runeworker.engine.resolver import render
from runeworker.errors import NodeError
from runeworker.nodes.datetime_layouts import (
    WEEKDAYS,
    Layout,
    LayoutError,
    Parsed,
    compile_format,
    format_time,
    parse_time,
)

DEFAULT_FORMAT = "2006-01-02T15:04:05Z07:00"
UI_PRESETS = (
    DEFAULT_FORMAT,
    "2006-01-02",
    "2006-01-02 15:04",
    "02 Jan 2006",
    "Mon, 02 Jan 2006 15:04 MST",
)
# Tried in this order after the node's own format (Go's list, RFC3339 first).
PARSE_LAYOUTS = (
    DEFAULT_FORMAT,
    "2006-01-02T15:04:05.999999999Z07:00",
    "2006-01-02 15:04:05",
    "2006-01-02 15:04",
    "2006-01-02",
    "Mon, 02 Jan 2006 15:04:05 -0700",
    "Mon, 02 Jan 2006 15:04:05 MST",
    "Mon, 02 Jan 2006 15:04 MST",
    "Mon, 02 Jan 2006 15:04 -0700",
    "02 Jan 2006 15:04 MST",
    "02 Jan 2006 15:04 -0700",
    "02 Jan 2006",
    "02 Jan 06 15:04 -0700",
    "02 Jan 06 15:04 MST",
)
UNITS = ("seconds", "minutes", "hours", "days", "weeks", "months", "years")
EPOCH_MS_THRESHOLD = 1e11
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INTEGER = re.compile(r"[+-]?[0-9]+")


def now() -> datetime:
    """The current instant; tests replace this module attribute to freeze the clock."""
    return datetime.now(UTC)


class UnknownAbbreviation(ValueError):
    """A zone abbreviation that neither UTC nor the node's time zone uses."""

    def __init__(self, abbreviation: str) -> None:
        super().__init__(abbreviation)
        self.abbreviation = abbreviation


# ---- parameters ----------------------------------------------------------------------------


def zone_param(params: dict[str, Any]) -> ZoneInfo:
    """`timezone`: an IANA name; absent or blank means UTC."""
    raw = params.get("timezone")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ZoneInfo("UTC")
    name = raw.strip() if isinstance(raw, str) else render(raw)
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as exc:  # not found, bad key, a directory
        raise NodeError(f"invalid timezone: unknown time zone {name}") from exc


def format_param(params: dict[str, Any]) -> Layout:
    """`format`: a Go layout or a strftime format; absent or blank means RFC 3339."""
    raw = params.get("format")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return compile_format(DEFAULT_FORMAT)
    if not isinstance(raw, str):
        raise NodeError(f"format parameter must be a layout string, got {render(raw)}")
    try:
        return compile_format(raw)
    except LayoutError as exc:
        raise NodeError(f"format parameter is invalid: {exc}") from exc


def amount_param(params: dict[str, Any]) -> int:
    """`amount`: an integer, an integral float, or the text of an integer."""
    raw = params.get("amount")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise NodeError("amount parameter is required")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
        return int(raw.strip())
    raise NodeError(f"amount parameter is required to be a whole number, got {render(raw)}")


def unit_param(params: dict[str, Any]) -> str:
    """`unit`: one of `UNITS`, any case; absent or blank means days."""
    raw = params.get("unit")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return "days"
    unit = raw.strip().lower() if isinstance(raw, str) else ""
    if unit not in UNITS:
        raise NodeError(f"unsupported unit: {render(raw)}")
    return unit


def date_param(
    params: dict[str, Any], zone: ZoneInfo, extra: Layout | None, *, required: bool
) -> datetime | None:
    """`date` as an instant in `zone`; None when it is optional and absent or blank."""
    raw = params.get("date")
    if raw is None:
        if required:
            raise NodeError("date parameter is required")
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return from_epoch(raw, zone)
    if not isinstance(raw, str):
        raise NodeError(f"unsupported date value: {render(raw)}")
    text = raw.strip()
    if not text:
        if required:
            raise NodeError("date value is required")
        return None
    return parse_date(text, zone, extra)


def _required_date(params: dict[str, Any], zone: ZoneInfo, extra: Layout | None) -> datetime:
    moment = date_param(params, zone, extra, required=True)
    if moment is None:  # unreachable: a required date raises instead
        raise NodeError("date parameter is required")
    return moment


# ---- reading and moving instants -----------------------------------------------------------


def from_epoch(value: float, zone: ZoneInfo) -> datetime:
    """Seconds since the epoch, or milliseconds beyond `EPOCH_MS_THRESHOLD`."""
    try:
        if not math.isfinite(value):
            raise ValueError(value)
        if abs(value) > EPOCH_MS_THRESHOLD:
            return (_EPOCH + timedelta(milliseconds=value)).astimezone(zone)
        return (_EPOCH + timedelta(seconds=value)).astimezone(zone)
    except (OverflowError, ValueError) as exc:
        raise NodeError(f"unsupported date value: {render(value)}") from exc


def parse_date(text: str, zone: ZoneInfo, extra: Layout | None = None) -> datetime:
    """Read `text` with `extra`, then each of `PARSE_LAYOUTS`; the first full match wins."""
    layouts = [compile_format(layout) for layout in PARSE_LAYOUTS]
    if extra is not None and extra not in layouts[:1]:
        layouts.insert(0, extra)
    unknown: UnknownAbbreviation | None = None
    for layout in layouts:
        try:
            return _in_zone(parse_time(text, layout), zone)
        except UnknownAbbreviation as exc:
            unknown = unknown or exc
        except (LayoutError, ValueError, OverflowError):
            continue
    if unknown is not None:
        raise NodeError(
            f"unsupported date value: {text}: unknown time zone abbreviation "
            f"{unknown.abbreviation} (neither UTC/GMT nor used by {zone.key})"
        )
    raise NodeError(f"unsupported date value: {text}")


def _in_zone(parsed: Parsed, zone: ZoneInfo) -> datetime:
    if parsed.offset == 0:
        moment = parsed.wall.replace(tzinfo=UTC)
    elif parsed.offset is not None:
        moment = parsed.wall.replace(tzinfo=_fixed(parsed.offset))
    elif parsed.abbreviation is not None:
        moment = _with_abbreviation(parsed.wall, parsed.abbreviation, zone)
    else:
        moment = parsed.wall.replace(tzinfo=zone)
    return normalise(moment, zone)


def _fixed(seconds: int, name: str | None = None) -> timezone:
    delta = timedelta(seconds=seconds)
    return timezone(delta, name) if name else timezone(delta)


def _with_abbreviation(wall: datetime, abbreviation: str, zone: ZoneInfo) -> datetime:
    """Resolve `abbreviation` against `zone`: the matching side of an ambiguous hour first,
    then any offset the zone uses under that name in the same year (EST in July)."""
    for fold in (0, 1):
        candidate = wall.replace(tzinfo=zone, fold=fold)
        if candidate.tzname() == abbreviation:
            return candidate
    start = datetime(wall.year, 1, 1, 12, tzinfo=zone)
    for week in range(53):
        probe = start + timedelta(weeks=week)
        offset = probe.utcoffset()
        if probe.year == wall.year and probe.tzname() == abbreviation and offset is not None:
            return wall.replace(tzinfo=_fixed(int(offset.total_seconds()), abbreviation))
    raise UnknownAbbreviation(abbreviation)


def normalise(moment: datetime, zone: ZoneInfo) -> datetime:
    """The same instant as a valid wall-clock time in `zone` (through UTC, since
    `astimezone` returns a datetime already in `zone` unchanged, even inside a DST gap)."""
    return moment.astimezone(UTC).astimezone(zone)


def shift(moment: datetime, amount: int, unit: str, zone: ZoneInfo) -> datetime:
    """`moment` moved by `amount` `unit`s (see the module docstring for the calendar rules)."""
    local = normalise(moment, zone)
    try:
        if unit in ("seconds", "minutes", "hours"):
            return normalise(local.astimezone(UTC) + timedelta(**{unit: amount}), zone)
        if unit in ("days", "weeks"):
            return normalise((local + timedelta(**{unit: amount})).replace(fold=0), zone)
        months = amount * (12 if unit == "years" else 1)
        year, month0 = divmod(local.year * 12 + local.month - 1 + months, 12)
        day = min(local.day, calendar.monthrange(year, month0 + 1)[1])
        return normalise(local.replace(year=year, month=month0 + 1, day=day, fold=0), zone)
    except (OverflowError, ValueError) as exc:
        raise NodeError(
            f"moving the date by {amount} {unit} leaves the supported years 1 to 9999"
        ) from exc


# ---- nodes ---------------------------------------------------------------------------------


def instant_output(moment: datetime, zone: ZoneInfo, layout: Layout) -> dict[str, Any]:
    """`result` (formatted), `iso` (RFC 3339 seconds), `unix` (seconds), `timezone`."""
    local = normalise(moment, zone)
    return {
        "result": format_time(local, layout),
        "iso": format_time(local, compile_format(DEFAULT_FORMAT)),
        "unix": (local - _EPOCH) // timedelta(seconds=1),
        "timezone": zone.key,
    }


@node("dateTimeNow")
def run_now(ctx: NodeContext) -> dict[str, Any]:
    """The current instant in `timezone`, formatted with `format`."""
    zone, layout = zone_param(ctx.params), format_param(ctx.params)
    return instant_output(now(), zone, layout)


def _run_shift(ctx: NodeContext, sign: int) -> dict[str, Any]:
    zone, layout = zone_param(ctx.params), format_param(ctx.params)
    amount, unit = amount_param(ctx.params), unit_param(ctx.params)
    start = date_param(ctx.params, zone, layout, required=False)
    return instant_output(shift(start or now(), sign * amount, unit, zone), zone, layout)


@node("dateTimeAdd", required=("amount",))
def run_add(ctx: NodeContext) -> dict[str, Any]:
    """`date` (default now) plus `amount` `unit`s."""
    return _run_shift(ctx, 1)


@node("dateTimeSubtract", required=("amount",))
def run_subtract(ctx: NodeContext) -> dict[str, Any]:
    """`date` (default now) minus `amount` `unit`s."""
    return _run_shift(ctx, -1)


@node("dateTimeFormat", required=("date",))
def run_format(ctx: NodeContext) -> dict[str, Any]:
    """`date` rendered in `timezone` with `format`."""
    zone, layout = zone_param(ctx.params), format_param(ctx.params)
    return instant_output(_required_date(ctx.params, zone, layout), zone, layout)


@node("dateTimeParse", required=("date",))
def run_parse(ctx: NodeContext) -> dict[str, Any]:
    """`date` split into its calendar fields in `timezone` (no `format` is tried)."""
    zone = zone_param(ctx.params)
    local = normalise(_required_date(ctx.params, zone, None), zone)
    return {
        "unix": (local - _EPOCH) // timedelta(seconds=1),
        "iso": format_time(local, compile_format(DEFAULT_FORMAT)),
        "year": local.year,
        "month": local.month,
        "day": local.day,
        "hour": local.hour,
        "minute": local.minute,
        "second": local.second,
        "weekday": WEEKDAYS[local.weekday()],
        "timezone": zone.key,
    }
