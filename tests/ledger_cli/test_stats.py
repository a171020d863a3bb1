"""``ledger stats``: the JSON object and the table against a hand-built ledger (SQLite and the
real PostgreSQL), figures worked out by hand in ``_book``."""

from __future__ import annotations

import pytest

from tests.ledger_cli._book import DAY, EXPECTED, EXPECTED_BY_STRATEGY, NEXT, build
from tests.ledger_cli.conftest import PASSWORD, json_out, one_error_line, store_at


@pytest.fixture
def booked(db_url: str) -> str:
    store = store_at(db_url).open()
    try:
        store.write(build().events)
    finally:
        store.close()
    return db_url


def test_stats_json_of_one_day(cli, booked):
    code, out, err = cli("stats", "--json", "--database-url", booked, "--from", str(DAY), "--to", str(DAY))
    assert code == 0, err
    got = json_out(out)
    for key, value in EXPECTED.items():
        assert got[key] == pytest.approx(value), key
    assert got["from"] == got["to"] == "2026-11-20"
    assert got["mode"] == "demo"
    assert set(got["by_strategy"]) == set(EXPECTED_BY_STRATEGY)
    for name, (trades, wins, losses, pnl) in EXPECTED_BY_STRATEGY.items():
        sc = got["by_strategy"][name]
        assert (sc["trades"], sc["wins"], sc["losses"]) == (trades, wins, losses)
        assert sc["realized_pnl"] == pytest.approx(pnl)
    assert PASSWORD not in out + err
    assert "***" in got["database"] or got["database"].startswith("sqlite")


def test_stats_spans(cli, booked):
    code, out, _ = cli("stats", "--json", "--database-url", booked)  # open span: both days
    whole = json_out(out)
    assert (code, whole["signals"], whole["trades"], whole["wins"]) == (0, 6, 3, 2)
    assert whole["realized_pnl"] == pytest.approx(36.1 + 50.0)
    code, out, _ = cli("stats", "--json", "--database-url", booked, "--from", str(NEXT))
    monday = json_out(out)
    assert (monday["signals"], monday["trades"], monday["realized_pnl"]) == (2, 1, 50.0)
    code, out, _ = cli("stats", "--json", "--database-url", booked, "--to", "2026-11-19")
    before = json_out(out)
    assert (before["signals"], before["trades"], before["fills"]) == (0, 0, 0)


def test_stats_table_has_the_strategy_lines(cli, booked):
    code, out, err = cli("stats", "--database-url", booked, "--from", str(DAY), "--to", str(DAY))
    assert code == 0, err
    assert "realized +$36.10" in out  # the shared money format (core.format.numbers)
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "+$117.40" in lines["gamma_0dte"] and "100.0%" in lines["gamma_0dte"]
    assert "-$81.30" in lines["directional_swing"] and "0.0%" in lines["directional_swing"]
    assert PASSWORD not in out


def test_stats_refuses_another_modes_ledger(cli, booked):
    code, _, err = cli("stats", "--database-url", booked, "--mode", "live")
    one_error_line(code, err, "'demo'", "'live'")


def test_stats_of_the_modes_default_ledger(cli, tmp_path):
    """No --database-url: the mode's SQLite file under ledger.sqlite_path (relative to the cwd)."""
    code, _, err = cli("stats", "--mode", "dry-run")
    one_error_line(code, err, "no ledger", "dry-run.sqlite")
    assert not (tmp_path / "var").exists()  # a read never creates the file
    store = store_at(f"sqlite:///{tmp_path / 'var/ledger/dry-run.sqlite'}", mode="dry-run").open()
    store.write(build().events)
    store.close()
    code, out, err = cli("stats", "--mode", "dry-run", "--json")
    assert code == 0, err
    assert json_out(out)["trades"] == 3
