"""Stream retention on the real Redis: old entries go, but never one a consumer group has pending
(delivered, not acknowledged) or has not been delivered yet; a stream without groups is trimmed
by age; retention_days 0 trims nothing. Through the ledger service too: an outage of the ledger
database for longer than the retention loses no event."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from core.bus.events import FillEvent, encode
from core.ledger import schema
from core.ledger.retention import DAY_MS, trim_streams
from core.ledger.service import LedgerService
from core.runtime.consumers import consumer_for
from tests.helpers import make_context
from tests.ledger_cli.conftest import store_at

NOW = 400 * DAY_MS  # an injected "now" (Redis time) for the unit tests
OLD = [f"{(NOW - 30 * DAY_MS) + i * 1000}-0" for i in range(10)]  # 30 days old
YOUNG = [f"{(NOW - DAY_MS) + i * 1000}-0" for i in range(3)]  # 1 day old


async def fill(redis, key: str, ids: list[str]) -> None:
    for i in ids:
        await redis.xadd(key, {"t": "x", "d": i}, id=i)


async def ids(redis, key: str) -> list[str]:
    return [e[0] for e in await redis.xrange(key)]


async def read(redis, key: str, group: str, count: int | None = None) -> list[str]:
    resp = await redis.xreadgroup(group, "c1", {key: ">"}, count=count)
    return [e[0] for e in resp[0][1]] if resp else []


@pytest.fixture
async def stream(redis_client, keys):
    key = keys.stream("orders")
    await fill(redis_client, key, OLD + YOUNG)
    return key


async def test_trims_old_acknowledged_entries(redis_client, keys, stream):
    await redis_client.xgroup_create(stream, "ledger", id="0")
    got = await read(redis_client, stream, "ledger")
    await redis_client.xack(stream, "ledger", *got)
    report = await trim_streams(redis_client, keys, ["orders"], 7, now_ms=NOW)
    assert await ids(redis_client, stream) == YOUNG
    assert report.trimmed == {"orders": 10} and report.held == []


async def test_never_trims_a_pending_entry(redis_client, keys, stream):
    await redis_client.xgroup_create(stream, "ledger", id="0")
    got = await read(redis_client, stream, "ledger")  # all 13 delivered
    await redis_client.xack(stream, "ledger", *got[:3], *got[5:])  # OLD[3], OLD[4] stay pending
    report = await trim_streams(redis_client, keys, ["orders"], 7, now_ms=NOW)
    assert await ids(redis_client, stream) == OLD[3:] + YOUNG
    assert report.trimmed == {"orders": 3} and report.held == ["orders"]
    pending = await redis_client.xpending_range(stream, "ledger", min="-", max="+", count=10)
    assert [p["message_id"] for p in pending] == OLD[3:5]


async def test_never_trims_an_entry_not_yet_delivered(redis_client, keys, stream):
    await redis_client.xgroup_create(stream, "fast", id="0")
    await redis_client.xack(stream, "fast", *await read(redis_client, stream, "fast"))
    await redis_client.xgroup_create(stream, "slow", id="0")
    await redis_client.xack(stream, "slow", *await read(redis_client, stream, "slow", count=6))  # OLD[6:] unread
    await trim_streams(redis_client, keys, ["orders"], 7, now_ms=NOW)
    assert await ids(redis_client, stream) == OLD[6:] + YOUNG
    assert await read(redis_client, stream, "slow") == OLD[6:] + YOUNG  # it still gets every entry


async def test_a_group_created_at_the_start_that_read_nothing_keeps_everything(redis_client, keys, stream):
    await redis_client.xgroup_create(stream, "late", id="0")
    report = await trim_streams(redis_client, keys, ["orders"], 7, now_ms=NOW)
    assert await ids(redis_client, stream) == OLD + YOUNG and report.total == 0


async def test_a_stream_without_groups_is_trimmed_by_age(redis_client, keys, stream):
    other = keys.stream("alerts")
    await fill(redis_client, other, OLD[:2])
    report = await trim_streams(redis_client, keys, ["orders", "alerts", "signals"], 7, now_ms=NOW)
    assert await ids(redis_client, stream) == YOUNG
    assert await redis_client.xlen(other) == 0
    assert not await redis_client.exists(keys.stream("signals"))  # a missing stream is not created
    assert report.trimmed == {"orders": 10, "alerts": 2}


async def test_zero_days_trims_nothing(redis_client, keys, stream):
    report = await trim_streams(redis_client, keys, ["orders"], 0, now_ms=NOW)
    assert await ids(redis_client, stream) == OLD + YOUNG and report.total == 0


def _fill_event(i: int) -> FillEvent:
    return FillEvent(id=f"fill-{i}", ts=1_795_190_000_000 + i, correlation_id=f"c{i}", order_id=f"o{i}",
                     fill_id=f"f{i}", purpose="entry", symbol="SPY", expiry=date(2026, 12, 4).isoformat(),
                     strike=590.0, right="C", side="BUY", qty=1, price=1.25, commission=0.65)


def test_the_service_timer_follows_the_settings(bus):
    on = LedgerService(make_context(bus, ledger={"retention_days": 7.0, "trim_interval_s": 120}))
    assert on.interval_s == 120.0
    off = LedgerService(make_context(bus, ledger={"retention_days": 0}))
    assert off.interval_s is None  # disabled: no timer at all


async def test_a_ledger_outage_longer_than_the_retention_loses_nothing(redis_client, bus, tmp_path):
    """Entries far older than retention_days (ids from 1970) wait, pending, while the ledger
    database is down; the service's timer (Redis time) trims around them; once the database is
    back they are written, acknowledged, and only then trimmed."""
    key = bus.keys.stream("orders")
    for i in range(5):
        await redis_client.xadd(key, encode(_fill_event(i)), id=f"{1000 + i}-0")
    down = store_at("postgresql://postgres@127.0.0.1:1/nowhere")
    down.connect_timeout_s = 1.0
    svc = LedgerService(make_context(bus, ledger={"retention_days": 7.0}), store=down)
    cons = consumer_for(svc)
    await cons.ensure_groups()
    await cons.poll(svc.handle)  # every handling fails: LedgerUnavailable, entries stay pending
    assert cons.failed == 5
    await svc.on_timer(bus.clock.now())
    assert await redis_client.xlen(key) == 5
    svc.store = store_at(f"sqlite:///{tmp_path / 'ledger.sqlite'}").open()
    bus.clock.advance(60)  # past the retry backoff
    assert await cons.poll(svc.handle) == 5
    await svc.on_timer(bus.clock.now())
    assert await redis_client.xlen(key) == 0 and svc.trimmed >= 5
    with svc.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.fills)).scalar() == 5
    svc.store.close()
