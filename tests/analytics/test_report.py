"""CHAIN.json CLI contract: analyze_chain_json, chain_from_rows, ChainFileError, main."""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.analytics.expiry_time import year_fraction
from core.analytics.gamma_flip import zero_gamma_profile
from core.analytics.report import (
    ChainFileError,
    analyze_chain_file,
    analyze_chain_json,
    chain_from_rows,
    main,
)

OUTPUT_KEYS = {
    "symbol", "spot", "gex_total", "dex_total", "gex_by_strike", "call_wall", "put_wall", "zero_gamma",
    "max_pain", "contracts_used", "contracts_rejected", "rate", "dividend_yield", "validation",
}

GOOD_ROWS = [
    {"expiry": "2025-01-17", "strike": 590, "right": "C", "bid": 4.0, "ask": 4.2, "iv": 0.14,
     "open_interest": 1000, "volume": 300, "delta": 0.5, "gamma": 0.02},
    {"expiry": "2025-01-17", "strike": 592.5, "right": "C", "bid": 3.0, "ask": 3.2, "iv": 0.14,
     "open_interest": 2000, "delta": 0.4, "gamma": 0.015},
    {"expiry": "2025-01-17", "strike": 585, "right": "P", "bid": 2.5, "ask": 2.7, "iv": 0.16,
     "open_interest": 1500, "delta": -0.4, "gamma": 0.018},
    {"expiry": "2025-01-24", "strike": 590, "right": "P", "bid": 6.0, "ask": 6.3, "iv": 0.15,
     "open_interest": 800, "delta": -0.45, "gamma": 0.01},
]
# rows no use can take (quotes, IV and greeks are per use: see tests/analytics/test_per_use.py)
BAD_ROWS = [
    {"expiry": "2025-01-17", "strike": 600, "right": "C", "bid": 1.0, "ask": 1.1, "iv": 0.2},         # no OI
    {"expiry": "2025-01-17", "strike": float("nan"), "right": "C", "bid": 1.0, "ask": 1.1, "iv": 0.2,
     "open_interest": 5},                                                                               # NaN
    {"expiry": "2025-01-17", "strike": 600, "right": "C", "bid": 1.0, "ask": 1.1, "iv": 0.2,
     "open_interest": -5},                                                                              # negative OI
    {"expiry": "2025-01-17", "strike": 600, "right": "X", "bid": 1.0, "ask": 1.1, "iv": 0.2,
     "open_interest": 5},                                                                               # bad right
    {"expiry": "2025-01-09", "strike": 600, "right": "C", "bid": 1.0, "ask": 1.1, "iv": 0.2,
     "open_interest": 5},                                                                               # expired
    {"expiry": "2025-01-17", "strike": 600, "right": "P", "bid": 1.2, "ask": 1.1, "iv": 0.2,
     "open_interest": float("inf")},                                                                    # inf OI
    {"expiry": "2025-01-17", "strike": "600", "right": "P", "bid": 1.0, "ask": 1.1, "iv": 0.2,
     "open_interest": 5},                                                                               # str strike
    {"expiry": "01/17/2025", "strike": 600, "right": "P", "bid": 1.0, "ask": 1.1, "iv": 0.2,
     "open_interest": 5},                                                                               # bad date
    {"expiry": "2025-01-17", "strike": 600, "right": "P", "bid": True, "ask": 1.1, "iv": 0.2,
     "open_interest": 5},                                                                               # bool bid
    {"expiry": "2025-01-17", "strike": -600, "right": "P", "bid": 1.0, "ask": 1.1, "iv": 0.2,
     "open_interest": 5},                                                                               # neg strike
    ["not", "an", "object"],
    None,
]


def sample() -> dict:
    return {
        "symbol": "SPY",
        "spot": 590.0,
        "asof": "2025-01-10T10:00:00-05:00",
        "contracts": copy.deepcopy(GOOD_ROWS) + copy.deepcopy(BAD_ROWS),
    }


