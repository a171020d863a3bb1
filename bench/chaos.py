"""Chaos run: the demo pipeline as several processes, killed at random, with Redis and upstream faults,
then an audit of what Redis and the outbox say happened. Not part of CI.

    .venv/bin/python bench/chaos.py [--kills 60] [--seed 1] [--speed 100] [--date YYYY-MM-DD]
                                    [--from 09:25] [--to 16:15] [--symbols SPY,QQQ,IWM,SPX]
                                    [--outages 1] [--outage-s 5] [--json] [--keep]

What runs
    A private ``redis-server`` on a free loopback port (AOF, ``appendfsync always``, in a temporary
    folder: killing it loses no acknowledged write) and six ``main.py run --mode demo --speed N
    --services ...`` processes, one per service group (``GROUPS``: deploy/README.md's split, the
    Telegram bot alone). The market follows ``--symbols`` (default SPY, QQQ, IWM, SPX) every 15 s
    like ``config/demo.yaml``: all eleven symbols at 100x saturate a 2-core machine (measured: chains
    went 180 s stale in simulated time and the overseer rejected every signal STALE_DATA), and a
    scaled clock multiplies every wall second of processing by the speed. For the same reason the
    freshness limits (``risk.max_quote_age_s``, ``risk.max_data_age_s``, ``overseer.stale_feed_s``,
    ``signals.max_snapshot_age_s``) are multiplied by the speed, so that they keep their wall-clock
    meaning (measured without it: at 100x a quote 15 simulated seconds old is 0.15 s of real
    processing, and every signal was rejected STALE_DATA: 22 of 22)., sharing the demo timeline in that
    Redis (``core/clock/timeline.py``: seeded at ``--from`` of ``--date``, every process reads the same
    simulated instant, and every process stops by itself at ``--to``, passed as ``demo.end``). At the
    default speed 100 a whole session 09:25-16:15 takes about 4 minutes of wall time.

Faults
    kill -9: ``--kills`` times (default 60) at uniformly random wall instants, a random group is
    killed and restarted 0-1.5 s later (also while it is still starting). No kill in the last
    ``quiet`` seconds (5 % of the run, at least 10 s), so the run ends with every group up.
    Redis outage: ``--outages`` times (default 1) the private redis-server is killed (-9) in the
    middle of the run and restarted ``--outage-s`` seconds later on the same port and folder.
    Upstreams: the overseer's Anthropic calls and the Telegram admin bot are pointed at the local
    fakes (``tests/fakes/anthropic_api.py``, ``tests/fakes/telegram_api.py``), which get a fault
    queued every 0.5-2 s: Anthropic 429 (retry-after), 500, 529 (overloaded), slow (1-4 s), dropped
    connection; Telegram (any method) 429 (retry_after), 5xx, slow, dropped connection.
    Subscriber posts have no upstream here: the mode table (``core/config/modes.py``) allows only the
    local outbox in demo and this run keeps that safety line, so the Discord / X / Reddit sinks are
    not exercised (their faults are covered by ``bench/distribution.py`` and tests/distribution).
    How subscriber deliveries are audited: every post goes through the distributor's claim /
    in-flight marker / record, into ``<tmp>/out/outbox.jsonl``, one JSON line per message whose
    ``message_id`` is derived from the delivery's idempotency key (correlation id, event id, channel,
    tier); the audit recomputes, from the position and report events in Redis, every post that must
    exist and looks for its message id in the outbox (and counts message ids written twice).

Audit (``bench/_chaos_audit.py`` has the exact rules)
    duplicates: two entry orders for one approved signal, one fill id twice or fills above an
    order's size, a second entry / closed event for a position or more contracts in positions than
    bought, one message id twice in the outbox or recorded delivered twice.
    lost: an approved signal whose entry order never reached filled / cancelled / rejected; an order
    reported filled without fill events adding up to it; a fill without its position event of the
    same size; a post due before the final kill-free stretch (``end - quiet x speed`` simulated) that
    is neither in the outbox nor scheduled; a recorded delivery missing from the outbox.
    overdue: a post scheduled but not delivered although due before that instant.
    stuck: consumer-group entries still pending after every process stopped cleanly, entry orders
    still waiting past their deadline, approval cards pending past their expiry.
    Also printed: process exits nobody asked for (crashes), dead letters, how late posts went out.

Output: the counts and the first findings; with ``--json`` the last stdout line is one JSON object
with at least ``kills``, ``outages``, ``orders``, ``fills``, ``posts``, ``duplicates``, ``lost``,
``overdue``, ``stuck``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _chaos_audit import audit
from _chaos_redis import PrivateRedis
from _chaos_upstreams import Upstreams

from core.bus.keys import Keys
from core.clock.calendar import NY, NyseCalendar
from core.config.loader import load_settings

# deploy/README.md's recommended split, except that the Telegram bot runs alone: a fault during its
# start-up ends its process (see the report), which would otherwise take the approvals down with it.
GROUPS: dict[str, str] = {
    "core": "market,analytics,signals",
    "overseer": "overseer,anomaly",
    "approvals": "approvals",
    "telegram": "telegram",
    "execution": "execution,positions",
    "publish": "distributor,reports",
}
NAMESPACE = "q.demo"


@dataclass
class Group:
    name: str
    services: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    crashes: list[dict[str, Any]] = field(default_factory=list)


class Chaos:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.rng = random.Random(args.seed)
        self.redis = PrivateRedis(folder / "redis")
        self.upstreams = Upstreams(random.Random(args.seed + 1))
        self.out = folder / "out"
        self.groups = {n: Group(n, s, folder / "logs" / f"{n}.log") for n, s in GROUPS.items()}
        self.env: dict[str, str] = {}
        self.kills: Counter[str] = Counter()
        self.outages = 0
        self.ended = False

    # ------------------------------------------------------------------ processes
    def _spawn(self, g: Group) -> None:
        g.log.parent.mkdir(parents=True, exist_ok=True)
        with g.log.open("ab") as fh:
            fh.write(f"--- start {g.starts + 1} at {time.time():.3f}\n".encode())
            g.proc = subprocess.Popen(
                [sys.executable, "main.py", "run", "--mode", "demo", "--speed", repr(self.args.speed),
                 "--services", g.services], cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True)
        g.starts += 1

    def _last_line(self, g: Group) -> str:
        try:
            lines = [ln for ln in g.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    def _reap(self, now_wall: float) -> None:
        """Restart groups that exited although nobody killed them (a crash, or a refused start
        while Redis was away); after the session's end, let them go."""
        for g in self.groups.values():
            if g.proc is None or g.proc.poll() is None:
                continue
            rc = g.proc.returncode
            if rc == 0:  # a run exits 0 only at the session's end (or when asked to stop)
                self.ended = True
                g.proc = None
                continue
            if rc != -signal.SIGKILL:
                g.crashes.append({"rc": rc, "at_s": round(now_wall, 1), "last": self._last_line(g)})
            if self.ended:
                g.proc = None  # counted once; not restarted after the session's end
            else:
                self._spawn(g)

    def _kill(self, g: Group) -> None:
        if g.proc is not None and g.proc.poll() is None:
            g.proc.kill()
            g.proc.wait()
            self.kills[g.name] += 1

    # ------------------------------------------------------------------ the run
    def sim_now_ms(self) -> int | None:
        try:
            with self.redis.client() as r:
                d = r.hgetall(Keys(NAMESPACE).hash("sim_clock"))
        except Exception:  # noqa: BLE001 - Redis away (the outage): no reading
            return None
        if not d:
            return None
        return int(int(d["sim_anchor_ms"]) + (time.time() * 1000 - int(d["wall_anchor_ms"])) * float(d["speed"]))

    def run(self) -> dict[str, Any]:
        a = self.args
        cal = NyseCalendar()
        day = a.date or cal.most_recent_session(datetime.now(NY).date())
        start_at, end_at = (datetime.combine(day, t, tzinfo=NY) for t in (a.start, a.end))
        end_ms = int(end_at.timestamp() * 1000)
        duration = (end_at - start_at).total_seconds() / a.speed
        quiet = max(10.0, 0.05 * duration)
        self.redis.start()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("QUANT_") and k != "REDIS_URL"
                    and not k.startswith(("TELEGRAM_", "ANTHROPIC_", "DISCORD_", "X_", "REDDIT_"))}
        self.env.update({"REDIS_URL": self.redis.url, "QUANT_REDIS__EMBEDDED_FALLBACK": "false",
                         "QUANT_REDIS__KEY_PREFIX": NAMESPACE.split(".")[0], "QUANT_METRICS__ENABLED": "false",
                         "QUANT_DEMO__OUT_DIR": str(self.out), "QUANT_DEMO__END": f'"{a.end:%H:%M}"',
                         "QUANT_MARKET__SYMBOLS": f"[{a.symbols}]", "QUANT_MARKET__TICK_SECONDS": "15",
                         "QUANT_LOGGING__LEVEL": "WARNING", "QUANT_LOGGING__JSON_OUTPUT": "true",
                         "NO_PROXY": "127.0.0.1,localhost",
                         "no_proxy": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"})
        self.env.update(self.upstreams.start())
        self.env.update(scaled_limits(a.speed))
        asyncio.run(self._seed(day, start_at, a.end))
        kill_at = sorted(self.rng.uniform(2.0, max(2.5, duration - quiet)) for _ in range(a.kills))
        outage_at = sorted(duration * (0.3 + 0.4 * (i + 1) / (a.outages + 1)) for i in range(a.outages))
        self.upstreams.inject_forever()
        t0 = time.monotonic()
        for g in self.groups.values():
            self._spawn(g)
        if not a.json:
            print(f"chaos: {len(self.groups)} processes, session {day} {a.start:%H:%M}-{a.end:%H:%M} at "
                  f"{a.speed:g}x (~{duration:.0f} s wall), {a.kills} kills, {a.outages} Redis outage(s) of "
                  f"{a.outage_s:g} s, redis {self.redis.url}, folder {self.folder}", flush=True)
        hard_stop = duration + 120.0 + 60.0
        while True:
            now = time.monotonic() - t0
            sim = self.sim_now_ms()
            if sim is not None and sim >= end_ms and not self.ended:
                self.ended = True
            if kill_at and now >= kill_at[0] and not self.ended:
                kill_at.pop(0)
                victim = self.groups[self.rng.choice(sorted(self.groups))]
                self._kill(victim)
                time.sleep(self.rng.uniform(0.0, 1.5))
                self._spawn(victim)
            if outage_at and now >= outage_at[0] and not self.ended:
                outage_at.pop(0)
                self.redis.kill()
                time.sleep(a.outage_s)
                self.redis.start()
                self.outages += 1
            self._reap(now)
            alive = [g for g in self.groups.values() if g.proc is not None and g.proc.poll() is None]
            if self.ended and not alive:
                break
            if now > hard_stop:  # something did not stop at the session's end: stop it, say so
                for g in alive:
                    g.crashes.append({"rc": None, "at_s": round(now, 1), "last": "still running at the end"})
                    g.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                for g in alive:
                    try:
                        g.proc.wait(timeout=20)  # type: ignore[union-attr]
                    except subprocess.TimeoutExpired:
                        g.proc.kill()  # type: ignore[union-attr]
                break
            time.sleep(0.1)
        wall = time.monotonic() - t0
        self.upstreams.stop()
        settings = load_settings()
        delays = {t: float(v.delay_s) for t, v in settings.distribution.tiers.items()}
        with self.redis.client() as r:
            result = audit(r, Keys(NAMESPACE), self.out / "outbox.jsonl", end_ms=end_ms,
                           grace_ms=int(quiet * a.speed * 1000), delays=delays)
        self.redis.stop()
        crashes = {g.name: g.crashes for g in self.groups.values() if g.crashes}
        return {"kills": sum(self.kills.values()), "outages": self.outages, **{k: result[k] for k in (
            "orders", "fills", "posts", "duplicates", "lost", "overdue", "stuck")},
            "approved": result["approved"], "positions": result["positions"],
            "position_events": result["position_events"], "posts_expected": result["posts_expected"],
            "posts_due_after_end": result["posts_due_after_end"], "unfinished_at_end": result["unfinished_at_end"],
            "dead_letters": result["dead_letters"],
            "delivery_lateness_s": result["delivery_lateness_s"],
            "last_event_s_before_end": result["last_event_s_before_end"], "kills_by_group": dict(self.kills),
            "starts_by_group": {g.name: g.starts for g in self.groups.values()},
            "crashes": sum(len(c) for c in crashes.values()), "crash_detail": crashes,
            "upstream_faults": self.upstreams.summary(), "session": f"{day} {a.start:%H:%M}-{a.end:%H:%M}",
            "speed": a.speed, "wall_s": round(wall, 1), "audited_before_s_sim": round(quiet * a.speed),
            "seed": a.seed, "findings": result["findings"]}

    async def _seed(self, day: date, start_at: datetime, end: dtime) -> None:
        import redis.asyncio as aioredis

        from core.clock.timeline import seed_timeline

        r = aioredis.Redis.from_url(self.redis.url, decode_responses=True)
        try:
            await seed_timeline(r, Keys(NAMESPACE), day, start_at, self.args.speed, end)
        finally:
            await r.aclose()

    def cleanup(self) -> None:
        for g in self.groups.values():
            if g.proc is not None and g.proc.poll() is None:
                g.proc.kill()
                g.proc.wait()
        self.redis.stop()


def scaled_limits(speed: float) -> dict[str, str]:
    """Freshness limits times the speed (environment overrides): the same wall-clock meaning."""
    s = load_settings()
    feeds = ", ".join(f"{k}: {v * speed:g}" for k, v in s.overseer.stale_feed_s.items())
    return {"QUANT_RISK__MAX_QUOTE_AGE_S": f"{s.risk.max_quote_age_s * speed:g}",
            "QUANT_RISK__MAX_DATA_AGE_S": f"{s.risk.max_data_age_s * speed:g}",
            "QUANT_OVERSEER__STALE_FEED_S": f"{{{feeds}}}",
            "QUANT_SIGNALS__MAX_SNAPSHOT_AGE_S": f"{s.signals.max_snapshot_age_s * speed:g}"}


def _hhmm(text: str) -> dtime:
    try:
        return dtime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HH:MM") from None


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/chaos.py", description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=60, help="kill -9 count (default 60)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the faults (default 1)")
    p.add_argument("--speed", type=float, default=100.0, help="simulated-to-wall speed (default 100)")
    p.add_argument("--date", type=date.fromisoformat, help="session day (default: the most recent session)")
    p.add_argument("--from", dest="start", type=_hhmm, default=dtime(9, 25), help="New York (default 09:25)")
    p.add_argument("--to", dest="end", type=_hhmm, default=dtime(16, 15), help="New York (default 16:15)")
    p.add_argument("--symbols", default="SPY,QQQ,IWM,SPX", help="market symbols (default SPY,QQQ,IWM,SPX)")
    p.add_argument("--outages", type=int, default=1, help="Redis outages (default 1)")
    p.add_argument("--outage-s", type=float, default=5.0, help="wall seconds per outage (default 5)")
    p.add_argument("--json", action="store_true", help="the last stdout line is one JSON object")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, AOF, outbox)")
    args = p.parse_args(argv)
    if args.speed < 1 or args.kills < 0 or args.outages < 0 or args.end <= args.start:
        p.error("--speed >= 1, --kills >= 0, --outages >= 0 and --from before --to")
    return args


def report(res: dict[str, Any]) -> None:
    print(f"session {res['session']} at {res['speed']:g}x in {res['wall_s']} s wall; kills {res['kills']} "
          f"{res['kills_by_group']}, Redis outages {res['outages']}, crashes {res['crashes']}")
    print(f"orders {res['orders']}  fills {res['fills']}  positions {res['positions']}  posts {res['posts']} "
          f"(expected {res['posts_expected']}, due after the audited span {res['posts_due_after_end']})")
    print(f"duplicates {res['duplicates']}  lost {res['lost']}  overdue {res['overdue']}  stuck {res['stuck']}  "
          f"dead letters {res['dead_letters']}  post lateness {res['delivery_lateness_s']}")
    print(f"upstream faults {res['upstream_faults']}")
    print(f"last event per stream, simulated seconds before the end: {res['last_event_s_before_end']}")
    for kind, items in res["findings"].items():
        for item in items[:10]:
            print(f"  {kind}: {json.dumps(item, sort_keys=True)}")
    for name, crashes in res["crash_detail"].items():
        for c in crashes[:5]:
            print(f"  crash {name}: {json.dumps(c)}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    folder = Path(tempfile.mkdtemp(prefix="quanticity-chaos-"))
    chaos = Chaos(args, folder)
    try:
        res = chaos.run()
    finally:
        chaos.cleanup()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    report(res)
    if args.json:
        print(json.dumps(res, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
