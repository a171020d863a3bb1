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


def build_flow(seed: int, day: int, path: SymbolPath, grid: Grid, lay: ChainLayout,
               cfg: SimConfig) -> Flow:
    spec = path.spec
    rng = rng_for(seed, day, spec.symbol, "flow")
    clock = grid.clock
    M = int(np.ceil(clock.length - 1e-9))
    mins = np.arange(M)
    m_start_epoch = grid.rth_open + 60.0 * mins
    gi = np.floor(m_start_epoch - grid.start).astype(np.int64)
    valid = (gi >= 0) & (gi + 60 <= grid.n)
    gi_c = np.clip(gi, 0, grid.n)
    sent = path.sentiment[gi_c]
    spot_m = path.mid[gi_c]
    u_full = clock.weight(mins + 0.5)
    u_sum = float(u_full.sum())          # a full session, so a partial window is not inflated
    u = u_full * valid
    day_total = spec.option_contracts_per_day * cfg.option_vol_per_contract_day

    noise = rng.normal(0.0, 0.04, (3, M))
    V = day_total * u / u_sum * rng.gamma(6.0, 1.0 / 6.0, M)
    base_c = 0.55 if spec.kind == "stock" else 0.45
    c = np.clip(base_c + 0.18 * sent + noise[0], 0.15, 0.85)
    a_c = np.clip(0.5 + 0.25 * sent + noise[1], 0.1, 0.9)
    a_p = np.clip(0.5 - 0.25 * sent + noise[2], 0.1, 0.9)
    pp = spot_m * spec.avg_option_price_frac * rng.lognormal(0.0, 0.15, M) * 100.0
    call_vol, put_vol = V * c, V * (1.0 - c)
    call_prem, put_prem = call_vol * pp, put_vol * pp
    net_call_prem = call_prem * 0.9 * (2.0 * a_c - 1.0)
    net_put_prem = put_prem * 0.9 * (2.0 * a_p - 1.0)
    net_call_vol = call_vol * 0.9 * (2.0 * a_c - 1.0)
    net_put_vol = put_vol * 0.9 * (2.0 * a_p - 1.0)
    cum_call = np.concatenate(([0.0], np.cumsum(call_vol)))
    cum_put = np.concatenate(([0.0], np.cumsum(put_vol)))

    # -- notable trades ------------------------------------------------------------------
    lam = cfg.flow_alerts_per_day * u / u_sum * (1.0 + 0.6 * np.abs(sent))
    counts = rng.poisson(lam)
    a_min = np.repeat(mins, counts)
    k = a_min.size
    a_epoch = m_start_epoch[a_min] + np.floor(rng.random(k) * 60e6) / 1e6
    a_us = np.round((a_epoch - grid.start) * 1e6).astype(np.int64)
    a_i = np.clip((a_us // 1_000_000), 0, grid.n)
    s = path.mid[a_i]
    se = path.sentiment[a_i]
    r = rng.random((6, k))
    is_call = r[0] < c[a_min]
    p_ask = np.where(is_call, a_c[a_min], a_p[a_min]) * 0.92
    side = np.where(r[1] < p_ask, 0, np.where(r[1] < 0.92, 1, 2))

    # expiry: weights by kind, only expiries still alive at the trade time
    kinds_w = np.array([EXPIRY_KIND_WEIGHT[kd] for kd in lay.expiry_kinds])
    alive = lay.expiry_close_epoch[None, :] > a_epoch[:, None] + 60.0
    w = kinds_w[None, :] * alive
    w_cum = np.cumsum(w, axis=1)
    tot = w_cum[:, -1:]
    e_idx = np.minimum((r[2][:, None] * tot > w_cum).sum(axis=1), len(lay.expiry_dates) - 1)

    remaining = clock.remaining_fraction((a_epoch - grid.rth_open) / 60.0)
    t_tr = (remaining + lay.sessions_after_today[e_idx]) / 252.0
    atm = term_atm(lay.iv30, np.maximum(t_tr, 1e-6))
    d = rng.normal(0.5, 0.6, k)
    x_t = np.where(is_call, d, -d)
    k_target = s * np.exp(x_t * atm * np.sqrt(np.maximum(t_tr, 1e-6)))
    rows = np.empty(k, dtype=np.int64)
    for j in range(k):  # a few hundred per day: nearest listed strike of that expiry/right
        cand = lay.rows_by_expiry_right[(int(e_idx[j]), bool(is_call[j]))]
        rows[j] = cand[np.argmin(np.abs(lay.strike[cand] - k_target[j]))]

    pr = price_rows(lay, rows, s, a_epoch, remaining)
    mid_px = np.round((pr.bid + pr.ask) / 2.0, 2)
    price = np.where(side == 0, pr.ask, np.where(side == 1, pr.bid, mid_px))
    price = np.maximum(price, 0.01)
    median_prem = 120_000.0 if spec.kind != "stock" else 60_000.0
    target = rng.lognormal(np.log(median_prem), 0.9, k)
    size = np.clip(np.round(target / (price * 100.0)), 1, 5_000).astype(np.int64)
    premium = price * size * 100.0
    sweep = r[3] < 0.25 + 0.35 * (side == 0) * np.abs(se)
    exchanges = np.where(sweep, rng.integers(2, 9, k), 1)

    order = np.argsort(a_us, kind="stable")
    a_us, a_min, rows, side, sweep = a_us[order], a_min[order], rows[order], side[order], sweep[order]
    size, price, premium, exchanges = size[order], price[order], premium[order], exchanges[order]
    a_epoch, s = a_epoch[order], s[order]
    bid, ask, iv = pr.bid[order], pr.ask[order], pr.iv[order]
    is_call = is_call[order]

    # contract volume at the trade (background + notable trades so far, this one included)
    disc_cum = np.zeros(k, dtype=np.int64)
    seen: dict[int, int] = {}
    for j in range(k):
        seen[int(rows[j])] = seen.get(int(rows[j]), 0) + int(size[j])
        disc_cum[j] = seen[int(rows[j])]
    mm = (a_epoch - grid.rth_open) / 60.0
    gm = np.arange(M + 1, dtype=np.float64)
    bg_c = np.interp(mm, gm, cum_call)
    bg_p = np.interp(mm, gm, cum_put)
    bg_row = np.floor(np.where(is_call, bg_c, bg_p) * lay.vol_share[rows])
    volume = (bg_row + disc_cum).astype(np.int64)
    oi = lay.open_interest[rows]
    rule = np.where(sweep, 0, np.where((size >= 1000) | (premium >= 1e6), 1,
                                       np.where(volume > oi, 3, 2)))

    # add the notable trades to the per-minute aggregates
    sgn = np.where(side == 0, 1.0, np.where(side == 1, -1.0, 0.0))
    for arr, wts, mask in ((call_vol, size, is_call), (put_vol, size, ~is_call),
                           (call_prem, premium, is_call), (put_prem, premium, ~is_call),
                           (net_call_prem, premium * sgn, is_call), (net_put_prem, premium * sgn, ~is_call),
                           (net_call_vol, size * sgn, is_call), (net_put_vol, size * sgn, ~is_call)):
        np.add.at(arr, a_min[mask], wts[mask])

    return Flow(minute0_epoch=grid.rth_open, n_minutes=M, valid=valid, call_vol=call_vol,
                put_vol=put_vol, call_prem=call_prem, put_prem=put_prem, net_call_prem=net_call_prem,
                net_put_prem=net_put_prem, net_call_vol=net_call_vol, net_put_vol=net_put_vol,
                cum_call=cum_call, cum_put=cum_put, a_us=a_us, a_minute=a_min, a_row=rows,
                a_side=side.astype(np.int8), a_sweep=sweep, a_size=size, a_price=price, a_bid=bid,
                a_ask=ask, a_spot=s, a_iv=iv, a_volume=volume, a_exchanges=exchanges.astype(np.int64),
                a_rule=rule.astype(np.int8))
