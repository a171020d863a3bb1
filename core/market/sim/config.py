"""Static parameters of the simulated universe: one :class:`SymbolSpec` per underlying
and a :class:`SimConfig` with the knobs shared by all of them.

Every number here is a plain, documented default; tests and demos may pass their own
``SimConfig`` (``dataclasses.replace`` works on both classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

INDEX_OPTION_SYMBOLS: frozenset[str] = frozenset({"SPY", "QQQ", "IWM", "SPX"})
"""Underlyings that list daily (0DTE / 1DTE) expiries in the simulator."""


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """How one underlying behaves.

    ``vol`` is the annualized *realized* volatility of the price path (RTH, 252-day
    basis); ``iv_atm`` the 30-day at-the-money implied vol the option surface starts
    from (a little above realized, as in real markets). ``market_corr`` is the
    correlation of the symbol's returns with the shared market factor.
    """

    symbol: str
    spot: float                       # starting (pre-market) price
    vol: float                        # annualized realized vol of the path
    market_corr: float                # correlation with the market factor
    iv_atm: float                     # 30-day ATM implied vol
    kind: Literal["etf", "index", "stock"] = "stock"
    dividend_yield: float = 0.0
    adv_shares: float = 20e6          # average daily share volume (RTH + ext.)
    option_contracts_per_day: float = 1e6
    strike_step: float = 5.0          # fine strike increment near spot
    coarse_step: float = 0.0          # increment away from spot (0: same as strike_step)
    fine_half_steps: int = 20         # fine strikes each side of spot (at most)
    strike_range: tuple[float, float] = (0.08, 0.10)   # +- range short / long expiries
    skew: float = 0.12                # IV slope per standardized moneyness (put side up)
    smile: float = 0.02               # IV curvature per standardized moneyness^2
    spot_vol_beta: float = 3.0        # IV moves by -beta * log-return of spot
    tick: float = 0.01                # underlying price tick
    spread_ticks: tuple[int, ...] = (1, 1, 1, 2)   # RTH spread draws (in ticks)
    lot_size_scale: float = 1.0       # multiplies displayed depth sizes
    opt_min_width: float = 0.01       # minimum option bid/ask width
    opt_rel_width: float = 0.02       # option width as a fraction of price
    jump_rate: float = 0.3            # idiosyncratic jumps per session (expected)
    jump_size: float = 0.006          # sd of an idiosyncratic jump (log-return)
    avg_option_price_frac: float = 0.004   # typical traded option price / spot

    @property
    def has_dailies(self) -> bool:
        return self.symbol in INDEX_OPTION_SYMBOLS


def _idx(symbol: str, spot: float, vol: float, corr: float, iv: float, **kw) -> SymbolSpec:
    kw.setdefault("kind", "etf")
    return SymbolSpec(symbol=symbol, spot=spot, vol=vol, market_corr=corr, iv_atm=iv, **kw)


def _stk(symbol: str, spot: float, vol: float, corr: float, iv: float, **kw) -> SymbolSpec:
    step = 2.5 if spot < 250 else 5.0
    kw.setdefault("strike_step", step)
    kw.setdefault("strike_range", (0.10, 0.18))
    kw.setdefault("fine_half_steps", 40)
    kw.setdefault("skew", 0.07)
    kw.setdefault("smile", 0.035)
    kw.setdefault("spot_vol_beta", 1.5)
    kw.setdefault("opt_min_width", 0.02)
    kw.setdefault("opt_rel_width", 0.022)
    kw.setdefault("jump_rate", 0.35)
    kw.setdefault("jump_size", 0.007)
    kw.setdefault("avg_option_price_frac", 0.008)
    return SymbolSpec(symbol=symbol, spot=spot, vol=vol, market_corr=corr, iv_atm=iv, kind="stock", **kw)


DEFAULT_SPECS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        _idx("SPY", 590.0, 0.09, 0.998, 0.145, dividend_yield=0.012, adv_shares=60e6,
             option_contracts_per_day=8e6, opt_rel_width=0.008, strike_step=1.0, coarse_step=5.0,
             fine_half_steps=18,
             jump_rate=0.0, jump_size=0.0, avg_option_price_frac=0.003),
        _idx("QQQ", 510.0, 0.115, 0.93, 0.185, dividend_yield=0.006, adv_shares=40e6,
             option_contracts_per_day=4e6, opt_rel_width=0.01, strike_step=1.0, coarse_step=5.0,
             fine_half_steps=18,
             jump_rate=0.1, jump_size=0.002, avg_option_price_frac=0.0035),
        _idx("IWM", 225.0, 0.13, 0.86, 0.215, dividend_yield=0.011, adv_shares=30e6,
             option_contracts_per_day=1.2e6, opt_rel_width=0.015, strike_step=1.0, coarse_step=5.0,
             fine_half_steps=12,
             jump_rate=0.1, jump_size=0.002, avg_option_price_frac=0.004),
        _idx("SPX", 5900.0, 0.09, 0.998, 0.145, kind="index", dividend_yield=0.013, adv_shares=0.0,
             option_contracts_per_day=3e6, strike_step=5.0, coarse_step=50.0, fine_half_steps=20,
             tick=0.01, spread_ticks=(20, 30, 40, 50), opt_min_width=0.10, opt_rel_width=0.012,
             jump_rate=0.0, jump_size=0.0, avg_option_price_frac=0.003),
        _stk("AAPL", 230.0, 0.19, 0.68, 0.26, dividend_yield=0.0045, adv_shares=50e6,
             option_contracts_per_day=1.5e6),
        _stk("MSFT", 420.0, 0.18, 0.68, 0.24, dividend_yield=0.008, adv_shares=20e6,
             option_contracts_per_day=6e5),
        _stk("GOOGL", 175.0, 0.26, 0.62, 0.30, dividend_yield=0.0045, adv_shares=25e6,
             option_contracts_per_day=6e5),
        _stk("AMZN", 205.0, 0.28, 0.64, 0.32, adv_shares=40e6, option_contracts_per_day=9e5),
        _stk("NVDA", 140.0, 0.42, 0.62, 0.50, dividend_yield=0.0003, adv_shares=250e6,
             option_contracts_per_day=3e6, spread_ticks=(1, 1, 2)),
        _stk("META", 580.0, 0.32, 0.60, 0.38, dividend_yield=0.0035, adv_shares=12e6,
             option_contracts_per_day=5e5, spread_ticks=(1, 2, 3, 5), opt_min_width=0.05),
        _stk("TSLA", 340.0, 0.52, 0.45, 0.60, adv_shares=90e6, option_contracts_per_day=2.5e6,
             spread_ticks=(1, 2, 3, 4), jump_rate=0.5, jump_size=0.01),
    )
}
"""SPY, QQQ, IWM, SPX and the Magnificent 7 with realistic spots, vols and liquidity."""

DEFAULT_SYMBOLS: tuple[str, ...] = tuple(DEFAULT_SPECS)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs shared by every symbol. Defaults give a realistic, fast day."""

    specs: dict[str, SymbolSpec] = field(default_factory=lambda: dict(DEFAULT_SPECS))
    rate: float = 0.043                    # risk-free rate (continuous)
    vol_of_day: float = 0.20               # sd of the log day-level vol multiplier
    market_jump_rate: float = 0.4          # market-wide jumps per session (expected)
    market_jump_size: float = 0.5          # sd of a market jump, in daily sds
    drift_strength: float = 0.4            # trend per regime, in sds of its own diffusion
    regime_minutes: float = 45.0           # mean length of a drift regime
    open_vol_boost: float = 2.5            # extra variance at the open (U shape)
    close_vol_boost: float = 1.3           # extra variance at the close (U shape)
    ext_hours_vol: float = 0.12            # pre/post-market variance weight vs midday
    prints_per_minute: float = 12.0        # sampled tape prints per RTH minute (midday)
    flow_alerts_per_day: float = 150.0     # notable option trades per symbol per day
    option_vol_per_contract_day: float = 1.0   # scales chain volumes
    imbalance_window_minutes: int = 10     # closing-imbalance feed starts this long before close
    gap_mode: Literal["stale", "raise"] = "stale"   # what quote() does inside a feed gap

    def spec(self, symbol: str) -> SymbolSpec:
        try:
            return self.specs[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}; known: {sorted(self.specs)}") from None
