"""Exit plan: scale-outs, trail, breakeven lock, hard stop, flat times, swing rules, accounting."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.contract import OptionContract, Right
from core.domain.signal import Horizon, Side
from core.execution import Fill, OrderPurpose, OrderType
from core.positions import (
    ZERO_DTE_PLAN,
    CloseAll,
    MoveStop,
    Position,
    PositionEvent,
    SellPartial,
    SessionInfo,
    actions_adapter,
    apply_fill,
    evaluate,
    exit_order,
    open_position,
    plan_for,
    release_exit,
    scale_out_qty,
    step,
)
from core.positions.position import PositionEventKind, PositionStatus

NY = ZoneInfo("America/New_York")
TUE = date(2026, 1, 13)


def ny_t(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), tzinfo=NY)


def contract(expiry: date) -> OptionContract:
    return OptionContract(symbol="SPY", expiry=expiry, strike=590, right=Right.CALL)


class Filler:
    """Makes fills the way the paper broker would (0.65 per contract)."""

    def __init__(self, c: OptionContract) -> None:
        self.c, self.n = c, 0

    def __call__(self, side: Side, qty: int, price: float, ts: datetime) -> Fill:
        self.n += 1
        return Fill(fill_id=f"f{self.n}", order_id=f"o{self.n}", correlation_id="sig-1", contract=self.c,
                    side=side, purpose=OrderPurpose.ENTRY if side == Side.BUY else OrderPurpose.EXIT,
                    qty=qty, price=price, commission=round(0.65 * qty, 2), ts=ts)


def opened(horizon: Horizon, qty: int, price: float = 1.00, expiry: date = TUE, ts=None, **kw):
    ts = ts or ny_t(TUE, 10)
    fill = Filler(contract(expiry))
    pos, ev = open_position(fill(Side.BUY, qty, price, ts), strategy="gamma_0dte", horizon=horizon,
                            position_id="p1", **kw)
    return pos, ev, fill


def do(pos: Position, mark: float, now: datetime, fill: Filler, price: float | None = None,
       session: SessionInfo | None = None):
    """step + fill every sell action immediately at ``price`` (default: the mark)."""
    session = session or SessionInfo.for_time(now)
    pos, actions, events = step(pos, mark, now, session)
    for a in actions:
        if isinstance(a, (SellPartial, CloseAll)):
            pos, ev = apply_fill(pos, fill(Side.SELL, a.qty, price if price is not None else mark, now))
            events += ev
    return pos, actions, events


def test_open_position_books_entry_commission_and_hard_stop():
    pos, ev, _ = opened(Horizon.ZERO_DTE, 4)
    assert (pos.qty_open, pos.qty_initial, pos.avg_entry, pos.high_water) == (4, 4, 1.00, 1.00)
    assert pos.stop == pytest.approx(0.50)  # hard stop -50%
    assert pos.realized_pnl == pytest.approx(-2.60) and pos.breakeven == pytest.approx(1.02)
    assert pos.target_levels == [1.50, 2.00]
    assert [(e.kind, e.qty, e.price, e.stop, e.realized_pnl) for e in ev] == [
        (PositionEventKind.ENTRY, 4, 1.00, 0.50, -2.60)]


def test_full_0dte_exit_sequence_on_a_crafted_path():
    pos, _, fill = opened(Horizon.ZERO_DTE, 4)
    t = ny_t(TUE, 10, 5)

    pos, actions, events = do(pos, 1.20, t, fill)
    assert actions == [] and events == []

    # +50%: trail activates (stop 1.50 x 0.75 = 1.125 -> 1.12, above breakeven 1.02), 25% of 4 = 1 off
    pos, actions, events = do(pos, 1.50, t + timedelta(minutes=1), fill)
    assert actions == [MoveStop(new_stop=1.12, reason="trail_activated", high_water=1.50, activates_trail=True),
                       SellPartial(qty=1, reason="target t1 +50%", target="t1")]
    assert [(e.kind, e.qty, e.price, e.stop) for e in events] == [
        (PositionEventKind.STOP_MOVED, 0, None, 1.12), (PositionEventKind.PARTIAL_EXIT, 1, 1.50, 1.12)]
    assert pos.trail_active and pos.qty_open == 3
    assert events[-1].realized_pnl == pytest.approx(-2.60 + 50 - 0.65)  # 46.75

    pos, actions, events = do(pos, 1.40, t + timedelta(minutes=2), fill)  # pullback above the stop
    assert actions == []

    # +100%: stop to 1.50, 50% of initial 4 = 2 off
    pos, actions, events = do(pos, 2.00, t + timedelta(minutes=3), fill)
    assert actions == [MoveStop(new_stop=1.50, reason="trail_high_water", high_water=2.00),
                       SellPartial(qty=2, reason="target t2 +100%", target="t2")]
    assert pos.qty_open == 1 and events[-1].realized_pnl == pytest.approx(46.75 + 200 - 1.30)  # 245.45

    # new high: stop_moved to 2.40 x 0.75 = 1.80, nothing sold
    pos, actions, events = do(pos, 2.40, t + timedelta(minutes=4), fill)
    assert actions == [MoveStop(new_stop=1.80, reason="trail_high_water", high_water=2.40)]
    assert [(e.kind, e.stop) for e in events] == [(PositionEventKind.STOP_MOVED, 1.80)]

    pos, actions, _ = do(pos, 1.95, t + timedelta(minutes=5), fill)  # lower high: stop does not move
    assert actions == [] and pos.stop == pytest.approx(1.80)

    # falls through the trail: close the runner, at a profit
    pos, actions, events = do(pos, 1.79, t + timedelta(minutes=6), fill)
    assert actions == [CloseAll(reason="trailing_stop", qty=1)]
    (closed,) = events
    assert closed.kind == PositionEventKind.CLOSED and closed.reason == "trailing_stop"
    assert closed.price == pytest.approx(1.79) and closed.qty_open == 0
    assert closed.realized_pnl == pytest.approx(245.45 + 79 - 0.65)  # 323.80
    assert closed.realized_pnl > 0
    assert pos.status == PositionStatus.CLOSED and pos.qty_bought == pos.qty_sold == 4
    assert do(pos, 1.0, t + timedelta(minutes=7), fill)[1] == []  # closed: no more actions


def test_breakeven_lock_binds_when_the_trail_would_be_below_entry():
    pos, _, fill = opened(Horizon.ZERO_DTE, 4, trail_pct=0.40)
    t = ny_t(TUE, 10, 5)
    pos, actions, _ = do(pos, 1.50, t, fill)  # trail 1.50 x 0.60 = 0.90 < breakeven 1.02
    assert actions[0] == MoveStop(new_stop=1.02, reason="trail_activated", high_water=1.50, activates_trail=True)
    assert pos.stop == pytest.approx(1.02)
    pos, actions, _ = do(pos, 1.60, t + timedelta(minutes=1), fill)  # 0.96: still breakeven, no move
    assert actions == []
    # a fall to breakeven exits at breakeven: no loss on the runner after commissions
    before = pos.realized_pnl
    pos, actions, events = do(pos, 1.02, t + timedelta(minutes=2), fill)
    assert actions == [CloseAll(reason="trailing_stop", qty=3)]
    runner = events[-1].realized_pnl - before  # +6.00 - 1.95 exit commission
    assert runner == pytest.approx(4.05)
    assert runner - 3 * 0.65 >= 0  # still >= 0 after the runner's share of the entry commission


def test_hard_stop_at_minus_50pct():
    pos, _, fill = opened(Horizon.ZERO_DTE, 2)
    t = ny_t(TUE, 11)
    pos, actions, _ = do(pos, 0.51, t, fill)
    assert actions == []
    pos, actions, events = do(pos, 0.50, t + timedelta(minutes=1), fill, price=0.49)
    assert actions == [CloseAll(reason="hard_stop", qty=2)]
    assert events[0].kind == PositionEventKind.CLOSED and events[0].reason == "hard_stop"
    assert pos.realized_pnl == pytest.approx(-1.30 + (0.49 - 1.00) * 200 - 1.30)  # -104.60


def test_0dte_is_flat_by_1555_ny():
    pos, _, _fill = opened(Horizon.ZERO_DTE, 3)
    assert evaluate(pos, 1.10, ny_t(TUE, 15, 54), SessionInfo.regular(TUE)) == []
    assert evaluate(pos, 1.10, ny_t(TUE, 15, 55), SessionInfo.regular(TUE)) == [CloseAll(reason="flat_eod", qty=3)]
    # an early close (13:00) moves flat time to 12:55
    early = SessionInfo.regular(TUE, close=time(13, 0))
    assert evaluate(pos, 1.10, ny_t(TUE, 12, 55), early) == [CloseAll(reason="flat_eod", qty=3)]
    # a 0DTE somehow still open on a later session is closed at once
    wed = date(2026, 1, 14)
    assert evaluate(pos, 1.10, ny_t(wed, 9, 31), SessionInfo.regular(wed))[0].reason == "flat_eod"


def test_1dte_holds_overnight_and_is_flat_by_1555_on_expiry_day():
    wed = date(2026, 1, 14)
    pos, _, _fill = opened(Horizon.ONE_DTE, 2, expiry=wed, ts=ny_t(TUE, 15, 30))
    assert evaluate(pos, 1.10, ny_t(TUE, 15, 58), SessionInfo.regular(TUE)) == []  # holds overnight
    assert evaluate(pos, 1.10, ny_t(wed, 9, 45), SessionInfo.regular(wed)) == []
    assert evaluate(pos, 1.10, ny_t(wed, 15, 55), SessionInfo.regular(wed)) == [
        CloseAll(reason="expiry_day_flat", qty=2)]


def _swing(qty: int = 4, **kw):
    return opened(Horizon.SWING, qty, price=2.00, expiry=date(2026, 2, 20), ts=ny_t(TUE, 10), **kw)


def test_swing_scale_out_at_plus_100_and_trail_after_plus_50():
    pos, _, fill = _swing()
    assert pos.stop is None  # swing has no price hard stop unless one is given
    t = ny_t(TUE, 11)
    pos, actions, _ = do(pos, 3.00, t, fill)  # +50%: trail on (2.25), nothing sold yet
    assert actions == [MoveStop(new_stop=2.25, reason="trail_activated", high_water=3.00, activates_trail=True)]
    pos, actions, _ = do(pos, 4.00, t + timedelta(minutes=5), fill)  # +100%: half off, trail 3.00
    assert actions == [MoveStop(new_stop=3.00, reason="trail_high_water", high_water=4.00),
                       SellPartial(qty=2, reason="target t1 +100%", target="t1")]
    pos, actions, _events = do(pos, 2.99, t + timedelta(minutes=6), fill)
    assert actions == [CloseAll(reason="trailing_stop", qty=2)] and pos.status == PositionStatus.CLOSED
    assert pos.realized_pnl > 0


def test_swing_signal_stop_is_used_as_the_initial_stop():
    pos, _, _ = _swing(stop=1.20)
    assert pos.stop == pytest.approx(1.20)
    assert evaluate(pos, 1.20, ny_t(TUE, 11), SessionInfo.regular(TUE)) == [CloseAll(reason="hard_stop", qty=4)]


def test_swing_time_stop_after_5_sessions_down_30pct():
    pos, _, fill = _swing()
    # Tue entry; Wed Thu Fri Mon Tue are sessions 1..5 (the weekend is skipped)
    days = [date(2026, 1, 14), date(2026, 1, 15), date(2026, 1, 16), date(2026, 1, 19)]
    for d in days:
        pos, actions, _ = do(pos, 1.30, ny_t(d, 12), fill)  # down 35%, but fewer than 5 sessions
        assert actions == [], d
    assert pos.sessions_held == 4
    tue2 = date(2026, 1, 20)
    pos, actions, _ = do(pos, 1.41, ny_t(tue2, 12), fill)  # down 29.5%: not yet 30%
    assert actions == [] and pos.sessions_held == 5
    pos, actions, _ = do(pos, 1.40, ny_t(tue2, 12, 5), fill)
    assert actions == [CloseAll(reason="time_stop", qty=4)] and pos.status == PositionStatus.CLOSED


def test_sessions_are_counted_even_when_days_are_skipped_and_holidays_are_known():
    pos, _, _fill = _swing()
    mon = date(2026, 1, 19)  # MLK day 2026 is a market holiday
    session = SessionInfo.regular(date(2026, 1, 20), holidays=(mon,))
    pos, _, _ = step(pos, 2.0, ny_t(date(2026, 1, 20), 10), session)  # first look in a week
    assert pos.sessions_held == 4  # Wed Thu Fri + Tue (Mon is a holiday)


def test_swing_exits_on_the_session_before_earnings():
    thu = date(2026, 1, 15)
    pos, _, _fill = _swing(next_earnings=thu)
    assert evaluate(pos, 2.50, ny_t(TUE, 15), SessionInfo.regular(TUE)) == []
    wed = date(2026, 1, 14)
    assert evaluate(pos, 2.50, ny_t(wed, 9, 35), SessionInfo.regular(wed)) == [CloseAll(reason="earnings", qty=4)]
    # earnings on a Monday: the session before is the Friday (weekend skipped)
    pos2, _, _ = _swing(next_earnings=date(2026, 1, 19))
    fri = date(2026, 1, 16)
    assert evaluate(pos2, 2.5, ny_t(thu, 12), SessionInfo.regular(thu)) == []
    assert evaluate(pos2, 2.5, ny_t(fri, 12), SessionInfo.regular(fri))[0].reason == "earnings"
    # the calendar's next session wins when given
    assert evaluate(pos2, 2.5, ny_t(thu, 12), SessionInfo.regular(thu, next_session_date=date(2026, 1, 19))) \
        == [CloseAll(reason="earnings", qty=4)]


@pytest.mark.parametrize(
    "qty_initial, t1, t2, runner",
    [(1, 0, 0, 1), (2, 1, 0, 1), (3, 1, 1, 1), (4, 1, 2, 1), (5, 1, 2, 2), (10, 2, 5, 3), (7, 1, 3, 3)],
)
def test_scale_out_rounding(qty_initial, t1, t2, runner):
    pos, _, fill = opened(Horizon.ZERO_DTE, qty_initial)
    plan = ZERO_DTE_PLAN
    assert scale_out_qty(pos, plan.targets[0], pos.qty_open) == t1
    pos, _, _ = do(pos, 1.5, ny_t(TUE, 10, 30), fill)
    assert pos.qty_open == qty_initial - t1
    pos, _, _ = do(pos, 2.0, ny_t(TUE, 10, 31), fill)
    assert pos.qty_open == runner and runner >= 1
    assert plan_for("0dte").targets[1].fraction == 0.5 and t2 == qty_initial - t1 - runner


def test_pending_exits_are_not_issued_twice_and_can_be_released():
    pos, _, _fill = opened(Horizon.ZERO_DTE, 4)
    t = ny_t(TUE, 10, 30)
    pos, actions, _ = step(pos, 1.5, t, SessionInfo.regular(TUE))
    assert SellPartial(qty=1, reason="target t1 +50%", target="t1") in actions
    pos, actions, _ = step(pos, 1.5, t, SessionInfo.regular(TUE))  # fill not back yet
    assert actions == [] and pos.qty_pending_exit == 1
    pos, actions, _ = step(pos, 1.0, t + timedelta(seconds=5), SessionInfo.regular(TUE))
    assert actions == [CloseAll(reason="trailing_stop", qty=3)]  # only what is not already being sold
    assert step(pos, 0.9, t + timedelta(seconds=6), SessionInfo.regular(TUE))[1] == []
    # the close order is cancelled unfilled: released, and the next mark decides again
    pos = release_exit(pos, 3)
    assert not pos.closing and pos.qty_pending_exit == 1
    _, actions, _ = step(pos, 0.9, t + timedelta(seconds=7), SessionInfo.regular(TUE))
    assert actions == [CloseAll(reason="trailing_stop", qty=3)]


def test_apply_fill_is_idempotent_and_refuses_going_short():
    pos, _, fill = opened(Horizon.ZERO_DTE, 2)
    f = fill(Side.SELL, 1, 1.2, ny_t(TUE, 11))
    p1, ev1 = apply_fill(pos, f)
    p2, ev2 = apply_fill(p1, f)
    assert ev1 and ev2 == [] and p2 == p1 and p1.qty_open == 1
    with pytest.raises(ValueError):
        apply_fill(p1, fill(Side.SELL, 2, 1.2, ny_t(TUE, 11)))
    other = fill(Side.SELL, 1, 1.2, ny_t(TUE, 11)).model_copy(update={"contract": contract(date(2026, 1, 14))})
    with pytest.raises(ValueError):
        apply_fill(p1, other)


def test_more_entry_fills_average_in_and_never_lower_the_stop():
    pos, _, fill = opened(Horizon.ZERO_DTE, 2, price=1.00)
    pos, ev = apply_fill(pos, fill(Side.BUY, 2, 1.20, ny_t(TUE, 10, 1)))
    assert pos.qty_open == pos.qty_initial == 4 and pos.avg_entry == pytest.approx(1.10)
    assert pos.stop == pytest.approx(0.55) and ev[0].kind == PositionEventKind.ENTRY
    assert pos.realized_pnl == pytest.approx(-2.60)


def test_bad_marks_produce_no_action():
    pos, _, _ = opened(Horizon.ZERO_DTE, 2)
    for m in (float("nan"), float("inf"), 0.0, -1.0):
        assert evaluate(pos, m, ny_t(TUE, 11), SessionInfo.regular(TUE)) == []
        assert step(pos, m, ny_t(TUE, 11), SessionInfo.regular(TUE))[0] == pos


def test_exit_order_for_actions():
    pos, _, _ = opened(Horizon.ZERO_DTE, 4)
    now = ny_t(TUE, 11)
    o = exit_order(pos, CloseAll(reason="hard_stop", qty=4), order_id="x", now=now)
    assert (o.side, o.qty, o.order_type, o.limit, o.purpose) == (Side.SELL, 4, OrderType.MKT, None,
                                                                 OrderPurpose.EXIT)
    o = exit_order(pos, SellPartial(qty=1, reason="t1"), order_id="y", now=now)
    assert o.order_type == OrderType.LMT and o.limit is None and o.correlation_id == "sig-1"


def test_position_events_and_actions_round_trip_through_json():
    pos, _, fill = opened(Horizon.SWING, 4, next_earnings=date(2026, 2, 1))
    pos, actions, events = do(pos, 2.0, ny_t(TUE, 10, 30), fill)
    pos2, _, _ = step(pos, 1.6, ny_t(TUE, 10, 31), SessionInfo.regular(TUE))
    assert Position.model_validate_json(pos2.model_dump_json()) == pos2
    for e in events:
        assert PositionEvent.model_validate_json(e.model_dump_json()) == e
    assert actions_adapter.validate_json(actions_adapter.dump_json(actions)) == actions
    s = SessionInfo.regular(TUE, holidays=(date(2026, 1, 19),))
    assert SessionInfo.model_validate_json(s.model_dump_json()) == s
