"""Node parameter readers: where a node's raw parameter value becomes a typed value.

Every node of `runeworker.nodes` reads its parameters (and its credential values and rule
entries, which are parameters too) through these functions, so that "true", "5" or "" mean the
same thing to every node. A reader takes the mapping and the parameter's name, and the
parameter's declaration (default, bounds, accepted forms) as keyword arguments.

Rules shared by every reader:

* Not given: the key is absent, null, or text that is blank (white space only; `text` with
  `keep_blank` keeps it). The reader returns its default, or raises its `missing` error when
  the parameter is required.
* Text is trimmed before it is interpreted (`text` returns the string as written).
* A refusal is a NodeError naming the parameter. Its sentence comes from a `Wording`: the
  default one, or the node's own where upstream's error text is kept (a failed status carries
  it to the user). Templates may use {name}, {expected}, {got} (text quoted, numbers as
  numbers, anything else its JSON type), {shown} (the value rendered) and {kind} (its JSON type).

What each reader accepts (upstream: Rune's Go worker, `services/rune-worker/pkg/nodes/...`):

| reader   | accepted                                              | refused                       |
|----------|-------------------------------------------------------|-------------------------------|
| flag     | JSON true/false; text true/yes/1, false/no/0 (any     | nothing: any other value is   |
|          | case); not given = default                            | the default                   |
| number   | a JSON number, or text spelling one as Python's       | other text, booleans, arrays, |
|          | int()/float() read it (sign, digits, fraction,        | objects, NaN and infinities,  |
|          | exponent, `_` between digits); within `minimum` and   | values out of bounds          |
|          | `maximum`                                             |                               |
| integer  | what `number` accepts, if integral: 2.0 and "2.0"     | fractions, what `number`      |
|          | are 2 (as upstream's JSON numbers are)                | refuses                       |
| duration | a number of seconds as `number` reads it; zero or     | what `number` refuses         |
|          | negative = the default                                |                               |
| text     | a JSON string; per `other`, any other value is not    | `other="refuse"`: any value   |
|          | given or is rendered as text                          | that is not a string          |
| array    | a JSON array; a lone value of a kind in `lone` is a   | any other lone value          |
|          | list of one                                           |                               |
| mapping  | a JSON object                                         | anything else                 |
| date     | text in `layouts` (runeworker.nodes.dates), tried in  | other text, other types,      |
|          | order after `first`; `epoch`: a JSON number of        | an abbreviation the zone does |
|          | seconds since 1970 (milliseconds beyond 1e11)         | not use                       |

Upstream, for the table in the docs: flag = `listops.toBool`'s words
(`pkg/nodes/shared/listops/listops.go`), and a non-bool `ignore_ssl` is false
(`pkg/nodes/custom/http/http_node.go`); number = `listops.ToInt` (limit, datetime amount),
`parseIntParam` (http retry, timeout), `parseMergeParams` (merge timeout), `parseInterval`
(wait amount); duration = http and merge read a timeout <= 0 as their default; date =
`listops.CommonTimeFormats` through `datetimeops.ParseDateInLocation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from runeworker.engine.resolver import json_kind, render
from runeworker.errors import NodeError
from runeworker.nodes import dates
from runeworker.nodes.datetime_layouts import Layout

Params = Mapping[str, Any]
# upstream listops.toBool's words (pkg/nodes/shared/listops/listops.go)
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})


@dataclass(frozen=True)
class Wording:
    """The sentences of a reader's refusals (str.format templates, see the module docstring).
    `blank` defaults to `missing`; `type`, `below` and `above` default to `invalid`."""

    missing: str = "{name} parameter is required"
    invalid: str = "{name} parameter must be {expected}, got {got}"
    blank: str | None = None
    type: str | None = None
    below: str | None = None
    above: str | None = None


DEFAULT = Wording()


def given(value: Any) -> bool:
    """False for null and for blank text: a parameter with such a value is not given."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def as_bool(value: Any) -> bool | None:
    """A JSON bool, or the bool a text of `TRUE_WORDS`/`FALSE_WORDS` (any case) denotes;
    None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
    return None


def flag(params: Params, name: str, default: bool = False) -> bool:
    """A boolean parameter. Never refuses: a value that is not a boolean word is the default,
    as upstream reads any parameter that is not a JSON bool."""
    value = as_bool(params.get(name))
    return default if value is None else value


def _refuse(template: str, name: str, value: Any, expected: str = "") -> NodeError:
    if isinstance(value, str):
        value = value.strip()
        got = f"'{value}'"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        got = render(value)
    else:
        got = json_kind(value)
    return NodeError(
        template.format(
            name=name, expected=expected, got=got, shown=render(value), kind=json_kind(value)
        )
    )


def _missing(name: str, value: Any, wording: Wording) -> NodeError:
    """The error of a required parameter that is not given (`blank` wording for blank text)."""
    template = (wording.blank or wording.missing) if isinstance(value, str) else wording.missing
    return _refuse(template, name, value)


def _numeric(value: Any) -> int | float | None:
    """The finite number a JSON number or a numeric text denotes, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    found: float | None = value if isinstance(value, float) else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
        try:
            found = float(value.strip())
        except ValueError:
            return None
    return found if found is not None and math.isfinite(found) else None


