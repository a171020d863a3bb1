"""A hand-built trading day for the ledger command tests: every ledgered event type, with figures
worked out by hand (see ``EXPECTED``) so the tests compare against numbers, not against the
queries under test.

Day ``DAY`` = Friday 2026-11-20 (New York). In the span DAY..DAY:
- trade A, gamma_0dte SPY 590 C: 2 bought at 1.20 (commission 1.30), 2 sold at 1.80 (1.30):
  realized (1.80 - 1.20) x 2 x 100 - 2.60 = +117.40; return 117.40 / 240 = 48.9166.. %
- trade B, directional_swing QQQ 500 P: 1 bought at 2.00 (0.65), 1 sold at 1.20 (0.65):
  realized (1.20 - 2.00) x 100 - 1.30 = -81.30
- trade C, gamma_0dte IWM 230 C: bought 1 at 0.50 on DAY, still open (not a trade)
- signals 4 (A, B, C, R); R rejected by the overseer; approvals: A, B, C approved, one rejected
- orders: 5 updates of 4 distinct order ids; fills 5 (A in/out, B in/out, C in); commissions 4.55
- one delivery, report, alert and control; an alert at 00:00:00.000 New York of DAY (inside)
  and a control at 23:59:59.999 of the day before (outside)
Outside the span, Monday 2026-11-23: trade A2 (gamma_0dte, +50.00) closes, one more signal.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.bus.events import (
    AlertEvent,
    ApprovalEvent,
    ControlEvent,
    DeliveryEvent,
    Event,
    FillEvent,
    OrderEvent,
    PositionEvent,
    ReportEvent,
    SignalEvent,
    VerdictEvent,
)
from core.domain.contract import Instrument, Right
from core.domain.signal import Quote, Signal

NY = ZoneInfo("America/New_York")
DAY = date(2026, 11, 20)
NEXT = date(2026, 11, 23)

EXPECTED = {  # stats of DAY..DAY, by hand
    "signals": 4, "approved": 3, "rejected": 2, "orders": 4, "fills": 5, "commissions": 4.55,
    "trades": 2, "wins": 1, "losses": 1, "flat": 0, "realized_pnl": 36.1, "win_rate_pct": 50.0,
    "avg_win": 117.4, "avg_loss": -81.3,
}
EXPECTED_BY_STRATEGY = {"gamma_0dte": (1, 1, 0, 117.4), "directional_swing": (1, 0, 1, -81.3)}


def ms(d: date, hh: int, mm: int, ss: int = 0, milli: int = 0) -> int:
    at = datetime.combine(d, time(hh, mm, ss, milli * 1000), tzinfo=NY)
    return int(at.astimezone(UTC).timestamp() * 1000)


class Book:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._n = 0
        self.before: Event | None = None  # 1 ms before DAY (outside the span)
        self.midnight: Event | None = None  # 00:00:00.000 of DAY (inside)
        self.last: Event | None = None  # 23:59:59.999 of DAY (inside)

    def _base(self, ts: int, corr: str) -> dict[str, Any]:
        self._n += 1
        return {"id": f"ev{self._n:04d}", "ts": ts, "correlation_id": corr, "source": "test"}

    def add(self, cls: type[Event], ts: int, corr: str, **fields: Any) -> Event:
        ev = cls(**self._base(ts, corr), **fields)
        self.events.append(ev)
        return ev

    def signal(self, tid: str, ts: int, strategy: str, symbol: str, strike: float, right: str, qty: int,
               limit: float) -> Signal:
        at = datetime.fromtimestamp(ts / 1000, tz=UTC)
        sig = Signal(id=f"sig-{tid}", ts=at, strategy=strategy, symbol=symbol,
                     instrument=Instrument(expiry=DAY + timedelta(days=14), strike=strike, right=Right(right)),
                     qty=qty, limit=limit, quote=Quote(bid=limit - 0.05, ask=limit + 0.05, ts=at),
                     stop=round(limit * 0.6, 2), confidence=64.0)
        self.add(SignalEvent, ts, tid, signal=sig)
        return sig

    def trade(self, tid: str, d: date, strategy: str, symbol: str, strike: float, right: str, qty: int,
              entry: float, exit_: float | None, comm: float) -> None:
        t0 = ms(d, 10, 0)
        sig = self.signal(tid, t0, strategy, symbol, strike, right, qty, entry)
        self.add(VerdictEvent, t0 + 1000, tid, signal=sig, decision="approve", reasons=["ok"],
                 reviewed_by=["rules", "model"], premium_at_risk=entry * qty * 100,
                 risk_pct=entry * qty / 7)  # a double with many digits: money and ratios "as stored"
        self.add(ApprovalEvent, t0 + 2000, tid, signal=sig, decision="approved", qty=qty, decided_by="admin:42",
                 policy="manual")
        opt = {"symbol": symbol, "expiry": (DAY + timedelta(days=14)).isoformat(), "strike": strike, "right": right}
        pid = f"pos-{tid}"
        self.add(OrderEvent, t0 + 3000, tid, order_id=f"o-{tid}-in", purpose="entry", status="working", **opt,
                 side="BUY", qty=qty, limit=entry)
        self.add(FillEvent, t0 + 4000, tid, order_id=f"o-{tid}-in", fill_id=f"f-{tid}-in", purpose="entry", **opt,
                 side="BUY", qty=qty, price=entry, commission=comm, slippage=0.0125, position_id=pid,
                 strategy=strategy)
        pos = {"position_id": pid, "strategy": strategy, **opt, "direction": "bullish", "horizon": "0dte"}
        self.add(PositionEvent, t0 + 5000, tid, kind="entry", qty=qty, qty_open=qty, price=entry,
                 entry_price=entry, stop=round(entry * 0.6, 2), realized_pnl=-comm, **pos)
        if exit_ is None:
            return
        t1 = ms(d, 14, 30)
        self.add(FillEvent, t1, tid, order_id=f"o-{tid}-out", fill_id=f"f-{tid}-out", purpose="exit", **opt,
                 side="SELL", qty=qty, price=exit_, commission=comm, position_id=pid, strategy=strategy)
        realized = round((exit_ - entry) * qty * 100 - 2 * comm, 2)
        self.add(PositionEvent, t1 + 1000, tid, kind="closed", qty=qty, qty_open=0, price=exit_,
                 entry_price=entry, realized_pnl=realized, reason="target", **pos)


def build() -> Book:
    b = Book()
    b.before = b.add(ControlEvent, ms(DAY, 0, 0) - 1, "ctl-before", action="halt", by="cli:ops", reason="late",
          args={"note": "the day before"})
    b.midnight = b.add(AlertEvent, ms(DAY, 0, 0), "alert-midnight", code="FEED_STALE", severity="WARNING", state="raised",
          subject="quotes:QQQ", message="quotes feed for QQQ is 45s old")
    b.trade("A", DAY, "gamma_0dte", "SPY", 590.0, "C", 2, 1.20, 1.80, 1.30)
    b.trade("B", DAY, "directional_swing", "QQQ", 500.0, "P", 1, 2.00, 1.20, 0.65)
    b.trade("C", DAY, "gamma_0dte", "IWM", 230.0, "C", 1, 0.50, None, 0.65)
    sig = b.signal("R", ms(DAY, 11, 0), "gamma_0dte", "SPY", 595.0, "C", 1, 0.80)
    b.add(VerdictEvent, ms(DAY, 11, 0, 1), "R", signal=sig, decision="reject", reasons=["spread too wide"])
    b.add(ApprovalEvent, ms(DAY, 11, 0, 2), "R", signal=sig, decision="rejected", qty=1, decided_by="admin:42",
          policy="manual")
    b.add(OrderEvent, ms(DAY, 14, 30, 0, 500), "A", order_id="o-A-in", purpose="entry", status="filled",
          symbol="SPY", expiry=(DAY + timedelta(days=14)).isoformat(), strike=590.0, right="C", side="BUY", qty=2,
          limit=1.20, filled_qty=2, avg_price=1.20, position_id="pos-A")
    b.add(OrderEvent, ms(DAY, 15, 0), "X", order_id="o-X", purpose="exit", status="refused", symbol="SPY",
          expiry="", strike=0, right="", side="SELL", qty=1, reason="halted")
    b.add(DeliveryEvent, ms(DAY, 10, 0, 30), "A", channel="discord", tier="premium", event="signal.new",
          status="delivered", message_id="m-1", attempts=1)
    b.add(ReportEvent, ms(DAY, 16, 5), "rep", kind="close", status="published", by="admin:42", report_id="r-1",
          path="reports/close.html", paths={"premium": "reports/close-premium.html", "free": "reports/close-free.html"})
    b.last = b.add(ControlEvent, ms(DAY, 23, 59, 59, 999), "ctl-last", action="set_policy", by="admin:42",
          args={"policy": "auto", "limits": [1, 2.5]})
    b.trade("A2", NEXT, "gamma_0dte", "SPY", 591.0, "C", 1, 1.00, 1.50, 0.0)  # +50.00, Monday
    b.signal("Z", ms(NEXT, 12, 0), "gamma_0dte", "SPY", 592.0, "C", 1, 1.10)
    return b
