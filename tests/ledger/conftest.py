"""Ledger databases for tests: a fresh PostgreSQL database per test on the real server (created and
dropped as the ``quanticity`` role that ``scripts/setup_db.sh`` provisions), a SQLite file in the
test's tmp_path, and ``ledger_url`` running a test once on each.

``TEST_DATABASE_URL`` overrides the server URL (any database on it the role may connect to; each
test's own database is created beside it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.ledger.store import resolve_url

SERVER_URL = resolve_url("", "", os.environ.get("TEST_DATABASE_URL")
                         or "postgresql://quanticity:quanticity@127.0.0.1:5432/quanticity")


def _admin():  # AUTOCOMMIT: CREATE / DROP DATABASE cannot run inside a transaction
    return create_engine(SERVER_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@contextmanager
def fresh_pg_url(tag: str = "t") -> Iterator[str]:
    """A new, empty database on the test server for the ``with`` block; dropped after it
    (``WITH (FORCE)``: connections a crashed test left open do not keep it alive)."""
    name = f"ltest_{tag}_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure here means the server is not set up for tests
        admin.dispose()
        pytest.fail(f"the ledger tests need PostgreSQL at {make_url(SERVER_URL).render_as_string()} "
                    f"with a role that may CREATE DATABASE (run scripts/setup_db.sh): {exc}")
    try:
        yield make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_url() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
