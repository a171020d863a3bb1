"""The dedupe script on the real Redis: idempotency, cooldown with material change, the
concurrent race (8 workers on separate connections), exact stream fields, TTLs."""

from __future__ import annotations

import asyncio
import random
from datetime import date, timedelta

import pytest
import redis.asyncio as aioredis

from core.bus.bus import Bus
from core.bus.events import SignalEvent, decode, encode
from core.bus.ids import IdFactory
from core.clock.clock import SimClock
from core.domain.contract import OptionContract, Right
from core.domain.signal import Direction, Horizon, Quote, Signal
from core.signals.dedupe import Outcome, SignalDeduper, fingerprint, is_material_change

from ._build import ny

EXPIRY = date(2026, 11, 20)


def make_event(bus: Bus, *, strike: float = 590.0, conf: float = 60.0, snapshot: str = "snap-1",
               strategy: str = "gamma_0dte", symbol: str = "SPY") -> SignalEvent:
    sid = bus.new_id()
    c = OptionContract(symbol=symbol, expiry=EXPIRY, strike=strike, right=Right.CALL)
    sig = Signal(id=sid, ts=bus.clock.now(), strategy=strategy, symbol=symbol, instrument=c.instrument(),
                 qty=2,
                 limit=1.20, quote=Quote(bid=1.19, ask=1.21, ts=bus.clock.now()), stop=0.60,
                 targets=[1.80, 2.40], confidence=conf, triggers=["t"], snapshot_id=snapshot,
                 horizon=Horizon.ZERO_DTE, direction=Direction.BULLISH, spot=589.5)
    return bus.make(SignalEvent, correlation_id=sid, signal=sig)


@pytest.fixture
def at_1030(sim_clock: SimClock) -> SimClock:
    sim_clock.set(ny(10, 30))
    return sim_clock


@pytest.fixture
async def workers(redis_url, keys, at_1030):
    """8 buses on 8 separate Redis connections, same key prefix."""
    clients = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in range(8)]
    buses = [Bus(c, keys, at_1030, IdFactory(seed=100 + i)) for i, c in enumerate(clients)]
    yield buses
    for c in clients:
        await c.aclose()


async def _xlen(redis_client, keys) -> int:
    return await redis_client.xlen(keys.stream("signals"))


async def test_emit_writes_exact_encoded_fields_and_notifies(bus, redis_client, keys, at_1030) -> None:
    seen: list[set[str]] = []
    bus.on_publish(seen.append)
    d = SignalDeduper(bus, idempotency_ttl_s=3600)
    ev = make_event(bus)
    res = await d.submit(ev, cooldown_s=900)
    assert res.outcome == Outcome.EMITTED and res.emitted
    entries = await redis_client.xrange(keys.stream("signals"))
    assert len(entries) == 1 and entries[0][0] == res.detail
    assert entries[0][1] == encode(ev)
    assert decode(entries[0][1]) == ev
    assert seen == [{keys.stream("signals")}]
    idem = d.idempotency_key("snap-1", "gamma_0dte")
    assert await redis_client.get(idem) == res.detail
    assert 3500 < await redis_client.ttl(idem) <= 3600
    fp_key = d.fingerprint_key(fingerprint(ev.signal, at_1030.now()))
    assert fp_key.startswith(f"{keys.prefix}:k:sig_fp:20261120:SPY:gamma_0dte:BUY:20261120:C:590:100")
    h = await redis_client.hgetall(fp_key)
    assert float(h["conf"]) == 60.0 and int(h["ts"]) == at_1030.ms() and h["signal_id"] == ev.signal.id
    assert await redis_client.ttl(fp_key) > 86_400
    # a non-emitting outcome does not notify
    await d.submit(make_event(bus), cooldown_s=900)
    assert len(seen) == 1


async def test_idempotency_replay_is_duplicate(bus, redis_client, keys, at_1030) -> None:
    d = SignalDeduper(bus)
    assert (await d.submit(make_event(bus, conf=60), cooldown_s=900)).outcome == Outcome.EMITTED
    # same snapshot + strategy again: duplicate, whatever the confidence or time
    assert (await d.submit(make_event(bus, conf=90), cooldown_s=900)).outcome == Outcome.DUPLICATE
    at_1030.advance(3600)
    assert (await d.submit(make_event(bus, conf=60), cooldown_s=900)).outcome == Outcome.DUPLICATE
    # a suppressed key is remembered too
    res = await d.submit(make_event(bus, conf=60, snapshot="s2"), cooldown_s=7200)
    assert res.outcome == Outcome.COOLDOWN
    res = await d.submit(make_event(bus, conf=99, snapshot="s2"), cooldown_s=7200)
    assert res.outcome == Outcome.DUPLICATE
    # explicit key wins over the default
    assert (await d.submit(make_event(bus, conf=60, snapshot="s3"), cooldown_s=0,
                           idempotency="snap-1:gamma_0dte")).outcome == Outcome.DUPLICATE
    assert await _xlen(redis_client, keys) == 1


@pytest.mark.parametrize(("last", "new", "passes"), [
    (60.0, 62.0, False), (60.0, 63.0, True), (60.0, 57.0, True), (60.0, 57.5, False),
    (80.0, 83.9, False), (80.0, 84.0, True), (80.0, 76.0, True), (80.0, 76.5, False),
    (70.0, 73.5, True), (70.0, 73.4, False), (40.0, 40.0, False),
])
async def test_material_change_inside_cooldown(bus, redis_client, keys, at_1030, last, new, passes) -> None:
    d = SignalDeduper(bus)
    assert (await d.submit(make_event(bus, conf=last, snapshot="a"), cooldown_s=900)).emitted
    at_1030.advance(60)
    res = await d.submit(make_event(bus, conf=new, snapshot="b"), cooldown_s=900)
    assert res.emitted is passes
    assert is_material_change(new, last) is passes
    if not passes:
        assert res.outcome == Outcome.COOLDOWN and float(res.detail) == last
    assert await _xlen(redis_client, keys) == (2 if passes else 1)


