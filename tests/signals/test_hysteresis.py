"""Strike choice hysteresis: no 506 -> 507 -> 506 flapping while spot wiggles."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.domain.contract import Right
from core.domain.signal import Direction
from core.market.chain import OptionChain
from core.signals.selection import PreviousChoice, select_contract
from core.signals.strategies import Gamma0DTE

from ._build import DAY, context, ny, snapshot, synthetic_chain


def _chain_with_deltas(deltas: dict[float, float]) -> OptionChain:
    """0DTE calls with the given vendor deltas (quotes from BSM, irrelevant here)."""
    strikes = np.array(sorted(deltas), dtype=np.float64)
    c = synthetic_chain("SPY", 506.5, ny(10, 30), [DAY], strikes, iv=0.12)
    c.delta = np.array([deltas[k] if call else -(1 - deltas[k]) for k, call in zip(c.strike, c.is_call,
                                                                                     strict=True)])
    return c


def _pick(chain: OptionChain, prev: PreviousChoice | None, **kw) -> float:
    sel = select_contract(chain, expiry=DAY, right=Right.CALL, band=(0.30, 0.40), previous=prev,
                          min_premium=0.0, **kw)
    assert sel is not None
    return sel.contract.strike


def test_keeps_previous_unless_better_by_margin() -> None:
    chain = _chain_with_deltas({505: 0.55, 506: 0.31, 507: 0.36, 508: 0.20})
    assert _pick(chain, None) == 507  # nearest the 0.35 centre
    # 506 is 0.04 away, 507 is 0.01 away: improvement 0.03 <= 0.05 -> keep 506
    assert _pick(chain, PreviousChoice(DAY, 506.0)) == 506
    # with no margin it switches
    assert _pick(chain, PreviousChoice(DAY, 506.0), margin=0.0) == 507


def test_switches_when_improvement_exceeds_margin() -> None:
    chain = _chain_with_deltas({505: 0.55, 506: 0.44, 507: 0.35, 508: 0.20})
    # 506 is 0.09 away, 507 is 0: improvement 0.09 > 0.05 -> switch
    assert _pick(chain, PreviousChoice(DAY, 506.0)) == 507


def test_switches_when_old_strike_not_listed_or_other_expiry() -> None:
    chain = _chain_with_deltas({505: 0.55, 507: 0.36, 508: 0.20})
    assert _pick(chain, PreviousChoice(DAY, 506.0)) == 507
    chain = _chain_with_deltas({505: 0.55, 506: 0.31, 507: 0.36, 508: 0.20})
    assert _pick(chain, PreviousChoice(DAY.replace(day=19), 506.0)) == 507


def test_switches_when_old_strike_quote_became_unusable() -> None:
    chain = _chain_with_deltas({505: 0.55, 506: 0.31, 507: 0.36, 508: 0.20})
    i = int(np.flatnonzero((chain.strike == 506) & chain.is_call)[0])
    chain.bid[i] = 0.0  # no bid: not eligible any more
    assert _pick(chain, PreviousChoice(DAY, 506.0)) == 507


def test_out_of_band_returns_none() -> None:
    chain = _chain_with_deltas({505: 0.9, 506: 0.7, 507: 0.1, 508: 0.05})
    assert select_contract(chain, expiry=DAY, right=Right.CALL, band=(0.30, 0.40), min_premium=0.0) is None


def _run_wiggle(strategy: Gamma0DTE, spots: list[float]) -> list[float]:
    """Evaluate on a spot path; carry the chosen strike like the service does."""
    prev: dict[Direction, PreviousChoice] = {}
    chosen = []
    strikes = np.arange(495.0, 520.0, 1.0)
    for i, spot in enumerate(spots):
        now = ny(10, 30 + i)
        chain = synthetic_chain("SPY", spot, now, [DAY], strikes, iv=0.14)
        snap = snapshot(chain, snapshot_id=f"s{i}", max_gamma_strike=507.0, obi_l5=0.3, liquidity_grade="A",
                        features={"flow_buy_ratio_5m": 0.65})
        cand = strategy.evaluate(snap, chain, context("gamma_0dte", now, previous=prev))
        assert cand is not None
        prev[cand.direction] = PreviousChoice(cand.contract.expiry, cand.contract.strike)
        chosen.append(cand.contract.strike)
    return chosen


def test_no_flapping_while_spot_wiggles() -> None:
    # the strike nearest 0.35 delta alternates 506 / 507 as spot wiggles around 505.75
    spots = [505.72, 505.84, 505.71, 505.85, 505.70, 505.84, 505.72, 505.86]
    flapping = _run_wiggle(Gamma0DTE(pin_pct=0.3, strike_margin=0.0), spots)
    assert flapping == [506.0, 507.0] * 4, flapping  # without hysteresis: 506 -> 507 -> 506 ...
    stable = _run_wiggle(Gamma0DTE(pin_pct=0.3), spots)
    assert stable == [506.0] * 8, stable


def test_a_real_move_still_moves_the_strike() -> None:
    chosen = _run_wiggle(Gamma0DTE(pin_pct=0.3), [505.70, 505.85, 506.25])
    assert chosen == [506.0, 506.0, 507.0], chosen


@pytest.mark.parametrize("margin", [0.0, 0.02, 0.05, 0.1])
def test_hysteresis_never_keeps_a_strike_worse_than_margin(margin: float) -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        ds = np.sort(rng.uniform(0.05, 0.95, 6))[::-1]
        chain = _chain_with_deltas({500.0 + i: float(d) for i, d in enumerate(ds)})
        prev_k = float(500 + rng.integers(0, 6))
        sel = select_contract(chain, expiry=DAY, right=Right.CALL, band=(0.30, 0.40), min_premium=0.0,
                              previous=PreviousChoice(DAY, prev_k), margin=margin, band_slack=1.0)
        assert sel is not None
        best = min(abs(d - 0.35) for d in ds)
        assert abs(abs(sel.delta) - 0.35) - best <= margin + 1e-9
        if sel.contract.strike != sel.best_strike:
            assert sel.kept_previous and sel.contract.strike == prev_k


def test_replace_keeps_params() -> None:
    s = replace(Gamma0DTE(), strike_margin=0.1)
    assert s.strike_margin == 0.1 and s.pin_pct == Gamma0DTE().pin_pct
