"""Reads of the ledger for services: an async facade over the database of a ``LedgerStore``.

Decisions:
- A query is a function of a SQLAlchemy ``Connection`` (``core.ledger.queries``); :meth:`LedgerReader.read`
  runs it in a worker thread (``asyncio.to_thread``), so a service's event loop never waits on the
  database, and returns its result.
- The reader never creates, migrates or claims a database: that is the ledger service's job
  (``LedgerStore.open``). A SQLite file that does not exist yet, a schema not created yet, a
  database that cannot be reached and a disabled ledger (``ledger.enabled: false``) all raise
  ``LedgerUnavailable`` with a one-line reason; a database created for another run mode raises
  ``LedgerModeError`` (a demo must never show live money, nor the reverse). :meth:`try_read` turns
  both into ``None`` and keeps the reason in ``last_error`` (logged once per outage), for callers
  that fall back (the overseer's baseline, the reports) or say so in one line (``/pnl``).
- Any other error (a bug in a query) propagates: it is not an outage.
- Freshness: the reader sees what the ledger holds when the query runs. In ``run`` the ledger
  trails the bus by up to one poll of the ledger service (``runner.poll_block_ms``) plus its write.
  In the lock-step demo (``SimRunner``) every event published at an earlier simulated instant is
  ledgered before the next instant starts (the runner drains every consumer group, the ledger's
  included, until quiet), while events published earlier in the *same* instant are ledgered only
  in that instant's drain, after the timers of its round; so a read at simulated time t sees
  exactly the events before t plus those drained in earlier rounds of t - a function of the seed
  and the fixed service order, hence the same on every run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.engine import make_url

from core.ledger import schema
from core.ledger.store import (
    LedgerModeError,
    LedgerStore,
    LedgerUnavailable,
    dispose_quietly,
    held_mode,
    make_engine,
    unreachable,
)

if TYPE_CHECKING:
    from core.runtime.service import Context

log = logging.getLogger("quanticity.ledger.reader")

T = TypeVar("T")
UNREADABLE: tuple[type[Exception], ...] = (LedgerUnavailable, LedgerModeError)


class LedgerReader:
    """Read-only access to the ledger of this run (see the module docstring)."""

    def __init__(self, store: LedgerStore | None, *, disabled: str = "the ledger is disabled") -> None:
        self.store = store
        self.disabled = disabled
        self.engine: Engine | None = None
        self.last_error = ""  # why the last try_read returned None ("" after a good read)
        self._checked = False  # schema and mode checked on this engine
        self._lock = threading.Lock()  # engine creation happens in worker threads

    @classmethod
    def for_context(cls, ctx: Context) -> LedgerReader:
        """The reader of this run's ledger: ``core.ledger.service.store_for(ctx)`` (demo file,
        ``DATABASE_URL`` or the mode's SQLite file), or a disabled reader."""
        if not ctx.settings.ledger.enabled:
            return cls(None, disabled="the ledger is disabled (ledger.enabled: false)")
        from core.ledger.service import store_for

        return cls(store_for(ctx))

    def describe(self) -> str:
        return self.store.describe() if self.store is not None else "no ledger"

    # ------------------------------------------------------------------ connecting
    def _engine(self) -> Engine:
        if self.store is None:
            raise LedgerUnavailable(self.disabled)
        with self._lock:
            if self.engine is None:
                url = make_url(self.store.url)
                if url.get_backend_name() == "sqlite":
                    db = url.database or ""
                    # a reader must not create the file (make_engine would, and its parent folder)
                    if not db or db == ":memory:" or not Path(db).is_file():
                        raise LedgerUnavailable(f"no ledger database at {self.describe()} yet")
                self.engine = make_engine(self.store.url, self.store.connect_timeout_s)
            return self.engine

    def _check(self, conn: Connection) -> None:
        """Once per engine: the schema exists and belongs to this run mode."""
        assert self.store is not None
        if not inspect(conn).has_table(schema.meta.name):
            raise LedgerUnavailable(f"the ledger at {self.describe()} has no schema yet "
                                    "(the ledger service creates it)")
        held = held_mode(conn)
        if held is not None and held != self.store.mode:
            raise LedgerModeError(f"the ledger at {self.describe()} holds {held!r} records; "
                                  f"this run is {self.store.mode!r}")
        self._checked = True

    def read_sync(self, query: Callable[[Connection], T]) -> T:
        engine = self._engine()
        try:
            with engine.connect() as conn:
                if not self._checked:
                    self._check(conn)
                return query(conn)
        except UNREADABLE:
            raise
        except Exception as exc:
            down = unreachable(self.describe(), exc)
            if down is not None:
                self._reset()
                raise down from None
            raise

    def _reset(self) -> None:
        """Drop pooled connections after a connection error; the next read reconnects and re-checks."""
        with self._lock:
            dispose_quietly(self.engine)
            self.engine = None
            self._checked = False

    # ------------------------------------------------------------------ reading
    async def read(self, query: Callable[[Connection], T]) -> T:
        """``query(conn)`` in a worker thread. Raises ``LedgerUnavailable`` / ``LedgerModeError``."""
        return await asyncio.to_thread(self.read_sync, query)

    async def try_read(self, query: Callable[[Connection], T]) -> T | None:
        """Like :meth:`read`, but ``None`` when the ledger cannot be read (reason in ``last_error``)."""
        try:
            result = await self.read(query)
        except UNREADABLE as exc:
            if str(exc) != self.last_error:
                log.warning("ledger not readable: %s", exc)
            self.last_error = str(exc)
            return None
        if self.last_error:
            log.info("ledger readable again (%s)", self.describe())
            self.last_error = ""
        return result

    def close(self) -> None:
        with self._lock:
            if self.engine is not None:
                self.engine.dispose()
                self.engine = None
            self._checked = False
