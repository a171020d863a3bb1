"""The cached head (lowest score) of a due-time sorted set, for a service's ``next_due``.

The lock-step runner asks every service for ``next_due`` at every simulated instant (the live runner
at every timer poll); asking Redis each time was a ZRANGE per service per instant. This keeps the
head in memory instead. It is only valid for a set where **the owning service is the only writer
that can make the head earlier** (add a member, lower a score):

- the service reports what it adds (:meth:`DueHead.scheduled`: when written on the tx and again after
  the commit): the cached head becomes the lower of the two, never later than the truth;
- anything else the service does to the set (its timer: claims, removals, reschedules, Lua scripts)
  ends with :meth:`DueHead.invalidate`, so the next ``next_due`` reads the set again;
- other writers may only *remove* members (a card decided on Telegram). That only makes the true
  head later, so the cached value is then too early: the runner calls ``on_timer`` once at that
  time, the timer finds nothing due, invalidates, and the next ``next_due`` reads the real head.
  One harmless extra check, never a missed one.

A read that races a change (live runner: the timer loop and the consumer run concurrently) is not
kept: every change bumps a generation, and a read started before it is returned but not cached.

A cached head is also read again once it is ``max_age_ms`` old on the service clock (60 s by
default): a second worker of the same service (the distributor's delivery lease allows two) adds
members this one does not see; if that worker dies, its deliveries are picked up here within that
age instead of waiting for this worker's own next timer run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

MAX_AGE_MS = 60_000


class DueHead:
    def __init__(self, max_age_ms: int = MAX_AGE_MS) -> None:
        self._known = False
        self._head: float | None = None  # ms; None = the set was empty (and nothing added since)
        self._gen = 0
        self._read_ms = 0
        self.max_age_ms = max_age_ms
        self.reads = 0

    async def get(self, read: Callable[[], Awaitable[float | None]], now_ms: int) -> float | None:
        """The head in ms (None: empty), from memory or from ``read()`` (the set's real head);
        ``now_ms`` is the service clock (a head read ``max_age_ms`` ago is read again)."""
        if self._known and now_ms - self._read_ms < self.max_age_ms:
            return self._head
        gen = self._gen
        self.reads += 1
        head = await read()
        if gen == self._gen:
            self._known, self._head, self._read_ms = True, head, now_ms
        return head

    def added(self, due_ms: float) -> None:
        """A member with score ``due_ms`` is (being) added: the head is now at most ``due_ms``."""
        self._gen += 1
        if self._known:
            self._head = due_ms if self._head is None else min(self._head, due_ms)

    def scheduled(self, tx: Any, due_ms: float) -> None:
        """A member with score ``due_ms`` is written on ``tx`` (a :class:`core.bus.bus.Tx`): noted now
        (should the tx fail, the head is merely too early) and again after the commit (a read that
        raced the commit is not kept, and the note survives it)."""
        self.added(due_ms)
        tx.after_commit.append(lambda: self.added(due_ms))

    def invalidate(self) -> None:
        """The set changed in a way not tracked here: read it again next time."""
        self._gen += 1
        self._known = False
