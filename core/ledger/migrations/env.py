"""Alembic environment of the ledger. Run by ``core.ledger.store.migrate`` (which hands over an
open connection) or by ``python main.py ledger migrate``; there is no alembic.ini to edit."""

from __future__ import annotations

from alembic import context

from core.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the ledger migrations through `python main.py ledger migrate`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
