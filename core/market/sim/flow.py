"""Simulated option flow for one symbol and session.

Two layers, both generated once per session:

* the *background* order flow, per regular-hours minute: contracts, call/put split,
  ask/bid split and premium. Its mix follows the symbol's sentiment (trend regime +
  momentum), so a bullish stretch shows more calls bought at the ask and puts sold
  at the bid. It feeds chain volumes and the net-premium ticks;
* *notable trades* (sweeps, blocks, large premium) on specific contracts, priced on
  the chain at their time. They are the flow alerts, and are added to the chain
  volume and the net-premium ticks too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.market.sim.config import SimConfig
from core.market.sim.options import EXPIRY_KIND_WEIGHT, ChainLayout, price_rows, term_atm
from core.market.sim.paths import Grid, SymbolPath, rng_for

RULES: tuple[str, ...] = ("Sweep", "Block", "LargePremium", "VolOverOI")
FLOW_SIDES: tuple[str, ...] = ("ask", "bid", "mid")


@dataclass(slots=True)
class Flow:
    minute0_epoch: float           # regular open
    n_minutes: int
    valid: np.ndarray              # (M,) minute lies inside the simulated grid
    # background, per minute
    call_vol: np.ndarray
    put_vol: np.ndarray
    call_prem: np.ndarray
    put_prem: np.ndarray
    net_call_prem: np.ndarray
    net_put_prem: np.ndarray
    net_call_vol: np.ndarray
    net_put_vol: np.ndarray
    cum_call: np.ndarray           # (M+1,) background call contracts at minute boundaries
    cum_put: np.ndarray
    # notable trades, sorted by time
    a_us: np.ndarray               # int64 microseconds since grid start
    a_minute: np.ndarray
    a_row: np.ndarray
    a_side: np.ndarray             # index into FLOW_SIDES
    a_sweep: np.ndarray
    a_size: np.ndarray
    a_price: np.ndarray
    a_bid: np.ndarray
    a_ask: np.ndarray
    a_spot: np.ndarray
    a_iv: np.ndarray
    a_volume: np.ndarray           # row volume today including the trade
    a_exchanges: np.ndarray
    a_rule: np.ndarray             # index into RULES

    def background_row_volume(self, lay: ChainLayout, epoch: float) -> np.ndarray:
        """Background contracts traded so far on each layout row (floored)."""
        m = min(max((epoch - self.minute0_epoch) / 60.0, 0.0), float(self.n_minutes))
        j = min(int(m), self.n_minutes - 1)
        f = m - j
        cc = self.cum_call[j] + f * (self.cum_call[j + 1] - self.cum_call[j])
        pc = self.cum_put[j] + f * (self.cum_put[j + 1] - self.cum_put[j])
        return np.floor(cc * lay.vs_call + pc * lay.vs_put)


@dataclass(slots=True)
class _Minutes:
    """The regular-hours minutes of the session and what the flow reads at each."""

    n: int                         # M
    idx: np.ndarray                # 0..M-1
    start_epoch: np.ndarray        # epoch of each minute's start
    valid: np.ndarray              # minute lies inside the simulated grid
    sent: np.ndarray               # symbol sentiment at the minute's start
    spot: np.ndarray               # mid at the minute's start
    u: np.ndarray                  # variance-clock weight, zero outside the grid
    u_sum: float                   # weight of a full session


@dataclass(slots=True)
class _Background:
    """Per-minute background flow, plus the call/ask mix the notable trades draw from."""

    c: np.ndarray                  # call share
    a_c: np.ndarray                # calls bought at the ask
    a_p: np.ndarray                # puts bought at the ask
    call_vol: np.ndarray
    put_vol: np.ndarray
    call_prem: np.ndarray
    put_prem: np.ndarray
    net_call_prem: np.ndarray
    net_put_prem: np.ndarray
    net_call_vol: np.ndarray
    net_put_vol: np.ndarray
    cum_call: np.ndarray
    cum_put: np.ndarray


def build_flow(seed: int, day: int, path: SymbolPath, grid: Grid, lay: ChainLayout,
               cfg: SimConfig) -> Flow:
    # one generator, drawn in a fixed order: background first, then the notable trades
    rng = rng_for(seed, day, path.spec.symbol, "flow")
    mn = _session_minutes(path, grid)
    bg = _background(rng, path, mn, cfg)
    t = _notable_trades(rng, path, grid, lay, cfg, mn, bg)
    _add_trades_to_minutes(bg, t)
    return Flow(minute0_epoch=grid.rth_open, n_minutes=mn.n, valid=mn.valid, call_vol=bg.call_vol,
                put_vol=bg.put_vol, call_prem=bg.call_prem, put_prem=bg.put_prem,
                net_call_prem=bg.net_call_prem, net_put_prem=bg.net_put_prem,
                net_call_vol=bg.net_call_vol, net_put_vol=bg.net_put_vol,
                cum_call=bg.cum_call, cum_put=bg.cum_put, a_us=t["a_us"], a_minute=t["a_min"],
                a_row=t["rows"], a_side=t["side"].astype(np.int8), a_sweep=t["sweep"],
                a_size=t["size"], a_price=t["price"], a_bid=t["bid"], a_ask=t["ask"], a_spot=t["s"],
                a_iv=t["iv"], a_volume=t["volume"], a_exchanges=t["exchanges"].astype(np.int64),
                a_rule=t["rule"].astype(np.int8))


def _session_minutes(path: SymbolPath, grid: Grid) -> _Minutes:
    clock = grid.clock
    M = int(np.ceil(clock.length - 1e-9))
    mins = np.arange(M)
    m_start_epoch = grid.rth_open + 60.0 * mins
    gi = np.floor(m_start_epoch - grid.start).astype(np.int64)
    valid = (gi >= 0) & (gi + 60 <= grid.n)
    gi_c = np.clip(gi, 0, grid.n)
    u_full = clock.weight(mins + 0.5)
    u_sum = float(u_full.sum())          # a full session, so a partial window is not inflated
    return _Minutes(n=M, idx=mins, start_epoch=m_start_epoch, valid=valid, sent=path.sentiment[gi_c],
                    spot=path.mid[gi_c], u=u_full * valid, u_sum=u_sum)


def _background(rng: np.random.Generator, path: SymbolPath, mn: _Minutes, cfg: SimConfig) -> _Background:
    """Background volume and premium per minute; its mix follows the sentiment."""
    spec, M, sent = path.spec, mn.n, mn.sent
    day_total = spec.option_contracts_per_day * cfg.option_vol_per_contract_day
    noise = rng.normal(0.0, 0.04, (3, M))
    V = day_total * mn.u / mn.u_sum * rng.gamma(6.0, 1.0 / 6.0, M)
    base_c = 0.55 if spec.kind == "stock" else 0.45
    c = np.clip(base_c + 0.18 * sent + noise[0], 0.15, 0.85)
    a_c = np.clip(0.5 + 0.25 * sent + noise[1], 0.1, 0.9)
    a_p = np.clip(0.5 - 0.25 * sent + noise[2], 0.1, 0.9)
    pp = mn.spot * spec.avg_option_price_frac * rng.lognormal(0.0, 0.15, M) * 100.0
    call_vol, put_vol = V * c, V * (1.0 - c)
    call_prem, put_prem = call_vol * pp, put_vol * pp
    return _Background(
        c=c, a_c=a_c, a_p=a_p, call_vol=call_vol, put_vol=put_vol, call_prem=call_prem,
        put_prem=put_prem,
        net_call_prem=call_prem * 0.9 * (2.0 * a_c - 1.0),
        net_put_prem=put_prem * 0.9 * (2.0 * a_p - 1.0),
        net_call_vol=call_vol * 0.9 * (2.0 * a_c - 1.0),
        net_put_vol=put_vol * 0.9 * (2.0 * a_p - 1.0),
        cum_call=np.concatenate(([0.0], np.cumsum(call_vol))),
        cum_put=np.concatenate(([0.0], np.cumsum(put_vol))),
    )


def _notable_trades(rng: np.random.Generator, path: SymbolPath, grid: Grid, lay: ChainLayout,
                    cfg: SimConfig, mn: _Minutes, bg: _Background) -> dict[str, np.ndarray]:
    """The notable trades of the session, sorted by time (arrays keyed by short names)."""
    lam = cfg.flow_alerts_per_day * mn.u / mn.u_sum * (1.0 + 0.6 * np.abs(mn.sent))
    counts = rng.poisson(lam)
    a_min = np.repeat(mn.idx, counts)
    k = a_min.size
    a_epoch = mn.start_epoch[a_min] + np.floor(rng.random(k) * 60e6) / 1e6
    a_us = np.round((a_epoch - grid.start) * 1e6).astype(np.int64)
    a_i = np.clip((a_us // 1_000_000), 0, grid.n)
    s = path.mid[a_i]
    se = path.sentiment[a_i]
    r = rng.random((6, k))
    is_call = r[0] < bg.c[a_min]
    p_ask = np.where(is_call, bg.a_c[a_min], bg.a_p[a_min]) * 0.92
    side = np.where(r[1] < p_ask, 0, np.where(r[1] < 0.92, 1, 2))

    e_idx = _pick_expiry(lay, a_epoch, r[2])
    remaining = grid.clock.remaining_fraction((a_epoch - grid.rth_open) / 60.0)
    rows = _pick_rows(rng, lay, s, is_call, e_idx, remaining)

    pr = price_rows(lay, rows, s, a_epoch, remaining)
    mid_px = np.round((pr.bid + pr.ask) / 2.0, 2)
    price = np.where(side == 0, pr.ask, np.where(side == 1, pr.bid, mid_px))
    price = np.maximum(price, 0.01)
    median_prem = 120_000.0 if path.spec.kind != "stock" else 60_000.0
    target = rng.lognormal(np.log(median_prem), 0.9, k)
    size = np.clip(np.round(target / (price * 100.0)), 1, 5_000).astype(np.int64)
    premium = price * size * 100.0
    sweep = r[3] < 0.25 + 0.35 * (side == 0) * np.abs(se)
    exchanges = np.where(sweep, rng.integers(2, 9, k), 1)

    order = np.argsort(a_us, kind="stable")
    t = {"a_us": a_us, "a_min": a_min, "rows": rows, "side": side, "sweep": sweep, "size": size,
         "price": price, "premium": premium, "exchanges": exchanges, "a_epoch": a_epoch, "s": s,
         "bid": pr.bid, "ask": pr.ask, "iv": pr.iv, "is_call": is_call}
    t = {name: arr[order] for name, arr in t.items()}
    t["volume"], t["rule"] = _volume_and_rule(t, grid, lay, mn.n, bg)
    return t


def _pick_expiry(lay: ChainLayout, a_epoch: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Expiry index per trade: weights by kind, only expiries still alive at the trade time."""
    kinds_w = np.array([EXPIRY_KIND_WEIGHT[kd] for kd in lay.expiry_kinds])
    alive = lay.expiry_close_epoch[None, :] > a_epoch[:, None] + 60.0
    w = kinds_w[None, :] * alive
    w_cum = np.cumsum(w, axis=1)
    tot = w_cum[:, -1:]
    return np.minimum((r[:, None] * tot > w_cum).sum(axis=1), len(lay.expiry_dates) - 1)