async def test_material_change_resets_the_reference(bus, at_1030) -> None:
    d = SignalDeduper(bus)
    outcomes = []
    for i, conf in enumerate([60.0, 63.0, 66.0, 66.2]):
        at_1030.advance(30)
        res = await d.submit(make_event(bus, conf=conf, snapshot=f"s{i}"), cooldown_s=900)
        outcomes.append(res.outcome)
    # 63 vs 60 passes; 66 vs 63 needs max(3, 3.15): no; 66.2 vs 63: yes
    assert outcomes == [Outcome.EMITTED, Outcome.EMITTED, Outcome.COOLDOWN, Outcome.EMITTED]


async def test_cooldown_expires_and_days_and_contracts_are_separate(bus, redis_client, keys, at_1030) -> None:
    d = SignalDeduper(bus)
    assert (await d.submit(make_event(bus, snapshot="s1"), cooldown_s=900)).emitted
    at_1030.advance(899)
    assert (await d.submit(make_event(bus, snapshot="s2"), cooldown_s=900)).outcome == Outcome.COOLDOWN
    at_1030.advance(1)
    assert (await d.submit(make_event(bus, snapshot="s3"), cooldown_s=900)).emitted
    # another strike, another strategy: other fingerprints
    assert (await d.submit(make_event(bus, snapshot="s4", strike=591), cooldown_s=900)).emitted
    assert (await d.submit(make_event(bus, snapshot="s5", strategy="moc_imbalance"), cooldown_s=900)).emitted
    # next NY day: a new bucket even inside the cooldown
    res = await d.submit(make_event(bus, snapshot="s6"), cooldown_s=10 * 86_400)
    assert res.outcome == Outcome.COOLDOWN
    at_1030.set(at_1030.now() + timedelta(days=3))  # Monday
    assert (await d.submit(make_event(bus, snapshot="s7"), cooldown_s=10 * 86_400)).emitted
    assert await _xlen(redis_client, keys) == 5


async def test_race_same_idempotency_key_exactly_one(workers, redis_client, keys) -> None:
    for rnd in range(5):
        snap = f"race-{rnd}"
        dedupers = [SignalDeduper(b) for b in workers]
        events = [make_event(b, strike=600 + rnd, snapshot=snap) for b in workers]
        results = await asyncio.gather(*(d.submit(e, cooldown_s=900) for d, e in zip(dedupers, events,
                                                                                      strict=True)))
        outcomes = sorted(r.outcome.value for r in results)
        assert outcomes == ["duplicate"] * 7 + ["emitted"], outcomes
    assert await _xlen(redis_client, keys) == 5


async def test_race_same_fingerprint_exactly_one_per_cooldown(workers, redis_client, keys, at_1030) -> None:
    """8 workers, each with its own snapshot of the same contract and confidence."""
    rng = random.Random(5)
    strikes = [590.0, 591.0, 592.0, 593.0, 594.0]
    for rnd in range(3):
        jobs = []
        for w, b in enumerate(workers):
            d = SignalDeduper(b)
            order = strikes[:]
            rng.shuffle(order)
            for k in order:
                ev = make_event(b, strike=k, conf=70.0, snapshot=f"r{rnd}-w{w}-k{k:g}")
                jobs.append(d.submit(ev, cooldown_s=900))
        rng.shuffle(jobs)
        results = await asyncio.gather(*jobs)
        emitted = [r for r in results if r.emitted]
        assert len(emitted) == len(strikes), [r.outcome for r in results]
        assert sum(r.outcome == Outcome.COOLDOWN for r in results) == len(results) - len(strikes)
        at_1030.advance(900)  # next round: the cooldown is over, one more per fingerprint
    entries = await redis_client.xrange(keys.stream("signals"))
    assert len(entries) == 3 * len(strikes)
    per_strike: dict[float, int] = {}
    for _id, fields in entries:
        s = decode(fields).signal  # type: ignore[attr-defined]
        per_strike[s.instrument.strike] = per_strike.get(s.instrument.strike, 0) + 1
    assert per_strike == {k: 3 for k in strikes}


async def test_race_material_change_passes_once(workers, redis_client, keys) -> None:
    """Everyone re-sends at +10 points inside the cooldown: exactly one passes."""
    first = SignalDeduper(workers[0])
    assert (await first.submit(make_event(workers[0], conf=60, snapshot="base"), cooldown_s=900)).emitted
    results = await asyncio.gather(*(SignalDeduper(b).submit(make_event(b, conf=70, snapshot=f"w{i}"),
                                                             cooldown_s=900) for i, b in enumerate(workers)))
    assert sum(r.emitted for r in results) == 1
    assert await _xlen(redis_client, keys) == 2


async def test_stream_is_trimmed_approximately(redis_client, keys, at_1030) -> None:
    bus = Bus(redis_client, keys, at_1030, IdFactory(seed=3), maxlen=1000)
    d = SignalDeduper(bus)
    for i in range(1300):
        await d.submit(make_event(bus, snapshot=f"m{i}", strike=500 + i), cooldown_s=0)
    n = await _xlen(redis_client, keys)
    assert 1000 <= n < 1300
