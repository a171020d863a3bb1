"""Option chains: a static per-symbol layout (expiries, strikes, open interest,
volume shares) built once per session, and a vectorized pricer.

Pricing convention. Each contract's *total variance* comes from a trading-time
surface: ``sigma_tr(K, T_tr)`` with ``T_tr = (today's remaining U-shaped variance
fraction + full sessions to expiry) / 252``, ATM term structure, a spot-vol
(leverage) effect and a put skew in standardized moneyness. The published ``iv`` is
the equivalent ACT/365 calendar vol to 16:00 NY (or the early close) on the expiry
date, so ``core.analytics.black_scholes.bs_price(spot, K, T_cal, rate, q, iv)`` with
``T_cal = (expiry close - asof) / 365 days`` reproduces the mid exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
from scipy.special import ndtr

from core.analytics.black_scholes import bs_price
from core.market.sim.calendar import listed_expiries, session_info, sessions_between
from core.market.sim.config import SimConfig, SymbolSpec
from core.market.sim.paths import VarianceClock, rng_for

YEAR_S = 365.0 * 86400.0
MIN_T_CAL = 60.0 / YEAR_S          # 1 minute floor (calendar)
MIN_T_TR = 2e-4 / 252.0            # trading-time floor (~5 s of a session)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
EXPIRY_KIND_WEIGHT = {"0dte": 0.40, "1dte": 0.14, "weekly": 0.18, "monthly": 0.09}
EXPIRY_OI_WEIGHT = {"0dte": 0.5, "1dte": 0.6, "weekly": 0.8, "monthly": 1.6}


def _round_levels(step: float, spot: float) -> tuple[float, ...]:
    if step <= 1.0:
        return (10.0, 5.0)
    if step <= 2.5:
        return (25.0, 10.0)
    if spot > 2000:
        return (100.0, 50.0, 25.0)
    return (50.0, 10.0)


def strike_grid(spec: SymbolSpec, spot: float, half_range_pct: float) -> np.ndarray:
    """Fine increments near spot, coarse ones further out, within +-half_range_pct."""
    step = spec.strike_step
    coarse = spec.coarse_step or step
    center = np.round(spot / step) * step
    half = half_range_pct * spot
    fine_half = min(spec.fine_half_steps * step, half)
    k = int(np.floor(fine_half / step + 1e-9))
    fine = center + step * np.arange(-k, k + 1)
    lo_c = np.ceil((center + k * step + 1e-9) / coarse) * coarse
    up = np.arange(lo_c, spot + half + 1e-9, coarse)
    hi_c = np.floor((center - k * step - 1e-9) / coarse) * coarse
    down = np.arange(hi_c, spot - half - 1e-9, -coarse)
    strikes = np.unique(np.round(np.concatenate((down, fine, up)), 4))
    return strikes[strikes > 0]


@dataclass(slots=True)
class ChainLayout:
    """Static rows of one symbol's chain (sorted by expiry, right, strike)."""

    symbol: str
    spec: SymbolSpec
    expiry_dates: list[date]
    expiry_kinds: list[str]
    expiry_close_epoch: np.ndarray   # (E,) float seconds
    sessions_after_today: np.ndarray  # (E,) full sessions after today up to expiry
    # per row
    exp_idx: np.ndarray
    expiry: np.ndarray               # datetime64[D]
    strike: np.ndarray
    is_call: np.ndarray
    open_interest: np.ndarray        # float64 integers
    vol_share: np.ndarray            # share of the call (resp. put) volume going to the row
    rows_by_expiry_right: dict[tuple[int, bool], np.ndarray]
    # surface
    s_ref: float
    iv30: float
    rate: float
    q: float
    # caches for the fast snapshot path (filled in __post_init__)
    log_strike: np.ndarray = field(init=False)
    put_flag: np.ndarray = field(init=False)      # 1.0 for puts, 0.0 for calls
    vs_call: np.ndarray = field(init=False)       # vol_share on call rows, else 0
    vs_put: np.ndarray = field(init=False)
    expiry_start: np.ndarray = field(init=False)  # first row of each expiry
    expiry_count: np.ndarray = field(init=False)
    meta_kinds: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.log_strike = np.log(self.strike)
        self.put_flag = (~self.is_call).astype(np.float64)
        self.vs_call = np.where(self.is_call, self.vol_share, 0.0)
        self.vs_put = np.where(self.is_call, 0.0, self.vol_share)
        E = len(self.expiry_dates)
        self.expiry_count = np.bincount(self.exp_idx, minlength=E)
        self.expiry_start = np.concatenate(([0], np.cumsum(self.expiry_count)[:-1]))
        self.meta_kinds = {d.isoformat(): k
                           for d, k in zip(self.expiry_dates, self.expiry_kinds, strict=True)}

    def __len__(self) -> int:
        return int(self.strike.shape[0])


