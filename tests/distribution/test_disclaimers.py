"""Every post the public or free tier sees, on every platform and for every kind of event, carries
the disclaimer; and a free teaser says only what is true of each paid tier (basic gets the contract
and the fill, not the stop and target levels)."""

from __future__ import annotations

import pytest

from bot.distribution.render import ROUTES, Renderer
from core.bus.events import PositionEvent, ReportEvent

IDEM = "0123456789abcdef01234567"
DISCLAIMER = "Not investment advice."
PUBLIC = sorted({(ch, tier, kind) for kind, routes in ROUTES.items() for ch, tier in routes if tier == "free"})


def position(kind: str) -> PositionEvent:
    closed = kind == "closed"
    return PositionEvent(id="01JDISCLAIM", ts=1_763_649_000_000, correlation_id="c1", kind=kind, position_id="p1",
                         strategy="gamma_0dte", symbol="SPY", expiry="2026-11-20", strike=590, right="C",
                         direction="bullish", horizon="0dte", qty=2, qty_open=0 if closed else 2,
                         price=1.5 if closed else 1.0, entry_price=1.0, stop=0.5, targets=[2.0],
                         realized_pnl=98.7 if closed else 0.0)


def report(kind: str = "close") -> ReportEvent:
    paths = {t: f"/out/reports/2026-11-20-{kind}-{t}.html" for t in ("premium", "basic", "free")}
    return ReportEvent(id="01JREPORT", ts=1_763_672_000_000, correlation_id="r1", kind=kind, status="approved",
                       path=paths["premium"], paths=paths, report_id="r1", summary="a day")


@pytest.mark.parametrize(("channel", "tier", "kind"), PUBLIC)
def test_every_public_post_carries_the_disclaimer(channel: str, tier: str, kind: str) -> None:
    r = Renderer()
    if kind == "report":
        for rk in ("premarket", "intraday", "close", "monthly"):
            out = r.report(report(rk), channel, tier, IDEM)
            assert out is not None and DISCLAIMER in out.text, (channel, rk, out)
    else:
        out = r.position(position(kind), channel, tier, IDEM)
        assert DISCLAIMER in out.text, (channel, kind, out.text)


def test_the_free_discord_teaser_does_not_promise_basic_the_stop_and_targets() -> None:
    text = Renderer().position(position("entry"), "discord", "free", IDEM).text
    basic = text.split("basic members", 1)[1].split(".", 1)[0]
    assert "contract" in basic and "stop" not in basic and "target" not in basic, text
    basic_post = Renderer().position(position("entry"), "discord", "basic", IDEM).text
    assert "$0.50" not in basic_post and "$2.00" not in basic_post  # what the teaser says basic lacks
