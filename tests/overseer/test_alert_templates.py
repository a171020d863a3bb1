"""Every alert code, rendered through the overseer templates (the explanation and the cleared note)
and the Telegram alert template, in every state: no unrendered placeholder reaches the admin - no
Jinja syntax, no "None"/"Undefined", no literal ``<placeholder>``, no blank slot left by a missing
fact (" s ago", "for  last", "()"), and never an exception. A detector whose facts are missing or
partial gets its own message instead of a sentence with holes."""

from __future__ import annotations

import html
import re

import pytest

from bot.telegram.render import Renderer
from bot.telegram.views import alert_view
from core.bus.events import AlertEvent
from overseer.anomaly import detectors as d
from overseer.narratives import templates as tpl

FINDINGS: list[d.Finding] = [f for f in (
    d.feed_staleness("quotes", "QQQ", 0, 100_000, 0, 30.0),
    d.broker_connection("0", 0, 30_000, 120.0),
    d.broker_connection("0", 0, 300_000, 120.0),
    d.price_divergence("SPY", {"bid": 590.0, "ask": 590.2, "ts": 1000}, {"bid": 593.0, "ask": 593.2, "ts": 1000},
                       0.25, 5.0),
    d.slippage_spike([3.0, 4.0, 5.0], 2.0),
    d.drawdown(3.5, 2.0, 5.0),
    d.drawdown(6.0, 2.0, 5.0),
    d.daily_loss("warning", -2500.0, 100_000.0, 2.0, 3.0),
    d.daily_loss("halt", -3500.0, 100_000.0, 2.0, 3.0),
    d.strategy_findings("gamma_0dte", d.StrategyHealth(12, 20.0, 50.0, 200.0, 5, ("win_rate", "losing_streak")),
                        55.0),
    d.strategy_findings("gamma_0dte", d.StrategyHealth(12, 40.0, 50.0, 60.0, 1, ("win_rate",)), 55.0),
    d.delivery_dead_letter("discord", "basic", 5, "discord 400 (code 50035): Invalid Form Body"),
    d.delivery_dead_letter("reddit", "free", 3, ""),
    d.delivery_retrying("x", 4),
    d.dead_letters("execution", 2),
) if f is not None]
CODES = sorted({f.code for f in FINDINGS})
# alerts raised outside the anomaly watch (execution, distributor, IBKR connection): no explanation sentence
OTHER = [("BROKER_RECONCILED", "WARNING", "position pos-1 adopted from the broker account"),
         ("delivery_dead_letter", "WARNING", "entry post to discord basic gave up after 5 attempts"),
         ("delivery_render_failed", "WARNING", "entry message for x free could not be rendered; not posted"),
         ("IB_CLIENT_ID_IN_USE", "CRITICAL", "IB client id 7 (market) is already in use at 127.0.0.1:4002"),
         ("MARKET_DATA_DELAYED", "WARNING", "IBKR serves delayed market data, not live"),
         ("IB_COMPETING_SESSION", "WARNING", "IB serves no market data to market: a competing live session")]

_TAGS = re.compile(r"</?(b|i|code|pre)>")
_HOLES = [re.compile(p) for p in (r"\{\{|\}\}|\{%|%\}", r"\bNone\b|\bUndefined\b|\bnan\b", r"<[A-Za-z_][\w -]*>",
                                  r"\s[,.;:)%]", r"\(\s*\)", r"  ", r"\b(for|of|at|after|by|updated|last)\s+(s|ago|attempts|closed|entries|event)\b")]


def holes(text: str) -> list[str]:
    """Unrendered placeholders in a plain-text rendering."""
    found = [m.group(0) for p in _HOLES for m in p.finditer(text)]
    return found + (["<empty>"] if not text.strip() else [])


def telegram_text(raw: str) -> str:
    """What the admin reads: allowed tags removed, entities decoded, lines kept."""
    return html.unescape(_TAGS.sub("", raw))


def explain(f: d.Finding, facts: object | None = None) -> str:
    return tpl.render("alert_explanation.j2", code=f.code, severity=f.severity, subject=f.subject,
                      message=f.message, facts=f.facts if facts is None else facts)


@pytest.mark.parametrize("f", FINDINGS, ids=lambda f: f"{f.code}-{f.severity}")
def test_every_anomaly_explanation_is_fully_rendered(f: d.Finding) -> None:
    text = explain(f)
    assert not holes(text), (f.code, holes(text), text)
    if f.code in ("DELIVERY_RETRYING", "STRATEGY_DEGRADED"):  # INFO codes: the message itself
        assert text == f.message
    else:
        assert text != f.message  # the code has its own sentence and it was used
    assert ("halted" in text.lower()) == (f.severity == "CRITICAL")


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("facts", [{}, {"symbol": "SPY"}, None, "not a mapping", {"down_s": None, "age_s": None}])
def test_missing_facts_fall_back_to_the_message_not_to_holes(code: str, facts: object) -> None:
    f = next(x for x in FINDINGS if x.code == code)
    text = tpl.render("alert_explanation.j2", code=code, severity="WARNING", subject=f.subject, message=f.message,
                      facts=facts)
    assert text == f.message, text


@pytest.mark.parametrize("f", FINDINGS, ids=lambda f: f"{f.code}-{f.severity}")
def test_cleared_note_is_fully_rendered(f: d.Finding) -> None:
    for count in (1, 5):
        text = tpl.render("alert_cleared.j2", count=count, severity=f.severity)
        assert not holes(text), text
        assert ("halt" in text) == (f.severity == "CRITICAL")


def _alerts() -> list[AlertEvent]:
    out = []
    for f in FINDINGS:
        if f.severity == "INFO":
            continue  # never sent to Telegram
        out.append(AlertEvent(id="01J" + f.code[:10], ts=1, correlation_id="c", code=f.code, severity=f.severity,
                              state="raised", subject=f.subject, message=f.message, explanation=explain(f), count=1))
        out.append(AlertEvent(id="01K" + f.code[:10], ts=2, correlation_id="c", code=f.code, severity=f.severity,
                              state="cleared", subject=f.subject, message=f"cleared: {f.message}",
                              explanation=tpl.render("alert_cleared.j2", count=3, severity=f.severity), count=3))
    for code, sev, msg in OTHER:
        out.append(AlertEvent(id="01L" + code[:10], ts=3, correlation_id="c", code=code, severity=sev,
                              state="raised", subject="", message=msg, explanation="", count=2))
    return out


@pytest.mark.parametrize("ev", _alerts(), ids=lambda e: f"{e.code}-{e.severity}-{e.state}")
@pytest.mark.parametrize("halted", [True, False])
def test_telegram_alert_is_fully_rendered(ev: AlertEvent, halted: bool) -> None:
    raw = Renderer().render("alert", a=alert_view(ev, halted))
    text = telegram_text(raw)
    assert not holes(text), (holes(text), text)
    assert ev.code in text and ev.message in text
    if ev.explanation and ev.state == "raised":  # a cleared alert shows the live halt state instead
        assert ev.explanation in text


def test_outside_angle_brackets_are_shown_escaped_not_as_tags() -> None:
    """A message that itself contains ``<example>`` reaches Telegram escaped (shown as text, not
    swallowed as an unknown tag); that is data, not a template placeholder."""
    ev = AlertEvent(id="01M", ts=1, correlation_id="c", code="DEAD_LETTER", severity="WARNING", state="raised",
                    subject="<example>", message="bad input <example>", explanation="", count=1)
    raw = Renderer().render("alert", a=alert_view(ev, False))
    assert "<example>" not in raw and "&lt;example&gt;" in raw
