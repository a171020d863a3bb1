"""The demo day: every service in lock-step on a SimClock over one NYSE session.

Writes to ``out``: ``journal.jsonl`` (every bus event in creation order),
``outbox.jsonl`` (written by the outbox sink), ``reports/`` (by the report
service) and whatever the ``finalizers`` add (``outbox.html``). Returns the
summary dict printed by ``main.py demo --json``.

Determinism: ids come from a seeded factory and time from the SimClock, the
Redis key prefix is private to the run and wiped first, so the same seed and
date give the same journal and outbox byte for byte (``wall_seconds`` aside).
The prefix is wiped again when the run ends, however it ends (Ctrl-C and SIGTERM
cancel the run; its ``finally`` deletes every key and the lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from core.bus.bus import Bus
from core.bus.connection import RedisHandle, connect
from core.bus.events import ALL_STREAMS, NY, Event, decode
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.calendar import NyseCalendar
from core.clock.clock import SimClock
from core.config.model import Settings
from core.config.secrets import Secrets
from core.format.numbers import plural, signed_money
from core.pnl import closed_trades, day_realized
from core.runtime.demo_figures import closing_lines, open_positions, outputs, rejections
from core.runtime.demo_progress import Progress
from core.runtime.service import Context, Service
from core.runtime.sim_runner import SimRunner

ServiceBuilder = Callable[[Context], Sequence[Service]]
Finalizer = Callable[[Path], None]


async def _wipe(handle: RedisHandle, keys: Keys) -> None:
    batch: list[str] = []
    async for key in handle.client.scan_iter(match=keys.pattern(), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            await handle.client.delete(*batch)
            batch.clear()
    if batch:
        await handle.client.delete(*batch)


async def _claim_prefix(handle: RedisHandle, base: str) -> tuple[Keys, str]:
    """The run's key prefix: ``base`` (so key names inside events are the same run to run),
    unless another demo holds it right now; then a private one (that run is still correct,
    only its key names differ). The claim is a lock key that expires on its own."""
    lock = f"{base}.lock"
    if await handle.client.set(lock, str(os.getpid()), nx=True, ex=3600):
        return Keys(base), lock
    private = f"{base}.{os.getpid()}"
    await handle.client.set(f"{private}.lock", str(os.getpid()), ex=3600)
    return Keys(private), f"{private}.lock"


async def read_journal(bus: Bus) -> list[Event]:
    events: list[Event] = []
    for stream in ALL_STREAMS:
        key = bus.keys.stream(stream)
        last = "-"
        while True:
            rows = await bus.redis.xrange(key, min=last, max="+", count=5000)
            if last != "-" and rows:
                rows = rows[1:]
            if not rows:
                break
            for _entry, fields in rows:
                events.append(decode(fields))
            last = rows[-1][0]
    events.sort(key=lambda e: e.id)
    return events


def journal_line(ev: Event) -> str:
    body = ev.model_dump(mode="json")
    body["ts"] = ev.iso_ny()
    ordered = {"type": body.pop("type"), "ts": body.pop("ts"), "correlation_id": body.pop("correlation_id"),
               "id": body.pop("id"), **body}
    return json.dumps(ordered, sort_keys=False, separators=(",", ":"))


def summarize(events: list[Event], outbox_path: Path, reports: list[str], sim_seconds: float,
              wall_seconds: float, session_day: date) -> dict[str, Any]:
    types = Counter(e.type for e in events)
    verdicts = [e for e in events if e.type == "review.verdict"]
    approvals = [e for e in events if e.type == "approval.decision"]
    positions = [e for e in events if e.type == "position.update"]
    orders = {e.order_id for e in events if e.type in ("order.update", "order.fill")}
    closed = [p for p in positions if p.kind == "closed"]
    messages: dict[str, Any] = {"discord": {"premium": 0, "basic": 0, "free": 0}, "x": 0, "reddit": 0}
    replies = 0
    if outbox_path.exists():
        for line in outbox_path.read_text(encoding="utf-8").splitlines():
            m = json.loads(line)
            if m["channel"] == "discord":
                messages["discord"][m["tier"]] = messages["discord"].get(m["tier"], 0) + 1
            else:
                messages[m["channel"]] = messages.get(m["channel"], 0) + 1
            replies += 1 if m.get("reply_to") else 0
    return {
        "session_date": session_day.isoformat(),
        "signals": types["signal.new"],
        "approved": sum(1 for a in approvals if a.decision == "approved"),
        "rejected": sum(1 for v in verdicts if v.decision == "reject")
        + sum(1 for a in approvals if a.decision == "rejected"),
        "orders": len(orders),
        "fills": types["order.fill"],
        "positions_opened": sum(1 for p in positions if p.kind == "entry"),
        "positions_closed": len(closed),
        "realized_pnl": day_realized(closed_trades(positions), session_day),  # core.pnl: the one rule
        "messages": messages,
        "thread_replies": replies,
        "reports": reports,
        "sim_seconds": round(sim_seconds, 1),
        "wall_seconds": round(wall_seconds, 2),
        "rejections": rejections(events),
        "open_positions": open_positions(events),
    }


def default_session_day(cal: NyseCalendar, now: datetime) -> date:
    """The most recent COMPLETED session at ``now``: today's only once it has closed in New York,
    so ``demo`` without ``--date`` gives the same day (and the same output) all day long."""
    ny = now.astimezone(NY)
    day = cal.most_recent_session(ny.date())
    if day == ny.date() and ny < cal.session(day).close:
        day = cal.most_recent_session(day - timedelta(days=1))
    return day


@contextlib.contextmanager
def _sigterm_cancels() -> Iterator[None]:
    """SIGTERM cancels the running demo like Ctrl-C does, so its ``finally`` wipes its keys."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    installed = False
    if task is not None:
        try:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            installed = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            installed = False
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)


