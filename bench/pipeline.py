"""Benchmark: quote -> analytics -> strategy decision through the real Redis.

Run from the repo root:
``.venv/bin/python bench/pipeline.py [--rate 1000] [--seconds 5] [--chain-every 50] [--producer process]``
(``--flow-alerts N``: only the rolling-flow feature cost with N live alerts against 1,000, see
``bench/_flow_cost.py``)

What runs (Redis is the real server at ``--redis-url``, under a throwaway key prefix
``bench<pid>`` that is wiped at the end):

* the real ``AnalyticsService`` and ``SignalService`` under the ``LiveRunner`` (consumer
  groups, blocking XREADGROUP, atomic commit + XACK) in this process, on an
  ``OffsetClock``: wall speed, shifted to ``--ny-time`` of the most recent NYSE session so
  the strategy windows are open whatever day the benchmark runs (``--all-windows`` opens
  every SPY strategy's window);
* a producer paced at ``--rate`` updates/s on an absolute schedule, in its own process
  (``--producer process``, default: like ``main.py run --services market`` beside the
  analytics / signals process) or in the services' event loop (``--producer inline``,
  like a single ``main.py run``). One **update** = one SPY market tick written the way
  ``MarketDataService`` writes it: one MULTI/EXEC with a ``QuoteEvent`` (stream
  ``quotes``), the ``quote`` snapshot and a ``FlowEvent`` (stream ``flow``). Every
  ``--chain-every``-th update also carries a chain refresh in the same MULTI: the ``chain``
  snapshot (a real simulator SPY chain, one of a few variants ten seconds apart), the
  ``chain_meta`` key and a ``ChainEvent`` (stream ``chains``). Tape, quotes, depth and
  chains come from ``MarketSimulator`` (seed 7).

``AnalyticsService`` emits an ``AnalyticsEvent`` only for a chain refresh (flow updates
its rolling windows and VPIN, nothing else), so two paths are measured:

* decision path (heavy): the update carrying a ``ChainEvent`` -> analytics (decode, clean,
  GEX/DEX, 200-level flip, features; commit of the AnalyticsEvent) ->
  ``SignalService.process`` returned (strategies evaluated and a signal deduped / emitted,
  or no candidate: that return is the "strategy decision");
* flow path (every update): publish -> ``AnalyticsService.handle`` of its ``FlowEvent``
  returned (state updated; the batched XACK follows).

Latency = ``time.perf_counter_ns`` (CLOCK_MONOTONIC, system-wide, so comparable between
the two processes) taken by the producer just before it sends the MULTI, to the probe in
the service subclass. The first ``--warmup`` seconds are published but not counted.

Baselines, same run, same client library: raw XADD + XREADGROUP + XACK of a tiny entry on
one connection, sequential, idle loop (and the same round trip sampled every 20 ms during
the load); and the decision path idle (one chain update every 40 ms, nothing else).
Figures and ratios only, no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import redis.asyncio as aioredis

from core.analytics.service import AnalyticsService
from core.bus.bus import Bus, Tx
from core.bus.events import AnalyticsEvent, ChainEvent, Event, FlowEvent, QuoteEvent
from core.bus.keys import Keys
from core.clock.calendar import NY, NyseCalendar
from core.clock.offset_clock import OffsetClock
from core.config.loader import load_settings
from core.config.model import Settings
from core.config.secrets import Secrets
from core.market.chain_codec import encode_chain
from core.market.reference import simulated_reference
from core.market.sim import MarketSimulator
from core.runtime.live_runner import LiveRunner
from core.runtime.service import Context
from core.signals.base import in_window
from core.signals.service import SignalService

SYMBOL = "SPY"
SEED = 7
VARIANTS = 6            # chain snapshots 10 s apart (all within signals.chain_max_lag_s of each other)
VARIANT_STEP_S = 10
TAPE_SECONDS = 600      # simulated seconds of tape / quotes the producer cycles through
IDLE_DECISIONS = 30     # idle decision-path baseline: chain updates ...
IDLE_RATE = 25.0        # ... at this rate, nothing else on the bus
DRAIN_TIMEOUT_S = 15.0


# ---------------------------------------------------------------- stats
def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


def fmt(values: list[float]) -> str:
    if not values:
        return "(no samples)"
    return (f"p50 {pct(values, 50):7.3f}  p95 {pct(values, 95):7.3f}  p99 {pct(values, 99):7.3f}  "
            f"max {max(values):7.3f}  mean {statistics.fmean(values):7.3f}  (n={len(values)})")


def ms(ns: int) -> float:
    return ns / 1e6


# ---------------------------------------------------------------- probe + instrumented services
@dataclass
class Probe:
    """Consumer-side timestamps (perf_counter_ns) keyed by event id; joined with the
    producer's publish times after the run."""

    flow_out: dict[str, int] = field(default_factory=dict)                       # flow id -> handled
    chain_seen: dict[str, tuple[str | None, int, int]] = field(default_factory=dict)  # chain id -> (analytics id, in, out)
    decided: dict[str, tuple[int, int, list[str]]] = field(default_factory=dict)  # analytics id -> (in, out, outcomes)


