"""LedgerStore on both backends: one row per event whatever the repeats and the order, another run
mode's database refused, and every ledgered event type written as its typed row with its values."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select

from core.bus.events import QuoteEvent
from core.ledger import schema
from core.ledger.rows import LEDGERED
from core.ledger.store import LedgerModeError, LedgerStore
from tests.ledger.sample_events import T0, TABLE_OF, one_of_each, trade_day


@pytest.fixture
def open_store(ledger_url):
    stores: list[LedgerStore] = []

    def make(mode: str = "demo") -> LedgerStore:
        stores.append(LedgerStore(ledger_url, mode))
        return stores[-1].open()

    yield make
    for s in stores:
        s.close()


def _ids(store: LedgerStore, table) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(select(table.c.event_id)).scalars())


def test_the_same_events_twice_and_in_another_order_give_one_row_each(open_store):
    events = trade_day(3)
    store = open_store()
    half = events[: len(events) // 2]
    assert store.write(half) == len(half)
    assert store.write(list(reversed(events))) == len(events) - len(half)  # only the new half counts
    assert store.write(events) == 0
    rng = random.Random(7)
    shuffled = rng.sample(events, len(events))
    assert [store.write([ev]) for ev in shuffled] == [0] * len(events)
    assert store.written == len(events)

    again = open_store()  # a restarted process writes the whole day again: nothing new
    assert again.write(shuffled) == 0 and again.written == 0
    assert _ids(store, schema.events) == sorted(ev.id for ev in events)
    for etype, table in TABLE_OF.items():
        assert _ids(store, table) == sorted(ev.id for ev in events if ev.type == etype), etype


def test_another_modes_database_is_refused(open_store):
    demo = open_store("demo")
    demo.write(one_of_each())
    for mode in ("live", "dry-run"):
        with pytest.raises(LedgerModeError, match="holds 'demo' records"):
            open_store(mode)
        other = LedgerStore(demo.url, mode)  # a write without open() checks the mode first
        with pytest.raises(LedgerModeError):
            other.write(trade_day(1, prefix="LIVE"))
        other.close()
    with demo.engine.connect() as conn:
        assert conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "mode")).scalar_one() == "demo"
        assert conn.execute(select(func.count()).select_from(schema.events)).scalar_one() == len(one_of_each())
    assert open_store("demo").write(one_of_each()) == 0  # its own mode still opens it


EXPIRY, OPT = "2026-11-20", {"symbol": "QQQ", "expiry": "2026-11-20", "strike": 500.0, "right": "P"}
POS = {**OPT, "position_id": "POS000", "strategy": "gamma_0dte", "direction": "bearish", "horizon": "0dte",
       "entry_price": 1.16}
# its place in trade 0 of sample_events.trade_day (id ONE000nn, ts T0 + nn s)
SEQ = {"signal.new": 1, "review.verdict": 2, "approval.decision": 3, "order.update": 4, "order.fill": 5,
       "position.update": 6, "delivery": 7, "alert": 12, "control": 13, "report": 14}
EXPECTED = {  # the typed row of each event of one_of_each(), written out by hand from sample_events
    "signal.new": {"signal_id": "SIG000", "strategy": "gamma_0dte", **OPT, "direction": "bearish",
                   "horizon": "0dte", "qty": 2, "limit_price": 1.16, "stop": 0.58, "confidence": 55.2},
    "review.verdict": {"signal_id": "SIG000", "strategy": "gamma_0dte", "decision": "caution",
                       "reasons": ["spread wide", "trade 0"], "reviewed_by": ["rules", "ai"],
                       "premium_at_risk": 232.0, "risk_pct": 0.23},
    "approval.decision": {"signal_id": "SIG000", "strategy": "gamma_0dte", "decision": "approved", "qty": 2,
                          "decided_by": "admin:42", "policy": "manual"},
    "order.update": {"order_id": "ent-000", "purpose": "entry", "status": "Submitted", **OPT, "side": "BUY",
                     "qty": 2, "limit_price": 1.16, "filled_qty": 0, "avg_price": None, "reason": "",
                     "position_id": "POS000"},
    "order.fill": {"fill_id": "ent-000:1", "order_id": "ent-000", "purpose": "entry", "strategy": "gamma_0dte",
                   **OPT, "side": "BUY", "qty": 2, "price": 1.16, "commission": 1.3, "slippage": 0.01,
                   "position_id": "POS000"},
    "position.update": {**POS, "kind": "entry", "qty": 2, "qty_open": 2, "price": 1.16, "stop": 0.58,
                        "realized_pnl": -1.3, "reason": "entry"},
    "delivery": {"channel": "discord", "tier": "premium", "event": "entry", "status": "delivered",
                 "message_id": "m0", "reply_to": None, "attempts": 1, "error": "", "due_ts": 0},
    "alert": {"code": "FEED_STALE", "severity": "WARNING", "state": "raised", "subject": "quotes:QQQ",
              "message": "no quote for 0 s"},
    "control": {"action": "set_policy", "by": "admin:42", "reason": "trade 0", "args": {"policy": "auto", "k": 0}},
    "report": {"kind": "intraday", "status": "published", "report_id": "rep0", "by": "auto", "path": "/r/0.html",
               "paths": {"premium": "/r/0-p.html", "free": "/r/0-f.html"}},
}


def test_every_ledgered_event_type_gives_its_typed_row(open_store):
    events = one_of_each()
    assert {type(ev) for ev in events} == set(LEDGERED)  # a new ledgered type needs a sample and a row here
    assert set(EXPECTED) == {ev.type for ev in events} == set(TABLE_OF)
    store = open_store()
    assert store.write(events) == len(events)
    with store.engine.connect() as conn:
        for ev in events:
            table, n = TABLE_OF[ev.type], SEQ[ev.type]
            row = dict(conn.execute(select(table).where(table.c.event_id == ev.id)).mappings().one())
            assert row == {"event_id": f"ONE{n:05d}", "ts": T0 + n * 1000, "correlation_id": "corr000",
                           **EXPECTED[ev.type]}, ev.type
            whole = conn.execute(select(schema.events).where(schema.events.c.event_id == ev.id)).mappings().one()
            assert (whole["type"], whole["stream"], whole["ts"]) == (ev.type, ev.STREAM, ev.ts)
            assert type(ev).model_validate_json(whole["payload"]) == ev  # the audit copy is the whole event


def test_an_event_the_ledger_does_not_keep_writes_nothing(open_store):
    store = open_store()
    quote = QuoteEvent(id="Q1", ts=T0, correlation_id="md:QQQ", symbol="QQQ", bid=1.0, ask=1.1, last=1.05,
                       quote_ts=T0)
    assert store.write([quote]) == 0
    assert _ids(store, schema.events) == []