async def run_demo(settings: Settings, secrets: Secrets, day: date, seed: int, out: Path,
                   build: ServiceBuilder, finalizers: Sequence[Finalizer] = (), progress: bool = True,
                   redis_url: str | None = None, extras: dict[str, Any] | None = None) -> dict[str, Any]:
    cal = NyseCalendar()
    session = cal.session(day)
    start = session.at(settings.demo.start)
    end = session.at(settings.demo.end)
    wall0 = time.perf_counter()

    if out.exists():
        for name in ("journal.jsonl", "outbox.jsonl", "outbox.html", "ledger.sqlite", "ledger.sqlite-wal",
                     "ledger.sqlite-shm"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "reports", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    handle = await connect(redis_url or settings.redis.url, fallback=settings.redis.embedded_fallback,
                           timeout=settings.redis.connect_timeout_s)
    if progress:
        print(f"redis: {handle.description}", file=sys.stderr)
    keys, lock = await _claim_prefix(handle, f"{settings.redis.key_prefix}.demo.{seed}.{day:%Y%m%d}")
    try:
        with _sigterm_cancels():
            return await _day(settings, secrets, day, seed, out, build, finalizers, progress, extras,
                              handle, keys, (start, end, wall0))
    finally:  # Ctrl-C, SIGTERM and errors included: no key of the run stays behind
        await _wipe(handle, keys)
        await handle.client.delete(lock)
        await handle.close()


async def _day(settings: Settings, secrets: Secrets, day: date, seed: int, out: Path, build: ServiceBuilder,
               finalizers: Sequence[Finalizer], progress: bool, extras: dict[str, Any] | None,
               handle: RedisHandle, keys: Keys, span: tuple[datetime, datetime, float]) -> dict[str, Any]:
    start, end, wall0 = span
    cal = NyseCalendar()
    session = cal.session(day)
    await _wipe(handle, keys)
    clock = SimClock(start)
    bus = Bus(handle.client, keys, clock, IdFactory(seed), maxlen=settings.redis.stream_maxlen, source="demo")
    ctx = Context(settings=settings, secrets=secrets, bus=bus, clock=clock, calendar=cal,
                  out_dir=str(out), extras={"seed": seed, "session_day": day, **(extras or {})})
    services = list(build(ctx))
    prog = Progress(bus, start, end, sys.stderr, enabled=progress)
    if progress:
        print(f"demo: session {day} ({'early close ' if session.early_close else ''}"
              f"{session.open:%H:%M}-{session.close:%H:%M} New York), seed {seed}, "
              f"{len(services)} services: {', '.join(s.name for s in services)}", file=sys.stderr)
    runner = SimRunner(services, clock)
    await runner.run(start, end, on_step=prog.step)
    await prog.finish(end)
    events = await read_journal(bus)
    with (out / "journal.jsonl").open("w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(journal_line(ev) + "\n")
    for fin in finalizers:
        fin(out)
    reports = sorted(str(p) for p in (out / "reports").glob("*.html")) if (out / "reports").exists() else []
    summary = summarize(events, out / "outbox.jsonl", reports, (end - start).total_seconds(),
                        time.perf_counter() - wall0, day)
    ledger = next((s for s in services if s.name == "ledger"), None)
    if ledger is not None:
        store = ledger.store  # type: ignore[attr-defined]
        summary["ledger"] = {"database": store.describe(), "events_written": store.written}
    summary["outputs"] = outputs(out, summary["ledger"]["database"] if ledger is not None else None)
    if progress:
        sent = sum(summary['messages']['discord'].values()) + summary['messages']['x'] + summary['messages']['reddit']
        print(f"demo: {plural(summary['signals'], 'signal')}, {plural(summary['fills'], 'fill')}, "
              f"{summary['positions_closed']} closed, realized {signed_money(summary['realized_pnl'])}, "
              f"{plural(sent, 'message')}, {plural(len(reports), 'report')} in {summary['wall_seconds']:.1f}s -> {out}/",
              file=sys.stderr)
        if ledger is not None:
            print(f"ledger: {summary['ledger']['events_written']} events -> {summary['ledger']['database']}",
                  file=sys.stderr)
        print("\n".join(closing_lines(summary)), file=sys.stderr)
    return summary
