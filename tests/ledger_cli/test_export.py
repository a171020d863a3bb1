"""``ledger export``: CSV and Parquet that read back equal to the ledger's rows of the span (SQLite
and the real PostgreSQL), typed Parquet columns, ``time_utc`` beside ``ts``, the New York day
boundaries, the trades file and the manifest (no password)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import JSON, Float, Integer, Table, select

from core.ledger import schema
from core.ledger.store import make_engine, resolve_url
from tests.ledger_cli._book import DAY, NY, build, ms
from tests.ledger_cli.conftest import PASSWORD, one_error_line, store_at

TABLES: tuple[Table, ...] = (schema.events, *schema.TYPED)
LO, HI = ms(DAY, 0, 0), ms(DAY, 0, 0) + 24 * 3_600_000  # 2026-11-20 is a 24-hour New York day


@pytest.fixture
def booked(db_url: str) -> str:
    store = store_at(db_url).open()
    try:
        store.write(build().events)
    finally:
        store.close()
    return db_url


def db_rows(url: str, table: Table) -> list[dict[str, Any]]:
    eng = make_engine(resolve_url("", "demo", None, override=url))
    try:
        with eng.connect() as conn:
            stmt = select(table).where(table.c.ts >= LO, table.c.ts < HI).order_by(table.c.ts, table.c.event_id)
            return [dict(r) for r in conn.execute(stmt).mappings()]
    finally:
        eng.dispose()


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def expected_columns(table: Table) -> list[str]:
    names = [c.name for c in table.columns]
    return names[:names.index("ts") + 1] + ["time_utc"] + names[names.index("ts") + 1:]


def check_csv(path: Path, table: Table, rows: list[dict[str, Any]]) -> None:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == expected_columns(table)
        got = list(reader)
    assert len(got) == len(rows), table.name
    for want, have in zip(rows, got, strict=True):
        assert have["time_utc"] == iso(want["ts"])
        for col in table.columns:
            cell, value = have[col.name], want[col.name]
            if value is None:
                assert cell == "", (table.name, col.name)
            elif isinstance(col.type, JSON):
                assert json.loads(cell) == value
            elif isinstance(col.type, Integer):
                assert int(cell) == value
            elif isinstance(col.type, Float):
                assert float(cell) == value, (table.name, col.name)  # exact: money as stored
            else:
                assert cell == value


def check_parquet(path: Path, table: Table, rows: list[dict[str, Any]]) -> None:
    t = pq.read_table(path)
    assert t.column_names == expected_columns(table)
    assert t.schema.field("ts").type == pa.int64()
    assert t.schema.field("time_utc").type == pa.timestamp("ms", tz="UTC")
    for col in table.columns:
        want_type = (pa.string() if isinstance(col.type, JSON) else pa.int64() if isinstance(col.type, Integer)
                     else pa.float64() if isinstance(col.type, Float) else pa.string())
        assert t.schema.field(col.name).type == want_type, (table.name, col.name)
    got = t.to_pylist()
    assert len(got) == len(rows), table.name
    for want, have in zip(rows, got, strict=True):
        assert have["time_utc"] == datetime.fromtimestamp(want["ts"] / 1000, tz=UTC)
        for col in table.columns:
            value = have[col.name]
            if isinstance(col.type, JSON) and value is not None:
                value = json.loads(value)
            assert value == want[col.name], (table.name, col.name)


def test_export_reads_back_equal(cli, booked, tmp_path):
    out = tmp_path / "audit"
    code, stdout, err = cli("export", "--database-url", booked, "--from", str(DAY), "--to", str(DAY),
                            "--out", str(out))
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    book = build()
    for table in TABLES:
        rows = db_rows(booked, table)
        assert rows, f"the book has rows in {table.name}"
        check_csv(out / f"{table.name}.csv", table, rows)
        check_parquet(out / f"{table.name}.parquet", table, rows)
        assert manifest["tables"][table.name]["rows"] == len(rows)
    in_span = [e.id for e in book.events if LO <= e.ts < HI]
    assert sorted(r["event_id"] for r in db_rows(booked, schema.events)) == sorted(in_span)
    controls = [r["event_id"] for r in pq.read_table(out / "controls.parquet").to_pylist()]
    assert book.last.id in controls and book.before.id not in controls  # 23:59:59.999 in, 1 ms before out
    assert book.midnight.id in [r["event_id"] for r in pq.read_table(out / "alerts.parquet").to_pylist()]
    assert manifest["from"] == manifest["to"] == "2026-11-20"
    assert manifest["span_utc"] == {"start": "2026-11-20T05:00:00.000Z", "end_exclusive": "2026-11-21T05:00:00.000Z"}
    assert manifest["mode"] == "demo" and manifest["revision"] == "0001"
    assert datetime.fromisoformat(manifest["generated_at"]).tzinfo is not None
    for text in (stdout, err, (out / "manifest.json").read_text()):
        assert PASSWORD not in text


def test_export_trades(cli, booked, tmp_path):
    out = tmp_path / "t"
    assert cli("export", "--database-url", booked, "--from", str(DAY), "--to", str(DAY), "--out", str(out))[0] == 0
    trades = pq.read_table(out / "trades.parquet").to_pylist()
    assert [t["position_id"] for t in trades] == ["pos-A", "pos-B"]  # A2 closes Monday, C never closes
    a, b = trades
    assert (a["realized_pnl"], a["qty"], a["entry_price"], a["outcome"]) == (117.4, 2, 1.2, "win")
    assert a["return_pct"] == pytest.approx(117.4 / 240 * 100)
    assert (b["realized_pnl"], b["return_pct"], b["outcome"]) == (-81.3, pytest.approx(-40.65), "loss")
    assert a["closed_utc"].astimezone(NY).strftime("%H:%M:%S") == "14:30:01"
    assert a["opened_utc"].astimezone(NY).strftime("%H:%M:%S") == "10:00:05"
    assert a["closed_day_ny"] == "2026-11-20"
    with (out / "trades.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["position_id"], float(r["realized_pnl"]), r["closed_utc"]) for r in rows] == [
        ("pos-A", 117.4, iso(a["closed_ts"])), ("pos-B", -81.3, iso(b["closed_ts"]))]
    assert json.loads((out / "manifest.json").read_text())["tables"]["trades"]["rows"] == 2


def test_export_one_format_and_an_empty_span(cli, booked, tmp_path):
    out = tmp_path / "csv-only"
    assert cli("export", "--database-url", booked, "--from", "2026-11-21", "--to", "2026-11-22", "--out", str(out),
               "--format", "csv")[0] == 0  # a weekend: nothing
    assert not list(out.glob("*.parquet"))
    with (out / "fills.csv").open(encoding="utf-8", newline="") as fh:
        assert list(csv.reader(fh)) == [expected_columns(schema.fills)]  # header only
    assert all(v["rows"] == 0 for v in json.loads((out / "manifest.json").read_text())["tables"].values())
    pq_out = tmp_path / "pq-only"
    assert cli("export", "--database-url", booked, "--from", "2026-11-21", "--to", "2026-11-22", "--out",
               str(pq_out), "--format", "parquet")[0] == 0
    assert not list(pq_out.glob("*.csv"))
    empty = pq.read_table(pq_out / "fills.parquet")
    assert empty.num_rows == 0 and empty.column_names == expected_columns(schema.fills)


@pytest.mark.parametrize("argv, needles", [
    (["--from", "2026-11-20"], ["--to"]),
    (["--from", "2026-11-20", "--to", "2026-11-20"], ["--out"]),
    (["--from", "2026-11-20", "--to", "2026-11-19", "--out", "x"], ["after"]),
    (["--from", "2026-11-20", "--to", "2026-11-20", "--out", "x", "--format", "csv,xlsx"], ["--format"]),
])
def test_export_bad_input(cli, booked, argv, needles):
    code, _, err = cli("export", "--database-url", booked, *argv)
    one_error_line(code, err, *needles)


def test_export_unwritable_out(cli, booked, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = cli("export", "--database-url", booked, "--from", str(DAY), "--to", str(DAY),
                       "--out", str(blocker / "out"))
    one_error_line(code, err, "--out")
