"""Benchmark: the trade ledger's write throughput and its lag behind the bus.

Run from the repo root (the real Redis and PostgreSQL; ``scripts/setup_db.sh`` provisions the role):
``.venv/bin/python bench/ledger.py [--events 2000] [--batch 100] [--short] [--live-rate 50] [--live-seconds 5]``

1. **Lag during a demo day** (lock-step, ``core.runtime.demo.run_demo`` with every demo service, seed
   ``--seed``, ``--date``; ``--short``: the tests' 4-symbol 09:40-12:30 session): per ledgered event,
   wall ms from the moment its MULTI/EXEC (or XADD) was sent to the moment ``LedgerService.handle``
   returned with it written; and the simulated lag (clock at the write - event time). Once with the
   embedded SQLite, once with PostgreSQL. Baseline: the same day without the ledger service (the
   ratio is what the ledger costs the day).
2. **Lag live**: ``LedgerService`` alone under the ``LiveRunner`` (wall clock, blocking XREADGROUP)
   while a producer publishes the demo day's ledgered events, cloned, at ``--live-rate`` events/s for
   ``--live-seconds`` (the day's own pace, a few events a minute, would measure nothing but idling).
3. **Write throughput** of ``LedgerStore.write`` on both backends over ``--events`` events (the demo
   day's ledgered events, cloned with new ids): one event per transaction, as the service writes;
   ``--batch`` events per transaction; the same events again (every row a conflict: a redelivery or
   a rebuild). Process CPU (this process) and, for PostgreSQL, the server backend's CPU. Baseline:
   the driver alone (sqlite3 / psycopg), one plain ``INSERT .. ON CONFLICT DO NOTHING`` of the
   ``events`` row and a commit per event, on the same database.

Figures and ratios only, no assertions. Each PostgreSQL database is created for the run (``bench_*``
on ``--database-url``'s server) and dropped after it; Redis keys live under a throwaway prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from core.bus.bus import Bus, Tx
from core.bus.events import Event
from core.ledger.rows import LEDGERED_TYPES
from core.ledger.service import LedgerService
from core.ledger.store import LedgerStore, resolve_url

SHORT = {"market": {"symbols": ["SPY", "QQQ", "IWM", "SPX"]}, "demo": {"start": "09:40", "end": "12:30"},
         "reports": {"premarket": "09:40", "intraday": "10:30", "close": "12:25"}}


# ---------------------------------------------------------------- helpers
def pct(vals: list[float], p: float) -> float:
    if not vals:
        return float("nan")
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def fmt(vals: list[float]) -> str:
    if not vals:
        return "n=0"
    return (f"n={len(vals):5d}  p50 {pct(vals, 50):8.3f}  p90 {pct(vals, 90):8.3f}  p99 {pct(vals, 99):8.3f}  "
            f"max {max(vals):8.3f}  mean {statistics.fmean(vals):8.3f}")


@contextlib.contextmanager
def pg_database(server_url: str, tag: str) -> Iterator[str]:
    """A new database on the server for the block, dropped after it."""
    name = f"bench_{tag}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class LagProbe:
    """Stamps a ledgered event when it is sent to Redis and when the ledger wrote it (wall ms)."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.written: dict[str, float] = {}
        self.sim_lag_ms: list[int] = []
        self._saved: list[tuple[type, str, Any]] = []

    def install(self) -> None:
        from core.signals.dedupe import SignalDeduper  # signals are XADDed by its Lua script

        probe = self
        orig_publish, orig_commit, orig_handle = Bus.publish, Tx.commit, LedgerService.handle
        orig_submit = SignalDeduper.submit

        async def publish(bus: Bus, ev: Event) -> str:
            if ev.type in LEDGERED_TYPES:
                probe.sent.setdefault(ev.id, time.perf_counter())
            return await orig_publish(bus, ev)

        async def commit(tx: Tx) -> list[Any]:
            t = time.perf_counter()
            for ev in tx.events:
                if ev.type in LEDGERED_TYPES:
                    probe.sent.setdefault(ev.id, t)
            return await orig_commit(tx)

        async def submit(dd: SignalDeduper, ev: Event, **kw: Any) -> Any:
            probe.sent.setdefault(ev.id, time.perf_counter())
            return await orig_submit(dd, ev, **kw)

        async def handle(svc: LedgerService, ev: Event, tx: Tx) -> None:
            await orig_handle(svc, ev, tx)
            probe.written.setdefault(ev.id, time.perf_counter())
            probe.sim_lag_ms.append(svc.clock.ms() - ev.ts)

        for cls, name, fn in ((Bus, "publish", publish), (Tx, "commit", commit), (LedgerService, "handle", handle),
                              (SignalDeduper, "submit", submit)):
            self._saved.append((cls, name, getattr(cls, name)))
            setattr(cls, name, fn)

    def uninstall(self) -> None:
        for cls, name, fn in reversed(self._saved):
            setattr(cls, name, fn)
        self._saved.clear()

    def lags_ms(self) -> list[float]:
        return [(self.written[i] - self.sent[i]) * 1000 for i in self.written if i in self.sent]


