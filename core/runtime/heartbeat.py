"""Per-service heartbeats of the live runner's loops, kept in Redis for ``status`` and the
overseer's SERVICE_STALLED watch.

Layout: one hash per mode namespace, ``keys.hash("heartbeat")``; field = service name; value =
JSON ``{"pid", "errors", "loops": {loop: {...}}}`` where ``loop`` is ``start``, ``consume``,
``timer`` or ``wake`` and each loop entry holds:

- ``done_ms``: wall-clock ms of its last completed iteration (when it began, before the first);
- ``iterations``, ``errors``, ``last_error`` (type and text, 200 chars), ``last_error_ms``;
- ``budget_s``: how long an iteration may take before the loop counts as stalled;
- ``state``: ``running``; ``done`` (the start loop once the service started); ``stopped``
  (the runner stopped cleanly, e.g. on SIGTERM).

Decisions:

- Times are wall clock (``time.time``), not the service clock: a stall is a fact of real time,
  and a fast simulated clock (``--speed``) must not shrink the budgets.
- Loops record into memory; one flusher writes every changed service in ONE ``HSET`` at most
  every ``heartbeat_every_s`` (1 s): about 60 Redis commands a minute per process however many
  loops and events it runs. A blocked event loop writes nothing, so its ages grow: that is the
  stall signal.
- One field per service: with two processes running the same service the last writer wins.
- Only the live runner writes heartbeats. The lock-step SimRunner (``demo``) does not, so the
  detector sees none there and no demo decision depends on them.
- A service never seen has no field and is never judged; ``stopped`` and ``done`` loops are not
  judged either.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

from core.bus.keys import Keys

log = logging.getLogger("quanticity.heartbeat")

LOOPS = ("start", "consume", "timer", "wake")
# worst first: the state a service shows is the worst of its loops
STATE_RANK = {"stalled": 0, "errors": 1, "ok": 2, "done": 3, "stopped": 4}


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class LoopBeat:
    budget_s: float
    done_ms: int
    iterations: int = 0
    errors: int = 0
    last_error: str = ""
    last_error_ms: int = 0
    state: str = "running"


class Heartbeat:
    """The heartbeats of one runner's services: recorded in memory, flushed by :meth:`flush`."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, clock_ms: Callable[[], int] = wall_ms) -> None:
        self.redis = redis
        self.key = keys.hash("heartbeat")
        self.clock_ms = clock_ms
        self.pid = os.getpid()
        self.loops: dict[str, dict[str, LoopBeat]] = {}
        self._dirty: set[str] = set()
        self.flushes = 0  # HSET commands sent (the cost, measured by tests and reported)

    def begin(self, service: str, loop: str, budget_s: float) -> LoopBeat:
        """A loop starts (or restarts): its clock starts now."""
        beat = LoopBeat(budget_s=float(budget_s), done_ms=self.clock_ms())
        self.loops.setdefault(service, {})[loop] = beat
        self._dirty.add(service)
        return beat

    def done(self, service: str, loop: str) -> None:
        """One iteration of ``loop`` completed."""
        beat = self.loops[service][loop]
        beat.done_ms = self.clock_ms()
        beat.iterations += 1
        self._dirty.add(service)

    def error(self, service: str, loop: str, exc: BaseException) -> None:
        beat = self.loops[service][loop]
        beat.errors += 1
        beat.last_error = f"{type(exc).__name__}: {exc}"[:200]
        beat.last_error_ms = self.clock_ms()
        self._dirty.add(service)

    def finish(self, service: str, loop: str) -> None:
        """A one-shot loop (start) succeeded: no longer judged."""
        self.done(service, loop)
        self.loops[service][loop].state = "done"

    def stop_all(self) -> None:
        """A clean stop: every loop of every service shows ``stopped``."""
        for service, loops in self.loops.items():
            for beat in loops.values():
                beat.state = "stopped"
            self._dirty.add(service)

    def errors(self, service: str) -> int:
        return sum(b.errors for b in self.loops.get(service, {}).values())

    def record(self, service: str) -> dict[str, Any]:
        return {"pid": self.pid, "errors": self.errors(service),
                "loops": {name: asdict(b) for name, b in self.loops.get(service, {}).items()}}

    async def flush(self) -> int:
        """Write every service changed since the last flush in one HSET; returns services written.
        On a Redis error the changes stay pending for the next flush."""
        if not self._dirty:
            return 0
        dirty = sorted(self._dirty)
        mapping = {s: json.dumps(self.record(s), sort_keys=True, separators=(",", ":")) for s in dirty}
        self._dirty.clear()
        try:
            await self.redis.hset(self.key, mapping=mapping)  # type: ignore[arg-type]
        except BaseException:
            self._dirty.update(dirty)
            raise
        self.flushes += 1
        return len(dirty)


# ----------------------------------------------------------------------------- reading
async def read_heartbeats(redis: aioredis.Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """Every service's heartbeat record; a field that is not a JSON object is logged and skipped."""
    return heartbeats_from(await redis.hgetall(keys.hash("heartbeat")))


def heartbeats_from(raw: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    """:func:`read_heartbeats` of a ``heartbeat`` hash already read (e.g. in a caller's pipeline)."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else str(k)
        try:
            rec = json.loads(v)
        except (TypeError, ValueError):
            rec = None
        if not isinstance(rec, dict) or not isinstance(rec.get("loops"), dict):
            log.warning("heartbeat of %s is not a heartbeat record; ignored", name)
            continue
        out[name] = rec
    return out


def _num(x: Any, default: float = 0.0) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def loop_state(beat: dict[str, Any], now_ms: int) -> str:
    """``stopped`` / ``done`` as recorded; a running loop is ``stalled`` past its budget,
    ``errors`` when its latest news is an error (it is backing off), else ``ok``."""
    state = str(beat.get("state", "running"))
    if state in ("stopped", "done"):
        return state
    done_ms = _num(beat.get("done_ms"))
    if now_ms - done_ms > _num(beat.get("budget_s"), 30.0) * 1000:
        return "stalled"
    if beat.get("errors") and _num(beat.get("last_error_ms")) >= done_ms:
        return "errors"
    return "ok"


def loop_age_s(beat: dict[str, Any], now_ms: int) -> float:
    return max(0.0, (now_ms - _num(beat.get("done_ms"))) / 1000.0)


def service_view(rec: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """What ``status`` shows of one service: its worst loop state, the age of its oldest running
    loop, error count and last error, and each loop's state/age/budget."""
    loops = {name: b for name, b in rec.get("loops", {}).items() if isinstance(b, dict)}
    per: dict[str, dict[str, Any]] = {name: {"state": loop_state(b, now_ms), "age_s": round(loop_age_s(b, now_ms), 1),
                  "budget_s": _num(b.get("budget_s")), "iterations": int(_num(b.get("iterations"))),
                  "errors": int(_num(b.get("errors")))}
           for name, b in sorted(loops.items())}
    states: list[str] = [str(p["state"]) for p in per.values()] or ["stopped"]
    running: list[float] = [float(p["age_s"]) for p in per.values() if p["state"] not in ("done", "stopped")]
    last = max(loops.values(), key=lambda b: _num(b.get("last_error_ms")), default={})
    return {
        "state": min(states, key=lambda s: STATE_RANK.get(s, 0)),
        "age_s": max(running) if running else None,
        "errors": int(_num(rec.get("errors"))),
        "last_error": last.get("last_error") or None,
        "loops": per,
    }
