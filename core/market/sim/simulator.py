"""The :class:`MarketSimulator` facade (see the package docstring for the API)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np

from core.market.chain import OptionChain
from core.market.sim.calendar import NY, session_info
from core.market.sim.config import DEFAULT_SYMBOLS, SimConfig
from core.market.sim.flow import FLOW_SIDES, RULES, Flow, build_flow
from core.market.sim.models import (
    ClosingImbalance,
    DepthBook,
    FeedGapError,
    FlowAlert,
    NetPremiumTick,
    TradePrint,
    UnderlyingQuote,
)
from core.market.sim.options import ChainLayout, Priced, build_layout, price_snapshot, price_snapshot_rows
from core.market.sim.paths import Grid, SymbolPath, VarianceClock, market_path, symbol_path
from core.market.sim.tape import (
    EXCHANGES,
    KINDS,
    SIDES,
    Auction,
    Tape,
    build_auction,
    build_tape,
    depth_levels,
)

_US = timedelta(microseconds=1)


def _aware(name: str, t: datetime) -> datetime:
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {t!r}")
    return t


class _Symbol:
    """Everything simulated for one underlying; the option side is built lazily."""

    __slots__ = (
        "_flow",
        "_layout",
        "alert_cursor",
        "auction",
        "gaps",
        "path",
        "print_cursor",
        "tape",
        "tick_cursor",
    )

    def __init__(self, path: SymbolPath, tape: Tape, auction: Auction | None) -> None:
        self.path = path
        self.tape = tape
        self.auction = auction
        self._layout: ChainLayout | None = None
        self._flow: Flow | None = None
        self.print_cursor = 0      # index of the next unseen print
        self.alert_cursor = 0
        self.tick_cursor = 0       # next unseen regular-hours minute
        self.gaps: list[tuple[int, int, datetime, datetime]] = []   # (start_us, end_us, start, end)


class MarketSimulator:
    """Seeded, pure market simulator for one trading session.

    Parameters
    ----------
    seed: any int; with the same session times and symbols, outputs are identical.
    session_open / session_close: aware datetimes bounding the simulated window
        (e.g. 08:30 and 16:15 America/New_York). Their NY date must be an XNYS
        session; regular hours (09:30-16:00, or the early close) come from the
        exchange calendar.
    symbols: subset of ``config.specs`` (default: SPY QQQ IWM SPX + Magnificent 7).
    config: :class:`SimConfig`.
    """

    def __init__(self, seed: int, session_open: datetime, session_close: datetime,
                 symbols: list[str] | None = None, config: SimConfig | None = None) -> None:
        _aware("session_open", session_open)
        _aware("session_close", session_close)
        if session_close <= session_open:
            raise ValueError("session_close must be after session_open")
        self.seed = int(seed)
        self.config = cfg = config or SimConfig()
        self.session_open = session_open.astimezone(NY)
        self.session_close = session_close.astimezone(NY)
        self.session = session_info(self.session_open.date())
        self.trade_date: date = self.session.trade_date
        self.symbols: list[str] = list(symbols) if symbols is not None else list(DEFAULT_SYMBOLS)
        for s in self.symbols:
            cfg.spec(s)
        self._day = self.trade_date.toordinal()
        rth_open, rth_close = self.session.rth_open.timestamp(), self.session.rth_close.timestamp()
        clock = VarianceClock(length=(rth_close - rth_open) / 60.0, open_boost=cfg.open_vol_boost,
                              close_boost=cfg.close_vol_boost, ext=cfg.ext_hours_vol)
        self._start = self.session_open.timestamp()
        n = int(np.ceil(self.session_close.timestamp() - self._start - 1e-9))
        self._grid = Grid(self._start, n, rth_open, rth_close, clock)
        self._mkt = market_path(self.seed, self._day, self._grid, cfg)
        self._sym: dict[str, _Symbol] = {}
        for s in self.symbols:
            path = symbol_path(self.seed, self._day, cfg.spec(s), self._grid, self._mkt, cfg)
            tape = build_tape(self.seed, self._day, path, self._grid, cfg)
            self._sym[s] = _Symbol(path, tape, build_auction(self.seed, self._day, path, self._grid, cfg))
        self._open_utc = self.session_open.astimezone(UTC)
        self._now = self.session_open
        self._now_epoch = self._start
        self._now_us = 0                      # exact microseconds since session_open

    # -- time ----------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self._now

    @property
    def rth_open(self) -> datetime:
        return self.session.rth_open

    @property
    def rth_close(self) -> datetime:
        return self.session.rth_close

    def advance(self, to: datetime) -> None:
        """Move the simulated clock to ``to`` (aware, not before :attr:`now`). The
        path is precomputed, so the step pattern never changes any output."""
        _aware("to", to)
        ep = to.timestamp()
        if ep < self._now_epoch:
            raise ValueError(f"advance() must be monotone: {to.isoformat()} < {self._now.isoformat()}")
        self._now = to.astimezone(NY)
        self._now_epoch = ep
        self._now_us = (to - self.session_open) // _US

    def _idx(self, epoch: float) -> int:
        """Grid second holding ``epoch`` (clamped to the simulated window)."""
        return min(max(math.floor(epoch - self._start), 0), self._grid.n)

    def _idx_us(self, us: int) -> int:
        return min(max(us // 1_000_000, 0), self._grid.n)

    def _dt_us(self, us: int) -> datetime:
        return (self._open_utc + timedelta(microseconds=int(us))).astimezone(NY)

    def _get(self, symbol: str) -> _Symbol:
        try:
            return self._sym[symbol]
        except KeyError:
            raise KeyError(f"{symbol!r} is not simulated; symbols: {self.symbols}") from None

    # -- feed gaps -----------------------------------------------------------------------
    def inject_gap(self, symbol: str, start: datetime, end: datetime) -> None:
        """Freeze ``symbol``'s quote and depth for ``start <= now < end``: they keep the
        state and ``ts`` of ``start`` and carry ``stale=True`` (or raise
        :class:`FeedGapError` when ``config.gap_mode == "raise"``)."""
        _aware("start", start)
        _aware("end", end)
        if end <= start:
            raise ValueError("gap end must be after start")
        st = self._get(symbol)
        st.gaps.append(((start - self.session_open) // _US, (end - self.session_open) // _US,
                        start.astimezone(NY), end.astimezone(NY)))
        st.gaps.sort(key=lambda g: (g[0], g[1]))

    def in_gap(self, symbol: str) -> bool:
        """Whether an injected gap covers :attr:`now` for ``symbol``."""
        return self._active_gap(self._get(symbol)) is not None

    def _active_gap(self, st: _Symbol) -> tuple[int, int, datetime, datetime] | None:
        """The earliest-starting gap covering now (its start is the frozen time)."""
        if not st.gaps:
            return None
        t = self._now_us
        return next((g for g in st.gaps if g[0] <= t < g[1]), None)

    def _feed_time(self, symbol: str, st: _Symbol) -> tuple[int, datetime, bool]:
        """(microseconds, ts, stale) at which ``symbol``'s quote feed is observed."""
        g = self._active_gap(st)
        if g is None:
            return self._now_us, self._now, False
        if self.config.gap_mode == "raise":
            raise FeedGapError(symbol, g[2], g[3])
        return g[0], g[2], True

    # -- underlying ----------------------------------------------------------------------
    def spot(self, symbol: str) -> float:
        """Current mid (true value, ignores feed gaps)."""
        return float(self._get(symbol).path.mid[self._idx_us(self._now_us)])

    def quote(self, symbol: str) -> UnderlyingQuote:
        st = self._get(symbol)
        us, ts, stale = self._feed_time(symbol, st)
        i = self._idx_us(us)
        tp = st.tape
        k = int(np.searchsorted(tp.p_us, us, side="right"))
        if st.path.spec.kind == "index":
            last = round(float(st.path.mid[i]), 2)
            vol = 0
        else:
            last = float(tp.p_price[k - 1]) if k else tp.open_price
            vol = int(tp.bg_volume_cum[i] + tp.p_size_cum[k])
        return UnderlyingQuote(symbol=symbol, ts=ts, bid=float(tp.bid[i]), ask=float(tp.ask[i]),
                               last=last, bid_size=int(tp.bid_size[i]), ask_size=int(tp.ask_size[i]),
                               volume_today=vol, prev_close=round(st.path.prev_close, 2), stale=stale)

    def depth(self, symbol: str, levels: int = 10) -> DepthBook:
        """``levels`` price levels each side (level 0 = the quote)."""
        st = self._get(symbol)
        us, ts, stale = self._feed_time(symbol, st)
        i = self._idx_us(us)
        n = int(levels)
        if n < 1:
            raise ValueError("levels must be >= 1")
        bp, bs, ap, asz = depth_levels(self.seed, self._day, symbol, st.tape, st.path, i, n)
        return DepthBook(symbol=symbol, ts=ts, bid_price=bp, bid_size=bs, ask_price=ap, ask_size=asz,
                         stale=stale)

    def prints(self, symbol: str) -> list[TradePrint]:
        """Tape prints with ``ts <= now`` not returned by an earlier call."""
        st = self._get(symbol)
        tp = st.tape
        k = int(np.searchsorted(tp.p_us, self._now_us, side="right"))
        a, st.print_cursor = st.print_cursor, max(k, st.print_cursor)
        out = []
        for j in range(a, k):
            sw = int(tp.p_sweep[j])
            out.append(TradePrint(symbol=symbol, ts=self._dt_us(int(tp.p_us[j])),
                                  price=float(tp.p_price[j]), size=int(tp.p_size[j]),
                                  side=SIDES[tp.p_side[j]], exchange=EXCHANGES[tp.p_exch[j]],  # type: ignore[arg-type]
                                  kind=KINDS[tp.p_kind[j]], sweep_id=sw if sw >= 0 else None))  # type: ignore[arg-type]
        return out

    # -- closing auction -----------------------------------------------------------------
    def closing_imbalance(self, symbol: str) -> ClosingImbalance | None:
        """Imbalance feed for ``[close - 10 min, close)`` (15:50-16:00 NY on normal
        days); ``None`` outside that window and for the SPX index."""
        st = self._get(symbol)
        au = st.auction
        if au is None:
            return None
        close = self.session.rth_close.timestamp()
        start = close - self.config.imbalance_window_minutes * 60.0
        t = self._now_epoch
        if not (start <= t < close):
            return None
        i = self._idx_us(self._now_us)
        j = int(np.clip(i - au.start_i, 0, au.imbalance.shape[0] - 1))
        ref = float(st.path.mid[i])
        tick = st.tape.tick
        ind = round(round(ref * (1.0 + float(au.impact[j])) / tick) * tick, 6)
        return ClosingImbalance(symbol=symbol, ts=self._now, side="buy" if au.side > 0 else "sell",
                                imbalance_shares=int(au.imbalance[j]), paired_shares=int(au.paired[j]),
                                indicative_price=ind, reference_price=round(ref, 4),
                                confidence=round(float(au.confidence[j]), 4),
                                auction_time=self.session.rth_close)

    # -- options -------------------------------------------------------------------------
    def _layout(self, st: _Symbol) -> ChainLayout:
        if st._layout is None:
            # strikes and open interest were listed overnight, around the previous close
            st._layout = build_layout(self.seed, self._day, st.path.spec, self.trade_date,
                                      st.path.prev_close, self._mkt.iv_level_mult,
                                      self._grid.clock, self.config)
        return st._layout

    def _flow_of(self, st: _Symbol) -> Flow:
        if st._flow is None:
            st._flow = build_flow(self.seed, self._day, st.path, self._grid, self._layout(st), self.config)
        return st._flow

    def layout(self, symbol: str) -> ChainLayout:
        """The static chain layout (expiries, strikes, open interest) of ``symbol``."""
        return self._layout(self._get(symbol))

    def _pricing_inputs(self, st: _Symbol) -> tuple[ChainLayout, float, float, float, int]:
        """(layout, epoch, spot, remaining variance today, first live expiry) at :attr:`now`."""
        lay = self._layout(st)
        t = self._now_epoch
        S = float(st.path.mid[self._idx_us(self._now_us)])
        rem = float(self._grid.clock.remaining_fraction((t - self._grid.rth_open) / 60.0))
        first = int(np.searchsorted(lay.expiry_close_epoch, t, side="right"))  # expired ones first
        return lay, t, S, rem, first

    def chain(self, symbol: str) -> OptionChain:
        """Full chain at :attr:`now`. Expiries whose close has passed are dropped."""
        st = self._get(symbol)
        flow = self._flow_of(st)
        lay, t, S, rem, first = self._pricing_inputs(st)
        if first >= len(lay.expiry_dates):
            return OptionChain.empty(symbol, S, self._now)
        pr = price_snapshot(lay, first, S, t, rem)
        rows = slice(int(lay.expiry_start[first]), None)
        vol = flow.background_row_volume(lay, t)
        ka = int(np.searchsorted(flow.a_us, self._now_us, side="right"))
        if ka:
            vol += np.bincount(flow.a_row[:ka], weights=flow.a_size[:ka], minlength=len(lay))
        return OptionChain(
            symbol=symbol, spot=S, asof=self._now, expiry=lay.expiry[rows], strike=lay.strike[rows],
            is_call=lay.is_call[rows], bid=pr.bid, ask=pr.ask, iv=pr.iv,
            open_interest=lay.open_interest[rows], volume=vol[rows], delta=pr.delta, gamma=pr.gamma,
            rate=lay.rate, dividend_yield=lay.q,
            meta={"source": "sim", "seed": self.seed, "tte_basis": "ACT/365 to the expiry's NYSE close",
                  "expiry_kinds": dict(lay.meta_kinds)},
        )

    def row_quotes(self, symbol: str, rows: np.ndarray) -> tuple[float, np.ndarray, Priced]:
        """Spot and the prices of layout ``rows`` at :attr:`now`, exactly as :meth:`chain` gives
        them, without pricing the rest of the chain: ``(spot, live_rows, priced)`` where
        ``live_rows`` are the given rows whose expiry has not closed (in the given order) and
        ``priced`` is aligned with them."""
        lay, t, S, rem, first = self._pricing_inputs(self._get(symbol))
        live = np.asarray(rows, dtype=np.int64)
        live = live[lay.exp_idx[live] >= first] if first < len(lay.expiry_dates) else live[:0]
        return S, live, price_snapshot_rows(lay, min(first, len(lay.expiry_dates) - 1), live, S, t, rem)

    def option_flow(self, symbol: str) -> list[FlowAlert]:
        """Flow alerts (notable trades) with ``ts <= now`` not returned before."""
        st = self._get(symbol)
        flow = self._flow_of(st)
        lay = self._layout(st)
        k = int(np.searchsorted(flow.a_us, self._now_us, side="right"))
        a, st.alert_cursor = st.alert_cursor, max(k, st.alert_cursor)
        out = []
        for j in range(a, k):
            r = int(flow.a_row[j])
            exp = lay.expiry_dates[int(lay.exp_idx[r])]
            call = bool(lay.is_call[r])
            strike = float(lay.strike[r])
            right = "C" if call else "P"
            occ = f"{symbol[:6]:<6}{exp:%y%m%d}{right}{round(strike * 1000):08d}"
            out.append(FlowAlert(
                symbol=symbol, ts=self._dt_us(int(flow.a_us[j])), contract=occ, expiry=exp, strike=strike,
                right=right, side=FLOW_SIDES[flow.a_side[j]], is_sweep=bool(flow.a_sweep[j]),  # type: ignore[arg-type]
                size=int(flow.a_size[j]), price=float(flow.a_price[j]),
                premium=round(float(flow.a_price[j]) * int(flow.a_size[j]) * 100.0, 2),
                bid=float(flow.a_bid[j]), ask=float(flow.a_ask[j]),
                underlying_price=round(float(flow.a_spot[j]), 4), iv=round(float(flow.a_iv[j]), 6),
                open_interest=int(lay.open_interest[r]), volume=int(flow.a_volume[j]),
                exchanges=int(flow.a_exchanges[j]), alert_rule=RULES[flow.a_rule[j]]))
        return out

    def net_premium(self, symbol: str) -> list[NetPremiumTick]:
        """Net-premium ticks for regular-hours minutes completed by ``now`` and not
        returned before (one per minute, ``ts`` = minute end)."""
        st = self._get(symbol)
        flow = self._flow_of(st)
        done = int(np.clip(np.floor((self._now_epoch - flow.minute0_epoch) / 60.0 + 1e-9), 0, flow.n_minutes))
        a, st.tick_cursor = st.tick_cursor, max(done, st.tick_cursor)
        out: list[NetPremiumTick] = []
        if done <= a:
            return out
        cum_c = np.cumsum(flow.net_call_prem * flow.valid)
        cum_p = np.cumsum(flow.net_put_prem * flow.valid)
        open_dt = self.session.rth_open
        for m in range(a, done):
            if not flow.valid[m]:
                continue
            out.append(NetPremiumTick(
                symbol=symbol, ts=open_dt + timedelta(minutes=m + 1),
                call_volume=int(flow.call_vol[m]), put_volume=int(flow.put_vol[m]),
                call_premium=round(float(flow.call_prem[m]), 2),
                put_premium=round(float(flow.put_prem[m]), 2),
                net_call_premium=round(float(flow.net_call_prem[m]), 2),
                net_put_premium=round(float(flow.net_put_prem[m]), 2),
                net_call_volume=round(float(flow.net_call_vol[m])),
                net_put_volume=round(float(flow.net_put_vol[m])),
                cum_net_call_premium=round(float(cum_c[m]), 2),
                cum_net_put_premium=round(float(cum_p[m]), 2)))
        return out
