"""Smoke test of ``bench/chaos.py``: a short window with three kills runs end to end and its last
stdout line is the JSON object of counts the issue asks for, with no duplicate and nothing lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("kills", "outages", "orders", "fills", "posts", "duplicates", "lost", "overdue", "stuck")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="the chaos run starts its own redis-server")
@pytest.mark.timeout(400)
def test_three_kills_on_a_short_window():
    proc = subprocess.run([sys.executable, "bench/chaos.py", "--kills", "3", "--outages", "0", "--seed", "3",
                           "--date", "2026-12-03", "--from", "09:40", "--to", "10:00", "--speed", "100",
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=360, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in REQUIRED:
        assert isinstance(result[key], int), (key, result)
    assert result["kills"] == 3 and result["outages"] == 0
    assert sum(result["starts_by_group"].values()) >= 6 + 3  # every killed process came back
    assert result["duplicates"] == 0 and result["lost"] == 0, result["findings"]
