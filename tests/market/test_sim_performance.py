"""The simulator is cheap enough to drive a full day in real time many times over.

Budget from the brief: advance + quote for 11 symbols every 10 s of simulated time
over 08:30-16:15 plus chain() for every symbol every 60 s, well under 10 s on a
2-core machine. CPU time is asserted (robust to other processes on the box) with a
generous bound; ``tests/market/bench_sim.py`` prints the detailed figures.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sim_helpers import at, make_sim


def test_full_day_budget() -> None:
    make_sim(0, ["SPY"])  # calendar + imports warm
    cpu0 = time.process_time()
    sim = make_sim(1)
    t = at(8, 30)
    step = 0
    while t <= at(16, 15):
        sim.advance(t)
        for s in sim.symbols:
            sim.quote(s)
        if step % 6 == 0:
            for s in sim.symbols:
                sim.chain(s)
        step += 1
        t += timedelta(seconds=10)
    cpu = time.process_time() - cpu0
    assert step == 2791
    assert cpu < 8.0, f"full simulated day took {cpu:.2f} s CPU"
