"""Safety line: no premium-only value reaches a lower tier, in any formatting.

What each tier may show (bot/distribution/render.py, bot/distribution/README.md):

- premium: everything.
- basic: the contract (symbol, expiry, strike, right), the fill price of this message and the
  entry fill, the horizon, the exit reason as a category word, the whole-number result %.
- free (Discord free, X, Reddit): underlying and direction; for a close, win/loss/flat and the
  whole-number result %. Reports: each tier only its own file's link; the summary is premium.

Premium-only numbers: size (qty, open qty, entry size), stop, targets, confidence, account
risk %, realized P&L, analytics values; for free also strike, fill and entry price, expiry.
Premium-only text: explanation, triggers, strategy, raw exit reason (they carry a marker).

How it checks, for every post type (entry, stop moved, partial exit, close, report) on every
(channel, tier) route: all public text (message, embed, Reddit title, Discord thread name)
minus the event time stamp and minus the strings the tier is allowed to show must hold no number at all;
and separately no number equal to a premium-only value (as 3, 3.0, 3.00, $3.00, 1,234.50, rounded
to 0/1/2 decimals, sign dropped) nor the size as a word. Premium is the positive control: it must
show each of those values, so the list of values is the real one. The same checks run on the
local outbox written by the DistributorService (what the publishers actually deliver).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.distribution import DistributorService
from bot.distribution.render import (
    ROUTES,
    Rendered,
    Renderer,
    basic_view,
    free_view,
    report_view,
)
from core.bus.events import PositionEvent, ReportEvent
from core.format.numbers import expiry as expiry_str
from core.runtime.consumers import consumer_for
from tests.helpers import make_context

IDEM = "f00dfacefeedbeefcafe0123"
MARKER = "Zqprem"
NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]


@dataclass
class Secret:
    name: str
    value: float
    premium_shows: bool = True  # premium renders it for this event kind (the positive control)


@dataclass
class Case:
    ev: PositionEvent
    entry_qty: int | None
    secrets: list[Secret] = field(default_factory=list)


def _event(kind: str, **over: Any) -> PositionEvent:
    base: dict[str, Any] = {
        "type": "position.update", "id": "01JREDACT" + kind.upper()[:6], "ts": 1_763_649_000_000,
        "correlation_id": "c-redact", "kind": kind, "position_id": "p-redact", "strategy": f"strat{MARKER}",
        "symbol": "QQQ", "expiry": "2026-11-20", "strike": 505.0, "right": "C", "direction": "bullish",
        "horizon": "0dte", "qty": 7, "qty_open": 7, "price": 3.2, "entry_price": 3.2, "stop": 2.45,
        "targets": [4.85, 6.45], "reason": f"target hit {MARKER}", "triggers": [f"{MARKER} 88.8 trigger"],
        "confidence": 66.0, "explanation": f"{MARKER} explained: buying 7 at a 3.25 limit, risk 777",
        "account_risk_pct": 1.85, "analytics": {"gex_total": 1.3e9, "vpin": 0.93},
    }
    if kind == "stop_moved":
        base.update(qty=0, qty_open=7, price=None, stop=3.35, reason=f"trail {MARKER}")
    elif kind == "partial_exit":
        base.update(qty=4, qty_open=3, price=4.85, realized_pnl=652.0, reason=f"target 1 {MARKER}")
    elif kind == "closed":
        base.update(qty=3, qty_open=0, price=5.9, realized_pnl=1462.0, reason=f"trailing stop {MARKER}")
    base.update(over)
    return PositionEvent(**base)


def _secrets(ev: PositionEvent, entry_qty: int | None) -> list[Secret]:
    """Every premium-only number of the event, flagged with whether premium shows it for this kind."""
    k = ev.kind
    out = [Secret("qty", ev.qty, premium_shows=k != "stop_moved"),
           Secret("qty_open", ev.qty_open, premium_shows=k in ("stop_moved", "partial_exit")),
           Secret("account_risk", ev.account_risk_pct or 0.0, premium_shows=k == "entry"),
           Secret("confidence", ev.confidence or 0.0, premium_shows=k == "entry"),
           Secret("realized_pnl", ev.realized_pnl, premium_shows=k in ("partial_exit", "closed"))]
    if entry_qty:
        out.append(Secret("entry_qty", entry_qty, premium_shows=False))
    if ev.stop is not None:
        out.append(Secret("stop", ev.stop, premium_shows=k != "closed"))
    out += [Secret(f"target{i}", t, premium_shows=k != "closed") for i, t in enumerate(ev.targets)]
    out += [Secret(f"analytics.{a}", v, premium_shows=False) for a, v in ev.analytics.items()
            if isinstance(v, (int, float))]
    return [s for s in out if s.value not in (0, 0.0)]  # zero: "nothing", nothing to leak


def _free_only(ev: PositionEvent) -> list[Secret]:
    """Numbers basic may show but free may not."""
    out = [Secret("strike", ev.strike), Secret("entry_price", ev.entry_price)]
    if ev.price is not None:
        out.append(Secret("fill", ev.price))
    out += [Secret(f"expiry{i}", float(p)) for i, p in enumerate(re.findall(r"\d+", expiry_str(ev.expiry)))]
    return out


def public_text(r: Rendered) -> str:
    parts = [r.text, r.title or "", r.thread_name or ""]
    if r.embed is not None:
        parts.append(json.dumps(r.embed, ensure_ascii=False))
    return "\n".join(parts)


def _variants(v: float) -> set[float]:
    out = set()
    for x in (v, abs(v)):
        out |= {x, round(x, 2), round(x, 1), float(round(x))}
    return out


def _numbers(text: str) -> list[tuple[str, float]]:
    return [(t, float(t.replace(",", ""))) for t in NUM.findall(text)]


def leaks(text: str, secrets: list[Secret]) -> list[str]:
    """Premium-only values found in ``text`` as numbers in any formatting (or the size as a word)."""
    found = []
    nums = _numbers(text)
    for s in secrets:
        vs = _variants(s.value)
        for tok, x in nums:
            if any(math.isclose(x, v, rel_tol=0, abs_tol=1e-9) for v in vs):
                found.append(f"{s.name}={s.value} as {tok!r}")
        if s.name.startswith("qty") or s.name == "entry_qty":
            n = int(s.value)
            if 0 < n < len(WORDS) and re.search(rf"\b{WORDS[n]}\b", text, re.IGNORECASE):
                found.append(f"{s.name}={n} as the word {WORDS[n]!r}")
    return found


def allowed_strings(ev: PositionEvent, tier: str, entry_qty: int | None, renderer: Renderer) -> list[str]:
    """The exact strings the tier's own view holds (what it may show), longest first."""
    if tier == "basic":
        view = basic_view(ev, entry_qty)
        keys = ("contract", "fill", "entry_fill", "result_pct", "horizon")
    else:
        view = free_view(ev, entry_qty, renderer.free_result_pct)
        keys = ("result_pct",)
    return sorted((str(view[k]) for k in keys if view.get(k)), key=len, reverse=True)