class TimedAnalytics(AnalyticsService):
    def __init__(self, ctx: Context, probe: Probe) -> None:
        super().__init__(ctx)
        self.probe = probe

    async def handle(self, event: Event, tx: Tx) -> None:
        t_in = time.perf_counter_ns()
        await super().handle(event, tx)
        t_out = time.perf_counter_ns()
        if isinstance(event, FlowEvent):
            self.probe.flow_out[event.id] = t_out
        elif isinstance(event, ChainEvent):
            made = [e.id for e in tx.events if isinstance(e, AnalyticsEvent)]
            self.probe.chain_seen[event.id] = (made[0] if made else None, t_in, t_out)


class TimedSignals(SignalService):
    def __init__(self, ctx: Context, probe: Probe) -> None:
        super().__init__(ctx)
        self.probe = probe

    async def process(self, ev: AnalyticsEvent):
        t_in = time.perf_counter_ns()
        out = await super().process(ev)
        t_out = time.perf_counter_ns()
        outcomes = [("below min_confidence / held" if res is None else res.outcome.value) for _c, res in out]
        self.probe.decided[ev.id] = (t_in, t_out, outcomes or ["no candidate"])
        return out


# ---------------------------------------------------------------- market material from the simulator
@dataclass
class Material:
    frames: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]  # quote fields, snapshot, flow fields
    chains: list[tuple[str, float, int, int, dict[str, Any], str]]  # encoded, spot, asof ms, n, depth, meta json
    book: list[tuple[list[int], list[int]]]                        # 10-level sizes per chain variant
    reference: str


def build_material(day: date, start: datetime, depth_levels: int) -> Material:
    session = NyseCalendar().session(day)
    sim = MarketSimulator(seed=SEED, session_open=session.at(dtime(8, 30)),
                          session_close=session.close + timedelta(minutes=15), symbols=[SYMBOL])
    variant_at = {start - timedelta(seconds=VARIANT_STEP_S * (VARIANTS - 1 - k)) for k in range(VARIANTS)}
    frames, chains, book = [], [], []
    prev_last: float | None = None
    t = start - timedelta(seconds=TAPE_SECONDS)
    while t <= start:
        sim.advance(t)
        q = sim.quote(SYMBOL)
        q_ms = int(q.ts.timestamp() * 1000)
        quote = {"symbol": SYMBOL, "bid": q.bid, "ask": q.ask, "last": q.last, "bid_size": q.bid_size,
                 "ask_size": q.ask_size, "volume": q.volume_today, "quote_ts": q_ms}
        snap = {"symbol": SYMBOL, "bid": q.bid, "ask": q.ask, "last": q.last, "quote_ts": q_ms,
                "prev_close": q.prev_close}
        prints, alerts, ticks = sim.prints(SYMBOL), sim.option_flow(SYMBOL), sim.net_premium(SYMBOL)
        dark = [p for p in prints if p.exchange in ("TRF", "FINRA", "ADF")]
        change = 0.0 if prev_last is None else q.last - prev_last
        prev_last = q.last
        flow = {"symbol": SYMBOL,  # as MarketDataService._flow builds it
                "buy_volume": float(sum(p.size for p in prints if p.side == "buy")),
                "sell_volume": float(sum(p.size for p in prints if p.side == "sell")),
                "sweeps": len({p.sweep_id for p in prints if p.sweep_id is not None}),
                "blocks": sum(1 for p in prints if p.kind == "block"),
                "dark_buy_volume": float(sum(p.size for p in dark if p.side == "buy")),
                "dark_sell_volume": float(sum(p.size for p in dark if p.side == "sell")),
                "net_call_premium": float(sum(x.net_call_premium for x in ticks)),
                "net_put_premium": float(sum(x.net_put_premium for x in ticks)),
                "alerts": [{"contract": a.contract, "expiry": a.expiry.isoformat(), "strike": a.strike,
                            "right": a.right, "side": a.side, "sweep": a.is_sweep, "size": a.size,
                            "premium": a.premium, "rule": a.alert_rule, "bullish": a.bullish} for a in alerts],
                "price_change": round(change, 6), "volume": float(sum(p.size for p in prints)), "last": q.last}
        frames.append((quote, snap, flow))
        if t in variant_at:
            ch = sim.chain(SYMBOL)
            d = sim.depth(SYMBOL, depth_levels)
            depth = {"depth_bid": list(zip(d.bid_price.tolist(), d.bid_size.tolist(), strict=True)),
                     "depth_ask": list(zip(d.ask_price.tolist(), d.ask_size.tolist(), strict=True))}
            meta = json.dumps({"symbol": SYMBOL, "asof": ch.asof.isoformat(), "contracts": len(ch)})
            chains.append((encode_chain(ch), ch.spot, int(ch.asof.timestamp() * 1000), len(ch), depth, meta))
            book.append((d.bid_size.tolist(), d.ask_size.tolist()))
        t += timedelta(seconds=1)
    spec = sim.config.spec(SYMBOL)
    ref = simulated_reference(SEED, SYMBOL, sim.trade_date, spec.iv_atm, spec.kind == "stock")
    reference = json.dumps({"symbol": SYMBOL, "iv_52w_low": ref.iv_52w_low, "iv_52w_high": ref.iv_52w_high,
                            "next_earnings": ref.next_earnings.isoformat() if ref.next_earnings else None,
                            "insider_net_shares_30d": ref.insider_net_shares_30d})
    return Material(frames, chains, book, reference)


