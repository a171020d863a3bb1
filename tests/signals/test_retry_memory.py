"""A failed signal handling is retried with the memory it had the first time: hysteresis,
confidence smoothing and the snapshot history are put back when the handling fails (here the
connection drops at the dedupe script, on the real Redis), so the retry decides exactly as an
undisturbed run would."""

from __future__ import annotations

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.bus.bus import Bus
from core.bus.ids import IdFactory
from core.runtime.consumers import consumer_for
from core.signals.service import SignalService, SignalServiceOptions
from tests.bus.cut_redis import Cut, cut_client
from tests.helpers import make_context
from tests.signals.test_service import GAMMA_FEATURES, GAMMA_FIELDS, _analytics, _settings, _store_chain

from ._build import ny


async def test_failed_handling_restores_memory_and_the_retry_smooths_once(redis_url, redis_client, keys, sim_clock):
    cut = Cut()
    client = cut_client(redis_url, cut, retry=Retry(NoBackoff(), 0))
    bus = Bus(client, keys, sim_clock, IdFactory(seed=3))
    try:
        chain = await _store_chain(redis_client, keys, 10, 30)
        strong = {**GAMMA_FIELDS, "obi_l5": 0.6}
        weak = {**GAMMA_FIELDS, "obi_l5": 0.12}
        settings = _settings(gamma_0dte={"min_confidence": 0})
        snaps = [_analytics(bus, chain, "s0", strong, GAMMA_FEATURES, asof=ny(10, 30, 0)),
                 _analytics(bus, chain, "s1", weak, GAMMA_FEATURES, asof=ny(10, 30, 1))]
        sim_clock.set(ny(10, 30, 3))
        raw_svc = SignalService(make_context(bus, settings=settings), SignalServiceOptions(confidence_ema_alpha=1.0))
        raw = [(await raw_svc.process(s))[0][0].confidence for s in snaps]
        assert abs(raw[0] - raw[1]) > 1  # smoothing twice would show

        svc = SignalService(make_context(bus, settings=settings), SignalServiceOptions(confidence_ema_alpha=0.5))
        cons = consumer_for(svc)
        await cons.ensure_groups()
        await bus.publish(snaps[0])
        await cons.poll(svc.handle)
        before = (dict(svc.previous), dict(svc._ema))
        history = svc.history.get("SPY")
        assert history.holds("s0") and not history.holds("s1")

        cut.fail_next("EVALSHA")  # the dedupe script of s1's signal never reaches Redis
        await bus.publish(snaps[1])
        await cons.poll(svc.handle)
        assert cut.cuts == 1 and cons.failed == 1
        assert (dict(svc.previous), dict(svc._ema)) == before
        assert not history.holds("s1")

        sim_clock.advance(1)
        await cons.poll(svc.handle)  # the retry, in the running consumer
        assert history.holds("s1")
        (conf, ts), = svc._ema.values()
        assert ts == snaps[1].asof
        assert conf == pytest.approx(0.5 * raw[1] + 0.5 * raw[0], abs=0.051)
    finally:
        await client.aclose()
