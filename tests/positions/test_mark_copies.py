"""Marks no longer deep-copy a position (``copy_position``: own lists, shared immutable parts).
The exit-plan functions must still never change their input, and ``step`` (now observing once)
must decide exactly as evaluate + observe + apply_action did."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.domain.contract import OptionContract, Right
from core.domain.signal import Horizon, Side
from core.execution import Fill, OrderPurpose
from core.positions import (
    CloseAll,
    SellPartial,
    SessionInfo,
    apply_action,
    apply_fill,
    evaluate,
    observe,
    open_position,
    release_exit,
    step,
)

NY = ZoneInfo("America/New_York")
DAY = date(2026, 1, 13)


def _fill(n: int, side: Side, qty: int, price: float, ts: datetime) -> Fill:
    return Fill(fill_id=f"f{n}", order_id=f"o{n}", correlation_id="sig-1",
                contract=OptionContract(symbol="SPY", expiry=DAY + timedelta(days=3), strike=590, right=Right.CALL),
                side=side, purpose=OrderPurpose.ENTRY if side == Side.BUY else OrderPurpose.EXIT,
                qty=qty, price=price, commission=round(0.65 * qty, 2), ts=ts)


def _old_step(pos, mark, now, session):
    """step as it was composed before: evaluate, then observe again, then apply every action."""
    actions = evaluate(pos, mark, now, session)
    p = observe(pos, mark, now, session)
    events = []
    for a in actions:
        p, ev = apply_action(p, a, now)
        events.extend(ev)
    return p, actions, events


def _walk(seed: int, horizon: Horizon):
    """Random mark paths with partial fills of every sell action (some left working)."""
    rng = random.Random(seed)
    t = datetime.combine(DAY, time(10), tzinfo=NY)
    pos, _ = open_position(_fill(0, Side.BUY, rng.randint(1, 8), 1.0, t), strategy="s", horizon=horizon,
                           position_id="p1")
    mark, n = 1.0, 1
    for _ in range(150):
        t += timedelta(minutes=rng.choice([1, 2, 7, 40]))
        mark = max(0.05, round(mark * (1 + rng.gauss(0.02, 0.12)), 2))
        yield pos, mark, t
        session = SessionInfo.for_time(t)
        pos, actions, _ = step(pos, mark, t, session)
        for a in actions:
            if isinstance(a, (SellPartial, CloseAll)) and a.qty and pos.is_open:
                n += 1
                got = rng.randint(0, a.qty)
                if got:
                    pos, _ = apply_fill(pos, _fill(n, Side.SELL, got, mark, t))
                if got < a.qty:
                    pos = release_exit(pos, a.qty - got)
        if not pos.is_open:
            return


def test_step_decides_as_before_and_never_changes_its_input():
    checked = 0
    for seed in range(40):
        for horizon in (Horizon.ZERO_DTE, Horizon.ONE_DTE, Horizon.SWING):
            for pos, mark, t in _walk(seed, horizon):
                before = pos.model_dump_json()
                session = SessionInfo.for_time(t)
                new = step(pos, mark, t, session)
                assert pos.model_dump_json() == before  # the input is untouched
                old = _old_step(pos, mark, t, session)
                assert new[0].model_dump_json() == old[0].model_dump_json()
                assert new[1:] == old[1:]
                for got in (new[0], observe(pos, mark, t, session)):
                    assert got is not pos and got.targets_hit is not pos.targets_hit
                    assert got.targets_sold is not pos.targets_sold and got.fill_ids is not pos.fill_ids
                checked += 1
    assert checked > 3000


def test_fills_and_releases_leave_the_input_alone():
    t = datetime.combine(DAY, time(10), tzinfo=NY)
    pos, _ = open_position(_fill(0, Side.BUY, 4, 1.0, t), strategy="s", horizon=Horizon.ONE_DTE, position_id="p1")
    pos, _, _ = step(pos, 1.6, t + timedelta(minutes=1), SessionInfo.for_time(t))  # t1 reached, 1 promised
    before = pos.model_dump_json()
    more, _ = apply_fill(pos, _fill(1, Side.SELL, 1, 1.6, t + timedelta(minutes=2)))
    assert more.fill_ids == [*pos.fill_ids, "f1"] and pos.model_dump_json() == before
    released = release_exit(pos, 1)
    assert released.qty_pending_exit == pos.qty_pending_exit - 1 and pos.model_dump_json() == before
    sold, _ = apply_action(pos, SellPartial(qty=1, reason="t2", target="t2"), t)
    assert "t2" in sold.targets_sold and "t2" not in pos.targets_sold and pos.model_dump_json() == before
