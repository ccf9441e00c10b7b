from decimal import Decimal

import pytest

from auditor import units


def test_to_decimal_is_exact_for_uint256():
    big = 2**256 - 1
    assert units.format_amount(big, 18) == "115792089237316195423570985008687907853269984665640564039457.584007913129639935"  # noqa: E501


def test_parse_amount_round_trips_and_refuses_extra_digits():
    assert units.parse_amount("400.5", 18) == 400_500_000_000_000_000_000
    assert units.format_amount(units.parse_amount("0.000001", 6), 6) == "0.000001"
    with pytest.raises(ValueError):
        units.parse_amount("0.0000001", 6)
    with pytest.raises(ValueError):
        units.parse_amount("1e3", 6)


def test_format_decimal_is_positional():
    assert units.format_decimal(Decimal("1E+3")) == "1000"
    assert units.format_decimal(Decimal("12.500")) == "12.5"
    assert units.format_decimal(Decimal("0.000")) == "0"


def test_format_ratio_rounds_half_even_to_12_places():
    assert units.format_ratio(Decimal("0.03125")) == "0.03125"
    assert units.format_ratio(Decimal(1) / Decimal(3)) == "0.333333333333"
    assert units.format_ratio(Decimal("0.0000000000005")) == "0"
    assert units.format_ratio(Decimal("0.0000000000015")) == "0.000000000002"
    assert units.format_ratio(None) is None


def test_parse_percent_and_duration():
    assert units.parse_percent("5%") == Decimal("0.05")
    assert units.parse_percent("0.05") == Decimal("0.05")
    assert units.parse_duration("10m") == 600
    assert units.parse_duration("7d") == 604800
    with pytest.raises(ValueError):
        units.parse_duration("10 minutes")


def test_rescale_only_exact():
    assert units.rescale(5, 6, 18) == 5 * 10**12
    assert units.rescale(5 * 10**12, 18, 6) == 5
    with pytest.raises(ValueError):
        units.rescale(1, 18, 6)


def test_ratio_of_zero_denominator_is_none():
    assert units.ratio(1, 0) is None
    assert units.ratio(1, 4) == Decimal("0.25")
