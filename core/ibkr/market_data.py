"""IBKR as a :class:`~core.market.source.MarketSource` (``market.source: ibkr``).

One :class:`~core.ibkr.connection.IbConnection` with role ``market`` (its own client id). All
data arrives as ib_async ticker updates (``pendingTickersEvent``) and is copied, validated, into
this source's own state, stamped with the service clock; the methods the market service calls
each tick only read that state. ``option_flow`` / ``net_premium`` return [] (flow alerts and net
premium need a vendor feed; they come later) and ``closing_imbalance`` None.

The source is one class assembled from one module per concern:

- :mod:`core.ibkr.market_state` - the state (records per underlying, option contract, depth book)
  and the checks on IB's raw values;
- :mod:`core.ibkr.market_lines` - the line budget (its arithmetic), chain rotation, depth rotation;
- :mod:`core.ibkr.market_discovery` - daily chain discovery, watched contracts, the IV reference;
- :mod:`core.ibkr.market_ticks` - incoming ticker updates; bad data counted and dropped;
- :mod:`core.ibkr.market_reads` - ``quote`` / ``depth`` / ``chain`` / ``option_quotes`` / ``prints``;
- this module - start / stop, reconnects, and the tick (``advance``).

**Reconnects**: ib_async forgets every subscription with the socket (and TWS after 1101 /
2103-2104): on ``on_ready`` every line and depth line is requested again (lines ib_async still
tracks are cancelled first). ``advance()`` returns False while not connected or before any data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock.calendar import NY
from core.ibkr.connection import IbUnavailable
from core.ibkr.market_discovery import ChainDiscovery
from core.ibkr.market_reads import MarketReads
from core.ibkr.market_state import to_ms
from core.ibkr.market_ticks import TickerIntake

if TYPE_CHECKING:
    from core.runtime.service import Context

log = logging.getLogger("quanticity.ibkr.market")


class IbkrMarketSource(ChainDiscovery, TickerIntake, MarketReads):
    feed = "ibkr"

    @classmethod
    def from_context(cls, ctx: Context) -> IbkrMarketSource:
        return cls(ctx)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, now: datetime) -> None:
        self._now = now
        ib = self.conn.ib
        ib.pendingTickersEvent += self._on_tickers
        ib.client.throttleStart += self._throttle_on
        ib.client.throttleEnd += self._throttle_off
        self.conn.on_ready(self._on_ready)
        self.conn.on_lost(self._on_lost)
        await self.conn.start()
        try:
            for sym in self.symbols:
                c = await self.cache.underlying(sym)
                if c is None:
                    continue
                u = self._und[sym]
                u.contract, u.is_index = c, c.secType == "IND"
                self._und_by_con[c.conId] = sym
        except (TimeoutError, ConnectionError) as exc:
            await self.conn.stop()
            raise IbUnavailable(f"IBKR: could not look up the underlyings ({type(exc).__name__})") from None
        self._started = True
        self._sync_lines()
        self._step_depth(self.ctx.clock.ms())
        self._ref_task = asyncio.create_task(self._load_references(), name="ibkr-references")

    async def stop(self) -> None:
        self._started = False
        tasks = [t for t in (*self._tasks.values(), self._ref_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        ib = self.conn.ib
        ib.pendingTickersEvent -= self._on_tickers
        ib.client.throttleStart -= self._throttle_on
        ib.client.throttleEnd -= self._throttle_off
        await self.conn.stop()

    def _throttle_on(self) -> None:
        self._throttling = True

    def _throttle_off(self) -> None:
        self._throttling = False

    async def _on_ready(self, first: bool) -> None:
        if first or not self._started:
            return  # start() subscribes after the first connect
        ib = self.conn.ib
        tracked_md = ib.wrapper.ticker2ReqId.get("mktData", {})
        tracked_depth = ib.wrapper.ticker2ReqId.get("mktDepth", {})
        for c in self._lines.values():  # same socket (1101, 2104): TWS dropped them, ib_async did not
            t = ib.ticker(c)
            if t is not None and t in tracked_md:
                ib.cancelMktData(c)
        for c in self._depth_lines.values():
            t = ib.ticker(c)
            if t is not None and t in tracked_depth:
                ib.cancelMktDepth(c, isSmartDepth=True)
        n = len(self._lines)
        self._lines.clear()
        self._fresh.clear()
        self._depth_lines.clear()
        self._sync_lines()
        self._step_depth(self.ctx.clock.ms(), keep=True)
        log.info("ibkr market: resubscribed %d lines (%d before)", len(self._lines), n)

    def _on_lost(self) -> None:
        log.warning("ibkr market: connection lost; quotes are stale until it is back")

    # ------------------------------------------------------------------ the tick
    async def advance(self, now: datetime) -> bool:
        self._now = now
        if not self._started or not self.conn.connected:
            return False
        today = now.astimezone(NY).date()
        self._kick_discovery(today)
        self._kick_watch(today)
        self._step_rotation()
        self._sync_lines()
        self._step_depth(to_ms(now))
        return any(u.quote_ms is not None for u in self._und.values())

    def regular_hours(self, now: datetime) -> bool:
        return self.ctx.calendar.is_open(now)

    def describe(self) -> str:
        s = self.ib_settings
        return f"IBKR {s.host}:{s.port} client {self.conn.client_id} (market data: {self.conn.market_data_name})"
