"""Seeded price paths on a 1-second grid, generated once for the whole session.

Model (per second ``i``, log-price ``X``)::

    dZ_M = sqrt(v_i) * (eps_M + drift_M) + market jumps        # shared market factor
    dZ_S = sqrt(v_i) * (eps_S + drift_S)                       # idiosyncratic factor
    dX   = sigma_day * (rho * dZ_M + sqrt(1 - rho^2) * dZ_S) + idiosyncratic jumps

``v_i`` is the intraday variance clock (U-shaped in regular hours, low outside), normalized
so that one regular session has unit variance; ``sigma_day`` is the symbol's daily vol
(scaled by a seeded vol-of-the-day). ``drift_*`` are piecewise-constant trend regimes.
Every random draw comes from a ``numpy.random.Generator`` seeded by
(seed, trade date, symbol, purpose), so a symbol's path does not depend on which other
symbols are simulated nor on how the simulator is queried.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from core.market.sim.config import SimConfig, SymbolSpec

OPEN_TAU_MIN = 25.0     # decay of the opening variance spike (minutes)
CLOSE_TAU_MIN = 20.0    # build-up of the closing variance spike (minutes)
MARKET = "__MARKET__"


def rng_for(seed: int, day: int, symbol: str, purpose: str, *extra: int) -> np.random.Generator:
    """Independent, stable generator for one (seed, day, symbol, purpose[, extra...])."""
    words = [seed & 0xFFFFFFFFFFFFFFFF, day, zlib.crc32(symbol.encode()), zlib.crc32(purpose.encode()),
             *extra]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


@dataclass(frozen=True, slots=True)
class VarianceClock:
    """U-shaped intraday variance weight. ``m`` is minutes since the regular open;
    ``length`` the regular session in minutes (390, or 210 on half days)."""

    length: float
    open_boost: float
    close_boost: float
    ext: float

    def weight(self, m: np.ndarray) -> np.ndarray:
        """Variance per minute relative to midday (1.0) at minute ``m``."""
        m = np.asarray(m, dtype=np.float64)
        inside = (m >= 0) & (m < self.length)
        mc = np.clip(m, 0.0, self.length)
        w = (1.0 + self.open_boost * np.exp(-mc / OPEN_TAU_MIN)
             + self.close_boost * np.exp(-(self.length - mc) / CLOSE_TAU_MIN))
        return np.where(inside, w, self.ext)

    def cumulative(self, m: np.ndarray | float) -> np.ndarray:
        """Integral of the regular-hours weight from the open to ``m`` (clipped)."""
        L = self.length
        mc = np.clip(np.asarray(m, dtype=np.float64), 0.0, L)
        return (mc + self.open_boost * OPEN_TAU_MIN * (1.0 - np.exp(-mc / OPEN_TAU_MIN))
                + self.close_boost * CLOSE_TAU_MIN * (np.exp(-(L - mc) / CLOSE_TAU_MIN)
                                                      - np.exp(-L / CLOSE_TAU_MIN)))

    @property
    def total(self) -> float:
        return float(self.cumulative(self.length))

    def remaining_fraction(self, m: np.ndarray | float) -> np.ndarray:
        """Fraction of today's regular-hours variance still to come at minute ``m``."""
        return 1.0 - self.cumulative(m) / self.total


@dataclass(slots=True)
class MarketPath:
    """The shared market factor on the grid (standardized: one session ~ unit var)."""

    dz: np.ndarray            # (n,) increments
    regime: np.ndarray        # (n+1,) drift state -1/0/+1 at each grid second
    day_vol_mult: float
    iv_level_mult: float      # seeded level of implied vols today
    z0: float                 # opening displacement draw


@dataclass(slots=True)
class SymbolPath:
    spec: SymbolSpec
    mid: np.ndarray           # (n+1,) mid price at each grid second
    logx: np.ndarray          # (n+1,)
    var_cum: np.ndarray       # (n+1,) cumulative variance of logx (for z-scores)
    sentiment: np.ndarray     # (n+1,) in [-1, 1]: trend regime + 5-min momentum
    pressure: np.ndarray      # (n+1,) in [-1, 1]: short-term order-flow pressure
    prev_close: float
    sigma_day: float
    auction_sign: int         # +1 buy / -1 sell imbalance at the close (0: no auction)
    auction_strength: float   # 0..1


