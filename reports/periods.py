"""Period statistics of the close report (week and month to date: trades, win rate, realized P&L,
overall and per strategy), read from the trade ledger (``core.ledger.queries``: the one P&L rule
every surface shares), "as of" the ledger's newest event. The ledger is read, never the streams,
for these: the streams are trimmed, the ledger is not.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection

from core.ledger import queries as lq
from core.ledger.reader import LedgerReader
from reports.model import LedgerPeriods, PeriodScore, PeriodStats
from reports.values import ny_label


def _score(sc: lq.Scorecard, strategy: str = "") -> PeriodScore:
    d = sc.as_dict()
    return PeriodScore(strategy=strategy, trades=sc.trades, wins=sc.wins, losses=sc.losses,
                       win_rate_pct=d["win_rate_pct"], realized_pnl=d["realized_pnl"])


def period_stats(conn: Connection, day: date) -> LedgerPeriods:
    """Week and month to date through ``day`` (New York), from the ledger (runs in a worker thread)."""
    out = LedgerPeriods(available=True, asof_ms=lq.latest_event_ms(conn))
    if out.asof_ms is not None:
        out.asof = ny_label(out.asof_ms, "%Y-%m-%d %H:%M:%S")
    for name, first in (("Week to date", lq.week_start(day)), ("Month to date", day.replace(day=1))):
        overall, per = lq.scorecards(lq.closed_trades(conn, first, day))
        out.periods.append(PeriodStats(name=name, first=first.isoformat(), last=day.isoformat(),
                                       overall=_score(overall),
                                       strategies=[_score(per[k], k) for k in sorted(per)]))
    return out


async def ledger_periods(ledger: LedgerReader, day: date) -> LedgerPeriods:
    """:func:`period_stats`, or why the ledger cannot be read (the report is built either way).

    Lock-step demo: the ledger holds every event published before the report's simulated instant,
    but not those published at that same instant before the report was built (a trade closing at
    16:10:00 is in the day's tables, read from the streams, but in the ledger's figures only from
    the next read on); which ones those are is fixed by the seed and the service order, so the figures
    are the same on every run (``core.ledger.reader``). In ``run`` the ledger trails by one poll."""
    got = await ledger.try_read(lambda conn: period_stats(conn, day))
    return got if got is not None else LedgerPeriods(available=False, note=ledger.last_error)
