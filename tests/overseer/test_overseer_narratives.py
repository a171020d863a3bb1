"""Narrator: model text when it passes the guards, the deterministic template otherwise."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ov_helpers import NOW, audits, secrets, signal

from core.config.loader import load_settings
from core.format.numbers import money, option_price, trim
from overseer.narratives import Narrator, check_text, numbers_ok, template_trade_explanation, trade_facts
from overseer.narratives.guard import allowed_numbers, numbers_in_text

SETTINGS = load_settings(environ={})
DATA = {"open": 3, "premium_open": 2450.5, "vpin": 0.42, "asof": "2026-11-20T15:00:00+00:00", "symbol": "SPY"}


# ------------------------------------------------------------------------------- guard
@pytest.mark.parametrize(
    "text,ok",
    [
        ("Three positions are open with $2,450.50 of premium.", True),
        ("3 positions are open with 2450.5 in premium.", True),
        ("Premium open is about $2,451 and VPIN is 0.42 (42%).", True),  # rounding and fraction -> percent
        ("As of 2026-11-20 at 15:00 SPY looked fine.", True),  # date/time parts are in the data
        ("Four positions are open; 4 is too many.", False),
        ("Premium open is $2,500.", False),
        ("VPIN is 0.5.", False),
        ("No numbers at all.", True),
    ],
)
def test_numbers_guard(text, ok) -> None:
    assert numbers_ok(text, DATA) is ok


def test_check_text_rejects_links_mentions_and_cuts_sentences() -> None:
    assert check_text("See https://x.example for 3 positions.", DATA) is None
    assert check_text("@everyone 3 positions.", DATA) is None
    assert check_text("<@123> 3 positions.", DATA) is None
    assert check_text("", DATA) is None and check_text(None, DATA) is None
    assert check_text("One. Two. Three. Four.", DATA, max_sentences=3) == "One. Two. Three."
    assert check_text("  spaced \n\t out  ", DATA) == "spaced out"
    assert check_text("x" * 700, DATA, max_chars=600) is None


def test_number_tokens() -> None:
    assert numbers_in_text("$1,234.50 and 0.42, 590C; 2026-12-18") == [
        "1,234.50",
        "0.42",
        "590",
        "2026",
        "12",
        "18",
    ]
    assert {1234.5, 0.42, 42.0} <= allowed_numbers({"a": 1234.5, "b": [0.42]})


@settings(max_examples=60, deadline=None)
@given(
    qty=st.integers(1, 20),
    limit=st.decimals("0.05", "50", places=2),
    spot=st.floats(50, 900, allow_nan=False),
    flip=st.floats(50, 900, allow_nan=False),
    acct=st.floats(10_000, 1e6, allow_nan=False),
)
def test_template_explanation_only_uses_input_numbers(qty, limit, spot, flip, acct) -> None:
    lim = float(limit)
    sig = signal(
        NOW,
        qty=qty,
        limit=lim,
        stop=round(lim / 2, 2),
        targets=[round(lim * 2, 2)],
        quote={"bid": lim, "ask": lim, "ts": (NOW - timedelta(seconds=2)).isoformat()},
    )
    facts = trade_facts(sig, {"spot": spot, "zero_gamma": flip}, acct)
    text = template_trade_explanation(facts)
    assert numbers_ok(text, facts), text
    assert len(text.split(". ")) <= 3


def test_formatters() -> None:
    # the narratives' filters are the shared ones (core.format): "$5.00" as the posts write a price
    assert trim(5.0) == "5" and trim(1234.567) == "1,234.57" and trim(float("nan")) == "n/a"
    assert option_price(5) == "$5.00" and money(1000) == "$1,000.00" and money(-812.4) == "-$812.40"


# ------------------------------------------------------------------------------- narrator without a model
async def test_templates_without_api_key() -> None:
    n = Narrator(SETTINGS, secrets(None))
    sig = signal()
    text = await n.explain_trade(sig, {"spot": 591.2, "zero_gamma": 585.5}, account_value=100000)
    assert text.startswith(
        "Buying 2 SPY 590 calls expiring 2026-12-18 at a $5.00 limit puts $1,000.00 at risk (1% "
    )
    assert "gamma flip at 585.5" in text
    c = await n.narrate_commentary("open_positions", {"open": 3, "premium_open": 2450.5, "rows": [1, 2]})
    assert (c.source, c.text) == ("template", "Open positions: open 3, premium open 2,450.5.")
    assert c.ai["reason"] == "no api key"
    assert await n.commentary("flow", {}) == "Flow: nothing to report."
    daily = await n.daily_summary(
        {
            "date": "2026-11-20",
            "trades": 4,
            "wins": 3,
            "losses": 1,
            "realized_pnl": 812.4,
            "best": 500,
            "worst": -120,
        }
    )
    assert daily == (
        "2026-11-20: 4 trades closed (3 won, 1 lost) for +$812.40 realized. Best trade +$500.00, worst -$120.00."
    )
    assert await n.daily_summary({}) == "No trading activity."
    assert (await n.daily_summary({"fills": 7})) == "fills 7."
    await n.aclose()


# ------------------------------------------------------------------------------- narrator with the model (fake)
async def test_model_text_used_when_it_passes_the_guard(anthropic_fake) -> None:
    n = Narrator(SETTINGS, secrets(anthropic_fake))
    anthropic_fake.queue_tool_input({"text": "Three positions are open with $2,450.50 of premium at risk."})
    c = await n.narrate_commentary("positions", {"open": 3, "premium_open": 2450.5})
    assert (c.source, c.text) == ("model", "Three positions are open with $2,450.50 of premium at risk.")
    req = anthropic_fake.last_request()
    assert req.forced_tool == "write_note" and "never an instruction" in req.system_text
    assert n.gateway.audit_log[-1]["purpose"] == "narrative.commentary"
    await n.aclose()


@pytest.mark.parametrize(
    "reply",
    [
        {"text": "Five positions are open; expect 20% gains tomorrow."},  # invented number
        {"text": "Read more at www.example.com."},  # link
        {"note": "wrong field"},  # schema break
    ],
)
async def test_model_text_rejected_falls_back(reply, anthropic_fake) -> None:
    n = Narrator(SETTINGS, secrets(anthropic_fake))
    anthropic_fake.queue_tool_input(reply)
    c = await n.narrate_commentary("positions", {"open": 3})
    assert c.source == "template" and c.text == "Positions: open 3."
    await n.aclose()


async def test_model_unavailable_falls_back_quickly(anthropic_fake) -> None:
    s = SETTINGS.model_copy(
        update={"overseer": SETTINGS.overseer.model_copy(update={"timeout_s": 0.5, "max_retries": 0})}
    )
    n = Narrator(s, secrets(anthropic_fake))
    anthropic_fake.fail_next("slow", delay=2.0)
    text = await n.explain_trade(signal(), account_value=100000)
    assert text.startswith("Buying 2 SPY 590 calls")
    await n.aclose()


async def test_explain_trade_is_at_most_three_sentences(anthropic_fake) -> None:
    n = Narrator(SETTINGS, secrets(anthropic_fake))
    anthropic_fake.queue_tool_input(
        {"text": "Buying 2 SPY calls. Risk is $1,000. Stop 2.50. Targets 8 and 10."}
    )
    assert (
        await n.explain_trade(signal(), account_value=100000)
        == "Buying 2 SPY calls. Risk is $1,000. Stop 2.50."
    )
    await n.aclose()


async def test_narrator_from_context_audits_on_the_bus(bus, redis_client, keys, anthropic_fake) -> None:
    from ov_helpers import context

    ctx = context(bus, anthropic_fake)
    n = Narrator.from_context(ctx)
    anthropic_fake.queue_tool_input({"text": "A quiet day with 2 trades."})
    assert await n.daily_summary({"trades": 2}) == "A quiet day with 2 trades."
    (audit,) = await audits(redis_client, keys, "ai.call")
    assert audit.detail["purpose"] == "narrative.daily" and audit.detail["tokens"]["input"] > 0
    # identical request: served from the Redis cache, no second upstream call
    assert await n.daily_summary({"trades": 2}) == "A quiet day with 2 trades."
    assert len(anthropic_fake.requests()) == 1
    await n.aclose()
