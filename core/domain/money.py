"""Money: integer minor units, parsing what people type, formatting, and exact splits.

Invariants:
- An amount is an `int` of the currency's minor unit (paisa, fils, cents), never a float.
- Parsing refuses anything finer than the currency allows ("10.005 BDT") instead of rounding
  it away silently: the collector typed something they did not mean.
- `allocate` returns parts that always sum to the whole (largest remainder): no split ever
  loses or invents a minor unit.
- Rates are basis points (1 bp = 0.01 %, 10_000 bp = 100 %).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from babel.languages import get_official_languages
from babel.numbers import (
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
)

from core.errors import InvalidAmount

BASIS_POINTS = 10_000

# People type Bengali (and Arabic-Indic) digits as often as ASCII ones.
_DIGITS = str.maketrans("০১২৩৪৫৬৭৮৯٠١٢٣٤٥٦٧٨٩", "01234567890123456789")

_AMOUNT_RE = re.compile(r"^\s*(\d{1,3}(,\d{3})+|\d+)(\.\d+)?\s*$")


def minor_digits(currency: str) -> int:
    """How many decimal digits the currency's minor unit has (BDT 2, KWD 3, JPY 0)."""
    return int(get_currency_precision(currency))


def parse_amount(text: str, currency: str) -> int:
    """Turn what a person typed ("1500", "1,500.50") into minor units, or say what is wrong.

    Raises:
        InvalidAmount: not a plain positive number, zero, or more decimals than the currency.
    """
    digits = minor_digits(currency)
    cleaned = (text or "").strip().translate(_DIGITS)
    if cleaned.startswith("-"):
        raise InvalidAmount("The amount must be more than zero.", code="amount_not_positive")
    if not _AMOUNT_RE.match(cleaned):
        raise InvalidAmount(
            f"Type the amount as a number, like 1500 or 1500.50 ({currency}).",
            code="amount_not_number",
        )
    try:
        value = Decimal(cleaned.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise InvalidAmount("Type the amount as a number, like 1500.") from exc
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > digits and value != value.quantize(Decimal(1).scaleb(-digits)):
        if digits == 0:
            raise InvalidAmount(
                f"{currency} has no decimals: type a whole number.", code="amount_whole_only"
            )
        raise InvalidAmount(
            f"{currency} has at most {digits} decimals.", code="amount_too_precise", digits=digits
        )
    minor = int(value.scaleb(digits))
    if minor <= 0:
        raise InvalidAmount("The amount must be more than zero.", code="amount_not_positive")
    return minor


def to_decimal(amount_minor: int, currency: str) -> Decimal:
    """Minor units back to a Decimal in major units (for display and exports only)."""
    return Decimal(amount_minor).scaleb(-minor_digits(currency))


def format_money(amount_minor: int, currency: str, locale: str = "en") -> str:
    """Locale-aware text for an amount, e.g. `৳1,500.00` or `BHD 12.500`."""
    return format_currency(to_decimal(amount_minor, currency), currency, locale=locale)


def currency_symbol(currency: str, country: str) -> str:
    """The symbol people in the tenant's country write: ৳ for BDT in BD, $ for USD in US.

    CLDR gives English speakers "BDT"; the country's own language knows the sign.
    """
    for language in get_official_languages(country):
        symbol = get_currency_symbol(currency, f"{language}_{country}")
        if symbol != currency:
            return symbol
    return get_currency_symbol(currency, "en")


def display_money(amount_minor: int, currency: str, *, locale: str, country: str) -> str:
    """Short money for chat: `৳1,500`, `৳1,500.50`, `-৳20` (decimals only when not whole)."""
    digits = minor_digits(currency)
    whole = amount_minor % (10**digits) == 0 if digits else True
    pattern = "#,##0" if whole else "#,##0." + "0" * digits
    number = format_decimal(abs(to_decimal(amount_minor, currency)), format=pattern, locale=locale)
    sign = "-" if amount_minor < 0 else ""
    return f"{sign}{currency_symbol(currency, country)}{number}"


def allocate(amount_minor: int, weights: list[int]) -> list[int]:
    """Split `amount_minor` in proportion to non-negative integer `weights`, exactly.

    Each part gets the floor of its share; the minor units left over go one each to the
    parts with the largest remainders (ties to the earlier part). The parts sum to the
    amount for every input, which a property test checks.
    """
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError("weights must be non-negative with a positive sum")
    total = sum(weights)
    sign = -1 if amount_minor < 0 else 1
    magnitude = abs(amount_minor)
    floors = [magnitude * w // total for w in weights]
    remainders = [magnitude * w % total for w in weights]
    short = magnitude - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        floors[i] += 1
    return [sign * part for part in floors]


def commission_on(amount_minor: int, rate_bp: int) -> int:
    """The collector's commission on a collection: the rate's share, rounded half up.

    Computed with `allocate` against the remainder, so commission + office share is
    always exactly the amount collected.
    """
    if not 0 <= rate_bp <= BASIS_POINTS:
        raise ValueError("a commission rate is between 0 and 10,000 basis points")
    if rate_bp in (0, BASIS_POINTS):
        return amount_minor if rate_bp else 0
    return allocate(amount_minor, [rate_bp, BASIS_POINTS - rate_bp])[0]


def parse_rate(text: str) -> int:
    """A percentage as people write it ("5", "2.5%") to basis points.

    Raises:
        InvalidAmount: not a number between 0 and 100 with at most two decimals.
    """
    cleaned = (text or "").strip().rstrip("%").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise InvalidAmount("Type the commission as a percentage, like 5 or 2.5.") from exc
    bp = value * 100
    if not value.is_finite() or bp != bp.to_integral_value() or not 0 <= bp <= BASIS_POINTS:
        raise InvalidAmount("A commission is a percentage from 0 to 100, at most 2 decimals.")
    return int(bp)
