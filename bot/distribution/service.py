"""DistributorService: confirmed fills and approved reports -> tiered, threaded posts.

Consumes ``positions`` (PositionEvent: entry, stop_moved, partial_exit, closed -
these only exist after a fill) and ``reports`` (ReportEvent, status "approved" only).
This module is the coordinator; the parts live beside it:

``schedule.py`` - scheduling and threading
    Trailing-stop moves are coalesced per trade first (``coalesce.py``: a minimum interval and
    a minimum move; breakeven, scale-outs and the close always post); a held-back move gets no
    delivery at all (the PositionEvent itself is unchanged). Every other event becomes one
    delivery per (channel, tier) of ``render.ROUTES``, due at
    ``event.ts + tiers[tier].delay_s`` (premium 0, basic 60, free 300 s; X and Reddit
    use the free delay). ``handle`` renders the text at once (``Schedule.add``) and,
    atomically with the consumer's ack, writes the delivery record and adds it to the sorted
    set ``keys.zset("deliveries")`` scored by due time (ms). ``next_due`` is the lowest
    score; ``on_timer`` sends everything due. In live mode a delivery that is already due
    (premium) is sent right after the commit, not at the next timer poll. A chain is
    (correlation id, channel, tier): its first delivered message is the root, later ones
    reply under it, and never overtake it.

``send.py`` - the lease loop and reconcile-then-post
    Exactly one post per idempotency key (correlation id, event id, channel, tier): claim
    (atomic, writes the in-flight marker before posting), look the payload up on the
    platform if an earlier attempt may have posted, post, record. ``on_timer`` may run
    concurrently (timer loop, post-commit sends, several processes): the claim decides. On a
    SimClock chains are sent one after another in a fixed order (byte-identical demo outbox);
    on the wall clock ``send_concurrency`` chains at a time.

``outcomes.py`` - delivered / retry / dead letter
    One MULTI/EXEC per outcome; rate limits and back-off; after ``max_attempts`` the dead
    letter stream ``keys.key("dead_letter", "deliveries")`` plus one AlertEvent WARNING.
    Every attempt emits a DeliveryEvent (delivered / retry / dead_letter) and an AuditEvent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.distribution.coalesce import StopPolicy, StopUpdates
from bot.distribution.outcomes import Outcomes
from bot.distribution.render import ROUTES, Renderer, validate_position
from bot.distribution.schedule import Schedule, idempotency_key, ms
from bot.distribution.send import Sender
from bot.publishers.base import Sink
from bot.publishers.factory import build_sinks
from core.bus.bus import Tx
from core.bus.events import Event, PositionEvent, ReportEvent
from core.positions.service import ADOPTED
from core.runtime import metrics
from core.runtime.service import Context, Service

__all__ = ["DistributorService", "idempotency_key"]

log = logging.getLogger("quanticity.distributor")


class DistributorService(Service):
    name = "distributor"
    streams = ("positions", "reports")
    event_types = frozenset({"position.update", "report"})

    def __init__(self, ctx: Context, sinks: Mapping[str, Sink] | None = None,
                 renderer: Renderer | None = None) -> None:
        super().__init__(ctx)
        self.dist = self.settings.distribution
        self.renderer = renderer or Renderer(free_result_pct=self.dist.free_result_pct,
                                             report_base_url=self.dist.report_base_url,
                                             report_where=self.dist.report_where,
                                             report_attach_max_bytes=self.dist.report_attach_max_bytes)
        self._sinks: dict[str, Sink] | None = dict(sinks) if sinks is not None else None
        self._kicks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.sched = Schedule(self.redis, self.keys, self.name)
        self.k_queue = self.sched.queue
        self.k_threads = self.sched.threads
        self.k_dead = self.sched.dead
        self.k_trades = self.keys.hash("delivery_trades")
        self.outcomes = Outcomes(self.bus, self.sched, self.dist, self.name, blocked_until={})
        self.sender = Sender(redis=self.redis, sched=self.sched, outcomes=self.outcomes, sinks=lambda: self.sinks,
                             dist=self.dist, clock=self.clock, actor=self.name)
        su = self.dist.stop_updates
        self.stops = StopUpdates(self.redis, self.keys, StopPolicy(su.min_interval_s, su.min_move_pct),
                                 self.dist.record_ttl_s, self.name)

    # ------------------------------------------------------------------ keys
    def delivery_key(self, idem: str) -> str:
        return self.sched.delivery_key(idem)

    def chain_key(self, chain: str) -> str:
        return self.sched.chain_key(chain)

    # ------------------------------------------------------------------ lifecycle
    @property
    def sinks(self) -> dict[str, Sink]:
        if self._sinks is None:
            self._sinks = build_sinks(self.settings, self.ctx.secrets, self.clock, self.ctx.out_dir)
        return self._sinks

    async def start(self) -> None:
        self._stopping = False
        _ = self.sinks
        log.info("distributor channels=%s sink=%s", sorted(self.sinks), self.dist.sink)

    async def stop(self) -> None:
        self._stopping = True
        if self._kicks:
            await asyncio.gather(*list(self._kicks), return_exceptions=True)
        seen: set[int] = set()
        for sink in (self._sinks or {}).values():
            if id(sink) in seen:
                continue
            seen.add(id(sink))
            try:
                await sink.close()
            except Exception:
                log.exception("closing sink %s failed", sink.channel)

    # ------------------------------------------------------------------ scheduling (handle)
    def _delay_ms(self, tier: str) -> int:
        return int(self.dist.tiers[tier].delay_s * 1000)  # type: ignore[index]

    async def handle(self, event: Event, tx: Tx) -> None:
        if isinstance(event, PositionEvent):
            await self._on_position(event, tx)
        elif isinstance(event, ReportEvent) and event.status == "approved":
            self._on_report(event, tx)

    async def _on_position(self, ev: PositionEvent, tx: Tx) -> None:
        why = validate_position(ev)
        if why is not None:
            metrics.REJECTED.labels(self.name, "bad_position").inc()
            log.warning("event=%s position=%s kind=%s not published: %s", ev.id, ev.position_id, ev.kind, why)
            return
        if ev.strategy == ADOPTED:
            # reconciliation found it in the broker account: subscribers never got a signal for it
            return
        stop_ctx = await self.stops.gate(ev, tx)  # coalesce.py: which stop moves are worth a post
        if stop_ctx is None:
            return
        if ev.kind == "entry":  # contracts bought so far: every entry fill adds (core.pnl.return_pct's size)
            raw = await self.redis.hget(self.k_trades, ev.position_id)
            entry_qty: int | None = (int(raw) if raw and str(raw).isdigit() else 0) + ev.qty
            tx.pipe.hincrby(self.k_trades, ev.position_id, ev.qty)
        else:
            raw = await self.redis.hget(self.k_trades, ev.position_id)
            entry_qty = int(raw) if raw and str(raw).isdigit() else None
            if ev.kind == "closed":
                tx.pipe.hdel(self.k_trades, ev.position_id)
        seq = f"{ev.ts:015d}:{ev.id}"
        specs = [self.sched.add(tx, self.sinks, correlation_id=ev.correlation_id, source_id=ev.id, seq=seq,
                                chain_base=ev.correlation_id, kind=ev.kind, channel=channel, tier=tier,
                                due_ms=ev.ts + self._delay_ms(tier),
                                render=lambda idem, c=channel, t=tier: self.renderer.position(ev, c, t, idem,
                                                                                              entry_qty, stop_ctx))
                 for channel, tier in ROUTES[ev.kind]]
        self._after_commit_send(tx, specs)

    def _on_report(self, ev: ReportEvent, tx: Tx) -> None:
        source_id = ev.report_id or ev.id  # the same report approved twice is posted once
        seq = f"{ev.ts:015d}:{ev.id}"
        specs = [self.sched.add(tx, self.sinks, correlation_id=ev.correlation_id, source_id=source_id, seq=seq,
                                chain_base=f"report:{source_id}", kind="report", channel=channel, tier=tier,
                                due_ms=ev.ts + self._delay_ms(tier),
                                render=lambda idem, c=channel, t=tier: self.renderer.report(ev, c, t, idem))
                 for channel, tier in ROUTES["report"]]
        self._after_commit_send(tx, specs)

    def _after_commit_send(self, tx: Tx, specs: list[dict[str, Any] | None]) -> None:
        """Live mode: deliveries already due (premium) are sent right after the commit, not at the
        next timer poll. (On a SimClock the lock-step runner calls on_timer at the same instant.)"""
        if self.clock.simulated:
            return
        now = self.clock.ms()
        due = [s for s in specs if s is not None and s["due_ts"] <= now]
        if due:
            tx.after_commit.append(lambda: self._kick(due))

    def _kick(self, specs: list[dict[str, Any]]) -> None:
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self._kick_run(specs))
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    async def _kick_run(self, specs: list[dict[str, Any]]) -> None:
        try:  # the claim is atomic: racing the timer loop for the same delivery is harmless
            now_ms = self.clock.ms()
            await asyncio.gather(*(self.sender.process(spec, now_ms) for spec in specs))
        except Exception:  # the timer loop retries whatever is left
            log.exception("immediate delivery failed")
        finally:
            self.sched.due.invalidate()

    # ------------------------------------------------------------------ timer
    async def next_due(self, now: datetime) -> datetime | None:
        head = await self.sched.due.get(self.sched.read_head, int(now.timestamp() * 1000))
        return None if head is None else datetime.fromtimestamp(head / 1000, tz=UTC)

    async def on_timer(self, now: datetime) -> None:
        """Send everything due at ``now`` (``send.py``). Safe to run concurrently (every delivery is
        claimed atomically); chains run one after another on a SimClock (byte-for-byte determinism) and
        ``send_concurrency`` at a time on the wall clock."""
        try:
            await self.sender.send_due(ms(now))
        finally:
            self.sched.due.invalidate()  # sent, rescheduled, woken or dropped: read the schedule again
