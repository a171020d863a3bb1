"""The shared formatters (core.format.numbers) and their Jinja registration: signs, zero,
missing values, big numbers, plurals, contract labels, and every surface's environment using them."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import Environment

from core.format import numbers as n
from core.format.jinja import FILTERS, register

BAD = [None, math.nan, -math.nan, math.inf, -math.inf, True, False, "abc", "", object(), [1]]


@pytest.mark.parametrize("fn", [n.money, n.signed_money, n.pct, n.signed_pct, n.price, n.option_price, n.num,
                                n.trim, n.integer, n.strike, n.compact, n.compact_money])
@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_missing_or_unusable_input_is_the_placeholder_never_nan(fn, bad) -> None:
    assert fn(bad) == n.PLACEHOLDER == "n/a"


def test_money_and_signed_money() -> None:
    assert n.money(1000) == "$1,000.00" and n.money(-812.4) == "-$812.40" and n.money(0.86) == "$0.86"
    assert n.signed_money(892.7) == "+$892.70" and n.signed_money(-48.6) == "-$48.60"
    assert n.money(Decimal("12.5")) == "$12.50" and n.num(Decimal("-0.001"), 2) == "0.00"
    assert n.money("1,234.5") == "$1,234.50"  # stored figures come back as text


@pytest.mark.parametrize("x", [0, 0.0, -0.0, -0.001, 0.004, -0.0049])
def test_zero_has_no_sign_and_no_minus_zero(x) -> None:
    assert n.money(x) == "$0.00" and n.signed_money(x) == "$0.00"
    assert n.pct(x) == "0.00%" and n.pct(x, True, 0) == "0%" and n.num(x) == "0.00" and n.trim(x) == "0"
    assert n.compact(x) == "0" and n.compact_money(x) == "$0"


def test_rounding_to_zero_at_the_shown_digits_drops_the_sign() -> None:
    assert n.pct(-0.04, True, 1) == "0.0%" and n.pct(-0.06, True, 1) == "-0.1%"
    assert n.signed_pct(0.4, 0) == "0%" and n.signed_pct(0.6, 0) == "+1%"


def test_percent_digits_per_surface_are_roundings_of_one_number() -> None:
    r = 61.40 / 172.0 * 100.0  # the demo's SPY 590C: +35.70 %
    assert (n.signed_pct(r, 2), n.signed_pct(r, 1), n.signed_pct(r, 0)) == ("+35.70%", "+35.7%", "+36%")
    assert n.pct(r, False, 1) == "35.7%" and n.pct(-r, True, 1) == "-35.7%"


def test_large_numbers() -> None:
    assert n.money(1_234_567_890.5) == "$1,234,567,890.50" and n.integer(1234.6) == "1,235"
    assert n.compact(1_250_000) == "1.25M" and n.compact(-3.4e9) == "-3.40B" and n.compact(7.1e12) == "7.10T"
    assert n.compact(950) == "950" and n.compact(0.35) == "0.35" and n.compact(12_500) == "12.50K"
    # a value that rounds up to the next unit is shown in it, never "1,000.00K"
    assert n.compact(999_999) == "1.00M" and n.compact(999.996) == "1.00K" and n.compact(999.994) == "999.99"
    assert n.compact_money(5_500_000) == "$5.50M" and n.compact_money(-120_000) == "-$120.00K"
    assert n.compact(5e15) == "5,000.00T"  # past the largest unit: still that unit, separated


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_compact_never_shows_a_thousand_of_a_unit(x) -> None:
    text = n.compact(x)
    if text[-1] in "KMB":
        assert 1.0 <= abs(float(text.lstrip("-")[:-1].replace(",", ""))) < 1000.0, text


def test_prices_strikes_expiries_and_labels() -> None:
    assert n.price(0.86) == "0.86" and n.price(5905.1) == "5,905.10" and n.option_price(0.86) == "$0.86"
    assert n.strike(590.0) == "590" and n.strike(592.5) == "592.5" and n.strike(5000) == "5000"
    assert n.expiry("2026-12-03") == "12/03/26" == n.expiry("20261203") == n.expiry(date(2026, 12, 3))
    assert n.expiry("next friday") == n.PLACEHOLDER
    assert n.contract_label("spy", "2026-12-03", 590.0, "C") == "SPY 12/03/26 590C"
    assert n.contract_label("SPX", "20261218", 5875, "put") == "SPX 12/18/26 5875P"


def test_plurals() -> None:
    assert n.plural(1, "trade") == "1 trade" and n.plural(6, "trade") == "6 trades"
    assert n.plural(1, "contract") == "1 contract" and n.plural(0, "contract") == "0 contracts"
    assert n.plural(2, "contract") == "2 contracts" and n.plural(1.0, "position") == "1 position"
    assert n.plural(1200, "alert") == "1,200 alerts" and n.plural(3, "child", "children") == "3 children"
    assert n.plural(None, "trade") == "n/a trades"


def test_register_puts_the_same_functions_on_any_environment() -> None:
    env = register(Environment())
    assert all(env.filters[name] is fn for name, fn in FILTERS.items())
    t = env.from_string('{{ p|money(True) }} {{ r|pct(True, 1) }} {{ k|strike }} {{ x|option_price }} '
                        '{{ c|plural("trade") }} {{ "SPY"|contract("2026-12-03", 590, "C") }} {{ z|num }}')
    assert t.render(p=892.7, r=35.7, k=590.0, x=0.86, c=1, z=math.nan) == (
        "+$892.70 +35.7% 590 $0.86 1 trade SPY 12/03/26 590C n/a")


def test_every_surface_environment_uses_the_shared_filters() -> None:
    from bot.distribution.render import make_env
    from bot.telegram.render import Renderer as TgRenderer
    from overseer.narratives.templates import env as overseer_env
    from reports.render import env as report_env

    for e in (make_env(), TgRenderer().env, overseer_env(), report_env()):
        for name, fn in FILTERS.items():
            assert e.filters[name] is fn, name
