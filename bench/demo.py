"""Benchmark: one full demo day (08:30-16:15 simulated) end to end.

Prints the wall time, the simulated-to-wall speed, and, as a baseline measured in
the same run, the market simulator alone stepping the same day without the bus
(what the rest of the system costs on top of generating the market).

    .venv/bin/python bench/demo.py [--seed N] [--date YYYY-MM-DD] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock.calendar import NY, NyseCalendar


def simulator_only(day: date, seed: int, tick_s: int, chain_s: int) -> float:
    from core.config import load_settings
    from core.market.sim import MarketSimulator

    settings = load_settings(Path(__file__).resolve().parents[1] / "config" / "demo.yaml")
    s = NyseCalendar().session(day)
    start, end = s.at(settings.demo.start), s.at(settings.demo.end)
    t0 = time.perf_counter()
    sim = MarketSimulator(seed=seed, session_open=start, session_close=end, symbols=list(settings.market.symbols))
    t, n = start, 0
    while t <= end:
        sim.advance(t)
        for sym in sim.symbols:
            sim.quote(sym)
            sim.depth(sym)
            sim.prints(sym)
            sim.option_flow(sym)
            sim.net_premium(sym)
            if s.open <= t <= s.close and n % (chain_s // tick_s) == 0:
                sim.chain(sym)
        t += timedelta(seconds=tick_s)
        n += 1
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--date")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    import main as cli

    day = date.fromisoformat(args.date) if args.date else NyseCalendar().most_recent_session(datetime.now(NY).date())
    walls = []
    summary = {}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            import contextlib
            import io

            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = cli.main(["demo", "--seed", str(args.seed), "--date", day.isoformat(), "--out", out, "--json"])
            walls.append(time.perf_counter() - t0)
            if rc != 0:
                raise SystemExit(f"demo failed with exit code {rc}")
            summary = json.loads(buf.getvalue().strip().splitlines()[-1])
    wall = min(walls)
    base = simulator_only(day, args.seed, 10, 60)
    sim_s = summary["sim_seconds"]
    print(f"demo day {day} seed {args.seed}: {summary['signals']} signals, {summary['fills']} fills, "
          f"{sum(summary['messages']['discord'].values()) + summary['messages']['x'] + summary['messages']['reddit']} messages")
    print(f"wall time (best of {args.runs}):       {wall:8.2f} s   (goal < 60 s)")
    print(f"simulated / wall speed:          {sim_s / wall:8.0f} x   ({sim_s:.0f} simulated seconds)")
    print(f"baseline, simulator alone:       {base:8.2f} s")
    print(f"whole system / simulator alone:  {wall / base:8.1f} x")


if __name__ == "__main__":
    main()
