"""The built-in simulator as a :class:`~core.market.source.MarketSource`.

One :class:`~core.market.sim.MarketSimulator` per session day (built on the first tick of a
day: the clock's day, or the most recent session when that is not one), seeded by
``ctx.extras["seed"]`` or ``demo.seed``, with the configured feed gap injected. A test may
hand its own simulator in ``ctx.extras["simulator"]``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from core.clock.calendar import NY
from core.market.chain import OptionChain, displayed_size
from core.market.reference import Reference, simulated_reference
from core.market.sim import MarketSimulator
from core.market.source import (
    ClosingImbalance,
    DepthBook,
    FlowAlert,
    MarketSource,
    NetPremiumTick,
    OptionQuote,
    TradePrint,
    UnderlyingQuote,
)

if TYPE_CHECKING:
    from core.runtime.service import Context


class SimulatorSource(MarketSource):
    feed = "sim"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.symbols = list(ctx.settings.market.symbols)
        self.sim: MarketSimulator | None = ctx.extras.get("simulator")
        self._chains: dict[str, OptionChain] = {}  # this tick's chains (chain + option quotes share one)
        self._now_ms = 0

    def _ensure_sim(self, now: datetime) -> MarketSimulator:
        day = now.astimezone(NY).date()
        if self.sim is not None and self.sim.trade_date == day:
            return self.sim
        cal = self.ctx.calendar
        if not cal.is_session(day):
            day = cal.most_recent_session(day)
        session = cal.session(day)
        seed = int(self.ctx.extras.get("seed", self.settings.demo.seed))
        start = session.at(self.settings.demo.start)
        end = max(session.close + timedelta(minutes=15), session.at(self.settings.demo.end))
        self.sim = MarketSimulator(seed=seed, session_open=start, session_close=end, symbols=self.symbols)
        d = self.settings.demo
        if d.feed_gap_symbol and d.feed_gap_minutes and d.feed_gap_symbol in self.symbols:
            gs = session.at(d.feed_gap_start)
            self.sim.inject_gap(d.feed_gap_symbol, gs, gs + timedelta(minutes=d.feed_gap_minutes))
        return self.sim

    async def start(self, now: datetime) -> None:
        self._ensure_sim(now)

    async def advance(self, now: datetime) -> bool:
        sim = self._ensure_sim(now)
        if now < sim.session_open or now > sim.session_close:
            return False
        sim.advance(now)
        self._chains.clear()
        self._now_ms = int(now.timestamp() * 1000)
        return True

    def regular_hours(self, now: datetime) -> bool:
        sim = self._ensure_sim(now)
        return sim.rth_open <= now.astimezone(NY) <= sim.rth_close

    def _sim(self) -> MarketSimulator:
        assert self.sim is not None, "advance() first"
        return self.sim

    def quote(self, symbol: str) -> UnderlyingQuote | None:
        return self._sim().quote(symbol)

    def depth(self, symbol: str, levels: int) -> DepthBook | None:
        return self._sim().depth(symbol, levels)

    def chain(self, symbol: str) -> OptionChain | None:
        got = self._chains.get(symbol)
        if got is None:
            got = self._chains[symbol] = self._sim().chain(symbol)
        return got

    def option_quotes(self, symbol: str, contract_keys: set[str]) -> list[OptionQuote]:
        chain = self.chain(symbol)
        if chain is None:
            return []
        exp = chain.expiry.astype("datetime64[D]").astype(str)
        out: list[OptionQuote] = []
        for key in sorted(contract_keys):
            try:
                _sym, ymd, right, strike, _mult = key.split(":")
                iso = f"{ymd[:4]}-{ymd[4:6]}-{ymd[6:]}"
                k = float(strike)
            except ValueError:
                continue
            idx = np.nonzero((exp == iso) & (chain.is_call == (right == "C")) & np.isclose(chain.strike, k))[0]
            if idx.size == 0:
                continue
            i = int(idx[0])
            size = float(displayed_size(chain.open_interest[i]))
            out.append(OptionQuote(contract_key=key, symbol=chain.symbol, expiry=iso, strike=k, right=right,
                                   bid=float(chain.bid[i]), ask=float(chain.ask[i]), bid_size=size, ask_size=size,
                                   underlying=chain.spot, ts_ms=self._now_ms))
        return out

    def prints(self, symbol: str) -> list[TradePrint]:
        return self._sim().prints(symbol)

    def option_flow(self, symbol: str) -> list[FlowAlert]:
        return self._sim().option_flow(symbol)

    def net_premium(self, symbol: str) -> list[NetPremiumTick]:
        return self._sim().net_premium(symbol)

    def closing_imbalance(self, symbol: str) -> ClosingImbalance | None:
        return self._sim().closing_imbalance(symbol)

    async def reference(self, symbol: str) -> Reference | None:
        sim = self._sim()
        spec = sim.config.spec(symbol)
        return simulated_reference(sim.seed, symbol, sim.trade_date, spec.iv_atm, spec.kind == "stock")

    def describe(self) -> str:
        return f"built-in simulator (seed {self.ctx.extras.get('seed', self.settings.demo.seed)})"
