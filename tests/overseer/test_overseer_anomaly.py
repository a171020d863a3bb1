"""AnomalyService on the simulated clock against the real Redis: every detector raises once,
counts, clears once; CRITICAL halts; explanations from the model (fake) or the template."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import pytest
from ov_helpers import alerts, audits, context, events, ny, seed_quote

from bot.telegram.render import Renderer
from bot.telegram.views import alert_view
from core.bus.events import AlertEvent, ControlEvent, DeliveryEvent, Event, FillEvent, PositionEvent
from core.control.halt import read_halt
from core.runtime.heartbeat import Heartbeat, loop_state, read_heartbeats
from core.runtime.live_runner import LiveRunner
from core.runtime.sim_runner import SimRunner
from core.state.status import collect_status, format_status
from overseer.anomaly import AnomalyService
from overseer.anomaly import detectors as d
from tests.helpers import until, until_async

SYMS = ["SPY", "QQQ"]


def _svc(bus, fake=None, **overseer: Any) -> AnomalyService:
    return AnomalyService(context(bus, fake, overseer=overseer, market={"symbols": SYMS}))


async def _tick(svc: AnomalyService, clock, seconds: float = 30) -> list[AlertEvent]:
    """Advance the sim clock, run the timer, return the alerts it emitted."""
    before = len(await alerts(svc.redis, svc.keys))
    clock.advance(seconds)
    await svc.on_timer(clock.now())
    return (await alerts(svc.redis, svc.keys))[before:]


async def _handle(svc: AnomalyService, ev: Event) -> list[AlertEvent]:
    tx = svc.bus.tx()
    await svc.handle(ev, tx)
    await tx.commit()
    return [e for e in tx.events if isinstance(e, AlertEvent)]


async def _fresh_quotes(svc, clock, syms=SYMS) -> None:
    for s in syms:
        await seed_quote(svc.redis, svc.keys, clock.now(), s)


def test_service_identity(bus) -> None:
    svc = _svc(bus, anomaly_interval_s=45)
    assert svc.name == "anomaly" and svc.streams == ("orders", "positions", "deliveries")
    assert svc.interval_s == 45.0


# ------------------------------------------------------------------------------- feeds
async def test_stale_quote_feed_raised_once_counted_cleared_once(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    svc = _svc(bus)
    await _fresh_quotes(svc, sim_clock)
    assert await _tick(svc, sim_clock, 0) == []
    await _fresh_quotes(svc, sim_clock, ["QQQ"])  # QQQ keeps ticking, SPY stops
    assert await _tick(svc, sim_clock, 30) == []  # 30 s old: not more than the 30 s limit
    await _fresh_quotes(svc, sim_clock, ["QQQ"])
    (raised,) = await _tick(svc, sim_clock, 10)  # SPY now 40 s old
    assert (raised.code, raised.subject, raised.severity, raised.state) == (
        "FEED_STALE",
        "quotes:SPY",
        "WARNING",
        "raised",
    )
    assert raised.count == 1 and "SPY" in raised.explanation and "40 s" in raised.explanation
    for _ in range(5):  # still stale: no alert storm
        await _fresh_quotes(svc, sim_clock, ["QQQ"])
        assert await _tick(svc, sim_clock, 30) == []
    await _fresh_quotes(svc, sim_clock)
    assert await _tick(svc, sim_clock, 0) == []  # first clean evaluation: not cleared yet (no flapping)
    await _fresh_quotes(svc, sim_clock)
    (cleared,) = await _tick(svc, sim_clock, 10)
    assert (cleared.code, cleared.subject, cleared.state, cleared.severity) == (
        "FEED_STALE",
        "quotes:SPY",
        "cleared",
        "WARNING",
    )
    assert cleared.count == 6 and cleared.correlation_id == raised.id
    assert len(await alerts(svc.redis, svc.keys)) == 2
    assert (await read_halt(svc.redis, svc.keys)).halted is False  # WARNING never halts


async def test_expired_quote_key_still_counts_as_stale(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    svc = _svc(bus)
    await _fresh_quotes(svc, sim_clock, ["SPY"])
    await _tick(svc, sim_clock, 0)
    await svc.redis.delete(svc.keys.snapshot("quote", "SPY"))  # the TTL ran out
    (raised,) = await _tick(svc, sim_clock, 45)
    assert raised.subject == "quotes:SPY"
    # QQQ was never seen: not judged (no alert at start-up for feeds that have not begun)
    assert all(a.subject != "quotes:QQQ" for a in await alerts(svc.redis, svc.keys))


async def test_stale_chain_feed_iso_asof(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    svc = _svc(bus, stale_feed_s={"chains": 180})  # quotes not watched here

    async def chain(at: datetime) -> None:
        await svc.redis.set(
            svc.keys.snapshot("chain_meta", "SPY"),
            json.dumps(
                {
                    "symbol": "SPY",
                    "spot": 590.0,
                    "asof": at.isoformat(),
                    "expiry": ["2026-11-20"],
                    "strike": [590.0],
                }
            ),
        )

    await chain(sim_clock.now())
    await _fresh_quotes(svc, sim_clock)
    assert await _tick(svc, sim_clock, 0) == []
    assert await _tick(svc, sim_clock, 170) == []
    (raised,) = await _tick(svc, sim_clock, 20)
    assert raised.subject == "chains:SPY" and raised.code == "FEED_STALE"


async def test_feeds_only_judged_while_the_session_is_open(bus, sim_clock) -> None:
    sim_clock.set(ny(15, 58))
    svc = _svc(bus)
    await _fresh_quotes(svc, sim_clock)
    await _tick(svc, sim_clock, 0)
    (raised,) = [a for a in await _tick(svc, sim_clock, 60) if a.subject == "quotes:SPY"]  # 15:59: stale
    assert raised.state == "raised"
    assert [
        a.state for a in await _tick(svc, sim_clock, 60) if a.subject == "quotes:SPY"
    ] == []  # 16:00 closed
    (cleared,) = [a for a in await _tick(svc, sim_clock, 60) if a.subject == "quotes:SPY"]
    assert cleared.state == "cleared"
    for _ in range(3):  # after hours: old quotes are not an anomaly
        assert await _tick(svc, sim_clock, 600) == []


async def test_session_open_grace(bus, sim_clock) -> None:
    """Yesterday's last quote is not stale at 09:30:05; it is once the threshold passes after the open."""
    sim_clock.set(ny(15, 59, 50))  # Friday
    svc = _svc(bus)
    await _fresh_quotes(svc, sim_clock, ["SPY"])
    await svc.on_timer(sim_clock.now())
    sim_clock.set(ny(9, 30, 5, day=23))  # Monday
    assert await _tick(svc, sim_clock, 0) == []
    (raised,) = await _tick(svc, sim_clock, 30)
    assert raised.subject == "quotes:SPY"


