"""The one newest-first page loop of ``reports.streams`` (``walk_back``), through both readers that
use it, on the real Redis with more entries than one XREVRANGE page: ``scan`` returns exactly the
window in publish order and stops one page past it; ``latest_analytics`` finds the newest snapshot
per symbol across pages and never reads more than ``ANALYTICS_SCAN_MAX`` entries."""

from __future__ import annotations

from core.bus.events import AlertEvent, AnalyticsEvent, encode
from reports import streams
from reports.streams import PAGE, SLACK_MS, latest_analytics, scan

BASE_MS = 1_795_000_000_000
N = 2 * PAGE + PAGE // 2          # three pages
STEP_MS = 60_000


def _alert(i: int) -> AlertEvent:
    return AlertEvent(id=f"a{i}", ts=BASE_MS + i * STEP_MS, correlation_id=f"c{i}", code="TEST",
                      severity="INFO", state="raised", message=f"m{i}")


def _snapshot(i: int, symbol: str) -> AnalyticsEvent:
    return AnalyticsEvent(id=f"s{i}", ts=BASE_MS + i * STEP_MS, correlation_id=f"c{i}", snapshot_id=f"s{i}",
                          symbol=symbol, spot=100.0 + i, asof=BASE_MS + i * STEP_MS)


def _counting(redis_client) -> list[int]:
    """Counts XREVRANGE calls (the real command still runs)."""
    calls: list[int] = []
    real = redis_client.xrevrange

    async def xrevrange(*args, **kwargs):
        calls.append(1)
        return await real(*args, **kwargs)

    redis_client.xrevrange = xrevrange
    return calls


async def _publish(redis_client, key: str, events) -> None:
    pipe = redis_client.pipeline(transaction=False)
    for ev in events:
        pipe.xadd(key, encode(ev))
    await pipe.execute()


async def test_scan_returns_the_window_in_order_across_pages_and_skips_bad_entries(redis_client, keys):
    key = keys.stream(AlertEvent.STREAM)
    await _publish(redis_client, key, [_alert(i) for i in range(N)])
    await redis_client.xadd(key, {"t": "alert", "d": "{not json"})  # malformed: counted, skipped
    lo, hi = 700, 1900
    got = await scan(redis_client, key, BASE_MS + lo * STEP_MS, BASE_MS + hi * STEP_MS, (AlertEvent,))
    assert [e.id for e in got] == [f"a{i}" for i in range(lo, hi + 1)]


async def test_scan_stops_once_a_whole_page_is_older_than_the_window(redis_client, keys):
    key = keys.stream(AlertEvent.STREAM)
    await _publish(redis_client, key, [_alert(i) for i in range(N)])
    calls = _counting(redis_client)
    since = BASE_MS + (N - 100) * STEP_MS  # the newest 100 entries, well inside the newest page
    assert SLACK_MS < PAGE * STEP_MS
    got = await scan(redis_client, key, since, BASE_MS + N * STEP_MS, (AlertEvent,))
    assert [e.id for e in got] == [f"a{i}" for i in range(N - 100, N)]
    assert len(calls) == 2  # the newest page, then one page wholly older than the window: stop


async def test_latest_analytics_finds_the_newest_per_symbol_across_pages(redis_client, keys):
    key = keys.stream(AnalyticsEvent.STREAM)
    # OLD only in the oldest page; NEW in every entry after it
    await _publish(redis_client, key, [_snapshot(i, "OLD" if i < 5 else "NEW") for i in range(N)])
    calls = _counting(redis_client)
    found = await latest_analytics(redis_client, keys, BASE_MS + N * STEP_MS, ["NEW", "OLD"])
    assert {s: ev.id for s, ev in found.items()} == {"NEW": f"s{N - 1}", "OLD": "s4"}
    assert len(calls) == 3
    # a bound at or before the newest NEW: the newest one at or before it
    found = await latest_analytics(redis_client, keys, BASE_MS + 1000 * STEP_MS, ["NEW"])
    assert found["NEW"].id == "s1000"
    assert len(calls) == 3 + 2  # stops as soon as every wanted symbol is found


async def test_latest_analytics_reads_no_more_than_the_scan_maximum(redis_client, keys, monkeypatch):
    key = keys.stream(AnalyticsEvent.STREAM)
    await _publish(redis_client, key, [_snapshot(i, "OLD" if i < 5 else "NEW") for i in range(N)])
    monkeypatch.setattr(streams, "ANALYTICS_SCAN_MAX", 2 * PAGE)
    calls = _counting(redis_client)
    found = await latest_analytics(redis_client, keys, BASE_MS + N * STEP_MS, ["NEW", "OLD"])
    assert set(found) == {"NEW"}  # OLD lies past the maximum
    assert len(calls) == 2
