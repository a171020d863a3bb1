"""MarketDataService: publishes what its :class:`~core.market.source.MarketSource` sees onto the bus.

The source is chosen by ``market.source`` (``core.market.sources.make_source``: the built-in
simulator, or IBKR); this shell is the same for every source. Every ``market.tick_seconds`` it
advances the source to the service clock and publishes, per symbol: an underlying
:class:`QuoteEvent` (stream ``quotes``; latest also in the ``quote`` snapshot key; 10-level
depth with each chain refresh, which is when analytics reads the book), a :class:`FlowEvent`
(tape prints, dark-pool prints, option-flow alerts, net premium; stream ``flow``), an
:class:`ImbalanceEvent` when the source has one, and an :class:`OptionQuoteEvent` for every
watched contract (stream ``option_quotes``; hash ``watch``: working orders and open
positions). Every ``market.chain_seconds`` in regular hours (and once at the first tick of a
day, the previous close's book, so pre-market has levels) the full chain goes into the
``chain`` snapshot key (its time and size also in ``chain_meta``) and a :class:`ChainEvent`
says so (stream ``chains``).

Bad data stops here (``core.market.quote_check``): a quote with a NaN / infinite / non-positive
price, a crossed quote or bad sizes is not published (nor its snapshot), a bad or crossed depth
book rides without its depth, a chain with an unusable spot is not stored, and any event the
source's values would make invalid is skipped; each is counted by reason (metric and the
``rejections`` hash shown by ``main.py status``) and logged at most once per contract per
minute. A rejection never stops the rest of the tick: every other symbol and contract goes out.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from core.bus.bus import Tx
from core.bus.events import ChainEvent, Event, FlowEvent, ImbalanceEvent, OptionQuoteEvent, QuoteEvent
from core.clock.calendar import NY
from core.market.chain_codec import encode_chain
from core.market.quote_check import QuoteRejections, book_problem, option_problem, underlying_problem
from core.market.source import MarketSource
from core.market.sources import make_source
from core.runtime.service import Context, Service

REF_TTL_S = 86_400
_DARK = frozenset({"TRF", "FINRA", "ADF"})  # off-exchange venues: dark-pool prints


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


class MarketDataService(Service):
    name = "market"

    def __init__(self, ctx: Context, source: MarketSource | None = None) -> None:
        super().__init__(ctx)
        m = self.settings.market
        self.interval_s = float(m.tick_seconds)
        self.symbols = list(m.symbols)
        self.source = source or make_source(ctx)
        self._last_chain_ms: dict[str, int] = {}
        self._last_price: dict[str, float] = {}
        self._book: dict[str, tuple[list[int], list[int]]] = {}  # last 10-level sizes per symbol
        self._day: date | None = None
        self.rejections = QuoteRejections()

    async def start(self) -> None:
        await self.source.start(self.clock.now())
        await self._publish_reference()

    async def stop(self) -> None:
        await self.source.stop()

    async def _publish_reference(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for sym in self.symbols:
            ref = await self.source.reference(sym)
            if ref is None:
                continue
            pipe.set(self.keys.snapshot("reference", sym), json.dumps({
                "symbol": sym, "iv_52w_low": ref.iv_52w_low, "iv_52w_high": ref.iv_52w_high,
                "next_earnings": ref.next_earnings.isoformat() if ref.next_earnings else None,
                "insider_net_shares_30d": ref.insider_net_shares_30d}), ex=REF_TTL_S)
        await pipe.execute()

    async def on_timer(self, now: datetime) -> None:
        src = self.source
        day = now.astimezone(NY).date()
        if day != self._day:  # a new day starts with a chain (the previous close's book)
            self._day = day
            self._last_chain_ms.clear()
        if not await src.advance(now):
            return
        now_ms = _ms(now)
        feed = src.feed
        ttl = self.settings.market.snapshot_ttl_s
        chain_every = self.settings.market.chain_seconds * 1000
        watched = await self._watched()
        rth = src.regular_hours(now)
        tx = self.bus.tx()
        for sym in self.symbols:
            # a chain at the first tick (the previous close's book, for pre-market levels), then on cadence
            need_chain = sym not in self._last_chain_ms or (
                rth and now_ms - self._last_chain_ms[sym] >= chain_every)
            q = src.quote(sym)
            if q is None:
                continue
            q_ms = _ms(q.ts)
            # 10-level depth rides with the chain refresh, when analytics reads the book
            book = src.depth(sym, self.settings.market.depth_levels) if need_chain else None
            depth = {} if book is None else {
                "depth_bid": list(zip(book.bid_price.tolist(), book.bid_size.tolist(), strict=True)),
                "depth_ask": list(zip(book.ask_price.tolist(), book.ask_size.tolist(), strict=True))}
            if depth and (why := book_problem(depth["depth_bid"], depth["depth_ask"])):
                self.rejections.reject(sym, why, now_ms, "depth dropped")
                book, depth = None, {}
            quote = None
            if why := underlying_problem(q.bid, q.ask, q.last, q.bid_size, q.ask_size):
                self.rejections.reject(sym, why, now_ms, f"bid {q.bid} ask {q.ask} last {q.last}")
            else:
                quote = self._emit(tx, sym, now_ms, QuoteEvent, correlation_id=f"md:{sym}", symbol=sym, bid=q.bid,
                                   ask=q.ask, last=q.last, bid_size=q.bid_size, ask_size=q.ask_size,
                                   volume=q.volume_today, quote_ts=q_ms, feed=feed, **depth)
            if quote is not None and not q.stale:
                snap = {"symbol": sym, "bid": q.bid, "ask": q.ask, "last": q.last, "quote_ts": q_ms,
                        "event_id": quote.id, "prev_close": q.prev_close}
                if book is not None:
                    snap.update(bid_sizes=book.bid_size.tolist(), ask_sizes=book.ask_size.tolist())
                    self._book[sym] = (snap["bid_sizes"], snap["ask_sizes"])
                elif sym in self._book:
                    snap["bid_sizes"], snap["ask_sizes"] = self._book[sym]
                tx.pipe.set(self.keys.snapshot("quote", sym), json.dumps(snap), ex=ttl)
            self._flow(tx, sym, q.last if quote is not None and not q.stale else None, q.volume_today, now_ms)
            imb = src.closing_imbalance(sym)
            if imb is not None:
                self._emit(tx, sym, now_ms, ImbalanceEvent, correlation_id=f"md:{sym}", symbol=sym, side=imb.side,
                           shares=imb.imbalance_shares, paired=imb.paired_shares,
                           indicative_price=imb.indicative_price, confidence=round(imb.confidence * 100.0, 2))
            wanted = watched.get(sym)
            if need_chain:
                chain = src.chain(sym)
                if chain is not None and len(chain) and not (math.isfinite(chain.spot) and chain.spot > 0):
                    self.rejections.reject(sym, "bad_spot", now_ms, f"chain spot {chain.spot}")
                elif chain is not None and len(chain):
                    self._last_chain_ms[sym] = now_ms
                    key = self.keys.snapshot("chain", sym)
                    tx.pipe.set(key, encode_chain(chain), ex=ttl)
                    # freshness without the payload, for watchers that only need the time
                    tx.pipe.set(self.keys.snapshot("chain_meta", sym), json.dumps({
                        "symbol": sym, "asof": chain.asof.isoformat(), "contracts": len(chain)}), ex=ttl)
                    self._emit(tx, sym, now_ms, ChainEvent, correlation_id=f"md:{sym}", symbol=sym,
                               spot=chain.spot, asof=_ms(chain.asof), snapshot_key=key, contracts=len(chain),
                               feed=feed)
            if wanted:
                for oq in src.option_quotes(sym, wanted):
                    if why := option_problem(oq.bid, oq.ask, oq.bid_size, oq.ask_size):
                        self.rejections.reject(oq.contract_key, why, now_ms, f"bid {oq.bid} ask {oq.ask}")
                        continue
                    self._emit(tx, oq.contract_key, now_ms, OptionQuoteEvent, correlation_id=f"md:{sym}",
                               symbol=oq.symbol, contract_key=oq.contract_key, expiry=oq.expiry, strike=oq.strike,
                               right=oq.right, bid=oq.bid, ask=oq.ask, bid_size=oq.bid_size,
                               ask_size=oq.ask_size, quote_ts=oq.ts_ms, underlying=oq.underlying)
        self._count_rejections(tx)
        await tx.commit()

    def _emit(self, tx: Tx, what: str, now_ms: int, cls: type[Event], **fields: Any) -> Event | None:
        """``tx.emit`` that turns an event the source's values make invalid into a counted
        rejection (reason ``invalid``) instead of an error that would drop the whole tick."""
        try:
            return tx.emit(cls, **fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            self.rejections.reject(what, "invalid", now_ms,
                                   f"{cls.__name__}.{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}")
            return None

    def _count_rejections(self, tx: Tx) -> None:
        """This tick's rejections into the ``rejections`` hash, with the tick's commit."""
        counts = self.rejections.drain()
        if not counts:
            return
        key = self.keys.hash("rejections")
        for reason, n in sorted(counts.items()):
            tx.pipe.hincrby(key, f"market:{reason}", n)
        tx.on_failure.append(lambda: self.rejections.counts.update(counts))  # counted with the next tick

    def _flow(self, tx: Tx, sym: str, last: float | None, volume: float, now_ms: int) -> None:
        src = self.source
        prints = src.prints(sym)
        alerts = src.option_flow(sym)
        ticks = src.net_premium(sym)
        if not prints and not alerts and not ticks:
            return
        buy = sell = dark_buy = dark_sell = total = blocks = 0  # summed in print order, as sum() did
        sweeps: set[int] = set()
        for p in prints:  # one pass over the tick's prints
            total += p.size
            if p.side == "buy":
                buy += p.size
                if p.exchange in _DARK:
                    dark_buy += p.size
            elif p.side == "sell":
                sell += p.size
                if p.exchange in _DARK:
                    dark_sell += p.size
            if p.sweep_id is not None:
                sweeps.add(p.sweep_id)
            if p.kind == "block":
                blocks += 1
        prev = self._last_price.get(sym)
        change = 0.0 if (last is None or prev is None) else last - prev
        if last is not None:
            self._last_price[sym] = last
        self._emit(tx, sym, now_ms, FlowEvent, correlation_id=f"md:{sym}", symbol=sym, buy_volume=float(buy),
                   sell_volume=float(sell), sweeps=len(sweeps), blocks=blocks,
                   dark_buy_volume=float(dark_buy), dark_sell_volume=float(dark_sell),
                net_call_premium=float(sum(t.net_call_premium for t in ticks)),
                net_put_premium=float(sum(t.net_put_premium for t in ticks)),
                alerts=[{"contract": a.contract, "expiry": a.expiry.isoformat(), "strike": a.strike, "right": a.right,
                         "side": a.side, "sweep": a.is_sweep, "size": a.size, "premium": a.premium,
                         "rule": a.alert_rule, "bullish": a.bullish} for a in alerts],
                price_change=round(change, 6), volume=float(total), last=last or 0.0)

    async def _watched(self) -> dict[str, set[str]]:
        keys = await self.redis.hkeys(self.keys.hash("watch"))
        out: dict[str, set[str]] = {}
        for k in sorted(keys):
            out.setdefault(k.split(":", 1)[0], set()).add(k)
        self.source.watch(set(keys))
        return out
