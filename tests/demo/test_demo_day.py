"""The demo contract, end to end through the CLI on the real Redis: a shortened session
with four symbols (the simulator's paths do not depend on which symbols run)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

import main as cli

OVERLAY = """
market:
  symbols: [SPY, QQQ, IWM, SPX]
demo:
  start: "09:40"
  end: "{end}"
reports:
  premarket: "09:40"
  intraday: "10:30"
  close: "{close}"
"""


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    import contextlib
    import io

    tmp = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cfg = tmp / "day.yaml"
        cfg.write_text(OVERLAY.format(end="12:30", close="12:25"))
        rc = cli.main(["demo", "--seed", "4", "--date", "2026-11-20", "--out", str(tmp / "day"), "--config",
                       str(cfg), "--json"])
    assert rc == 0
    summary = json.loads(buf.getvalue().strip().splitlines()[-1])
    summary["_out"] = tmp / "day"
    return summary


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_summary_has_the_contract_keys(day):
    keys = {"session_date", "signals", "approved", "rejected", "orders", "fills", "positions_opened",
            "positions_closed", "realized_pnl", "messages", "thread_replies", "reports", "sim_seconds",
            "wall_seconds"}
    assert keys <= set(day)
    assert set(day["messages"]) == {"discord", "x", "reddit"}
    assert set(day["messages"]["discord"]) == {"premium", "basic", "free"}
    assert day["session_date"] == "2026-11-20" and day["sim_seconds"] == 10200.0


def test_the_day_trades_and_posts_every_tier(day):
    assert day["fills"] >= 1 and day["positions_opened"] >= 1
    assert all(day["messages"]["discord"][t] >= 1 for t in ("premium", "basic", "free"))
    assert day["messages"]["x"] >= 1 and day["messages"]["reddit"] >= 1
    assert day["thread_replies"] >= 1
    assert any(p.endswith("-close-premium.html") for p in day["reports"])
    for p in day["reports"]:
        assert Path(p).read_text().lstrip().lower().startswith("<!doctype html")


def test_journal_is_ordered_and_fills_carry_the_contract(day):
    journal = _lines(day["_out"] / "journal.jsonl")
    stamps = [datetime.fromisoformat(e["ts"]) for e in journal]
    assert stamps == sorted(stamps)
    assert all({"type", "ts", "correlation_id"} <= set(e) for e in journal)
    assert all(e["ts"].endswith(("-05:00", "-04:00")) for e in journal)
    fills = [e for e in journal if e["type"] == "order.fill"]
    assert fills and all({"symbol", "expiry", "strike", "right", "qty", "price"} <= set(f) for f in fills)
    verdicts = [e for e in journal if e["type"] == "review.verdict"]
    assert verdicts and all(v["ai"]["status"] in ("unavailable", "skipped") for v in verdicts)  # no key in the demo
    # the overseer saw the simulated feed gap and cleared it once
    alerts = [(e["code"], e["state"]) for e in journal if e["type"] == "alert" and e["subject"] == "quotes:QQQ"]
    assert alerts == [("FEED_STALE", "raised"), ("FEED_STALE", "cleared")]


def test_one_correlation_id_follows_a_trade(day):
    journal = _lines(day["_out"] / "journal.jsonl")
    entry = next(e for e in journal if e["type"] == "position.update" and e["kind"] == "entry")
    kinds = {e["type"] for e in journal if e["correlation_id"] == entry["correlation_id"]}
    assert {"signal.new", "review.verdict", "approval.decision", "order.update", "order.fill",
            "position.update", "delivery"} <= kinds


def test_outbox_tiers_are_delayed_exactly_and_replies_nest(day):
    outbox = _lines(day["_out"] / "outbox.jsonl")
    keys = {"channel", "tier", "ts", "correlation_id", "message_id", "reply_to", "event", "text", "embed", "title"}
    assert all(set(m) - {"attachment"} == keys for m in outbox)
    assert all(m["event"] == "report" and m["channel"] == "discord" for m in outbox if "attachment" in m)
    ids = {m["message_id"] for m in outbox}
    assert all(m["reply_to"] in ids for m in outbox if m["reply_to"])
    for m in (m for m in outbox if m["event"] == "entry" and m["channel"] == "discord" and m["tier"] == "premium"):
        t0 = datetime.fromisoformat(m["ts"])
        later = {(o["channel"], o["tier"]): datetime.fromisoformat(o["ts"]) for o in outbox
                 if o["correlation_id"] == m["correlation_id"] and o["event"] == "entry"}
        assert (later[("discord", "basic")] - t0).total_seconds() == 60
        assert (later[("discord", "free")] - t0).total_seconds() == 300
        assert (later[("x", "free")] - t0).total_seconds() == 300
    html = (day["_out"] / "outbox.html").read_text()
    assert "premium" in html and "basic" in html and "free" in html


def test_same_seed_same_bytes(tmp_path):
    """The same command twice (same --seed, --date, --out) writes the same files byte for byte."""
    import contextlib
    import io
    import shutil

    cfg = tmp_path / "short.yaml"
    cfg.write_text(OVERLAY.format(end="10:10", close="10:05"))
    out = tmp_path / "out"
    runs = []
    for name in ("a", "b"):
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["demo", "--seed", "11", "--date", "2026-11-20", "--out", str(out),
                             "--config", str(cfg), "--json"]) == 0
        runs.append(shutil.copytree(out, tmp_path / name))
    for f in ("journal.jsonl", "outbox.jsonl", "outbox.html"):
        assert (runs[0] / f).read_bytes() == (runs[1] / f).read_bytes(), f
    reports = sorted(p.name for p in (runs[0] / "reports").glob("*.html"))
    assert reports
    for name in reports:
        assert (runs[0] / "reports" / name).read_bytes() == (runs[1] / "reports" / name).read_bytes(), name
    assert (runs[0] / "journal.jsonl").stat().st_size > 1000


def test_a_holiday_is_refused_with_a_clear_error(capsys):
    assert cli.main(["demo", "--date", "2026-11-26"]) == 2
    assert "not an NYSE session" in capsys.readouterr().err
