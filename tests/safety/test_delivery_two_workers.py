"""Safety line: two distributor workers on one schedule send each post exactly once.

Two ``DistributorService`` instances (as two processes would be: their own Redis connection,
their own consumer in the group, their own sinks) share one delivery schedule. Trades go
through entry, stop moved, partial exit and close, plus an approved report; at every due time
both workers run ``on_timer`` at once. Every (correlation id, channel, tier, event) must be
posted exactly once - one platform request, one outbox line, one ``delivered`` DeliveryEvent -
and nothing may be left behind. What keeps the second worker off a delivery the first one is
sending is the claim's lease (the schedule entry pushed out by ``inflight_lease_s``); without it
both claim the same due item.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import redis.asyncio as aioredis

from bot.distribution import DistributorService
from bot.distribution.render import ROUTES
from core.bus.bus import Bus
from core.bus.consumer import Consumer
from core.bus.events import DeliveryEvent
from core.bus.ids import IdFactory
from core.runtime.consumers import consumer_for
from tests.distribution._util import SUBREDDIT, deliveries, position, report
from tests.helpers import make_context

NONCE = re.compile(r'"nonce": ?"[0-9a-f]+",? ?')


class Worker:
    """One distributor process: own connection, own Bus, own consumer, own sinks."""

    def __init__(self, svc: DistributorService, consumer: Consumer, client: aioredis.Redis) -> None:
        self.svc, self.consumer, self.client = svc, consumer, client

    @classmethod
    async def start(cls, redis_url: str, bus: Bus, name: str, seed: int, out_dir: str, **kw: Any) -> Worker:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        wbus = Bus(client, bus.keys, bus.clock, IdFactory(seed=seed), source=name)
        secrets = kw.pop("secrets", None)
        ctx = make_context(wbus, secrets=secrets, out_dir=out_dir, distribution=kw)
        svc = DistributorService(ctx)
        await svc.start()
        consumer = consumer_for(svc, instance=name)
        assert consumer is not None
        return cls(svc, consumer, client)

    async def close(self) -> None:
        await self.svc.stop()
        await self.client.aclose()


async def _drive(bus: Bus, workers: list[Worker], events: list[tuple[int, Any]], horizon_s: int) -> None:
    """Publish each event at its offset (seconds); at every due time all workers send at once."""
    clock = bus.clock
    start = clock.ms()
    pending = sorted(events, key=lambda e: e[0])
    end = start + horizon_s * 1000
    while True:
        while pending and start + pending[0][0] * 1000 <= clock.ms():
            _, make = pending.pop(0)
            await bus.publish(make())
            await asyncio.gather(*(w.consumer.poll(w.svc.handle) for w in workers))
        for _ in range(50):  # everything due now, both workers racing for it
            nd = await workers[0].svc.next_due(clock.now())
            if nd is None or nd > clock.now():
                break
            await asyncio.gather(*(w.svc.on_timer(clock.now()) for w in workers))
        nd = await workers[0].svc.next_due(clock.now())
        candidates = [int(nd.timestamp() * 1000)] if nd is not None else []
        if pending:
            candidates.append(start + pending[0][0] * 1000)
        if not candidates or min(candidates) > end:
            return
        clock.set_ms(max(clock.ms(), min(candidates)))


def _events(bus: Bus, trades: int) -> tuple[list[tuple[int, Any]], set[tuple[str, str, str, str]]]:
    events: list[tuple[int, Any]] = []
    expected: set[tuple[str, str, str, str]] = set()
    for i in range(trades):
        corr, pid = f"trade-{i}", f"pos-{i}"
        for offset, kind in ((i, "entry"), (40 + i, "stop_moved"), (100 + i, "partial_exit"), (200 + i, "closed")):
            events.append((offset, lambda k=kind, c=corr, p=pid: position(bus, k, corr=c, position_id=p)))
            expected |= {(corr, ch, tier, kind) for ch, tier in ROUTES[kind]}
    events.append((5, lambda: report(bus)))
    expected |= {("rep-close-1", ch, tier, "report") for ch, tier in ROUTES["report"]}
    return events, expected


def _assert_once(counts: Counter, expected: set, what: str) -> None:
    dup = {k: n for k, n in counts.items() if n != 1}
    assert not dup, f"{what}: posted more than once: {dup}"
    assert set(counts) == expected, f"{what}: lost {sorted(expected - set(counts))}"


async def _assert_delivered_once(bus: Bus, expected: set) -> None:
    evs = await deliveries(bus)
    assert {e.status for e in evs} == {"delivered"}, Counter(e.status for e in evs)
    delivered = Counter((e.correlation_id, e.channel, e.tier, e.event) for e in evs
                        if isinstance(e, DeliveryEvent) and e.status == "delivered")
    _assert_once(delivered, expected, "DeliveryEvent delivered")
    assert await bus.redis.zcard(bus.keys.zset("deliveries")) == 0


async def test_two_workers_outbox_each_post_once(bus, redis_url, tmp_path: Path) -> None:
    out = str(tmp_path)
    workers = [await Worker.start(redis_url, bus, f"w{n}", 100 + n, out, sink="outbox") for n in (1, 2)]
    try:
        events, expected = _events(bus, trades=6)
        await _drive(bus, workers, events, horizon_s=900)
    finally:
        for w in workers:
            await w.close()
    lines = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    _assert_once(Counter((r["correlation_id"], r["channel"], r["tier"], r["event"]) for r in lines), expected,
                 "outbox")
    assert len({r["message_id"] for r in lines}) == len(lines)
    await _assert_delivered_once(bus, expected)


def _post_refs(dfake, xfake, rfake) -> Counter:
    """Every post request the platforms received (Discord sends, tweets, Reddit submissions and
    comments), counted per posted content. No post carries an internal id any more, but every post's
    content is unique (the event time to the second; route-specific wording), so the same content
    twice is the same delivery posted twice."""
    reqs = (dfake.requests("send_message") + xfake.requests("create_tweet") + rfake.requests("submit")
            + rfake.requests("comment"))
    posted: Counter = Counter()
    for r in reqs:
        body = unquote_plus(r.body.decode("utf-8", "replace"))
        posted[(r.kind, r.path.split("/messages")[0], NONCE.sub("", body))] += 1
    return posted


async def test_two_workers_live_platforms_each_post_once(bus, redis_url, tmp_path: Path, live_secrets, dfake, xfake,
                                                         rfake) -> None:
    workers = [await Worker.start(redis_url, bus, f"w{n}", 200 + n, str(tmp_path), sink="live",
                                  secrets=live_secrets, subreddit=SUBREDDIT) for n in (1, 2)]
    try:
        events, expected = _events(bus, trades=3)
        await _drive(bus, workers, events, horizon_s=900)
    finally:
        for w in workers:
            await w.close()
    refs = _post_refs(dfake, xfake, rfake)
    assert refs and set(refs.values()) == {1}, {k: n for k, n in refs.items() if n > 1}
    assert len(refs) == len(expected)
    await _assert_delivered_once(bus, expected)
    assert len(rfake.submissions(SUBREDDIT)) == 4  # 3 trade roots + the report: no duplicate submission


async def test_a_report_approved_again_after_delivery_is_not_posted_again(bus, redis_url, tmp_path: Path) -> None:
    """The same report approved twice (a second admin press, a replayed approval) re-schedules the
    same idempotency keys after they were delivered; the claim must see "delivered" and drop them."""
    out = str(tmp_path)
    workers = [await Worker.start(redis_url, bus, f"w{n}", 300 + n, out, sink="outbox") for n in (1, 2)]
    try:
        await _drive(bus, workers, [(0, lambda: report(bus))], horizon_s=900)
        first = (tmp_path / "outbox.jsonl").read_text().splitlines()
        assert len(first) == len(ROUTES["report"])
        await _drive(bus, workers, [(0, lambda: report(bus))], horizon_s=900)  # same report_id, new event
    finally:
        for w in workers:
            await w.close()
    assert (tmp_path / "outbox.jsonl").read_text().splitlines() == first
    delivered = [e for e in await deliveries(bus) if e.status == "delivered"]
    assert len(delivered) == len(ROUTES["report"])
    assert await bus.redis.zcard(bus.keys.zset("deliveries")) == 0
