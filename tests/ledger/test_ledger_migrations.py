"""Migrations on both backends: head creates exactly the tables of ``core/ledger/schema.py`` (so the
schema module and migration 0001 cannot drift apart), base removes them, and head again works."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from core.ledger import schema
from core.ledger.store import LedgerStore, current_revision, make_engine, migrate
from tests.ledger.sample_events import one_of_each

VERSION_TABLE = "alembic_version"


def _tables(engine) -> dict[str, dict[str, tuple[bool, bool]]]:
    """table -> column -> (nullable, primary key), as the database has them."""
    insp = inspect(engine)
    out = {}
    for name in insp.get_table_names():
        pk = set(insp.get_pk_constraint(name)["constrained_columns"])
        out[name] = {c["name"]: (bool(c["nullable"]) and c["name"] not in pk, c["name"] in pk)
                     for c in insp.get_columns(name)}
    return out


def _metadata_tables() -> dict[str, dict[str, tuple[bool, bool]]]:
    return {t.name: {c.name: (bool(c.nullable) and not c.primary_key, bool(c.primary_key)) for c in t.columns}
            for t in schema.metadata.sorted_tables}


def test_head_creates_exactly_the_schema_and_base_removes_it(ledger_url):
    engine = make_engine(ledger_url)
    try:
        assert current_revision(engine) is None
        migrate(engine)
        assert current_revision(engine) == "0001"
        found = _tables(engine)
        found.pop(VERSION_TABLE)
        assert found == _metadata_tables()  # names, columns, nullability, primary keys
        assert set(found) == {"ledger_meta", "events", *(t.name for t in schema.TYPED)}
        # types, defaults-free columns and indexes too: Alembic's own comparison finds nothing to do
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    schema.metadata)
        assert diff == []

        migrate(engine, "base", down=True)
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {VERSION_TABLE}

        migrate(engine)
        assert current_revision(engine) == "0001"
        assert set(_tables(engine)) - {VERSION_TABLE} == set(schema.metadata.tables)
    finally:
        engine.dispose()
    store = LedgerStore(ledger_url, "demo").open()  # a store on the re-created schema writes and reads
    try:
        assert store.write(one_of_each()) == len(one_of_each())
    finally:
        store.close()