def _pick_rows(rng: np.random.Generator, lay: ChainLayout, s: np.ndarray, is_call: np.ndarray,
               e_idx: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Layout row per trade: a drawn moneyness, then the nearest listed strike."""
    k = s.size
    t_tr = (remaining + lay.sessions_after_today[e_idx]) / 252.0
    atm = term_atm(lay.iv30, np.maximum(t_tr, 1e-6))
    d = rng.normal(0.5, 0.6, k)
    x_t = np.where(is_call, d, -d)
    k_target = s * np.exp(x_t * atm * np.sqrt(np.maximum(t_tr, 1e-6)))
    rows = np.empty(k, dtype=np.int64)
    for j in range(k):  # a few hundred per day: nearest listed strike of that expiry/right
        cand = lay.rows_by_expiry_right[(int(e_idx[j]), bool(is_call[j]))]
        rows[j] = cand[np.argmin(np.abs(lay.strike[cand] - k_target[j]))]
    return rows


def _volume_and_rule(t: dict[str, np.ndarray], grid: Grid, lay: ChainLayout, M: int,
                     bg: _Background) -> tuple[np.ndarray, np.ndarray]:
    """Contract volume at each (time-sorted) trade, background + notable trades so far with
    this one included, and the alert rule it fires."""
    rows, size, k = t["rows"], t["size"], t["rows"].size
    disc_cum = np.zeros(k, dtype=np.int64)
    seen: dict[int, int] = {}
    for j in range(k):
        seen[int(rows[j])] = seen.get(int(rows[j]), 0) + int(size[j])
        disc_cum[j] = seen[int(rows[j])]
    mm = (t["a_epoch"] - grid.rth_open) / 60.0
    gm = np.arange(M + 1, dtype=np.float64)
    bg_c = np.interp(mm, gm, bg.cum_call)
    bg_p = np.interp(mm, gm, bg.cum_put)
    bg_row = np.floor(np.where(t["is_call"], bg_c, bg_p) * lay.vol_share[rows])
    volume = (bg_row + disc_cum).astype(np.int64)
    oi = lay.open_interest[rows]
    rule = np.where(t["sweep"], 0, np.where((size >= 1000) | (t["premium"] >= 1e6), 1,
                                            np.where(volume > oi, 3, 2)))
    return volume, rule


def _add_trades_to_minutes(bg: _Background, t: dict[str, np.ndarray]) -> None:
    """Add the notable trades to the per-minute aggregates (in place)."""
    side, size, premium, is_call = t["side"], t["size"], t["premium"], t["is_call"]
    sgn = np.where(side == 0, 1.0, np.where(side == 1, -1.0, 0.0))
    for arr, wts, mask in ((bg.call_vol, size, is_call), (bg.put_vol, size, ~is_call),
                           (bg.call_prem, premium, is_call), (bg.put_prem, premium, ~is_call),
                           (bg.net_call_prem, premium * sgn, is_call),
                           (bg.net_put_prem, premium * sgn, ~is_call),
                           (bg.net_call_vol, size * sgn, is_call), (bg.net_put_vol, size * sgn, ~is_call)):
        np.add.at(arr, t["a_min"][mask], wts[mask])