# ---------------------------------------------------------------- 1. the lock-step demo day
def demo_day(args: argparse.Namespace, ledger_url: str | None,
             with_ledger: bool) -> tuple[float, float, LagProbe, list[Event]]:
    """One lock-step demo day: (wall s, process CPU s, lag probe, the day's ledgered events)."""
    import main as cli
    from core.config.loader import load_settings
    from core.config.secrets import Secrets
    from core.runtime.demo import read_journal, run_demo

    base = load_settings(cli.DEMO_OVERLAY, environ={})  # what `main.py demo` runs
    data = base.model_dump()
    if args.short:
        for k, v in SHORT.items():
            data[k] = {**data[k], **v}
    settings = type(base).model_validate(data)
    names = [n for n in cli.SERVICE_ORDER if n != "telegram" and (with_ledger or n != "ledger")]
    probe = LagProbe()
    journal: list[Event] = []
    orig_read = read_journal

    async def keep_journal(bus: Bus) -> list[Event]:  # the day's events, for the throughput part
        journal.extend(await orig_read(bus))
        return journal

    import core.runtime.demo as demo_mod

    demo_mod.read_journal = keep_journal
    probe.install()
    try:
        with tempfile.TemporaryDirectory() as out:
            t0, c0 = time.perf_counter(), time.process_time()
            asyncio.run(run_demo(settings, Secrets.model_construct(), date.fromisoformat(args.date), args.seed,
                                 Path(out), lambda ctx: cli.build_services(ctx, names), progress=False,
                                 extras={"ledger_url": ledger_url} if ledger_url else None))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        probe.uninstall()
        demo_mod.read_journal = orig_read
    return wall, cpu, probe, [e for e in journal if e.type in LEDGERED_TYPES]


# ---------------------------------------------------------------- 2. live replay
async def live_replay(url: str, events: list[Event], rate: float, seconds: float) -> tuple[LagProbe, float]:
    import redis.asyncio as aioredis

    from core.bus.ids import IdFactory
    from core.bus.keys import Keys
    from core.clock.calendar import NyseCalendar
    from core.clock.clock import LiveClock
    from core.config.loader import load_settings
    from core.config.secrets import Secrets
    from core.runtime.live_runner import LiveRunner
    from core.runtime.service import Context

    settings = load_settings(environ={})
    client = aioredis.Redis.from_url(settings.redis.url or "redis://127.0.0.1:6379/0", decode_responses=True)
    keys = Keys(f"benchledger{os.getpid()}")
    clock = LiveClock()
    bus = Bus(client, keys, clock, IdFactory())
    ctx = Context(settings=settings, secrets=Secrets.model_construct(), bus=bus, clock=clock,
                  calendar=NyseCalendar())
    svc = LedgerService(ctx, store=LedgerStore(url, settings.mode.value))
    runner = LiveRunner([svc])
    probe = LagProbe()
    probe.install()
    n = max(1, int(rate * seconds))
    feed = [events[i % len(events)].model_copy(update={"id": f"L{i:07d}", "ts": clock.ms()}) for i in range(n)]
    task = asyncio.create_task(runner.run())
    try:
        while "ledger" not in runner.started:
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        for i, ev in enumerate(feed):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await bus.publish(ev)
        deadline = time.perf_counter() + 30
        while len(probe.written) < n and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        drained = time.perf_counter() - t0
    finally:
        runner.request_stop()
        await task
        probe.uninstall()
        async for key in client.scan_iter(match=keys.pattern(), count=1000):
            await client.delete(key)
        await client.aclose()
    return probe, drained


