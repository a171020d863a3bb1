"""Connection state out: the Redis state hash, ``AuditEvent`` and ``AlertEvent`` of one IB connection.

Role ``execution`` writes hash ``broker``, role ``market`` hash ``feed_ibkr``; role ``check``
writes nothing. Every write goes through one queue drained by one task, so the writes land in the
order the changes happened. Mixed into :class:`~core.ibkr.connection.IbConnection`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from core.bus.events import AlertEvent, AuditEvent
from core.clock.clock import Clock

log = logging.getLogger("quanticity.ibkr.connection")

STATE_HASH = {"execution": "broker", "market": "feed_ibkr"}


class ConnectionStateWriter:
    """Writes what the connection reports (state hash, audit, alerts) in order, off the IB callbacks."""

    role: str
    client_id: int
    account: str | None
    server_version: int | None
    market_data_type: int
    _bus: Any
    _hash: str | None
    _clock: Clock
    _state: str
    _since_ms: int
    _writer: asyncio.Task | None
    _outbox: asyncio.Queue | None

    @staticmethod
    def mask_account(acct: str | None) -> str:
        """``"DU1234567"`` -> ``"DU****567"`` (short ids are masked whole)."""
        if not acct:
            return ""
        acct = str(acct)
        return acct[:2] + "****" + acct[-3:] if len(acct) > 5 else "****"

    def _alert(self, code: str, severity: str, state: str, message: str) -> None:
        log.warning("ibkr %s: %s %s", self.role, code, message)
        self._enqueue(None, None, [{"code": code, "severity": severity, "state": state, "message": message}])

    def _set_state(self, state: str, code: int, *, connected: bool, alerts: list[dict] | None = None,
                   market_data: bool = False, **extra: Any) -> None:
        if not market_data or state != self._state:
            self._since_ms = self._clock.ms()
        changed = state != self._state or not market_data
        self._state = state
        fields = {"connected": "1" if connected else "0", "since_ms": str(self._since_ms), "name": "ibkr",
                  "account": self.mask_account(self.account), "server_version": str(self.server_version or ""),
                  "market_data_type": str(self.market_data_type), "state": state,
                  "client_id": str(self.client_id)}
        audit = None
        if changed:
            audit = {"state": state, "code": int(code), "client_id": self.client_id, **extra}
        self._enqueue(fields, audit, alerts or [])

    def _enqueue(self, fields: dict | None, audit: dict | None, alerts: list[dict]) -> None:
        if self._bus is None or self._outbox is None:
            return
        self._outbox.put_nowait((fields, audit, alerts))

    def _start_writer(self) -> None:
        if self._bus is None:
            return
        if self._outbox is None:
            self._outbox = asyncio.Queue()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name=f"ibkr-{self.role}-state")

    async def _write_loop(self) -> None:
        assert self._outbox is not None
        while True:
            fields, audit, alerts = await self._outbox.get()
            try:
                tx = self._bus.tx()
                if fields is not None and self._hash is not None:
                    tx.pipe.hset(self._hash, mapping=fields)
                if audit is not None:
                    tx.emit(AuditEvent, actor=f"ibkr:{self.role}", action="connection", detail=audit)
                for a in alerts:
                    tx.emit(AlertEvent, code=a["code"], severity=a["severity"], state=a["state"],
                            subject=f"ibkr:{self.role}", message=a["message"])
                if not tx.empty:
                    await tx.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ibkr %s: could not write connection state", self.role)
            finally:
                self._outbox.task_done()
