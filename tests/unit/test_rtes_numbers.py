"""`serde_refuses` on numbers taking each path of serde_json's parsing (integer, integer past a
u64, fraction, fraction past a u64, exponent, exponent past an i32, zero significand, the
check for a digit after the point). The verdicts are serde_json 1.0.87's own, read off
tests/consumers/rtes_serde (`ok` or `err`); tests/integration/test_rtes_serde.py asks it again
for seeded numbers wherever cargo and Debian's crates are installed."""

from __future__ import annotations

import math
import sys

import pytest

from runeworker.engine.rtes_numbers import may_refuse, serde_refuses

TOP = str(int(sys.float_info.max))  # the largest double's 309 digits
BELOW_TOP = str(int(TOP) - 10**292)

REFUSED = [
    "1.7976931348623158e308",
    "-1.7976931348623158e308",
    "1.7976931348623158E+308",
    "17976931348623158e292",
    "0.17976931348623158e309",
    "179769313486231580000e288",  # past a u64: the last digit counts into the exponent
    TOP,
    TOP + ".5",
    "2" + "0" * 308 + ".0",
    "18446744073709551615.5e290",
    "1e309",
    "0.1e310",
    "10e308",
    "1e2147483647",
    "1e2147483648",  # the exponent past an i32
    "-1e2147483648",
    "18446744073709551616.1",  # serde_json's `invalid number`: one digit past a u64, one after
    "5E308",
    "17976931348623158E292",
    "1.0e309",
    "1.00000000000000000000000000000e309",  # the fraction's zeros past a u64 skipped
    "9.99999999999999999999999999990e308",
]
READ = [
    "1.7976931348623157e308",
    "17976931348623157e292",
    BELOW_TOP,
    TOP[:-1],
    "1e308",
    "9e307",
    "18446744073709551615",
    "18446744073709551616",
    "184467440737095516160.12",
    "18446744073709551616.12",
    "1844674407370955161.9",
    "0e2147483648",
    "1e-2147483648",
    "0e999999999999",
    "0.0e400",
    "1.0e-400",
    "1" + "0" * 308,
    "1.5e-300",
    "123.456",
    "-0",
    "1E-400",
    "184467440737095516160.1",  # past a u64 by two digits, one after the point
    "17976931348623155067.4e289",  # the 20 digits a u64 holds, the last rounded away
    "18446744073709551617.7e288",
]


@pytest.mark.parametrize("token", REFUSED)
def test_refused_by_serde_json(token: str) -> None:
    assert serde_refuses(token)
    assert serde_refuses(token.encode())


@pytest.mark.parametrize("token", READ)
def test_read_by_serde_json(token: str) -> None:
    assert not serde_refuses(token)
    assert not serde_refuses(token.encode())


def test_the_edge_is_where_python_reads_the_largest_double() -> None:
    """What serde_json refuses and Python reads: the overshoot this module exists for."""
    overshot = [t for t in REFUSED if not math.isinf(float(t))]
    assert "1.7976931348623158e308" in overshot and TOP in overshot
    assert float("1.7976931348623158e308") == float(TOP) == sys.float_info.max


def _written_near_the_top() -> list[str]:
    """Doubles within 64 units in the last place of the largest, and u64::MAX + 1 to + 9 with a
    fraction, each written with its decimal point at every place, with leading zeros, signed."""
    out = []
    top = sys.float_info.max
    for ulps in range(64):
        x = top
        for _ in range(ulps):
            x = math.nextafter(x, 0.0)
        digits, exponent = f"{x:.20e}".replace(".", "").split("e")
        for cut in range(1, 22):
            shifted = int(exponent) - cut + 1
            out += [
                f"{digits[:cut]}.{digits[cut:]}e{shifted}",
                f"-0.000{digits}e{int(exponent) + 4}",
            ]
        out.append(repr(x))
    out += [f"{2**64 + k}.{f}" for k in range(10) for f in ("0", "1", "5", "9", "25")]
    return out


def test_every_number_serde_json_refuses_a_double_holds_begins_with_the_digits_looked_for() -> None:
    """`may_refuse` is the quick look before a step publishes a value it read whole as its
    bytes: it must answer True for every such number serde_json refuses."""
    held = [t for t in REFUSED if math.isfinite(float(t))]
    written = _written_near_the_top()
    refused = [t for t in held + written if serde_refuses(t)]
    assert len(refused) > 50  # the sweep reaches the refusals it is about
    assert [t for t in refused if not may_refuse(f'{{"v": [1, {t}]}}'.encode())] == []


def test_ordinary_text_is_not_looked_at_further() -> None:
    text = b'{"records": [{"id": 1, "score": 0.5, "n": 1.5e300, "big": 12345678901234567890}]}'
    assert not may_refuse(text)