def _read_number(
    params: Params,
    name: str,
    *,
    required: bool,
    whole: bool,
    minimum: float | None,
    maximum: float | None,
    wording: Wording,
) -> int | float | None:
    value = params.get(name)
    if not given(value):
        if required:
            raise _missing(name, value, wording)
        return None
    found = _numeric(value)
    expected = "a whole number" if whole else "a number"
    if minimum is not None:
        expected += f" >= {render(minimum)}"
    if maximum is not None:
        expected += f"{' and' if minimum is not None else ''} <= {render(maximum)}"
    try:
        fits = found is not None and math.isfinite(found) and not (whole and found % 1)
    except OverflowError:  # an integer beyond the float range
        fits = False
    if found is None or not fits:
        raise _refuse(wording.invalid, name, value, expected)
    if minimum is not None and found < minimum:
        raise _refuse(wording.below or wording.invalid, name, value, expected)
    if maximum is not None and found > maximum:
        raise _refuse(wording.above or wording.invalid, name, value, expected)
    return found


def number(
    params: Params,
    name: str,
    default: float = 0.0,
    *,
    required: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    wording: Wording = DEFAULT,
) -> float:
    """A number parameter; `default` when not given."""
    found = _read_number(
        params,
        name,
        required=required,
        whole=False,
        minimum=minimum,
        maximum=maximum,
        wording=wording,
    )
    return default if found is None else float(found)


def integer(
    params: Params,
    name: str,
    default: int = 0,
    *,
    required: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
    wording: Wording = DEFAULT,
) -> int:
    """A whole-number parameter (2.0 and "2.0" are 2); `default` when not given."""
    found = _read_number(
        params,
        name,
        required=required,
        whole=True,
        minimum=minimum,
        maximum=maximum,
        wording=wording,
    )
    return default if found is None else int(found)


def duration(params: Params, name: str, default: float, *, wording: Wording = DEFAULT) -> float:
    """Seconds, as `number` reads them; zero or negative (like not given) means `default`."""
    found = number(params, name, 0.0, wording=wording)
    return found if found > 0 else default


def text(
    params: Params,
    name: str,
    default: str = "",
    *,
    required: bool = False,
    other: Literal["refuse", "default", "render"] = "refuse",
    keep_blank: bool = False,
    wording: Wording = DEFAULT,
) -> str:
    """A string parameter, as written (not trimmed); `default` when not given. `other` says
    what a value that is not a string is: refused, not given (upstream's `.(string)`), or its
    text (JSON for arrays and objects; upstream's `fmt.Sprintf("%v")`). `keep_blank`: only the
    empty string is not given (a subject or a password may be spaces)."""
    value = params.get(name)
    if isinstance(value, str) and (value.strip() or (keep_blank and value)):
        return value
    if value is not None and not isinstance(value, str):
        if other == "render":
            return render(value)
        if other == "refuse":
            raise _refuse(wording.type or wording.invalid, name, value, "a string")
    if required:
        raise _missing(name, value, wording)
    return default


def array(
    params: Params,
    name: str,
    *,
    required: bool = False,
    lone: type | tuple[type, ...] | None = None,
    wording: Wording = DEFAULT,
) -> list[Any]:
    """A list parameter; [] when not given. A lone value whose type is in `lone` (`dict`,
    `str`, `object` for any) is a list of that one value; any other is refused."""
    value = params.get(name)
    if isinstance(value, list):
        return value
    if not given(value):
        if required:
            raise _missing(name, value, wording)
        return []
    if lone is not None and isinstance(value, lone):
        return [value]
    raise _refuse(wording.type or wording.invalid, name, value, "an array")


def mapping(params: Params, name: str, *, wording: Wording = DEFAULT) -> dict[str, Any]:
    """An object parameter; {} when not given; anything else is refused."""
    value = params.get(name)
    if isinstance(value, dict):
        return value
    if not given(value):
        return {}
    raise _refuse(wording.type or wording.invalid, name, value, "an object")


def date(
    params: Params,
    name: str,
    *,
    zone: ZoneInfo = dates.UTC_ZONE,
    layouts: Sequence[Layout] = dates.COMMON,
    first: Layout | None = None,
    epoch: bool = False,
    required: bool = False,
    wording: Wording = DEFAULT,
) -> datetime | None:
    """An instant in `zone`; None when not given (see `runeworker.nodes.dates.parse`).
    A refusal of text that no layout reads appends the parser's reason (an unknown zone
    abbreviation) to the `invalid` sentence."""
    value = params.get(name)
    if not given(value):
        if required:
            raise _missing(name, value, wording)
        return None
    if epoch and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dates.from_epoch(value, zone)
        except ValueError:
            raise _refuse(wording.invalid, name, value, "a date") from None
    if not isinstance(value, str):
        raise _refuse(wording.type or wording.invalid, name, value, "a date")
    try:
        return dates.parse(value.strip(), zone, layouts, first)
    except dates.DateError as exc:
        error = _refuse(wording.invalid, name, value, "a date")
        reason = f": {exc.reason}" if exc.reason else ""
        raise NodeError(f"{error}{reason}") from None
