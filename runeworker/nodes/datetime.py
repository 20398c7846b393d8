"""Date/time nodes: `dateTimeNow`, `dateTimeAdd`, `dateTimeSubtract`, `dateTimeFormat` and
`dateTimeParse` (upstream services/rune-worker/pkg/nodes/shared/datetimeops/datetimeops.go, with its
defects fixed).

Common parameters: `timezone` (IANA name, default and blank = UTC) and `format` (a Go layout
such as `2006-01-02 15:04 MST`, or a strftime format such as `%Y-%m-%d %H:%M %Z`, recognised by
its `%`; default RFC 3339). Results are expressed in `timezone`.

`date` may be text (tried with the node's own `format` first, then `PARSE_LAYOUTS` in order;
naive text is wall-clock time in `timezone`) or a JSON number of seconds since the Unix epoch;
a number whose magnitude exceeds `EPOCH_MS_THRESHOLD` of `runeworker.nodes.dates` (1e11, about
the year 5138 in seconds) is read as milliseconds. Parameters are read by
`runeworker.nodes.params`, dates by its one parser, `runeworker.nodes.dates`.
A zone abbreviation in the text must be UTC, GMT, Z, or one the zone
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
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from runeworker.engine.registry import NodeContext, node
from runeworker.engine.resolver import render
from runeworker.errors import NodeError
from runeworker.nodes import params
from runeworker.nodes.dates import COMMON_LAYOUTS, RFC3339, UTC_ZONE, normalise
from runeworker.nodes.datetime_layouts import (
    WEEKDAYS,
    Layout,
    LayoutError,
    compile_format,
    format_time,
)

DEFAULT_FORMAT = RFC3339
UI_PRESETS = (
    DEFAULT_FORMAT,
    "2006-01-02",
    "2006-01-02 15:04",
    "02 Jan 2006",
    "Mon, 02 Jan 2006 15:04 MST",
)
# Tried in this order after the node's own format (Go's list, RFC3339 first).
PARSE_LAYOUTS = COMMON_LAYOUTS
UNITS = ("seconds", "minutes", "hours", "days", "weeks", "months", "years")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATE = params.Wording(
    missing="date parameter is required",
    blank="date value is required",
    invalid="unsupported date value: {shown}",
)


def now() -> datetime:
    """The current instant; tests replace this module attribute to freeze the clock."""
    return datetime.now(UTC)


# ---- parameters ----------------------------------------------------------------------------


def zone_param(ps: dict[str, Any]) -> ZoneInfo:
    """`timezone`: an IANA name, or `Local` for the worker's own zone; not given means UTC."""
    wording = params.Wording(invalid="invalid timezone: unknown time zone {shown}")
    name = params.text(ps, "timezone", "UTC", wording=wording).strip()
    if name == "Local":
        return local_zone()
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as exc:  # not found, bad key, a directory
        raise NodeError(f"invalid timezone: unknown time zone {name}") from exc


def local_zone() -> ZoneInfo:
    """The process's zone, as Go's `time.LoadLocation("Local")` finds it: `TZ` when set (empty
    or unknown: UTC; a leading ':' dropped; an absolute path is the zone file itself, named
    after the path), else /etc/localtime, else UTC. Its key is the name Go's `time.Local`
    reports: `Local` for /etc/localtime."""
    tz = os.environ.get("TZ")
    if tz is None:
        return _zone_file("/etc/localtime") or UTC_ZONE
    tz = tz.removeprefix(":")
    if tz.startswith("/"):
        return _zone_file(tz) or UTC_ZONE
    try:
        return ZoneInfo(tz) if tz else UTC_ZONE
    except (KeyError, ValueError, OSError):
        return UTC_ZONE


def _zone_file(path: str) -> ZoneInfo | None:
    try:
        with open(path, "rb") as f:
            return ZoneInfo.from_file(f, key="Local" if path == "/etc/localtime" else path)
    except (OSError, ValueError):
        return None


def format_param(ps: dict[str, Any]) -> Layout:
    """`format`: a Go layout or a strftime format; not given means RFC 3339."""
    wording = params.Wording(invalid="format parameter must be a layout string, got {shown}")
    raw = params.text(ps, "format", DEFAULT_FORMAT, wording=wording)
    try:
        return compile_format(raw)
    except LayoutError as exc:
        raise NodeError(f"format parameter is invalid: {exc}") from exc


def amount_param(ps: dict[str, Any]) -> int:
    """`amount`: a whole number (upstream's listops.ToInt, and "2.0" reads as 2)."""
    wording = params.Wording(
        missing="amount parameter is required",
        invalid="amount parameter is required to be a whole number, got {shown}",
    )
    return params.integer(ps, "amount", required=True, wording=wording)


def unit_param(ps: dict[str, Any]) -> str:
    """`unit`: one of `UNITS`, any case; not given means days."""
    wording = params.Wording(invalid="unsupported unit: {shown}")
    unit = params.text(ps, "unit", "days", wording=wording).strip().lower()
    if unit not in UNITS:
        raise NodeError(f"unsupported unit: {render(ps.get('unit'))}")
    return unit


def date_param(
    ps: dict[str, Any], zone: ZoneInfo, extra: Layout | None, *, required: bool
) -> datetime | None:
    """`date` as an instant in `zone` (text in the node's own format or a common layout, or
    seconds since the epoch); None when it is optional and not given."""
    return params.date(
        ps, "date", zone=zone, first=extra, epoch=True, required=required, wording=_DATE
    )


def _required_date(ps: dict[str, Any], zone: ZoneInfo, extra: Layout | None) -> datetime:
    moment = date_param(ps, zone, extra, required=True)
    if moment is None:  # unreachable: a required date raises instead
        raise NodeError("date parameter is required")
    return moment


# ---- moving instants -----------------------------------------------------------------------


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
