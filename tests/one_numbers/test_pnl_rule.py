"""core.pnl, the one P&L rule: realized at close after every commission, on the New York day of
the close; return on the whole position's entry cost; open positions' booked P&L stays out of
the day until they close."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from core import pnl


def ms(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:  # a UTC instant
    return int(datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp() * 1000)


def ev(kind: str, pid: str, ts: int, qty: int, realized: float, price: float | None = None) -> dict:
    return {"kind": kind, "position_id": pid, "ts": ts, "qty": qty, "realized_pnl": realized, "entry_price": 0.86,
            "price": price, "strategy": "s", "symbol": "SPY", "expiry": "2026-12-03", "strike": 590.0, "right": "C",
            "correlation_id": f"c-{pid}"}


def test_the_demo_spy_590c() -> None:
    # bought 2 @ 0.86 (1.30), sold 1 @ 1.29 (0.65) and 1 @ 1.07 (0.65): realized +61.40 on $172 = +35.70 %
    events = [ev("entry", "a", ms(2026, 12, 3, 15, 1), 2, -1.3, 0.86),
              ev("partial_exit", "a", ms(2026, 12, 3, 15, 35), 1, 41.05, 1.29),
              ev("closed", "a", ms(2026, 12, 3, 15, 58), 1, 61.4, 1.07)]
    [t] = pnl.closed_trades(events)
    assert (t.qty, t.realized_pnl, t.outcome) == (2, 61.4, "win")
    assert t.return_pct == pytest.approx(35.70, abs=0.005)  # not the +37.21 % the prices alone move


def test_open_positions_stay_out_of_the_day_and_two_fill_entries_add_up() -> None:
    day = date(2026, 12, 3)
    events = [ev("entry", "a", ms(2026, 12, 3, 15), 1, -0.65), ev("entry", "a", ms(2026, 12, 3, 15, 1), 2, -1.95),
              ev("closed", "a", ms(2026, 12, 3, 16), 3, 30.0),
              ev("entry", "open", ms(2026, 12, 3, 16), 2, -1.3),  # still open: its commission is not the day's
              ev("partial_exit", "open", ms(2026, 12, 3, 17), 1, 40.0)]
    trades = pnl.closed_trades(events)
    assert [t.position_id for t in trades] == ["a"] and trades[0].qty == 3
    assert pnl.day_realized(trades, day) == 30.0
    assert pnl.open_pnl([40.0], 12.5) == 52.5  # "open": its cumulative booked P&L (commission, partial) + marks


def test_the_day_is_new_yorks() -> None:
    late = ev("closed", "x", ms(2026, 12, 4, 4, 30), 1, 10.0)  # 23:30 New York on Dec 3
    [t] = pnl.closed_trades([late])
    assert t.closed_day == date(2026, 12, 3)
    assert pnl.day_realized([t], date(2026, 12, 3)) == 10.0 and pnl.day_realized([t], date(2026, 12, 4)) == 0
    assert pnl.day_start_ms(date(2026, 12, 3)) == ms(2026, 12, 3, 5)


def test_a_repeated_close_counts_once() -> None:
    events = [ev("entry", "a", 1, 1, -0.65), ev("closed", "a", 2, 1, 5.0), ev("closed", "a", 3, 1, 6.0)]
    [t] = pnl.closed_trades(events)
    assert t.realized_pnl == 6.0 and t.closed_ts == 3


@pytest.mark.parametrize("args", [(10.0, 0.0, 2), (10.0, 1.0, 0), (10.0, 1.0, None), (math.nan, 1.0, 2),
                                  (10.0, math.inf, 2)])
def test_no_return_without_a_cost(args) -> None:
    assert pnl.return_pct(*args) is None


def test_outcome() -> None:
    assert (pnl.outcome(0.01), pnl.outcome(-0.01), pnl.outcome(0.0)) == ("win", "loss", "flat")
