"""One supervised API connection to TWS / IB Gateway, shared by the market source and the broker.

Each process role has its own client id (``ibkr.client_ids``): IB ties orders to the client id
that placed them and refuses a second session with an id already in use (error 326).

What :class:`IbConnection` does, and why:

- **First connect** (:meth:`IbConnection.start`) fails fast with :class:`IbUnavailable` and one
  line (refused port, handshake timeout, client id in use), so start-up and ``ibkr check`` can
  exit 2. A 326 is seen at once through ``errorEvent`` / ``client.apiError`` instead of waiting
  for ib_async's connect timeout.
- **Supervision**: a socket drop or a 1300 (TWS reset its API port) starts the reconnect loop:
  exponential backoff with full jitter, ``delay = uniform(reconnect_min_s, min(reconnect_max_s,
  reconnect_min_s * 2**attempt))``, forever. 1100 / 2110 (TWS lost its own connection to IB; the
  socket stays up) mark the connection lost at once and wait for TWS to restore it: 1101 (data
  lost: resubscribe) or 1102 (data kept); if neither comes within ``reconnect_max_s`` the socket
  is dropped and the reconnect loop takes over. A 326 raises one CRITICAL ``IB_CLIENT_ID_IN_USE``
  alert and the role stays down until restart (a loop would fight the other session).
  10197 (competing live session) raises a WARNING ``IB_COMPETING_SESSION``.
- **Resubscription**: ib_async forgets every subscription with the socket, and TWS forgets them
  after 1101 or a broken market-data farm (2103 then 2104). ``on_ready(cb)`` callbacks are
  awaited after each (re)connect and after those notices (``first`` is True only once).
- **Market-data type**: ``ibkr.market_data_type`` is requested after each connect. What IB
  actually serves comes back in ``marketDataType`` messages (per request) and errors
  10167 (delayed shown); the worst type among the live requests is ``market_data_type``. A
  downgrade writes the hash field and raises one WARNING ``MARKET_DATA_DELAYED`` (cleared when
  the requested type is back) so the operator sees it, not only a log line. 354 / 10168 (not
  subscribed, nothing served) raise the same alert once per connection.
- **Pacing**: ib_async's own throttle (``client.MaxRequests`` per ``client.RequestsInterval``)
  is set from ``max_messages_per_s`` with a 10% longer window, so TWS's 1-second window - measured
  when the messages arrive - never sees more than the limit. 100 / 420 (pacing) are logged and
  counted.
- **State**: role ``execution`` writes hash ``broker``, role ``market`` hash ``feed_ibkr``
  (fields ``connected`` "1"/"0", ``since_ms``, ``name`` "ibkr", ``account`` masked,
  ``server_version``, ``market_data_type``, ``state``, ``client_id``); every change also emits an
  ``AuditEvent(actor="ibkr:<role>", action="connection")``. Writes go through one queue so they
  land in the order the changes happened. Role ``check`` writes nothing and is not supervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import ib_async
from ib_async.ib import StartupFetch, StartupFetchALL, StartupFetchNONE

from core.clock.clock import Clock, LiveClock
from core.config.model import IbkrSettings
from core.ibkr.connection_notices import IbNoticeHandler
from core.ibkr.connection_state import STATE_HASH, ConnectionStateWriter
from core.ibkr.connection_supervisor import ReconnectSupervisor, short_error
from core.ibkr.ib_codes import MD_NAMES, MD_TYPES

log = logging.getLogger("quanticity.ibkr.connection")

Role = Literal["market", "execution", "check"]
PACING_MARGIN = 1.1  # throttle window = 1.1 s per max_messages_per_s messages


class IbUnavailable(RuntimeError):
    """The API connection could not be made; ``str()`` is one line for the operator."""


class IbConnection(ReconnectSupervisor, IbNoticeHandler, ConnectionStateWriter):
    """One role's API connection (see the module docstring).

    Connecting and the public API live here; supervision in
    :mod:`core.ibkr.connection_supervisor`, error / notice codes in
    :mod:`core.ibkr.connection_notices`, the state hash and alerts in :mod:`core.ibkr.connection_state`.
    """

    def __init__(self, settings: IbkrSettings, role: Role, *, redis: Any = None, keys: Any = None,
                 bus: Any = None, clock: Clock | None = None, ib: ib_async.IB | None = None) -> None:
        self.settings = settings
        self.role: str = role
        self.client_id: int = int(settings.client_ids[role])
        self.ib: ib_async.IB = ib or ib_async.IB()
        self.connected: bool = False
        self.account: str | None = settings.account
        self.requested_market_data_type: int = MD_TYPES[settings.market_data_type]
        self.market_data_type: int = self.requested_market_data_type
        self.server_version: int | None = None
        self.pacing_violations = 0
        self._redis, self._keys, self._bus = redis, keys, bus
        self._clock: Clock = clock or LiveClock()
        self._hash = keys.hash(STATE_HASH[role]) if keys is not None and role in STATE_HASH else None
        self._ready_cbs: list[Callable[[bool], Awaitable[None]]] = []
        self._lost_cbs: list[Callable[[], None]] = []
        self._rng = random.Random()
        self._state = "down"
        self._since_ms = 0
        self._stopping = False
        self._connecting = False
        self._refused = False
        self._farm_broken = False
        self._tws_lost = False  # 1100/2110 seen, no 1101/1102 yet
        self._md_by_req: dict[int, int] = {}
        self._md_alerted = False
        self._not_subscribed_alerted = False
        self._competing_alerted = False
        self._need_reconnect = asyncio.Event()
        self._restore_timer: asyncio.TimerHandle | None = None
        self._supervisor: asyncio.Task | None = None
        self._writer: asyncio.Task | None = None
        self._outbox: asyncio.Queue | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ready_lock = asyncio.Lock()
        self._set_throttle()
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected
        self._hook_market_data_type()

    # ------------------------------------------------------------------ public API
    def on_ready(self, cb: Callable[[bool], Awaitable[None]]) -> None:
        """``await cb(first)`` after every (re)connect and after 1101 / 2104-after-2103."""
        self._ready_cbs.append(cb)

    def on_lost(self, cb: Callable[[], None]) -> None:
        """``cb()`` when the connection drops or TWS loses IB (1100 / 1300 / 2110)."""
        self._lost_cbs.append(cb)

    @property
    def market_data_name(self) -> str:
        return MD_NAMES.get(self.market_data_type, str(self.market_data_type))

    @property
    def refused(self) -> bool:
        """A 326 stopped this role (down until restart)."""
        return self._refused

    async def start(self) -> None:
        """First connect (IbUnavailable on failure), then supervise (not for role ``check``)."""
        self._stopping = False
        self._start_writer()
        try:
            await self._connect_once()
        except (OSError, TimeoutError, ConnectionError, RuntimeError, ValueError) as exc:
            if self._refused:
                await self._refuse()
                await self.flush()
                raise IbUnavailable(self._refused_line()) from None
            self._set_state("lost", 0, connected=False, reason=short_error(exc))
            await self.flush()
            raise IbUnavailable(self._unreachable_line(exc)) from None
        await self._after_connect(first=True, code=0)
        if self.role != "check":
            self._supervisor = asyncio.create_task(self._supervise(), name=f"ibkr-{self.role}-supervisor")

    async def stop(self) -> None:
        self._stopping = True
        self._need_reconnect.set()
        if self._restore_timer is not None:
            self._restore_timer.cancel()
        tasks = [t for t in (self._supervisor, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self._supervisor = None
        was_up = self.ib.isConnected()
        self.ib.disconnect()
        if self.connected or was_up:
            self.connected = False
            self._set_state("lost", 0, connected=False, reason="stopped")
        await self.flush()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer
            self._writer = None

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued state write reached Redis (tests, shutdown)."""
        if self._outbox is not None and self._writer is not None and not self._writer.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._outbox.join(), timeout)

    # ------------------------------------------------------------------ connecting
    def _set_throttle(self) -> None:
        rate = float(self.settings.max_messages_per_s)
        n = max(1, math.floor(rate))
        self.ib.client.MaxRequests = n
        self.ib.client.RequestsInterval = n / rate * PACING_MARGIN

    def _fetch(self) -> StartupFetch:
        if self.role == "execution":
            return StartupFetchALL
        if self.role == "check":
            return StartupFetch.POSITIONS | StartupFetch.ACCOUNT_UPDATES
        return StartupFetchNONE

    async def _connect_once(self) -> None:
        """One connect attempt; raises on failure (a 326 sets ``_refused``)."""
        s = self.settings
        self._refused = False
        loop = asyncio.get_running_loop()
        api_error: asyncio.Future = loop.create_future()

        def on_api_error(msg: str) -> None:
            if not api_error.done():
                api_error.set_result(msg)

        self.ib.client.apiError += on_api_error
        self._connecting = True
        task = asyncio.ensure_future(self.ib.connectAsync(
            s.host, s.port, clientId=self.client_id, timeout=s.connect_timeout_s,
            readonly=self.role != "execution", account=s.account or "", fetchFields=self._fetch()))
        try:
            await asyncio.wait({task, api_error}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # the socket closed or the API refused us before the handshake ended
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                raise ConnectionError(api_error.result())
            task.result()  # raises what ib_async raised (refused, timeout, ...)
            if not self.ib.isConnected():
                raise ConnectionError("connection closed during start-up")
        except BaseException:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise
        finally:
            self._connecting = False
            self.ib.client.apiError -= on_api_error

    def _unreachable_line(self, exc: BaseException) -> str:
        s = self.settings
        where = f"IBKR {s.host}:{s.port} (client id {self.client_id}, {self.role})"
        if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
            return f"{where}: connection refused - is TWS / IB Gateway running with the API enabled on that port?"
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return f"{where}: no API handshake within {s.connect_timeout_s:g}s"
        return f"{where}: {short_error(exc)}"

    def _refused_line(self) -> str:
        s = self.settings
        return (f"IBKR {s.host}:{s.port}: client id {self.client_id} ({self.role}) is already in use by "
                f"another API session (error 326)")

    async def _after_connect(self, *, first: bool, code: int) -> None:
        self.connected = True
        self._tws_lost = False
        self._farm_broken = False
        self._md_by_req.clear()
        self._not_subscribed_alerted = False
        self._competing_alerted = False
        self._need_reconnect.clear()
        self.server_version = int(self.ib.client.serverVersion()) or None
        accounts = self.ib.managedAccounts()
        if self.settings.account and accounts and self.settings.account not in accounts:
            log.error("ibkr %s: configured account %s is not managed by this login (%s)", self.role,
                      self.mask_account(self.settings.account), ", ".join(map(self.mask_account, accounts)))
        self.account = self.settings.account or (accounts[0] if accounts else None)
        if self.role != "check":
            self.ib.reqMarketDataType(self.requested_market_data_type)
        log.info("ibkr %s connected: %s:%s client %d server %s account %s", self.role, self.settings.host,
                 self.settings.port, self.client_id, self.server_version, self.mask_account(self.account))
        self._set_state("connected", code, connected=True)
        await self._run_ready(first)

    async def _run_ready(self, first: bool) -> None:
        async with self._ready_lock:
            if not self.connected:
                return
            for cb in list(self._ready_cbs):
                try:
                    await cb(first)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("ibkr %s: on_ready callback failed", self.role)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
