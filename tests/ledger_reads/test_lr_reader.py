"""core.ledger.reader.LedgerReader against real SQLite and PostgreSQL: reads in a worker thread,
never creates or migrates a database, and says in one line why it cannot read (missing file, no
schema, unreachable server, another mode's database, disabled)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from lr_helpers import ms, trade, write

from core.ledger import queries as q
from core.ledger.reader import LedgerReader
from core.ledger.store import LedgerModeError, LedgerStore, LedgerUnavailable
from tests.helpers import make_context

DAY = date(2026, 12, 3)  # a Thursday


async def test_reads_what_the_store_wrote(ledger_url: str) -> None:
    evs = trade("gamma_0dte", DAY, 120.0) + trade("gamma_0dte", DAY, -45.5, hour=14) + trade("moc", date(2026, 11, 30), 10)
    write(ledger_url, "demo", evs)
    reader = LedgerReader(LedgerStore(ledger_url, "demo"))
    try:
        got = await reader.read(lambda c: q.closed_trades(c, DAY, DAY))
        assert [t.realized_pnl for t in got] == [120.0, -45.5]
        assert await reader.read(q.latest_event_ms) == ms(DAY, 14, 0)
        assert await reader.try_read(lambda c: len(q.closed_trades(c))) == 3 and reader.last_error == ""
    finally:
        reader.close()


async def test_a_missing_sqlite_file_is_unavailable_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "ledger.sqlite"
    reader = LedgerReader(LedgerStore(f"sqlite:///{path}", "demo"))
    with pytest.raises(LedgerUnavailable, match="no ledger database at"):
        await reader.read(q.latest_event_ms)
    assert await reader.try_read(q.latest_event_ms) is None and "no ledger database" in reader.last_error
    assert not path.exists() and not path.parent.exists()  # a reader never creates the ledger


async def test_a_database_without_the_schema_is_unavailable(tmp_path: Path, pg_url: str) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    for url in (f"sqlite:///{empty}", pg_url):
        reader = LedgerReader(LedgerStore(url, "demo"))
        with pytest.raises(LedgerUnavailable, match="has no schema yet"):
            await reader.read(q.latest_event_ms)
        # once the ledger service has created it, the same reader reads (the check is retried)
        LedgerStore(url, "demo").open().close()
        assert await reader.read(q.latest_event_ms) is None
        reader.close()


async def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    reader = LedgerReader(LedgerStore("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", "demo",
                                      connect_timeout_s=1))
    with pytest.raises(LedgerUnavailable) as err:
        await reader.read(q.latest_event_ms)
    assert "unreachable: OperationalError" in str(err.value) and "\n" not in str(err.value)
    assert await reader.try_read(q.latest_event_ms) is None and "unreachable" in reader.last_error


async def test_another_modes_database_is_refused(ledger_url: str) -> None:
    write(ledger_url, "live", trade("gamma_0dte", DAY, 1.0))
    reader = LedgerReader(LedgerStore(ledger_url, "demo"))
    with pytest.raises(LedgerModeError, match="holds 'live' records; this run is 'demo'"):
        await reader.read(q.latest_event_ms)
    assert await reader.try_read(q.latest_event_ms) is None and "'live'" in reader.last_error
    reader.close()


async def test_a_query_bug_is_not_an_outage(sqlite_url: str) -> None:
    write(sqlite_url, "demo", trade("gamma_0dte", DAY, 1.0))
    reader = LedgerReader(LedgerStore(sqlite_url, "demo"))

    def broken(_conn: object) -> None:
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        await reader.try_read(broken)
    reader.close()


async def test_for_context_follows_the_run(bus, tmp_path: Path, sqlite_url: str) -> None:
    ctx = make_context(bus, ledger={"enabled": False})
    reader = LedgerReader.for_context(ctx)
    with pytest.raises(LedgerUnavailable, match="disabled"):
        await reader.read(q.latest_event_ms)
    write(sqlite_url, "demo", trade("gamma_0dte", DAY, 1.0))
    ctx = make_context(bus)
    ctx.extras["ledger_url"] = sqlite_url  # what `demo --database-url` / the demo's own file set
    reader = LedgerReader.for_context(ctx)
    assert await reader.read(q.latest_event_ms) == ms(DAY)
    reader.close()
    ctx = make_context(bus, ledger={"sqlite_path": str(tmp_path / "{mode}.sqlite")})  # run: the mode's file
    assert LedgerReader.for_context(ctx).describe() == f"sqlite:///{tmp_path}/demo.sqlite"


def test_period_lines_follow_the_one_pnl_rule() -> None:
    from core.ledger.queries import ClosedTrade

    def t(day: date, pnl: float) -> ClosedTrade:
        return ClosedTrade("p", "s", "SPY", "2026-12-18", 600.0, "C", None, ms(day), 1, 2.0, pnl, "c")

    ts = [t(date(2026, 11, 30), 10.0), t(date(2026, 12, 3), -2.5), t(date(2026, 12, 6), 1.0),
          t(date(2026, 12, 7), 4.0), t(date(2027, 1, 4), 7.0)]
    assert q.pnl_by_week(ts) == [  # weeks start on Monday; Sunday 12-06 belongs to the week of 11-30
        {"week": "2026-11-30", "pnl": 8.5, "trades": 3}, {"week": "2026-12-07", "pnl": 4.0, "trades": 1},
        {"week": "2027-01-04", "pnl": 7.0, "trades": 1}]
    assert q.pnl_by_month(ts) == [
        {"month": "2026-11-01", "pnl": 10.0, "trades": 1}, {"month": "2026-12-01", "pnl": 2.5, "trades": 3},
        {"month": "2027-01-01", "pnl": 7.0, "trades": 1}]
    assert sum(r["pnl"] for r in q.pnl_by_month(ts)) == sum(r["pnl"] for r in q.pnl_by_day(ts))
