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
from core.market.sim.options import ChainLayout
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
        self._chains: dict[str, OptionChain] = {}  # this tick's chains (priced once per tick)
        self._now_ms = 0
        self._rows_sim: MarketSimulator | None = None  # the session _rows belongs to
        self._rows: dict[tuple[str, str], int | None] = {}  # (symbol, contract key) -> layout row

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
        """Prices only the watched contracts (``MarketSimulator.row_quotes``), not the whole
        chain: the same numbers as the chain's rows, which the paper fills and marks rely on."""
        sim = self._sim()
        found = [(key, row) for key in sorted(contract_keys) if (row := self._row_of(sim, symbol, key)) is not None]
        if not found:
            return []
        spot, live, pr = sim.row_quotes(symbol, np.array([row for _, row in found], dtype=np.int64))
        lay = sim.layout(symbol)
        priced = {r: j for j, r in enumerate(live.tolist())}
        bids, asks = pr.bid.tolist(), pr.ask.tolist()
        sizes = displayed_size(lay.open_interest[live]).tolist()
        out: list[OptionQuote] = []
        for key, row in found:
            j = priced.get(row)
            if j is None:  # its expiry has closed: no longer in the chain
                continue
            iso, right, k = _parse(key)  # type: ignore[misc]  # parsed before (_row_of)
            out.append(OptionQuote(contract_key=key, symbol=symbol, expiry=iso, strike=k, right=right,
                                   bid=bids[j], ask=asks[j], bid_size=sizes[j], ask_size=sizes[j],
                                   underlying=spot, ts_ms=self._now_ms))
        return out

    def _row_of(self, sim: MarketSimulator, symbol: str, key: str) -> int | None:
        """The layout row a contract key names (the chain's first match: expiry, right, strike
        within ``np.isclose``), None when the chain has no such contract; cached per session."""
        if self._rows_sim is not sim:
            self._rows_sim, self._rows = sim, {}
        memo = (symbol, key)
        if memo not in self._rows:
            self._rows[memo] = _find_row(sim.layout(symbol), key)
        return self._rows[memo]

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


def _parse(key: str) -> tuple[str, str, float] | None:
    """(ISO expiry, right, strike) of ``SYMBOL:YYYYMMDD:R:STRIKE:MULT``; None when malformed."""
    try:
        _sym, ymd, right, strike, _mult = key.split(":")
        return f"{ymd[:4]}-{ymd[4:6]}-{ymd[6:]}", right, float(strike)
    except ValueError:
        return None


def _find_row(lay: ChainLayout, key: str) -> int | None:
    parsed = _parse(key)
    if parsed is None:
        return None
    iso, right, k = parsed
    exp = lay.expiry.astype("datetime64[D]").astype(str)
    idx = np.nonzero((exp == iso) & (lay.is_call == (right == "C")) & np.isclose(lay.strike, k))[0]
    return int(idx[0]) if idx.size else None
