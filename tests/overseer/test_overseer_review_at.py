"""``python main.py overseer review SIGNAL.json [--state STATE.json] --at ISO8601``: the stored
signal is evaluated as of the given time (the clock-dependent rules see it); the default stays the
wall clock; a bad ``--at`` is exit 2 with one line on stderr and no traceback."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from ov_helpers import NOW, signal_dict

import main
from core.clock import clock as clock_module


@pytest.fixture
def signal_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    p = tmp_path / "signal.json"
    p.write_text(json.dumps(signal_dict(NOW)), encoding="utf-8")
    return str(p)


def _review(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code = main.main(["overseer", "review", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_review_as_of_the_signal_time_approves_and_an_hour_later_rejects(signal_file, capsys) -> None:
    fresh = _review([signal_file, "--at", NOW.isoformat()], capsys)
    assert fresh["decision"] == "approve" and fresh["reasons"] == [], fresh
    later = _review([signal_file, "--at", (NOW + timedelta(hours=1)).isoformat()], capsys)
    assert later["decision"] == "reject" and later["reasons"], later


@pytest.mark.parametrize("spelled", ["2026-11-20T16:00:00Z", "2026-11-20T11:00:00-05:00",
                                     "2026-11-20T17:00:00+01:00", " 2026-11-20T16:00:00.000+00:00 "])
def test_the_same_instant_in_any_offset_gives_the_same_verdict(signal_file, capsys, spelled) -> None:
    assert _review([signal_file, "--at", spelled], capsys) == _review([signal_file, "--at", NOW.isoformat()],
                                                                       capsys)


def test_without_at_the_review_runs_at_the_wall_clock(signal_file, capsys, monkeypatch) -> None:
    wall = NOW + timedelta(hours=1)
    monkeypatch.setattr(clock_module.LiveClock, "now", lambda self: wall)
    assert _review([signal_file], capsys) == _review([signal_file, "--at", wall.isoformat()], capsys)
    wall = NOW
    assert _review([signal_file], capsys)["decision"] == "approve"


@pytest.mark.parametrize("bad,needle", [("yesterday", "not an ISO 8601 time"), ("", "not an ISO 8601 time"),
                                        ("2026-11-20T16:00:00", "needs a UTC offset"),
                                        ("2026-11-20", "needs a UTC offset"),
                                        ("2026-13-45T10:00:00Z", "not an ISO 8601 time"),
                                        ("Z", "not an ISO 8601 time")])
def test_bad_at_is_exit_2_with_one_line(signal_file, capsys, bad, needle) -> None:
    code = main.main(["overseer", "review", signal_file, "--at", bad])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --at") and needle in lines[0], lines


def test_at_is_parsed_before_the_files_are_read(tmp_path, capsys) -> None:
    """A bad --at is reported even when the signal file is fine, and names --at, not the file."""
    code = main.main(["overseer", "review", str(tmp_path / "missing.json"), "--at", "soon"])
    err = capsys.readouterr().err
    assert code == 2 and "--at" in err and "missing.json" not in err