def test_sample_output_by_hand() -> None:
    out = analyze_chain_json(sample())
    assert set(out) == OUTPUT_KEYS
    # GEX per contract = gamma * OI * 100 * 590^2 * 0.01 = gamma * OI * 348_100
    unit = 100 * 590.0**2 * 0.01
    assert unit == pytest.approx(348_100)
    g590c, g5925c = 0.02 * 1000 * unit, 0.015 * 2000 * unit          # 6_962_000, 10_443_000
    g585p, g590p = -0.018 * 1500 * unit, -0.01 * 800 * unit           # -9_398_700, -2_784_800
    assert out["symbol"] == "SPY" and out["spot"] == 590.0
    assert out["gex_total"] == pytest.approx(g590c + g5925c + g585p + g590p)  # 5_221_500
    assert out["gex_total"] == pytest.approx(5_221_500)
    # DEX = delta * OI * 100 * 590
    assert out["dex_total"] == pytest.approx((0.5 * 1000 + 0.4 * 2000 - 0.4 * 1500 - 0.45 * 800) * 100 * 590)
    assert out["gex_by_strike"] == pytest.approx({"585": g585p, "590": g590c + g590p, "592.5": g5925c})
    assert list(out["gex_by_strike"]) == ["585", "590", "592.5"]
    assert out["call_wall"] == 592.5
    assert out["put_wall"] == 585.0
    # 2025-01-17: pain(585) = 0 (calls at 590/592.5 and the put at 585 all expire worthless)
    # 2025-01-24: the only listed strike is 590
    assert out["max_pain"] == {"2025-01-17": 585.0, "2025-01-24": 590.0}
    assert out["contracts_used"] == 4
    assert out["contracts_rejected"] == len(BAD_ROWS)
    json.dumps(out, allow_nan=False)  # plain JSON types only


def test_zero_gamma_matches_grid_search_on_model_gammas() -> None:
    out = analyze_chain_json(sample())
    asof = datetime(2025, 1, 10, 15, 0, tzinfo=UTC)
    exp = np.array([r["expiry"] for r in GOOD_ROWS], dtype="datetime64[D]")
    prof = zero_gamma_profile(
        590.0, np.array([r["strike"] for r in GOOD_ROWS], dtype=float), year_fraction(asof, exp),
        np.array([r["iv"] for r in GOOD_ROWS]), np.array([r["open_interest"] for r in GOOD_ROWS], dtype=float),
        np.array([r["right"] == "C" for r in GOOD_ROWS]), 0.045, 0.0,
    )
    assert prof.zero_gamma is not None
    assert out["zero_gamma"] == pytest.approx(prof.zero_gamma, rel=1e-12)


def test_strike_keys_use_g_format() -> None:
    obj = sample()
    obj["contracts"] = [dict(GOOD_ROWS[0], strike=s) for s in (5.0, 7.5, 1250, 12.125)]
    assert list(analyze_chain_json(obj)["gex_by_strike"]) == ["5", "7.5", "12.125", "1250"]


def test_rate_and_dividend_defaults() -> None:
    no_greeks = [{k: v for k, v in r.items() if k not in ("delta", "gamma")} for r in GOOD_ROWS]
    base = {"symbol": "SPY", "spot": 590.0, "asof": "2025-01-10T15:00:00Z", "contracts": no_greeks}
    absent = analyze_chain_json(copy.deepcopy(base))
    explicit = analyze_chain_json({**copy.deepcopy(base), "rate": 0.045, "dividend_yield": 0.0})
    null = analyze_chain_json({**copy.deepcopy(base), "rate": None, "dividend_yield": None})

    def numbers(out: dict) -> dict:  # everything but where r and q came from
        return {k: v for k, v in out.items() if k != "validation"}

    assert numbers(absent) == numbers(explicit) == numbers(null)
    assert absent["validation"]["rate_source"] == null["validation"]["dividend_yield_source"] == "config"
    assert explicit["validation"]["rate_source"] == explicit["validation"]["dividend_yield_source"] == "chain"
    assert (absent["rate"], absent["dividend_yield"]) == (0.045, 0.0)  # echoed
    other = analyze_chain_json({**copy.deepcopy(base), "rate": 0.10, "dividend_yield": 0.02})
    assert (other["rate"], other["dividend_yield"]) == (0.10, 0.02)
    assert other["dex_total"] != pytest.approx(absent["dex_total"], rel=1e-6)
    assert numbers(analyze_chain_json(copy.deepcopy(base), rate=0.10, dividend_yield=0.02)) == numbers(other)
    # a rate stated in the file wins over the argument
    assert numbers(analyze_chain_json({**copy.deepcopy(base), "rate": 0.045}, rate=0.10)) == numbers(absent)


