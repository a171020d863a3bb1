"""The ledger commands' exit-2 contract: bad input, a missing or unmigrated ledger, an unreachable
or unusable database is exit status 2 with ONE line on stderr, never a traceback, and never the
password of a database URL."""

from __future__ import annotations

import sqlite3

import pytest

from tests.ledger_cli.conftest import PASSWORD, one_error_line, store_at

UNREACHABLE = f"postgresql://quant:{PASSWORD}@127.0.0.1:1/ledger"
DAY = ["--from", "2026-11-20", "--to", "2026-11-20"]


@pytest.fixture
def ledger(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'ok.sqlite'}"
    store_at(url).open().close()
    return url


@pytest.mark.parametrize("argv, needles", [
    (["--from", "2026-13-01"], ["--from", "YYYY-MM-DD"]),
    (["--to", "20261120"], ["--to", "YYYY-MM-DD"]),
    (["--from", "yesterday"], ["--from"]),
    (["--from", "2026-11-20T10:00"], ["--from"]),
    (["--from", "2026-11-21", "--to", "2026-11-20"], ["2026-11-21", "after", "2026-11-20"]),
])
def test_stats_bad_dates(cli, ledger, argv, needles):
    code, out, err = cli("stats", "--database-url", ledger, *argv)
    one_error_line(code, err, *needles)
    assert out == ""


@pytest.mark.parametrize("command", [["stats"], ["export", *DAY, "--out", "x"]])
def test_missing_ledger(cli, tmp_path, command):
    code, _, err = cli(*command)
    one_error_line(code, err, "no ledger", "demo.sqlite")
    assert not (tmp_path / "var").exists()  # reads create nothing
    code, _, err = cli(*command, "--database-url", f"sqlite:///{tmp_path / 'nope' / 'x.sqlite'}")
    one_error_line(code, err, "no ledger")
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("command", [["stats"], ["export", *DAY, "--out", "x"], ["migrate"], ["rebuild"]])
def test_unreachable_database_masks_the_password(cli, command, tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("redis:\n  url: redis://127.0.0.1:6379/15\n")
    code, out, err = cli(*command, "--database-url", UNREACHABLE, "--config", str(cfg))
    one_error_line(code, err, "unreachable", "quant:***@127.0.0.1:1")
    assert PASSWORD not in out


def test_database_url_from_the_environment(cli, clean_env):
    clean_env.setenv("DATABASE_URL", UNREACHABLE)  # the secret, as production sets it
    code, _, err = cli("stats")
    one_error_line(code, err, "unreachable", "quant:***@127.0.0.1:1")


@pytest.mark.parametrize("url, needles", [
    ("mysql://u:pw@127.0.0.1/x", ["unsupported"]),
    ("postgresql+asyncpg://u:pw@127.0.0.1/x", ["unsupported"]),
    (f"not a url {PASSWORD}", ["not a database URL"]),
])
def test_unusable_urls(cli, url, needles):
    code, _, err = cli("stats", "--database-url", url)
    one_error_line(code, err, *needles)


def test_missing_postgres_database(cli):
    code, _, err = cli("stats", "--database-url", f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/lcli_absent_db")
    one_error_line(code, err, "lcli_absent_db")


def test_unmigrated_and_foreign_files(cli, tmp_path):
    plain = tmp_path / "plain.sqlite"
    with sqlite3.connect(plain) as conn:
        conn.execute("create table x (a int)")
    code, _, err = cli("stats", "--database-url", f"sqlite:///{plain}")
    one_error_line(code, err, "ledger migrate")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    code, _, err = cli("export", *DAY, "--out", str(tmp_path / "o"), "--database-url", f"sqlite:///{junk}")
    one_error_line(code, err, "junk.sqlite")


@pytest.mark.parametrize("url, needles", [
    (UNREACHABLE, ["--database-url", "unreachable", "quant:***@127.0.0.1:1"]),
    (f"not a url {PASSWORD}", ["--database-url", "not a database URL"]),
])
def test_demo_refuses_a_ledger_it_cannot_write_before_any_work(capsys, clean_env, tmp_path, url, needles):
    import main

    capsys.readouterr()
    code = main.main(["demo", "--out", str(tmp_path / "day"), "--database-url", url])
    _out, err = capsys.readouterr()
    one_error_line(code, err, *needles)
    assert not (tmp_path / "day" / "journal.jsonl").exists()
