"""Real bus events (the models of ``core.bus.events``) of every ledgered type, for the ledger tests.

``one_of_each(t0)`` gives one event per ledgered type with fixed, known values; ``trade_day(n, t0)``
gives the events of ``n`` whole trades (signal to close, with its posts, alerts, a control and a
report), about thirteen per trade, each with its own id and a time one second after the last.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

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
from core.domain.signal import Direction, Horizon, Quote, Signal
from core.ledger import schema

# the table each ledgered type is written to (besides ``events``), as the schema's docs name them
TABLE_OF = {"signal.new": schema.signals, "review.verdict": schema.verdicts, "approval.decision": schema.approvals,
            "order.update": schema.orders, "order.fill": schema.fills, "position.update": schema.position_events,
            "delivery": schema.deliveries, "report": schema.reports, "alert": schema.alerts,
            "control": schema.controls}
T0 = 1_795_185_600_000  # 2026-11-20 09:40 New York
EXPIRY = date(2026, 11, 20)


def signal(sid: str = "SIG1", ts_ms: int = T0, *, strike: float = 508.0, qty: int = 2) -> Signal:
    at = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return Signal(id=sid, ts=at, strategy="gamma_0dte", symbol="QQQ",
                  instrument=Instrument(expiry=EXPIRY, strike=strike, right=Right.PUT), qty=qty, limit=1.16,
                  quote=Quote(bid=1.14, ask=1.17, ts=at), stop=0.58, targets=[1.74, 2.32], confidence=55.2,
                  horizon=Horizon.ZERO_DTE, direction=Direction.BEARISH)


class _Ids:
    def __init__(self, prefix: str, t0: int) -> None:
        self.prefix, self.n, self.t = prefix, 0, t0

    def __call__(self) -> dict[str, object]:
        """id, ts (one second apart) for the next event."""
        self.n += 1
        self.t += 1000
        return {"id": f"{self.prefix}{self.n:05d}", "ts": self.t}


def _trade(k: int, ids: _Ids) -> list[Event]:
    corr = f"corr{k:03d}"
    sig = signal(f"SIG{k:03d}", ids.t, strike=500.0 + k)
    pos, ent, ex = f"POS{k:03d}", f"ent-{k:03d}", f"ex-{k:03d}"
    c = {"correlation_id": corr, "source": "test"}
    opt = {"symbol": "QQQ", "expiry": EXPIRY.isoformat(), "strike": 500.0 + k, "right": "P"}
    pnl = round((0.56 - 1.16) * 2 * 100 - 2.6 + k, 2)
    pos_common = {**opt, "position_id": pos, "strategy": "gamma_0dte", "direction": "bearish", "horizon": "0dte",
                  "entry_price": 1.16}
    return [
        SignalEvent(**ids(), **c, signal=sig),
        VerdictEvent(**ids(), **c, signal=sig, decision="caution", reasons=["spread wide", f"trade {k}"],
                     reviewed_by=["rules", "ai"], premium_at_risk=232.0, risk_pct=0.23),
        ApprovalEvent(**ids(), **c, signal=sig, decision="approved", qty=2, decided_by="admin:42", policy="manual"),
        OrderEvent(**ids(), **c, order_id=ent, purpose="entry", status="Submitted", side="BUY", qty=2, limit=1.16,
                   position_id=pos, **opt),
        FillEvent(**ids(), **c, order_id=ent, fill_id=f"{ent}:1", purpose="entry", side="BUY", qty=2, price=1.16,
                  commission=1.3, slippage=0.01, position_id=pos, strategy="gamma_0dte", **opt),
        PositionEvent(**ids(), **c, kind="entry", qty=2, qty_open=2, price=1.16, stop=0.58,
                      realized_pnl=-1.3, reason="entry", **pos_common),
        DeliveryEvent(**ids(), **c, channel="discord", tier="premium", event="entry", status="delivered",
                      message_id=f"m{k}", attempts=1),
        PositionEvent(**ids(), **c, kind="stop_moved", qty=0, qty_open=2, stop=0.9, realized_pnl=-1.3,
                      reason="trail", **pos_common),
        OrderEvent(**ids(), **c, order_id=ex, purpose="exit", status="Filled", side="SELL", qty=2,
                   filled_qty=2, avg_price=0.56, position_id=pos, **opt),
        FillEvent(**ids(), **c, order_id=ex, fill_id=f"{ex}:1", purpose="exit", side="SELL", qty=2, price=0.56,
                  commission=1.3 - k / 100, slippage=-0.01, position_id=pos, strategy="gamma_0dte", **opt),
        PositionEvent(**ids(), **c, kind="closed", qty=2, qty_open=0, price=0.56, realized_pnl=pnl,
                      reason="stop", **pos_common),
        AlertEvent(**ids(), **c, code="FEED_STALE", severity="WARNING", state="raised", subject="quotes:QQQ",
                   message=f"no quote for {k} s"),
        ControlEvent(**ids(), **c, action="set_policy", by="admin:42", reason=f"trade {k}",
                     args={"policy": "auto", "k": k}),
        ReportEvent(**ids(), **c, kind="intraday", status="published", path=f"/r/{k}.html", by="auto",
                    report_id=f"rep{k}", paths={"premium": f"/r/{k}-p.html", "free": f"/r/{k}-f.html"}),
    ]


def trade_day(n: int, t0: int = T0, prefix: str = "EV") -> list[Event]:
    """The events of ``n`` trades in publishing order (ids unique, times increasing)."""
    ids = _Ids(prefix, t0)
    return [ev for k in range(n) for ev in _trade(k, ids)]


def one_of_each(t0: int = T0) -> list[Event]:
    """One event of every ledgered type: those of trade 0 minus its repeats (the second order,
    fill and position event)."""
    seen: set[type] = set()
    out = []
    for ev in trade_day(1, t0, prefix="ONE"):
        if type(ev) not in seen:
            seen.add(type(ev))
            out.append(ev)
    return out
