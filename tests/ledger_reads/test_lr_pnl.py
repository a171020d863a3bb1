"""/pnl reads the trade ledger: day, week, month and year to date, per-period and per-strategy
lines, "as of" the ledger's newest event; an unreachable ledger is one line and the bot carries on.
The message content is checked on fixed dates (``summarize`` over a real ledger + the real
template); the command itself through the real PTB client against the Bot API fake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from lr_helpers import trade, trades, write
from sqlalchemy import create_engine

from bot.telegram.pnl import MAX_STRATEGIES, summarize
from bot.telegram.render import Renderer
from core.clock.calendar import NY
from core.ledger.store import LedgerStore
from tests.telegram._util import visible

TODAY = date(2026, 12, 3)  # a Thursday; the month began on a Tuesday


def _text(url: str, period: str, today: date = TODAY) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            p = summarize(conn, period, today)  # type: ignore[arg-type]
    finally:
        engine.dispose()
    return visible(Renderer().render("pnl", p=p.as_dict()))


def _ledger(url: str) -> None:
    evs = (trade("gamma_0dte", TODAY, 120.0, hour=15, minute=59) + trade("gamma_0dte", TODAY, -45.5)
           + trade("moc_imbalance", date(2026, 12, 1), 300.0)          # this week and month
           + trade("gamma_0dte", date(2026, 11, 30), -80.0)            # this week, last month
           + trade("moc_imbalance", date(2026, 11, 10), 55.0)          # this year only
           + trade("gamma_0dte", date(2025, 12, 31), 999.0))           # last year
    evs += [e for e in trade("gamma_0dte", TODAY, 0.0, hour=9) if e.kind == "entry"]  # open: no P&L
    write(url, "demo", evs)


def test_day_week_month_year(ledger_url: str) -> None:
    _ledger(ledger_url)
    day = _text(ledger_url, "day")
    assert "P&L · day 2026-12-03 (New York)" in day
    assert "Realized +$74.50 · 2 trades · 1 won / 1 lost (50%)" in day
    assert "Avg win +$120.00 · avg loss -$45.50" in day
    assert "By day" not in day and "gamma_0dte: +$74.50 · 2 · 50%" in day
    assert "As of 15:59 ET (trade ledger)" in day  # the newest event the ledger holds

    week = _text(ledger_url, "week")
    assert "P&L · week 2026-11-30 → 2026-12-03" in week
    assert "Realized +$294.50 · 4 trades · 2 won / 2 lost (50%)" in week
    assert "By day\nMon 11-30: -$80.00 (1)\nTue 12-01: +$300.00 (1)\nThu 12-03: +$74.50 (2)" in week
    # strategies ranked by P&L
    assert "By strategy\nmoc_imbalance: +$300.00 · 1 · 100%\ngamma_0dte: -$5.50 · 3 · 33%" in week

    month = _text(ledger_url, "month")
    assert "Realized +$374.50 · 3 trades" in month and "-$80.00" not in month
    assert "By week\nfrom Tue 12-01: +$374.50 (3)" in month  # the week that began in November

    year = _text(ledger_url, "year")
    assert "P&L · year 2026-01-01 → 2026-12-03" in year
    assert "Realized +$349.50 · 5 trades · 3 won / 2 lost (60%)" in year
    assert "By month\nNov: -$25.00 (2)\nDec: +$374.50 (3)" in year and "999" not in year


def test_a_quiet_period_and_an_empty_ledger(sqlite_url: str) -> None:
    LedgerStore(sqlite_url, "demo").open().close()
    text = _text(sqlite_url, "week")
    assert "No closed trades in this period." in text and "holds no events yet" in text
    write(sqlite_url, "demo", trade("gamma_0dte", date(2026, 11, 2), 5.0))
    text = _text(sqlite_url, "day")
    assert "No closed trades" in text and "As of 2026-11-02 11:00 ET" in text  # not today: the date too


def test_a_busy_year_stays_short(sqlite_url: str) -> None:
    days = [date(2026, m, 15) for m in range(1, 13)]
    evs = []
    for i in range(MAX_STRATEGIES + 4):
        evs += trades(f"strategy_{i:02d}", days, [10.0 * (i + 1), -5.0] * 6)
    write(sqlite_url, "demo", evs)
    text = _text(sqlite_url, "year", date(2026, 12, 31))
    assert "Realized +$" in text and "(50%)" in text
    assert text.count("\n") <= 32 and len(text) < 1200  # a phone screen, not a report
    assert "+4 more: +$" in text and "strategy_00" not in text  # the smallest four are summed
    months = text.split("By month\n")[1].split("\n\n")[0].splitlines()
    strategies = text.split("By strategy\n")[1].split("\n\n")[0].splitlines()
    assert [m[:3] for m in months] == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"]
    assert len(strategies) == MAX_STRATEGIES + 1 and strategies[0].startswith("strategy_11: +$")


# ------------------------------------------------------------------ through the bot
async def test_pnl_command_reads_the_ledger_not_the_bus(make_bot, tbus, pg_url) -> None:
    h = await make_bot(pg_url)
    today = tbus.clock.now().astimezone(NY).date()
    write(pg_url, h.bot.settings.mode.value,
          trade("gamma_0dte", today, 120.0, hour=0, minute=1) + trade("gamma_0dte", today - timedelta(days=400), 7.0))
    from tests.telegram._util import position

    await tbus.publish(position(tbus, "closed", corr="x", position_id="bus-only", realized_pnl=5000.0))
    text = visible((await h.command("/pnl", contains="P&amp;L"))["text"])
    assert "Realized +$120.00 · 1 trade · 1 won / 0 lost (100%)" in text and "5,000" not in text
    text = visible((await h.command("/pnl year", contains="P&amp;L"))["text"])
    assert "Realized +$120.00" in text and "+$7.00" not in text
    helptext = await h.command("/help", contains="admin bot")
    assert "/pnl [day|week|month|year] — realized P&amp;L to date, from the trade ledger" in helptext["text"]


async def test_an_unreachable_ledger_is_one_line_and_the_bot_carries_on(make_bot, tmp_path) -> None:
    h = await make_bot("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", ledger={"connect_timeout_s": 1})
    reply = await h.command("/pnl week", contains="P&amp;L")
    text = visible(reply["text"])
    assert text.startswith("P&L unavailable: ledger database postgresql+psycopg://postgres@127.0.0.1:1/nowhere "
                           "unreachable: OperationalError.") and "\n" not in text and "Traceback" not in text
    await h.command("/status", contains="Status")  # the bot still answers
    # a ledger not created yet (the ledger service has not started): same one line, no file created
    h2_path = tmp_path / "later" / "ledger.sqlite"
    h.bot.bot_ctx.ledger.close()
    from core.ledger.reader import LedgerReader

    h.bot.bot_ctx.ledger = LedgerReader(LedgerStore(f"sqlite:///{h2_path}", "demo"))
    text = visible((await h.command("/pnl", contains="P&amp;L"))["text"])
    assert text.startswith("P&L unavailable: no ledger database at") and not h2_path.exists()


def test_now_is_new_york(ledger_url: str) -> None:
    """/pnl day at 23:30 New York (04:30 UTC the next day) is still the New York day."""
    write(ledger_url, "demo", trade("gamma_0dte", TODAY, 10.0, hour=23, minute=0))
    now = datetime(2026, 12, 4, 4, 30, tzinfo=UTC)
    assert now.astimezone(NY).date() == TODAY
    assert "Realized +$10.00" in _text(ledger_url, "day", now.astimezone(NY).date())
