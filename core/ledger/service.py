"""The ledger service: every trade event on the bus, written once into the ledger database.

It consumes the streams of ``core.ledger.rows.LEDGERED`` in its own consumer group and writes
each event in a database transaction before the bus acknowledges it, so:
- a crash before the write leaves the entry pending: it is written after the restart;
- a crash after the write but before the ack re-delivers it: the write adds nothing (event id);
- a database outage raises ``LedgerUnavailable``: the consumer retries with backoff (0.25 s
  doubling to 30 s) for as long as it lasts and never dead-letters; the bus keeps the entries.
Lag behind the bus is one poll in ``run`` (``runner.poll_block_ms``) plus the write; the demo
writes in lock-step. The service publishes nothing, so it cannot change any decision.

Its timer (every ``ledger.trim_interval_s`` of the service clock) trims the bus streams to
``ledger.retention_days`` (``core.ledger.retention``): never past an entry a group still needs,
so never past one this service has not written yet. Age is Redis time: a demo day trims nothing.
"""

from __future__ import annotations

from datetime import datetime

from core.bus.bus import Tx
from core.bus.events import ALL_STREAMS, AlertEvent, Event
from core.ledger.retention import trim_streams
from core.ledger.rows import LEDGERED_STREAMS, LEDGERED_TYPES
from core.ledger.store import LedgerStore, LedgerUnavailable, resolve_url
from core.runtime.service import Context, Service


def store_for(ctx: Context) -> LedgerStore:
    """The store of this run: ``extras['ledger_url']`` (demo / tests), else ``DATABASE_URL``, else
    the mode's SQLite file; the demo without an override writes ``<out>/ledger.sqlite``."""
    s = ctx.settings.ledger
    mode = ctx.settings.mode.value
    override = ctx.extras.get("ledger_url")
    if override is None and ctx.extras.get("session_day") is not None and ctx.out_dir:
        override = f"sqlite:///{ctx.out_dir}/ledger.sqlite"  # the lock-step demo day
    secret = ctx.secrets.database_url.get_secret_value() if ctx.secrets.database_url else None
    return LedgerStore(resolve_url(s.sqlite_path, mode, secret, override=override), mode,
                       connect_timeout_s=s.connect_timeout_s)


OUTAGE_ALERT_S = 30  # an outage longer than this raises LEDGER_UNAVAILABLE (WARNING) to the admin


class LedgerService(Service):
    name = "ledger"
    streams = LEDGERED_STREAMS
    event_types = LEDGERED_TYPES

    def __init__(self, ctx: Context, store: LedgerStore | None = None) -> None:
        super().__init__(ctx)
        self.store = store or store_for(ctx)
        self.retention_days = ctx.settings.ledger.retention_days
        # retention_days 0 disables trimming: no timer at all
        self.interval_s = float(ctx.settings.ledger.trim_interval_s) if self.retention_days > 0 else None
        self.trimmed = 0  # stream entries trimmed by this process
        self._down_since: int | None = None  # bus-clock ms of the first failed write of an outage
        self._alerted = False

    async def start(self) -> None:
        try:
            await self.store.aopen()
            self.log.info("ledger: %s (mode %s)", self.store.describe(), self.store.mode)
        except LedgerUnavailable as exc:  # writes retry until it is back; nothing is acked meanwhile
            self.log.warning("ledger: %s; events wait on the bus until it is back", exc)

    async def stop(self) -> None:
        self.store.close()

    async def handle(self, event: Event, tx: Tx) -> None:
        try:
            await self.store.awrite([event])
        except LedgerUnavailable as exc:
            await self._outage(exc)
            raise
        if self._down_since is not None:
            await self._recovered()

    async def _outage(self, exc: LedgerUnavailable) -> None:
        """Tell the admin once per outage, after ``OUTAGE_ALERT_S`` (a blip is only logged). The
        alert goes straight onto the bus (this handling is failing, so its transaction is not
        committed); Redis being down too is survivable: the next failure tries again."""
        now = self.clock.ms()
        if self._down_since is None:
            self._down_since = now
        if self._alerted or now - self._down_since < OUTAGE_ALERT_S * 1000:
            return
        try:
            await self.bus.publish(self.bus.make(
                AlertEvent, code="LEDGER_UNAVAILABLE", severity="WARNING", state="raised", subject="ledger",
                message=(f"The trade ledger ({self.store.describe()}) has been unreachable for "
                         f"{(now - self._down_since) // 1000} s: {exc}. Trading goes on; its events wait on "
                         f"the bus and are written when it is back.")))
            self._alerted = True
        except Exception:  # Redis away as well: logged, tried again at the next failure
            self.log.warning("ledger: could not publish the LEDGER_UNAVAILABLE alert", exc_info=True)

    async def _recovered(self) -> None:
        down_s = (self.clock.ms() - (self._down_since or 0)) // 1000
        self._down_since = None
        if not self._alerted:
            return
        self._alerted = False
        self.log.info("ledger: reachable again after %d s", down_s)
        try:
            await self.bus.publish(self.bus.make(
                AlertEvent, code="LEDGER_UNAVAILABLE", severity="WARNING", state="cleared", subject="ledger",
                message=f"The trade ledger is reachable again after {down_s} s; the waiting events are written."))
        except Exception:  # the raise stays visible; the next recovery clears it
            self.log.warning("ledger: could not publish the LEDGER_UNAVAILABLE clear", exc_info=True)

    async def on_timer(self, now: datetime) -> None:
        """Retention: trim every bus stream to ``retention_days`` above the groups' floors."""
        report = await trim_streams(self.redis, self.keys, ALL_STREAMS, self.retention_days)
        self.trimmed += report.total