def test_empty_contracts_and_all_rejected() -> None:
    obj = sample()
    obj["contracts"] = []
    out = analyze_chain_json(obj)
    assert out["gex_total"] == 0.0 and out["gex_by_strike"] == {} and out["max_pain"] == {}
    assert (out["call_wall"], out["put_wall"], out["zero_gamma"]) == (None, None, None)
    assert (out["contracts_used"], out["contracts_rejected"]) == (0, 0)
    obj["contracts"] = copy.deepcopy(BAD_ROWS)
    out = analyze_chain_json(obj)
    assert (out["contracts_used"], out["contracts_rejected"]) == (0, len(BAD_ROWS))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda o: o.pop("symbol"), "missing required field 'symbol'"),
        (lambda o: o.pop("spot"), "missing required field 'spot'"),
        (lambda o: o.pop("asof"), "missing required field 'asof'"),
        (lambda o: o.pop("contracts"), "missing required field 'contracts'"),
        (lambda o: o.update(symbol=42), "'symbol'"),
        (lambda o: o.update(symbol="  "), "'symbol'"),
        (lambda o: o.update(spot="590"), "'spot'"),
        (lambda o: o.update(spot=True), "'spot'"),
        (lambda o: o.update(spot=-1.0), "'spot'"),
        (lambda o: o.update(spot=float("nan")), "'spot'"),
        (lambda o: o.update(spot=10**400), "'spot'"),
        (lambda o: o.update(asof="2025-01-10T10:00:00"), "offset"),
        (lambda o: o.update(asof="yesterday"), "ISO 8601"),
        (lambda o: o.update(asof=1736521200), "'asof'"),
        (lambda o: o.update(contracts={"a": 1}), "'contracts' must be a list"),
        (lambda o: o.update(rate="4.5%"), "'rate'"),
        (lambda o: o.update(dividend_yield=float("inf")), "'dividend_yield'"),
    ],
)
def test_malformed_top_level_raises_one_line_error(mutate, fragment: str) -> None:
    obj = sample()
    mutate(obj)
    with pytest.raises(ChainFileError) as info:
        analyze_chain_json(obj)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg and msg.strip() == msg and len(msg) < 200


@pytest.mark.parametrize("obj", [[], "chain", None, 3])
def test_non_object_top_level(obj: object) -> None:
    with pytest.raises(ChainFileError, match="JSON object"):
        analyze_chain_json(obj)  # type: ignore[arg-type]


def test_chain_error_message_is_single_line() -> None:
    assert str(ChainFileError("bad\nthing   here")) == "bad thing here"


def test_chain_from_rows_structural_parse() -> None:
    asof = datetime(2025, 1, 10, 15, 0, tzinfo=UTC)
    rows = [GOOD_ROWS[0], {k: v for k, v in GOOD_ROWS[1].items() if k not in ("delta", "gamma")}]
    rows += copy.deepcopy(BAD_ROWS)
    chain, rejected = chain_from_rows("SPY", 590.0, asof, rows)
    # structural rejects only: missing iv, bad right, str strike, bad date, bool bid, list, None
    assert rejected == 7
    assert len(chain) == 2 + 5  # NaN / negative OI / expired / crossed / negative strike pass through
    assert chain.symbol == "SPY" and chain.spot == 590.0 and chain.asof == asof
    assert chain.expiry.dtype == np.dtype("datetime64[D]") and chain.is_call[:2].tolist() == [True, True]
    assert chain.volume[:2].tolist() == [300.0, 0.0]  # absent volume -> 0
    assert chain.delta[0] == 0.5 and math.isnan(chain.delta[1]) and math.isnan(chain.gamma[1])
    empty, rej = chain_from_rows("SPY", 590.0, asof, [None])
    assert len(empty) == 0 and rej == 1


def test_lowercase_right_and_z_offset_accepted() -> None:
    obj = sample()
    obj["asof"] = "2025-01-10T15:00:00Z"
    obj["contracts"] = [dict(GOOD_ROWS[0], right="c"), dict(GOOD_ROWS[2], right="p")]
    out = analyze_chain_json(obj)
    assert out["contracts_used"] == 2 and out["contracts_rejected"] == 0


def test_file_helper_and_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "CHAIN.json"
    good.write_text(json.dumps(sample()))  # NaN row is written as a JSON NaN literal
    assert analyze_chain_file(good) == analyze_chain_json(sample())
    assert main([str(good)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["contracts_used"] == 4 and set(printed) == OUTPUT_KEYS

    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    with pytest.raises(ChainFileError, match="invalid JSON"):
        analyze_chain_file(bad_json)
    with pytest.raises(ChainFileError, match="cannot read"):
        analyze_chain_file(tmp_path / "missing.json")
    assert main([str(bad_json)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid JSON") and err.count("\n") == 1
    assert main([]) == 2