def make_settings(all_windows: bool) -> Settings:
    settings = load_settings(environ={})
    data = settings.model_dump()
    data["market"]["symbols"] = [SYMBOL]
    if all_windows:
        for name, cfg in data["strategies"].items():
            if SYMBOL in cfg["symbols"]:
                data["strategies"][name]["window"] = (dtime(9, 30), dtime(16, 0))
    return Settings.model_validate(data)


# ---------------------------------------------------------------- producer
@dataclass
class Produced:
    sent: int = 0
    flow_pub: dict[str, int] = field(default_factory=dict)   # measured flow id -> publish ns
    chain_pub: dict[str, int] = field(default_factory=dict)  # measured chain id -> publish ns
    t_first: int = 0
    t_last: int = 0
    lag_ms: list[float] = field(default_factory=list)     # send start - scheduled time
    commit_ms: list[float] = field(default_factory=list)  # MULTI/EXEC round trip of one update


async def produce(bus: Bus, mat: Material, settings: Settings, *, rate: float, warmup_s: float,
                  seconds: float, chain_every: int) -> Produced:
    out = Produced()
    keys = bus.keys
    ttl = settings.market.snapshot_ttl_s
    n_warm = round(rate * warmup_s)
    total = n_warm + round(rate * seconds)
    period_ns = int(1e9 / rate)
    chain_key = keys.snapshot("chain", SYMBOL)
    meta_key = keys.snapshot("chain_meta", SYMBOL)
    quote_key = keys.snapshot("quote", SYMBOL)
    book = mat.book[-1]
    v = 0
    start = time.perf_counter_ns()
    for i in range(total):
        due = start + i * period_ns
        now = time.perf_counter_ns()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
        measured = i >= n_warm
        quote, snap, flow = mat.frames[i % len(mat.frames)]
        with_chain = i % chain_every == 0
        tx = bus.tx()
        if with_chain:  # 10-level depth rides with the chain refresh, as in MarketDataService
            encoded, spot, asof, n, depth, meta = mat.chains[v % len(mat.chains)]
            book = mat.book[v % len(mat.book)]
            v += 1
            q = tx.emit(QuoteEvent, correlation_id=f"md:{SYMBOL}", **quote, **depth)
        else:
            q = tx.emit(QuoteEvent, correlation_id=f"md:{SYMBOL}", **quote)
        tx.pipe.set(quote_key, json.dumps({**snap, "event_id": q.id, "bid_sizes": book[0], "ask_sizes": book[1]}),
                    ex=ttl)
        f = tx.emit(FlowEvent, correlation_id=f"md:{SYMBOL}", **flow)
        c = None
        if with_chain:
            tx.pipe.set(chain_key, encoded, ex=ttl)
            tx.pipe.set(meta_key, meta, ex=ttl)
            c = tx.emit(ChainEvent, correlation_id=f"md:{SYMBOL}", symbol=SYMBOL, spot=spot, asof=asof,
                        snapshot_key=chain_key, contracts=n)
        t_pub = time.perf_counter_ns()
        await tx.commit()
        done = time.perf_counter_ns()
        out.sent += 1
        if measured:
            out.flow_pub[f.id] = t_pub
            if c is not None:
                out.chain_pub[c.id] = t_pub
            out.lag_ms.append(ms(t_pub - due))
            out.commit_ms.append(ms(done - t_pub))
            out.t_first = out.t_first or t_pub
            out.t_last = done
    return out