class Grid:
    """1-second grid from ``start_epoch`` with ``n`` steps (n+1 points)."""

    def __init__(self, start_epoch: float, n: int, rth_open_epoch: float, rth_close_epoch: float,
                 clock: VarianceClock) -> None:
        self.start = start_epoch
        self.n = n
        self.rth_open = rth_open_epoch
        self.rth_close = rth_close_epoch
        self.clock = clock
        # minute-of-RTH at the middle of each step, and each point
        mids = start_epoch + np.arange(n) + 0.5
        self.step_minute = (mids - rth_open_epoch) / 60.0
        self.point_minute = (start_epoch + np.arange(n + 1) - rth_open_epoch) / 60.0
        w = clock.weight(self.step_minute)
        self.var = w / (60.0 * clock.total)          # per-second variance, unit per session
        self.sd = np.sqrt(self.var)
        self.var_cum = np.concatenate(([0.0], np.cumsum(self.var)))
        self.in_rth = (self.step_minute >= 0) & (self.step_minute < clock.length)
        self.rth_steps = np.flatnonzero(self.in_rth)


def _regimes(rng: np.random.Generator, grid: Grid, mean_minutes: float, strength: float,
             probs: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant trend regimes. Returns (per-step drift in eps units, state per point).

    Within a regime of state s, the drift adds s * strength standard deviations of
    the regime's own diffusion to the path.
    """
    n = grid.n
    # enough draws for any session length (at most 24 h), fixed count -> fixed stream
    k = 64
    lengths = np.maximum(rng.exponential(mean_minutes * 60.0, size=k), 120.0)
    states = rng.choice(np.array([-1, 0, 1]), size=k, p=np.asarray(probs))
    edges = np.concatenate(([0], np.cumsum(lengths).astype(np.int64)))
    edges = np.minimum(edges, n)
    seg = np.searchsorted(edges, np.arange(n), side="right") - 1
    seg = np.clip(seg, 0, k - 1)
    sd = grid.sd
    seg_var = np.bincount(seg, weights=grid.var, minlength=k)
    seg_sd_sum = np.bincount(seg, weights=sd, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(seg_sd_sum > 0, strength * np.sqrt(seg_var) / seg_sd_sum, 0.0)
    drift = states[seg] * delta[seg]
    state_pts = np.concatenate((states[seg], states[seg[-1:]])) if n else states[:1]
    return drift, state_pts.astype(np.float64)


def _jumps(rng: np.random.Generator, grid: Grid, rate: float, size: float) -> np.ndarray:
    out = np.zeros(grid.n)
    count = int(rng.poisson(rate))
    where = rng.random(count)
    sizes = rng.normal(0.0, size, count)
    if count and grid.rth_steps.size and size > 0:
        # jumps happen in regular hours, more likely when variance is high
        p = grid.var[grid.rth_steps]
        cdf = np.cumsum(p) / p.sum()
        idx = grid.rth_steps[np.minimum(np.searchsorted(cdf, where), grid.rth_steps.size - 1)]
        np.add.at(out, idx, sizes)
    return out


def market_path(seed: int, day: int, grid: Grid, cfg: SimConfig) -> MarketPath:
    rng = rng_for(seed, day, MARKET, "path")
    day_vol = float(np.exp(rng.normal(0.0, cfg.vol_of_day) - 0.5 * cfg.vol_of_day ** 2))
    iv_level = float(np.exp(rng.normal(0.0, 0.06)) * (0.85 + 0.15 * day_vol))
    z0 = float(rng.normal())
    drift, regime = _regimes(rng, grid, cfg.regime_minutes, cfg.drift_strength, (0.3, 0.4, 0.3))
    eps = rng.standard_normal(grid.n)
    jumps = _jumps(rng, grid, cfg.market_jump_rate, cfg.market_jump_size)
    dz = grid.sd * (eps + drift) + jumps
    return MarketPath(dz=dz, regime=regime, day_vol_mult=day_vol, iv_level_mult=iv_level, z0=z0)


def _zscore_window(x: np.ndarray, var_cum: np.ndarray, lag: int, forward: bool) -> np.ndarray:
    n1 = x.shape[0]
    idx = np.arange(n1)
    other = np.clip(idx + lag if forward else idx - lag, 0, n1 - 1)
    dx = (x[other] - x) if forward else (x - x[other])
    dv = np.abs(var_cum[other] - var_cum)
    return np.where(dv > 0, dx / np.sqrt(np.maximum(dv, 1e-30)), 0.0)


def symbol_path(seed: int, day: int, spec: SymbolSpec, grid: Grid, mkt: MarketPath,
                cfg: SimConfig) -> SymbolPath:
    rng = rng_for(seed, day, spec.symbol, "path")
    rho = float(np.clip(spec.market_corr, -1.0, 1.0))
    rho_i = float(np.sqrt(max(0.0, 1.0 - rho * rho)))
    sym_vol = float(np.exp(rng.normal(0.0, 0.08)))
    sigma_day = spec.vol / np.sqrt(252.0) * mkt.day_vol_mult * sym_vol
    z0 = float(rng.normal())
    gap = float(rng.normal(0.0, 0.35))
    drift, regime_s = _regimes(rng, grid, cfg.regime_minutes * 1.5, cfg.drift_strength * 0.7,
                               (0.25, 0.5, 0.25))
    eps = rng.standard_normal(grid.n)
    jumps = _jumps(rng, grid, spec.jump_rate, spec.jump_size)
    auction_u = rng.random(3)

    dzs = grid.sd * (eps + drift)
    dx = sigma_day * (rho * mkt.dz + rho_i * dzs) + jumps
    # the opening print sits a little away from the reference spot (seeded)
    s0 = spec.spot * float(np.exp(0.01 * (rho * mkt.z0 + rho_i * z0)))
    logx = np.concatenate(([0.0], np.cumsum(dx)))

    # closing-auction pressure: the imbalance side leans with the day's move and the
    # price drifts its way over the imbalance window.
    auction_sign, auction_strength = 0, 0.0
    if spec.kind != "index" and spec.adv_shares > 0:
        win_start = grid.rth_close - cfg.imbalance_window_minutes * 60.0
        i0 = int(np.clip(np.floor(win_start - grid.start), 0, grid.n))
        i1 = int(np.clip(np.floor(grid.rth_close - grid.start), 0, grid.n))
        day_z = logx[i0] / max(sigma_day, 1e-9)
        p_buy = 0.5 + 0.25 * np.tanh(day_z)
        auction_sign = 1 if auction_u[0] < p_buy else -1
        auction_strength = float(0.3 + 0.7 * auction_u[1])
        if i1 > i0:
            ramp = np.linspace(0.0, 1.0, i1 - i0 + 1)[1:]
            push = auction_sign * auction_strength * 0.35 * sigma_day
            add = np.zeros(grid.n + 1)
            add[i0 + 1:i1 + 1] = push * ramp
            add[i1 + 1:] = push
            logx = logx + add

    mid = s0 * np.exp(logx)
    var_cum = sigma_day ** 2 * grid.var_cum
    regime = rho * mkt.regime + (1.0 - rho) * regime_s
    momentum = np.tanh(_zscore_window(logx, var_cum, 300, forward=False) / 1.5)
    sentiment = np.clip(0.55 * regime + 0.45 * momentum, -1.0, 1.0)
    ahead = _zscore_window(logx, var_cum, 30, forward=True)
    pressure = np.tanh(0.7 * ahead + 0.4 * sentiment)
    prev_close = s0 * float(np.exp(-gap * sigma_day))
    return SymbolPath(spec=spec, mid=mid, logx=logx, var_cum=var_cum, sentiment=sentiment,
                      pressure=pressure, prev_close=prev_close, sigma_day=float(sigma_day),
                      auction_sign=auction_sign, auction_strength=auction_strength)
