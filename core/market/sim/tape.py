"""Underlying microstructure on the 1-second grid: top-of-book quotes and sizes,
consolidated volume, the trade-print tape, 10-level depth and the closing auction.

Everything per second is generated once per session (vectorized); depth beyond the
top level is drawn on demand from a generator keyed by the grid second, so it is
deterministic too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.market.sim.config import SimConfig
from core.market.sim.paths import Grid, SymbolPath, rng_for

EXCHANGES: tuple[str, ...] = ("NYSE", "NASDAQ", "ARCA", "BATS", "EDGX", "IEX", "MEMX", "TRF")
LIT = np.arange(7)                  # indexes of lit venues in EXCHANGES
TRF = 7                             # off-exchange (dark / ATS) reporting facility
LIT_WEIGHTS = np.array([0.14, 0.22, 0.14, 0.14, 0.16, 0.08, 0.12])
SIDES: tuple[str, ...] = ("buy", "sell", "mid")
KINDS: tuple[str, ...] = ("odd_lot", "round_lot", "block", "sweep")


@dataclass(slots=True)
class Tape:
    """Per-symbol arrays. Index ``i`` of a per-second array is the state during grid
    second ``[i, i+1)``; print times are microseconds since the grid start."""

    bid: np.ndarray            # (n+1,)
    ask: np.ndarray            # (n+1,)
    bid_size: np.ndarray       # (n+1,) int64
    ask_size: np.ndarray       # (n+1,) int64
    bg_volume_cum: np.ndarray  # (n+1,) unsampled consolidated volume before second i
    tick: float
    base_size: float           # typical displayed size per level (shares)
    # prints, sorted by time
    p_us: np.ndarray           # int64 microseconds since grid start
    p_price: np.ndarray
    p_size: np.ndarray         # int64
    p_side: np.ndarray         # int8 index into SIDES
    p_exch: np.ndarray         # int8 index into EXCHANGES
    p_kind: np.ndarray         # int8 index into KINDS
    p_sweep: np.ndarray        # int64 sweep id, -1 when not a sweep leg
    p_size_cum: np.ndarray     # (len+1,) cumulative print size
    open_price: float


def build_tape(seed: int, day: int, path: SymbolPath, grid: Grid, cfg: SimConfig) -> Tape:
    spec = path.spec
    rng = rng_for(seed, day, spec.symbol, "tape")
    n1 = grid.n + 1
    tick = spec.tick
    ext = ~np.concatenate((grid.in_rth, grid.in_rth[-1:])) if grid.n else np.ones(1, bool)

    # -- top of book -------------------------------------------------------------
    choices = np.asarray(spec.spread_ticks, dtype=np.int64)
    spread_t = choices[rng.integers(0, choices.size, n1)]
    spread_t = np.where(ext, spread_t * 3 + 1, spread_t)
    mid = path.mid
    bid = np.floor((mid - 0.5 * spread_t * tick) / tick + 1e-9) * tick
    ask = bid + spread_t * tick
    bid, ask = np.round(bid, 6), np.round(ask, 6)

    if spec.kind == "index":
        base = 50.0
    else:
        base = float(np.clip(spec.adv_shares / 1.2e5, 100.0, 3000.0)) * spec.lot_size_scale
    noise = rng.lognormal(0.0, 0.45, (2, n1))
    press = path.pressure
    ext_f = np.where(ext, 0.3, 1.0)
    lot = 1 if spec.kind == "index" else 100
    bsz = np.maximum(lot, np.round(base * ext_f * noise[0] * (1.0 + 0.6 * press) / lot) * lot)
    asz = np.maximum(lot, np.round(base * ext_f * noise[1] * (1.0 - 0.6 * press) / lot) * lot)

    # -- consolidated (unsampled) volume ----------------------------------------
    if spec.adv_shares > 0 and grid.n:
        # grid.var sums to 1 over a full regular session, whatever window is simulated
        w = np.where(grid.in_rth, grid.var * 0.93, grid.var * 1.5)
        per_sec = spec.adv_shares * w * rng.gamma(4.0, 0.25, grid.n)
        bg = np.concatenate(([0.0], np.cumsum(np.floor(per_sec))))
    else:
        bg = np.zeros(n1)

    open_price = float(np.round(mid[0], 2))
    prints = _prints(rng, path, grid, cfg, bid, ask, tick) if spec.kind != "index" else None
    if prints is None:
        e_i = np.zeros(0, np.int64)
        prints = (e_i, np.zeros(0), e_i.copy(), np.zeros(0, np.int8), np.zeros(0, np.int8),
                  np.zeros(0, np.int8), e_i.copy())
    p_us, p_price, p_size, p_side, p_exch, p_kind, p_sweep = prints
    return Tape(bid=bid, ask=ask, bid_size=bsz.astype(np.int64), ask_size=asz.astype(np.int64),
                bg_volume_cum=bg, tick=tick, base_size=base, p_us=p_us, p_price=p_price,
                p_size=p_size, p_side=p_side, p_exch=p_exch, p_kind=p_kind, p_sweep=p_sweep,
                p_size_cum=np.concatenate(([0], np.cumsum(p_size))), open_price=open_price)


def _prints(rng: np.random.Generator, path: SymbolPath, grid: Grid, cfg: SimConfig,
            bid: np.ndarray, ask: np.ndarray, tick: float):
    n = grid.n
    if n == 0:
        return None
    w = grid.var * 60.0 * grid.clock.total          # 1.0 at midday
    w = np.where(grid.in_rth, w, 0.12)
    press = path.pressure[:n]
    lam = cfg.prints_per_minute / 60.0 * w * (1.0 + 0.5 * np.abs(press))
    counts = rng.poisson(lam)
    sec = np.repeat(np.arange(n), counts)
    m = sec.size
    off = rng.random(m)
    us = (sec * 1_000_000 + np.floor(off * 1_000_000)).astype(np.int64)

    price_lvl = path.mid[sec]
    p_odd = np.clip(0.15 + price_lvl / 1500.0, 0.15, 0.6)
    u = rng.random((4, m))
    is_block = u[0] < 0.004
    is_odd = ~is_block & (u[1] < p_odd)
    dark = is_block | (u[2] < 0.38)
    p_buy = 0.5 + 0.4 * press[sec]
    side = np.where(u[3] < p_buy, 0, 1).astype(np.int8)
    mid_print = dark & (rng.random(m) < np.where(is_block, 0.7, 0.35))
    side = np.where(mid_print, np.int8(2), side)

    odd_sz = np.minimum(99, np.ceil(rng.pareto(1.2, m) * 8 + 1)).astype(np.int64)
    rl_sz = 100 * rng.geometric(0.45, m).astype(np.int64)
    blk_sz = (np.round(rng.lognormal(np.log(25_000), 0.6, m) / 100) * 100).astype(np.int64)
    blk_sz = np.maximum(blk_sz, 10_000)
    size = np.where(is_block, blk_sz, np.where(is_odd, odd_sz, rl_sz))
    kind = np.where(is_block, 2, np.where(is_odd, 0, 1)).astype(np.int8)

    b, a = bid[sec], ask[sec]
    mid_px = np.round((b + a) / 2.0, 4)
    price = np.where(side == 0, a, np.where(side == 1, b, mid_px))
    exch = np.where(dark, TRF, rng.choice(LIT, size=m, p=LIT_WEIGHTS / LIT_WEIGHTS.sum())).astype(np.int8)

    # -- sweeps: bursts across venues walking the book ------------------------------
    lam_s = 0.35 / 60.0 * w * (0.3 + 2.0 * press ** 2)
    s_counts = rng.poisson(lam_s)
    s_sec = np.repeat(np.arange(n), s_counts)
    ns = s_sec.size
    legs = rng.integers(3, 8, ns)
    s_side = np.where(rng.random(ns) < 0.5 + 0.45 * np.sign(press[s_sec]) * np.minimum(
        1.0, np.abs(press[s_sec]) * 2), 0, 1).astype(np.int8)
    s_off = np.floor(rng.random(ns) * 990_000).astype(np.int64)
    leg_owner = np.repeat(np.arange(ns), legs)
    leg_no = np.arange(leg_owner.size) - np.repeat(np.cumsum(legs) - legs, legs)
    L = leg_owner.size
    l_sec = s_sec[leg_owner]
    l_us = l_sec * 1_000_000 + s_off[leg_owner] + leg_no * 7
    # each leg on a different lit venue: rotate a seeded permutation
    perm_start = rng.integers(0, 7, ns)
    l_exch = ((perm_start[leg_owner] + leg_no * 3) % 7).astype(np.int8)
    walk = leg_no // 2
    l_side = s_side[leg_owner]
    l_price = np.where(l_side == 0, ask[l_sec] + walk * tick, bid[l_sec] - walk * tick)
    l_price = np.round(np.maximum(l_price, tick), 6)
    l_size = 100 * rng.integers(1, 25, L).astype(np.int64)

    all_us = np.concatenate((us, l_us))
    order = np.argsort(all_us, kind="stable")
    sweep_ids = np.concatenate((np.full(m, -1, np.int64), leg_owner.astype(np.int64)))
    return (all_us[order],
            np.concatenate((price, l_price))[order],
            np.concatenate((size, l_size))[order].astype(np.int64),
            np.concatenate((side, l_side))[order].astype(np.int8),
            np.concatenate((exch, l_exch))[order].astype(np.int8),
            np.concatenate((kind, np.full(L, 3, np.int8)))[order].astype(np.int8),
            sweep_ids[order])


def depth_levels(seed: int, day: int, symbol: str, tape: Tape, path: SymbolPath, i: int,
                 levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bid_px, bid_sz, ask_px, ask_sz) for grid second ``i``; level 0 = the quote."""
    rng = rng_for(seed, day, symbol, "depth", i)
    tick = tape.tick
    k = max(1, levels)
    gaps = np.where(rng.random((2, k - 1)) < 0.85, 1, 2)
    steps = np.concatenate((np.zeros((2, 1)), np.cumsum(gaps, axis=1)), axis=1)
    bid_px = np.round(tape.bid[i] - steps[0] * tick, 6)
    ask_px = np.round(tape.ask[i] + steps[1] * tick, 6)
    bid_px = np.maximum(bid_px, tick * (1 + np.arange(k)[::-1]))  # never <= 0, still descending
    lvl = np.arange(1, k)
    shape = 1.0 + 0.35 * lvl - 0.012 * lvl ** 2          # books thicken away from the touch
    p = float(path.pressure[i])
    noise = rng.lognormal(0.0, 0.55, (2, k - 1))
    lot = 1 if path.spec.kind == "index" else 100
    deep_b = np.maximum(lot, np.round(tape.base_size * shape * noise[0] * (1.0 + 0.5 * p) / lot) * lot)
    deep_a = np.maximum(lot, np.round(tape.base_size * shape * noise[1] * (1.0 - 0.5 * p) / lot) * lot)
    bid_sz = np.concatenate(([tape.bid_size[i]], deep_b)).astype(np.int64)
    ask_sz = np.concatenate(([tape.ask_size[i]], deep_a)).astype(np.int64)
    return bid_px[:levels], bid_sz[:levels], ask_px[:levels], ask_sz[:levels]


