"""The recap on the report service's schedule, in lock-step on the real Redis with a SQLite ledger:
built on the first session of a month for the previous month, held for the admin (pending_approval),
published by tier only after approval; an empty month builds nothing, once; catch-up and restart."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, time
from pathlib import Path

import pytest

from bot.distribution import DistributorService
from bot.telegram.render import Renderer as TelegramRenderer
from bot.telegram.views import report_view
from core.approvals.decide import decide_report
from core.approvals.service import ApprovalService
from core.bus.events import ReportEvent, decode
from core.clock.calendar import NY
from core.clock.clock import SimClock
from core.ledger.queries import closed_trades, scorecards
from core.ledger.store import LedgerStore
from core.runtime.sim_runner import SimRunner
from reports.render import fmt_money, fmt_pct
from reports.service import ReportService
from tests.helpers import make_context
from tests.recap._html import rows, visible_text, whole_numbers
from tests.recap._month import ACCOUNT_VALUE, SIZES, write_month

DEC1 = date(2026, 12, 1)  # Tuesday, the first NYSE session of December


def ny(d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=NY)


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock(ny(DEC1, time(15, 0)))


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.sqlite"


def context(bus, tmp_path: Path, ledger_url: str, **reports: object):
    ctx = make_context(bus, out_dir=str(tmp_path), reports={"commentary": "template", **reports},
                       demo={"approve_reports": False}, risk={"account_value": ACCOUNT_VALUE},
                       distribution={"sink": "outbox"})
    ctx.extras["ledger_url"] = ledger_url
    return ctx


async def report_events(bus) -> list[ReportEvent]:
    return [decode(f) for _id, f in await bus.redis.xrange(bus.keys.stream("reports"))]  # type: ignore[misc]


def outbox(tmp_path: Path) -> list[dict]:
    path = tmp_path / "outbox.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_recap_is_held_for_approval_then_published_by_tier(bus, tmp_path, ledger_url):
    inside, _outside = write_month(ledger_url)
    ctx = context(bus, tmp_path, ledger_url)
    reports = ReportService(ctx)
    assert list(reports.schedule(DEC1)) == ["premarket", "intraday", "close", "monthly"]
    runner = SimRunner([reports, ApprovalService(ctx), DistributorService(ctx)], bus.clock)
    await runner.run(ny(DEC1, time(16, 0)), ny(DEC1, time(16, 45)))

    monthly = [e for e in await report_events(bus) if e.kind == "monthly"]
    assert [e.status for e in monthly] == ["built", "pending_approval"]
    built = monthly[0]
    assert built.dt == ny(DEC1, time(16, 10)) and built.by == "schedule"
    assert {t: Path(p).name for t, p in built.paths.items()} == {
        t: f"2026-11-monthly-{t}.html" for t in ("premium", "basic", "free")}
    # the close report of the same instant came first (the recap is built right after it)
    kinds = [(e.kind, e.status) for e in await report_events(bus) if e.status == "built"]
    assert kinds == [("close", "built"), ("monthly", "built")]
    # held: 35 simulated minutes later nothing of it is posted anywhere
    assert not [m for m in outbox(tmp_path) if "Monthly" in m["text"]]

    # the admin's card reads as a monthly report with the free-tier summary
    card = TelegramRenderer().render("card_report", r=report_view(monthly[1]), outcome=None, missing=False)
    assert "Monthly report</b> waiting for approval" in card and "November 2026: 7 trades closed" in card

    res = await decide_report(bus, built.report_id, "approved", "tg:42")
    assert res.ok
    runner2 = SimRunner([reports, ApprovalService(ctx), DistributorService(ctx)], bus.clock)
    await runner2.run(bus.clock.now(), ny(DEC1, time(17, 0)))  # from the approval on
    posts = [m for m in outbox(tmp_path) if m["correlation_id"] == built.correlation_id]
    assert sorted((m["channel"], m["tier"]) for m in posts) == [
        ("discord", "basic"), ("discord", "free"), ("discord", "premium"), ("reddit", "free"), ("x", "free")]
    by_tier = {(m["channel"], m["tier"]): m for m in posts}
    # each tier gets its own page (attached on Discord; the public teasers say where it is, never a
    # bare file name), and the post names the month, not the day it went out
    for tier in ("premium", "basic", "free"):
        assert Path(by_tier[("discord", tier)]["attachment"]).name == f"2026-11-monthly-{tier}.html"
    assert all(".html" not in m["text"] and "attachment" not in m for m in posts if m["channel"] != "discord")
    assert all("November 2026" in m["text"] for m in posts if m["channel"] != "reddit")  # reddit: in its title
    assert "monthly recap (free edition)" in by_tier[("reddit", "free")]["text"]
    assert not [m for m in posts if "premium" in m["text"] and m["tier"] != "premium"]
    # delays per tier after the approval (premium at once, basic +60 s, free +300 s)
    t0 = datetime.fromisoformat(by_tier[("discord", "premium")]["ts"])
    assert (datetime.fromisoformat(by_tier[("discord", "basic")]["ts"]) - t0).total_seconds() == 60
    assert (datetime.fromisoformat(by_tier[("discord", "free")]["ts"]) - t0).total_seconds() == 300

    # the page's figures are the ledger's scorecards of November
    store = LedgerStore(ledger_url, "demo").open()
    try:
        with store.engine.connect() as conn:
            overall, per = scorecards(closed_trades(conn, date(2026, 11, 1), date(2026, 11, 30)))
    finally:
        store.close()
    premium = Path(built.paths["premium"]).read_text()
    table = rows(premium)
    for name, sc in [*per.items(), ("overall", overall)]:
        assert table[f"sc-{name}"][1:4] == [str(sc.trades), str(sc.wins), str(sc.losses)]
        assert table[f"sc-{name}"][8] == fmt_money(sc.realized_pnl, True)
    assert overall.trades == len(inside)
    # % of the account: of the configured account size (risk.account_value), not another figure
    assert table["sc-overall"][9] == fmt_pct(overall.realized_pnl / ACCOUNT_VALUE * 100)
    assert "$250,000.00" in visible_text(premium)
    free = visible_text(Path(built.paths["free"]).read_text())
    assert not {str(q) for q in SIZES} & whole_numbers(free) and "$" not in free
    assert "Disclaimer" in free


async def test_rejected_recap_is_never_published(bus, tmp_path, ledger_url):
    write_month(ledger_url)
    ctx = context(bus, tmp_path, ledger_url)
    reports = ReportService(ctx)
    await SimRunner([reports, ApprovalService(ctx), DistributorService(ctx)], bus.clock).run(
        ny(DEC1, time(16, 0)), ny(DEC1, time(16, 15)))
    built = next(e for e in await report_events(bus) if e.kind == "monthly")
    assert (await decide_report(bus, built.report_id, "rejected", "tg:42")).ok
    await SimRunner([reports, ApprovalService(ctx), DistributorService(ctx)], bus.clock).run(
        ny(DEC1, time(16, 16)), ny(DEC1, time(17, 0)))
    assert [e.status for e in await report_events(bus) if e.kind == "monthly"] == [
        "built", "pending_approval", "rejected"]
    assert not [m for m in outbox(tmp_path) if m["correlation_id"] == built.correlation_id]


async def test_empty_month_builds_nothing_once_and_says_so(bus, tmp_path, ledger_url, redis_client, keys, caplog):
    LedgerStore(ledger_url, "demo").open().close()  # a ledger without a single trade
    ctx = context(bus, tmp_path, ledger_url)
    svc = ReportService(ctx)
    caplog.set_level(logging.WARNING, logger="quanticity.reports")
    runner = SimRunner([svc], bus.clock)
    await runner.run(ny(DEC1, time(16, 0)), ny(DEC1, time(18, 0)))
    assert [e.kind for e in await report_events(bus)] == ["close"]
    assert [r.getMessage() for r in caplog.records if "no monthly recap" in r.getMessage()] == [
        f"no closed trades in November 2026 in the ledger (sqlite:///{tmp_path}/ledger.sqlite): no monthly recap"]
    record = json.loads(await redis_client.hget(keys.hash("reports_built"), "2026-12-01:monthly"))
    assert record["skipped"] == "no closed trades" and record["report_id"] == ""
    assert not list((tmp_path / "reports").glob("*monthly*"))
    assert runner.steps <= 3  # 16:00, 16:10, then nothing due that day (no loop on the skipped recap)
    # a restart later that day does not try again
    again = ReportService(ctx)
    assert await again.next_due(ny(DEC1, time(18, 0))) == ny(date(2026, 12, 2), time(8, 30))


async def test_catch_up_the_same_day_only_and_once(bus, tmp_path, ledger_url, redis_client, keys):
    write_month(ledger_url)
    ctx = context(bus, tmp_path, ledger_url)
    down_at_close = ReportService(ctx)
    # down from 16:00 to 21:00: the close report is lost (catch_up_min 30), the recap is not
    assert await down_at_close.next_due(ny(DEC1, time(21, 0))) == ny(DEC1, time(16, 10))
    bus.clock.set(ny(DEC1, time(21, 0)))
    await down_at_close.on_timer(bus.clock.now())
    assert [(e.kind, e.status) for e in await report_events(bus)] == [("monthly", "built")]
    assert await down_at_close.next_due(bus.clock.now()) == ny(date(2026, 12, 2), time(8, 30))
    restarted = ReportService(ctx)
    await restarted.on_timer(bus.clock.now())
    assert len(await report_events(bus)) == 1

    # a service that was down the whole first session does not build it on the next day
    await redis_client.hdel(keys.hash("reports_built"), "2026-12-01:monthly")
    late = ReportService(ctx)
    assert await late.next_due(ny(DEC1, time(23, 59))) == ny(DEC1, time(16, 10))  # still that day: due
    assert await late.next_due(ny(date(2026, 12, 2), time(0, 1))) == ny(date(2026, 12, 2), time(8, 30))


async def test_schedule_only_on_first_sessions_at_the_configured_time(bus, tmp_path, ledger_url):
    svc = ReportService(context(bus, tmp_path, ledger_url))
    assert svc.schedule(DEC1)["monthly"] == ny(DEC1, time(16, 10))
    assert "monthly" not in svc.schedule(date(2026, 12, 2)) and "monthly" not in svc.schedule(date(2026, 12, 3))
    assert svc.schedule(date(2027, 1, 4))["monthly"] == ny(date(2027, 1, 4), time(16, 10))  # Jan 1 holiday
    at_17 = ReportService(context(bus, tmp_path, ledger_url, recap_at="17:00"))
    assert at_17.schedule(DEC1)["monthly"] == ny(DEC1, time(17, 0))
    off = ReportService(context(bus, tmp_path, ledger_url, recap_enabled=False))
    assert "monthly" not in off.schedule(DEC1)
    no_ledger = make_context(bus, out_dir=str(tmp_path), ledger={"enabled": False})
    assert "monthly" not in ReportService(no_ledger).schedule(DEC1)
