"""Which trailing-stop moves become posts (issue 11, "updates worth reading").

The position manager ratchets a trailing stop on every new high, so one good trade can move
its stop a dozen times in ten minutes. Every move stays a decision (a ``stop_moved``
PositionEvent in the journal, unchanged); this module only decides which of them are worth a
post to subscribers, per trade (position id), the same for every tier.

A stop move is posted when it is meaningful:

- ``first_stop``: no stop was shown for the trade before (none at entry), or the trade is not
  tracked (its entry was distributed before this state existed, or the record expired);
- ``breakeven``: the stop reaches the entry price or better for the first time;
- ``lowered``: the stop went DOWN (more risk; the exit plan never does this, but if it ever
  does, subscribers hear it);

otherwise only when BOTH hold:

- at least ``min_interval_s`` since the trade's last posted stop move (the entry does not
  count: the first move after the entry is only held to the size rule), and
- the stop rose by at least ``min_move_pct`` % of the entry price above the LAST POSTED stop
  (the stop subscribers last saw: the entry's, a posted move's or a scale-out's).

The rest is held back (``too_soon`` / ``too_small``): counted in
``quanticity_stop_moves_suppressed_total{reason}`` (once the handling commits), logged at
DEBUG, and added to the trade's ``held`` count. Scale-outs and the close are always posted (they are not stop moves) and both
carry the current stop.

Flush rule (decision): a held-back move is never posted later on its own. The trade's next post
- the next stop move that qualifies, a scale-out, or the close - shows the current stop, and a
premium stop update says how many moves were held back since the previous one. So what
subscribers see lags the real stop by less than ``min_move_pct`` of the entry, or by at most
``min_interval_s`` of moves plus however long the trade then goes without another post; a
stop hit is never hidden because the close is always posted.

State (per trade, Redis hash ``keys.key("delivery_stop", position_id)``, written on the
consumer's ``tx`` so it commits atomically with the handling; see ``service.py``): ``stop`` (last
posted stop, "" = none), ``ts`` (ms of the last posted stop move, absent = none yet), ``held``.
Written at entry, refreshed with a TTL on every write, deleted at the close.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from bot.distribution.update_view import StopContext
from core.bus.bus import Tx
from core.bus.events import PositionEvent
from core.bus.keys import Keys
from core.runtime import metrics

log = logging.getLogger("quanticity.distributor")

SUPPRESSED = Counter("quanticity_stop_moves_suppressed_total",
                     "Trailing-stop moves not posted to subscribers (coalesced)", ["reason"])

_EPS = 1e-9


@dataclass(frozen=True)
class StopPolicy:
    min_interval_s: float = 300.0
    min_move_pct: float = 10.0


@dataclass(frozen=True)
class StopState:
    """What subscribers of one trade have seen about its stop."""

    stop: float | None  # the last posted stop (None: none posted)
    ts: int | None  # ms of the last posted stop move (None: no stop move posted yet)
    held: int = 0  # stop moves held back since the last posted stop

    def to_redis(self) -> dict[str, str]:
        out = {"stop": "" if self.stop is None else repr(float(self.stop)), "held": str(self.held)}
        if self.ts is not None:
            out["ts"] = str(self.ts)
        return out

    @classmethod
    def from_redis(cls, raw: dict[str, Any]) -> StopState | None:
        """The stored state, or None when there is none or it is unreadable (treated as untracked)."""
        if not raw:
            return None
        try:
            s = str(raw.get("stop", ""))
            stop = float(s) if s else None
            ts = int(raw["ts"]) if raw.get("ts") not in (None, "") else None
            held = int(raw.get("held") or 0)
        except (TypeError, ValueError):
            return None
        if stop is not None and not (math.isfinite(stop) and stop >= 0):
            return None
        return cls(stop=stop, ts=ts, held=max(0, held))


@dataclass(frozen=True)
class StopDecision:
    post: bool
    why: str  # posted: first_stop | breakeven | lowered | moved | no_stop; held: too_soon | too_small
    context: StopContext  # what the post (if any) says about the previous stop


def decide(policy: StopPolicy, state: StopState | None, ev: PositionEvent) -> StopDecision:
    """Post this ``stop_moved`` event or hold it back (pure)."""
    if state is None:
        return StopDecision(True, "first_stop", StopContext(previous_stop=None, known=False, held=0))
    ctx = StopContext(previous_stop=state.stop, known=True, held=state.held)
    new, old, entry = ev.stop, state.stop, ev.entry_price
    if new is None:
        return StopDecision(True, "no_stop", ctx)
    if old is None:
        return StopDecision(True, "first_stop", ctx)
    if new < old - _EPS:
        return StopDecision(True, "lowered", ctx)
    if new >= entry - _EPS > old:
        return StopDecision(True, "breakeven", ctx)
    if state.ts is not None and ev.ts - state.ts < policy.min_interval_s * 1000:
        return StopDecision(False, "too_soon", ctx)
    if new - old < policy.min_move_pct / 100.0 * entry - _EPS:
        return StopDecision(False, "too_small", ctx)
    return StopDecision(True, "moved", ctx)


def after_post(state: StopState | None, ev: PositionEvent) -> StopState:
    """The state once ``ev`` (entry, posted stop move, scale-out) has been posted."""
    ts = ev.ts if ev.kind == "stop_moved" else (state.ts if state is not None else None)
    return StopState(stop=ev.stop, ts=ts, held=0)


def after_hold(state: StopState | None) -> StopState:
    """The state once a stop move was held back."""
    if state is None:  # decide() never holds an untracked trade; kept total for safety
        return StopState(stop=None, ts=None, held=1)
    return StopState(stop=state.stop, ts=state.ts, held=state.held + 1)


class StopUpdates:
    """The per-trade state in Redis around :func:`decide` (reads on ``redis``, writes on ``tx``)."""

    def __init__(self, redis: Any, keys: Keys, policy: StopPolicy, ttl_s: int, service: str) -> None:
        self.redis, self.keys, self.policy, self.ttl_s, self.service = redis, keys, policy, ttl_s, service

    def key(self, position_id: str) -> str:
        return self.keys.key("delivery_stop", position_id)

    async def _load(self, position_id: str) -> StopState | None:
        raw = await self.redis.hgetall(self.key(position_id))
        state = StopState.from_redis(raw)
        if raw and state is None:
            metrics.REJECTED.labels(self.service, "bad_stop_state").inc()
            log.warning("stop-update state of %s unreadable (%r): treated as untracked", position_id, raw)
        return state

    def _save(self, tx: Tx, position_id: str, state: StopState) -> None:
        key = self.key(position_id)
        tx.pipe.hset(key, mapping=state.to_redis())
        tx.pipe.expire(key, self.ttl_s)

    async def gate(self, ev: PositionEvent, tx: Tx) -> StopContext | None:
        """The previous-stop context for the post of ``ev``, or None: do not post it (held back)."""
        if ev.kind == "entry":
            self._save(tx, ev.position_id, after_post(None, ev))
            return StopContext(previous_stop=None, known=False)
        state = await self._load(ev.position_id)
        ctx = (StopContext(previous_stop=state.stop, known=True, held=state.held) if state is not None
               else StopContext(previous_stop=None, known=False))
        if ev.kind == "closed":
            tx.pipe.delete(self.key(ev.position_id))
            return ctx
        if ev.kind == "partial_exit":
            self._save(tx, ev.position_id, after_post(state, ev))
            return ctx
        d = decide(self.policy, state, ev)
        if d.post:
            self._save(tx, ev.position_id, after_post(state, ev))
            return d.context
        self._save(tx, ev.position_id, after_hold(state))
        why, last = d.why, state.stop if state is not None else None
        tx.after_commit.append(lambda: SUPPRESSED.labels(why).inc())
        log.debug("stop move of %s to %s not posted (%s); last posted stop %s", ev.position_id, ev.stop, why, last)
        return None
