"""Property tests of the exit plan on random price paths (hypothesis).

* the stop never decreases;
* once the trail is active the stop is at or above breakeven (entry + round-trip
  commission per share), so no exit realizes a loss on the remaining contracts;
* quantities never go negative, nothing is promised twice, and at close the total
  sold equals the total bought; realized P&L equals the sum of the fills.

Fill model for the "never a loss" property: sells fill at the mark, except a stop
exit, which fills at its stop price (a resting stop in a market without gaps; a gap
through the stop is market risk, not exit logic, and is not what the property is about).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain.contract import OptionContract, Right
from core.domain.signal import Horizon, Side
from core.execution import Fill, OrderPurpose
from core.positions import (
    CloseAll,
    SellPartial,
    SessionInfo,
    apply_action,
    apply_fill,
    open_position,
    release_exit,
    step,
)
from core.positions.position import PositionStatus

NY = ZoneInfo("America/New_York")
START = datetime(2026, 1, 13, 9, 45, tzinfo=NY)  # Tuesday
EXPIRY = {Horizon.ZERO_DTE: date(2026, 1, 13), Horizon.ONE_DTE: date(2026, 1, 14), Horizon.SWING: date(2026, 2, 20)}
COMM = 0.65


def _advance(now: datetime, minutes: int) -> datetime:
    nxt = now + timedelta(minutes=minutes)
    if nxt.timetz().replace(tzinfo=None) >= time(16, 0) or nxt.date() != now.date():
        d = now.date() + timedelta(days=1)
        while d.weekday() >= 5:
            d += timedelta(days=1)
        nxt = datetime.combine(d, time(9, 45), tzinfo=NY)
    return nxt


class Book:
    def __init__(self, contract: OptionContract) -> None:
        self.contract, self.n = contract, 0

    def fill(self, side: Side, qty: int, price: float, ts: datetime) -> Fill:
        self.n += 1
        return Fill(fill_id=f"f{self.n}", order_id=f"o{self.n}", correlation_id="c", contract=self.contract,
                    side=side, purpose=OrderPurpose.ENTRY if side == Side.BUY else OrderPurpose.EXIT,
                    qty=qty, price=round(price, 2), commission=round(COMM * qty, 2), ts=ts)


paths = st.lists(
    st.tuples(st.floats(min_value=-0.30, max_value=0.40, allow_nan=False), st.integers(min_value=1, max_value=20)),
    min_size=1, max_size=80,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    horizon=st.sampled_from(list(Horizon)),
    qty=st.integers(min_value=1, max_value=15),
    entry_cents=st.integers(min_value=20, max_value=2000),
    path=paths,
)
def test_stop_ratchets_and_a_locked_trail_never_realizes_a_loss(horizon, qty, entry_cents, path):
    entry = entry_cents / 100
    contract = OptionContract(symbol="SPY", expiry=EXPIRY[horizon], strike=590, right=Right.CALL)
    book = Book(contract)
    pos, _ = open_position(book.fill(Side.BUY, qty, entry, START), strategy="s", horizon=horizon)
    realized = -round(COMM * qty, 2)
    now, mark = START, entry
    # every path ends in a slide, so the trail / hard stop is actually exercised
    for ret, minutes in path + [(-0.08, 1)] * 40:
        now = _advance(now, minutes)
        mark = max(0.01, round(mark * (1 + ret), 2))
        before = pos.stop
        pos, actions, _events = step(pos, mark, now, SessionInfo.for_time(now))
        if before is not None:
            assert pos.stop is not None and pos.stop >= before - 1e-12
        if pos.trail_active:
            assert pos.stop >= pos.breakeven - 1e-12 >= entry
        for a in actions:
            if not isinstance(a, (SellPartial, CloseAll)):
                continue
            stop_exit = isinstance(a, CloseAll) and a.reason in ("trailing_stop", "hard_stop")
            price = pos.stop if stop_exit else mark
            locked = pos.trail_active
            f = book.fill(Side.SELL, a.qty, price, now)
            pos, _ = apply_fill(pos, f)
            per_contract = (f.price - pos.avg_entry) * contract.multiplier - COMM - pos.entry_commission_per_contract
            realized += (f.price - pos.avg_entry) * f.qty * contract.multiplier - f.commission
            if locked:
                assert per_contract >= -1e-9, (a, f.price, pos.avg_entry)
            assert pos.qty_open >= 0
        if pos.status == PositionStatus.CLOSED:
            break
    if pos.status != PositionStatus.CLOSED:  # flatten at the end of the path
        pos, _ = apply_action(pos, CloseAll(reason="test_end", qty=pos.available_qty), now)
        f = book.fill(Side.SELL, pos.qty_open, mark, now)
        pos, _ = apply_fill(pos, f)
        realized += (f.price - pos.avg_entry) * f.qty * contract.multiplier - f.commission
    assert pos.status == PositionStatus.CLOSED and pos.qty_open == 0
    assert pos.qty_sold == pos.qty_bought == qty
    assert pos.realized_pnl == pytest.approx(realized, abs=0.02 * (len(path) + 42))


@settings(max_examples=200, deadline=None)
@given(
    horizon=st.sampled_from(list(Horizon)),
    qty=st.integers(min_value=1, max_value=15),
    path=paths,
    delays=st.lists(st.sampled_from(["fill", "partial", "wait", "cancel"]), min_size=80, max_size=80),
)
def test_quantities_stay_consistent_with_delayed_partial_and_cancelled_exits(horizon, qty, path, delays):
    """Exits are filled late, in pieces, or cancelled (released): nothing is ever sold twice,
    nothing goes short, and at the end everything bought has been sold."""
    contract = OptionContract(symbol="SPY", expiry=EXPIRY[horizon], strike=590, right=Right.CALL)
    book = Book(contract)
    pos, _ = open_position(book.fill(Side.BUY, qty, 1.00, START), strategy="s", horizon=horizon)
    working: list[int] = []  # remaining qty of each working exit order
    now, mark = START, 1.00
    for i, (ret, minutes) in enumerate(path):
        now = _advance(now, minutes)
        mark = max(0.01, round(mark * (1 + ret), 2))
        before = pos.stop
        pos, actions, _ = step(pos, mark, now, SessionInfo.for_time(now))
        assert before is None or pos.stop >= before
        working += [a.qty for a in actions if isinstance(a, (SellPartial, CloseAll)) and a.qty > 0]
        assert sum(working) == pos.qty_pending_exit <= pos.qty_open
        what = delays[i]
        if working and what in ("fill", "partial"):
            q = working[0] if what == "fill" else max(1, working[0] // 2)
            pos, _ = apply_fill(pos, book.fill(Side.SELL, q, mark, now))
            working[0] -= q
            if working[0] == 0:
                working.pop(0)
        elif working and what == "cancel":
            pos = release_exit(pos, working.pop(0))
        assert 0 <= pos.qty_open == qty - pos.qty_sold
        if pos.status == PositionStatus.CLOSED:
            assert working == [] or sum(working) == 0
            break
    for q in working:  # the rest of the working exits fill
        if pos.status == PositionStatus.OPEN and q:
            pos, _ = apply_fill(pos, book.fill(Side.SELL, q, mark, now))
    if pos.status == PositionStatus.OPEN:
        pos, _ = apply_action(pos, CloseAll(reason="test_end", qty=pos.available_qty), now)
        pos, _ = apply_fill(pos, book.fill(Side.SELL, pos.qty_open, mark, now))
    assert pos.status == PositionStatus.CLOSED and pos.qty_sold == pos.qty_bought == qty and pos.qty_open == 0
