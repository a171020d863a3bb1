"""The broker book held by one handling from its start to its commit, and undone if it fails.

State moves only with its commit: one handling, timer tick or push flush at a time holds the
broker (``_book`` lock) from its start to its commit (:meth:`BrokerBookLock._take_book`). If the
handler or the commit fails, :meth:`BrokerBookLock._rollback` marks the broker stale: it is
rebuilt from what Redis holds (:meth:`BrokerBookLock._resync`) before its next use, the
pending-entry copy is re-read, and a live broker gets back the events it had handed out
(``Broker.rollback``) to publish them again. Events the broker pushes between handlings
(fills, cancels, rejects of a live broker) are published by :meth:`BrokerBookLock.on_wake`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from core.bus.bus import Tx
from core.execution.broker import BrokerEvent
from core.execution.outputs import ExecutionOutputs

HANDLING_WAIT_S = 10.0  # longest wait for the handling in flight to commit (then BrokerBusy: tried again)


class BrokerBusy(RuntimeError):
    """The broker stayed held by another handling longer than ``HANDLING_WAIT_S``."""


class BrokerBookLock(ExecutionOutputs):
    """The lock, the push flush and the rollback of the execution service's broker."""

    _book: asyncio.Lock  # held by one handling / timer tick / flush from its start to its commit
    _stale: bool  # a commit or handler failed: rebuild the broker from Redis before its next use
    _pending: dict[str, str] | None  # the pending-entry copy (:mod:`core.execution.entries`)

    async def on_wake(self, now: datetime) -> None:
        """The broker pushed events (fills, cancels, rejects): publish them now. While a handling
        is between its start and its commit, its own transaction takes them (in order after what
        it publishes); the flush waits for it (``HANDLING_WAIT_S`` at most, then logs and asks
        to be woken again: it never publishes beside a handling in flight)."""
        try:
            await self._take_book()
        except BrokerBusy as exc:
            self.log.error("%s: pushed events wait", exc)
            self.wake()
            return
        try:
            await self._flush_locked()
        finally:
            self._book.release()

    async def _take_book(self) -> None:
        """Hold the broker for one handling / tick / flush. Free: taken at once (no yield, so the
        lock-step runner's order is unchanged). Held: wait ``HANDLING_WAIT_S`` at most, then
        :class:`BrokerBusy` (the work is retried) rather than hang on a handling never finished."""
        if not self._book.locked():
            await self._book.acquire()
            return
        try:
            await asyncio.wait_for(self._book.acquire(), HANDLING_WAIT_S)
        except TimeoutError:
            raise BrokerBusy(f"the broker has been held by one handling for over {HANDLING_WAIT_S:.0f} s") from None

    async def _flush_pushed(self) -> bool:
        await self._take_book()
        try:
            return await self._flush_locked()
        finally:
            self._book.release()

    async def _flush_locked(self) -> bool:
        await self._resync()
        events = self.broker.drain_events()
        if not events:
            return False
        tx = self.bus.tx()
        try:
            self._publish_pushed(tx, events)
            await tx.commit()
        except BaseException:
            self._rollback(tx)  # not published: they go out with the next attempt
            raise
        return True

    async def _resync(self) -> None:
        """After a failed handling or commit: the broker back to what Redis holds (the last commit)."""
        if self._stale:
            self.broker.rebuild(await self.redis.get(self._state_key))
            self._stale = False
            self.log.warning("broker state rebuilt from Redis after a failed handling or commit")

    def _rollback(self, tx: Tx) -> None:
        """``tx`` will never commit: what it did to memory is undone before the next handling.
        Events drained from the push channel go back to it; events the broker returned are
        given back to it (a live broker requeues them, the paper book re-creates them)."""
        self._stale = True
        self._pending = None
        pushed = tx.scratch.pop("pushed", [])
        drained = {id(e) for e in pushed}
        self.broker.requeue(pushed)
        self.broker.rollback([e for e in tx.scratch.pop("broker_events", []) if id(e) not in drained])

    @staticmethod
    def _note_pushed(tx: Tx, events: list[BrokerEvent]) -> None:
        tx.scratch.setdefault("pushed", []).extend(events)

    def _failed_commit(self, tx: Tx) -> None:
        try:
            self._rollback(tx)
        finally:
            if self._book.locked():
                self._book.release()

    def _publish_pushed(self, tx: Tx, events: list[BrokerEvent]) -> None:
        """Pushed broker events on ``tx`` with the broker's published-marks and its state."""
        self._note_pushed(tx, events)
        self._publish(tx, events)
        self.broker.record_published(tx.pipe, events)
        self._persist(tx)
