"""Per-use validation and the IV solver on a chain in the Cboe export layout (tests/data/README.md).

Runs on the committed sample and, when ``QUANTICITY_CBOE_CSV`` names a real export (e.g. the
2022-02-05 SPX quotedata.csv), on that file too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.analytics.cboe import parse_cboe_csv
from core.analytics.chain_analysis import AnalysisSettings, analyze_chain
from core.analytics.expiry_time import is_expired, year_fraction
from core.analytics.exposure import compute_exposure
from core.analytics.gamma_flip import zero_gamma_profile
from core.analytics.greeks import gamma as bs_gamma
from core.analytics.max_pain import pain_matrix
from core.analytics.report import summarize
from core.analytics.validate import clean_chain

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "spx_quotedata_sample.csv"
FILES = [pytest.param(SAMPLE, id="sample")]
if os.environ.get("QUANTICITY_CBOE_CSV"):
    FILES.append(pytest.param(Path(os.environ["QUANTICITY_CBOE_CSV"]), id="real"))
CFG = AnalysisSettings(rate=0.045, dividend_yield=0.0)


@pytest.fixture(params=FILES)
def loaded(request):
    chain, skipped = parse_cboe_csv(request.param.read_text(encoding="utf-8"))
    assert skipped == 0
    return chain, analyze_chain(chain, chain.asof, CFG)


def _live(chain) -> np.ndarray:
    return ~is_expired(chain.asof, chain.expiry)


def test_sample_is_what_the_readme_says() -> None:
    chain, _ = parse_cboe_csv(SAMPLE.read_text(encoding="utf-8"))
    live = _live(chain)
    iv0_itm = live & (chain.iv == 0) & (chain.open_interest > 0) & (chain.gamma > 0)
    assert len(chain) >= 300 and (~live).sum() >= 40 and iv0_itm.sum() >= 40
    assert str(chain.asof) == "2025-01-07 01:57:00+00:00" and chain.spot == 5975.3799


def test_total_gex_is_the_vendor_gamma_sum_over_every_row_with_open_interest(loaded) -> None:
    chain, an = loaded
    live = _live(chain) & (chain.open_interest > 0)
    sign = np.where(chain.is_call, 1.0, -1.0)
    vendor = float(np.sum((sign * chain.gamma * chain.open_interest)[live]) * 100 * chain.spot**2 * 0.01)
    assert an.exposure.gex_total == pytest.approx(vendor, rel=1e-12)
    assert an.uses.rejected["gex"] == ({"expired": int((~_live(chain)).sum())} if (~_live(chain)).any() else {})
    # the all-or-nothing rule this replaces lost the IV-0 rows (8.5 % of GEX on the 2022 export)
    clean, counts = clean_chain(chain, chain.asof)
    old = compute_exposure(clean, CFG.rate, CFG.dividend_yield, grid_levels=0)
    assert counts.non_positive_iv > 0 and abs(old.gex_total - vendor) > 1e-3 * abs(vendor)


def test_max_pain_counts_all_open_interest(loaded) -> None:
    chain, an = loaded
    live = _live(chain)
    want = {}
    for e in np.unique(chain.expiry[live]):
        rows = live & (chain.expiry == e)
        cands, pain = pain_matrix(chain.strike[rows], chain.is_call[rows], chain.open_interest[rows])
        want[e.astype(object)] = float(cands[int(np.argmin(pain))])
    assert an.exposure.max_pain == want
    assert an.uses.used()["max_pain"] == int(live.sum())


def test_expired_rows_are_expired_in_every_use_not_bad_iv(loaded) -> None:
    chain, an = loaded
    n_expired = int((~_live(chain)).sum())
    for use in ("max_pain", "gex", "dex", "flip"):
        assert an.uses.rejected[use].get("expired", 0) == n_expired
    assert clean_chain(chain, chain.asof)[1].expired == n_expired


def test_iv_zero_rows_are_solved_and_reproduce_the_vendor_gamma(loaded) -> None:
    chain, an = loaded
    solved = an.vol.source >= 2
    assert solved.sum() > 0 and np.all(chain.iv[solved] == 0)
    T = year_fraction(chain.asof, chain.expiry, CFG.min_minutes_to_expiry)
    model = bs_gamma(chain.spot, chain.strike[solved], T[solved], CFG.rate, CFG.dividend_yield, an.vol.vol[solved])
    assert np.max(np.abs(model - chain.gamma[solved])) < 5e-4  # vendor gammas print 4 decimals
    # rows whose price is at or below intrinsic have no IV, say so, and only the flip lacks them
    unsolved = an.vol.summary()["unsolved"]
    assert set(unsolved) <= {"at_or_below_intrinsic", "no_volatility"}
    assert sum(an.uses.rejected["flip"].values()) == sum(unsolved.values()) + an.uses.rejected["flip"].get(
        "expired", 0)


def test_zero_gamma_is_stable_with_iv_zero_rows_solved(loaded) -> None:
    chain, an = loaded
    flip = an.exposure.zero_gamma
    assert flip is not None and abs(flip / chain.spot - 1) < 0.05
    sub, rows = an.chain, an.uses.masks["flip"][an.uses.any_use]
    solved = (an.vol.source >= 2)[an.uses.any_use]
    T = year_fraction(chain.asof, sub.expiry, CFG.min_minutes_to_expiry)
    for scale in (0.8, 1.25):  # the solved IVs 20 % off move the flip by < 0.1 % of spot
        vol = np.where(solved, an.vol.vol[an.uses.any_use] * scale, an.vol.vol[an.uses.any_use])
        prof = zero_gamma_profile(chain.spot, sub.strike[rows], T[rows], vol[rows], sub.open_interest[rows],
                                  sub.is_call[rows], CFG.rate, CFG.dividend_yield)
        assert prof.zero_gamma is not None and abs(prof.zero_gamma - flip) < 1e-3 * chain.spot
    again = analyze_chain(chain, chain.asof, CFG)
    assert again.exposure.zero_gamma == flip


def test_output_reports_reasons_rate_and_yield(loaded) -> None:
    chain, an = loaded
    out = summarize(an)
    v = out["validation"]
    assert (out["rate"], out["dividend_yield"]) == (0.045, 0.0)
    assert v["rate_source"] == v["dividend_yield_source"] == "config"
    assert v["iv"]["vendor"] + v["iv"]["solved_mid"] + v["iv"]["solved_last"] + sum(v["iv"]["unsolved"].values()) \
        == int(_live(chain).sum())
    assert out["contracts_used"] + out["contracts_rejected"] == len(chain)
