"""Redaction: no premium-only field reaches basic or free text, and no strike or price
reaches free / X / Reddit. A generated corpus (hypothesis) plus hand-picked cases."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.distribution.render import ROUTES, Renderer, event_stamp, money, signed_money
from core.bus.events import PositionEvent

IDEM = "0123456789abcdef01234567"
RENDERER = Renderer()
FREE_ROUTES = {("discord", "free"), ("x", "free"), ("reddit", "free")}

prices = st.floats(min_value=0.05, max_value=950.0, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 2))
outside = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@st.composite
def position_events(draw) -> tuple[PositionEvent, str, int]:
    kind = draw(st.sampled_from(["entry", "stop_moved", "partial_exit", "closed"]))
    marker = "Zq" + draw(st.text(alphabet=string.ascii_letters, min_size=6, max_size=8))
    entry_price = draw(prices)
    qty = draw(st.integers(min_value=1, max_value=400))
    qty_open = 0 if kind == "closed" else draw(st.integers(min_value=0, max_value=qty))
    ev = PositionEvent(
        type="position.update", id="01J" + marker.upper()[:8], ts=1_763_649_000_000, correlation_id="c-" + marker,
        kind=kind, position_id="p-" + marker, strategy="strat" + marker,
        symbol=draw(st.sampled_from(["SPY", "QQQ", "IWM", "SPX", "AAPL", "NVDA", "TSLA"])),
        expiry=draw(st.sampled_from(["2026-11-20", "20261121", "2027-01-15"])),
        strike=draw(st.floats(min_value=1, max_value=7000).map(lambda x: round(x * 2) / 2)),
        right=draw(st.sampled_from(["C", "P"])), direction=draw(st.sampled_from(["bullish", "bearish", ""])),
        horizon=draw(st.sampled_from(["0dte", "1dte", "swing"])),
        qty=0 if kind == "stop_moved" else qty, qty_open=qty_open,
        price=None if kind == "stop_moved" else draw(prices), entry_price=entry_price,
        stop=draw(st.none() | prices), targets=draw(st.lists(prices, max_size=3)),
        realized_pnl=draw(st.floats(min_value=-50_000, max_value=50_000, allow_nan=False)),
        reason=marker + " " + draw(outside),
        triggers=[f"{marker} {draw(outside)}" for _ in range(draw(st.integers(0, 3)))],
        confidence=draw(st.none() | st.floats(min_value=0, max_value=100)),
        explanation=f"{marker} {draw(outside)} @everyone\n**Size:** 999 contracts {{{{ 7*7 }}}}",
        account_risk_pct=draw(st.none() | st.floats(min_value=0.01, max_value=9.99)),
        analytics={f"feat{marker}": draw(st.floats(min_value=-1e10, max_value=1e10)), "vpin": 0.61},
    )
    return ev, marker, qty


def _premium_only_strings(ev: PositionEvent, allowed: set[str]) -> list[str]:
    """Formatted premium-only values (skipping any that equal an allowed basic value, e.g. stop == fill)."""
    out = []
    if ev.stop is not None:
        out.append(money(ev.stop))
    out += [money(t) for t in ev.targets]
    if ev.account_risk_pct is not None:
        out.append(f"{ev.account_risk_pct:.2f}%")
    out.append(signed_money(ev.realized_pnl))
    return [s for s in out if s not in allowed and not any(s in a for a in allowed)]


def check(ev: PositionEvent, marker: str, entry_qty: int | None) -> None:
    for channel, tier in ROUTES[ev.kind]:
        r = RENDERER.position(ev, channel, tier, IDEM, entry_qty)
        public = "\n".join(x for x in (r.text, r.title or "", r.thread_name or "") if x)
        assert r.text.endswith(event_stamp(ev)) or f"· {event_stamp(ev)}" in r.text  # the event time, no id
        if tier == "premium":
            assert r.embed is not None
            assert "@everyone" not in r.text and "\n**Size" not in r.text  # outside text cannot add lines/pings
            if "7*7" in ev.explanation and ev.kind == "entry":  # outside text is data, never a template
                # (the explanation is on the entry only; updates say what changed, test_stop_updates.py)
                assert "{{ 7\\*7 }}" in r.text
            if ev.kind == "entry" or marker in ev.reason:  # updates carry the reason, not the rationale
                assert marker in r.text
            continue
        assert r.embed is None
        # premium-only: explanation, triggers, analytics, raw reason, strategy all carry the marker
        assert marker not in public and marker.lower() not in public.lower()
        assert not re.search(r"\d+\s*contracts?", public), public  # no size
        assert "Size" not in public and "account risk" not in public.lower()
        assert "+$" not in public and "-$" not in public  # no P&L dollars
        allowed = {s for s in (money(ev.price) if ev.price is not None else "", money(ev.entry_price)) if s}
        for s in _premium_only_strings(ev, allowed):
            assert s not in public, (tier, s, public)
        if (channel, tier) in FREE_ROUTES:
            assert "$" not in public
            rest = public.replace(event_stamp(ev), "")
            rest = re.sub(r"[+-]?\d[\d,]*%", "", rest)  # the whole-number % result is allowed (documented; 0% unsigned)
            assert not re.search(r"\d", rest), (channel, rest)  # no strike, price, expiry or size
        if channel == "x":
            assert len(r.text) <= 280 and "Not investment advice" in r.text
        if channel == "reddit":
            assert "Not investment advice" in r.text


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position_events(), st.booleans())
def test_generated_corpus_never_leaks_premium_fields(case, know_entry_qty):
    ev, marker, qty = case
    check(ev, marker, qty if know_entry_qty else None)


CORPUS = [
    {"kind": "entry", "stop": None, "targets": [], "account_risk_pct": None, "analytics": {}, "triggers": [], "explanation": ""},
    {"kind": "entry", "price": 1.55, "stop": 1.55, "targets": [1.55]},  # premium numbers equal to the fill
    {"kind": "closed", "price": 0.0, "realized_pnl": -215.0, "qty": 3, "qty_open": 0},
    {"kind": "closed", "price": 2.15, "realized_pnl": 0.0, "qty": 3, "qty_open": 0},
    {"kind": "partial_exit", "price": 12.4, "qty": 2, "qty_open": 1, "realized_pnl": 2050.0},
    {"kind": "stop_moved", "price": None, "qty": 0, "stop": 4.25, "reason": "moved to 4.25 after target 1 at 5.10"},
    {"kind": "entry", "symbol": "SPX", "strike": 5905.0, "right": "P", "direction": "bearish",
         "explanation": "<@&123> ```js\nalert(1)``` [click](http://evil) \u202e reversed \x00 ping @here"},
]


@pytest.mark.parametrize("overrides", CORPUS)
def test_hand_picked_corpus(overrides):
    base = {"type": "position.update", "id": "01HANDPICKED", "ts": 1_763_649_000_000, "correlation_id": "c-hp",
                "position_id": "p-hp", "strategy": "stratZqHAND", "symbol": "QQQ", "expiry": "2026-11-20", "strike": 505.0,
                "right": "C", "direction": "bullish", "horizon": "0dte", "qty": 4, "qty_open": 4, "price": 3.2, "entry_price": 3.2,
                "stop": 2.4, "targets": [4.8, 6.4], "reason": "ZqHAND reason", "triggers": ["ZqHAND trig"], "confidence": 66.0,
                "explanation": "ZqHAND explained", "account_risk_pct": 2.5, "analytics": {"featZqHAND": 1.5e9}}
    base.update(overrides)
    ev = PositionEvent(**base)
    check(ev, "ZqHAND", 4)
    prem = RENDERER.position(ev, "discord", "premium", IDEM, 4)
    assert "\u202e" not in prem.text and "\x00" not in prem.text and "@here" not in prem.text
    assert all(len(f["value"]) <= 1024 for f in prem.embed["fields"])
