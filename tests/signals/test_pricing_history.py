"""Tick rounding / exit plans, and the rolling history."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.bus.events import AnalyticsEvent
from core.signals.history import HistoryPoint, SymbolHistory, point_from_event
from core.signals.pricing import exit_plan, round_down, round_nearest, round_up, tick_for


def _on_tick(px: float) -> bool:
    t = tick_for(px)
    return abs(round(px / t) * t - px) < 1e-9


@pytest.mark.parametrize(("x", "nearest", "down", "up"), [
    (1.234, 1.23, 1.23, 1.24),
    (2.996, 3.00, 2.99, 3.00),
    (3.02, 3.00, 3.00, 3.05),
    (3.126, 3.15, 3.10, 3.15),
    (4.725, 4.75, 4.70, 4.75),
    (0.005, 0.01, 0.00, 0.01),
])
def test_rounding(x: float, nearest: float, down: float, up: float) -> None:
    assert round_nearest(x) == nearest and round_down(x) == down and round_up(x) == up


def test_exit_plan_examples() -> None:
    p = exit_plan(1.55, 1.58, 0.5, (0.5, 1.0))
    # 2 x 1.57 = 3.14 is off the 0.05 grid above 3.00: rounded up
    assert p is not None and (p.limit, p.stop, p.targets) == (1.57, 0.78, (2.36, 3.15))
    p = exit_plan(4.65, 4.80, 0.7, (1.0,))
    assert p is not None and (p.limit, p.stop, p.targets) == (4.75, 3.30, (9.50,))
    assert exit_plan(0.00, 0.01, 0.5, (0.5,)) is None   # stop would be 0
    assert exit_plan(1.0, 0.9, 0.5, (0.5,)) is None      # crossed
    assert exit_plan(float("nan"), 1.0, 0.5, (0.5,)) is None


@given(bid=st.floats(0.01, 80.0), width=st.floats(0.0, 0.5), stop=st.sampled_from([0.3, 0.5, 0.7]),
       targets=st.sampled_from([(0.5, 1.0), (1.0,), (0.25, 0.5, 2.0)]))
def test_exit_plan_properties(bid: float, width: float, stop: float, targets: tuple[float, ...]) -> None:
    bid = round_down(bid)
    ask = round_up(bid * (1 + width) + 0.01)
    p = exit_plan(bid, ask, stop, targets)
    if p is None:
        assert round_down(round_nearest((bid + ask) / 2) * stop) <= 0
        return
    assert bid <= p.limit <= ask
    assert 0 < p.stop < p.limit < p.targets[0]
    assert list(p.targets) == sorted(set(p.targets))
    assert p.stop <= p.limit * stop + 1e-9
    for t, pct in zip(p.targets, sorted(targets), strict=True):
        assert t >= p.limit * (1 + pct) - 1e-9
    assert all(_on_tick(x) for x in (p.limit, p.stop, *p.targets))


def _pt(ts: int, sid: str, **values: float) -> HistoryPoint:
    return HistoryPoint(ts, sid, 100.0, values)


def test_history_orders_dedupes_and_bounds() -> None:
    h = SymbolHistory(maxlen=5, max_age_s=3600)
    assert h.add(_pt(3000, "c", x=3.0)) and h.add(_pt(1000, "a", x=1.0)) and h.add(_pt(2000, "b", x=2.0))
    assert not h.add(_pt(3000, "c", x=99.0))
    assert [p.snapshot_id for p in h] == ["a", "b", "c"]
    assert h.series("x", until_ms=3000) == [1.0, 2.0]
    assert h.series("x", since_ms=2000) == [2.0, 3.0]
    for i in range(10):
        h.add(_pt(4000 + i, f"n{i}", x=float(i)))
    assert len(h) == 5 and next(p.snapshot_id for p in h) == "n5"
    h.add(_pt(4000 + 3_600_000 + 100, "late", x=0.0))
    assert [p.snapshot_id for p in h] == ["late"]  # everything else older than an hour


def test_history_stats_and_last_before() -> None:
    h = SymbolHistory()
    for i, v in enumerate([1.0, 2.0, 3.0, 4.0]):
        h.add(_pt(i * 1000, f"p{i}", x=v))
    st_ = h.stats("x")
    assert st_ is not None and st_.n == 4 and st_.mean == 2.5
    assert math.isclose(st_.std, 1.2909944, rel_tol=1e-6)
    assert h.stats("x", until_ms=1000) is None
    assert h.stats("missing") is None
    assert h.last_before(2500).snapshot_id == "p2"  # type: ignore[union-attr]
    assert h.last_before(2500, max_age_ms=100) is None


def test_point_from_event_keeps_finite_values() -> None:
    ev = AnalyticsEvent(id="e", ts=1, correlation_id="c", snapshot_id="s", symbol="SPY", spot=500.0, asof=10,
                        obi_l5=0.2, vpin=None, features={"rr25_1dte": -0.03, "iv_rank": 40.0})
    p = point_from_event(ev)
    assert p is not None and p.get("obi_l5") == 0.2 and p.get("vpin") is None and p.get("rr25_1dte") == -0.03
    assert p.get("spot") == 500.0
    bad = ev.model_copy(update={"spot": 0.0})
    assert point_from_event(bad) is None
