"""When a failed handling is tried again: a per-entry next-attempt time, in memory.

Decision: a handling that fails (the handler raised, or its MULTI/EXEC did) is retried by
the same running consumer, not at the next restart, after ``base_ms * 2**(tries-1)`` on the
bus clock (capped at ``max_ms``). The wait is per entry: other entries, streams and services
go on meanwhile. The attempt count that decides dead-lettering lives in Redis (the group's
tries hash), so a restart keeps it; the schedule itself is only a pacing hint and a restarted
consumer retries its own pending entries at once.
"""

from __future__ import annotations


class RetrySchedule:
    def __init__(self, base_ms: int = 250, max_ms: int = 30_000) -> None:
        if base_ms < 0 or max_ms < base_ms:
            raise ValueError(f"retry backoff needs 0 <= base_ms <= max_ms (got {base_ms}, {max_ms})")
        self.base_ms = base_ms
        self.max_ms = max_ms
        self._due: dict[tuple[str, str], int] = {}  # (stream key, entry id) -> earliest next attempt (ms)
        self._tries: dict[tuple[str, str], int] = {}  # failed attempts seen by this process

    def delay_ms(self, tries: int) -> int:
        """Backoff before attempt ``tries + 1``: base, 2x base, 4x base ... at most ``max_ms``."""
        return min(self.max_ms, self.base_ms * 2 ** max(0, min(tries - 1, 30)))

    def failed(self, key: str, entry_id: str, tries: int, now_ms: int) -> int:
        """Schedule the next attempt of a failed entry; returns when it is due (ms)."""
        at = now_ms + self.delay_ms(tries)
        self._due[(key, entry_id)] = at
        self._tries[(key, entry_id)] = tries
        return at

    def tries(self, key: str, entry_id: str) -> int:
        """Failed attempts of this entry seen by this process (the Redis count may be higher)."""
        return self._tries.get((key, entry_id), 0)

    def done(self, key: str, entry_id: str) -> bool:
        """The entry was handled, acked or dead-lettered; True if it had been retried."""
        self._tries.pop((key, entry_id), None)
        return self._due.pop((key, entry_id), None) is not None

    def forget_missing(self, key: str, pending: set[str]) -> list[str]:
        """Drop the schedules of ``key``'s entries not in ``pending`` (no longer this consumer's)."""
        gone = sorted(i for k, i in self._due if k == key and i not in pending)
        for i in gone:
            self.done(key, i)
        return gone

    def waiting(self, key: str, entry_id: str, now_ms: int) -> bool:
        """True while a scheduled retry of this entry is not due yet (unscheduled entries are due)."""
        at = self._due.get((key, entry_id))
        return at is not None and at > now_ms

    def scheduled(self, key: str, entry_id: str) -> bool:
        return (key, entry_id) in self._due

    def due_keys(self, now_ms: int) -> set[str]:
        """Streams holding at least one entry whose retry is due."""
        return {key for (key, _), at in self._due.items() if at <= now_ms}

    def next_ms(self) -> int | None:
        """Earliest scheduled retry (None: nothing to retry)."""
        return min(self._due.values(), default=None)

    def __len__(self) -> int:
        return len(self._due)


class Unavailable(Exception):
    """Raised by a handler when a store it writes to (not Redis: e.g. the ledger's database) is
    down. Not the event's fault: the consumer retries it with the same backoff but never counts
    it toward dead-lettering, so an outage of any length loses nothing (the entry stays pending)."""