def build_layout(seed: int, day: int, spec: SymbolSpec, trade_date: date, s_ref: float,
                 iv_level_mult: float, clock: VarianceClock, cfg: SimConfig) -> ChainLayout:
    rng = rng_for(seed, day, spec.symbol, "chain")
    exps = listed_expiries(trade_date, spec.has_dailies)
    iv30 = spec.iv_atm * iv_level_mult * float(np.exp(rng.normal(0.0, 0.04)))
    e_dates, e_kinds, e_close, e_sess = [], [], [], []
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("exp", "strike", "call", "oi", "vs")}
    rl = _round_levels(spec.strike_step, s_ref)
    lo, hi = spec.strike_range
    for ei, (d, kind) in enumerate(exps):
        si = session_info(d)
        n_sess = sessions_between(trade_date, d)
        t_tr = (1.0 + n_sess) / 252.0
        half = float(np.clip(2.5 * iv30 * np.sqrt(t_tr), lo, hi))
        strikes = strike_grid(spec, s_ref, half)
        e_dates.append(d)
        e_kinds.append(kind)
        e_close.append(si.rth_close.timestamp())
        e_sess.append(n_sess)
        # standardized moneyness at the reference spot drives OI and volume shares
        x = np.log(strikes / s_ref) / (iv30 * np.sqrt(t_tr))
        roundness = np.ones_like(strikes)
        for lvl, mult in zip(rl, (2.6, 1.7, 1.3), strict=False):
            on = np.isclose(np.fmod(strikes + 1e-9, lvl), 0.0, atol=1e-6)
            roundness = np.where((roundness == 1.0) & on, mult, roundness)
        for call_side in (True, False):
            otm = x if call_side else -x
            # OI: near-spot hump, fatter on the OTM side, puts heavier for indices
            hump = np.exp(-0.5 * (x / (0.8 + 0.3 * (kind == "monthly"))) ** 2) + 0.15 * np.exp(
                -0.5 * ((otm - 1.0) / 1.2) ** 2)
            tilt = 1.0 if call_side else (1.35 if spec.kind != "stock" else 1.1)
            oi_w = hump * roundness * tilt * rng.lognormal(0.0, 0.35, strikes.size)
            oi_w *= EXPIRY_OI_WEIGHT[kind]
            vs = (np.exp(-0.5 * ((otm - 0.3) / 0.8) ** 2) + 0.05) * np.sqrt(roundness)
            vs *= rng.lognormal(0.0, 0.3, strikes.size) * EXPIRY_KIND_WEIGHT[kind]
            cols["exp"].append(np.full(strikes.size, ei))
            cols["strike"].append(strikes)
            cols["call"].append(np.full(strikes.size, call_side))
            cols["oi"].append(oi_w)
            cols["vs"].append(vs)
    exp_idx = np.concatenate(cols["exp"]).astype(np.int64)
    strike = np.concatenate(cols["strike"])
    is_call = np.concatenate(cols["call"]).astype(bool)
    oi_w = np.concatenate(cols["oi"])
    vs = np.concatenate(cols["vs"])
    total_oi = spec.option_contracts_per_day * 1.5
    oi = np.floor(oi_w / oi_w.sum() * total_oi)
    for flag in (True, False):  # normalize volume shares per right
        m = is_call == flag
        vs[m] /= vs[m].sum()
    e_dt = np.array([np.datetime64(d, "D") for d in e_dates])
    rows = {(e, c): np.flatnonzero((exp_idx == e) & (is_call == c))
            for e in range(len(e_dates)) for c in (True, False)}
    return ChainLayout(symbol=spec.symbol, spec=spec, expiry_dates=e_dates, expiry_kinds=e_kinds,
                       expiry_close_epoch=np.asarray(e_close, dtype=np.float64),
                       sessions_after_today=np.asarray(e_sess, dtype=np.float64),
                       exp_idx=exp_idx, expiry=e_dt[exp_idx], strike=strike, is_call=is_call,
                       open_interest=oi, vol_share=vs, rows_by_expiry_right=rows, s_ref=s_ref,
                       iv30=iv30, rate=cfg.rate, q=spec.dividend_yield)


@dataclass(slots=True)
class Priced:
    iv: np.ndarray
    theo: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    x: np.ndarray          # standardized moneyness
    t_cal: np.ndarray
    t_tr: np.ndarray


def term_atm(iv30: float, t_tr: np.ndarray) -> np.ndarray:
    days = np.minimum(t_tr * 252.0 / 21.0, 3.0)
    return iv30 * (0.90 + 0.10 * np.sqrt(days))


@dataclass(slots=True)
class _Term:
    """Time/forward inputs of the pricer; per expiry (snapshot) or per row (trades)."""

    t_tr: np.ndarray
    t_cal: np.ndarray
    atm: np.ndarray        # ATM trading-time vol (term structure x spot-vol)
    sq_tr: np.ndarray      # sqrt(t_tr)
    inv_asd: np.ndarray    # 1 / (atm * sq_tr)
    ratio: np.ndarray      # sqrt(t_tr / t_cal): trading-time vol -> calendar iv
    log_f: np.ndarray      # log forward
    gfac: np.ndarray       # exp(-q t_cal) / (S sqrt(2 pi)) for gamma
    dq: np.ndarray         # exp(-q t_cal)

    def repeat(self, counts: np.ndarray) -> _Term:
        return _Term(*(np.repeat(getattr(self, f), counts) for f in self.__slots__))  # type: ignore[attr-defined]


