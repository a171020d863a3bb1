"""Where the ledger lives and how rows get there.

- ``resolve_url``: ``DATABASE_URL`` (a secret) when set, else the embedded SQLite file of the
  mode (``ledger.sqlite_path``); the demo passes its own file inside ``--out``.
- ``LedgerStore.open``: connect, bring the schema to the newest Alembic revision, and check the
  database belongs to this run mode (a database created by ``demo`` refuses ``live`` events and
  the reverse; ``LedgerModeError``).
- ``write``: one database transaction per call, every row ``INSERT .. ON CONFLICT DO NOTHING`` on
  its event id, so a write repeated after a crash, a redelivery or a rebuild adds nothing.
- A database that cannot be reached (refused, dropped, timed out) raises ``LedgerUnavailable``,
  which the bus consumer retries with backoff for as long as it lasts, never dead-lettering the
  event (the outage is not the event's fault, and the bus keeps it until the ledger acks it).

The engine is synchronous (SQLAlchemy 2 Core + psycopg 3 / sqlite3); the async wrappers run it in
a worker thread so the service's event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from core.bus.events import Event
from core.bus.retry import Unavailable
from core.ledger import schema
from core.ledger.rows import rows_for

log = logging.getLogger("quanticity.ledger")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class LedgerUnavailable(Unavailable):
    """The ledger database cannot be reached right now (retried; the event stays on the bus)."""


class LedgerModeError(Exception):
    """The database was created for another run mode."""


def resolve_url(sqlite_path: str, mode: str, database_url: str | None, *, override: str | None = None) -> str:
    """The ledger's SQLAlchemy URL: ``override`` (demo/CLI), else ``database_url`` (the
    ``DATABASE_URL`` secret), else ``sqlite:///`` + ``sqlite_path`` with ``{mode}`` filled in."""
    url = override or database_url
    if url:
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://"):]
        if url.startswith("postgresql://"):  # the driver this project ships: psycopg 3
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        return url
    path = Path(sqlite_path.replace("{mode}", mode))
    return f"sqlite:///{path}"


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                            ConnectionError, TimeoutError))


def make_engine(url: str, connect_timeout_s: float = 5.0) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": connect_timeout_s, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return eng
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2,
                         connect_args={"connect_timeout": max(1, int(connect_timeout_s))})


def migrate(engine: Engine, revision: str = "head", *, down: bool = False) -> None:
    """Run the Alembic migrations up to (or, with ``down``, back to) ``revision``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        if down:
            command.downgrade(cfg, revision)
        else:
            command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def held_mode(conn: Connection) -> str | None:
    """The run mode whose records this ledger holds (None: none claimed yet)."""
    return conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "mode")).scalar()


def unreachable(where: str, exc: BaseException) -> LedgerUnavailable | None:
    """The ``LedgerUnavailable`` a connection-level failure becomes (None: ``exc`` is not one)."""
    if _is_connection_error(exc):
        return LedgerUnavailable(f"ledger database {where} unreachable: {type(exc).__name__}")
    return None


def dispose_quietly(engine: Engine | None) -> None:
    """Drop pooled connections after a connection error (the next use reconnects)."""
    if engine is not None:
        try:
            engine.dispose()
        except Exception:  # disposing a dead pool may itself fail; nothing to keep but a log line
            log.debug("ledger: disposing the connection pool failed", exc_info=True)


def _insert(table: Any, dialect: str, key: str = "event_id") -> Any:
    # preserve_rowcount: SQLAlchemy 2 keeps an INSERT's rowcount only when asked; without it
    # psycopg's reads -1 after the statement and ``write`` counted nothing new on PostgreSQL
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
    else:
        raise LedgerModeError(f"ledger database dialect {dialect!r} is not supported (PostgreSQL or SQLite)")
    return stmt.execution_options(preserve_rowcount=True)


class LedgerStore:
    def __init__(self, url: str, mode: str, *, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.mode = mode
        self.connect_timeout_s = connect_timeout_s
        self.engine: Engine | None = None
        self.written = 0  # new event rows written by this process

    def describe(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> LedgerStore:
        """Connect, migrate to head, claim or check the mode. Raises ``LedgerUnavailable`` when the
        database cannot be reached, ``LedgerModeError`` when it belongs to another mode."""
        if self.engine is None:
            self.engine = make_engine(self.url, self.connect_timeout_s)
        try:
            migrate(self.engine)
            with self.engine.begin() as conn:
                held = held_mode(conn)
                if held is None:
                    conn.execute(_insert(schema.meta, conn.dialect.name, "key"), {"key": "mode", "value": self.mode})
                elif held != self.mode:
                    raise LedgerModeError(f"the ledger at {self.describe()} holds {held!r} records; "
                                          f"this run is {self.mode!r} (use another DATABASE_URL / sqlite_path)")
        except LedgerModeError:
            raise
        except Exception as exc:
            down = unreachable(self.describe(), exc)
            if down is not None:
                raise down from None
            raise
        return self

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    # ------------------------------------------------------------------ writing
    def write(self, evs: Iterable[Event]) -> int:
        """Ledger ``evs`` in one transaction; returns how many were new (0 for a repeat)."""
        if self.engine is None:
            self.open()
        assert self.engine is not None
        per_table: dict[Any, list[dict[str, Any]]] = {}
        for ev in evs:
            for table, row in rows_for(ev):
                per_table.setdefault(table, []).append(row)
        if not per_table:
            return 0
        try:
            with self.engine.begin() as conn:
                dialect = conn.dialect.name
                new = 0
                for table, rows in per_table.items():
                    res = conn.execute(_insert(table, dialect), rows)
                    if table is schema.events:
                        new = max(0, res.rowcount or 0)
        except Exception as exc:
            down = unreachable(self.describe(), exc)
            if down is not None:
                dispose_quietly(self.engine)
                raise down from None
            raise
        self.written += new
        return new

    async def awrite(self, evs: Sequence[Event]) -> int:
        return await asyncio.to_thread(self.write, evs)

    async def aopen(self) -> LedgerStore:
        return await asyncio.to_thread(self.open)

