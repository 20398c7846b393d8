"""The node parameter readers (runeworker/nodes/params.py) and the one date parser
(runeworker/nodes/dates.py): what each accepts, what it refuses and how the refusal reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from runeworker.errors import NodeError
from runeworker.nodes import dates, params
from runeworker.nodes.datetime_layouts import compile_format

NY = ZoneInfo("America/New_York")


def one(value: Any) -> dict[str, Any]:
    return {"p": value}


# -- not given ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_null_and_blank_text_are_not_given(value: Any) -> None:
    assert params.given(value) is False
    assert params.flag(one(value), "p", True) is True
    assert params.number(one(value), "p", 7.5) == 7.5
    assert params.integer(one(value), "p", 7) == 7
    assert params.duration(one(value), "p", 9.0) == 9.0
    assert params.text(one(value), "p", "d") == "d"
    assert params.array(one(value), "p") == []
    assert params.mapping(one(value), "p") == {}
    assert params.date(one(value), "p") is None


def test_an_absent_key_is_not_given() -> None:
    assert params.number({}, "p", 1.0) == 1.0
    with pytest.raises(NodeError, match=r"^p parameter is required$"):
        params.integer({}, "p", required=True)


@pytest.mark.parametrize("value", [0, False, [], {}, "0"])
def test_falsy_values_are_given(value: Any) -> None:
    assert params.given(value) is True


# -- flag -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), (" TRUE ", True), ("Yes", True),
     ("1", True), ("false", False), ("No", False), (" 0 ", False)],
)  # fmt: skip
def test_flag_words(value: Any, expected: bool) -> None:
    assert params.flag(one(value), "p") is expected
    assert params.flag(one(value), "p", not expected) is expected


@pytest.mark.parametrize("value", ["on", "off", "maybe", 1, 0, 2.5, [], {}, ["true"]])
def test_flag_never_refuses_other_values_are_the_default(value: Any) -> None:
    # upstream reads any parameter that is not a JSON bool as its default
    assert params.flag(one(value), "p") is False
    assert params.flag(one(value), "p", True) is True


def test_as_bool_is_the_list_comparison_vocabulary() -> None:
    assert [params.as_bool(v) for v in ("YES", "no", "1", "on", 1, None)] == [
        True, False, True, None, None, None]  # fmt: skip


# -- number, integer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5.0), (2.5, 2.5), ("2.5", 2.5), (" -3 ", -3.0), ("+4", 4.0), ("1e3", 1000.0),
     (".5", 0.5), ("5.", 5.0), (10**20, 1e20)],
)  # fmt: skip
def test_number_accepts_numbers_and_their_text(value: Any, expected: float) -> None:
    found = params.number(one(value), "p")
    assert found == expected and isinstance(found, float)


@pytest.mark.parametrize(
    ("value", "message"),
    [("soon", r"^p parameter must be a number, got 'soon'$"),
     ("  soon ", r"^p parameter must be a number, got 'soon'$"),
     (True, r"^p parameter must be a number, got boolean$"),
     ([1], r"^p parameter must be a number, got array$"),
     ({"a": 1}, r"^p parameter must be a number, got object$"),
     ("nan", r"^p parameter must be a number, got 'nan'$"),
     ("inf", r"^p parameter must be a number, got 'inf'$"),
     ("-Infinity", r"^p parameter must be a number, got '-Infinity'$"),
     (float("nan"), r"^p parameter must be a number, got NaN$"),
     ("0x10", r"^p parameter must be a number, got '0x10'$"),
     ("1e999", r"^p parameter must be a number, got '1e999'$"),
     (10**400, r"^p parameter must be a number, got 1000"),
     ("5 apples", r"^p parameter must be a number, got '5 apples'$")],
)  # fmt: skip
def test_number_refusals(value: Any, message: str) -> None:
    with pytest.raises(NodeError, match=message):
        params.number(one(value), "p")


def test_number_bounds() -> None:
    assert params.number(one(0), "p", minimum=0, maximum=1) == 0.0
    assert params.number(one("1"), "p", minimum=0, maximum=1) == 1.0
    with pytest.raises(NodeError, match=r"^p parameter must be a number >= 0 and <= 1, got -1$"):
        params.number(one(-1), "p", minimum=0, maximum=1)
    with pytest.raises(NodeError, match=r"^p parameter must be a number <= 1, got 1.5$"):
        params.number(one(1.5), "p", maximum=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, 2), (2.0, 2), ("2", 2), (" +2 ", 2), ("-0", 0), ("2.0", 2), ("1e3", 1000),
     (10**30, 10**30), ("123456789012345678901234567890", 123456789012345678901234567890)],
)  # fmt: skip
def test_integer_accepts_whole_numbers_in_any_spelling(value: Any, expected: int) -> None:
    found = params.integer(one(value), "p")
    assert found == expected and isinstance(found, int)


@pytest.mark.parametrize(
    ("value", "message"),
    [(2.5, r"^p parameter must be a whole number >= 0, got 2.5$"),
     ("2.5", r"^p parameter must be a whole number >= 0, got '2.5'$"),
     ("two", r"^p parameter must be a whole number >= 0, got 'two'$"),
     (False, r"^p parameter must be a whole number >= 0, got boolean$"),
     (-1, r"^p parameter must be a whole number >= 0, got -1$"),
     ("-1", r"^p parameter must be a whole number >= 0, got '-1'$")],
)  # fmt: skip
def test_integer_refusals(value: Any, message: str) -> None:
    with pytest.raises(NodeError, match=message):
        params.integer(one(value), "p", minimum=0)


def test_wording_keeps_a_node_s_own_sentences() -> None:
    wording = params.Wording(
        missing="count parameter is required",
        blank="count is blank",
        invalid="count {shown} ({kind}) is not {expected}",
        below="count must be zero or greater",
        above="count {got} is too large",
    )
    cases = [
        (None, r"^count parameter is required$"),
        (" ", r"^count is blank$"),
        ([1, 2], r"^count \[1,2\] \(array\) is not a whole number >= 0 and <= 9$"),
        (-2, r"^count must be zero or greater$"),
        ("10", r"^count '10' is too large$"),
    ]
    for value, message in cases:
        with pytest.raises(NodeError, match=message):
            params.integer(one(value), "p", required=True, minimum=0, maximum=9, wording=wording)


# -- duration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, 1.5), ("2", 2.0), (" 0.25 ", 0.25), (0, 30.0), (-5, 30.0), ("-1", 30.0), (None, 30.0)],
)  # fmt: skip
def test_duration_is_seconds_and_not_positive_is_the_default(value: Any, expected: float) -> None:
    assert params.duration(one(value), "p", 30.0) == expected


@pytest.mark.parametrize("value", ["1m30s", "soon", True, [5], "inf"])
def test_duration_refusals(value: Any) -> None:
    with pytest.raises(NodeError, match=r"^p parameter must be a number, got "):
        params.duration(one(value), "p", 30.0)


# -- text -----------------------------------------------------------------------------------------


def test_text_is_returned_as_written() -> None:
    assert params.text(one("  GET "), "p") == "  GET "
    assert params.text(one("  "), "p", "d", keep_blank=True) == "  "
    assert params.text(one(""), "p", "d", keep_blank=True) == "d"


@pytest.mark.parametrize(
    ("value", "other", "expected"),
    [(5, "default", "d"), ([1], "default", "d"), (5, "render", "5"), (2.5, "render", "2.5"),
     (True, "render", "true"), ({"a": 1}, "render", '{"a":1}'), ([1, "x"], "render", '[1,"x"]')],
)  # fmt: skip
def test_text_other_values(value: Any, other: Any, expected: str) -> None:
    assert params.text(one(value), "p", "d", other=other) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [(5, r"^p parameter must be a string, got 5$"),
     (False, r"^p parameter must be a string, got boolean$"),
     (["a"], r"^p parameter must be a string, got array$")],
)  # fmt: skip
def test_text_refuses_other_values_by_default(value: Any, message: str) -> None:
    with pytest.raises(NodeError, match=message):
        params.text(one(value), "p")


def test_required_text() -> None:
    wording = params.Wording(missing="from parameter is required")
    for value in (None, "", "  ", 7):
        with pytest.raises(NodeError, match=r"^from parameter is required$"):
            params.text(one(value), "p", required=True, other="default", wording=wording)
    assert params.text(one("a@b"), "p", required=True) == "a@b"


# -- array, mapping -------------------------------------------------------------------------------


def test_array_accepts_arrays_and_declared_lone_values() -> None:
    items = [1, 2]
    assert params.array(one(items), "p") is items
    assert params.array(one({"a": 1}), "p", lone=dict) == [{"a": 1}]
    assert params.array(one("x@y"), "p", lone=object) == ["x@y"]
    assert params.array(one(5), "p", lone=object) == [5]


@pytest.mark.parametrize(
    ("value", "lone", "message"),
    [({"a": 1}, None, r"^p parameter must be an array, got object$"),
     ("x", None, r"^p parameter must be an array, got 'x'$"),
     (5, dict, r"^p parameter must be an array, got 5$"),
     (True, str, r"^p parameter must be an array, got boolean$")],
)  # fmt: skip
def test_array_refusals(value: Any, lone: Any, message: str) -> None:
    with pytest.raises(NodeError, match=message):
        params.array(one(value), "p", lone=lone)


def test_required_array() -> None:
    with pytest.raises(NodeError, match=r"^p parameter is required$"):
        params.array(one(None), "p", required=True)
    assert params.array(one([]), "p", required=True) == []  # given, even if empty


def test_mapping() -> None:
    fields = {"a": 1}
    assert params.mapping(one(fields), "p") is fields
    for value in ("a=1", ["a"], 5, True):
        with pytest.raises(NodeError, match=r"^p parameter must be an object, got "):
            params.mapping(one(value), "p")


# -- date -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [("2026-03-08T15:30:00Z", UTC, datetime(2026, 3, 8, 15, 30, tzinfo=UTC)),
     ("2026-03-08T15:30:00.5+02:00", UTC, datetime(2026, 3, 8, 13, 30, 0, 500000, tzinfo=UTC)),
     (" 2026-03-08 15:30 ", NY, datetime(2026, 3, 8, 15, 30, tzinfo=NY)),  # wall time in the zone
     ("Sun, 08 Mar 2026 15:30 EDT", NY, datetime(2026, 3, 8, 19, 30, tzinfo=UTC)),
     ("08 Mar 2026", UTC, datetime(2026, 3, 8, tzinfo=UTC))],
)  # fmt: skip
def test_date_reads_the_common_layouts(text: str, zone: Any, expected: datetime) -> None:
    zone = zone if isinstance(zone, ZoneInfo) else ZoneInfo("UTC")
    found = params.date(one(text), "p", zone=zone)
    assert found == expected and found is not None and found.tzinfo == zone


def test_date_tries_the_node_s_own_layout_first() -> None:
    first = compile_format("02/01/2006")
    found = params.date(one("03/04/2026"), "p", first=first)
    assert found == datetime(2026, 4, 3, tzinfo=UTC)


def test_date_epoch_numbers_when_declared() -> None:
    assert params.date(one(0), "p", epoch=True) == datetime(1970, 1, 1, tzinfo=UTC)
    assert params.date(one(1.7e12), "p", epoch=True) == datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=UTC
    )
    with pytest.raises(NodeError, match=r"^p parameter must be a date, got 0$"):
        params.date(one(0), "p")


@pytest.mark.parametrize(
    ("value", "message"),
    [("next tuesday", r"^p parameter must be a date, got 'next tuesday'$"),
     ("2026-02-30", r"^p parameter must be a date, got '2026-02-30'$"),
     ("2026-1-5", r"^p parameter must be a date, got '2026-1-5'$"),
     ("Sun, 08 Mar 2026 15:30 CET",
      r"^p parameter must be a date, got 'Sun, 08 Mar 2026 15:30 CET': unknown time zone "
      r"abbreviation CET \(neither UTC/GMT nor used by UTC\)$"),
     (True, r"^p parameter must be a date, got boolean$"),
     ({"a": 1}, r"^p parameter must be a date, got object$")],
)  # fmt: skip
def test_date_refusals(value: Any, message: str) -> None:
    with pytest.raises(NodeError, match=message):
        params.date(one(value), "p")


@pytest.mark.parametrize("value", [float("nan"), 1e300, float("inf")])
def test_date_refuses_epoch_numbers_beyond_the_calendar(value: float) -> None:
    with pytest.raises(NodeError, match=r"^unsupported date value: "):
        params.date(
            one(value),
            "p",
            epoch=True,
            wording=params.Wording(invalid="unsupported date value: {shown}"),
        )


def test_date_type_wording() -> None:
    wording = params.Wording(invalid="bad '{shown}'", type="not {kind}")
    with pytest.raises(NodeError, match=r"^not number$"):
        params.date(one(5), "p", wording=wording)
    with pytest.raises(NodeError, match=r"^bad 'x'$"):
        params.date(one(" x "), "p", wording=wording)


# -- the one date parser: without a location (list comparisons), ISO 8601 for wait ---------


def test_without_a_location_naive_text_and_abbreviations_are_utc() -> None:
    assert dates.parse("2026-03-08 15:30") == datetime(2026, 3, 8, 15, 30, tzinfo=UTC)
    assert dates.parse("08 Mar 26 15:30 CET") == datetime(2026, 3, 8, 15, 30, tzinfo=UTC)
    assert dates.read("not a date") is None
    with pytest.raises(dates.DateError) as info:
        dates.parse("08 Mar 26 15:30 cet")
    assert info.value.reason is None


# What datetime.fromisoformat (the wait node's parser before) reads and the one parser must still
# read: every form, each meaning the same instant (naive = UTC).
ISO_FORMS = [
    "2030-01-01", "20300101", "2030-01-01T09", "2030-01-01T09:30", "2030-01-01T0930",
    "2030-01-01T09:30:15", "2030-01-01T093015", "2030-01-01T09:30:15.5",
    "2030-01-01T09:30:15,25", "2030-01-01T09:30:15.123456", "20300101T093015",
    "20300101T09:30:15", "2030-01-01 09:30", "2030-01-01t09:30", "2030-01-01T09:30Z",
    "2030-01-01T09Z", "2030-01-01T09:30+05", "2030-01-01T09:30-0530", "2030-01-01T09:30+05:30",
    "2030-01-01T09:30:15+05:30:15", "2030-01-01T09:30:15.5-08:00", "20300101T093015Z",
]  # fmt: skip


@pytest.mark.parametrize("text", ISO_FORMS)
def test_iso_8601_forms_of_the_wait_node(text: str) -> None:
    before = datetime.fromisoformat(text)
    before = before if before.tzinfo else before.replace(tzinfo=UTC)
    found = dates.parse(text, dates.UTC_ZONE, dates.common_and_iso_8601())
    assert found == before
    assert found.utcoffset() == timedelta(0)  # expressed in the zone asked for


def test_iso_8601_forms_stay_out_of_the_common_layouts() -> None:
    # upstream's list comparisons and datetime nodes do not read naive `T` times
    assert dates.read("2030-01-01T09:30") is None
    with pytest.raises(dates.DateError, match=r"^2030-01-01T09:30$"):  # the text not read
        dates.parse("2030-01-01T09:30", dates.UTC_ZONE)


def test_fixed_offsets_are_kept_without_a_location() -> None:
    found = dates.parse("2030-01-01T09:30:00+05:30")
    assert found.utcoffset() == timezone(timedelta(hours=5, minutes=30)).utcoffset(None)