@dataclass(slots=True)
class Auction:
    """Closing-imbalance feed for the window before the close, one value per second."""

    start_i: int               # first grid second of the window
    side: int                  # +1 buy / -1 sell
    imbalance: np.ndarray      # shares
    paired: np.ndarray         # shares
    impact: np.ndarray         # relative offset of the indicative price from the mid
    confidence: np.ndarray


def build_auction(seed: int, day: int, path: SymbolPath, grid: Grid, cfg: SimConfig) -> Auction | None:
    spec = path.spec
    if path.auction_sign == 0:
        return None
    rng = rng_for(seed, day, spec.symbol, "auction")
    start_i = int(np.floor(grid.rth_close - cfg.imbalance_window_minutes * 60.0 - grid.start))
    k = int(cfg.imbalance_window_minutes * 60)
    frac = np.arange(k) / max(k - 1, 1)
    paired0 = spec.adv_shares * rng.uniform(0.02, 0.04)
    paired1 = paired0 * rng.uniform(1.6, 2.4)
    paired = paired0 + (paired1 - paired0) * frac ** 0.8
    imb0 = spec.adv_shares * (0.004 + 0.016 * path.auction_strength) * rng.uniform(0.7, 1.3)
    wobble = np.exp(np.cumsum(rng.normal(0.0, 0.012, k)))
    imbalance = imb0 * (1.0 - 0.55 * frac) * wobble
    impact = path.auction_sign * 0.25 * path.sigma_day * (imbalance / paired)
    confidence = np.clip(0.3 + 0.65 * frac ** 0.7 + rng.normal(0.0, 0.02, k), 0.0, 1.0)
    def r100(x: np.ndarray) -> np.ndarray:
        return (np.round(x / 100.0) * 100).astype(np.int64)

    return Auction(start_i=start_i, side=path.auction_sign, imbalance=np.maximum(r100(imbalance), 100),
                   paired=r100(paired), impact=impact, confidence=confidence)
