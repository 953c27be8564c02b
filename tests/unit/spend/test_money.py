"""Money: exact USD -> nano-USD conversion, rounding once, and the 2**53 guard."""

from decimal import Decimal

import pytest

from sluicegate.spend.money import MAX_NUSD, NANO_PER_USD, ceil_div, format_usd, usd_to_nusd


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("1", NANO_PER_USD),
        ("12.50", 12_500_000_000),
        ("0.000000001", 1),
        (" 3.25 ", 3_250_000_000),
        (7, 7 * NANO_PER_USD),
        (Decimal("0.1"), 100_000_000),
        ("9007199.254740991", MAX_NUSD),
        ("1e2", 100 * NANO_PER_USD),
    ],
)
def test_usd_to_nusd(value: str | int | Decimal, expected: int) -> None:
    assert usd_to_nusd(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.1, "never a float"),
        (True, "never a float"),
        ("abc", "decimal number"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("0.0000000001", "at most 9 decimals"),
        ("-1", "negative"),
        ("9007199.254740992", "at most"),
        ("10000000", "at most"),
    ],
)
def test_usd_to_nusd_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        usd_to_nusd(value)  # type: ignore[arg-type]


def test_max_is_the_largest_exact_double() -> None:
    assert MAX_NUSD == 2**53 - 1
    assert float(MAX_NUSD) == MAX_NUSD
    assert float(MAX_NUSD + 2) != MAX_NUSD + 2


@pytest.mark.parametrize(("n", "d", "expected"), [(0, 5, 0), (1, 5, 1), (5, 5, 1), (6, 5, 2), (37_500_001, 10**6, 38)])
def test_ceil_div(n: int, d: int, expected: int) -> None:
    assert ceil_div(n, d) == expected


@pytest.mark.parametrize(
    ("nusd", "text"),
    [
        (0, "$0.00"),
        (12_500_000_000, "$12.50"),
        (1, "$0.000000001"),
        (-1_230_000_000, "-$1.23"),
        (MAX_NUSD, "$9007199.254740991"),
    ],
)
def test_format_usd(nusd: int, text: str) -> None:
    assert format_usd(nusd) == text
