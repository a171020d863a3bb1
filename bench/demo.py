"""Benchmark: one full demo day (08:30-16:15 simulated) end to end, with its Redis bill.

The demo runs in this process against a **private** ``redis-server`` the bench starts on a free
port (nothing else talks to it, so ``INFO commandstats`` is the day's own command count), and
prints, per run:

- wall time and **process CPU** (``time.process_time``: this process, all threads) — on a shared
  2-core machine wall time swings with load; CPU time and command counts are the stable figures;
- the Redis server's own CPU (``INFO cpu`` delta);
- **Redis commands** (``INFO commandstats``, the top ones by calls) and **client round trips**
  (every ``send_packed_command`` of redis-py: a single command or a whole pipeline is one), with
  commands per round trip and round trips per bus event;
- bus events per wall second and per CPU second (``journal.jsonl`` lines);
- a like-for-like baseline measured in the same run: the market simulator alone stepping the same
  day on the demo's tick (``config/demo.yaml`` ``market.tick_seconds``) and chain cadence
  (``market.chain_seconds``) without the bus, Redis or any service; the ratio is what the rest of
  the system costs on top of generating the market.

    .venv/bin/python bench/demo.py [--seed N] [--date YYYY-MM-DD] [--runs 1] [--redis-server PATH]

Figures and ratios only, no assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis
import redis.asyncio.connection as aconn

from core.clock.calendar import NY, NyseCalendar


# ---------------------------------------------------------------- private redis-server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_redis(binary: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--daemonize", "no", "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"private redis-server on port {port} did not answer")
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def server_figures(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
    finally:
        client.close()
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    calls.pop("info", None)  # the bench's own reads
    calls.pop("config|resetstat", None)
    return {"calls": calls, "cpu_srv_total": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])}


def reset_server(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
        client.config_resetstat()
    finally:
        client.close()


# ---------------------------------------------------------------- client round trips
class RoundTrips:
    """Counts redis-py's asyncio ``send_packed_command`` calls (one per single command or pipeline)."""

    def __init__(self) -> None:
        self.count = 0
        self._orig = aconn.AbstractConnection.send_packed_command

    def __enter__(self) -> Self:
        orig, counter = self._orig, self

        async def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            counter.count += 1
            await orig(conn, command, check_health)

        aconn.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        aconn.AbstractConnection.send_packed_command = self._orig  # type: ignore[method-assign]


# ---------------------------------------------------------------- baseline: the simulator alone
def simulator_only(day: date, seed: int) -> tuple[float, float, int]:
    """Wall s, CPU s and chains simulated for the market simulator alone on the demo's cadence."""
    from core.config import load_settings
    from core.market.sim import MarketSimulator

    settings = load_settings(ROOT / "config" / "demo.yaml")
    tick_s, chain_s = settings.market.tick_seconds, settings.market.chain_seconds
    s = NyseCalendar().session(day)
    start, end = s.at(settings.demo.start), s.at(settings.demo.end)
    w0, c0 = time.perf_counter(), time.process_time()
    sim = MarketSimulator(seed=seed, session_open=start, session_close=end, symbols=list(settings.market.symbols))
    t, n, chains = start, 0, 0
    every = max(1, chain_s // tick_s)
    while t <= end:
        sim.advance(t)
        for sym in sim.symbols:
            sim.quote(sym)
            sim.depth(sym)
            sim.prints(sym)
            sim.option_flow(sym)
            sim.net_premium(sym)
            if n == 0 or (s.open <= t <= s.close and n % every == 0):
                sim.chain(sym)
                chains += 1
        t += timedelta(seconds=tick_s)
        n += 1
    return time.perf_counter() - w0, time.process_time() - c0, chains


# ---------------------------------------------------------------- one demo day
def run_day(url: str, day: date, seed: int) -> dict[str, Any]:
    import main as cli

    reset_server(url)
    srv0 = server_figures(url)["cpu_srv_total"]
    os.environ["REDIS_URL"] = url
    with tempfile.TemporaryDirectory() as out:
        buf = io.StringIO()
        with RoundTrips() as rt, contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            w0, c0 = time.perf_counter(), time.process_time()
            rc = cli.main(["demo", "--seed", str(seed), "--date", day.isoformat(), "--out", out, "--json"])
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if rc != 0:
            raise SystemExit(f"demo failed with exit code {rc}")
        summary = json.loads(buf.getvalue().strip().splitlines()[-1])
        with (Path(out) / "journal.jsonl").open("rb") as fh:
            events = sum(1 for _ in fh)
    srv = server_figures(url)
    return {"wall": wall, "cpu": cpu, "round_trips": rt.count, "events": events, "summary": summary,
            "calls": srv["calls"], "cpu_srv": srv["cpu_srv_total"] - srv0}


def report(day: date, seed: int, runs: list[dict[str, Any]], base: tuple[float, float, int]) -> None:
    best = min(runs, key=lambda r: r["cpu"])
    s = best["summary"]
    cmds = sum(best["calls"].values())
    msgs = sum(s["messages"]["discord"].values()) + s["messages"]["x"] + s["messages"]["reddit"]
    load = os.getloadavg()
    print(f"demo day {day} seed {seed}: {s['signals']} signals, {s['fills']} fills, {msgs} messages, "
          f"{best['events']:,} bus events   (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    for i, r in enumerate(runs, 1):
        print(f"  run {i}: wall {r['wall']:6.1f} s   process CPU {r['cpu']:6.1f} s   redis-server CPU {r['cpu_srv']:5.1f} s"
              f"   commands {sum(r['calls'].values()):>9,}   round trips {r['round_trips']:>8,}")
    print(f"wall time (of the lowest-CPU run):   {best['wall']:8.2f} s")
    print(f"process CPU:                         {best['cpu']:8.2f} s   (issue 12 goal <= 12 s)")
    print(f"redis-server CPU:                    {best['cpu_srv']:8.2f} s")
    print(f"Redis commands:                      {cmds:>8,}     (goal <= 50,000)")
    print(f"client round trips:                  {best['round_trips']:>8,}     (goal <= 15,000)")
    print(f"commands per round trip:             {cmds / max(1, best['round_trips']):8.2f}")
    print(f"round trips per bus event:           {best['round_trips'] / max(1, best['events']):8.2f}")
    print(f"bus events per wall s / per CPU s:   {best['events'] / best['wall']:8.0f} / {best['events'] / best['cpu']:.0f}")
    top = sorted(best["calls"].items(), key=lambda kv: -kv[1])[:12]
    print("top commands: " + ", ".join(f"{k} {v:,}" for k, v in top))
    bw, bc, chains = base
    print(f"baseline, simulator alone:           {bw:8.2f} s wall, {bc:.2f} s CPU, {chains:,} chains")
    print(f"whole system / simulator alone:      {best['wall'] / bw:8.1f} x wall, {best['cpu'] / bc:.1f} x CPU")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--date")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    args = ap.parse_args()
    day = date.fromisoformat(args.date) if args.date else NyseCalendar().most_recent_session(datetime.now(NY).date())
    runs = []
    with private_redis(args.redis_server) as url:
        for _ in range(args.runs):
            r = run_day(url, day, args.seed)
            runs.append(r)
    base = simulator_only(day, args.seed)
    report(day, args.seed, runs, base)


if __name__ == "__main__":
    main()