# ------------------------------------------------------------------------------- broker
async def test_broker_disconnect_warning_then_critical_halt_then_clear(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    svc = _svc(bus, broker_down_critical_s=120)
    await svc.redis.hset(svc.keys.hash("broker"), "connected", "1")
    assert await _tick(svc, sim_clock, 0) == []
    await svc.redis.hset(svc.keys.hash("broker"), "connected", "0")
    (w,) = await _tick(svc, sim_clock, 30)
    assert (w.code, w.severity, w.state) == ("BROKER_DISCONNECTED", "WARNING", "raised")
    assert (await read_halt(svc.redis, svc.keys)).halted is False
    assert await _tick(svc, sim_clock, 60) == []
    (c,) = await _tick(svc, sim_clock, 60)  # down 120 s: escalates once
    assert (c.code, c.severity, c.state, c.count) == ("BROKER_DISCONNECTED", "CRITICAL", "raised", 3)
    assert "halted" in c.explanation
    halt = await read_halt(svc.redis, svc.keys)
    assert halt.halted and halt.by == "overseer" and "BROKER_DISCONNECTED" in halt.reason
    assert any(
        isinstance(e, ControlEvent) and e.action == "halt" and e.by == "overseer"
        for e in await events(svc.redis, svc.keys, "control")
    )
    assert await _tick(svc, sim_clock, 30) == []  # no repeated alerts, no repeated halts
    assert len([e for e in await events(svc.redis, svc.keys, "control")]) == 1
    await svc.redis.hset(svc.keys.hash("broker"), "connected", "1")
    assert await _tick(svc, sim_clock, 30) == []
    (cl,) = await _tick(svc, sim_clock, 30)
    assert (cl.state, cl.severity) == ("cleared", "CRITICAL")
    assert (await read_halt(svc.redis, svc.keys)).halted  # only an admin resumes


# ------------------------------------------------------------------------------- vendor divergence
async def test_vendor_vs_broker_divergence(bus, sim_clock) -> None:
    sim_clock.set(ny(11, 0))
    svc = _svc(bus, price_divergence_pct=0.5)
    ms = sim_clock.ms()
    await _fresh_quotes(svc, sim_clock)
    await svc.redis.set(svc.keys.snapshot("vendor_quote", "SPY"), json.dumps({"last": 590.5, "quote_ts": ms}))
    assert await _tick(svc, sim_clock, 0) == []  # 0.08 %
    await svc.redis.set(
        svc.keys.snapshot("vendor_quote", "SPY"), json.dumps({"price": 596.0, "quote_ts": ms})
    )
    (raised,) = await _tick(svc, sim_clock, 0)
    assert (raised.code, raised.subject) == ("PRICE_DIVERGENCE", "SPY") and "596" in raised.explanation
    assert await _tick(svc, sim_clock, 10) == []
    await svc.redis.set(svc.keys.snapshot("vendor_quote", "SPY"), json.dumps({"bid": 589.8, "ask": 590.2}))
    await _fresh_quotes(svc, sim_clock)
    await _tick(svc, sim_clock, 10)
    (cleared,) = await _tick(svc, sim_clock, 10)
    assert cleared.state == "cleared" and cleared.count == 2


# ------------------------------------------------------------------------------- account
async def _account(svc, **fields: Any) -> None:
    body = {
        "account_value": 100000,
        "day": "2026-11-20",
        "realized_today": 0,
        "unrealized": 0,
        "peak_equity": 100000,
        "premium_open": 0,
    }
    body.update(fields)
    await svc.redis.hset(svc.keys.hash("account"), mapping={k: str(v) for k, v in body.items()})


async def test_drawdown_warning_critical_halt_and_clear(bus, sim_clock) -> None:
    sim_clock.set(ny(12, 0))
    svc = _svc(bus)
    await _account(svc, realized_today=1000, peak_equity=106000)  # 4.72 % below the peak
    (w,) = await _tick(svc, sim_clock, 0)
    assert (w.code, w.severity) == ("DRAWDOWN", "WARNING") and "4.72%" in w.explanation
    assert await _tick(svc, sim_clock, 30) == []
    await _account(svc, realized_today=1000, unrealized=-1500, peak_equity=106000)  # 6.13 %
    (c,) = await _tick(svc, sim_clock, 30)
    assert (c.code, c.severity, c.state) == ("DRAWDOWN", "CRITICAL", "raised")
    assert (await read_halt(svc.redis, svc.keys)).halted
    assert await _tick(svc, sim_clock, 30) == []
    await _account(svc, realized_today=1000, unrealized=5000, peak_equity=106000)
    await _tick(svc, sim_clock, 30)
    (cl,) = await _tick(svc, sim_clock, 30)
    assert (cl.code, cl.state) == ("DRAWDOWN", "cleared")


async def test_daily_loss_levels_from_core_risk(bus, sim_clock) -> None:
    sim_clock.set(ny(12, 0))
    svc = _svc(bus, drawdown_warn_pct=50, drawdown_critical_pct=60)  # isolate the daily-loss detector
    await _account(svc, realized_today=-4500)
    (w,) = await _tick(svc, sim_clock, 0)
    assert (w.code, w.severity) == ("DAILY_LOSS", "WARNING")
    await _account(svc, realized_today=-6500)
    (c,) = await _tick(svc, sim_clock, 30)
    assert (c.code, c.severity) == ("DAILY_LOSS", "CRITICAL") and (
        await read_halt(svc.redis, svc.keys)
    ).halted


async def test_critical_explanation_from_the_model_with_guard(bus, sim_clock, anthropic_fake) -> None:
    sim_clock.set(ny(12, 0))
    svc = _svc(bus, anthropic_fake)
    anthropic_fake.queue_tool_input(
        {"text": "Equity fell 6.13% from the peak, past the 6% critical level."}, tool_name="write_note"
    )
    await _account(svc, realized_today=1000, unrealized=-1500, peak_equity=106000)
    (c,) = await _tick(svc, sim_clock, 0)
    assert c.severity == "CRITICAL"
    assert c.explanation == "Equity fell 6.13% from the peak, past the 6% critical level."
    req = anthropic_fake.last_request()
    assert req.forced_tool == "write_note" and "DRAWDOWN" in req.messages[0]["content"]
    (audit,) = await audits(svc.redis, svc.keys, "ai.call")
    assert audit.detail["purpose"] == "narrative.alert"
    # a model text with a number that is not in the facts is replaced by the template
    anthropic_fake.queue_tool_input(
        {"text": "Equity is down 9.9% and will fall further."}, tool_name="write_note"
    )
    await svc.redis.hset(svc.keys.hash("broker"), "connected", "0")
    (w,) = await _tick(svc, sim_clock, 30)
    assert w.code == "BROKER_DISCONNECTED" and "9.9" not in w.explanation
    assert w.explanation.startswith("The broker connection has been down")


# ------------------------------------------------------------------------------- slippage
def _fill(bus, slippage: float, mid: float = 2.0, purpose: str = "entry") -> FillEvent:
    return bus.make(
        FillEvent,
        order_id="o1",
        fill_id=bus.new_id(),
        purpose=purpose,
        symbol="SPY",
        expiry="2026-12-18",
        strike=590.0,
        right="C",
        side="BUY" if purpose == "entry" else "SELL",
        qty=1,
        price=mid + slippage,
        slippage=slippage,
        mid_at_order=mid,
        strategy="gamma_0dte",
    )


async def test_slippage_spike_raise_and_clear(bus, sim_clock) -> None:
    svc = _svc(bus, slippage_spike_pct=15.0, slippage_window=3)
    assert await _handle(svc, _fill(bus, 0.05)) == []  # 2.5 %
    assert await _handle(svc, _fill(bus, 0.30, purpose="exit")) == []  # exits are not entries
    (raised,) = await _handle(svc, _fill(bus, 1.0))  # avg (50 + 2.5) / 2 = 26 %
    assert (raised.code, raised.subject, raised.severity) == ("SLIPPAGE_SPIKE", "entries", "WARNING")
    assert await _handle(svc, _fill(bus, 0.4)) == []  # avg 24 %: still raised, no storm
    assert await _handle(svc, _fill(bus, 0.0)) == []  # window [0, 20, 50]: 23 %
    (cleared,) = await _handle(svc, _fill(bus, 0.0))  # [0, 0, 20]: 6.7 %
    assert cleared.state == "cleared" and cleared.count == 3


# ------------------------------------------------------------------------------- strategy degradation
def _closed(bus, pnl: float, strategy: str = "gamma_0dte") -> PositionEvent:
    return bus.make(
        PositionEvent,
        kind="closed",
        position_id=bus.new_id(),
        strategy=strategy,
        symbol="SPY",
        expiry="2026-11-20",
        strike=590.0,
        right="C",
        direction="bullish",
        horizon="0dte",
        qty=1,
        qty_open=0,
        price=1.0,
        entry_price=2.0,
        realized_pnl=pnl,
    )


async def test_strategy_degradation_disables_on_two_flags(bus, sim_clock) -> None:
    sim_clock.set(ny(11, 0))
    svc = _svc(bus, baseline_win_rate_pct=50, degradation_min_trades=10)
    for pnl in (50, 50, 50):
        assert await _handle(svc, _closed(bus, pnl)) == []
    for _ in range(5):  # 5 losses in a row: one flag only (too few trades for the others): INFO, logged
        assert await _handle(svc, _closed(bus, -100)) == []
    assert await svc.redis.hget(svc.keys.hash("strategies"), "gamma_0dte") is None
    assert await _handle(svc, _closed(bus, -100)) == []
    (alert,) = await _handle(
        svc, _closed(bus, -100)
    )  # 10 trades: 30 % wins, avg loss 100 > 1.5 x 50, streak 7
    assert (alert.code, alert.subject, alert.severity) == ("STRATEGY_DISABLED", "gamma_0dte", "WARNING")
    assert "gamma 0dte was switched off" in alert.explanation
    assert await svc.redis.hget(svc.keys.hash("strategies"), "gamma_0dte") == "disabled"
    (audit,) = await audits(svc.redis, svc.keys, "strategy.disable")
    assert set(audit.detail["flags"]) == {
        "win rate below baseline",
        "losses much larger than wins",
        "losing streak",
    }
    # further losses: no repeated alert; other strategies untouched
    assert await _handle(svc, _closed(bus, -100)) == []
    assert await _handle(svc, _closed(bus, -100, strategy="moc_imbalance")) == []
    assert await _tick(svc, sim_clock, 30) == []  # still disabled: stays raised
    await svc.redis.hset(svc.keys.hash("strategies"), "gamma_0dte", "enabled")  # an admin re-enables it
    (cleared,) = await _tick(svc, sim_clock, 30)
    assert (cleared.code, cleared.state) == ("STRATEGY_DISABLED", "cleared")


def test_strategy_health_flags() -> None:
    kw: dict[str, Any] = {
        "baseline_win_rate_pct": 55,
        "margin_pts": 10,
        "loss_win_ratio": 1.5,
        "max_losing_streak": 5,
        "min_trades": 10,
    }
    h = d.strategy_health([-10, -10, -10, -10, -10], **kw)
    assert h.flags == ("losing_streak",)
    h = d.strategy_health([10, -10] * 10, **kw)  # 50 % wins vs 55 - 10 = 45: fine; losses equal wins
    assert h.flags == () and h.trades == 20
    h = d.strategy_health([10, -20, -20, 10, -20, -20, 10, -20, -20, 10], **kw)  # 40 %, 20 > 15
    assert h.flags == ("win_rate", "loss_size")
    assert d.strategy_findings("x", h, 55).code == "STRATEGY_DISABLED"


# ------------------------------------------------------------------------------- deliveries and dead letters
def _delivery(bus, status: str, channel: str = "discord", attempts: int = 1) -> DeliveryEvent:
    return bus.make(
        DeliveryEvent,
        channel=channel,
        tier="premium",
        event="fill",
        status=status,
        attempts=attempts,
        error="HTTP 500" if status != "delivered" else "",
    )


async def test_delivery_dead_letter_raised_once_cleared_on_delivery(bus, sim_clock) -> None:
    svc = _svc(bus)
    for _ in range(3):
        assert await _handle(svc, _delivery(bus, "retry")) == []  # retries: INFO only (logged)
    (raised,) = await _handle(svc, _delivery(bus, "dead_letter", attempts=6))
    assert (raised.code, raised.subject, raised.severity) == ("DELIVERY_DEAD_LETTER", "discord", "WARNING")
    assert "6 attempts" in raised.explanation
    assert await _handle(svc, _delivery(bus, "dead_letter", attempts=6)) == []  # counted, not re-raised
    assert await _handle(svc, _delivery(bus, "delivered", channel="x")) == []  # another channel
    (cleared,) = await _handle(svc, _delivery(bus, "delivered"))
    assert cleared.state == "cleared" and cleared.count == 2


async def test_bus_dead_letters(bus, sim_clock) -> None:
    sim_clock.set(ny(11, 0))
    svc = _svc(bus)
    assert await _tick(svc, sim_clock, 0) == []
    await svc.redis.xadd(svc.keys.dlq("execution"), {"stream": "s", "entry": "1-0", "error": "boom"})
    await svc.redis.sadd(svc.keys.dlq_index(), "execution")  # as the consumer does when it dead-letters
    (raised,) = await _tick(svc, sim_clock, 30)
    assert (raised.code, raised.subject) == ("DEAD_LETTER", "execution") and "1 event" in raised.explanation
    assert await _tick(svc, sim_clock, 30) == []
    await svc.redis.xadd(svc.keys.dlq("execution"), {"stream": "s", "entry": "2-0", "error": "boom"})
    assert await _tick(svc, sim_clock, 30) == []  # more dead letters: counted
    (cleared,) = await _tick(svc, sim_clock, 600)  # ten quiet minutes
    assert cleared.state == "cleared" and cleared.count == 2


# ------------------------------------------------------------------------------- in the lock-step runner
async def test_runs_in_the_sim_runner(bus, sim_clock) -> None:
    svc = _svc(bus, anomaly_interval_s=30)
    await seed_quote(svc.redis, svc.keys, ny(10, 0), "SPY")
    await SimRunner([svc], sim_clock).run(ny(10, 0), ny(10, 10))
    got = await alerts(svc.redis, svc.keys)
    assert [(a.code, a.subject, a.state) for a in got] == [("FEED_STALE", "quotes:SPY", "raised")]
    assert got[0].ts == int(ny(10, 1).timestamp() * 1000)  # first tick with the quote > 30 s old: 10:01


@pytest.mark.parametrize(
    "q,v,skew,expect",
    [
        ({"bid": 10, "ask": 10.2}, {"last": 10.1}, 30, None),
        ({"bid": 10, "ask": 10.2}, {"last": 11}, 30, "PRICE_DIVERGENCE"),
        (
            {"bid": 10, "ask": 10.2, "quote_ts": 1_790_000_000_000},
            {"last": 11, "quote_ts": 1_790_000_600_000},
            30,
            None,
        ),  # ten minutes apart: not comparable
        ({"bid": 0, "ask": 0, "last": 0}, {"last": 11}, 30, None),  # no broker price
    ],
)
def test_price_divergence_detector(q, v, skew, expect) -> None:
    f = d.price_divergence("X", q, v, 0.5, skew)
    assert (f.code if f else None) == expect


async def test_corrupt_redis_data_never_raises(bus, sim_clock) -> None:
    sim_clock.set(ny(11, 0))
    svc = _svc(bus)
    await svc.redis.set(svc.keys.snapshot("quote", "SPY"), "not json")
    await svc.redis.set(svc.keys.snapshot("chain_meta", "SPY"), '{"asof": "yesterday"}')
    await svc.redis.set(svc.keys.snapshot("vendor_quote", "SPY"), "[1, 2]")
    await svc.redis.hset(svc.keys.hash("anomaly_alerts"), "X|y", "{broken")
    await svc.redis.lpush(svc.keys.key("anomaly", "slippage"), "junk", "nan")
    await svc.redis.hset(svc.keys.hash("anomaly_delivery"), "discord", "many")
    assert await _tick(svc, sim_clock, 0) == []
    assert await _handle(svc, _fill(bus, 0.01)) == []
    assert await _handle(svc, _delivery(bus, "retry")) == []


# ------------------------------------------------------------------------------- runner loops
BEAT = {"budget_s": 31.0, "done_ms": 1_000_000, "iterations": 5, "errors": 0, "last_error": "",
        "last_error_ms": 0, "state": "running"}


def test_service_stalled_detector() -> None:
    assert d.service_stalled("execution", "consume", BEAT, 1_031_000) is None  # at the budget: fine
    f = d.service_stalled("execution", "consume", BEAT, 1_045_000)
    assert f is not None and (f.code, f.subject, f.severity) == ("SERVICE_STALLED", "execution:consume", "WARNING")
    assert "45s (budget 31s)" in f.message
    err = {**BEAT, "errors": 3, "last_error": "ConnectionError: refused", "last_error_ms": 1_010_000}
    f = d.service_stalled("distributor", "timer", err, 1_045_000)
    assert f is not None and f.facts["errors"] == 3 and "last: ConnectionError: refused" in f.message
    for state in ("stopped", "done"):  # a clean stop, a start that succeeded: never judged
        assert d.service_stalled("execution", "consume", {**BEAT, "state": state}, 9_999_999_999) is None


class _Stuck:
    """A consuming service whose handler awaits ``gate`` (the artificial stall)."""

    @staticmethod
    def build(ctx):
        from core.runtime.service import Service

        class Stuck(Service):
            name = "stuck"
            streams = ("control",)

            def __init__(self, c) -> None:
                super().__init__(c)
                self.gate = asyncio.Event()
                self.handled = 0

            async def handle(self, event: Event, tx) -> None:
                await self.gate.wait()
                self.handled += 1

        return Stuck(ctx)


async def _loop_state(svc: AnomalyService, service: str, loop: str) -> str | None:
    recs = await read_heartbeats(svc.redis, svc.keys)
    beat = recs.get(service, {}).get("loops", {}).get(loop)
    return None if beat is None else loop_state(beat, svc.wall_ms())


async def test_a_stalled_loop_raises_service_stalled_and_clears_when_it_recovers(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    watch = _svc(bus)
    fast = {"poll_block_ms": 20, "stall_allowance_s": 0.3, "heartbeat_every_s": 0.02,
            "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    stuck = _Stuck.build(context(bus, runner=fast))
    runner = LiveRunner([stuck])
    task = asyncio.create_task(runner.run())
    try:
        await until_async(lambda: _loop_state(watch, "stuck", "consume"), lambda s: s == "ok", 10, "heartbeat")
        assert [a for a in await _tick(watch, sim_clock, 30) if a.code == "SERVICE_STALLED"] == []

        await bus.publish(bus.make(ControlEvent, action="report", by="test", reason="x"))  # the handler hangs
        await until_async(lambda: _loop_state(watch, "stuck", "consume"), lambda s: s == "stalled", 10,
                          "the consume loop past its 0.32 s budget")
        (raised,) = [a for a in await _tick(watch, sim_clock, 30) if a.code == "SERVICE_STALLED"]
        assert (raised.subject, raised.severity, raised.state) == ("stuck:consume", "WARNING", "raised")
        assert "budget 0.32s" in raised.message and "consume loop of the stuck service" in raised.explanation
        assert [a for a in await _tick(watch, sim_clock, 30) if a.code == "SERVICE_STALLED"] == []  # no storm

        status = format_status(await collect_status(bus, watch.settings))
        assert "  stuck STALLED" in status and "(consume " in status

        text = Renderer().render("alert", a=alert_view(raised, False))  # what the Telegram admin gets
        assert "SERVICE_STALLED" in text and "stuck:consume" in text

        stuck.gate.set()  # recovers
        await until(lambda: stuck.handled == 1, 10, "the handler finished")
        await until_async(lambda: _loop_state(watch, "stuck", "consume"), lambda s: s == "ok", 10, "ok again")
        assert [a for a in await _tick(watch, sim_clock, 30) if a.code == "SERVICE_STALLED"] == []  # 1st clean
        (cleared,) = [a for a in await _tick(watch, sim_clock, 30) if a.code == "SERVICE_STALLED"]
        assert (cleared.subject, cleared.state, cleared.correlation_id) == ("stuck:consume", "cleared", raised.id)
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 10)
    assert await _loop_state(watch, "stuck", "consume") == "stopped"  # a clean stop is marked


async def test_services_never_seen_or_stopped_cleanly_are_not_stalled(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    watch = _svc(bus)
    old = watch.wall_ms() - 3_600_000  # an hour ago
    hb = Heartbeat(bus.redis, bus.keys, clock_ms=lambda: old)
    hb.begin("sigterm", "consume", 31.0)
    hb.begin("sigterm", "timer", 31.0)
    hb.stop_all()  # stopped cleanly an hour ago: not stalled
    await hb.flush()
    assert [a for a in await _tick(watch, sim_clock, 30) if a.code == "SERVICE_STALLED"] == []
    hb.begin("killed", "timer", 31.0)  # kill -9: no stop mark, so it is stalled
    await hb.flush()
    (raised,) = [a for a in await _tick(watch, sim_clock, 30) if a.code == "SERVICE_STALLED"]
    assert raised.subject == "killed:timer"
