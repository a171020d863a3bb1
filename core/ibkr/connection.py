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

from core.bus.events import AlertEvent, AuditEvent
from core.clock.clock import Clock, LiveClock
from core.config.model import IbkrSettings
from core.runtime.metrics import REJECTED

log = logging.getLogger("quanticity.ibkr.connection")

Role = Literal["market", "execution", "check"]
MD_TYPES = {"live": 1, "frozen": 2, "delayed": 3, "delayed_frozen": 4}
MD_NAMES = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}
STATE_HASH = {"execution": "broker", "market": "feed_ibkr"}
PACING_MARGIN = 1.1  # throttle window = 1.1 s per max_messages_per_s messages
TWS_LOST = frozenset({1100, 2110})  # TWS <-> IB broken, socket up
PACING = frozenset({100, 420})
NOT_SUBSCRIBED = frozenset({354, 10168})


class IbUnavailable(RuntimeError):
    """The API connection could not be made; ``str()`` is one line for the operator."""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class IbConnection:
    """One role's API connection (see the module docstring)."""

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

    @staticmethod
    def mask_account(acct: str | None) -> str:
        """``"DU1234567"`` -> ``"DU****567"`` (short ids are masked whole)."""
        if not acct:
            return ""
        acct = str(acct)
        return acct[:2] + "****" + acct[-3:] if len(acct) > 5 else "****"

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
            self._set_state("lost", 0, connected=False, reason=_short(exc))
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
        return f"{where}: {_short(exc)}"

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

    # ------------------------------------------------------------------ supervision
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
                    log.warning("ibkr %s: reconnect attempt %d failed: %s", self.role, attempt, _short(exc))
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

    # ------------------------------------------------------------------ errors and notices
    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        try:
            self._handle_error(req_id, code, message)
        except Exception:
            log.exception("ibkr %s: error handler failed for %s", self.role, code)

    def _handle_error(self, req_id: int, code: int, message: str) -> None:
        if code == 326:
            self._refused = True
        elif code in TWS_LOST:
            self._tws_lost = True
            self._mark_lost(code, reconnect=False)
            if self._restore_timer is None and self.role != "check":
                self._restore_timer = asyncio.get_running_loop().call_later(
                    self.settings.reconnect_max_s, self._tws_lost_grace_over)
        elif code == 1300:
            self._mark_lost(code, reconnect=True)
            asyncio.get_running_loop().call_soon(self.ib.disconnect)  # not from inside the decoder
        elif code in (1101, 1102):
            if self._restore_timer is not None:
                self._restore_timer.cancel()
                self._restore_timer = None
            if self._tws_lost and self.ib.isConnected():
                self._tws_lost = False
                self.connected = True
                self._set_state("connected", code, connected=True)
            if code == 1101:
                self._spawn(self._run_ready(False))
        elif code == 2103:
            log.warning("ibkr %s: market data farm broken: %s", self.role, message)
            self._farm_broken = True
        elif code == 2104 and self._farm_broken:
            self._farm_broken = False
            self._spawn(self._run_ready(False))
        elif code == 10197:
            if not self._competing_alerted:
                self._competing_alerted = True
                self._alert("IB_COMPETING_SESSION", "WARNING", "raised",
                            f"IB serves no market data to {self.role}: a competing live session is logged in "
                            f"(10197) - log out of the other TWS / mobile session")
        elif code in PACING:
            self.pacing_violations += 1
            REJECTED.labels(f"ibkr_{self.role}", "pacing").inc()
            log.warning("ibkr %s: pacing violation %d: %s", self.role, code, message)
        elif code == 10167:
            self._md_report(req_id, 3)
        elif code in NOT_SUBSCRIBED:
            if not self._not_subscribed_alerted:
                self._not_subscribed_alerted = True
                self._alert("MARKET_DATA_DELAYED", "WARNING", "raised",
                            f"IB serves no market data for some requests ({code}: not subscribed): {message}")
        elif code == 101:
            REJECTED.labels(f"ibkr_{self.role}", "max_tickers").inc()

    # ------------------------------------------------------------------ market data type
    def _hook_market_data_type(self) -> None:
        """ib_async only stores ``marketDataType`` on the ticker; wrap the wrapper method to see it."""
        wrapper = self.ib.wrapper
        original = wrapper.marketDataType

        def market_data_type(req_id: int, md_type: int) -> None:
            original(req_id, md_type)
            try:
                self._md_report(req_id, md_type)
            except Exception:
                log.exception("ibkr %s: marketDataType handler failed", self.role)

        wrapper.marketDataType = market_data_type  # type: ignore[method-assign]

    def _md_report(self, req_id: int, md_type: int) -> None:
        if md_type not in MD_NAMES:
            return
        self._md_by_req[req_id] = md_type
        live = set(self.ib.wrapper.ticker2ReqId.get("mktData", {}).values()) | {-1, req_id}
        for rid in [r for r in self._md_by_req if r not in live]:
            del self._md_by_req[rid]
        worst = max(self._md_by_req.values())
        if worst == self.market_data_type:
            return
        self.market_data_type = worst
        downgraded = worst > self.requested_market_data_type
        log.log(logging.WARNING if downgraded else logging.INFO, "ibkr %s: IB serves %s market data (asked %s)",
                self.role, MD_NAMES[worst], MD_NAMES[self.requested_market_data_type])
        alerts = []
        if downgraded and not self._md_alerted:
            self._md_alerted = True
            alerts.append({"code": "MARKET_DATA_DELAYED", "severity": "WARNING", "state": "raised", "message": (
                f"IBKR serves {MD_NAMES[worst]} market data, not {MD_NAMES[self.requested_market_data_type]}: "
                "quotes lag or do not move - check the account's market-data subscriptions")})
        elif not downgraded and self._md_alerted:
            self._md_alerted = False
            alerts.append({"code": "MARKET_DATA_DELAYED", "severity": "WARNING", "state": "cleared",
                           "message": f"IBKR serves {MD_NAMES[worst]} market data again"})
        self._set_state(self._state, 0, connected=self.connected, alerts=alerts, market_data=True)

    # ------------------------------------------------------------------ state out (Redis + bus)
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

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
