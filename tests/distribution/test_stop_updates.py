"""Updates worth reading (issue 11): trailing-stop moves are coalesced per trade at the distribution
layer (bot/distribution/coalesce.py), breakeven / scale-out / close always post and carry the stop,
basic gets a sentence without the stop's price, premium says what changed instead of repeating the
entry rationale. Real Redis, the service's real consumer, the local outbox."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bot.distribution.coalesce import SUPPRESSED, StopPolicy, StopState, decide
from bot.distribution.render import Renderer
from core.runtime import metrics
from tests.distribution._util import Harness, position

ENTRY, FIRST_STOP = 2.15, 1.55
EXPLANATION = "Dealers are short gamma above the flip; momentum confirmed."
# 20 trail moves, one every 30 s for 10 minutes: 1.62, 1.67, ... 2.57 (never exactly the entry price)
MOVES = [(30 * k, round(1.57 + 0.05 * k, 2)) for k in range(1, 21)]


def _lines(out: Path, event: str | None = None, tier: str | None = None) -> list[dict[str, Any]]:
    path = out / "outbox.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    return [r for r in rows if (event is None or r["event"] == event) and (tier is None or r["tier"] == tier)
            and r["channel"] == "discord"]


def _suppressed(why: str) -> float:
    return SUPPRESSED.labels(why)._value.get()


async def _trade(h: Harness, bus, moves=MOVES, *, partial_at: int = 620, close_at: int = 700) -> None:
    """Entry at t=0, the trail moves, a scale-out and the close (all at their own simulated time)."""
    start = h.clock.ms()

    async def at(t: int, kind: str, **fields: Any) -> None:
        await h.advance((start + t * 1000 - h.clock.ms()) / 1000)
        await h.publish(position(bus, kind, **fields))

    await at(0, "entry", stop=FIRST_STOP)
    for t, stop in moves:
        await at(t, "stop_moved", stop=stop, reason="trail_high_water", qty_open=3)
    last = moves[-1][1]
    await at(partial_at, "partial_exit", stop=last, price=3.33, reason="target t1 +50%")
    await at(close_at, "closed", stop=last, price=2.61, reason="trailing_stop")
    await h.advance(400)


async def test_stop_posts_are_bounded_and_meaningful_ones_always_go(bus, make_service, tmp_path):
    h = await make_service(sink="outbox", out_dir=str(tmp_path), channels=["discord"])
    interval = h.svc.dist.stop_updates.min_interval_s
    too_soon, too_small = _suppressed("too_soon"), _suppressed("too_small")
    await _trade(h, bus)
    window_s = MOVES[-1][0] - MOVES[0][0] + 30
    meaningful = 1  # the stop reaching the entry price (2.17 at t=360)
    for tier in ("premium", "basic"):
        posts = _lines(tmp_path, "stop_moved", tier)
        assert len(posts) <= math.ceil(window_s / interval) + meaningful, (tier, len(posts))
        # exactly: 1.77 at t=120 (first move >= 10 % of the entry above 1.55), breakeven 2.17 at t=360
        assert len(posts) == 2, [p["text"] for p in posts]
        assert len(_lines(tmp_path, "partial_exit", tier)) == 1 and len(_lines(tmp_path, "closed", tier)) == 1
    prem = [p["text"] for p in _lines(tmp_path, "stop_moved", "premium")]
    assert "New stop: $1.77" in prem[0] and "Moved from: $1.55 (3 moves since then not posted)" in prem[0]
    assert "New stop: $2.17" in prem[1] and "Moved from: $1.77 (7 moves since then not posted)" in prem[1]
    assert "+$2.00 per contract locked in" in prem[1] and "trailing stop followed a new high" in prem[1]
    # every held-back move is counted (18: 3 too small, 15 too soon)
    assert _suppressed("too_small") - too_small == 3 and _suppressed("too_soon") - too_soon == 15


async def test_breakeven_posts_even_inside_the_interval(bus, make_service, tmp_path):
    h = await make_service(sink="outbox", out_dir=str(tmp_path), channels=["discord"])
    # 1.82 at 10 s (posted), 1.90 at 20 s (too soon), 2.15 = entry at 30 s: breakeven, posted anyway
    await _trade(h, bus, [(10, 1.82), (20, 1.90), (30, ENTRY), (40, 2.30)], partial_at=50, close_at=60)
    basic = [p["text"] for p in _lines(tmp_path, "stop_moved", "basic")]
    assert len(basic) == 2 and "Stop raised to breakeven" in basic[1]
    assert "Stop tightened" in basic[0]
    lock = position(bus, "stop_moved", stop=2.17, entry_price=ENTRY, reason="breakeven_lock")
    assert "Stop raised to breakeven" in Renderer().position(lock, "discord", "basic", "0" * 24).text
    prem = [p["text"] for p in _lines(tmp_path, "stop_moved", "premium")]
    assert "New stop: $2.15" in prem[1] and "If the stop is hit: breakeven" in prem[1]


async def test_scale_out_and_close_carry_the_current_stop(bus, make_service, tmp_path):
    h = await make_service(sink="outbox", out_dir=str(tmp_path), channels=["discord"])
    await _trade(h, bus)
    (partial,) = _lines(tmp_path, "partial_exit", "premium")
    # 2.17 was the last posted stop; 8 later moves (up to 2.57) were held back and are shown here
    assert "Stop: $2.57 (last posted $2.17; 8 moves since then not posted)" in partial["text"]
    assert "Sold: 2 @ $3.33" in partial["text"] and "Realized so far: +$176.70" in partial["text"]
    assert "Reason: target t1 reached, +50%" in partial["text"]
    (closed,) = _lines(tmp_path, "closed", "premium")
    assert "Stop at exit: $2.57" in closed["text"] and "Reason: the trailing stop was hit" in closed["text"]
    assert "Stop: above entry (a gain locked in)" in _lines(tmp_path, "partial_exit", "basic")[0]["text"]
    assert "Stop at exit: above entry (a gain locked in)" in _lines(tmp_path, "closed", "basic")[0]["text"]
    # the per-trade state is gone at the close
    assert not await bus.redis.exists(h.svc.stops.key("pos-1"))


async def test_basic_never_shows_a_stop_price_and_premium_updates_drop_the_rationale(bus, make_service, tmp_path):
    h = await make_service(sink="outbox", out_dir=str(tmp_path), channels=["discord"])
    await _trade(h, bus)
    stops = {f"{s:.2f}" for _, s in MOVES} | {f"{FIRST_STOP:.2f}"}
    basic = _lines(tmp_path, tier="basic")
    assert len(basic) == 1 + 2 + 1 + 1
    for line in basic:
        assert not [s for s in stops if s in line["text"]], line["text"]
        assert "(set)" not in line["text"]
    for line in _lines(tmp_path, tier="premium"):
        has_why = EXPLANATION in line["text"] or "Why:" in line["text"]
        assert has_why == (line["event"] == "entry"), (line["event"], line["text"])


async def test_state_is_written_with_the_handling_and_expires(bus, make_service, tmp_path):
    h = await make_service(sink="outbox", out_dir=str(tmp_path), channels=["discord"])
    await h.publish(position(bus, "entry", stop=FIRST_STOP))
    key = h.svc.stops.key("pos-1")
    assert await bus.redis.hgetall(key) == {"stop": "1.55", "held": "0"}
    assert 0 < await bus.redis.ttl(key) <= h.svc.dist.record_ttl_s
    await h.advance(30)
    await h.publish(position(bus, "stop_moved", stop=1.60))  # too small: held, nothing scheduled
    assert (await bus.redis.hgetall(key))["held"] == "1"
    await h.advance(120)
    assert len(_lines(tmp_path, "stop_moved")) == 0


async def test_an_unreadable_state_counts_and_posts(bus, make_service, tmp_path):
    h = await make_service(sink="outbox", out_dir=str(tmp_path), channels=["discord"])
    await h.publish(position(bus, "entry", stop=FIRST_STOP))
    await bus.redis.hset(h.svc.stops.key("pos-1"), mapping={"stop": "not-a-number"})
    before = metrics.REJECTED.labels("distributor", "bad_stop_state")._value.get()
    await h.advance(10)
    await h.publish(position(bus, "stop_moved", stop=1.60))
    await h.advance(120)
    assert metrics.REJECTED.labels("distributor", "bad_stop_state")._value.get() == before + 1
    (prem,) = _lines(tmp_path, "stop_moved", "premium")
    assert "Moved from: not known" in prem["text"]


async def test_zero_policy_posts_every_move(bus, make_service, tmp_path):
    h = await make_service(sink="outbox", out_dir=str(tmp_path), channels=["discord"],
                           stop_updates={"min_interval_s": 0, "min_move_pct": 0})
    await _trade(h, bus)
    assert len(_lines(tmp_path, "stop_moved", "premium")) == len(MOVES)


def test_decide_rules(bus) -> None:
    pol = StopPolicy(min_interval_s=300, min_move_pct=10)
    ev = position(bus, "stop_moved", stop=2.40, entry_price=ENTRY)
    at = ev.ts
    assert decide(pol, None, ev).why == "first_stop"
    assert decide(pol, StopState(stop=None, ts=None), ev).why == "first_stop"
    assert decide(pol, StopState(stop=2.60, ts=at), ev).why == "lowered"  # more risk: always said
    assert decide(pol, StopState(stop=2.15, ts=None), ev).why == "moved"  # +0.25 >= 10 % of 2.15
    assert decide(pol, StopState(stop=2.20, ts=at - 299_999), position(bus, "stop_moved", stop=2.60)).why \
        == "too_soon"
    assert decide(pol, StopState(stop=2.30, ts=at - 300_000), ev).why == "too_small"
    assert decide(pol, StopState(stop=2.10, ts=at), ev).why == "breakeven"


def test_premium_update_without_context_says_so(bus) -> None:
    ev = position(bus, "stop_moved", stop=1.95, reason="trail_activated")
    text = Renderer().position(ev, "discord", "premium", "0123456789abcdef01234567", 3).text
    assert "Moved from: not known" in text and "trailing stop switched on" in text and "Why:" not in text