def _producer_process(conn, redis_url: str, prefix: str, offset: timedelta, day: date, start_ny: datetime,
                      all_windows: bool, rate: float, warmup_s: float, seconds: float, chain_every: int) -> None:
    """Child process: build the same material, wait for "go", produce, send the result back."""

    async def main() -> Produced:
        settings = make_settings(all_windows)
        mat = build_material(day, start_ny, settings.market.depth_levels)
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await client.ping()
            bus = Bus(client, Keys(prefix), OffsetClock(datetime.now(UTC) + offset),
                      maxlen=settings.redis.stream_maxlen, source="bench-market")
            conn.send("ready")
            loop = asyncio.get_running_loop()
            msg = await loop.run_in_executor(None, conn.recv)
            if msg != "go":
                return Produced()
            gc.collect()
            return await produce(bus, mat, settings, rate=rate, warmup_s=warmup_s, seconds=seconds,
                                 chain_every=chain_every)
        finally:
            await client.aclose()

    try:
        conn.send(asyncio.run(main()))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        conn.send(f"producer failed: {type(exc).__name__}: {exc}")
    finally:
        conn.close()


# ---------------------------------------------------------------- baseline
async def raw_round_trips(client: aioredis.Redis, key: str, group: str, n: int,
                          interval_s: float = 0.0, stop: asyncio.Event | None = None) -> list[float]:
    """XADD + XREADGROUP + XACK of a tiny entry, sequential, on this client's one connection."""
    try:
        await client.xgroup_create(key, group, id="$", mkstream=True)
    except aioredis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    out: list[float] = []
    for _ in range(n):
        if stop is not None and stop.is_set():
            break
        t0 = time.perf_counter_ns()
        eid = await client.xadd(key, {"t": "x", "d": "1"}, maxlen=1000, approximate=True)
        resp = await client.xreadgroup(group, "c1", {key: ">"}, count=1)
        await client.xack(key, group, eid)
        out.append(ms(time.perf_counter_ns() - t0))
        if not resp:
            raise RuntimeError("baseline: XREADGROUP returned nothing")
        if interval_s:
            await asyncio.sleep(interval_s)
    return out


