"""The demo timeline in Redis: where ``run --mode demo --speed N`` resumes after a restart.

One hash ``keys.hash("sim_clock")`` under the mode's namespace (``q.demo``) holds the anchor
every process of the run shares (``epoch``, ``day``, ``sim_anchor_ms``, ``wall_anchor_ms``,
``speed``, ``end_ms``) and the last simulated instant any process saw (``last_sim_ms``); each
running process beats every second into ``keys.hash("sim_clock_members")`` (member -> wall ms)
and writes ``last_sim_ms``. On start (:func:`open_timeline`, atomic under WATCH):

- nothing stored: a fresh session, the most recent NYSE session at 09:25 New York;
- another process beat within ``stale_s`` wall seconds (the run is going on): join its anchor, so
  all processes read the same instant (a different ``--speed`` is refused: one line, exit 2);
- nobody is running: resume at ``last_sim_ms`` (a clean stop writes it on the way out; after a
  kill -9 at most one beat, about one wall second, is played again);
- the stored instant is at or past the session's end (``demo.end``, 16:15 New York by
  default): roll to the next NYSE session at 09:25.

At the session's end a running ``run`` stops by itself (exit 0), telling which session the next
start plays. Decision: stop rather than run through the night: there is nothing to simulate
between the close and the next pre-market, and the next start begins the next session.
"""

from __future__ import annotations

import time as _time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from typing import Any

from redis.exceptions import WatchError

from core.bus.keys import Keys
from core.clock.calendar import NY, NyseCalendar
from core.clock.scaled_clock import ScaledClock, check_speed

RUN_START = dtime(9, 25)   # where a demo session starts: shortly before the open
STALE_S = 15.0             # a member silent this long (wall seconds) is gone (killed)
BEAT_S = 1.0               # wall seconds between beats


class ClockConflict(ValueError):
    """The timeline runs at another speed in a live process (one line, exit 2)."""


@dataclass(frozen=True, slots=True)
class Start:
    """Where this process's clock starts, and why (``how``: fresh, joined, resumed, next session)."""

    how: str
    epoch: str
    day: date
    sim_anchor_ms: int
    wall_anchor_ms: int
    speed: float
    end_ms: int

    def fields(self) -> dict[str, str]:
        return {"epoch": self.epoch, "day": self.day.isoformat(), "sim_anchor_ms": str(self.sim_anchor_ms),
                "wall_anchor_ms": str(self.wall_anchor_ms), "speed": repr(self.speed),
                "end_ms": str(self.end_ms)}

    def clock(self) -> ScaledClock:
        return ScaledClock(datetime.fromtimestamp(self.sim_anchor_ms / 1000, tz=NY), self.speed,
                           wall_anchor=self.wall_anchor_ms / 1000)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _at(day: date, t: dtime) -> int:
    return _ms(datetime.combine(day, t, tzinfo=NY))


def plan(stored: Mapping[str, str], members: Mapping[str, str], *, wall_ms: int, speed: float,
         calendar: NyseCalendar, end: dtime, start: dtime = RUN_START, stale_s: float = STALE_S) -> Start:
    """Decide where a starting process's clock begins (pure: the caller reads and writes Redis)."""
    speed = check_speed(speed)
    if end <= start:
        raise ValueError(f"demo.end {end} must be after the run's start {start}")

    def session_start(day: date, how: str) -> Start:
        return Start(how, uuid.uuid4().hex[:12], day, _at(day, start), wall_ms, speed, _at(day, end))

    if not stored.get("epoch"):
        return session_start(calendar.most_recent_session(datetime.fromtimestamp(wall_ms / 1000, NY).date()),
                             "fresh")
    day = date.fromisoformat(stored["day"])
    end_ms = _at(day, end)
    live = any(wall_ms - int(v) <= stale_s * 1000 for v in members.values())
    if live:
        old_speed = float(stored["speed"])
        if old_speed != speed:
            raise ClockConflict(f"--speed {speed:g}: the demo clock is already running at speed {old_speed:g} "
                                f"in another process; start with --speed {old_speed:g} or stop it first")
        anchor, wall_anchor = int(stored["sim_anchor_ms"]), int(stored["wall_anchor_ms"])
        current = anchor + (wall_ms - wall_anchor) * old_speed
        if current < end_ms:
            return Start("joined", stored["epoch"], day, anchor, wall_anchor, speed, end_ms)
    else:
        last = int(stored.get("last_sim_ms") or stored["sim_anchor_ms"])
        if last < end_ms:
            return Start("resumed", uuid.uuid4().hex[:12], day, last, wall_ms, speed, end_ms)
    return session_start(calendar.next_session(day), "next session")