# ---------------------------------------------------------------- 3. throughput
def clones(events: list[Event], n: int, prefix: str) -> list[Event]:
    return [events[i % len(events)].model_copy(update={"id": f"{prefix}{i:07d}"}) for i in range(n)]


class BackendCpu:
    """CPU seconds of the PostgreSQL backends this engine connected to (read from /proc)."""

    def __init__(self, engine: Any) -> None:
        self.pids: set[int] = set()
        if engine.dialect.name == "postgresql":
            event.listen(engine, "connect", lambda dbapi, _rec: self.pids.add(dbapi.info.backend_pid))

    def seconds(self) -> float | None:
        if not self.pids:
            return None
        tick, total = os.sysconf("SC_CLK_TCK"), 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total


def timed(fn: Any, n: int, cpu: BackendCpu | None = None) -> dict[str, float | None]:
    srv0 = cpu.seconds() if cpu else None
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    wall, proc = time.perf_counter() - w0, time.process_time() - c0
    srv1 = cpu.seconds() if cpu else None
    srv = None if srv0 is None or srv1 is None else srv1 - srv0
    return {"rate": n / wall, "wall": wall, "proc_us": proc / n * 1e6, "srv_us": None if srv is None else srv / n * 1e6}


def raw_driver_inserts(url: str, events: list[Event]) -> None:
    """Baseline: the driver alone, one INSERT .. ON CONFLICT DO NOTHING of the events row + COMMIT each."""
    rows = [(e.id, e.ts, e.correlation_id, e.type, e.STREAM, e.model_dump_json()) for e in events]
    sql = ("INSERT INTO events (event_id, ts, correlation_id, type, stream, payload) VALUES ({0},{0},{0},{0},{0},{0}) "
           "ON CONFLICT (event_id) DO NOTHING")
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1])
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for r in rows:
            conn.execute(sql.format("?"), r)
            conn.commit()
        conn.close()
        return
    import psycopg

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, dbname=u.database, user=u.username, password=u.password) as conn:
        for r in rows:
            conn.execute(sql.format("%s"), r)
            conn.commit()


