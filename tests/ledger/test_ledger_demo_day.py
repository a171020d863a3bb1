"""The ledger equals the journal after a demo day, on the embedded SQLite (the demo's default) and on
PostgreSQL (``demo --database-url``): the same shortened session as ``tests/demo/test_demo_day.py``
(four symbols, 09:40-12:30, seed 4, 2026-11-20), run once per backend through the CLI."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, select

import main as cli
from core.ledger import queries, schema
from core.ledger.rows import LEDGERED_TYPES
from core.ledger.store import make_engine, resolve_url
from tests.ledger.conftest import fresh_pg_url

pytestmark = pytest.mark.timeout(300)  # the module's demo run is set up inside its first test
DAY = date(2026, 11, 20)
OVERLAY = """
market:
  symbols: [SPY, QQQ, IWM, SPX]
demo:
  start: "09:40"
  end: "12:30"
reports:
  premarket: "09:40"
  intraday: "10:30"
  close: "12:25"
"""


@dataclass
class Day:
    summary: dict[str, Any]
    journal: list[dict[str, Any]]
    engine: Engine

    def journal_of(self, etype: str) -> dict[str, dict[str, Any]]:
        return {e["id"]: e for e in self.journal if e["type"] == etype}

    def rows(self, table) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r["event_id"]: dict(r) for r in conn.execute(select(table)).mappings()}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def day(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"ledger-day-{request.param}")
    cfg = tmp / "day.yaml"
    cfg.write_text(OVERLAY)
    out = tmp / "day"
    args = ["demo", "--seed", "4", "--date", DAY.isoformat(), "--out", str(out), "--config", str(cfg), "--json"]
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(fresh_pg_url("demo"))
            # the plain postgresql:// form, as a user types it (the store picks the psycopg 3 driver)
            args += ["--database-url", url.replace("postgresql+psycopg://", "postgresql://", 1)]
        else:
            url = f"sqlite:///{out / 'ledger.sqlite'}"  # the demo's own default
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert cli.main(args) == 0
        summary = json.loads(buf.getvalue().strip().splitlines()[-1])
        journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
        engine = make_engine(resolve_url("", "", url))
        stack.callback(engine.dispose)
        yield Day(summary, journal, engine)


def test_the_ledger_holds_every_ledgered_event_of_the_journal_and_nothing_else(day):
    ledgered = {e["id"]: e["type"] for e in day.journal if e["type"] in LEDGERED_TYPES}
    assert ledgered, "the demo day published nothing the ledger keeps"
    assert {i: r["type"] for i, r in day.rows(schema.events).items()} == ledgered
    assert day.summary["ledger"]["events_written"] == len(ledgered)


def test_every_fill_is_in_the_ledger_with_its_values(day):
    fills = day.journal_of("order.fill")
    rows = day.rows(schema.fills)
    assert fills and set(rows) == set(fills)
    for eid, f in fills.items():
        r = rows[eid]
        assert (r["fill_id"], r["order_id"], r["purpose"], r["symbol"], r["expiry"], r["strike"], r["right"],
                r["side"], r["qty"], r["price"], r["commission"], r["slippage"], r["correlation_id"]) == (
            f["fill_id"], f["order_id"], f["purpose"], f["symbol"], f["expiry"], f["strike"], f["right"],
            f["side"], f["qty"], f["price"], f["commission"], f["slippage"], f["correlation_id"]), eid


def test_every_position_event_is_in_the_ledger_with_its_values(day):
    events = day.journal_of("position.update")
    rows = day.rows(schema.position_events)
    assert events and set(rows) == set(events)
    for eid, p in events.items():
        r = rows[eid]
        assert (r["position_id"], r["kind"], r["strategy"], r["qty"], r["qty_open"], r["price"], r["entry_price"],
                r["stop"], r["realized_pnl"]) == (p["position_id"], p["kind"], p["strategy"], p["qty"],
                                                  p["qty_open"], p["price"], p["entry_price"], p["stop"],
                                                  p["realized_pnl"]), eid


def test_every_closed_position_is_a_closed_trade_with_its_pnl(day):
    closed = [(p["position_id"], p["realized_pnl"]) for p in day.journal_of("position.update").values()
              if p["kind"] == "closed"]
    with day.engine.connect() as conn:
        trades = queries.closed_trades(conn, DAY, DAY)
    assert closed and [(t.position_id, t.realized_pnl) for t in trades] == closed


def test_stats_equal_the_summary(day):
    with day.engine.connect() as conn:
        st = queries.stats(conn, DAY, DAY).as_dict()
    s = day.summary
    assert st["realized_pnl"] == s["realized_pnl"]  # both rounded to the cent
    assert (st["fills"], st["trades"]) == (s["fills"], s["positions_closed"])
    assert (st["signals"], st["approved"], st["rejected"], st["orders"]) == (
        s["signals"], s["approved"], s["rejected"], s["orders"])
