"""Money: integer nano-USD everywhere (`NanoUSD = int`, names end in `_nusd`), never a float.

One USD is 10**9 nano-USD. Operator amounts (config `limit_usd = "250.00"`, prices per million
tokens) are decimal strings or numbers converted once, exactly, with `usd_to_nusd`. Costs round up
once per request (`ceil_div`), never per token: a price of $0.0375 per million tokens is 37.5
nano-USD per token, and only the request's total is rounded.

Every amount must stay at or below `MAX_NUSD` (2**53 - 1, about 9.007 million USD): the largest
integer that a Lua number (a double) holds exactly, so the Redis scripts compare amounts exactly.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

from sluicegate._core import MAX_AMOUNT_NUSD

__all__ = ["MAX_NUSD", "NANO_PER_USD", "NanoUSD", "ceil_div", "format_usd", "usd_to_nusd"]

NanoUSD = int
NANO_PER_USD: Final = 1_000_000_000
MAX_NUSD: Final[int] = MAX_AMOUNT_NUSD


def usd_to_nusd(value: str | int | Decimal) -> NanoUSD:
    """An exact USD amount as nano-USD.

    Arguments:
        value: a decimal string (`"12.50"`), an int, or a Decimal. Floats are refused: `0.1` is not
            exactly a tenth, and money never passes through a float.

    Returns:
        The amount in nano-USD.

    Raises:
        ValueError: a float, a value that is not a finite decimal, a negative amount, a fraction of a
            nano-USD, or an amount above `MAX_NUSD`.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("a USD amount must be a decimal string, an int or a Decimal (never a float)")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError('a USD amount must be a decimal number such as "12.50"') from None
    if not amount.is_finite():
        raise ValueError("a USD amount must be finite")
    nusd = amount * NANO_PER_USD
    if nusd != nusd.to_integral_value():
        raise ValueError("a USD amount must be a whole number of nano-USD (at most 9 decimals)")
    if nusd < 0:
        raise ValueError("a USD amount must not be negative")
    if nusd > MAX_NUSD:
        raise ValueError(f"a USD amount must be at most {format_usd(MAX_NUSD)} (2**53 - 1 nano-USD)")
    return int(nusd)


def ceil_div(numerator: int, denominator: int) -> int:
    """`ceil(numerator / denominator)` in exact integer arithmetic (denominator > 0)."""
    return -(-numerator // denominator)


def format_usd(nusd: NanoUSD) -> str:
    """`12.5 USD` style text for messages: exact, trailing zeros removed, at least 2 decimals."""
    sign = "-" if nusd < 0 else ""
    whole, frac = divmod(abs(nusd), NANO_PER_USD)
    digits = f"{frac:09d}".rstrip("0")
    return f"{sign}${whole}.{digits.ljust(2, '0')}"