def _term(lay: ChainLayout, e: np.ndarray | slice, S: np.ndarray | float, epoch: np.ndarray | float,
          remaining_today: np.ndarray | float) -> _Term:
    t_tr = np.maximum((remaining_today + lay.sessions_after_today[e]) / 252.0, MIN_T_TR)
    t_cal = np.maximum((lay.expiry_close_epoch[e] - epoch) / YEAR_S, MIN_T_CAL)
    atm = term_atm(lay.iv30, t_tr) * np.exp(-lay.spec.spot_vol_beta * np.log(S / lay.s_ref))
    sq_tr = np.sqrt(t_tr)
    dq = np.exp(-lay.q * t_cal)
    return _Term(t_tr=t_tr, t_cal=t_cal, atm=atm, sq_tr=sq_tr, inv_asd=1.0 / (atm * sq_tr),
                 ratio=np.sqrt(t_tr / t_cal), log_f=np.log(S) + (lay.rate - lay.q) * t_cal,
                 gfac=dq * (_INV_SQRT_2PI / S), dq=dq)


def _quote_rows(lay: ChainLayout, rows: np.ndarray | slice, S: np.ndarray | float, tm: _Term) -> Priced:
    """Core of the pricer: ``tm`` is aligned with ``rows``."""
    spec = lay.spec
    log_k = lay.log_strike[rows]
    m = log_k - tm.log_f
    x = np.clip(m * tm.inv_asd, -4.0, 4.0)
    sig_tr = tm.atm * np.maximum(1.0 + x * (spec.smile * x - spec.skew), 0.3)
    iv = sig_tr * tm.ratio
    theo = np.maximum(bs_price(S, lay.strike[rows], tm.t_cal, lay.rate, lay.q, iv, lay.is_call[rows]), 0.0)
    # greeks from the same total variance (d1 as in core.analytics.black_scholes.d1_d2)
    sd = sig_tr * tm.sq_tr
    d1 = 0.5 * sd - m / sd
    delta = tm.dq * (ndtr(d1) - lay.put_flag[rows])
    gamma = np.exp(-0.5 * d1 * d1) * tm.gfac / sd
    far = np.maximum(np.abs(x) - 1.0, 0.0)
    width = np.maximum(spec.opt_min_width, spec.opt_rel_width * theo * (1.0 + 0.6 * far)
                       + (spec.opt_min_width * 0.5) * far)
    lo = theo - 0.5 * width
    t_lo = np.where(lo < 3.0, 0.01, 0.05)
    bid = np.maximum(np.floor(lo / t_lo + 1e-9) * t_lo, 0.0)
    hi = np.maximum(theo + 0.5 * width, bid + max(spec.opt_min_width, 0.01))
    t_hi = np.where(hi < 3.0 - 1e-9, 0.01, 0.05)
    ask = np.ceil(hi / t_hi - 1e-9) * t_hi
    return Priced(iv=iv, theo=theo, bid=np.round(bid, 2), ask=np.round(ask, 2), delta=delta,
                  gamma=gamma, x=x, t_cal=tm.t_cal, t_tr=tm.t_tr)


def price_rows(lay: ChainLayout, rows: np.ndarray, spot: np.ndarray | float,
               epoch: np.ndarray | float, remaining_today: np.ndarray | float) -> Priced:
    """Price layout ``rows`` at (spot, epoch, remaining_today), each a scalar or an
    array aligned with ``rows`` (individual trades at different times)."""
    S = np.asarray(spot, dtype=np.float64)
    return _quote_rows(lay, rows, S, _term(lay, lay.exp_idx[rows], S, epoch, remaining_today))


def price_snapshot(lay: ChainLayout, first_expiry: int, spot: float, epoch: float,
                   remaining_today: float) -> Priced:
    """Price every row of expiries ``first_expiry..`` at one (spot, time): per-expiry
    quantities are computed once and expanded, the rest is one vectorized pass."""
    rows = slice(int(lay.expiry_start[first_expiry]), None)
    tm = _term(lay, slice(first_expiry, None), spot, epoch, remaining_today)
    return _quote_rows(lay, rows, spot, tm.repeat(lay.expiry_count[first_expiry:]))


def price_snapshot_rows(lay: ChainLayout, first_expiry: int, rows: np.ndarray, spot: float, epoch: float,
                        remaining_today: float) -> Priced:
    """Only layout ``rows`` (all of expiries ``>= first_expiry``) of :func:`price_snapshot`:
    the same per-expiry terms (computed over the same expiries), picked per row, then the
    same element-wise pass - so each row's numbers are exactly the full snapshot's (the
    watched-contract quotes of the market service; ``tests/market/test_watched_quotes.py``)."""
    tm = _term(lay, slice(first_expiry, None), spot, epoch, remaining_today)
    e = lay.exp_idx[rows] - first_expiry
    return _quote_rows(lay, rows, spot, _Term(*(getattr(tm, f)[e] for f in tm.__slots__)))  # type: ignore[attr-defined]
