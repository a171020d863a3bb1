"""IB ticker updates into the IBKR market source's state: validated, bad data counted and dropped.

All data arrives as ib_async ticker updates (``pendingTickersEvent``) and is copied, validated,
into the source's own state, stamped with the service clock. Underlyings keep their last *valid*
top of book (bid and ask > 0, not crossed; for an index, bid = ask = last) and L1 last-trade
ticks become prints (side by the quote rule: at/above ask buy, at/below bid sell, else mid,
exchange ``"IB"``). Options keep their last values per contract; depth its last valid book.

**Bad data** (NaN / inf, IB's -1 "no value", other negatives, crossed quotes or books) is never
passed on: counted in ``REJECTED{service="market", reason}`` (reasons ``non_finite``,
``no_value``, ``negative``, ``crossed``, ``crossed_book``), in ``rejected``, and logged (at most
once a minute per reason, with the count in between).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from core.ibkr.market_state import (
    NAN,
    BookState,
    MarketState,
    OptionRow,
    UnderlyingState,
    finite,
    from_ms,
    keep_valid,
    option_side,
    positive,
    tick_reason,
)
from core.market.source import TradePrint
from core.runtime.metrics import REJECTED

if TYPE_CHECKING:
    from core.domain.contract import OptionContract

log = logging.getLogger("quanticity.ibkr.market")

BID_TICKS = frozenset({1, 66})
ASK_TICKS = frozenset({2, 67})
LAST_TICKS = frozenset({4, 68})
PRICE_TICKS = BID_TICKS | ASK_TICKS | LAST_TICKS
LOG_EVERY_S = 60.0
SERVICE = "market"


class TickerIntake(MarketState):
    """The ``pendingTickersEvent`` handler of the IBKR market source and its validation."""

    def _reject(self, what: str, reason: str) -> None:
        REJECTED.labels(SERVICE, reason).inc()
        self.rejected[reason] += 1
        now = asyncio.get_running_loop().time()
        last, quiet = self._logged.get(reason, (-math.inf, 0))
        if now - last >= LOG_EVERY_S:
            self._logged[reason] = (now, 0)
            log.warning("ibkr market: rejected %s data for %s (%d more since the last report; counted, "
                        "logged at most once a minute per reason)", reason, what, quiet)
        else:
            self._logged[reason] = (last, quiet + 1)

    def _on_tickers(self, tickers: Any) -> None:
        try:
            now_ms = self.ctx.clock.ms()
            for t in tickers:
                cid = getattr(t.contract, "conId", 0)
                if cid in self._fresh:
                    self._fresh[cid] = True
                sym = self._und_by_con.get(cid)
                if sym is not None:
                    if t.ticks or not t.domTicks:
                        self._update_underlying(self._und[sym], t, now_ms)
                    if t.domTicks:
                        self._update_book(sym, t, now_ms)
                    continue
                oc = self.cache.by_con_id(cid)
                if oc is not None:
                    self._update_option(oc, t, now_ms)
        except Exception:
            log.exception("ibkr market: ticker update failed")

    def _bad_ticks(self, what: str, ticks: list) -> set[int]:
        """Count the bad raw price ticks; returns their tick types."""
        bad: set[int] = set()
        for tk in ticks:
            if tk.tickType in PRICE_TICKS:
                reason = tick_reason(float(tk.price))
                if reason is not None:
                    bad.add(tk.tickType)
                    self._reject(what, reason)
        return bad

    def _update_underlying(self, u: UnderlyingState, t: Any, now_ms: int) -> None:
        self._bad_ticks(u.symbol, t.ticks)
        last = positive(t.last)
        if u.is_index:
            bid = ask = last
            valid = last is not None
        else:
            bid, ask = positive(t.bid), positive(t.ask)
            valid = bid is not None and ask is not None
            if valid and bid > ask:
                self._reject(u.symbol, "crossed")
                valid = False
        u.valid = valid
        if valid:
            u.bid, u.ask = bid, ask
            if not u.is_index:
                u.bid_size = finite(t.bidSize) or 0.0
                u.ask_size = finite(t.askSize) or 0.0
            u.quote_ms = now_ms
        if last is not None:
            u.last = last
        vol = finite(t.volume)
        if vol is not None and vol >= 0:
            u.volume = vol
        close = positive(t.close)
        if close is not None:
            u.close = close
        for tk in t.ticks:
            if tk.tickType in LAST_TICKS and positive(tk.price) and (finite(tk.size) or 0) > 0:
                self._print(u, float(tk.price), float(tk.size), now_ms)

    def _print(self, u: UnderlyingState, price: float, size: float, now_ms: int) -> None:
        if u.valid and not u.is_index and price >= u.ask:
            side = "buy"
        elif u.valid and not u.is_index and price <= u.bid:
            side = "sell"
        else:
            side = "mid"
        kind = "odd_lot" if size < 100 else "block" if size >= 10_000 else "round_lot"
        self._prints[u.symbol].append(TradePrint(symbol=u.symbol, ts=from_ms(now_ms), price=price, size=int(size),
                                                 side=side, exchange="IB", kind=kind))

    def _update_option(self, oc: OptionContract, t: Any, now_ms: int) -> None:
        key = oc.key
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = OptionRow(oc)
        bad = self._bad_ticks(key, t.ticks)
        row.bid = option_side(float(t.bid), row.bid, bool(bad & BID_TICKS))
        row.ask = option_side(float(t.ask), row.ask, bool(bad & ASK_TICKS))
        if row.bid > 0 and row.ask > 0 and row.bid > row.ask:
            self._reject(key, "crossed")
            row.bid = row.ask = NAN
        for name, value in (("bid_size", t.bidSize), ("ask_size", t.askSize)):
            f = finite(value)
            if f is not None:
                setattr(row, name, f if f >= 0 else NAN)
        g = t.modelGreeks
        if g is not None:
            iv, delta, gamma = finite(g.impliedVol), finite(g.delta), finite(g.gamma)
            row.iv = iv if iv is not None and iv > 0 else NAN
            row.delta = delta if delta is not None and -1.0 <= delta <= 1.0 else NAN
            row.gamma = gamma if gamma is not None and gamma >= 0 else NAN
            row.und_price = positive(g.undPrice) or row.und_price
        oi = finite(t.callOpenInterest if oc.right.value == "C" else t.putOpenInterest)
        row.open_interest = keep_valid(oi, row.open_interest, oi is not None and oi >= 0)
        vol = finite(t.volume)
        if vol is None:
            vol = finite(t.callVolume if oc.right.value == "C" else t.putVolume)
        row.volume = keep_valid(vol, row.volume, vol is not None and vol >= 0)
        row.ts_ms = now_ms

    def _update_book(self, sym: str, t: Any, now_ms: int) -> None:
        def levels(raw: list, reverse: bool) -> list[tuple[float, float]]:
            ok = [(float(lv.price), float(lv.size)) for lv in raw
                  if positive(lv.price) is not None and positive(lv.size) is not None]
            return sorted(ok, key=lambda x: x[0], reverse=reverse)

        bids, asks = levels(t.domBids, True), levels(t.domAsks, False)
        if not bids and not asks:
            return
        if bids and asks and bids[0][0] >= asks[0][0]:
            self._reject(sym, "crossed_book")
            return
        self._books[sym] = BookState(now_ms, bids, asks)

