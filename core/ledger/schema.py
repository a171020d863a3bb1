"""The ledger's tables (SQLAlchemy Core). One row per bus event, keyed on the event id.

Decisions:
- **Facts, not state.** Every table is append-only and keyed on the event id that produced the row,
  so writing the same event twice (a redelivery, a restart, ``ledger rebuild``) is a no-op
  (``INSERT .. ON CONFLICT DO NOTHING``) and rows can arrive in any order. What a trade *is*
  (open, partially exited, closed with its realized P&L) is a query over ``position_events``.
- ``events`` keeps every ledgered event whole (its JSON as published): the audit copy that
  ``ledger export`` ships and from which any typed table can be re-derived by a later migration.
- Times are UTC epoch milliseconds (``ts``, as on the bus); New York days are computed by the
  queries from the NYSE calendar's zone. Money and prices are the bus's doubles stored as double
  precision (the same value every surface reads); rounding happens where a figure is shown.
- ``ledger_meta`` records the run mode the database was created for: a database never mixes live
  money with rehearsal (``LedgerStore.open`` refuses another mode).

The schema is created and changed only by Alembic migrations (``core/ledger/migrations``); this
module is the reference the migrations and the queries share.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()


def _base(name: str, *cols: Column, indexes: tuple[tuple[str, ...], ...] = ()) -> Table:
    t = Table(
        name, metadata,
        Column("event_id", String(64), primary_key=True),
        Column("ts", BigInteger, nullable=False),
        Column("correlation_id", String(128), nullable=False, default=""),
        *cols,
    )
    Index(f"ix_{name}_ts", t.c.ts)
    for idx in indexes:
        Index(f"ix_{name}_{'_'.join(idx)}", *(t.c[c] for c in idx))
    return t


meta = Table(
    "ledger_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

events = _base(
    "events",
    Column("type", String(64), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the event's JSON as published on the bus
    indexes=(("type",),),
)

signals = _base(
    "signals",
    Column("signal_id", String(64), nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("expiry", String(10)),
    Column("strike", Float(53)),
    Column("right", String(1)),
    Column("direction", String(16)),
    Column("horizon", String(16)),
    Column("qty", Integer, nullable=False),
    Column("limit_price", Float(53), nullable=False),
    Column("stop", Float(53)),
    Column("confidence", Float(53)),
    indexes=(("signal_id",), ("strategy",)),
)

verdicts = _base(
    "verdicts",
    Column("signal_id", String(64), nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("reviewed_by", JSON, nullable=False),
    Column("premium_at_risk", Float(53)),
    Column("risk_pct", Float(53)),
    indexes=(("signal_id",),),
)

approvals = _base(
    "approvals",
    Column("signal_id", String(64), nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("decided_by", String(128), nullable=False),  # who: "admin:<telegram id>", "auto", "expiry"
    Column("policy", String(32), nullable=False),
    indexes=(("signal_id",),),
)

orders = _base(
    "orders",
    Column("order_id", String(64), nullable=False),
    Column("purpose", String(8), nullable=False),
    Column("status", String(32), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("expiry", String(10)),
    Column("strike", Float(53)),
    Column("right", String(1)),
    Column("side", String(8)),
    Column("qty", Integer, nullable=False),
    Column("limit_price", Float(53)),
    Column("filled_qty", Integer, nullable=False),
    Column("avg_price", Float(53)),
    Column("reason", Text),
    Column("position_id", String(64)),
    indexes=(("order_id",),),
)

fills = _base(
    "fills",
    Column("fill_id", String(128), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("purpose", String(8), nullable=False),
    Column("strategy", String(64)),
    Column("symbol", String(32), nullable=False),
    Column("expiry", String(10), nullable=False),
    Column("strike", Float(53), nullable=False),
    Column("right", String(1), nullable=False),
    Column("side", String(8), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("price", Float(53), nullable=False),
    Column("commission", Float(53), nullable=False),
    Column("slippage", Float(53)),
    Column("position_id", String(64)),
    indexes=(("order_id",), ("position_id",)),
)

position_events = _base(
    "position_events",
    Column("position_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # entry | stop_moved | partial_exit | closed
    Column("strategy", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("expiry", String(10), nullable=False),
    Column("strike", Float(53), nullable=False),
    Column("right", String(1), nullable=False),
    Column("direction", String(16)),
    Column("horizon", String(16)),
    Column("qty", Integer, nullable=False),
    Column("qty_open", Integer, nullable=False),
    Column("price", Float(53)),
    Column("entry_price", Float(53), nullable=False),
    Column("stop", Float(53)),
    Column("realized_pnl", Float(53), nullable=False),  # cumulative for the position, after commissions
    Column("reason", Text),
    indexes=(("position_id",), ("kind", "ts"), ("strategy",)),
)

deliveries = _base(
    "deliveries",
    Column("channel", String(32), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("event", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("message_id", String(128)),  # the platform's id of the post
    Column("reply_to", String(128)),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("due_ts", BigInteger),
)

reports = _base(
    "reports",
    Column("kind", String(16), nullable=False),
    Column("status", String(24), nullable=False),
    Column("report_id", String(128)),
    Column("by", String(128)),
    Column("path", Text),
    Column("paths", JSON, nullable=False),
)

alerts = _base(
    "alerts",
    Column("code", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("subject", String(128)),
    Column("message", Text, nullable=False),
)

controls = _base(
    "controls",
    Column("action", String(32), nullable=False),
    Column("by", String(128), nullable=False),
    Column("reason", Text),
    Column("args", JSON, nullable=False),
)

# typed tables in write order (``events`` first); a test checks the migrations create exactly these
TYPED = (signals, verdicts, approvals, orders, fills, position_events, deliveries, reports, alerts, controls)
