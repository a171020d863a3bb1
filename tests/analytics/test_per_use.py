"""Validation per use: a row counts for each computation it has what that computation needs.

The CLI (CHAIN.json) and the AnalyticsService run the same code (core.analytics.chain_analysis)
and report the same rejections by use and reason.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.analytics.chain_analysis import AnalysisSettings, analyze_chain
from core.analytics.exposure import compute_exposure
from core.analytics.report import analyze_chain_json, chain_from_rows
from core.analytics.service import AnalyticsService
from core.analytics.validate import clean_chain
from core.bus.events import AnalyticsEvent, ChainEvent, decode
from core.market.chain_codec import encode_chain
from tests.helpers import make_context

from ._chains import ASOF, make_chain

E = "2025-01-17"
BASE = {"expiry": E, "right": "C", "bid": 4.0, "ask": 4.2, "iv": 0.14, "open_interest": 1000}
ROWS = {
    "clean": {**BASE, "strike": 590},
    "iv0_vendor_greeks": {**BASE, "strike": 560, "iv": 0, "bid": 31.0, "ask": 31.6, "delta": 0.93, "gamma": 0.004,
                          "open_interest": 22213},
    "iv0_solvable": {**BASE, "strike": 570, "right": "C", "iv": 0, "bid": 21.0, "ask": 21.6},
    "oi_only": {"expiry": E, "strike": 600, "right": "C", "open_interest": 500},
    "crossed_no_iv": {**BASE, "strike": 605, "iv": 0, "bid": 1.3, "ask": 1.1},
    "below_intrinsic_vendor_gamma": {**BASE, "strike": 620, "right": "P", "iv": 0, "bid": 25.0, "ask": 29.0,
                                     "delta": -0.97, "gamma": 0.001},
    "bad_vendor_gamma": {**BASE, "strike": 595, "gamma": -0.01},
    "expired_iv0": {**BASE, "expiry": "2025-01-09", "strike": 590, "iv": 0},
}


def _obj(rows: dict, asof: str = "2025-01-10T10:00:00-05:00", dates: dict | None = None) -> dict:
    contracts = copy.deepcopy(list(rows.values()))
    for r in contracts:
        r["expiry"] = (dates or {}).get(r["expiry"], r["expiry"])
    return {"symbol": "SPY", "spot": 590.0, "asof": asof, "contracts": contracts}


def test_rejections_by_reason_and_use_exactly() -> None:
    v = analyze_chain_json(_obj(ROWS))["validation"]
    assert v["rejected"]["max_pain"] == {"expired": 1}
    assert v["rejected"]["gex"] == {"expired": 1, "no_volatility": 1, "crossed": 1, "bad_greeks": 1}
    # the row with a negative vendor gamma has a valid delta: DEX counts it
    assert v["rejected"]["dex"] == {"expired": 1, "no_volatility": 1, "crossed": 1}
    assert v["rejected"]["flip"] == {"expired": 1, "no_volatility": 1, "crossed": 1, "at_or_below_intrinsic": 1}
    assert v["used"] == {"max_pain": 7, "gex": 4, "dex": 5, "flip": 4}
    assert v["iv"] == {"vendor": 2, "solved_mid": 2, "solved_last": 0,
                       "unsolved": {"no_volatility": 1, "crossed": 1, "at_or_below_intrinsic": 1}}


def test_iv0_row_with_vendor_gamma_is_worth_its_gex() -> None:
    with_row = analyze_chain_json(_obj(ROWS))
    without = analyze_chain_json(_obj({k: v for k, v in ROWS.items() if k != "iv0_vendor_greeks"}))
    assert with_row["gex_total"] - without["gex_total"] == pytest.approx(0.004 * 22213 * 100 * 590.0**2 * 0.01)
    assert with_row["dex_total"] - without["dex_total"] == pytest.approx(0.93 * 22213 * 100 * 590.0)


def test_max_pain_uses_open_interest_whatever_the_quotes() -> None:
    rows = {"c": {"expiry": E, "strike": 580, "right": "C", "open_interest": 10_000},   # no quotes at all
            "p": {"expiry": E, "strike": 600, "right": "P", "open_interest": 10, "bid": 9.0, "ask": 9.5, "iv": 0.2}}
    # with the call counted, settling at 580 pays nothing to the calls: max pain 580
    assert analyze_chain_json(_obj(rows))["max_pain"] == {E: 580.0}


def test_crossed_book_with_a_last_price_is_solved_from_last() -> None:
    chain, _ = chain_from_rows("SPY", 590.0, ASOF, [{**ROWS["crossed_no_iv"], "last": 1.2}])
    an = analyze_chain(chain, ASOF, AnalysisSettings())
    assert an.vol.summary()["solved_last"] == 1 and an.uses.used()["flip"] == 1


_clean_row = st.fixed_dictionaries({
    "strike": st.floats(80.0, 120.0), "iv": st.floats(0.05, 1.5), "oi": st.floats(0.0, 5e4),
    "call": st.booleans(), "expiry": st.sampled_from(["2025-01-10", "2025-01-17", "2025-03-21"]),
    "bid": st.floats(0.0, 5.0), "delta": st.sampled_from([float("nan"), 0.0]),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(_clean_row, min_size=1, max_size=25))
def test_clean_chains_give_exactly_the_old_numbers(rows: list[dict]) -> None:
    """The demo's chains are clean: per-use validation must not change one bit of their numbers."""
    for r in rows:
        r["ask"] = r["bid"] + 0.1
        r["gamma"] = float("nan") if np.isnan(r["delta"]) else 0.01
        r["delta"] = r["delta"] if np.isnan(r["delta"]) else (0.5 if r["call"] else -0.5)
    chain = make_chain(rows)
    clean, counts = clean_chain(chain, ASOF)
    assert counts.total == 0
    old = compute_exposure(clean, 0.045, 0.0, 200, width=0.2, min_minutes=5.0)
    new = analyze_chain(chain, ASOF, AnalysisSettings()).exposure
    for name in ("gex_total", "dex_total", "call_wall", "put_wall", "max_gamma_strike", "zero_gamma", "max_pain"):
        assert getattr(new, name) == getattr(old, name), name
    for name in ("gex", "dex", "delta", "gamma", "gex_by_strike", "strikes"):
        assert np.array_equal(getattr(new, name), getattr(old, name)), name


