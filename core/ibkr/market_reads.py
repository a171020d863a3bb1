"""What the market service reads from the IBKR market source each tick (no IB calls, state only).

``quote()``: the last *valid* top of book; ``ts`` is when it was last updated. Staleness rule:
``stale=True`` when the current book is not valid (a bad tick replaced it: the last good values
are returned, never the bad ones), when the connection is down, or when no valid update came for
``risk.max_quote_age_s`` (the age past which risk refuses to trade on a quote anyway).
``prev_close`` is IB's close tick (0.0 while unknown). ``prints()``: the L1 last-trade ticks (IB
samples them a few times a second: a sampled tape, not every trade).

``chain()`` builds an :class:`OptionChain` from each contract's last values (kept after its line
is cancelled): bid/ask (rows without a two-sided quote are skipped), iv / delta / gamma from IB's
model greeks (NaN when IB gave none), open interest from the call/put OI tick (NaN when none),
volume (0 when none, as ``OptionChain`` documents). ``meta``: ``feed`` "ibkr", ``age_s`` (per row,
seconds since its last update), ``max_age_s``, ``contracts_total``, ``market_data_type``. Rows
older than ``market.snapshot_ttl_s`` are left out.

``depth()``: the last valid book of each symbol (``stale=True`` once its line rotated away).
``option_quotes()``: the quotes of watched contracts.
"""

from __future__ import annotations

import math

import numpy as np

from core.clock.calendar import NY
from core.ibkr.contracts import contract_from_key
from core.ibkr.market_state import MarketState, from_ms
from core.market.chain import OptionChain
from core.market.source import DepthBook, OptionQuote, TradePrint, UnderlyingQuote


class MarketReads(MarketState):
    """quote / depth / chain / option_quotes / prints of the IBKR market source."""

    def quote(self, symbol: str) -> UnderlyingQuote | None:
        u = self._und.get(symbol)
        if u is None or u.quote_ms is None:
            return None
        max_age_ms = self.ctx.settings.risk.max_quote_age_s * 1000
        stale = not u.valid or not self.conn.connected or self._now_ms() - u.quote_ms > max_age_ms
        last = u.last if math.isfinite(u.last) else (u.bid + u.ask) / 2.0
        return UnderlyingQuote(symbol=symbol, ts=from_ms(u.quote_ms), bid=u.bid, ask=u.ask, last=last,
                               bid_size=int(u.bid_size), ask_size=int(u.ask_size), volume_today=int(u.volume),
                               prev_close=u.close if math.isfinite(u.close) else 0.0, stale=stale)

    def depth(self, symbol: str, levels: int) -> DepthBook | None:
        b = self._books.get(symbol)
        if b is None:
            return None
        bids, asks = b.bids[:levels], b.asks[:levels]
        return DepthBook(symbol=symbol, ts=from_ms(b.ts_ms),
                         bid_price=np.array([p for p, _ in bids], dtype=np.float64),
                         bid_size=np.array([s for _, s in bids], dtype=np.int64),
                         ask_price=np.array([p for p, _ in asks], dtype=np.float64),
                         ask_size=np.array([s for _, s in asks], dtype=np.int64),
                         stale=symbol not in self._depth_lines or not self.conn.connected)

    def chain(self, symbol: str) -> OptionChain | None:
        contracts = self._chains.get(symbol)
        spot = self._spot(symbol)
        if not contracts or spot is None:
            return None
        now_ms = self._now_ms()
        today = from_ms(now_ms).astimezone(NY).date()
        max_age_ms = self.ctx.settings.market.snapshot_ttl_s * 1000
        rows = [r for c in contracts if c.expiry >= today and (r := self._rows.get(c.key)) is not None
                and r.two_sided and now_ms - r.ts_ms <= max_age_ms]
        if not rows:
            return None
        f = np.float64
        age = np.array([(now_ms - r.ts_ms) / 1000.0 for r in rows], dtype=f)
        return OptionChain(
            symbol=symbol, spot=float(spot), asof=from_ms(now_ms),
            expiry=np.array([r.contract.expiry for r in rows], dtype="datetime64[D]"),
            strike=np.array([r.contract.strike for r in rows], dtype=f),
            is_call=np.array([r.contract.right.value == "C" for r in rows], dtype=bool),
            bid=np.array([r.bid for r in rows], dtype=f), ask=np.array([r.ask for r in rows], dtype=f),
            iv=np.array([r.iv for r in rows], dtype=f),
            open_interest=np.array([r.open_interest for r in rows], dtype=f),
            volume=np.nan_to_num(np.array([r.volume for r in rows], dtype=f), nan=0.0),
            delta=np.array([r.delta for r in rows], dtype=f), gamma=np.array([r.gamma for r in rows], dtype=f),
            meta={"feed": self.feed, "age_s": age, "max_age_s": float(age.max()), "contracts_total": len(contracts),
                  "market_data_type": self.conn.market_data_type},
        )

    def option_quotes(self, symbol: str, contract_keys: set[str]) -> list[OptionQuote]:
        spot = self._spot(symbol)
        out: list[OptionQuote] = []
        for key in sorted(contract_keys):
            c = contract_from_key(key)
            if c is None or c.symbol != symbol:
                continue
            r = self._rows.get(c.key)
            if r is None or not r.two_sided:
                continue
            und = spot if spot is not None else (r.und_price if math.isfinite(r.und_price) else 0.0)
            out.append(OptionQuote(contract_key=key, symbol=symbol, expiry=c.expiry.isoformat(), strike=c.strike,
                                   right=c.right.value, bid=r.bid, ask=r.ask,
                                   bid_size=r.bid_size if math.isfinite(r.bid_size) else 0.0,
                                   ask_size=r.ask_size if math.isfinite(r.ask_size) else 0.0,
                                   underlying=float(und), ts_ms=r.ts_ms))
        return out

    def prints(self, symbol: str) -> list[TradePrint]:
        q = self._prints.get(symbol)
        if not q:
            return []
        out = list(q)
        q.clear()
        return out

