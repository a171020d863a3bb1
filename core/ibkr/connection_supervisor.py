"""Supervision of one IB connection: reconnect with backoff, 326 refusal, loss and the 1100 grace.

A socket drop or a 1300 starts the reconnect loop (exponential backoff with full jitter,
forever). 1100 / 2110 mark the connection lost and give TWS ``reconnect_max_s`` to restore its IB
link before the socket is dropped. A 326 (client id in use) raises one CRITICAL alert and the role
stays down until restart. Mixed into :class:`~core.ibkr.connection.IbConnection`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import ib_async

from core.config.model import IbkrSettings

log = logging.getLogger("quanticity.ibkr.connection")


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class ReconnectSupervisor:
    """The reconnect loop and the lost / refused transitions of :class:`IbConnection`."""

    settings: IbkrSettings
    role: str
    client_id: int
    ib: ib_async.IB
    connected: bool
    _rng: random.Random
    _stopping: bool
    _connecting: bool
    _refused: bool
    _tws_lost: bool
    _lost_cbs: list[Callable[[], None]]
    _need_reconnect: asyncio.Event
    _restore_timer: asyncio.TimerHandle | None
    _set_state: Callable[..., None]
    _connect_once: Callable[..., Any]
    _after_connect: Callable[..., Any]

    def backoff(self, attempt: int) -> float:
        """Delay before reconnect attempt ``attempt`` (0-based): full jitter within the doubling cap."""
        lo, hi = self.settings.reconnect_min_s, self.settings.reconnect_max_s
        cap = min(hi, lo * (2.0 ** min(attempt, 30)))
        return self._rng.uniform(lo, max(lo, cap))

    async def _supervise(self) -> None:
        while not self._stopping:
            await self._need_reconnect.wait()
            if self._stopping or self._refused:
                return
            attempt = 0
            self._set_state("reconnecting", 0, connected=False)
            while not self._stopping:
                delay = self.backoff(attempt)
                attempt += 1
                log.info("ibkr %s: reconnect attempt %d in %.2fs", self.role, attempt, delay)
                await asyncio.sleep(delay)
                if self._stopping:
                    return
                if self.ib.isConnected():  # a stale socket (1100 grace expired): start clean
                    self.ib.disconnect()
                try:
                    await self._connect_once()
                except (OSError, TimeoutError, ConnectionError, RuntimeError) as exc:
                    if self._refused:
                        await self._refuse()
                        return
                    log.warning("ibkr %s: reconnect attempt %d failed: %s", self.role, attempt, short_error(exc))
                    continue
                await self._after_connect(first=False, code=0)
                break

    async def _refuse(self) -> None:
        """326: one CRITICAL alert, no reconnect loop (down until restart)."""
        self.connected = False
        s = self.settings
        msg = (f"IB client id {self.client_id} ({self.role}) is already in use at {s.host}:{s.port}: "
               f"the {self.role} connection stays down until restart - give each process its own "
               "ibkr.client_ids entry, or close the other session")
        log.critical(msg)
        self._set_state("refused", 326, connected=False, alerts=[
            {"code": "IB_CLIENT_ID_IN_USE", "severity": "CRITICAL", "state": "raised", "message": msg}])

    def _mark_lost(self, code: int, *, reconnect: bool) -> None:
        """Connection (or TWS's link to IB) lost: state, on_lost callbacks, maybe the reconnect loop."""
        if self._stopping:
            return
        was = self.connected
        self.connected = False
        if was:
            log.warning("ibkr %s: connection lost (code %d)", self.role, code)
            self._set_state("lost", code, connected=False)
            for cb in list(self._lost_cbs):
                try:
                    cb()
                except Exception:
                    log.exception("ibkr %s: on_lost callback failed", self.role)
        if reconnect and self.role != "check" and not self._refused:
            self._need_reconnect.set()

    def _on_disconnected(self) -> None:
        if self._connecting or self._stopping:
            return
        if self._restore_timer is not None:
            self._restore_timer.cancel()
            self._restore_timer = None
        self._mark_lost(0, reconnect=True)

    def _tws_lost_grace_over(self) -> None:
        self._restore_timer = None
        if self._tws_lost and not self._stopping:
            log.warning("ibkr %s: TWS did not restore its IB connection: reconnecting the socket", self.role)
            self._tws_lost = False
            self._need_reconnect.set()
