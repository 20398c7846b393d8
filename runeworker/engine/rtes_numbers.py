"""Which JSON numbers RTES refuses although a double holds them.

RTES decodes every status and completion with `serde_json::from_slice`
(`services/rtes/src/infra/messaging.rs`), built without serde_json's `float_roundtrip`
feature (`services/rtes/Cargo.toml` asks for none). Without it serde_json does not round a
decimal number correctly: it keeps the first digits that fit a `u64` as the significand,
counts the rest into the exponent, converts the significand to a double and multiplies it by
a double power of ten, and refuses the number (`number out of range`) when that product is
infinite. Near the largest double (1.7976931348623157e308) the two roundings overshoot:
`1.7976931348623158e308` and the 309 digits of `int(sys.float_info.max)` are read as that
double by Go, msgspec and Python, and refused by RTES, which then drops the message (nacked
without requeue): a status lost, or the execution's completion.

`serde_refuses` replays that arithmetic (serde_json 1.0.87, `src/de.rs`: `parse_integer`,
`parse_long_integer`, `parse_decimal`, `parse_decimal_overflow`, `parse_exponent`,
`parse_exponent_overflow`, `f64_from_parts`) on the text of one number, in Python's doubles,
which are the same IEEE doubles with the same round-to-nearest-even operations. Only numbers of
about 1e289 and more can be refused (the product of a significand below 2^64 and a power of ten
that is not infinite), which `runeworker.engine.depth` looks at already: the callers ask about
numbers with an exponent of three digits or of 200 digits and more only.
"""

from __future__ import annotations

import math
from typing import Final

_U64: Final = 2**64 - 1
_I32: Final = 2**31 - 1
# serde_json's POW10: the doubles 1e0 ... 1e308 (Rust's literals, correctly rounded as Python's)
_POW10: Final = tuple(float(f"1e{i}") for i in range(309))
_DIGITS: Final = frozenset("0123456789")
_EXPONENT: Final = frozenset("eE")
_SIGNS: Final = frozenset("+-")


def serde_refuses(token: str | bytes) -> bool:
    """Whether serde_json without `float_roundtrip` refuses the JSON number `token` (see the
    module doc): out of range, or the one misreading of a valid number, an integer past a u64
    by as many digits as its fraction has (`18446744073709551616.1`, `invalid number`). `token`
    is one number as JSON writes it (Python's float() syntax is enough); its sign does not
    matter."""
    text = token.decode() if isinstance(token, bytes) else token
    at = 1 if text[0] == "-" else 0
    end = len(text)
    significand = exponent = 0
    full = False  # the significand took all it could; later digits only count
    while at < end and text[at] in _DIGITS:
        digit = ord(text[at]) - 48
        if full or significand * 10 + digit > _U64:
            full = True
            exponent += 1  # parse_long_integer: a digit more, a power of ten more
        else:
            significand = significand * 10 + digit
        at += 1
    if at < end and text[at] == ".":
        at += 1
        start = exponent
        while at < end and text[at] in _DIGITS:
            digit = ord(text[at]) - 48
            if significand * 10 + digit > _U64:
                while at < end and text[at] in _DIGITS:  # parse_decimal_overflow
                    at += 1
                break
            significand = significand * 10 + digit
            exponent -= 1
            at += 1
        else:
            # parse_decimal's check for a digit after the point reads the exponent: an integer
            # part that overflowed by exactly as many digits as the fraction added is refused
            if exponent == 0 and start != 0:
                return True
    if at < end and text[at] in _EXPONENT:
        at += 1  # a sign or a digit follows
        negative = text[at] == "-"
        if text[at] in _SIGNS:
            at += 1
        exp = 0
        while at < end and text[at] in _DIGITS:
            exp = exp * 10 + ord(text[at]) - 48
            if exp > _I32:  # parse_exponent_overflow
                return significand != 0 and not negative
            at += 1
        exponent = exponent - exp if negative else exponent + exp
    return _from_parts(significand, exponent)


# The leading digits (after a sign and leading zeros) of every number `serde_refuses` refuses
# that a double holds: one within a few units in the last place of the largest double begins
# 17976931348623, wherever its decimal point is (a point splits at most one of these two runs
# of seven), and the misreading begins with `MISREAD`.
MISREAD: Final = "1844674407370955161"  # u64::MAX + 1 to + 4 with a fraction: `invalid number`
_LEADING: Final = (b"1797693", b"1348623", MISREAD.encode())


def may_refuse(data: bytes) -> bool:
    """Whether the JSON text `data`, whose numbers a double holds (msgspec decoded it), may hold
    one that `serde_refuses`: false when none of the digits such numbers begin with is in it
    (three C scans, about 1.3 µs for a kilobyte: deploy/PERFORMANCE.md)."""
    return _LEADING[0] in data or _LEADING[1] in data or _LEADING[2] in data


def _from_parts(significand: int, exponent: int) -> bool:
    """f64_from_parts: whether `significand` times ten to the `exponent` is out of range. It
    divides for a negative exponent, which never overflows; beyond its table of powers it
    refuses any significand but zero (its i32 exponent saturates, which changes neither)."""
    if exponent < 0:
        return False
    if exponent > 308:
        return significand != 0
    return math.isinf(float(significand) * _POW10[exponent])
