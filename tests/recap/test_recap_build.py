"""The monthly recap from a real SQLite ledger: its figures are the ledger's scorecards (and the
hand-computed P&L of the trades written), the month's bounds follow the New York close day, the
percentages are of the configured account size, and each tier shows only what it may."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.clock.calendar import NyseCalendar
from core.ledger.queries import closed_trades, scorecards
from core.ledger.store import LedgerStore, resolve_url
from reports.recap import build_recap, is_first_session_of_month, month_trades, previous_month
from reports.recap_render import recap_summary, recap_view, render_recap_all
from reports.render import fmt_money, fmt_pct
from tests.recap._html import rows, visible_text, whole_numbers
from tests.recap._month import ACCOUNT_VALUE, SIZES, STRATEGIES, write_month

NOV = date(2026, 11, 1)


def read_month(store: LedgerStore, first: date):
    """The month's closed trades through the query the report service runs (an opened store)."""
    assert store.engine is not None
    with store.engine.connect() as conn:
        return month_trades(conn, first)
BUILT_AT = datetime(2026, 12, 1, 21, 10, tzinfo=UTC)  # 16:10 New York


@pytest.fixture
def ledger(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    inside, outside = write_month(url)
    store = LedgerStore(url, "demo").open()
    yield store, inside, outside
    store.close()


@pytest.fixture
def recap(ledger):
    store, inside, outside = ledger
    data = build_recap(read_month(store, NOV), NOV, ACCOUNT_VALUE, NyseCalendar(), BUILT_AT)
    return data, render_recap_all(data), store, inside, outside


PREMIUM_ONLY = {"qty", "strategy", "strategies", "realized_pnl", "avg_win", "avg_loss", "best_pnl", "worst_pnl",
                "account_value", "position_id"}


def all_keys(view: object) -> set[str]:
    """Every key anywhere in a tier's view (nested dicts and lists)."""
    if isinstance(view, dict):
        return set(view) | set().union(*(all_keys(v) for v in view.values()))
    if isinstance(view, list):
        return set().union(*(all_keys(v) for v in view))
    return set()


def _score_cells(sc) -> list[str]:
    return [str(sc.trades), str(sc.wins), str(sc.losses), str(sc.flat), fmt_pct(sc.win_rate_pct, False, 1),
            fmt_money(sc.avg_win, True), fmt_money(sc.avg_loss, True), fmt_money(sc.realized_pnl, True),
            fmt_pct(sc.realized_pnl / ACCOUNT_VALUE * 100), fmt_money(sc.best, True), fmt_money(sc.worst, True)]


def test_premium_figures_equal_the_ledger_scorecards(recap):
    data, pages, store, inside, _ = recap
    with store.engine.connect() as conn:
        overall, per = scorecards(closed_trades(conn, date(2026, 11, 1), date(2026, 11, 30)))
    table = rows(pages["premium"])
    assert sorted(k[3:] for k in table if k.startswith("sc-")) == sorted([*per, "overall"])
    for name, sc in [*per.items(), ("overall", overall)]:
        assert table[f"sc-{name}"][1:] == _score_cells(sc), name
    # and against the trades as written (P&L computed by hand from the fills), not only the query
    assert {t.position_id for t in data.trades} == {t.pid for t in inside}
    assert overall.trades == len(inside) == 7
    assert round(overall.realized_pnl, 2) == round(sum(t.pnl for t in inside), 2)
    for s in STRATEGIES:
        assert round(per[s].realized_pnl, 2) == round(sum(t.pnl for t in inside if t.strategy == s), 2)
    best = max(inside, key=lambda t: t.pnl)
    worst = min(inside, key=lambda t: t.pnl)
    assert table["best"][2] == "IWM 12/18/26 240C" and best.pid == "p06"
    assert table["best"][6] == fmt_money(best.pnl, True) and table["worst"][6] == fmt_money(worst.pnl, True)
    assert (overall.wins, overall.losses, overall.flat) == (3, 3, 1)


def test_the_month_is_new_york_close_days_and_weeks_add_up(recap):
    data, pages, _store, inside, outside = recap
    closed = {t.position_id: t.closed_day for t in data.trades}
    assert closed["p05"] == "2026-11-30"  # 22:30 New York on Nov 30 is Dec 1 in UTC: still November
    assert "p06" in closed  # opened in October, closed on Nov 3
    assert not {t.pid for t in outside} & set(closed)  # closed Oct 30, still open, closed Dec 1
    assert [w.label for w in data.weeks] == ["Nov 2–8", "Nov 9–15", "Nov 16–22", "Nov 23–29", "Nov 30"]
    assert [w.trades for w in data.weeks] == [3, 2, 1, 0, 1]
    assert sum(w.trades for w in data.weeks) == data.overall.trades
    assert round(sum(w.realized_pnl for w in data.weeks), 2) == round(data.overall.realized_pnl, 2)
    week_rows = rows(pages["premium"])
    assert week_rows["week-4"] == ["Nov 23–29", "0", "0", "0", "$0.00", "0.00%"]  # a quiet week shows as zero (unsigned)
    assert week_rows["week-1"][4] == fmt_money(sum(t.pnl for t in inside if t.pid in ("p01", "p02", "p06")), True)
    assert data.sessions == 20


def test_percentages_are_of_the_configured_account_size(recap):
    data, pages, *_ = recap
    assert data.account_value == ACCOUNT_VALUE
    assert data.overall.pnl_pct == pytest.approx(data.overall.realized_pnl / ACCOUNT_VALUE * 100)
    premium, basic = visible_text(pages["premium"]), visible_text(pages["basic"])
    assert "$250,000.00" in premium and "risk.account_value" in premium
    assert "250,000" not in basic and "configured account size" in basic
    assert rows(pages["basic"])["week-1"][-1] == fmt_pct(data.weeks[0].realized_pnl / ACCOUNT_VALUE * 100)


def test_basic_and_free_carry_no_size_no_dollar_no_strategy(recap):
    data, pages, *_ = recap
    premium = visible_text(pages["premium"])
    assert {str(q) for q in SIZES[:7]} <= whole_numbers(premium)  # the sizes are there to be found
    for tier in ("basic", "free"):
        text = visible_text(pages[tier])
        assert not {str(q) for q in SIZES} & whole_numbers(text), tier
        assert "$" not in text, tier
        assert not [s for s in STRATEGIES if s in pages[tier]], tier
        assert not all_keys(recap_view(data, tier)) & PREMIUM_ONLY, tier
    assert not all_keys(recap_view(data, "free")) & {"contract", "entry_price", "return_pct", "closed", "weeks"}
    basic, free = visible_text(pages["basic"]), visible_text(pages["free"])
    assert "SPY 12/18/26 590C" in basic  # basic: contracts and % results
    assert "2026-12-18" not in free and "590" not in whole_numbers(free) and "2.35" not in free
    assert "<svg" not in pages["free"] and "<svg" in pages["basic"]
    assert "Disclaimer" in free and "not investment advice" in free
    assert fmt_pct(data.overall.pnl_pct) in free and "7 trades closed" in free


def test_pages_are_self_contained_and_deterministic(recap):
    data, pages, *_ = recap
    for tier, html in pages.items():
        assert "<script" not in html and "src=" not in html and "cdn." not in html, tier
        assert html.lstrip().lower().startswith("<!doctype html")
    assert render_recap_all(data) == pages  # same data, same bytes
    # the weekly chart: one bar per week, dollars on premium, % of the account on basic
    for w in data.weeks:
        assert f"<title>{w.label}: {'+' if w.realized_pnl > 0 else '-' if w.realized_pnl < 0 else ''}$" in pages["premium"]
        assert f"<title>{w.label}: {fmt_pct(w.pnl_pct) if w.pnl_pct else '0.00%'}</title>" in pages["basic"]


def test_summary_has_free_facts_only(recap):
    data, *_ = recap
    text = recap_summary(data)
    assert text.startswith("Monthly recap for November 2026: 7 trades closed (3 won, 3 lost, 1 flat")
    assert "$" not in text and not [s for s in STRATEGIES if s in text]
    assert not {str(q) for q in SIZES} & whole_numbers(text)


def test_an_empty_month_or_a_stray_trade_is_refused(ledger):
    store, *_ = ledger
    cal = NyseCalendar()
    assert read_month(store, date(2026, 9, 1)) == []
    with pytest.raises(ValueError, match="no closed trades in 2026-09"):
        build_recap([], date(2026, 9, 1), ACCOUNT_VALUE, cal, BUILT_AT)
    with pytest.raises(ValueError, match="outside 2026-10"):
        build_recap(read_month(store, NOV), date(2026, 10, 1), ACCOUNT_VALUE, cal, BUILT_AT)


def test_first_session_of_a_month_and_the_previous_month():
    cal = NyseCalendar()
    assert is_first_session_of_month(cal, date(2026, 12, 1))        # Tuesday
    assert not is_first_session_of_month(cal, date(2026, 12, 2))
    assert not is_first_session_of_month(cal, date(2026, 12, 3))    # the default demo day
    assert is_first_session_of_month(cal, date(2026, 11, 2))        # Nov 1 is a Sunday
    assert is_first_session_of_month(cal, date(2027, 1, 4))         # Jan 1 holiday, then a weekend
    assert not is_first_session_of_month(cal, date(2027, 1, 1))     # not a session at all
    assert previous_month(date(2026, 12, 1)) == NOV
    assert previous_month(date(2027, 1, 4)) == date(2026, 12, 1)


@pytest.fixture
def postgres_url():
    """A fresh database on the local PostgreSQL (dropped afterwards)."""
    import uuid

    import psycopg

    name = f"recap_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield resolve_url("", "demo", f"postgresql://postgres@127.0.0.1:5432/{name}")
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_same_recap_from_postgresql(postgres_url, recap):
    """The production database gives the very same month (bounds, trades, pages) as SQLite."""
    data, pages, *_ = recap
    write_month(postgres_url)
    store = LedgerStore(postgres_url, "demo").open()
    try:
        pg = build_recap(read_month(store, NOV), NOV, ACCOUNT_VALUE, NyseCalendar(), BUILT_AT)
    finally:
        store.close()
    assert pg == data
    assert render_recap_all(pg) == pages
