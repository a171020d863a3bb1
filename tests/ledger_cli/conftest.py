"""Fixtures of the ledger command tests: a clean environment, a ledger on SQLite (tmp_path) or on
the real PostgreSQL (a database per test, named with a uuid, dropped afterwards), and the CLI
called in-process through ``main.main``."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

import main
from core.ledger.store import LedgerStore

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD = "hunter2-never-printed"  # trust auth ignores it; it must never show in any output


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No QUANT_* / REDIS_URL / DATABASE_URL from the outside; cwd = tmp_path (no .env read, the
    default SQLite path lands in tmp_path)."""
    for name in list(os.environ):
        if name.startswith("QUANT_") or name in ("REDIS_URL", "DATABASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"lcli_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:  # pragma: no cover - CI always has PostgreSQL
        admin.dispose()
        pytest.fail(f"tests need the real PostgreSQL at {PG_ADMIN}: {exc}")
    try:
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("pg_url")


def store_at(url: str, mode: str = "demo") -> LedgerStore:
    from core.ledger.store import resolve_url

    return LedgerStore(resolve_url("", mode, None, override=url), mode)


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch) -> Cli:
    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main.main(["ledger", *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def one_error_line(code: int, err: str, *needles: str) -> str:
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and lines[0].strip() != "error:", lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert PASSWORD not in err
    return lines[0]


def json_out(out: str) -> Any:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, lines  # ONE JSON object
    return json.loads(lines[0])
