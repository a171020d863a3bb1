"""core/runtime/due_head.py: a cached head is read again once it is max_age_ms old, so members a
second worker added (this one never hears of them) are found even if that worker dies."""

from __future__ import annotations

from core.runtime.due_head import DueHead


class _Set:
    """The sorted set as the other worker leaves it (the real read is one ZRANGE)."""

    def __init__(self) -> None:
        self.head: float | None = None
        self.reads = 0

    async def read(self) -> float | None:
        self.reads += 1
        return self.head


async def test_a_head_added_by_another_worker_is_seen_within_the_max_age():
    zset, mine = _Set(), DueHead(max_age_ms=60_000)
    assert await mine.get(zset.read, 0) is None
    zset.head = 5_000.0  # the other worker scheduled a delivery, then died
    assert await mine.get(zset.read, 59_999) is None  # cached: one read so far
    assert zset.reads == 1
    assert await mine.get(zset.read, 60_000) == 5_000.0  # read again at the max age
    assert zset.reads == 2


async def test_own_additions_lower_the_cached_head_without_a_read():
    zset, mine = _Set(), DueHead()
    assert await mine.get(zset.read, 0) is None
    mine.added(9_000.0)
    assert await mine.get(zset.read, 1_000) == 9_000.0 and zset.reads == 1
    mine.invalidate()
    zset.head = 7_000.0
    assert await mine.get(zset.read, 2_000) == 7_000.0 and zset.reads == 2
