"""The one date parser: text in one of a list of layouts (or seconds since the Unix epoch) to
an aware datetime. Every node that reads a date goes through `parse` (the datetime nodes and
wait through `runeworker.nodes.params.date`, the list nodes' comparisons through `as_time` in
`runeworker.nodes.lists`); layouts are compiled and matched by `runeworker.nodes.datetime_layouts`.

`COMMON_LAYOUTS` is upstream's one list of date layouts (`CommonTimeFormats` in
`services/rune-worker/pkg/nodes/shared/listops/listops.go`, used by the list and datetime
nodes alike). `ISO_8601_LAYOUTS` adds the ISO 8601 forms the wait node's `date_time` accepts.

Zones, with a location (`zone`, Go's `time.ParseInLocation`): text without a zone is wall-clock
time in `zone`; a numeric offset, `Z`, `UTC`, `GMT` and `GMT+h` are honoured; an abbreviation
must be one `zone` uses in that year (`EST`/`EDT` in America/New_York), else the text is refused
naming it, where Go silently reads it as UTC. Without a location (`zone=None`, Go's
`time.Parse`, used to compare list values): text without a zone is UTC and every abbreviation
reads as UTC, as Go does.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from runeworker.nodes.datetime_layouts import (
    Layout,
    LayoutError,
    Parsed,
    compile_format,
    parse_time,
)

RFC3339 = "2006-01-02T15:04:05Z07:00"
COMMON_LAYOUTS: tuple[str, ...] = (
    RFC3339,
    "2006-01-02T15:04:05.999999999Z07:00",  # RFC3339Nano
    "2006-01-02 15:04:05",
    "2006-01-02 15:04",
    "2006-01-02",
    "Mon, 02 Jan 2006 15:04:05 -0700",  # RFC1123Z
    "Mon, 02 Jan 2006 15:04:05 MST",  # RFC1123
    "Mon, 02 Jan 2006 15:04 MST",
    "Mon, 02 Jan 2006 15:04 -0700",
    "02 Jan 2006 15:04 MST",
    "02 Jan 2006 15:04 -0700",
    "02 Jan 2006",
    "02 Jan 06 15:04 -0700",  # RFC822Z
    "02 Jan 06 15:04 MST",  # RFC822
)
# ISO 8601 as Python's datetime.fromisoformat read it (the wait node used it): extended or basic
# date, `T`, `t` or a space, hour[:minute[:second]] with an optional fraction after the seconds,
# and no zone, `Z`, +hh, +hhmm, +hh:mm or +hh:mm:ss. (Week dates, fractions of an hour or a
# minute and other separators are not read.)
_ISO_DATES = ("2006-01-02", "20060102")
_ISO_TIMES = ("15:04:05", "150405", "15:04", "1504", "15")
_ISO_ZONES = ("", "Z07:00", "Z0700", "Z07", "Z07:00:00")
ISO_8601_LAYOUTS: tuple[str, ...] = (
    *_ISO_DATES,
    *(
        f"{d}{sep}{t}{z}"
        for d, sep, t, z in itertools.product(_ISO_DATES, "Tt ", _ISO_TIMES, _ISO_ZONES)
    ),
)
EPOCH_MS_THRESHOLD = 1e11  # beyond this a number of seconds is read as milliseconds
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")


def compiled(layouts: Sequence[str]) -> tuple[Layout, ...]:
    """Layouts (Go layouts or strftime formats) compiled once, for `parse`."""
    return tuple(compile_format(layout) for layout in layouts)


COMMON = compiled(COMMON_LAYOUTS)
# Every common layout starts like one of these: cheap rejection of the text no common layout can
# read (most of the strings a sort compares), before trying 14 layouts on it.
_COMMON_START = re.compile(r"[0-9]{4}-|[0-9]{2} [A-Za-z]{3} |[A-Za-z]{3}, ")


@functools.cache
def common_and_iso_8601() -> tuple[Layout, ...]:
    """`COMMON_LAYOUTS`, then `ISO_8601_LAYOUTS` (compiled on first use: only wait needs them)."""
    return compiled(tuple(dict.fromkeys((*COMMON_LAYOUTS, *ISO_8601_LAYOUTS))))


class DateError(ValueError):
    """Text that no layout reads. `reason` says more when one layout almost did (an unknown
    zone abbreviation); None when nothing matched."""

    def __init__(self, text: str, reason: str | None = None) -> None:
        super().__init__(f"{text}: {reason}" if reason else text)
        self.reason = reason


class _UnknownAbbreviation(ValueError):
    def __init__(self, abbreviation: str) -> None:
        super().__init__(abbreviation)
        self.abbreviation = abbreviation


def parse(
    text: str,
    zone: ZoneInfo | None = None,
    layouts: Sequence[Layout] = COMMON,
    first: Layout | None = None,
) -> datetime:
    """The instant `text` (already trimmed) denotes: `first`, then each of `layouts` in order;
    the first full match wins. With a `zone` the result is expressed in it. Raises DateError."""
    found = _first_match(text, zone, layouts, first)
    if isinstance(found, datetime):
        return found
    if found is not None and zone is not None:
        raise DateError(
            text,
            f"unknown time zone abbreviation {found.abbreviation} "
            f"(neither UTC/GMT nor used by {zone.key})",
        )
    raise DateError(text)


def read(text: str) -> datetime | None:
    """`parse` of `text` in the common layouts without a location; None when none reads it
    (no exception: list comparisons call this for every value they compare)."""
    found = _first_match(text, None, COMMON, None)
    return found if isinstance(found, datetime) else None


def _first_match(
    text: str, zone: ZoneInfo | None, layouts: Sequence[Layout], first: Layout | None
) -> datetime | _UnknownAbbreviation | None:
    """The instant, else the first unknown abbreviation met, else None."""
    if layouts is COMMON and first is None and not _COMMON_START.match(text):
        return None
    order = layouts if first is None or first in layouts[:1] else (first, *layouts)
    unknown: _UnknownAbbreviation | None = None
    for layout in order:
        try:
            return _placed(parse_time(text, layout), zone)
        except _UnknownAbbreviation as exc:
            unknown = unknown or exc
        except (LayoutError, ValueError, OverflowError):
            continue
    return unknown


def from_epoch(value: float, zone: ZoneInfo) -> datetime:
    """Seconds since the epoch, or milliseconds beyond `EPOCH_MS_THRESHOLD`, in `zone`.
    Raises ValueError when the number is not finite or leaves the years 1 to 9999."""
    try:
        if not math.isfinite(value):
            raise ValueError(value)
        unit = "milliseconds" if abs(value) > EPOCH_MS_THRESHOLD else "seconds"
        return (_EPOCH + timedelta(**{unit: value})).astimezone(zone)
    except OverflowError as exc:
        raise ValueError(value) from exc


def normalise(moment: datetime, zone: ZoneInfo) -> datetime:
    """The same instant as a valid wall-clock time in `zone` (through UTC, since
    `astimezone` returns a datetime already in `zone` unchanged, even inside a DST gap)."""
    return moment.astimezone(UTC).astimezone(zone)


def _placed(parsed: Parsed, zone: ZoneInfo | None) -> datetime:
    if parsed.offset == 0:
        moment = parsed.wall.replace(tzinfo=UTC)
    elif parsed.offset is not None:
        moment = parsed.wall.replace(tzinfo=_fixed(parsed.offset))
    elif parsed.abbreviation is not None:
        if zone is None:  # Go's time.Parse: an abbreviation it cannot place reads as UTC
            return parsed.wall.replace(tzinfo=UTC)
        moment = _with_abbreviation(parsed.wall, parsed.abbreviation, zone)
    else:
        moment = parsed.wall.replace(tzinfo=zone or UTC)
    return moment if zone is None else normalise(moment, zone)


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
    raise _UnknownAbbreviation(abbreviation)
