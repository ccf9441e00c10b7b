"""The only place that converts base units to and from Decimal and text.

Inside the auditor every on-chain amount is an `int` in base units (wei,
satoshi, token units). Whole-unit amounts, prices and fiat values are
`Decimal`, computed in a context wide enough that nothing is rounded until
it is written out. Nothing here touches `float`.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext

__all__ = [
    "EXACT",
    "to_decimal",
    "parse_amount",
    "format_decimal",
    "format_amount",
    "format_ratio",
    "format_price",
    "rescale",
    "parse_decimal",
    "parse_percent",
    "parse_duration",
    "format_duration",
    "value_of",
    "ratio",
]

# 120 significant digits: a uint256 has 78 digits, so products and quotients of
# amounts and prices stay exact until formatting rounds them explicitly.
EXACT = Context(prec=120, rounding=ROUND_HALF_EVEN)

_RATIO_QUANTUM = Decimal(1).scaleb(-12)
_PRICE_QUANTUM = Decimal(1).scaleb(-18)
_DECIMAL_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_FAST_DIGITS = 10**100  # to_decimal's fast path: well inside EXACT's 120 digits
_PLAIN_AMOUNT_RE = re.compile(r"(-?)(\d+)(?:\.(\d+))?")  # what format_decimal writes


def to_decimal(amount: int, decimals: int) -> Decimal:
    """Base units to whole units, exactly (1500000000000000000, 18 → 1.5)."""
    if type(amount) is int and -_FAST_DIGITS < amount < _FAST_DIGITS:
        # Same digits and exponent as the tuple form below, without a Python loop per
        # digit (findings and replays format amounts by the million); exact below 10^100.
        return Decimal(amount).scaleb(-decimals, EXACT)
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"amount must be int base units, got {type(amount).__name__}")
    sign = 1 if amount < 0 else 0
    digits = tuple(int(c) for c in str(abs(amount)))
    return Decimal((sign, digits, -decimals))


def parse_decimal(text: str | int | Decimal) -> Decimal:
    """A decimal string ("400.5", "1e3" is refused) to Decimal. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError("expected a decimal number as a string, got a boolean")
    if isinstance(text, int):
        return Decimal(text)
    if isinstance(text, Decimal):
        if not text.is_finite():
            raise ValueError(f"not a finite number: {text}")
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a decimal number as a string, got {type(text).__name__}")
    s = text.strip().replace("_", "")
    if not _DECIMAL_RE.match(s):
        raise ValueError(f"not a plain decimal number: {text!r}")
    try:
        return Decimal(s)
    except InvalidOperation as e:  # pragma: no cover - the regex already filters
        raise ValueError(f"not a decimal number: {text!r}") from e


def parse_amount(text: str | int | Decimal, decimals: int) -> int:
    """Whole units as text ("400.5") to int base units; refuses more digits than `decimals`."""
    if type(text) is str:
        # Fast path for the plain form the auditor writes (stored JSON is re-read by the
        # million in backtests): digits only, exact by construction.
        m = _PLAIN_AMOUNT_RE.fullmatch(text)
        if m is not None and len(m[3] or "") <= decimals:
            v = int(m[2] + (m[3] or "").ljust(decimals, "0"))
            return -v if m[1] else v
    d = parse_decimal(text)
    with localcontext(EXACT):
        scaled = d.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{text} has more than {decimals} decimal places")
        return int(scaled)


def format_decimal(d: Decimal) -> str:
    """Positional text, trailing zeros dropped, never exponent notation ("1000", "0.5")."""
    if not d.is_finite():
        raise ValueError(f"not a finite number: {d}")
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s


def format_amount(amount: int, decimals: int) -> str:
    """Base units to exact whole-unit text (12500000000000000000, 18 → "12.5")."""
    return format_decimal(to_decimal(amount, decimals))


def format_ratio(r: Decimal | None) -> str | None:
    """A ratio rounded half-even to 12 places, trailing zeros dropped; None stays None."""
    if r is None:
        return None
    with localcontext(EXACT):
        return format_decimal(r.quantize(_RATIO_QUANTUM, rounding=ROUND_HALF_EVEN))


def format_price(p: Decimal | None) -> str | None:
    """A price rounded half-even to 18 places (prices derived by division)."""
    if p is None:
        return None
    with localcontext(EXACT):
        return format_decimal(p.quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN))


def rescale(amount: int, from_decimals: int, to_decimals: int) -> int:
    """Move an amount between decimal bases; only exact conversions are allowed."""
    if to_decimals == from_decimals:
        return amount
    if to_decimals > from_decimals:
        # typeshed types int ** int as Any (a negative exponent gives a float); these are >= 1
        up: int = 10 ** (to_decimals - from_decimals)
        return amount * up
    down: int = 10 ** (from_decimals - to_decimals)
    q, r = divmod(amount, down)
    if r:
        raise ValueError(f"{amount} cannot be expressed with {to_decimals} decimals")
    return q


def value_of(amount: int, decimals: int, price: Decimal) -> Decimal:
    """Fiat value of base units at a whole-unit price, exact."""
    with localcontext(EXACT):
        return to_decimal(amount, decimals) * price


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    """numerator ÷ denominator in the exact context; None when the denominator is 0."""
    if denominator == 0:
        return None
    with localcontext(EXACT):
        return Decimal(numerator) / Decimal(denominator)


def parse_percent(text: str | int | Decimal) -> Decimal:
    """"5%" → 0.05; "0.05" → 0.05. Raises ValueError."""
    if isinstance(text, str) and text.strip().endswith("%"):
        with localcontext(EXACT):
            return parse_decimal(text.strip()[:-1]) / 100
    return parse_decimal(text)


_DURATION_RE = re.compile(r"^(\d+)\s*(ms|s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int) -> int:
    """"30s", "10m", "2h", "7d", "1w" → whole seconds. Plain ints are seconds."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 30s, 10m, 2h or 7d")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return text
    m = _DURATION_RE.match(str(text).strip())
    if not m or m.group(2) == "ms":
        raise ValueError(f"{text!r} is not a duration; use a number and a unit: 30s, 10m, 2h, 7d")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def format_duration(seconds: int) -> str:
    for unit, n in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"