# Beat: record this member alive and the latest instant; if the timeline was re-anchored (another
# epoch), return its fields so the caller follows it; if it is gone (wiped), write ours back.
# KEYS: 1 timeline hash, 2 members hash; ARGV: 1 epoch, 2 member, 3 wall ms, 4 sim ms, 5.. our fields
BEAT_LUA = """
local ep = redis.call('HGET', KEYS[1], 'epoch')
if not ep then
  for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  ep = ARGV[1]
end
if ep ~= ARGV[1] then return redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[1], 'last_sim_ms') or '0')
if tonumber(ARGV[4]) > last then
  redis.call('HSET', KEYS[1], 'last_sim_ms', ARGV[4], 'last_wall_ms', ARGV[3])
end
return false
"""


class Timeline:
    """One process's membership in the shared demo timeline."""

    def __init__(self, redis: Any, keys: Keys, start: Start, clock: ScaledClock) -> None:
        self.redis = redis
        self.key = keys.hash("sim_clock")
        self.members_key = keys.hash("sim_clock_members")
        self.start = start
        self.clock = clock
        self.member = uuid.uuid4().hex[:12]
        self._superseded = False
        self._script = redis.register_script(BEAT_LUA)

    @property
    def end_ms(self) -> int:
        return self.start.end_ms

    @property
    def ended(self) -> bool:
        """The session is over: the clock reached its end, or the timeline moved to the next session."""
        return self._superseded or self.clock.ms() >= self.end_ms

    async def beat(self, wall_ms: int | None = None) -> bool:
        """Write this member's beat and the clock's instant; follow a timeline re-anchored in the same
        session (a process that stopped and resumed); a timeline rolled to another session ends this
        one (:attr:`ended`). Returns True when the epoch had changed."""
        wall_ms = int(_time.time() * 1000) if wall_ms is None else wall_ms
        flat: list[str] = []
        for k, v in self.start.fields().items():
            flat += [k, v]
        other = await self._script(keys=[self.key, self.members_key],
                                   args=[self.start.epoch, self.member, wall_ms, self.clock.ms(), *flat])
        if not other:
            return False
        d = {_s(other[i]): _s(other[i + 1]) for i in range(0, len(other), 2)}
        if d.get("day") != self.start.day.isoformat():
            # another process rolled on to the next session: this process's session is over
            self._superseded = True
            return True
        self.clock.reanchor(int(d["sim_anchor_ms"]), int(d["wall_anchor_ms"]) / 1000, float(d["speed"]))
        self.start = Start("followed", d["epoch"], date.fromisoformat(d["day"]), int(d["sim_anchor_ms"]),
                           int(d["wall_anchor_ms"]), float(d["speed"]), int(d["end_ms"]))
        return True

    async def leave(self) -> None:
        """Clean stop: record the last instant and drop this member (a restart resumes right here)."""
        await self.beat()
        await self.redis.hdel(self.members_key, self.member)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def open_timeline(redis: Any, keys: Keys, *, speed: float, calendar: NyseCalendar, end: dtime,
                        start: dtime = RUN_START, stale_s: float = STALE_S,
                        wall_ms: int | None = None) -> Timeline:
    """Read, decide (:func:`plan`) and write the timeline atomically; the first beat is written too."""
    key, members_key = keys.hash("sim_clock"), keys.hash("sim_clock_members")
    while True:
        now_ms = int(_time.time() * 1000) if wall_ms is None else wall_ms
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key, members_key)
                stored = {_s(k): _s(v) for k, v in (await pipe.hgetall(key)).items()}
                members = {_s(k): _s(v) for k, v in (await pipe.hgetall(members_key)).items()}
                st = plan(stored, members, wall_ms=now_ms, speed=speed, calendar=calendar, end=end,
                          start=start, stale_s=stale_s)
                pipe.multi()
                if st.how != "joined":
                    pipe.delete(key, members_key)
                    pipe.hset(key, mapping={**st.fields(), "last_sim_ms": str(st.sim_anchor_ms),
                                            "last_wall_ms": str(now_ms)})
                else:
                    stale = [m for m, v in members.items() if now_ms - int(v) > stale_s * 1000]
                    if stale:
                        pipe.hdel(members_key, *stale)
                await pipe.execute()
            except WatchError:
                continue
        timeline = Timeline(redis, keys, st, st.clock())
        await timeline.beat(now_ms if wall_ms is not None else None)
        return timeline


async def seed_timeline(redis: Any, keys: Keys, day: date, at: datetime, speed: float, end: dtime) -> None:
    """Store a stopped timeline at ``at`` (nobody running): the next start resumes there.
    Used by the chaos harness and tests to play a chosen window of a session."""
    now_ms = int(_time.time() * 1000)
    st = Start("seeded", uuid.uuid4().hex[:12], day, _ms(at), now_ms, check_speed(speed), _at(day, end))
    await redis.delete(keys.hash("sim_clock"), keys.hash("sim_clock_members"))
    await redis.hset(keys.hash("sim_clock"), mapping={**st.fields(), "last_sim_ms": str(st.sim_anchor_ms),
                                                      "last_wall_ms": str(now_ms)})
