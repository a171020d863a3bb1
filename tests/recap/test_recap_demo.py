"""The recap in the demo, through the CLI on the real Redis: 2026-12-01 is the first session of
December, so the report service asks the ledger for November right after the close report.

- The demo's own ledger starts empty (``<out>/ledger.sqlite``): November has no trade, so there is
  no recap — it is logged, nothing is built, posted or journaled.
- With ``--database-url`` pointing at a ledger that holds November's trades, the recap is built,
  approved by the demo's stand-in admin (``demo.approve_reports``) and posted to every tier.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import main as cli
from tests.recap._month import write_month

OVERLAY = """
market:
  symbols: [SPY, QQQ, IWM, SPX]
demo:
  start: "09:40"
  end: "10:20"
reports:
  premarket: "09:40"
  intraday: "10:30"
  close: "10:05"
"""


def run_demo(tmp: Path, *extra: str) -> tuple[dict, list[dict], list[dict]]:
    cfg = tmp / "short.yaml"
    cfg.write_text(OVERLAY)
    out = tmp / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["demo", "--seed", "1", "--date", "2026-12-01", "--out", str(out), "--config", str(cfg),
                       "--json", *extra])
    assert rc == 0
    summary = json.loads(buf.getvalue().strip().splitlines()[-1])
    journal = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()]
    outbox = [json.loads(x) for x in (out / "outbox.jsonl").read_text().splitlines()]
    return summary, journal, outbox


def test_demo_first_session_with_an_empty_previous_month_has_no_recap(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="quanticity.reports")
    summary, journal, outbox = run_demo(tmp_path)
    reports = [(e["kind"], e["status"]) for e in journal if e["type"] == "report"]
    assert ("close", "approved") in reports  # the machinery ran at the close ...
    assert not [k for k, _s in reports if k == "monthly"]  # ... and built no recap
    assert not [p for p in summary["reports"] if "monthly" in p]
    assert not [m for m in outbox if "Monthly" in m["text"]]
    said = [r.getMessage() for r in caplog.records if "no monthly recap" in r.getMessage()]
    ledger = f"sqlite:///{tmp_path}/out/ledger.sqlite"
    assert said == [f"no closed trades in November 2026 in the ledger ({ledger}): no monthly recap"]


def test_demo_first_session_posts_the_recap_of_a_traded_month(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    inside, _ = write_month(url)
    summary, journal, outbox = run_demo(tmp_path, "--database-url", url)
    monthly = [e for e in journal if e["type"] == "report" and e["kind"] == "monthly"]
    assert [e["status"] for e in monthly] == ["built", "approved"] and monthly[1]["by"] == "policy:auto"
    assert monthly[0]["ts"].startswith("2026-12-01T10:05:00")
    assert f"November 2026: {len(inside)} trades closed" in monthly[0]["summary"]
    assert sorted(Path(p).name for p in summary["reports"] if "monthly" in p) == [
        "2026-11-monthly-basic.html", "2026-11-monthly-free.html", "2026-11-monthly-premium.html"]
    posts = [m for m in outbox if m["correlation_id"] == monthly[0]["correlation_id"]]
    assert sorted((m["channel"], m["tier"]) for m in posts) == [
        ("discord", "basic"), ("discord", "free"), ("discord", "premium"), ("reddit", "free"), ("x", "free")]
