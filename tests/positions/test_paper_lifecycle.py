"""End to end without a bus: paper broker fills <-> position exit plan, the way the wrapper will drive them."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.contract import OptionContract, Right
from core.domain.signal import Horizon, Side
from core.execution import (
    BrokerEventKind,
    OrderPurpose,
    OrderRequest,
    PaperBroker,
)
from core.positions import (
    CloseAll,
    Position,
    PositionEventKind,
    SellPartial,
    SessionInfo,
    apply_fill,
    exit_order,
    open_position,
    release_exit,
    step,
)

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 1, 13, 10, 0, tzinfo=NY)
C = OptionContract(symbol="QQQ", expiry=date(2026, 1, 13), strike=520, right=Right.PUT)


async def drive(quotes: list[tuple[float, float, float]], qty: int = 4):
    """quotes: (seconds after T0, bid, ask). Returns (position, position events, broker)."""
    b = PaperBroker()
    pos: Position | None = None
    published = []
    n_exit = 0
    await b.on_quote(C.key, 2.00, 2.10, 20, 20, T0)
    await b.place(OrderRequest(order_id="entry-1", correlation_id="sig-9", contract=C, side=Side.BUY, qty=qty,
                               purpose=OrderPurpose.ENTRY, created_ts=T0))
    for s, bid, ask in quotes:
        now = T0 + timedelta(seconds=s)
        for ev in await b.on_quote(C.key, bid, ask, 20, 20, now):
            if ev.kind == BrokerEventKind.FILL:
                if pos is None:
                    pos, pe = open_position(ev.fill, strategy="gamma_0dte", horizon=Horizon.ZERO_DTE)
                else:
                    pos, pe = apply_fill(pos, ev.fill)
                published += pe
            elif ev.kind == BrokerEventKind.CANCELLED and ev.order.request.purpose == OrderPurpose.EXIT:
                pos = release_exit(pos, ev.order.remaining)
        if pos is None or not pos.is_open:
            continue
        pos, actions, pe = step(pos, bid, now, SessionInfo.for_time(now))
        published += pe
        for a in actions:
            if isinstance(a, (SellPartial, CloseAll)):
                n_exit += 1
                await b.place(exit_order(pos, a, order_id=f"exit-{n_exit}", now=now))
    return pos, published, b


async def test_paper_fills_drive_the_exit_plan_to_a_profitable_close():
    path = [(5, 2.00, 2.05),  # entry fills at mid 2.05
            (60, 3.10, 3.20), (61, 3.10, 3.22),  # +51%: 1 off at the bid
            (120, 4.10, 4.20), (121, 4.10, 4.22),  # +100%: 2 off
            (180, 5.00, 5.10),  # new high: stop 3.75
            (240, 4.00, 4.10), (300, 3.70, 3.80), (301, 3.65, 3.75)]  # through the trail: MKT at the bid
    pos, events, b = await drive(path)
    assert [e.kind for e in events] == [
        PositionEventKind.ENTRY,
        PositionEventKind.STOP_MOVED, PositionEventKind.PARTIAL_EXIT,
        PositionEventKind.STOP_MOVED, PositionEventKind.PARTIAL_EXIT,
        PositionEventKind.STOP_MOVED,
        PositionEventKind.CLOSED,
    ]
    assert [(e.qty, e.price) for e in events if e.price is not None] == [
        (4, 2.05), (1, 3.10), (2, 4.10), (1, 3.65)]
    assert events[-1].reason == "trailing_stop" and events[-1].realized_pnl > 0
    # the position's books and the broker's books agree to the cent
    assert pos.realized_pnl == pytest.approx(b.snapshot().positions[C.key].realized_pnl)
    assert pos.realized_pnl == pytest.approx(
        (3.10 - 2.05) * 100 + (4.10 - 2.05) * 200 + (3.65 - 2.05) * 100 - 8 * 0.65)
    assert await b.positions() == [] and await b.open_orders() == []
    assert pos.qty_bought == pos.qty_sold == 4


async def test_hard_stop_and_flat_at_1555_through_the_paper_broker():
    pos, events, b = await drive([(5, 2.00, 2.05), (60, 1.02, 1.08), (61, 1.00, 1.06)])
    assert events[-1].kind == PositionEventKind.CLOSED and events[-1].reason == "hard_stop"
    assert events[-1].price == pytest.approx(1.00) and await b.positions() == []
    assert pos.stop == pytest.approx(1.03)  # 50% of 2.05, to the nearest tick

    flat = (datetime(2026, 1, 13, 15, 55, tzinfo=NY) - T0).total_seconds()
    _pos, events, b = await drive([(5, 2.00, 2.05), (flat - 60, 2.20, 2.30), (flat, 2.20, 2.30),
                                  (flat + 1, 2.18, 2.28)])
    assert events[-1].kind == PositionEventKind.CLOSED and events[-1].reason == "flat_eod"
    assert events[-1].price == pytest.approx(2.18) and await b.positions() == []