async def test_service_reports_what_the_cli_reports(bus) -> None:
    asof = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # the bus clock only moves forward: a later day
    obj = _obj(ROWS, asof.isoformat(), {E: "2026-11-27", "2025-01-09": "2026-11-19"})
    cli = analyze_chain_json(obj)
    chain, bad = chain_from_rows("SPY", obj["spot"], asof, obj["contracts"])
    assert bad == 0
    bus.clock.set_ms(int(asof.timestamp() * 1000))
    key = bus.keys.snapshot("chain", "SPY")
    await bus.redis.set(key, encode_chain(chain))
    ev = bus.make(ChainEvent, symbol="SPY", spot=obj["spot"], asof=bus.clock.ms(), snapshot_key=key,
                  contracts=len(chain))
    tx = bus.tx()
    await AnalyticsService(make_context(bus)).handle(ev, tx)
    await tx.commit()
    [an] = [e for e in (decode(f) for _id, f in await bus.redis.xrange(bus.keys.stream("analytics")))
            if isinstance(e, AnalyticsEvent)]
    v = cli["validation"]
    assert an.rows_by_use == v["used"] and an.rejected_by_use == v["rejected"]
    assert an.iv_sources == {k: n for k, n in v["iv"].items() if k != "unsolved"}
    assert (an.rate, an.dividend_yield) == (cli["rate"], cli["dividend_yield"])
    assert (an.contracts_used, an.contracts_rejected) == (cli["contracts_used"], cli["contracts_rejected"])
    assert an.gex_total == pytest.approx(cli["gex_total"], abs=0.006)
    assert an.zero_gamma == pytest.approx(cli["zero_gamma"], abs=1e-4)
