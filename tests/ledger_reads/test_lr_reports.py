"""The close report's period statistics (week and month to date, overall and per strategy) come
from the trade ledger, as of its newest event; the day's own tables still come from the streams.
In the lock-step runner the report reads exactly what the ledger holds at its simulated instant."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from lr_helpers import ms, trade, write

from core.bus.events import Event, PositionEvent, ReportEvent, decode
from core.clock.calendar import NY
from core.ledger.reader import LedgerReader
from core.ledger.service import LedgerService
from core.ledger.store import LedgerStore
from core.runtime.service import Service
from core.runtime.sim_runner import SimRunner
from reports.periods import ledger_periods
from reports.service import ReportService
from tests.helpers import make_context

DAY = date(2026, 11, 20)  # a Friday


def _earlier() -> list[PositionEvent]:
    return (trade("gamma_0dte", date(2026, 11, 16), 200.0)      # Monday: this week
            + trade("moc_imbalance", date(2026, 11, 18), -50.0)  # this week
            + trade("gamma_0dte", date(2026, 11, 5), 1000.0)     # this month only
            + trade("gamma_0dte", date(2026, 10, 30), 5.0))      # last month


async def test_week_and_month_to_date(ledger_url: str) -> None:
    write(ledger_url, "demo", _earlier() + trade("gamma_0dte", DAY, 30.0, hour=15, minute=55))
    reader = LedgerReader(LedgerStore(ledger_url, "demo"))
    got = await ledger_periods(reader, DAY)
    reader.close()
    assert got.available and got.asof_ms == ms(DAY, 15, 55) and got.asof == "2026-11-20 15:55:00"
    wtd, mtd = got.periods
    assert (wtd.name, wtd.first, wtd.last) == ("Week to date", "2026-11-16", "2026-11-20")
    assert (wtd.overall.trades, wtd.overall.wins, wtd.overall.losses, wtd.overall.realized_pnl) == (3, 2, 1, 180.0)
    assert wtd.overall.win_rate_pct == 66.7
    assert [(s.strategy, s.trades, s.realized_pnl, s.win_rate_pct) for s in wtd.strategies] == [
        ("gamma_0dte", 2, 230.0, 100.0), ("moc_imbalance", 1, -50.0, 0.0)]
    assert (mtd.first, mtd.overall.trades, mtd.overall.realized_pnl, mtd.overall.win_rate_pct) == (
        "2026-11-01", 4, 1180.0, 75.0)


async def test_an_unreadable_ledger_is_a_note_not_a_failure(tmp_path: Path) -> None:
    reader = LedgerReader(LedgerStore("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", "demo",
                                      connect_timeout_s=1))
    got = await ledger_periods(reader, DAY)
    assert not got.available and got.periods == [] and "unreachable" in got.note


# ------------------------------------------------------------------ lock-step
class Closer(Service):
    """Publishes closed positions at given New York times of DAY (what the position manager does)."""

    name = "closer"

    def __init__(self, ctx: Any, plan: list[tuple[time, str, float]]) -> None:
        super().__init__(ctx)
        self.plan = sorted(plan)

    async def next_due(self, now: datetime) -> datetime | None:
        return datetime.combine(DAY, self.plan[0][0], tzinfo=NY) if self.plan else None

    async def on_timer(self, now: datetime) -> None:
        while self.plan and datetime.combine(DAY, self.plan[0][0], tzinfo=NY) <= now:
            _t, pid, pnl = self.plan.pop(0)
            common = {"position_id": pid, "strategy": "gamma_0dte", "symbol": "SPY", "expiry": "2026-12-18",
                      "strike": 600.0, "right": "C", "direction": "bullish", "horizon": "swing", "entry_price": 2.0}
            tx = self.bus.tx()
            tx.emit(PositionEvent, correlation_id=pid, kind="entry", qty=2, qty_open=2, price=2.0, **common)
            tx.emit(PositionEvent, correlation_id=pid, kind="closed", qty=2, qty_open=0, price=2.5,
                    realized_pnl=pnl, **common)
            await tx.commit()


def _section(html: str) -> str:
    m = re.search(r"<h2>Week and month to date</h2>(.*?)</section>", html, re.DOTALL)
    return m.group(1) if m else ""


def _rows(section: str) -> list[list[str]]:
    """The table's rows as cell texts."""
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", section, re.DOTALL)]


async def test_close_report_in_lock_step_reads_what_the_ledger_holds(bus, tmp_path: Path, sqlite_url: str) -> None:
    write(sqlite_url, "demo", _earlier())
    ctx = make_context(bus, out_dir=str(tmp_path), reports={"commentary": "template"})
    ctx.extras["ledger_url"] = sqlite_url
    # the demo's order: the position manager before the reports, the ledger last
    services = [Closer(ctx, [(time(15, 55), "pos-a", 30.0), (time(16, 10), "pos-b", 7777.0)]),
                ReportService(ctx), LedgerService(ctx)]
    await SimRunner(services, bus.clock).run(datetime.combine(DAY, time(15, 50), tzinfo=NY),  # type: ignore[arg-type]
                                             datetime.combine(DAY, time(16, 15), tzinfo=NY))
    built = [e for e in await _stream(bus, "reports") if isinstance(e, ReportEvent) and e.kind == "close"]
    assert len(built) == 1
    premium = Path(built[0].paths["premium"]).read_text(encoding="utf-8")
    sec = _section(premium)
    # pos-b closed at 16:10:00, the report's own instant: published in the same round, ledgered in that
    # instant's drain, after the report -> not in the period figures (deterministic: same seed, same order)
    assert "Week to date</b> (2026-11-16 → 2026-11-20)" in sec and "7,777" not in sec
    assert _rows(sec)[1:] == [
        ["Week to date (2026-11-16 → 2026-11-20)", "all", "3", "2", "1", "67%", "+$180.00"],
        ["", "gamma_0dte", "2", "2", "0", "100%", "+$230.00"],
        ["", "moc_imbalance", "1", "0", "1", "0%", "-$50.00"],
        ["Month to date (2026-11-01 → 2026-11-20)", "all", "4", "3", "1", "75%", "+$1,180.00"],
        ["", "gamma_0dte", "3", "3", "0", "100%", "+$1,230.00"],
        ["", "moc_imbalance", "1", "0", "1", "0%", "-$50.00"]]
    assert "as of 2026-11-20 15:55:00 New York" in sec
    assert "+$7,777.00" in premium  # ... while the day's tables (the streams) already show it
    for tier in ("basic", "free"):  # dollar P&L and strategy names are premium-only
        assert "Week and month to date" not in Path(built[0].paths[tier]).read_text(encoding="utf-8")
    assert "to date" not in built[0].summary  # the posted summary is unchanged


async def _stream(bus: Any, name: str) -> list[Event]:
    return [decode(f) for _i, f in await bus.redis.xrange(bus.keys.stream(name))]