async def ping_round_trips(client: aioredis.Redis, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await client.ping()
        out.append(ms(time.perf_counter_ns() - t0))
    return out


# ---------------------------------------------------------------- run
async def wipe(client: aioredis.Redis, keys: Keys) -> int:
    n, batch = 0, []
    async for key in client.scan_iter(match=keys.pattern(), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            n += await client.delete(*batch)
            batch.clear()
    if batch:
        n += await client.delete(*batch)
    return n


@dataclass
class Joined:
    flow: list[float]
    total: list[float]
    stages: dict[str, list[float]]
    outcomes: Counter[str]
    flow_missing: int
    chain_missing: int
    no_snapshot: int


def join(prod: Produced, probe: Probe) -> Joined:
    flow = [ms(probe.flow_out[i] - t) for i, t in prod.flow_pub.items() if i in probe.flow_out]
    total: list[float] = []
    stages: dict[str, list[float]] = {"publish -> analytics handler start": [],
                                      "analytics handler (chain compute)": [],
                                      "analytics commit -> signals start": [],
                                      "signals process (strategies, dedupe)": []}
    outcomes: Counter[str] = Counter()
    missing = no_snap = 0
    for cid, t_pub in prod.chain_pub.items():
        seen = probe.chain_seen.get(cid)
        if seen is None:
            missing += 1
            continue
        aid, a_in, a_out = seen
        if aid is None:
            no_snap += 1
            continue
        dec = probe.decided.get(aid)
        if dec is None:
            missing += 1
            continue
        s_in, s_out, outs = dec
        total.append(ms(s_out - t_pub))
        for name, v in zip(stages, (a_in - t_pub, a_out - a_in, s_in - a_out, s_out - s_in), strict=True):
            stages[name].append(ms(v))
        outcomes.update(outs)
    return Joined(flow, total, stages, outcomes, len(prod.flow_pub) - len(flow), missing, no_snap)


def drained(prod: Produced, probe: Probe) -> bool:
    for cid in prod.chain_pub:
        seen = probe.chain_seen.get(cid)
        if seen is None or (seen[0] is not None and seen[0] not in probe.decided):
            return False
    return all(i in probe.flow_out for i in prod.flow_pub)


async def wait_drained(prod: Produced, probe: Probe) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < DRAIN_TIMEOUT_S and not drained(prod, probe):
        await asyncio.sleep(0.01)
    return time.perf_counter() - t0


async def run(args: argparse.Namespace) -> None:
    host = urlparse(args.redis_url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"--redis-url must point at 127.0.0.1 (got {host!r})")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
    cal = NyseCalendar()
    day = cal.most_recent_session(datetime.now(NY).date())
    hh, mm = (int(x) for x in args.ny_time.split(":"))
    session = cal.session(day)
    start_ny = session.at(dtime(hh, mm))
    settings = make_settings(args.all_windows)
    active = [name for name, cfg in sorted(settings.strategies.items())
              if cfg.enabled and SYMBOL in cfg.symbols and in_window(start_ny, cfg.window, session)]
    t = time.perf_counter()
    mat = build_material(day, start_ny, settings.market.depth_levels)
    build_s = time.perf_counter() - t

    keys = Keys(f"bench{os.getpid()}")
    clock = OffsetClock(start_ny)
    child = parent_conn = None
    if args.producer == "process":  # start early: its imports and material overlap the baselines
        parent_conn, child_conn = mp.get_context("spawn").Pipe()
        child = mp.get_context("spawn").Process(
            target=_producer_process, name="bench-producer", daemon=True,
            args=(child_conn, args.redis_url, keys.prefix, clock.offset, day, start_ny, args.all_windows,
                  args.rate, args.warmup, args.seconds, args.chain_every))
        child.start()
        child_conn.close()

    client = aioredis.Redis.from_url(args.redis_url, decode_responses=True)
    base_client = aioredis.Redis.from_url(args.redis_url, decode_responses=True, single_connection_client=True)
    load_client = aioredis.Redis.from_url(args.redis_url, decode_responses=True, single_connection_client=True)
    probe = Probe()
    loop = asyncio.get_running_loop()
    try:
        await client.ping()
        await wipe(client, keys)
        info = await client.info("server")

        # --- baseline 1: raw round trips, idle loop
        await ping_round_trips(base_client, 200)
        ping = await ping_round_trips(base_client, args.baseline_n)
        await raw_round_trips(base_client, keys.stream("bench_rtt"), "bench", 200)
        base = await raw_round_trips(base_client, keys.stream("bench_rtt"), "bench", args.baseline_n)

        # --- the services
        bus = Bus(client, keys, clock, maxlen=settings.redis.stream_maxlen, source="bench")
        ctx = Context(settings=settings, secrets=Secrets(_env_file=None), bus=bus, clock=clock,  # type: ignore[call-arg]
                      calendar=cal)
        await client.set(keys.snapshot("reference", SYMBOL), mat.reference, ex=86_400)
        analytics, signals = TimedAnalytics(ctx, probe), TimedSignals(ctx, probe)
        runner = LiveRunner([analytics, signals], poll_block_ms=args.block_ms)
        runner_task = asyncio.create_task(runner.run(), name="live-runner")
        try:
            for _ in range(250):  # both consumer groups exist before the first update (bounded wait)
                groups: set[str] = set()
                for s in ("flow", "chains", "analytics"):
                    try:
                        groups |= {g["name"] for g in await client.xinfo_groups(keys.stream(s))}
                    except aioredis.ResponseError:
                        pass
                if {"analytics", "signals"} <= groups:
                    break
                await asyncio.sleep(0.02)

            # --- baseline 2: the decision path idle (chain updates only, spaced, inline)
            idle_prod = await produce(bus, mat, settings, rate=IDLE_RATE, warmup_s=4 / IDLE_RATE,
                                      seconds=IDLE_DECISIONS / IDLE_RATE, chain_every=1)
            await wait_drained(idle_prod, probe)
            idle = join(idle_prod, probe)

            # --- the load
            stop_load = asyncio.Event()
            load_task = asyncio.create_task(raw_round_trips(
                load_client, keys.stream("bench_rtt_load"), "bench", 100_000, interval_s=0.02, stop=stop_load))
            gc.collect()
            if child is not None and parent_conn is not None:
                ready = await loop.run_in_executor(None, lambda: parent_conn.recv() if parent_conn.poll(60) else None)
                if ready != "ready":
                    raise RuntimeError(f"producer process not ready: {ready!r}")
                parent_conn.send("go")
                got = await loop.run_in_executor(None, lambda: parent_conn.recv() if parent_conn.poll(
                    args.warmup + args.seconds + 60) else "producer process timed out")
                if not isinstance(got, Produced):
                    raise RuntimeError(str(got))
                prod = got
            else:
                prod = await produce(bus, mat, settings, rate=args.rate, warmup_s=args.warmup,
                                     seconds=args.seconds, chain_every=args.chain_every)
            stop_load.set()
            drain_s = await wait_drained(prod, probe)
            under_load = await load_task
        finally:
            runner.request_stop()
            await asyncio.wait_for(runner_task, timeout=args.block_ms / 1000 + 10)
        st = analytics._state.get(SYMBOL)
        flow_window = len(st.flow.window.events) if st is not None else 0
        horizon_min = st.flow.window.span_ms / 60_000 if st is not None else float("nan")
        signal_counts = dict(sorted(signals.counts.items()))
        emitted = await client.xlen(keys.stream("signals"))
        dlq = await client.scard(keys.dlq_index())
    finally:
        if child is not None:
            child.join(5)
            if child.is_alive():
                child.terminate()
        wiped = await wipe(client, keys)
        for c in (load_client, base_client, client):
            await c.aclose()

    # ---------------------------------------------------------------- report
    res = join(prod, probe)
    span_s = (prod.t_last - prod.t_first) / 1e9 if prod.t_last > prod.t_first else float("nan")
    achieved = len(prod.flow_pub) / span_s
    base_p50, base_p99 = pct(base, 50), pct(base, 99)
    p50, p99 = pct(res.total, 50), pct(res.total, 99)
    load1, load5, _ = os.getloadavg()

    print(f"pipeline bench: SPY via Redis {info.get('redis_version')} at {args.redis_url}, prefix {keys.prefix} "
          f"(wiped {wiped} keys); python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {load1:.2f} / {load5:.2f} (1 / 5 min, whole machine)")
    print(f"  producer: {args.producer} ({'own process' if args.producer == 'process' else 'same event loop as the services'});"
          f" services: AnalyticsService + SignalService under LiveRunner (block {args.block_ms} ms) in this process")
    print(f"  clock: OffsetClock at {start_ny.isoformat()} (session {day}), wall speed; strategies evaluating "
          f"SPY: {', '.join(active) or 'NONE (outside every window)'}{'  [--all-windows]' if args.all_windows else ''}")
    print(f"  material: {len(mat.frames)} s of simulated tape / quotes, {len(mat.chains)} chain variants of "
          f"{mat.chains[0][3]} contracts ({len(mat.chains[0][0]) / 1024:.0f} KiB encoded), built in {build_s:.2f} s")
    print(f"  update = 1 MULTI/EXEC: QuoteEvent + quote snapshot + FlowEvent; every {args.chain_every}th update "
          f"also chain + chain_meta snapshots + ChainEvent -> {100 / args.chain_every:.1f}% of updates go through "
          f"full analytics to a strategy decision, the rest only update analytics' flow windows")
    print()
    print(f"throughput (measured {args.seconds:g} s after {args.warmup:g} s warm-up; target {args.rate:g} updates/s):")
    print(f"  updates published   : {len(prod.flow_pub)} in {span_s:.3f} s = {achieved:,.0f} updates/s "
          f"({achieved / args.rate * 100:.1f}% of target)")
    print(f"  flow events handled : {len(res.flow)} ({res.flow_missing} not handled within the drain timeout)")
    print(f"  decisions           : {len(res.total)} of {len(prod.chain_pub)} chain updates = "
          f"{len(res.total) / span_s:.1f} decisions/s (missing {res.chain_missing}, no analytics snapshot "
          f"{res.no_snapshot}); drained {drain_s:.2f} s after the last publish")
    print(f"  producer lag behind schedule (ms)   : {fmt(prod.lag_ms)}")
    print(f"  producer MULTI/EXEC per update (ms) : {fmt(prod.commit_ms)}")
    print()
    print("latency under load (ms, from publish):")
    print(f"  decision path -> SignalService.process returned : {fmt(res.total)}")
    for name, vals in res.stages.items():
        print(f"      {name:40s} : {fmt(vals)}")
    print(f"  flow path -> AnalyticsService.handle returned   : {fmt(res.flow)}")
    compute = res.stages["analytics handler (chain compute)"]
    tenth = max(1, len(compute) // 10)
    print(f"  chain compute, first vs last {tenth} decisions (p50): {pct(compute[:tenth], 50):.3f} vs "
          f"{pct(compute[-tenth:], 50):.3f} ms; analytics flow window at the end: {flow_window} events "
          f"(kept {horizon_min:g} min, read through running sums, not rescanned)")
    print()
    print("baselines (ms, same run, same client library):")
    print(f"  raw XADD+XREADGROUP+XACK, one connection, idle  : {fmt(base)}")
    print(f"  same, sampled every 20 ms during the load       : {fmt(under_load)}")
    print(f"  PING, one connection, idle                      : {fmt(ping)}")
    print(f"  decision path idle ({IDLE_RATE:g} chain updates/s only) : {fmt(idle.total)}")
    for name, vals in idle.stages.items():
        print(f"      {name:40s} : {fmt(vals)}")
    print()
    print("ratios:")
    print(f"  decision p99 / raw round trip p99  : {p99 / base_p99:8.1f}x  ({p99:.3f} / {base_p99:.3f} ms)")
    print(f"  decision p50 / raw round trip p50  : {p50 / base_p50:8.1f}x  ({p50:.3f} / {base_p50:.3f} ms)")
    print(f"  decision p99 / idle decision p99   : {p99 / pct(idle.total, 99):8.1f}x")
    print(f"  flow p99 / raw round trip p99      : {pct(res.flow, 99) / base_p99:8.1f}x")
    print(f"  goal (issue) p99 under 10 ms       : decision p99 = {p99:.3f} ms = {p99 / 10.0:.2f}x the goal; "
          f"achieved {achieved / args.rate * 100:.0f}% of {args.rate:g} updates/s")
    print()
    print(f"decisions under load: {dict(sorted(res.outcomes.items()))}")
    print(f"signal service counts (whole run): {signal_counts}; signals stream entries: {emitted}; "
          f"dead-letter groups: {dlq}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="updates per second")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds published before measuring")
    ap.add_argument("--chain-every", type=int, default=50,
                    help="every Nth update carries a chain refresh (full analytics + strategy decision)")
    ap.add_argument("--producer", choices=("process", "inline"), default="process",
                    help="producer in its own process, or in the services' event loop")
    ap.add_argument("--ny-time", default="10:30", help="New York time the clock starts at (HH:MM)")
    ap.add_argument("--all-windows", action="store_true",
                    help="open every SPY strategy's window (09:30-16:00), not only those at --ny-time")
    ap.add_argument("--block-ms", type=int, default=100, help="LiveRunner XREADGROUP block (ms)")
    ap.add_argument("--baseline-n", type=int, default=2000)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--flow-alerts", type=int, metavar="N",
                    help="only measure the rolling-flow feature cost with N live alerts (beside 1,000) and exit")
    args = ap.parse_args()
    if args.flow_alerts is not None:
        if not 1 <= args.flow_alerts <= 1_000_000:
            raise SystemExit("--flow-alerts in [1, 1000000]")
        from bench._flow_cost import run as flow_cost

        flow_cost(args.flow_alerts)
        return
    if not (0 < args.rate <= 20_000 and 0 < args.seconds <= 30 and 0 <= args.warmup <= 10
            and args.chain_every >= 1 and 100 <= args.baseline_n <= 20_000 and 1 <= args.block_ms <= 1000):
        raise SystemExit("--rate in (0, 20000], --seconds in (0, 30], --warmup in [0, 10], --chain-every >= 1, "
                         "--baseline-n in [100, 20000], --block-ms in [1, 1000]")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