def throughput(url: str, events: list[Event], batch: int) -> dict[str, dict[str, float | None]]:
    store = LedgerStore(url, "demo").open()
    cpu = BackendCpu(store.engine)
    store.close()
    store.open()  # reconnect so the probe sees the backend
    n = len(events)
    single, batched = clones(events, n, "S"), clones(events, n, "B")
    out = {
        "single": timed(lambda: [store.write([e]) for e in single], n, cpu),
        "batched": timed(lambda: [store.write(batched[i:i + batch]) for i in range(0, n, batch)], n, cpu),
        "repeat": timed(lambda: [store.write([e]) for e in single], n, cpu),
    }
    assert store.written == 2 * n, store.written  # the repeat added nothing
    store.close()
    out["raw"] = timed(lambda: raw_driver_inserts(url, clones(events, n, "R")), n)
    return out


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2000, help="events per throughput run")
    ap.add_argument("--batch", type=int, default=100, help="events per transaction, batched run")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--date", default="2026-11-20")
    ap.add_argument("--short", action="store_true", help="the tests' 4-symbol 09:40-12:30 session")
    ap.add_argument("--live-rate", type=float, default=50.0, help="events/s of the live replay")
    ap.add_argument("--live-seconds", type=float, default=5.0)
    ap.add_argument("--database-url", default="postgresql://quanticity:quanticity@127.0.0.1:5432/quanticity",
                    help="PostgreSQL server (a bench_* database is created on it and dropped)")
    args = ap.parse_args()
    if not (100 <= args.events <= 100_000 and 1 <= args.batch <= 10_000 and 0 < args.live_rate <= 5000
            and 0 < args.live_seconds <= 60):
        raise SystemExit("--events in [100, 100000], --batch in [1, 10000], --live-rate in (0, 5000], "
                         "--live-seconds in (0, 60]")
    server = resolve_url("", "", args.database_url)
    span = "09:40-12:30, 4 symbols" if args.short else "the configured demo session"
    print(f"demo day {args.date} seed {args.seed} ({span}), lock-step:")
    base_wall, base_cpu, _, _ = demo_day(args, None, with_ledger=False)
    with tempfile.TemporaryDirectory() as tmp:
        sq_wall, sq_cpu, sq, ledgered = demo_day(args, f"sqlite:///{tmp}/day.sqlite", with_ledger=True)
    with pg_database(server, "day") as url:
        pg_wall, pg_cpu, pg, _ = demo_day(args, url, with_ledger=True)
    print(f"  {len(ledgered)} ledgered events of the day")
    print(f"  baseline, without the ledger : wall {base_wall:7.2f} s, process CPU {base_cpu:7.2f} s")
    for name, wall, cpu in (("SQLite", sq_wall, sq_cpu), ("PostgreSQL", pg_wall, pg_cpu)):
        print(f"  with the ledger on {name:10s}: wall {wall:7.2f} s ({wall / base_wall:.3f}x), "
              f"process CPU {cpu:7.2f} s ({cpu / base_cpu:.3f}x)")
    print("  lag sent -> written (wall ms; in lock-step the ledger, last in the round, waits for the other")
    print("  services' handling of the same instant):")
    print(f"    SQLite     : {fmt(sq.lags_ms())}")
    print(f"    PostgreSQL : {fmt(pg.lags_ms())}")
    print(f"  simulated lag (clock at write - event ts): max {max(sq.sim_lag_ms + pg.sim_lag_ms)} ms")

    print(f"\nlive: LedgerService under the LiveRunner, {args.live_rate:g} events/s for {args.live_seconds:g} s:")
    for name, make in (("SQLite", None), ("PostgreSQL", server)):
        with contextlib.ExitStack() as stack:
            if make is None:
                url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/live.sqlite"
            else:
                url = stack.enter_context(pg_database(server, "live"))
            probe, drained = asyncio.run(live_replay(url, ledgered, args.live_rate, args.live_seconds))
        print(f"  {name:10s} lag (wall ms): {fmt(probe.lags_ms())}  (all written {drained:.2f} s after the first)")

    print(f"\nwrite throughput, {args.events} events (the day's ledgered events, cloned):")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite"] = throughput(f"sqlite:///{tmp}/tp.sqlite", ledgered, args.batch)
    with pg_database(server, "tp") as url:
        results["PostgreSQL"] = throughput(url, ledgered, args.batch)
    labels = {"single": "LedgerStore.write, 1 event / transaction", "batched": f"LedgerStore.write, {args.batch} / tx",
              "repeat": "same events again (all conflicts), 1 / tx", "raw": "baseline: driver alone, 1 INSERT+COMMIT"}
    for name, res in results.items():
        print(f"  {name}:")
        for k, label in labels.items():
            r = res[k]
            srv = "" if r["srv_us"] is None else f", server CPU {r['srv_us']:7.1f} us/event"
            print(f"    {label:44s}: {r['rate']:9,.0f} events/s  (process CPU {r['proc_us']:7.1f} us/event{srv})")
    print("\nratios:")
    for name, res in results.items():
        print(f"  {name:10s} batched / single {res['batched']['rate'] / res['single']['rate']:6.1f}x   "
              f"single / driver baseline {res['single']['rate'] / res['raw']['rate']:5.2f}x   "
              f"repeat / single {res['repeat']['rate'] / res['single']['rate']:5.2f}x")
    s, p = results["SQLite"]["single"]["rate"], results["PostgreSQL"]["single"]["rate"]
    print(f"  PostgreSQL / SQLite, single-event transactions: {p / s:5.2f}x")
    peak = max(len(ledgered) / max(sq_wall, 1e-9), 1e-9)
    print(f"  single-event PostgreSQL rate / the lock-step day's ledgered event rate ({peak:.1f}/s wall): "
          f"{p / peak:,.0f}x headroom")


if __name__ == "__main__":
    main()
