"""Benchmark: fill -> premium Discord message, through the real Redis and the real consumer.

Run from the repo root:  ``python bench/distribution.py [--trades 200] [--interval-ms 50]``

What it measures (a local fake Discord on 127.0.0.1 answers discord.py; Redis is the
real server at ``--redis-url``, under a throwaway key prefix that is wiped afterwards):

* premium latency: ``bus.publish(PositionEvent entry)`` -> the fake Discord receives the
  ``POST /channels/{premium}/messages`` (the DistributorService runs under the
  LiveRunner: consumer group read, atomic schedule + ack, immediate send). Goal p99 < 100 ms.
* tier-delay error, wall clock: basic / free delays scaled down to 1 s / 2 s; error =
  (fake receive time - fill ts) - configured delay, in ms.
* tier-delay error, sim clock: the same trades on a SimClock (lock-step), outbox sink;
  error = delivery ts - fill ts - configured delay (expected exactly 0).
* baseline: raw discord.py ``channel.send()`` against the same fake, sequential; the
  ratio premium p50 / baseline p50 is the distributor's overhead factor.

The fake Discord runs in its own process (as the real one is remote), so it does not
compete with the service for this interpreter's GIL; receive times are its wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import discord
import redis.asyncio as aioredis

from bot.distribution import DistributorService, idempotency_key
from core.bus.bus import Bus
from core.bus.events import DeliveryEvent, PositionEvent, decode
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.clock import LiveClock, SimClock
from core.config.secrets import Secrets
from core.runtime.consumers import consumer_for
from core.runtime.live_runner import LiveRunner
from tests.fakes.discord_api import FakeDiscord
from tests.helpers import make_context

CHANNELS = {"premium": 1400000000000000001, "basic": 1400000000000000002, "free": 1400000000000000003}
GUILD = 1200000000000000009
DELAYS_S = {"premium": 0, "basic": 1, "free": 2}


def _fake_process(conn) -> None:
    fake = FakeDiscord()
    fake.start()

    def channels() -> None:
        for tier, cid in CHANNELS.items():
            fake.add_channel(cid, f"bench-{tier}", GUILD)

    channels()
    conn.send(fake.base_url)
    while True:
        cmd = conn.recv()
        if cmd == "records":
            conn.send([((r.json or {}).get("nonce"), r.status, r.at) for r in fake.requests("send_message")])
        elif cmd == "count":
            conn.send(sum(1 for r in fake.requests("send_message") if r.status == 200))
        elif cmd == "reset":
            fake.reset()
            channels()
            conn.send(True)
        else:
            fake.stop()
            conn.send(True)
            return


class RemoteFake:
    """The fake Discord in a child process."""

    def __init__(self) -> None:
        self.conn, child = mp.get_context("spawn").Pipe()
        self.proc = mp.get_context("spawn").Process(target=_fake_process, args=(child,), daemon=True)
        self.proc.start()
        self.base_url: str = self.conn.recv()
        self.api_base = f"{self.base_url}/api/v10"

    def ask(self, cmd: str):
        self.conn.send(cmd)
        return self.conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self.proc.join(5)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def fmt(values: list[float]) -> str:
    return (f"p50 {pct(values, 50):7.2f}  p99 {pct(values, 99):7.2f}  max {max(values):7.2f}  "
            f"mean {statistics.fmean(values):7.2f}  (n={len(values)})")


def entry(bus: Bus, i: int, run: str) -> PositionEvent:
    return bus.make(PositionEvent, correlation_id=f"bench-{run}-{i}", kind="entry", position_id=f"pos-{run}-{i}",
                    strategy="gamma_0dte", symbol="SPY", expiry="2026-11-20", strike=590.0 + i % 10, right="C",
                    direction="bullish", horizon="0dte", qty=2, qty_open=2, price=2.15, entry_price=2.15,
                    stop=1.5, targets=[3.0, 4.0], triggers=["bench"], confidence=70.0,
                    explanation="benchmark fill", account_risk_pct=1.0, analytics={"gex_total": 1.0e9})


async def wipe(client: aioredis.Redis, keys: Keys) -> None:
    async for key in client.scan_iter(match=keys.pattern(), count=1000):
        await client.delete(key)


async def baseline(fake: RemoteFake, n: int) -> list[float]:
    client = discord.Client(intents=discord.Intents.none())
    await client.login("bench-token")
    try:
        ch = await client.fetch_channel(CHANNELS["premium"])
        for _ in range(5):
            await ch.send(content="warm-up")
        out = []
        for i in range(n):
            t = time.perf_counter()
            await ch.send(content=f"baseline {i}", nonce=f"b{i}")
            out.append((time.perf_counter() - t) * 1000)
        return out
    finally:
        await client.close()


async def live_run(fake: RemoteFake, redis_url: str, n: int, interval_ms: float) -> tuple[list[float], dict]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(f"bench{uuid.uuid4().hex[:8]}")
    bus = Bus(client, keys, LiveClock(), IdFactory())
    secrets = Secrets(_env_file=None, discord_bot_token="bench-token",  # type: ignore[call-arg]
                      discord_channel_premium=str(CHANNELS["premium"]), discord_channel_basic=str(CHANNELS["basic"]),
                      discord_channel_free=str(CHANNELS["free"]), discord_api_base=fake.base_url)
    ctx = make_context(bus, secrets=secrets, distribution={
        "sink": "live", "channels": ["discord"],
        "tiers": {t: {"delay_s": d} for t, d in DELAYS_S.items()}})
    svc = DistributorService(ctx)
    runner = LiveRunner([svc], poll_block_ms=1000)
    task = asyncio.create_task(runner.run())
    published: dict[str, tuple[float, PositionEvent]] = {}
    try:
        await asyncio.sleep(0.3)
        for i in range(5):  # warm-up: login, channel fetch, connection pool
            await bus.publish(entry(bus, i, "warm"))
        await asyncio.sleep(3.0)
        for i in range(n):
            ev = entry(bus, i, "run")
            t = time.time()
            await bus.publish(ev)
            published[ev.correlation_id] = (t, ev)
            await asyncio.sleep(interval_ms / 1000)
        deadline = time.time() + max(DELAYS_S.values()) + 10
        want = 3 * n
        while time.time() < deadline:
            if await asyncio.to_thread(fake.ask, "count") >= want + 15:
                break
            await asyncio.sleep(0.1)
    finally:
        runner.request_stop()
        await task
    by_nonce = {}
    for nonce, status, at in fake.ask("records"):
        if nonce and status == 200:
            by_nonce.setdefault(nonce, at)
    latency: list[float] = []
    errors: dict[str, list[float]] = {"basic": [], "free": []}
    missing = 0
    for corr, (t_pub, ev) in published.items():
        for tier in ("premium", "basic", "free"):
            at = by_nonce.get(idempotency_key(corr, ev.id, "discord", tier))
            if at is None:
                missing += 1
                continue
            if tier == "premium":
                latency.append((at - t_pub) * 1000)
            else:
                errors[tier].append((at - ev.ts / 1000 - DELAYS_S[tier]) * 1000)
    dead = await client.xlen(keys.key("dead_letter", "deliveries"))
    await wipe(client, keys)
    await client.aclose()
    return latency, {"errors": errors, "missing": missing, "dead": dead}


async def sim_run(redis_url: str, n: int) -> dict[str, list[float]]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(f"bench{uuid.uuid4().hex[:8]}")
    clock = SimClock(datetime(2026, 11, 20, 14, 30, tzinfo=UTC))
    bus = Bus(client, keys, clock, IdFactory(seed=7))
    with tempfile.TemporaryDirectory() as out:
        ctx = make_context(bus, out_dir=out, distribution={"sink": "outbox", "channels": ["discord"]})
        svc = DistributorService(ctx)
        await svc.start()
        cons = consumer_for(svc)
        assert cons is not None
        events = {}
        for i in range(n):
            await drain_until(svc, clock, clock.ms() + 7300)  # fills every 7.3 s, overlapping tier delays
            ev = entry(bus, i, "sim")
            events[ev.correlation_id] = ev
            await bus.publish(ev)
            await cons.poll(svc.handle)
            await drain_until(svc, clock, clock.ms())
        await drain_until(svc, clock, clock.ms() + 400_000)
        await svc.stop()
    errors: dict[str, list[float]] = {"premium": [], "basic": [], "free": []}
    settings_delay = {t: s.delay_s for t, s in ctx.settings.distribution.tiers.items()}
    for _id, fields in await client.xrange(keys.stream("deliveries")):
        d = decode(fields)
        if isinstance(d, DeliveryEvent) and d.status == "delivered":
            ev = events[d.correlation_id]
            errors[d.tier].append(float(d.ts - ev.ts - settings_delay[d.tier] * 1000))
    await wipe(client, keys)
    await client.aclose()
    return errors


async def drain_until(svc: DistributorService, clock: SimClock, end_ms: int) -> None:
    while True:
        nd = await svc.next_due(clock.now())
        if nd is None or int(nd.timestamp() * 1000) > end_ms:
            break
        t = int(nd.timestamp() * 1000)
        if t > clock.ms():
            clock.set_ms(t)
        await svc.on_timer(clock.now())
    if end_ms > clock.ms():
        clock.set_ms(end_ms)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trades", type=int, default=200)
    ap.add_argument("--interval-ms", type=float, default=50.0,
                    help="wall time between fills (each fill makes 3 deliveries)")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)

    fake = RemoteFake()
    discord.http.Route.BASE = fake.api_base
    try:
        print(f"distribution bench: {args.trades} trades, fills every {args.interval_ms:g} ms "
          f"(~{3000 / args.interval_ms:.0f} deliveries/s), "
              f"redis {args.redis_url}, fake Discord {fake.base_url}")
        base = await baseline(fake, args.trades)
        fake.ask("reset")
        latency, info = await live_run(fake, args.redis_url, args.trades, args.interval_ms)
        sim = await sim_run(args.redis_url, args.trades)
    finally:
        fake.stop()

    print()
    print(f"fill -> premium message at the fake Discord (ms, wall clock, LiveRunner + real Redis; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs):")
    print(f"  distributor : {fmt(latency)}   goal p99 < 100 ms: {'OK' if pct(latency, 99) < 100 else 'MISSED'}")
    print(f"  baseline    : {fmt(base)}   (raw discord.py channel.send, sequential)")
    print(f"  ratio p50   : {pct(latency, 50) / pct(base, 50):.2f}x   ratio p99: {pct(latency, 99) / pct(base, 99):.2f}x")
    print(f"  missing deliveries: {info['missing']}   dead letters: {info['dead']}")
    print()
    print("tier-delay error = measured - configured (ms):")
    for tier in ("basic", "free"):
        print(f"  wall clock, {tier:5s} ({DELAYS_S[tier]} s scaled) : {fmt(info['errors'][tier])}")
    for tier in ("premium", "basic", "free"):
        vals = sim[tier]
        print(f"  sim clock,  {tier:7s} (settings delay): min {min(vals):.0f}  max {max(vals):.0f}  (n={len(vals)})")


if __name__ == "__main__":
    asyncio.run(main())
