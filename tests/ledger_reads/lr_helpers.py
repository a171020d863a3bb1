"""Builders of the ledger-read tests: closed trades as the position manager publishes them
(an ``entry`` then a ``closed`` PositionEvent), written into a ledger with the real LedgerStore."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from core.bus.events import PositionEvent
from core.clock.calendar import NY
from core.ledger.store import LedgerStore

_SEQ = itertools.count(1)


def ms(d: date, h: int = 11, m: int = 0) -> int:
    """``d`` at ``h:m`` New York, epoch ms."""
    return int(datetime.combine(d, time(h, m), tzinfo=NY).astimezone(UTC).timestamp() * 1000)


def position(kind: str, pid: str, ts: int, strategy: str, **over: Any) -> PositionEvent:
    fields: dict[str, Any] = {
        "id": f"ev-{next(_SEQ):06d}", "ts": ts, "correlation_id": f"corr-{pid}", "kind": kind,
        "position_id": pid, "strategy": strategy, "symbol": "SPY", "expiry": "2026-12-18", "strike": 600.0,
        "right": "C", "direction": "bullish", "horizon": "swing", "qty": 2, "qty_open": 2, "price": 2.0,
        "entry_price": 2.0}
    fields.update(over)
    return PositionEvent(**fields)


def trade(strategy: str, closed: date, pnl: float, *, hour: int = 11, minute: int = 0,
          pid: str | None = None) -> list[PositionEvent]:
    """One position of 2 contracts opened at 10:00 and closed at ``hour:minute`` on ``closed``
    with a cumulative realized P&L (after commissions) of ``pnl``."""
    pid = pid or f"pos-{next(_SEQ):06d}"
    return [position("entry", pid, ms(closed, 10, 0), strategy),
            position("closed", pid, ms(closed, hour, minute), strategy, qty=2, qty_open=0, price=2.5,
                     realized_pnl=pnl, reason="target")]


def trades(strategy: str, days: Sequence[date], pnls: Iterable[float]) -> list[PositionEvent]:
    """A trade per P&L, spread over ``days`` in turn, a minute apart."""
    out: list[PositionEvent] = []
    for i, pnl in enumerate(pnls):
        out += trade(strategy, days[i % len(days)], pnl, hour=11, minute=i % 60)
    return out


def write(url: str, mode: str, events: Sequence[PositionEvent]) -> int:
    store = LedgerStore(url, mode).open()
    try:
        return store.write(events)
    finally:
        store.close()


def spread(wins: int, total: int, win: float = 100.0, loss: float = -100.0) -> list[float]:
    """``total`` P&Ls with ``wins`` winners spread evenly (no long losing streak), oldest first."""
    out, acc = [], 0.0
    for _ in range(total):
        acc += wins / total
        if acc >= 1.0 - 1e-9:
            acc -= 1.0
            out.append(win)
        else:
            out.append(loss)
    assert out.count(win) == wins, out
    return out
