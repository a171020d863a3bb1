"""The ledger's first schema: one append-only table per kind of trade event, keyed on event id.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Frozen: a later change to ``core/ledger/schema.py`` comes with a new revision, never an edit here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

D = sa.Float(53)


def _s(n: int) -> sa.String:
    return sa.String(n)


TABLES: dict[str, list[sa.Column]] = {
    "events": [sa.Column("type", _s(64), nullable=False), sa.Column("stream", _s(64), nullable=False),
               sa.Column("payload", sa.Text, nullable=False)],
    "signals": [sa.Column("signal_id", _s(64), nullable=False), sa.Column("strategy", _s(64), nullable=False),
                sa.Column("symbol", _s(32), nullable=False), sa.Column("expiry", _s(10)),
                sa.Column("strike", D), sa.Column("right", _s(1)), sa.Column("direction", _s(16)),
                sa.Column("horizon", _s(16)), sa.Column("qty", sa.Integer, nullable=False),
                sa.Column("limit_price", D, nullable=False), sa.Column("stop", D), sa.Column("confidence", D)],
    "verdicts": [sa.Column("signal_id", _s(64), nullable=False), sa.Column("strategy", _s(64), nullable=False),
                 sa.Column("decision", _s(16), nullable=False), sa.Column("reasons", sa.JSON, nullable=False),
                 sa.Column("reviewed_by", sa.JSON, nullable=False), sa.Column("premium_at_risk", D),
                 sa.Column("risk_pct", D)],
    "approvals": [sa.Column("signal_id", _s(64), nullable=False), sa.Column("strategy", _s(64), nullable=False),
                  sa.Column("decision", _s(16), nullable=False), sa.Column("qty", sa.Integer, nullable=False),
                  sa.Column("decided_by", _s(128), nullable=False), sa.Column("policy", _s(32), nullable=False)],
    "orders": [sa.Column("order_id", _s(64), nullable=False), sa.Column("purpose", _s(8), nullable=False),
               sa.Column("status", _s(32), nullable=False), sa.Column("symbol", _s(32), nullable=False),
               sa.Column("expiry", _s(10)), sa.Column("strike", D), sa.Column("right", _s(1)),
               sa.Column("side", _s(8)), sa.Column("qty", sa.Integer, nullable=False),
               sa.Column("limit_price", D), sa.Column("filled_qty", sa.Integer, nullable=False),
               sa.Column("avg_price", D), sa.Column("reason", sa.Text), sa.Column("position_id", _s(64))],
    "fills": [sa.Column("fill_id", _s(128), nullable=False), sa.Column("order_id", _s(64), nullable=False),
              sa.Column("purpose", _s(8), nullable=False), sa.Column("strategy", _s(64)),
              sa.Column("symbol", _s(32), nullable=False), sa.Column("expiry", _s(10), nullable=False),
              sa.Column("strike", D, nullable=False), sa.Column("right", _s(1), nullable=False),
              sa.Column("side", _s(8), nullable=False), sa.Column("qty", sa.Integer, nullable=False),
              sa.Column("price", D, nullable=False), sa.Column("commission", D, nullable=False),
              sa.Column("slippage", D), sa.Column("position_id", _s(64))],
    "position_events": [sa.Column("position_id", _s(64), nullable=False), sa.Column("kind", _s(16), nullable=False),
                        sa.Column("strategy", _s(64), nullable=False), sa.Column("symbol", _s(32), nullable=False),
                        sa.Column("expiry", _s(10), nullable=False), sa.Column("strike", D, nullable=False),
                        sa.Column("right", _s(1), nullable=False), sa.Column("direction", _s(16)),
                        sa.Column("horizon", _s(16)), sa.Column("qty", sa.Integer, nullable=False),
                        sa.Column("qty_open", sa.Integer, nullable=False), sa.Column("price", D),
                        sa.Column("entry_price", D, nullable=False), sa.Column("stop", D),
                        sa.Column("realized_pnl", D, nullable=False), sa.Column("reason", sa.Text)],
    "deliveries": [sa.Column("channel", _s(32), nullable=False), sa.Column("tier", _s(16), nullable=False),
                   sa.Column("event", _s(128), nullable=False), sa.Column("status", _s(16), nullable=False),
                   sa.Column("message_id", _s(128)), sa.Column("reply_to", _s(128)),
                   sa.Column("attempts", sa.Integer, nullable=False), sa.Column("error", sa.Text),
                   sa.Column("due_ts", sa.BigInteger)],
    "reports": [sa.Column("kind", _s(16), nullable=False), sa.Column("status", _s(24), nullable=False),
                sa.Column("report_id", _s(128)), sa.Column("by", _s(128)), sa.Column("path", sa.Text),
                sa.Column("paths", sa.JSON, nullable=False)],
    "alerts": [sa.Column("code", _s(64), nullable=False), sa.Column("severity", _s(16), nullable=False),
               sa.Column("state", _s(16), nullable=False), sa.Column("subject", _s(128)),
               sa.Column("message", sa.Text, nullable=False)],
    "controls": [sa.Column("action", _s(32), nullable=False), sa.Column("by", _s(128), nullable=False),
                 sa.Column("reason", sa.Text), sa.Column("args", sa.JSON, nullable=False)],
}
INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "events": (("type",),), "signals": (("signal_id",), ("strategy",)), "verdicts": (("signal_id",),),
    "approvals": (("signal_id",),), "orders": (("order_id",),), "fills": (("order_id",), ("position_id",)),
    "position_events": (("position_id",), ("kind", "ts"), ("strategy",)),
}


def upgrade() -> None:
    op.create_table("ledger_meta", sa.Column("key", _s(64), primary_key=True),
                    sa.Column("value", sa.Text, nullable=False))
    for name, cols in TABLES.items():
        op.create_table(name, sa.Column("event_id", _s(64), primary_key=True),
                        sa.Column("ts", sa.BigInteger, nullable=False),
                        sa.Column("correlation_id", _s(128), nullable=False), *cols)
        op.create_index(f"ix_{name}_ts", name, ["ts"])
        for idx in INDEXES.get(name, ()):
            op.create_index(f"ix_{name}_{'_'.join(idx)}", name, list(idx))


def downgrade() -> None:
    for name in reversed(list(TABLES)):
        op.drop_table(name)
    op.drop_table("ledger_meta")
