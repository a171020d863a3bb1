"""A realistic small trading day on the bus (2026-11-20, a Friday), built with ``bus.make`` and
published on the SimClock, plus the account / positions state hashes a position manager keeps.

Numbers are chosen to be easy to spot in redaction tests (premium-only): sizes 7, 11, 13, 9;
account value 123,456; realized P&L 460.90 / -729.30 / 393.30 (day 124.90: the open trade's entry
commission counts when it closes, core.pnl); strikes 592, 498, 238, 590 (the 1DTE IWM contract expires 2026-11-23).

Usage::

    day = TradingDay(bus)
    await day.run_until(time(13, 0))     # everything up to 13:00 New York is on the bus
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from core.bus.bus import Bus
from core.bus.events import (
    AlertEvent,
    AnalyticsEvent,
    ApprovalEvent,
    FillEvent,
    FlowEvent,
    PositionEvent,
    QuoteEvent,
    SignalEvent,
    VerdictEvent,
)
from core.clock.calendar import NY
from core.clock.clock import SimClock
from core.domain.contract import Instrument, Right
from core.domain.signal import Direction, Horizon, Quote, Signal

DAY = date(2026, 11, 20)
PREV = date(2026, 11, 19)
START = datetime(2026, 11, 19, 15, 50, tzinfo=NY).astimezone(UTC)  # the SimClock's first instant
BASE = {"SPY": 588.40, "QQQ": 503.10, "IWM": 236.20}
ACCOUNT_VALUE = 123456.0
COMMISSION = 0.65

# premium-only values the redaction tests look for
SIZES = (7, 11, 13, 9)
STRIKES = (592.0, 498.0, 238.0, 590.0)
FILL_PRICES = ("2.35", "3.15", "2.85", "1.85", "1.20", "1.45", "0.95", "1.40")
PNL_STRINGS = ("460.90", "729.30", "393.30", "116.45", "123,456", "123456", "1,885", "1885")

Action = Callable[[], Awaitable[None]]


def at(t: time, day: date = DAY) -> datetime:
    return datetime.combine(day, t, tzinfo=NY)


def price(sym: str, minute: int) -> float:
    """Deterministic path: minute 0 = 08:00 NY on DAY."""
    b = BASE[sym] * (1.003 if sym != "QQQ" else 0.998)
    drift = {"SPY": 0.00002, "QQQ": -0.000015, "IWM": 0.00001}[sym]
    return round(b * (1 + 0.003 * math.sin(minute / 17.0) + drift * minute), 2)


class TradingDay:
    def __init__(self, bus: Bus, symbols: tuple[str, ...] = ("SPY", "QQQ", "IWM")) -> None:
        self.bus = bus
        self.clock: SimClock = bus.clock  # type: ignore[assignment]
        self.symbols = symbols
        self.actions: list[tuple[datetime, int, Action]] = []
        self._seq = 0
        self._realized: dict[str, float] = {}
        self._build()

    # ---------------------------------------------------------------- plumbing
    def _add(self, when: datetime, fn: Action) -> None:
        self.actions.append((when.astimezone(UTC), self._seq, fn))
        self._seq += 1

    async def run_until(self, t: time | datetime) -> None:
        """Publish everything scheduled up to ``t`` (NY time on DAY), moving the clock along."""
        until = at(t) if isinstance(t, time) else t
        self.actions.sort(key=lambda a: (a[0], a[1]))
        while self.actions and self.actions[0][0] <= until:
            when, _seq, fn = self.actions.pop(0)
            if when > self.clock.now():
                self.clock.set(when)
            await fn()
        if until.astimezone(UTC) > self.clock.now():
            self.clock.set(until)

    async def pub(self, cls: Any, **fields: Any) -> Any:
        ev = self.bus.make(cls, **fields)
        await self.bus.publish(ev)
        return ev

    # ---------------------------------------------------------------- the day
    def _build(self) -> None:
        # previous session close: quotes and the last analytics of Nov 19
        for i, m in enumerate((57, 58, 59)):
            for sym in self.symbols:
                px = round(BASE[sym] + (i - 2) * 0.05, 2)
                self._add(at(time(15, m), PREV), self._quote(sym, px))
        for sym in self.symbols:
            self._add(at(time(15, 59, 30), PREV), self._analytics(sym, BASE[sym], prev=True))
        # today: quotes every 2 minutes 08:00-16:08, analytics every 30 min in RTH, flow every 10 min
        for minute in range(0, 8 * 60 + 10, 2):
            when = at(time(8, 0)) + timedelta(minutes=minute)
            for sym in self.symbols:
                self._add(when, self._quote(sym, price(sym, minute)))
        for minute in range(95, 8 * 60 + 1, 30):  # 09:35 ... 15:35
            when = at(time(8, 0)) + timedelta(minutes=minute)
            for sym in self.symbols:
                self._add(when, self._analytics(sym, price(sym, minute)))
        for minute in range(90, 8 * 60 + 1, 10):
            when = at(time(8, 0)) + timedelta(minutes=minute)
            for sym in self.symbols:
                self._add(when, self._flow(sym, minute))
        self._add(at(time(8, 0)), self._account(realized=0.0, unrealized=0.0, premium_open=0.0))

        # T1: gamma_0dte SPY 592C x7 — scale-out, then closed: +460.90
        self._trade(tid="t1", strategy="gamma_0dte", sym="SPY", expiry="2026-11-20", strike=592.0, right="C",
                    qty=7, entry=(time(10, 5), 2.35),
                    exits=[(time(10, 50), 4, 3.15, "target 1"), (time(11, 20), 3, 2.85, "trailing stop")],
                    horizon="0dte")
        # T2: gamma_0dte QQQ 498P x11 — stopped out: -729.30
        self._trade(tid="t2", strategy="gamma_0dte", sym="QQQ", expiry="2026-11-20", strike=498.0, right="P",
                    qty=11, entry=(time(11, 40), 1.85), exits=[(time(12, 30), 11, 1.20, "stop")], horizon="0dte")
        # a rejected idea and an expired card
        self._idea(tid="r1", strategy="gamma_0dte", sym="QQQ", strike=500.0, right="C", qty=5, limit=2.05,
                   when=time(12, 5), verdict="reject", decision=None)
        self._idea(tid="e1", strategy="directional_swing", sym="IWM", strike=240.0, right="C", qty=4, limit=3.3,
                   when=time(12, 40), verdict="caution", decision="expired")
        # T3: overnight_1dte IWM 238C x13 — still open at the close
        self._trade(tid="t3", strategy="overnight_1dte", sym="IWM", expiry="2026-11-23", strike=238.0, right="C",
                    qty=13, entry=(time(15, 5), 1.45), exits=[], horizon="1dte")
        # T4: moc_imbalance SPY 590P x9 — closed: +393.30
        self._trade(tid="t4", strategy="moc_imbalance", sym="SPY", expiry="2026-11-20", strike=590.0, right="P",
                    qty=9, entry=(time(15, 32), 0.95), exits=[(time(15, 55), 9, 1.40, "target")], horizon="0dte")
        # alerts
        self._add(at(time(11, 0)), self._alert("feed_stale", "WARNING", "raised", "QQQ",
                                                "QQQ quotes stale for 45 s"))
        self._add(at(time(11, 3)), self._alert("feed_stale", "WARNING", "cleared", "QQQ", "QQQ quotes fresh again"))
        self._add(at(time(12, 31)), self._alert("slippage_spike", "INFO", "raised", "gamma_0dte",
                                                "entry slippage 16% of spread over the last 5 fills"))

    # ---------------------------------------------------------------- event builders
    def _quote(self, sym: str, px: float) -> Action:
        async def go() -> None:
            await self.pub(QuoteEvent, correlation_id=f"md:{sym}", symbol=sym, bid=round(px - 0.01, 2),
                           ask=round(px + 0.01, 2), last=px, quote_ts=self.clock.ms(), bid_size=300, ask_size=280,
                           depth_bid=[(round(px - 0.01, 2), 300.0)], depth_ask=[(round(px + 0.01, 2), 280.0)])
        return go

    def _analytics(self, sym: str, spot: float, prev: bool = False) -> Action:
        step = 1.0
        center = round(spot)
        strikes = [center + step * k for k in range(-25, 26)]
        walls = {"SPY": (595.0, 580.0, 586.5, 590.0), "QQQ": (510.0, 495.0, 501.25, 503.0),
                 "IWM": (240.0, 232.0, 235.75, 236.0)}[sym]
        if prev:
            walls = (walls[0] - 1, walls[1] - 1, walls[2] - 0.5, walls[3])

        async def go() -> None:
            gex = {f"{k:g}": round(2.0e8 * math.cos((k - center) / 6.0) - 1.5e7 * (center - k), 2) for k in strikes}
            await self.pub(AnalyticsEvent, correlation_id=f"an:{sym}", snapshot_id=self.bus.new_id(), symbol=sym,
                           spot=spot, asof=self.clock.ms(), gex_total=1.32e9, dex_total=-4.1e8, call_wall=walls[0],
                           put_wall=walls[1], zero_gamma=walls[2], max_gamma_strike=float(center), max_pain=walls[3],
                           obi_l1=0.12, obi_l5=-0.04, vpin=0.41, liquidity_grade="A", contracts_used=400,
                           gex_by_strike=gex)
        return go

    def _flow(self, sym: str, minute: int) -> Action:
        async def go() -> None:
            await self.pub(FlowEvent, correlation_id=f"md:{sym}", symbol=sym, buy_volume=12000 + 10 * minute,
                           sell_volume=11000, sweeps=1, blocks=int(minute % 3 == 0), net_call_premium=250000.0,
                           net_put_premium=180000.0 if sym != "QQQ" else 420000.0, dark_buy_volume=900,
                           dark_sell_volume=700, alerts=[{"contract": f"{sym} C", "bullish": sym != "QQQ"}])
        return go

    def _alert(self, code: str, severity: str, state: str, subject: str, message: str) -> Action:
        async def go() -> None:
            await self.pub(AlertEvent, code=code, severity=severity, state=state, subject=subject, message=message)
        return go

    def _account(self, realized: float, unrealized: float, premium_open: float) -> Action:
        async def go() -> None:
            await self.bus.redis.hset(self.bus.keys.hash("account"), mapping={
                "account_value": str(ACCOUNT_VALUE), "day": DAY.isoformat(), "realized_today": f"{realized:.2f}",
                "unrealized": f"{unrealized:.2f}", "peak_equity": "124000.00", "premium_open": f"{premium_open:.2f}"})
        return go

    def _signal(self, tid: str, strategy: str, sym: str, expiry: str, strike: float, right: str, qty: int,
                limit: float, horizon: str) -> Signal:
        ts = self.clock.now()
        return Signal(id=f"sig-{tid}", ts=ts, strategy=strategy, symbol=sym,
                      instrument=Instrument(expiry=date.fromisoformat(expiry), strike=strike, right=Right(right)),
                      qty=qty, limit=limit, quote=Quote(bid=round(limit - 0.05, 2), ask=round(limit + 0.05, 2), ts=ts),
                      stop=round(limit * 0.7, 2), targets=[round(limit * 1.35, 2), round(limit * 1.8, 2)],
                      confidence=68.0, triggers=["gamma flip reclaimed"], horizon=Horizon(horizon),
                      direction=Direction.BULLISH if right == "C" else Direction.BEARISH, spot=BASE[sym])

    def _idea(self, tid: str, strategy: str, sym: str, strike: float, right: str, qty: int, limit: float,
              when: time, verdict: str, decision: str | None) -> None:
        async def go() -> None:
            sig = self._signal(tid, strategy, sym, "2026-11-20", strike, right, qty, limit, "0dte")
            await self.pub(SignalEvent, correlation_id=tid, signal=sig)
            await self.pub(VerdictEvent, correlation_id=tid, signal=sig, decision=verdict,
                           reasons=["spread too wide"] if verdict == "reject" else [])
            if decision:
                await self.pub(ApprovalEvent, correlation_id=tid, signal=sig, decision="pending", qty=qty,
                               decided_by="", policy="manual")
                await self.pub(ApprovalEvent, correlation_id=tid, signal=sig, decision=decision, qty=qty,
                               decided_by="timeout", policy="manual")
        self._add(at(when), go)

    def _trade(self, tid: str, strategy: str, sym: str, expiry: str, strike: float, right: str, qty: int,
               entry: tuple[time, float], exits: list[tuple[time, int, float, str]], horizon: str) -> None:
        direction = "bullish" if right == "C" else "bearish"
        pid = f"pos-{tid}"
        common = {"position_id": pid, "strategy": strategy, "symbol": sym, "expiry": expiry, "strike": strike,
                  "right": right, "direction": direction, "horizon": horizon}
        t_entry, p_entry = entry

        async def open_() -> None:
            sig = self._signal(tid, strategy, sym, expiry, strike, right, qty, p_entry, horizon)
            await self.pub(SignalEvent, correlation_id=tid, signal=sig)
            await self.pub(VerdictEvent, correlation_id=tid, signal=sig, decision="approve")
            await self.pub(ApprovalEvent, correlation_id=tid, signal=sig, decision="approved", qty=qty,
                           decided_by="policy:auto", policy="auto")
            comm = round(qty * COMMISSION, 2)
            await self.pub(FillEvent, correlation_id=tid, order_id=f"ord-{tid}-in", fill_id=f"f-{tid}-in",
                           purpose="entry", symbol=sym, expiry=expiry, strike=strike, right=right, side="BUY", qty=qty,
                           price=p_entry, commission=comm, slippage=0.01, position_id=pid, strategy=strategy)
            self._realized[pid] = -comm
            await self.pub(PositionEvent, correlation_id=tid, kind="entry", qty=qty, qty_open=qty, price=p_entry,
                           entry_price=p_entry, stop=round(p_entry * 0.7, 2), targets=[round(p_entry * 1.35, 2)],
                           realized_pnl=-comm, **common)
            await self.bus.redis.hset(self.bus.keys.hash("positions"), pid, json.dumps({
                "position_id": pid, "symbol": sym, "strategy": strategy, "right": right, "qty_open": qty,
                "avg_entry": p_entry, "multiplier": 100, "expiry": expiry, "strike": strike,
                "stop": round(p_entry * 0.7, 2), "last_mark": round(p_entry * 1.06, 2)}))
            await self._refresh_account()

        self._add(at(t_entry), open_)
        remaining = qty
        for t_exit, q, px, reason in exits:
            remaining -= q
            left = remaining

            async def close_(q: int = q, px: float = px, reason: str = reason, left: int = left) -> None:
                comm = round(q * COMMISSION, 2)
                await self.pub(FillEvent, correlation_id=tid, order_id=f"ord-{tid}-out{left}",
                               fill_id=f"f-{tid}-out{left}", purpose="exit", symbol=sym, expiry=expiry, strike=strike,
                               right=right, side="SELL", qty=q, price=px, commission=comm, position_id=pid,
                               strategy=strategy)
                self._realized[pid] = round(self._realized[pid] + (px - p_entry) * q * 100 - comm, 2)
                await self.pub(PositionEvent, correlation_id=tid, kind="closed" if left == 0 else "partial_exit",
                               qty=q, qty_open=left, price=px, entry_price=p_entry, realized_pnl=self._realized[pid],
                               reason=reason, **common)
                if left == 0:
                    await self.bus.redis.hdel(self.bus.keys.hash("positions"), pid)
                else:
                    raw = json.loads(await self.bus.redis.hget(self.bus.keys.hash("positions"), pid))
                    raw["qty_open"] = left
                    await self.bus.redis.hset(self.bus.keys.hash("positions"), pid, json.dumps(raw))
                await self._refresh_account()

            self._add(at(t_exit), close_)

    async def _refresh_account(self) -> None:
        raw = await self.bus.redis.hgetall(self.bus.keys.hash("positions"))
        premium = sum(json.loads(v)["qty_open"] * json.loads(v)["avg_entry"] * 100 for v in raw.values())
        unreal = sum(json.loads(v)["qty_open"] * (json.loads(v)["last_mark"] - json.loads(v)["avg_entry"]) * 100
                     for v in raw.values())
        # realized of positions closed or scaled out (entry commissions included)
        await self._account(round(sum(self._realized.values()), 2), round(unreal, 2), round(premium, 2))()


# ---------------------------------------------------------------- helpers for the tests
SCHEDULE = {"premarket": time(8, 30), "intraday": time(13, 0), "close": time(16, 10)}


async def reports_stream(bus: Bus) -> list[Any]:
    from core.bus.events import ReportEvent, decode

    rows = await bus.redis.xrange(bus.keys.stream(ReportEvent.STREAM))
    return [decode(f) for _id, f in rows]


async def build_scheduled_day(day: TradingDay, svc: Any) -> dict[str, Any]:
    """Publish the day and let the service build each report at its scheduled instant."""
    for kind, t in SCHEDULE.items():
        await day.run_until(t)
        due = await svc.next_due(day.clock.now())
        assert due == at(t), (kind, due)
        await svc.on_timer(day.clock.now())
    return {e.kind: e for e in await reports_stream(day.bus)}