STAMP = re.compile(r"\b[A-Z][a-z]{2} \d{2}, \d{2}:\d{2}:\d{2} ET\b")  # render.event_stamp: the event's time


def residue(text: str, allowed: list[str]) -> str:
    rest = STAMP.sub(" ", text)
    for a in allowed:
        if a:
            rest = rest.replace(a, " ")
    return rest


def check_position(case: Case, renderer: Renderer | None = None) -> None:
    renderer = renderer or Renderer()
    ev, entry_qty = case.ev, case.entry_qty
    secrets = case.secrets or _secrets(ev, entry_qty)
    for channel, tier in ROUTES[ev.kind]:
        r = renderer.position(ev, channel, tier, IDEM, entry_qty)
        text = public_text(r)
        if tier == "premium":  # positive control: the values under test are the ones premium shows
            shown = [s for s in secrets if s.premium_shows]
            missing = [s.name for s in shown if not leaks(text, [s])]
            assert not missing, (ev.kind, missing, text)
            assert MARKER in text
            continue
        where = f"{channel}/{tier}/{ev.kind}"
        assert MARKER.lower() not in text.lower(), (where, text)  # explanation, triggers, strategy, reason
        assert not re.search(r"\bcontracts\b|\bsize\b|\bqty\b", text, re.IGNORECASE), (where, text)
        hidden = secrets + (_free_only(ev) if tier == "free" else [])
        rest = residue(text, allowed_strings(ev, tier, entry_qty, renderer))
        found = leaks(rest, hidden)
        assert not found, (where, found, text)
        assert not NUM.search(rest), (where, f"a number the {tier} tier has no field for", rest)


KINDS = ("entry", "stop_moved", "partial_exit", "closed")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("entry_qty", [7, None])
def test_every_post_type_every_tier_hides_premium_values(kind: str, entry_qty: int | None) -> None:
    check_position(Case(_event(kind), entry_qty))


@pytest.mark.parametrize("kind", KINDS)
def test_size_of_one_and_round_numbers(kind: str) -> None:
    """Small and round values are the easiest to leak unnoticed: size 1 and 2, stop 2.00, targets 3 and 4."""
    over: dict[str, Any] = {"qty": 2 if kind != "stop_moved" else 0, "qty_open": 1 if kind != "closed" else 0,
                            "stop": 2.0, "targets": [3.0, 4.0], "confidence": 80.0, "account_risk_pct": 1.0,
                            "price": None if kind == "stop_moved" else 1.1, "entry_price": 1.1}
    if kind == "entry":
        over.update(qty=1, qty_open=1)
    check_position(Case(_event(kind, **over), 1 if kind == "entry" else 2))


