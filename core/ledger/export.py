"""``ledger export``: the ledger's rows of a New York day span as CSV and Parquet files, for an
accountant or an auditor.

Into ``DIR``: ``<table>.csv`` / ``<table>.parquet`` for ``events`` and every typed table (the rows
whose ``ts`` falls in the span), ``trades.csv`` / ``trades.parquet`` (the positions closed in the
span, with their return %, under the P&L rule of ``core.ledger.queries``) and ``manifest.json``
(span, row counts, the database described without its password, revision, mode, time generated).

Decisions:
- **Money as it is stored**: the ledger's doubles, written with Python's shortest exact
  representation in CSV and as float64 in Parquet; nothing is rounded here.
- **Times**: ``ts`` (UTC epoch ms, as stored) and beside it ``time_utc`` (CSV: ISO 8601 UTC with
  milliseconds and ``Z``; Parquet: ``timestamp[ms, UTC]``). The span is whole New York days.
- **Typed Parquet**: integers int64, doubles float64, text string; JSON columns (reasons, args,
  paths ...) as JSON text, the same text in both formats. Nullable where the table allows NULL.
- CSV has a header row, UTF-8, RFC 4180 quoting; an empty CSV cell is NULL.
- Each file is written beside its final name and renamed when complete; ``manifest.json`` comes
  last, so a folder with a manifest holds a complete export.
- Rows stream from the database in pages (``PAGE``): a span of months never sits in memory.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import JSON, Column, Connection, Float, Integer, Table, select

from core.ledger import schema
from core.ledger.queries import ClosedTrade, closed_trades, span_ms
from core.pnl import NY

FORMATS = ("csv", "parquet")
TABLES: tuple[Table, ...] = (schema.events, *schema.TYPED)
PAGE = 5000

_ARROW = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "time": pa.timestamp("ms", tz="UTC")}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # int | float | str | time (epoch ms in, ISO / timestamp out)
    nullable: bool = True


def iso_utc(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _kind(col: Column[Any]) -> str:
    if isinstance(col.type, JSON):
        return "json"
    if isinstance(col.type, Integer):  # BigInteger included
        return "int"
    if isinstance(col.type, Float):
        return "float"
    return "str"


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def table_fields(table: Table) -> list[Field]:
    """The export columns of ``table``: its own, with ``time_utc`` right after ``ts``."""
    out = []
    for col in table.columns:
        kind = _kind(col)
        out.append(Field(col.name, "str" if kind == "json" else kind, bool(col.nullable)))
        if col.name == "ts":
            out.append(Field("time_utc", "time", False))
    return out


TRADE_FIELDS = [
    Field("position_id", "str", False), Field("strategy", "str", False), Field("symbol", "str", False),
    Field("expiry", "str", False), Field("strike", "float", False), Field("right", "str", False),
    Field("qty", "int", False), Field("entry_price", "float", False),
    Field("opened_ts", "int"), Field("opened_utc", "time"),
    Field("closed_ts", "int", False), Field("closed_utc", "time", False), Field("closed_day_ny", "str", False),
    Field("realized_pnl", "float", False), Field("return_pct", "float"), Field("outcome", "str", False),
    Field("correlation_id", "str", False),
]


def trade_row(t: ClosedTrade) -> dict[str, Any]:
    return {"position_id": t.position_id, "strategy": t.strategy, "symbol": t.symbol, "expiry": t.expiry,
            "strike": t.strike, "right": t.right, "qty": t.qty, "entry_price": t.entry_price,
            "opened_ts": t.opened_ts, "opened_utc": t.opened_ts, "closed_ts": t.closed_ts,
            "closed_utc": t.closed_ts, "closed_day_ny": t.closed_day.isoformat(),
            "realized_pnl": t.realized_pnl, "return_pct": t.return_pct, "outcome": t.outcome,
            "correlation_id": t.correlation_id}


def _csv_cell(field: Field, value: Any) -> Any:
    if value is None:
        return ""
    if field.kind == "time":
        return iso_utc(value)
    if field.kind == "float":
        return repr(float(value))
    return value


class _FileSet:
    """One export (``<stem>.csv`` and/or ``<stem>.parquet``), written in pages."""

    def __init__(self, out: Path, stem: str, fields: list[Field], formats: Sequence[str]) -> None:
        self.fields = fields
        self.rows = 0
        self.final: list[Path] = []
        self._parts: list[Path] = []
        self._csv: Any = None
        self._writer: Any = None
        self._pq: pq.ParquetWriter | None = None
        self.schema = pa.schema([pa.field(f.name, _ARROW[f.kind], nullable=f.nullable) for f in fields])
        for fmt in formats:
            final = out / f"{stem}.{fmt}"
            part = out / f".{stem}.{fmt}.part"
            self.final.append(final)
            self._parts.append(part)
            if fmt == "csv":
                self._csv = open(part, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
                self._writer = csv.writer(self._csv)
                self._writer.writerow([f.name for f in fields])
            else:
                self._pq = pq.ParquetWriter(part, self.schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.rows += len(rows)
        if self._writer is not None:
            self._writer.writerows([[_csv_cell(f, r[f.name]) for f in self.fields] for r in rows])
        if self._pq is not None:
            cols = [pa.array([r[f.name] for r in rows], type=_ARROW[f.kind]) for f in self.fields]
            self._pq.write_table(pa.Table.from_arrays(cols, schema=self.schema))

    def close(self, ok: bool) -> None:
        if self._csv is not None:
            self._csv.close()
        if self._pq is not None:
            if self.rows == 0 and ok:  # a valid empty file with the schema
                self._pq.write_table(self.schema.empty_table())
            self._pq.close()
        for part, final in zip(self._parts, self.final, strict=True):
            if ok:
                os.replace(part, final)
            else:
                part.unlink(missing_ok=True)


def _write(out: Path, stem: str, fields: list[Field], formats: Sequence[str],
           pages: Iterable[list[dict[str, Any]]]) -> _FileSet:
    files = _FileSet(out, stem, fields, formats)
    ok = False
    try:
        for rows in pages:
            files.write(rows)
        ok = True
    finally:
        files.close(ok)
    return files


def _table_pages(conn: Connection, table: Table, lo: int, hi: int) -> Iterable[list[dict[str, Any]]]:
    json_cols = [c.name for c in table.columns if isinstance(c.type, JSON)]
    stmt = select(table).where(table.c.ts >= lo, table.c.ts < hi).order_by(table.c.ts, table.c.event_id)
    result = conn.execution_options(yield_per=PAGE).execute(stmt).mappings()
    for part in result.partitions():
        rows = []
        for r in part:
            row = dict(r)
            row["time_utc"] = row["ts"]
            for name in json_cols:
                row[name] = _json_text(row[name])
            rows.append(row)
        yield rows


def export_span(conn: Connection, first: date, last: date, out: Path, formats: Sequence[str] = FORMATS, *,
                database: str, mode: str | None = None, revision: str | None = None,
                now: datetime | None = None) -> dict[str, Any]:
    """Write the export of New York days ``first``..``last`` into ``out`` (created); returns the
    manifest (also written as ``manifest.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    lo, hi = span_ms(first, last)
    files: dict[str, dict[str, Any]] = {}
    for table in TABLES:
        fs = _write(out, table.name, table_fields(table), formats, _table_pages(conn, table, lo, hi))
        files[table.name] = {"rows": fs.rows, "files": [p.name for p in fs.final]}
    trades = [trade_row(t) for t in closed_trades(conn, first, last)]
    fs = _write(out, "trades", TRADE_FIELDS, formats, [trades])
    files["trades"] = {"rows": fs.rows, "files": [p.name for p in fs.final]}
    manifest = {
        "from": first.isoformat(), "to": last.isoformat(), "timezone": str(NY),
        "span_utc": {"start": iso_utc(lo), "end_exclusive": iso_utc(hi)},
        "database": database, "mode": mode, "revision": revision,
        "generated_at": iso_utc(int((now or datetime.now(UTC)).timestamp() * 1000)),
        "formats": list(formats),
        "money": "as stored: USD doubles, unrounded; realized P&L after commissions (core/ledger/queries.py)",
        "times": "ts = UTC epoch ms; time_utc = the same instant in ISO 8601 UTC; days are New York days",
        "tables": files,
    }
    part = out / ".manifest.json.part"
    part.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(part, out / "manifest.json")
    return manifest
