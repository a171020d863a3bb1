"""Performance check of the market simulator (not collected by pytest).

Run: ``.venv/bin/python tests/market/bench_sim.py [seed]``. Simulates a full
08:30-16:15 NY day for the 11 default symbols: advance + quote for every symbol every
10 s of simulated time, chain() for every symbol every 60 s. Prints the timings.
"""

from __future__ import annotations

import sys
import time
from datetime import date, datetime, timedelta


def run(seed: int = 1, day: date = date(2025, 12, 2)) -> dict[str, float]:
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    from core.market.sim import NY, MarketSimulator
    from core.market.sim.calendar import _sessions

    _sessions()  # one-off per process: exchange_calendars load
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    open_ = datetime(day.year, day.month, day.day, 8, 30, tzinfo=NY)
    close = datetime(day.year, day.month, day.day, 16, 15, tzinfo=NY)
    sim = MarketSimulator(seed, open_, close)
    t2 = time.perf_counter()
    n_quotes = n_chains = rows = 0
    t_chain = 0.0
    t = open_
    step = 0
    while t <= close:
        sim.advance(t)
        for s in sim.symbols:
            sim.quote(s)
            n_quotes += 1
        if step % 6 == 0:
            tc = time.perf_counter()
            for s in sim.symbols:
                rows += len(sim.chain(s))
                n_chains += 1
            t_chain += time.perf_counter() - tc
        step += 1
        t += timedelta(seconds=10)
    t3 = time.perf_counter()
    cpu3 = time.process_time()
    return {"sim_cpu_s (construct+loop)": cpu3 - cpu1, "total_cpu_s": cpu3 - cpu0,
            "import_and_calendar_s": t1 - t0, "construct_s": t2 - t1, "loop_s": t3 - t2,
            "chain_part_s": t_chain, "total_s": t3 - t0, "quotes": n_quotes, "chains": n_chains,
            "avg_chain_rows": rows / max(n_chains, 1)}


if __name__ == "__main__":
    r = run(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    for k, v in r.items():
        print(f"{k:>28}: {v:.3f}" if isinstance(v, float) else f"{k:>28}: {v}")
