"""SignalService end to end on the real Redis, with chain snapshots from the simulator."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from core.bus.events import AnalyticsEvent, SignalEvent, decode
from core.config.loader import ConfigError, load_settings
from core.config.model import Settings, StrategySettings
from core.domain.contract import Right
from core.domain.signal import Direction, Horizon
from core.market.chain_codec import encode_chain
from core.runtime.consumers import consumer_for
from core.signals.service import SignalService, SignalServiceOptions
from tests.helpers import make_context

from ._build import DAY, HALF_DAY, ms, ny, sim_chain

GAMMA_FIELDS = {"max_gamma_strike": 586.0, "obi_l5": 0.30, "liquidity_grade": "A", "zero_gamma": 575.0}
GAMMA_FEATURES = {"flow_buy_ratio_5m": 0.66, "price_change_5m_pct": 0.02}


def _settings(**strategy_changes: dict) -> Settings:
    base = load_settings(environ={})  # config/default.yaml
    data = base.model_dump()
    for name, change in strategy_changes.items():
        data["strategies"][name] = {**data["strategies"][name], **change}
    return Settings.model_validate(data)


def _service(bus, settings: Settings | None = None) -> SignalService:
    return SignalService(make_context(bus, settings=settings))


async def _store_chain(redis_client, keys, h: int, m: int, symbol: str = "SPY"):
    chain = sim_chain(symbol, h, m)
    await redis_client.set(keys.snapshot("chain", symbol), encode_chain(chain), ex=300)
    return chain


def _analytics(bus, chain, snapshot_id: str, fields=None, features=None, asof: datetime | None = None):
    return bus.make(AnalyticsEvent, correlation_id=f"an:{chain.symbol}", snapshot_id=snapshot_id,
                    symbol=chain.symbol, spot=chain.spot, asof=ms(asof or chain.asof),
                    features=dict(features or {}), **dict(fields or {}))


async def _signals(redis_client, keys) -> list[SignalEvent]:
    return [decode(f) for _i, f in await redis_client.xrange(keys.stream("signals"))]  # type: ignore[misc]


# --------------------------------------------------------------------------- windows
@pytest.mark.parametrize(("symbol", "when", "expected"), [
    ("SPY", ny(9, 44, 59), set()),
    ("SPY", ny(9, 45), {"gamma_0dte"}),
    ("SPY", ny(14, 59, 59), {"gamma_0dte"}),
    ("SPY", ny(15, 0), {"overnight_1dte"}),
    ("SPY", ny(15, 30), {"overnight_1dte", "moc_imbalance"}),
    ("SPY", ny(15, 45), {"moc_imbalance"}),
    ("SPY", ny(15, 50), set()),
    ("SPX", ny(10, 0), {"gamma_0dte"}),
    ("AAPL", ny(9, 45), {"directional_swing"}),
    ("AAPL", ny(15, 44), {"directional_swing"}),
    ("AAPL", ny(15, 45), set()),
    ("TSLA", ny(12, 0), {"directional_swing"}),
    ("XYZ", ny(12, 0), set()),
    ("SPY", ny(12, 0, day=DAY + timedelta(days=1)), set()),        # Saturday
    ("SPY", ny(12, 0, day=HALF_DAY), {"gamma_0dte"}),               # 13:00 close
    ("SPY", ny(13, 0, day=HALF_DAY), set()),
    ("SPY", ny(15, 35, day=HALF_DAY), set()),
])
async def test_strategy_windows(bus, symbol: str, when: datetime, expected: set[str]) -> None:
    svc = _service(bus)
    assert {n for n, _s, _c in await svc.active_strategies(symbol, when)} == expected


async def test_strategy_switches(bus, redis_client, keys) -> None:
    svc = _service(bus, _settings(overnight_1dte={"enabled": False}))
    assert {n for n, *_ in await svc.active_strategies("SPY", ny(15, 35))} == {"moc_imbalance"}
    await redis_client.hset(keys.hash("strategies"), mapping={"overnight_1dte": "enabled",
                                                              "moc_imbalance": "disabled"})
    assert {n for n, *_ in await svc.active_strategies("SPY", ny(15, 35))} == {"overnight_1dte"}


# --------------------------------------------------------------------------- end to end
async def test_end_to_end_gamma_signal_through_the_consumer(bus, redis_client, keys, sim_clock) -> None:
    sim_clock.set(ny(10, 30, 2))
    chain = await _store_chain(redis_client, keys, 10, 30)
    svc = _service(bus)
    await svc.start()
    cons = consumer_for(svc)
    assert cons is not None
    ev = _analytics(bus, chain, "snap-A", GAMMA_FIELDS, GAMMA_FEATURES)
    await bus.publish(ev)
    assert await cons.poll(svc.handle) == 1
    sigs = await _signals(redis_client, keys)
    assert len(sigs) == 1
    se = sigs[0]
    s = se.signal
    assert isinstance(se, SignalEvent) and se.correlation_id == s.id and se.id != s.id
    assert s.strategy == "gamma_0dte" and s.symbol == "SPY" and s.snapshot_id == "snap-A"
    assert s.direction == Direction.BULLISH and s.instrument.right == Right.CALL
    assert s.horizon == Horizon.ZERO_DTE and s.instrument.expiry == DAY
    assert s.qty == 2  # config/default.yaml
    assert s.quote.ts == chain.asof and s.ts == sim_clock.now()
    assert s.stop < s.limit < s.targets[0] and 55 <= s.confidence <= 100
    assert svc.counts["emitted"] == 1
    assert (await redis_client.xpending(keys.stream("analytics"), "signals"))["pending"] == 0

    # the same snapshot published again (another event id): duplicate, nothing new
    await bus.publish(_analytics(bus, chain, "snap-A", GAMMA_FIELDS, GAMMA_FEATURES))
    await cons.poll(svc.handle)
    assert svc.counts["duplicate"] == 1 and len(await _signals(redis_client, keys)) == 1

    # a minute later, same setup, same strike (hysteresis): inside the cooldown
    sim_clock.set(ny(10, 31, 2))
    await bus.publish(_analytics(bus, chain, "snap-B", GAMMA_FIELDS, GAMMA_FEATURES, asof=ny(10, 31)))
    await cons.poll(svc.handle)
    assert svc.counts["cooldown"] == 1 and len(await _signals(redis_client, keys)) == 1

    # ... but a materially stronger setup passes inside the cooldown
    sim_clock.set(ny(10, 31, 20))
    strong = {**GAMMA_FIELDS, "obi_l5": 0.6}
    await bus.publish(_analytics(bus, chain, "snap-C", strong, {**GAMMA_FEATURES, "flow_buy_ratio_5m": 0.8},
                                 asof=ny(10, 31, 15)))
    await cons.poll(svc.handle)
    sigs = await _signals(redis_client, keys)
    assert len(sigs) == 2 and sigs[1].signal.confidence >= sigs[0].signal.confidence + 3
    assert sigs[1].signal.instrument == sigs[0].signal.instrument


async def test_crash_after_emit_redelivery_does_not_duplicate(bus, redis_client, keys, sim_clock) -> None:
    """A worker emits then dies before the ack: the redelivered event is a duplicate."""
    sim_clock.set(ny(10, 30, 2))
    chain = await _store_chain(redis_client, keys, 10, 30)
    ev = _analytics(bus, chain, "snap-X", GAMMA_FIELDS, GAMMA_FEATURES)
    first = _service(bus)
    await first.process(ev)  # emitted, never acked
    second = _service(bus)
    await second.start()
    await second.process(ev)
    assert first.counts["emitted"] == 1 and second.counts["duplicate"] == 1
    assert len(await _signals(redis_client, keys)) == 1


@pytest.mark.parametrize(("case", "reason"), [
    ("missing", "chain_missing"),
    ("stale", "chain_stale"),
    ("garbage", "bad_chain"),
    ("other_symbol", "bad_chain"),
])
async def test_chain_problems_are_counted(bus, redis_client, keys, sim_clock, case: str, reason: str) -> None:
    sim_clock.set(ny(10, 30, 2))
    chain = sim_chain("SPY", 10, 30)
    key = keys.snapshot("chain", "SPY")
    if case == "stale":
        await redis_client.set(key, encode_chain(chain))
        chain_ev_asof = ny(10, 33)  # the chain is 3 minutes older than the snapshot
        sim_clock.set(ny(10, 33, 2))
    else:
        chain_ev_asof = chain.asof
        if case == "garbage":
            await redis_client.set(key, "{not json")
        elif case == "other_symbol":
            await redis_client.set(key, encode_chain(sim_chain("AAPL", 10, 30)))
    svc = _service(bus)
    out = await svc.process(_analytics(bus, chain, "s1", GAMMA_FIELDS, GAMMA_FEATURES, asof=chain_ev_asof))
    assert out == [] and svc.counts[reason] == 1
    assert len(await _signals(redis_client, keys)) == 0


@pytest.mark.parametrize("bad", [
    {"features": {**GAMMA_FEATURES, "flow_buy_ratio_5m": float("nan")}},
    {"fields": {**GAMMA_FIELDS, "obi_l5": float("inf")}},
    {"spot": float("nan")},
    {"spot": -1.0},
])
async def test_bad_snapshots_are_counted(bus, redis_client, keys, sim_clock, bad: dict) -> None:
    sim_clock.set(ny(10, 30, 2))
    chain = await _store_chain(redis_client, keys, 10, 30)
    ev = _analytics(bus, chain, "s1", GAMMA_FIELDS, GAMMA_FEATURES)
    # the event model refuses these values (core.domain.values); the service still checks what it
    # is handed, so the bad values go in unvalidated
    update = {**bad.get("fields", {}), **({"features": bad["features"]} if "features" in bad else {})}
    ev = ev.model_copy(update={**update, **({"spot": bad["spot"]} if "spot" in bad else {})})
    with pytest.raises(ValidationError):
        AnalyticsEvent.model_validate(dict(ev))
    svc = _service(bus)
    assert await svc.process(ev) == []
    assert svc.counts["bad_snapshot"] == 1 and len(svc.history.get("SPY")) == 0
    assert len(await _signals(redis_client, keys)) == 0


async def test_none_fields_mean_no_signal_not_error(bus, redis_client, keys, sim_clock) -> None:
    sim_clock.set(ny(10, 30, 2))
    chain = await _store_chain(redis_client, keys, 10, 30)
    svc = _service(bus)
    ev = _analytics(bus, chain, "s1", {"liquidity_grade": None, "obi_l5": None}, {})
    assert await svc.process(ev) == []
    assert svc.counts["silent:gamma_0dte"] == 1 and len(svc.history.get("SPY")) == 1


async def test_old_snapshot_is_skipped(bus, redis_client, keys, sim_clock) -> None:
    sim_clock.set(ny(10, 40))
    chain = await _store_chain(redis_client, keys, 10, 30)
    svc = _service(bus)
    assert await svc.process(_analytics(bus, chain, "s1", GAMMA_FIELDS, GAMMA_FEATURES)) == []
    assert svc.counts["snapshot_stale"] == 1


async def test_low_confidence_is_not_emitted(bus, redis_client, keys, sim_clock) -> None:
    sim_clock.set(ny(10, 30, 2))
    chain = await _store_chain(redis_client, keys, 10, 30)
    svc = _service(bus, _settings(gamma_0dte={"min_confidence": 99}))
    out = await svc.process(_analytics(bus, chain, "s1", GAMMA_FIELDS, GAMMA_FEATURES))
    assert len(out) == 1 and out[0][1] is None and svc.counts["low_confidence"] == 1
    assert len(await _signals(redis_client, keys)) == 0


async def test_restart_rebuilds_history_and_keeps_statistics(bus, redis_client, keys, sim_clock) -> None:
    """rr25 history published before the restart drives overnight_1dte after it."""
    chain = sim_chain("SPY", 15, 10)
    for i in range(30):  # 13:00 .. 13:29, one snapshot a minute (gamma stays silent: no gamma fields)
        t = ny(13, i)
        sim_clock.set(t + timedelta(seconds=1))
        await bus.publish(_analytics(bus, chain, f"h{i}", {}, {"rr25_1dte": -0.033 if i % 2 else -0.027},
                                     asof=t))
    sim_clock.set(ny(15, 10, 2))
    await _store_chain(redis_client, keys, 15, 10)
    trigger = _analytics(bus, chain, "trigger", {"obi_l5": 0.2},
                         {"rr25_1dte": -0.020, "greek_flow_30m": 600_000.0, "flow_buy_ratio_5m": 0.6})
    cold = _service(bus)  # not started: no history, cannot compute the z-score
    assert await cold.process(trigger) == []
    restarted = _service(bus)
    await restarted.start()
    assert len(restarted.history.get("SPY")) == 30
    out = await restarted.process(trigger)
    assert [(c.strategy, r.outcome.value if r else None) for c, r in out] == [("overnight_1dte", "emitted")]
    sig = (await _signals(redis_client, keys))[0].signal
    assert sig.horizon == Horizon.ONE_DTE and any("rr25 +" in t for t in sig.triggers)


async def test_restart_rebuilds_strike_memory(bus, redis_client, keys, sim_clock) -> None:
    sim_clock.set(ny(10, 30, 2))
    chain = await _store_chain(redis_client, keys, 10, 30)
    svc = _service(bus)
    await svc.process(_analytics(bus, chain, "s1", GAMMA_FIELDS, GAMMA_FEATURES))
    sig = (await _signals(redis_client, keys))[0].signal
    again = _service(bus)
    await again.start()
    prev = again.previous[("SPY", "gamma_0dte", Direction.BULLISH)]
    assert (prev.expiry, prev.strike) == (sig.instrument.expiry, sig.instrument.strike)


async def test_all_four_strategies_on_simulator_chains(bus, redis_client, keys, sim_clock) -> None:
    """One emitted signal per strategy, each through the same service instance."""
    svc = _service(bus)
    await svc.start()
    # overnight needs intraday rr25 history: feed it through the service itself
    h_chain = sim_chain("SPY", 15, 10)
    for i in range(20):
        sim_clock.set(ny(14, 30 + i, 1))
        await svc.process(_analytics(bus, h_chain, f"h{i}", {}, {"rr25_1dte": -0.033 if i % 2 else -0.027,
                                                                  "flow_buy_ratio_5m": 0.66},
                                     asof=ny(14, 30 + i)))
    sim_clock.set(ny(15, 10, 2))
    c = await _store_chain(redis_client, keys, 15, 10)
    await svc.process(_analytics(bus, c, "on", {"obi_l5": 0.2}, {"rr25_1dte": -0.02, "greek_flow_30m": 6e5}))
    for i, mnt in enumerate(range(25, 35)):  # flow persistence before the MOC window
        sim_clock.set(ny(15, mnt, 1))
        await svc.process(_analytics(bus, c, f"f{i}", {}, {"flow_buy_ratio_5m": 0.66}, asof=ny(15, mnt)))
    sim_clock.set(ny(15, 35, 2))
    c = await _store_chain(redis_client, keys, 15, 35)
    await svc.process(_analytics(bus, c, "moc", {"obi_l5": 0.25},
                                 {"flow_buy_ratio_5m": 0.68, "depth_imbalance_5": 0.3,
                                  "price_change_15m_pct": 0.12}))
    c = await _store_chain(redis_client, keys, 15, 35, "AAPL")
    await svc.process(_analytics(bus, c, "sw", {"obi_l5": 0.1},
                                 {"alerts_bullish_30m": 7, "alerts_bearish_30m": 1,
                                  "dark_pool_buy_ratio_30m": 0.63,
                                  "iv_rank": 35.0, "days_to_earnings": 60.0}))
    sigs = [e.signal for e in await _signals(redis_client, keys)]
    by = {s.strategy: s for s in sigs}
    assert sorted(s.strategy for s in sigs) == ["directional_swing", "moc_imbalance", "overnight_1dte"]
    assert by["overnight_1dte"].horizon == Horizon.ONE_DTE
    assert by["moc_imbalance"].horizon == Horizon.ONE_DTE  # config: expiry_offset 1 (risk's 15:30 0DTE cutoff)
    assert by["directional_swing"].horizon == Horizon.SWING and by["directional_swing"].qty == 1
    assert all(s.contract().occ for s in sigs)
    assert len({s.id for s in sigs}) == len(sigs)


def test_window_config_is_half_open() -> None:
    s = _settings()
    assert s.strategies["gamma_0dte"].window == (time(9, 45), time(15, 0))


# --------------------------------------------------------------------------- config hooks
def test_strategy_params_from_config(bus) -> None:
    base = load_settings(environ={})
    g = {**base.strategies["gamma_0dte"].model_dump(), "params": {"pin_pct": 0.25}}
    good = base.model_copy(update={"strategies": {**base.strategies, "gamma_0dte": StrategySettings(**g)}})
    svc = _service(bus, good)
    assert svc.strategies["gamma_0dte"].pin_pct == 0.25  # type: ignore[attr-defined]
    g["params"] = {"pin_pcts": 0.3}
    bad = base.model_copy(update={"strategies": {**base.strategies, "gamma_0dte": StrategySettings(**g)}})
    with pytest.raises(ConfigError, match=r"strategies\.gamma_0dte\.params: .*unknown parameter"):
        _service(bus, bad)


def test_service_options_from_an_optional_signals_section() -> None:
    from_cfg = SignalServiceOptions.from_settings(load_settings(environ={}))
    assert from_cfg.chain_max_lag_s == 90.0 and from_cfg.confidence_ema_alpha == 0.5
    opts = SignalServiceOptions.from_settings(SimpleNamespace(signals={"chain_max_lag_s": 30.0, "x": 1}))
    assert opts.chain_max_lag_s == 30.0 and opts.max_snapshot_age_s == SignalServiceOptions().max_snapshot_age_s


async def test_confidence_smoothing_against_raw(bus, redis_client, keys, sim_clock) -> None:
    chain = await _store_chain(redis_client, keys, 10, 30)
    weak = {**GAMMA_FIELDS, "obi_l5": 0.12}
    strong = {**GAMMA_FIELDS, "obi_l5": 0.6}

    async def confidences(svc: SignalService, start: int) -> list[float]:
        out = []
        for i, fields in enumerate([strong, weak, weak]):
            sim_clock.set(ny(10, 30, start + i + 2))
            res = await svc.process(_analytics(bus, chain, f"{start}-{i}", fields, GAMMA_FEATURES,
                                               asof=ny(10, 30, start + i)))
            out.append(res[0][0].confidence)
        return out

    raw_svc = SignalService(make_context(bus, settings=_settings(gamma_0dte={"min_confidence": 0})),
                            SignalServiceOptions(confidence_ema_alpha=1.0))
    raw = await confidences(raw_svc, 0)
    smooth_svc = SignalService(make_context(bus, settings=_settings(gamma_0dte={"min_confidence": 0})),
                               SignalServiceOptions(confidence_ema_alpha=0.5))
    smooth = await confidences(smooth_svc, 10)
    assert raw[1] == raw[2] < raw[0]
    assert smooth[0] == raw[0]
    assert smooth[1] == pytest.approx(0.5 * raw[1] + 0.5 * raw[0], abs=0.051)
    assert raw[1] < smooth[2] < smooth[1]
