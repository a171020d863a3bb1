"""ReportService: builds the pre-market, intraday and close reports on schedule or on demand.

Schedule (America/New_York, NYSE session days only — nothing on weekends and holidays):

- ``premarket`` at ``reports.premarket`` (08:30),
- ``intraday``  at ``reports.intraday`` (13:00) — skipped when that is not before the session's
  close (an early-close day closes at 13:00, and the close report follows 10 minutes later),
- ``close``     at ``reports.close`` (16:10); on an early-close day at the early close plus
  ``reports.early_close_delay_min`` (13:10 on 2026-11-27).

- ``monthly`` — the recap of the previous calendar month (``reports.recap``), on the FIRST session
  of each month: right after that day's close report (same instant, built after it), or at
  ``reports.recap_at``. Read from the ledger (``core.ledger``), so only when ``reports.recap_enabled``
  and ``ledger.enabled``. A month without a closed trade gets no recap: logged (WARNING) and recorded
  as done (field ``skipped``), so it is not retried. Its catch-up window is the rest of that New York
  day (the previous month does not go stale within it), not ``catch_up_min``. The percentages use
  ``risk.account_value`` (see ``reports.recap``). Files ``<YYYY-MM>-monthly-<tier>.html`` (the month
  it is about). It then goes through approval and distribution like every report.

``next_due(now)`` returns the next report time exactly (the lock-step runner jumps to it);
``on_timer(now)`` builds every kind that is due and not yet built. Each kind is built at most
once per session day: hash ``reports_built`` (field ``<YYYY-MM-DD>:<kind>`` -> JSON with the
report id and premium path) is written in the same MULTI/EXEC as the ReportEvent, so a restart
does not rebuild. A report missed by at most ``reports.catch_up_min`` minutes (the service was
down at the time) is still built when it comes back; older ones are skipped. A scheduled build that
raises is logged and counted, and not retried by the same process (a restart within the catch-up
window retries it); it never stops the other services.

Streams: consumes ``control`` (ControlEvent ``action="report"``, ``args={"kind": ...}``, from the
Telegram ``/report KIND``) and builds that kind at once (not recorded in ``reports_built``: the
scheduled report still runs; files get the build time in their name; a request older than
``reports.catch_up_min`` (at least 10 minutes) is ignored). Emits ReportEvent ``status="built"`` on
``reports`` with ``report_id`` (``bus.new_id()``), ``kind``, ``path`` (premium
file), ``paths`` ({premium, basic, free}) and a ``summary`` made of free-tier facts only.
The approvals service then approves it (or asks the admin) and the distributor posts it by tier.

Files: ``<ctx.out_dir>/reports/`` when the context has an ``out_dir`` (demo), else
``reports.out_dir``; named ``<YYYY-MM-DD>-<kind>-<tier>.html`` (on demand:
``<YYYY-MM-DD>-<kind>-<HHMMSS>-<tier>.html``).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from core.bus.bus import Tx
from core.bus.events import ControlEvent, Event, ReportEvent
from core.clock.calendar import NY
from core.ledger.reader import LedgerReader
from core.runtime.metrics import REJECTED
from core.runtime.service import Context, Service
from reports.commentary import Commentator
from reports.gather import gather
from reports.model import KINDS, Kind
from reports.recap import build_recap, is_first_session_of_month, month_trades, previous_month
from reports.recap_render import recap_stem, recap_summary, render_recap_all
from reports.render import file_stem, render_all, summary_text, write_pages
from reports.streams import Tails

BUILT_HASH = "reports_built"
SCHEDULED: tuple[str, ...] = (*KINDS, "monthly")  # what the schedule builds: the daily kinds and the recap
KEEP_BUILT_DAYS = 45
STALE_REQUEST = timedelta(minutes=10)  # a /report older than this (and than catch_up_min) is not run
ALIASES: dict[str, Kind] = {"premarket": "premarket", "pre-market": "premarket", "pre": "premarket",
                            "morning": "premarket", "intraday": "intraday", "midday": "intraday", "mid": "intraday",
                            "close": "close", "eod": "close", "end": "close"}


class ReportService(Service):
    name = "reports"
    streams = ("control",)
    event_types = frozenset({"control"})  # only ControlEvent action "report" does anything

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = self.settings.reports
        self.cal = ctx.calendar
        self.commentator = Commentator(ctx, self.cfg.commentary)
        self.tails = Tails()  # incremental readers of the quotes / flow streams, kept between builds
        self.ledger = LedgerReader.for_context(ctx)  # the close report's period statistics
        self._failed: set[tuple[date, str]] = set()  # scheduled builds that raised (not retried in-process)
        self._schedules: dict[date, dict[str, datetime]] = {}
        self._built: dict[date, dict[str, str]] = {}  # report times per day (memoized)
        self.recap_on = self.cfg.recap_enabled and self.settings.ledger.enabled
        if self.cfg.recap_enabled and not self.recap_on:
            self.log.info("monthly recap off: it reads the ledger, and ledger.enabled is false")

    # ------------------------------------------------------------------ schedule
    def out_dir(self) -> Path:
        return Path(self.ctx.out_dir) / "reports" if self.ctx.out_dir else Path(self.cfg.out_dir)

    def schedule(self, day: date) -> dict[str, datetime]:
        """Report times (NY, aware) on ``day``, earliest first; empty when the exchange is closed.
        Memoized per day: the lock-step runner asks for the next report time at every instant."""
        got = self._schedules.get(day)
        if got is None:
            got = self._schedules[day] = self._schedule(day)
        return got

    def _schedule(self, day: date) -> dict[str, datetime]:
        if not self.cal.is_session(day):
            return {}
        s = self.cal.session(day)
        out: dict[str, datetime] = {"premarket": s.at(self.cfg.premarket)}
        intraday = s.at(self.cfg.intraday)
        if intraday < s.close:
            out["intraday"] = intraday
        out["close"] = (s.close + timedelta(minutes=self.cfg.early_close_delay_min) if s.early_close
                        else s.at(self.cfg.close))
        if self.recap_on and is_first_session_of_month(self.cal, day):
            # inserted after close: at the same instant the sort below keeps it after the close report
            out["monthly"] = s.at(self.cfg.recap_at) if self.cfg.recap_at is not None else out["close"]
        return dict(sorted(out.items(), key=lambda kv: kv[1]))

    async def built(self, day: date) -> dict[str, str]:
        """Kinds already built for ``day`` -> their record (JSON). Cached between builds (this
        service is the only writer; ``next_due`` asks at every simulated instant)."""
        got = self._built.get(day)
        if got is None:
            fields = [f"{day.isoformat()}:{k}" for k in SCHEDULED]
            vals = await self.redis.hmget(self.keys.hash(BUILT_HASH), fields)
            got = self._built[day] = {k: str(v) for k, v in zip(SCHEDULED, vals, strict=True) if v is not None}
        return got

    def _grace(self) -> timedelta:
        return timedelta(minutes=self.cfg.catch_up_min)

    def _deadline(self, kind: str, when: datetime) -> datetime:
        """The last instant a scheduled build may still run (a restart catches up until then)."""
        if kind == "monthly":  # the previous month does not go stale within the day: until midnight
            return datetime.combine(when.astimezone(NY).date() + timedelta(days=1), time(0), tzinfo=NY)
        return when + self._grace()

    async def next_due(self, now: datetime) -> datetime | None:
        today = now.astimezone(NY).date()
        for i in range(-1, 15):
            day = today + timedelta(days=i)
            sched = self.schedule(day)
            if not sched:
                continue
            done = await self.built(day) if day <= today else {}
            for kind, when in sched.items():
                if kind in done or self._deadline(kind, when) < now or (day, kind) in self._failed:
                    continue
                return when.astimezone(UTC)
        return None

    async def on_timer(self, now: datetime) -> None:
        self._built.clear()  # builds below change it: re-read now and again after them
        try:
            await self._build_due(now)
        finally:
            self._built.clear()

    async def _build_due(self, now: datetime) -> None:
        today = now.astimezone(NY).date()
        for day in (today - timedelta(days=1), today):
            sched = self.schedule(day)
            if not sched:
                continue
            done = await self.built(day)
            for kind, when in sched.items():
                if kind in done or not (when <= now <= self._deadline(kind, when)) or (day, kind) in self._failed:
                    continue
                tx = self.bus.tx()
                try:
                    if kind == "monthly":
                        report_id = await self.build_recap(day, now, tx, by="schedule")
                    else:
                        report_id = await self.build(kind, now, tx, by="schedule")  # type: ignore[arg-type]
                except Exception:
                    # a bug or unreadable state: never stop the other services; this process does not
                    # retry (no tight loop), a restart within catch_up_min does
                    self.log.exception("building the %s report of %s failed", kind, day)
                    REJECTED.labels(self.name, "report_build_failed").inc()
                    self._failed.add((day, kind))
                    continue
                record = {"report_id": report_id or "", "built_ms": int(now.timestamp() * 1000),
                          "scheduled": when.isoformat()}
                if report_id is None:  # an empty month: done, nothing to publish (logged by build_recap)
                    record["skipped"] = "no closed trades"
                tx.pipe.hset(self.keys.hash(BUILT_HASH), f"{day.isoformat()}:{kind}", json.dumps(record))
                await self._prune(tx, today)
                await tx.commit()

    async def _prune(self, tx: Tx, today: date) -> None:
        cutoff = (today - timedelta(days=KEEP_BUILT_DAYS)).isoformat()
        old = sorted(str(f) for f in await self.redis.hkeys(self.keys.hash(BUILT_HASH)) if str(f)[:10] < cutoff)
        if old:
            tx.pipe.hdel(self.keys.hash(BUILT_HASH), *old)

    # ------------------------------------------------------------------ on demand
    async def handle(self, event: Event, tx: Tx) -> None:
        if not isinstance(event, ControlEvent) or event.action != "report":
            return
        raw = event.args.get("kind") if isinstance(event.args, dict) else None
        kind = ALIASES.get(str(raw or "").strip().lower())
        if kind is None:
            self.log.warning("ignored /report with unknown kind %r (expected one of %s)", str(raw)[:40],
                             ", ".join(KINDS))
            REJECTED.labels(self.name, "bad_report_kind").inc()
            return
        now = self.clock.now()
        if event.ts < int((now - max(self._grace(), STALE_REQUEST)).timestamp() * 1000):
            # e.g. a consumer group created on an old control stream: a stale request is not re-run
            self.log.warning("ignored a /report %s request older than reports.catch_up_min", kind)
            REJECTED.labels(self.name, "stale_report_request").inc()
            return
        await self.build(kind, now, tx, by=f"control:{event.by}" if event.by else "control",
                         correlation_id=event.correlation_id, on_demand=True)

    # ------------------------------------------------------------------ building
    async def build(self, kind: Kind, now: datetime, tx: Tx, *, by: str, correlation_id: str | None = None,
                    on_demand: bool = False) -> str:
        """Gather, render and write the three tiers; queue the ``built`` ReportEvent on ``tx``."""
        data = await gather(self.redis, self.keys, self.settings, self.cal, kind, now, self.tails, self.ledger)
        commentary = await self.commentator.for_report(data)
        pages = render_all(data, commentary, self.cfg.plotlyjs)
        stem = file_stem(data, now.astimezone(NY).strftime("%H%M%S") if on_demand else "")
        paths = write_pages(pages, self.out_dir(), stem)
        report_id = self.bus.new_id()
        tx.emit(ReportEvent, correlation_id=correlation_id or report_id, kind=kind, status="built",
                path=paths["premium"], paths=paths, report_id=report_id, summary=summary_text(data), by=by)
        self.log.info("built %s report %s (%s)", kind, report_id, paths["premium"])
        return report_id

    # ------------------------------------------------------------------ the monthly recap
    async def build_recap(self, day: date, now: datetime, tx: Tx, *, by: str) -> str | None:
        """The recap of the month before ``day``'s: read the ledger, render and write the three tiers,
        queue the ``built`` ReportEvent on ``tx``. None (nothing written or emitted) for a month
        without a closed trade. ``LedgerUnavailable`` / ``LedgerModeError`` propagate (the caller logs
        and counts a failed build)."""
        first = previous_month(day)
        # the reader never creates or migrates a database (the ledger service owns the schema)
        trades = await self.ledger.read(lambda conn: month_trades(conn, first))
        if not trades:
            self.log.warning("no closed trades in %s in the ledger (%s): no monthly recap", f"{first:%B %Y}",
                             self.ledger.describe())
            return None
        data = build_recap(trades, first, float(self.settings.risk.account_value), self.cal, now)
        paths = write_pages(render_recap_all(data), self.out_dir(), recap_stem(data))
        report_id = self.bus.new_id()
        tx.emit(ReportEvent, correlation_id=report_id, kind="monthly", status="built", path=paths["premium"],
                paths=paths, report_id=report_id, summary=recap_summary(data), by=by)
        self.log.info("built the monthly recap of %s: %s (%d trades)", data.month_long, report_id,
                      data.overall.trades)
        return report_id

    async def stop(self) -> None:
        await self.commentator.aclose()
        self.ledger.close()