prices = st.floats(min_value=0.05, max_value=950.0, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def cases(draw) -> Case:
    kind = draw(st.sampled_from(KINDS))
    qty = draw(st.integers(min_value=1, max_value=400))
    ev = _event(kind, qty=0 if kind == "stop_moved" else qty,
                qty_open=0 if kind == "closed" else draw(st.integers(min_value=1, max_value=400)),
                strike=draw(st.floats(min_value=1, max_value=7000).map(lambda x: round(x * 2) / 2)),
                price=None if kind == "stop_moved" else draw(prices), entry_price=draw(prices),
                stop=draw(st.none() | prices), targets=draw(st.lists(prices, max_size=3)),
                confidence=draw(st.floats(min_value=1, max_value=100).map(lambda x: round(x, 1))),
                account_risk_pct=draw(st.floats(min_value=0.01, max_value=9.99).map(lambda x: round(x, 2))),
                realized_pnl=0.0 if kind in ("entry", "stop_moved") else draw(
                    st.floats(min_value=-50_000, max_value=50_000).map(lambda x: round(x, 2))),
                symbol=draw(st.sampled_from(["SPY", "QQQ", "IWM", "SPX", "NVDA"])),
                expiry=draw(st.sampled_from(["2026-11-20", "20261121", "2027-01-15"])))
    entry_qty = draw(st.none() | st.integers(min_value=1, max_value=400))
    return Case(ev, entry_qty)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_generated_events_never_leak_premium_numbers(case: Case) -> None:
    check_position(case)


def _report(**over: Any) -> ReportEvent:
    base: dict[str, Any] = {"type": "report", "id": "01JREPORTRED", "ts": 1_763_675_400_000,
                            "correlation_id": "rep-r", "kind": "close", "status": "approved", "report_id": "rep-r",
                            "summary": f"{MARKER}: SPX pinned 5905; 7 trades, 3 winners, +1,462 realized",
                            "path": "var/reports/close-premium.html",
                            "paths": {"premium": "var/reports/close-premium.html",
                                      "basic": "var/reports/close-basic.html",
                                      "free": "var/reports/close-free.html"}}
    base.update(over)
    return ReportEvent(**base)


@pytest.mark.parametrize("base_url", [None, "https://reports.example.test/r"])
def test_report_posts_hide_the_summary_and_other_tiers_files(base_url: str | None) -> None:
    renderer = Renderer(report_base_url=base_url)
    ev = _report()
    for channel, tier in ROUTES["report"]:
        r = renderer.report(ev, channel, tier, IDEM)
        assert r is not None
        text = public_text(r)
        others = [p for t, p in ev.paths.items() if t != tier]
        assert not [p for p in others if p.rsplit("/", 1)[-1] in text], (channel, tier, text)
        if tier == "premium":
            assert MARKER in text and "5905" in text
            continue
        assert MARKER.lower() not in text.lower(), (channel, tier, text)
        view = report_view(ev, tier, base_url)
        assert view is not None
        rest = residue(text, [view["link"], view["date"]])
        assert not NUM.search(rest), (channel, tier, rest)


async def test_what_the_distributor_delivers_hides_premium_values(bus, tmp_path) -> None:
    """The same checks on the outbox lines the DistributorService writes (entry size from its own
    bookkeeping, every route, through the publisher), for one trade's whole life and a report."""
    ctx = make_context(bus, out_dir=str(tmp_path), distribution={"sink": "outbox"})
    svc = DistributorService(ctx)
    await svc.start()
    consumer = consumer_for(svc)
    assert consumer is not None
    events = {k: bus.make(PositionEvent, correlation_id="c-redact", **_event(k).model_dump(
        exclude={"type", "id", "ts", "correlation_id", "source"})) for k in KINDS}
    try:
        for ev in [*events.values(), _report(id=bus.new_id(), ts=bus.clock.ms())]:
            await bus.publish(ev)
            await consumer.poll(svc.handle)
        bus.clock.set_ms(bus.clock.ms() + 600_000)
        for _ in range(20):
            await svc.on_timer(bus.clock.now())
    finally:
        await svc.stop()
    lines = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert len(lines) == sum(len(ROUTES[k]) for k in (*KINDS, "report"))
    for line in lines:
        if line["event"] == "report" or line["tier"] == "premium":
            continue
        ev = events[line["event"]]
        entry_qty = events["entry"].qty
        text = line["text"]
        hidden = _secrets(ev, entry_qty) + (_free_only(ev) if line["tier"] == "free" else [])
        rest = residue(text, allowed_strings(ev, line["tier"], entry_qty, Renderer()))
        assert not leaks(rest, hidden), (line, leaks(rest, hidden))
        assert not NUM.search(rest), (line["channel"], line["tier"], rest)
        assert MARKER.lower() not in text.lower()
