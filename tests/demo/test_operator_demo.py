"""The demo as a newcomer runs it: the default date, the progress it shows, the summary it ends
with, and the Redis keys it leaves behind (none: at the end, on Ctrl-C, on SIGTERM), on the real
Redis through the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis

import main as cli
from core.bus.events import NY
from core.clock.calendar import NyseCalendar
from core.format.numbers import plural
from core.runtime.demo import default_session_day
from core.runtime.demo_progress import Progress
from tests.conftest import REDIS_URL

ROOT = Path(cli.__file__).resolve().parent
OVERLAY = """
redis:
  url: "{url}"
  key_prefix: "{prefix}"
  embedded_fallback: false
market:
  symbols: [SPY, QQQ, IWM, SPX]
demo:
  start: "09:40"
  end: "{end}"
reports:
  premarket: "09:40"
  intraday: "10:00"
  close: "10:20"
"""


def _overlay(tmp: Path, end: str = "10:30") -> tuple[Path, str]:
    prefix = f"opdemo{uuid.uuid4().hex[:8]}"
    cfg = tmp / "demo.yaml"
    cfg.write_text(OVERLAY.format(url=REDIS_URL, prefix=prefix, end=end))
    return cfg, prefix


def _left(prefix: str) -> list[str]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return sorted(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


# ------------------------------------------------------------------ the default date
@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2026, 12, 3, 13, 24, tzinfo=NY), date(2026, 12, 2)),    # Thursday, the session still open
    (datetime(2026, 12, 3, 8, 0, tzinfo=NY), date(2026, 12, 2)),      # before the open
    (datetime(2026, 12, 3, 16, 0, tzinfo=NY), date(2026, 12, 3)),     # closed at 16:00 sharp
    (datetime(2026, 12, 3, 23, 59, tzinfo=NY), date(2026, 12, 3)),
    (datetime(2026, 12, 5, 12, 0, tzinfo=NY), date(2026, 12, 4)),     # Saturday: Friday's
    (datetime(2026, 12, 7, 9, 45, tzinfo=NY), date(2026, 12, 4)),     # Monday morning: still Friday's
    (datetime(2026, 11, 27, 13, 30, tzinfo=NY), date(2026, 11, 27)),  # early close (13:00) has passed
    (datetime(2026, 11, 27, 12, 0, tzinfo=NY), date(2026, 11, 25)),   # before it: Thanksgiving is closed
    (datetime(2026, 12, 4, 3, 30, tzinfo=UTC), date(2026, 12, 3)),    # already the 4th in UTC, 22:30 in NY
    (datetime(2026, 12, 3, 18, 24, tzinfo=UTC), date(2026, 12, 2)),   # 13:24 in NY
])
def test_the_default_date_is_the_last_completed_session(now, expected):
    assert default_session_day(NyseCalendar(), now) == expected


def test_the_default_date_is_the_same_all_day():
    cal = NyseCalendar()
    days = {default_session_day(cal, datetime(2026, 12, 3, h, m, tzinfo=NY)) for h in range(16) for m in (0, 59)}
    assert days == {date(2026, 12, 2)}


# ------------------------------------------------------------------ progress
async def _drive(bus, tty: bool) -> str:
    out = io.StringIO()
    start, end = datetime(2026, 11, 20, 9, 30, tzinfo=NY), datetime(2026, 11, 20, 16, 0, tzinfo=NY)
    prog = Progress(bus, start, end, out, tty=tty)
    t = start
    while t <= end:
        await prog.step(t)
        t = datetime.fromtimestamp(t.timestamp() + 15, tz=NY)
    await prog.finish(end)
    return out.getvalue()


async def test_progress_on_a_terminal_is_one_redrawn_bar(bus):
    text = await _drive(bus, tty=True)
    frames = text.split("\r")[1:]
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    assert len(frames) == 6.5 * 60 + 1  # one redraw per simulated minute
    assert "[" + "." * 24 + "]   0.0% 09:30 ET" in frames[0]
    assert "[" + "#" * 24 + "] 100.0% 16:00 ET | signals   0 | order events    0 | deliveries    0" in frames[-1]


async def test_progress_in_a_log_is_plain_lines_every_half_hour(bus):
    text = await _drive(bus, tty=False)
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert len(lines) == 14  # 09:30, 10:00 ... 16:00
    assert lines[0].startswith("demo:   0.0% simulated 09:30 New York | signals   0")
    assert lines[1].startswith("demo:   7.7% simulated 10:00 New York")
    assert lines[-1].startswith("demo: 100.0% simulated 16:00 New York")


# ------------------------------------------------------------------ a short day through the CLI
@pytest.fixture(scope="module")
def short_day(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("opday")
    cfg, prefix = _overlay(tmp)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["demo", "--seed", "4", "--date", "2026-11-20", "--out", str(tmp / "day"), "--config",
                       str(cfg), "--json"])
    assert rc == 0, err.getvalue()
    return {"summary": json.loads(out.getvalue().strip().splitlines()[-1]), "stderr": err.getvalue(),
            "prefix": prefix, "out": tmp / "day"}


def test_the_demo_ends_saying_where_its_outputs_are_what_was_rejected_and_what_is_open(short_day):
    s, err, out = short_day["summary"], short_day["stderr"], short_day["out"]
    assert "\r" not in err  # not a terminal: plain progress lines
    assert f"  outbox.html  {out / 'outbox.html'}  (open in a browser" in err
    assert f"  reports      {out / 'reports'}  ({len(s['reports'])} HTML files)" in err
    assert f"  journal      {out / 'journal.jsonl'}" in err and "  ledger       sqlite:///" in err
    assert f"rejected: {s['rejected']} of {s['signals']} signals" in err
    assert f"left open: {plural(len(s['open_positions']), 'position')}" in err
    for p in s["open_positions"]:
        assert f"  {p['contract']} x{p['qty_open']} ({p['strategy']}" in err
    # --json keeps its keys and adds the new ones
    assert {"session_date", "signals", "approved", "rejected", "realized_pnl", "messages", "reports"} <= set(s)
    assert set(s["outputs"]) == {"outbox_html", "outbox", "journal", "reports", "ledger"}
    assert {"by_overseer", "rules", "cards", "refused_at_placement", "entries_unfilled"} <= set(s["rejections"])
    journal = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()]
    opened = {e["position_id"] for e in journal if e["type"] == "position.update" and e["kind"] == "entry"}
    closed = {e["position_id"] for e in journal if e["type"] == "position.update" and e["kind"] == "closed"}
    assert {p["position_id"] for p in s["open_positions"]} == opened - closed


def test_the_page_of_the_day_has_its_cards_and_embeds(short_day):
    page = (short_day["out"] / "outbox.html").read_text()
    journal = (short_day["out"] / "journal.jsonl").read_text()
    signals = {json.loads(x)["signal"]["id"] for x in journal.splitlines() if x.startswith('{"type":"approval.')}
    assert signals and all(f'<div class="tg card" id="card-{sid}">' in page for sid in signals)
    assert '<div class="embed" style="border-left-color:#' in page and '<div class="reddit-title">' in page
    assert "overflow:auto" in page and "max-width:100%" in page


def test_no_key_of_the_demo_is_left_in_redis(short_day):
    assert _left(short_day["prefix"]) == []


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "stopped")])
def test_a_demo_stopped_midway_removes_its_keys(tmp_path, sig, code, word):
    cfg, prefix = _overlay(tmp_path, end="15:30")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "main.py", "demo", "--date", "2026-11-20", "--out",
                             str(tmp_path / "out"), "--config", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(":s:" in k for k in _left(prefix)):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        time.sleep(1.0)  # well inside the day (15:30 is minutes away)
        assert any(":s:" in k for k in _left(prefix)), "the demo wrote no stream before the signal"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-2000:]
    assert f"demo: {word}; its Redis keys were removed" in err
    assert _left(prefix) == []
