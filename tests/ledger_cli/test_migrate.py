"""``ledger migrate`` on SQLite and the real PostgreSQL: up to head, idempotent, down to a
revision and up again; the revision before/after is printed, the password never."""

from __future__ import annotations

from sqlalchemy import inspect

from core.ledger import schema
from core.ledger.store import make_engine, resolve_url
from tests.ledger_cli.conftest import PASSWORD, one_error_line


def tables(url: str) -> set[str]:
    eng = make_engine(resolve_url("", "demo", None, override=url))
    try:
        return set(inspect(eng).get_table_names()) - {"alembic_version"}
    finally:
        eng.dispose()


def test_migrate_up_down_up(cli, db_url):
    every = {t.name for t in schema.metadata.sorted_tables}
    code, out, err = cli("migrate", "--database-url", db_url)
    assert (code, out.strip().rsplit(": ", 1)[1]) == (0, "revision none -> 0001"), err
    assert tables(db_url) == every
    code, out, _ = cli("migrate", "--database-url", db_url)
    assert out.strip().endswith("revision 0001 -> 0001")
    code, out, _ = cli("migrate", "--database-url", db_url, "--down", "--revision", "base")
    assert (code, out.strip().rsplit(": ", 1)[1]) == (0, "revision 0001 -> none")
    assert tables(db_url) == set()
    code, out, _ = cli("migrate", "--database-url", db_url, "--revision", "0001")
    assert out.strip().endswith("revision none -> 0001") and tables(db_url) == every
    code, out, err = cli("stats", "--json", "--database-url", db_url)
    assert code == 0, err
    assert PASSWORD not in out + err


def test_migrate_the_modes_default_file(cli, tmp_path):
    code, out, err = cli("migrate", "--mode", "dry-run")
    assert code == 0, err
    assert (tmp_path / "var/ledger/dry-run.sqlite").is_file()
    assert "dry-run.sqlite: revision none -> 0001" in out


def test_migrate_bad_input(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    code, _, err = cli("migrate", "--database-url", url, "--down")
    one_error_line(code, err, "--revision")
    code, _, err = cli("migrate", "--database-url", url, "--down", "--revision", "base")
    one_error_line(code, err, "no ledger")
    assert not (tmp_path / "m.sqlite").exists()
    code, _, err = cli("migrate", "--database-url", url, "--revision", "9999")
    one_error_line(code, err, "9999")
