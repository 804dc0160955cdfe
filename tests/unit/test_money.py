"""Money rules: parsing what people type, exact splits, commission rounding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.money import (
    allocate,
    commission_on,
    display_money,
    format_money,
    parse_amount,
    parse_rate,
)
from core.errors import InvalidAmount


@pytest.mark.parametrize(
    ("typed", "currency", "minor"),
    [
        ("1500", "BDT", 150_000),
        ("1,500.5", "BDT", 150_050),
        (" 0.01 ", "BDT", 1),
        ("12.345", "KWD", 12_345),
        ("500", "JPY", 500),
        ("1500.00", "BDT", 150_000),
    ],
)
def test_typed_amounts_become_minor_units(typed, currency, minor):
    assert parse_amount(typed, currency) == minor


@pytest.mark.parametrize(
    ("typed", "currency", "sentence"),
    [
        ("abc", "BDT", "as a number"),
        ("", "BDT", "as a number"),
        ("1e3", "BDT", "as a number"),
        ("0", "BDT", "more than zero"),
        ("0.00", "BDT", "more than zero"),
        ("-5", "BDT", "more than zero"),
        ("10.005", "BDT", "at most 2 decimals"),
        ("5.5", "JPY", "no decimals"),
        ("1,50", "BDT", "as a number"),
    ],
)
def test_amounts_that_are_not_money_are_refused_with_a_sentence(typed, currency, sentence):
    with pytest.raises(InvalidAmount, match=sentence):
        parse_amount(typed, currency)


@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=8).filter(
        lambda w: sum(w) > 0
    ),
)
def test_a_split_never_loses_or_invents_a_minor_unit(amount, weights):
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    assert len(parts) == len(weights)
    total = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - amount * weight / total) < 1


def test_leftover_units_go_to_the_largest_remainders_first():
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(5, [3, 7]) == [2, 3]  # 1.5 -> 2 (ties to the earlier part), 3.5 -> 3


@pytest.mark.parametrize(
    ("amount", "rate_bp", "commission"),
    [
        (150_000, 500, 7_500),
        (333, 500, 17),
        (10, 250, 0),
        (30, 500, 2),
        (99, 0, 0),
        (99, 10_000, 99),
    ],
)
def test_commission_is_the_rate_share_rounded_half_up(amount, rate_bp, commission):
    assert commission_on(amount, rate_bp) == commission


def test_a_rate_outside_zero_to_one_hundred_percent_is_a_bug():
    with pytest.raises(ValueError):
        commission_on(100, 10_001)


@pytest.mark.parametrize(("typed", "bp"), [("5", 500), ("2.5%", 250), ("0", 0), ("100", 10_000)])
def test_percentages_become_basis_points(typed, bp):
    assert parse_rate(typed) == bp


@pytest.mark.parametrize("typed", ["abc", "101", "-1", "2.555"])
def test_percentages_out_of_range_or_too_fine_are_refused(typed):
    with pytest.raises(InvalidAmount):
        parse_rate(typed)


def test_amounts_are_formatted_for_the_currency():
    assert format_money(150_000, "BDT") == "BDT1,500.00"
    assert format_money(12_500, "KWD") == "KWD12.500"


@pytest.mark.parametrize(
    ("minor", "currency", "country", "text"),
    [
        (150_000, "BDT", "BD", "৳1,500"),
        (150_050, "BDT", "BD", "৳1,500.50"),
        (-2_000, "BDT", "BD", "-৳20"),
        (12_500, "BHD", "BH", "د.ب.\u200f12.500"),
        (999, "USD", "US", "$9.99"),
    ],
)
def test_chat_amounts_use_the_countrys_own_sign_and_drop_zero_decimals(
    minor, currency, country, text
):
    assert display_money(minor, currency, locale="en", country=country) == text


def test_bengali_and_arabic_indic_digits_are_read_as_numbers():
    assert parse_amount("১৫০০", "BDT") == 150_000
    assert parse_amount("١٢", "BHD") == 12_000
