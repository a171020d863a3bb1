"""The Redis record of every order this system sent to IB, and of what was already published.

Why: IB acknowledges an order asynchronously, and the process can die between "decided to
place" and "IB acknowledged". The record is written *before* ``placeOrder`` (phase
``placing``, with the IB order id already reserved), so a restart knows the order may be at
IB and reconciliation can look for it (by ``orderRef`` = our order id) instead of placing it
a second time.

Keys (built by :class:`~core.bus.keys.Keys`):

- hash ``ib_orders``: field = our order id, value = :class:`IbOrderRecord` as JSON (the request
  and :class:`OrderState`, IB order id / perm id / client id / conId, the IB status, the phase,
  cancel bookkeeping).
- hash ``ib_exec_published``: field = IB execId of every fill already published on the bus,
  value = ``{"order_id", "ms"}``. Written on the execution service's transaction pipe
  (:meth:`OrderStore.mark_published`), so the mark commits atomically with the fill events.
- hash ``ib_adopted``: field = contract key, value = contracts adopted from the account so far
  (also written on the service's pipe), so an adoption is never repeated.

Phases of a record: ``placing`` (written, ``placeOrder`` not yet returned) -> ``sent``
(``placeOrder`` returned: the order went to the socket) -> ``acked`` (IB answered with a working
status) -> ``done`` (terminal). ``never_placed``: reconciliation found that IB never received a
``placing`` order; a retry with the same order id may place it.

Writes from ib_async's (synchronous) event callbacks go through :meth:`OrderStore.save_soon`:
one writer task, the newest snapshot of each order wins, in order. :meth:`OrderStore.save`
waits for the write (and raises if Redis refused it) - used before ``placeOrder``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from core.bus.keys import Keys
from core.execution.orders import OrderState

__all__ = ["IbOrderRecord", "OrderStore", "Phase"]

log = logging.getLogger("quanticity.ibkr.order_store")
RETRY_S = 1.0


class Phase(StrEnum):
    PLACING = "placing"
    SENT = "sent"
    ACKED = "acked"
    DONE = "done"
    NEVER_PLACED = "never_placed"


class IbOrderRecord(BaseModel):
    """One order this system sent (or was about to send) to IB."""

    state: OrderState
    phase: Phase = Phase.PLACING
    ib_order_id: int
    client_id: int
    perm_id: int = 0
    con_id: int = 0
    ib_status: str = ""
    cancel_requested: bool = False
    cancel_reason: str | None = None
    cancel_sent: bool = False
    modify_from: float | None = None  # limit before a modification IB has not answered yet
    pending_end: dict[str, str] | None = None  # terminal event waiting for fills' commissions
    exec_ids: list[str] = Field(default_factory=list)

    @property
    def order_id(self) -> str:
        return self.state.order_id

    @property
    def contract_key(self) -> str:
        return self.state.contract_key

    @property
    def live(self) -> bool:
        """Possibly working at IB (sent or acknowledged, not finished)."""
        return self.phase in (Phase.PLACING, Phase.SENT, Phase.ACKED) and self.state.is_open


class OrderStore:
    """The ``ib_orders`` / ``ib_exec_published`` / ``ib_adopted`` hashes (see the module docstring)."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.orders_key = keys.hash("ib_orders")
        self.published_key = keys.hash("ib_exec_published")
        self.adopted_key = keys.hash("ib_adopted")
        self._dirty: dict[str, str] = {}
        self._waiters: list[asyncio.Future] = []
        self._writer: asyncio.Task | None = None

    # ------------------------------------------------------------------ orders
    async def load(self) -> dict[str, IbOrderRecord]:
        raw = await self.redis.hgetall(self.orders_key)
        out: dict[str, IbOrderRecord] = {}
        for oid in sorted(raw):
            try:
                out[oid] = IbOrderRecord.model_validate_json(raw[oid])
            except ValueError:
                log.error("ibkr: unreadable order record %s left as is", oid)
        return out

    def save_soon(self, rec: IbOrderRecord) -> None:
        """Queue a write of ``rec`` as it is now (the newest snapshot of an order wins)."""
        self._dirty[rec.order_id] = rec.model_dump_json()
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write(), name="ibkr-order-store")

    async def save(self, rec: IbOrderRecord) -> None:
        """Write ``rec`` and wait until Redis has it (raises if the write failed)."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.save_soon(rec)
        await fut

    async def delete(self, order_ids: list[str]) -> None:
        if order_ids:
            await self.flush()
            await self.redis.hdel(self.orders_key, *order_ids)

    async def flush(self) -> None:
        """Wait until every write queued so far was tried once (errors are the writer's to retry)."""
        if not self._dirty and (self._writer is None or self._writer.done()):
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._ensure_writer()
        with contextlib.suppress(Exception):
            await fut

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5.0)
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer

    async def _write(self) -> None:
        while self._dirty or self._waiters:
            batch, self._dirty = self._dirty, {}
            waiters, self._waiters = self._waiters, []
            try:
                if batch:
                    await self.redis.hset(self.orders_key, mapping=batch)
            except Exception as exc:  # keep the data, newer snapshots win, try again
                log.error("ibkr: order store write failed (%s); retrying", exc,
                          exc_info=not isinstance(exc, (RedisError, OSError)))
                for k, v in batch.items():
                    self._dirty.setdefault(k, v)
                for w in waiters:
                    if not w.done():
                        w.set_exception(exc)
                await asyncio.sleep(RETRY_S)
                continue
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    # ------------------------------------------------------------------ published executions
    async def published(self, exec_ids: list[str]) -> set[str]:
        """Which of ``exec_ids`` were already published."""
        ids = sorted(set(exec_ids))
        if not ids:
            return set()
        vals = await self.redis.hmget(self.published_key, ids)
        return {i for i, v in zip(ids, vals, strict=True) if v is not None}

    def mark_published(self, pipe: Any, fills: dict[str, str], now_ms: int) -> None:
        """On ``pipe``: execIds (-> order id) are published."""
        if fills:
            pipe.hset(self.published_key, mapping={
                ex: json.dumps({"order_id": oid, "ms": now_ms}) for ex, oid in sorted(fills.items())})

    # ------------------------------------------------------------------ adoptions
    async def adopted(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.adopted_key)
        return {k: int(v) for k, v in raw.items()}

    def mark_adopted(self, pipe: Any, contract_key: str, qty: int) -> None:
        pipe.hincrby(self.adopted_key, contract_key, int(qty))

    # ------------------------------------------------------------------ housekeeping
    async def prune_published(self, older_than_ms: int) -> int:
        """Forget published marks older than ``older_than_ms`` (IB replays a few days at most)."""
        raw = await self.redis.hgetall(self.published_key)
        old = []
        for ex, v in raw.items():
            try:
                if int(json.loads(v)["ms"]) < older_than_ms:
                    old.append(ex)
            except (ValueError, KeyError, TypeError):
                continue
        if old:
            await self.redis.hdel(self.published_key, *old)
        return len(old)
