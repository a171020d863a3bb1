"""AnomalyService: the overseer's watch over feeds, broker, execution, account and strategies.

Service name ``anomaly``, streams ``("orders", "positions", "deliveries")``, timer every
``overseer.anomaly_interval_s`` seconds of the service clock.

Events (``handle``; state written on the handler's tx):
  FillEvent (entry)           slippage % of mid -> list ``keys.key("anomaly", "slippage")``,
                              average of the last ``overseer.slippage_window`` -> SLIPPAGE_SPIKE
  PositionEvent (closed)      realized P&L -> list ``keys.key("anomaly_trades", strategy)`` (last
                              ``degradation_window``); two flags -> hash ``strategies[name] =
                              "disabled"`` + WARNING STRATEGY_DISABLED (the window then restarts).
                              The win-rate bar: the strategy's historical win rate from the trade
                              ledger before today (``_baseline``), else the configured baseline
  DeliveryEvent               dead_letter -> WARNING DELIVERY_DEAD_LETTER; 3+ retries in a row ->
                              INFO; the next "delivered" on that channel clears both

Timer (``on_timer``; one tx per tick):
  FEED_STALE                  (session only) quote snapshots ``quote_ts`` (ms), chain snapshots
                              ``asof`` vs ``overseer.stale_feed_s`` {quotes, chains}; last seen
                              source times kept in hash ``anomaly_feeds`` so an expired snapshot
                              key still counts as stale
  BROKER_DISCONNECTED         (session only) hash ``broker`` field ``connected == "0"``
  PRICE_DIVERGENCE            (session only) ``snapshot("vendor_quote", s)`` vs ``snapshot("quote", s)``
  DRAWDOWN, DAILY_LOSS        ``core.state.account.read_account``; ``core.risk.daily_loss_level``
  DEAD_LETTER                 new entries in any bus dead-letter stream (cleared after 10 quiet minutes)
  SERVICE_STALLED             hash ``heartbeat`` (``core.runtime.heartbeat``, written by the live runner
                              only): a running loop past its budget, wall clock; services never seen
                              and loops stopped cleanly are not judged. The demo (SimRunner) writes no
                              heartbeats, so it never raises this
  STRATEGY_DISABLED cleared   once an admin re-enables the strategy

Timer-evaluated alerts clear after two consecutive clean evaluations (no flapping storms).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

from core.bus.bus import Tx
from core.bus.events import AuditEvent, DeliveryEvent, Event, FillEvent, PositionEvent
from core.clock.calendar import NY
from core.ledger.queries import Scorecard, closed_trades, scorecards
from core.ledger.reader import LedgerReader
from core.risk import RiskState, daily_loss_level
from core.runtime.heartbeat import heartbeats_from, wall_ms
from core.runtime.service import Context, Service
from core.state.account import account_from
from overseer._util import load_json_obj, parse_ts_ms, risk_limits, snapshot_asof_ms, text
from overseer.anomaly import detectors as d
from overseer.anomaly.alerts import AlertBook
from overseer.anomaly.reads import CheckReads, read_for_check
from overseer.narratives.narrator import Narrator

TIMER_CLEAR_AFTER = 2
DLQ_QUIET_S = 600
BASELINE_RETRY_S = 300  # ledger unreadable: ask again after this long (service clock), not per trade


def _floats(values: Any) -> list[float]:
    """Numbers of a Redis list we wrote; anything unparsable is skipped, never an exception."""
    out = []
    for v in values or []:
        try:
            f = float(text(v))
        except ValueError:
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _int(value: Any) -> int:
    try:
        return int(text(value) or 0)
    except ValueError:
        return 0


class AnomalyService(Service):
    name = "anomaly"
    streams = ("orders", "positions", "deliveries")
    event_types = frozenset({"order.fill", "position.update", "delivery"})
    interval_s: float | None = 30.0

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = self.settings.overseer
        self.interval_s = float(self.cfg.anomaly_interval_s)
        self.narrator = Narrator.from_context(ctx)
        self.book = AlertBook(self.bus, self.narrator)
        self.limits = risk_limits(self.settings)
        self.wall_ms = wall_ms  # heartbeats are wall-clock times, whatever the service clock
        self.ledger = LedgerReader.for_context(ctx)  # historical strategy win rates (the baseline)
        self._hist_day: date | None = None
        self._hist: dict[str, Scorecard] | None = None
        self._hist_retry_ms = 0

    async def stop(self) -> None:
        await self.narrator.aclose()
        self.ledger.close()

    # ================================================================== events
    async def handle(self, event: Event, tx: Tx) -> None:
        if isinstance(event, FillEvent):
            await self._on_fill(event, tx)
        elif isinstance(event, PositionEvent):
            await self._on_position(event, tx)
        elif isinstance(event, DeliveryEvent):
            await self._on_delivery(event, tx)

    async def _on_fill(self, ev: FillEvent, tx: Tx) -> None:
        if ev.purpose != "entry":
            return
        pct = d.slippage_pct(ev.slippage, ev.mid_at_order)
        if pct is None:
            return
        key = self.keys.key("anomaly", "slippage")
        window = self.cfg.slippage_window
        older = _floats(await self.redis.lrange(key, 0, window - 2)) if window > 1 else []
        recent = [pct, *older]
        tx.pipe.lpush(key, repr(round(pct, 6)))
        tx.pipe.ltrim(key, 0, window - 1)
        finding = d.slippage_spike(recent, self.cfg.slippage_spike_pct)
        await self.book.apply(tx, [finding] if finding else [], lambda c: c.get("code") == "SLIPPAGE_SPIKE")

    def _configured_baseline(self, strategy: str) -> float:
        return float(self.cfg.strategy_baseline_win_rate_pct.get(strategy, self.cfg.baseline_win_rate_pct))

    async def _baseline(self, strategy: str, day: date) -> float:
        """Expected win rate of ``strategy`` on New York ``day``: its historical win rate in the
        ledger (wins / (wins + losses), ``core.ledger.queries``) over the trades it closed in the
        ``baseline_lookback_days`` days BEFORE ``day`` - today's trades never set the bar they are
        judged against - once it has ``baseline_min_trades`` of them; else the configured baseline.
        (The judged window counts a flat trade as not won; after commissions a flat close does not
        happen in practice, so the two rates measure the same thing.)"""
        hist = await self._history(day)
        sc = hist.get(strategy) if hist is not None else None
        if sc is None or sc.trades < self.cfg.baseline_min_trades or sc.win_rate_pct is None:
            return self._configured_baseline(strategy)
        return round(sc.win_rate_pct, 1)

    async def _history(self, day: date) -> dict[str, Scorecard] | None:
        """Scorecards per strategy of the lookback before ``day``: one ledger query per New York day
        (every strategy at once), cached for the day. None while the ledger cannot be read; asked
        again after ``BASELINE_RETRY_S`` of the service clock (not on every closed trade)."""
        if self._hist_day == day and self._hist is not None:
            return self._hist
        now_ms = self.clock.ms()
        if self._hist_day == day and now_ms < self._hist_retry_ms:
            return None
        first, last = day - timedelta(days=self.cfg.baseline_lookback_days), day - timedelta(days=1)
        got = await self.ledger.try_read(lambda conn: scorecards(closed_trades(conn, first, last))[1])
        self._hist_day, self._hist = day, got
        if got is None:
            self._hist_retry_ms = now_ms + BASELINE_RETRY_S * 1000
            self.log.info("strategy baselines from config until the ledger is readable (%s)", self.ledger.last_error)
        return got

    async def _on_position(self, ev: PositionEvent, tx: Tx) -> None:
        if ev.kind != "closed" or not ev.strategy:
            return
        name = ev.strategy
        key = self.keys.key("anomaly_trades", name)
        window = self.cfg.degradation_window
        older = _floats(await self.redis.lrange(key, 0, window - 2))
        pnls = [float(ev.realized_pnl), *older]
        baseline = await self._baseline(name, ev.dt.astimezone(NY).date())
        health = d.strategy_health(
            pnls,
            baseline_win_rate_pct=baseline,
            margin_pts=self.cfg.win_rate_margin_pts,
            loss_win_ratio=self.cfg.loss_win_ratio,
            max_losing_streak=self.cfg.max_losing_streak,
            min_trades=self.cfg.degradation_min_trades,
        )
        finding = d.strategy_findings(name, health, baseline)
        already_disabled = text(await self.redis.hget(self.keys.hash("strategies"), name)) == "disabled"
        if finding is not None and finding.code == "STRATEGY_DISABLED":
            if already_disabled:
                finding = None  # nothing more to do: someone already switched it off
            else:
                tx.pipe.hset(self.keys.hash("strategies"), name, "disabled")
                tx.pipe.delete(key)  # judged afresh once an admin re-enables it
                tx.emit(
                    AuditEvent,
                    correlation_id=ev.correlation_id,
                    actor="overseer",
                    action="strategy.disable",
                    detail={"strategy": name, **finding.facts},
                )
        if finding is None or finding.code != "STRATEGY_DISABLED":
            tx.pipe.lpush(key, repr(float(ev.realized_pnl)))
            tx.pipe.ltrim(key, 0, window - 1)
        mine = {f"STRATEGY_DEGRADED|{name}"}
        await self.book.apply(
            tx, [finding] if finding else [], lambda c: f"{c.get('code')}|{c.get('subject')}" in mine
        )

    async def _on_delivery(self, ev: DeliveryEvent, tx: Tx) -> None:
        channel = ev.channel or "unknown"
        streaks = self.keys.hash("anomaly_delivery")
        findings: list[d.Finding] = []
        if ev.status == "dead_letter":
            findings.append(d.delivery_dead_letter(channel, ev.tier, ev.attempts, ev.error))
            tx.pipe.hdel(streaks, channel)
            scope_codes = {"DELIVERY_RETRYING"}
        elif ev.status == "retry":
            streak = _int(await self.redis.hget(streaks, channel)) + 1
            tx.pipe.hset(streaks, channel, str(streak))
            f = d.delivery_retrying(channel, streak)
            if f is not None:
                findings.append(f)
            scope_codes = set()
        else:  # delivered: the channel works again
            tx.pipe.hdel(streaks, channel)
            scope_codes = {"DELIVERY_RETRYING", "DELIVERY_DEAD_LETTER"}
        await self.book.apply(
            tx, findings, lambda c: c.get("code") in scope_codes and c.get("subject") == channel
        )

    # ================================================================== timer
    async def on_timer(self, now: datetime) -> None:
        tx = self.bus.tx()
        await self.check(now, tx)
        await tx.commit()

    async def check(self, now: datetime, tx: Tx) -> None:
        """One evaluation of every timer detector; outputs on ``tx``. Reads: all first (reads.py)."""
        now_ms = int(now.timestamp() * 1000)
        session_open_ms = self._session_open_ms(now)
        in_session = session_open_ms is not None
        r = await read_for_check(self.redis, self.keys, self.book.key, list(self.settings.market.symbols),
                                 in_session)
        state = AlertBook.parse(r.alerts)

        await self.book.apply(
            tx,
            self._feeds(r, now_ms, session_open_ms, tx) if in_session else [],
            lambda c: c.get("code") == "FEED_STALE",
            state=state,
            clear_after=TIMER_CLEAR_AFTER,
        )
        await self.book.apply(
            tx,
            self._broker(r, now_ms, state) if in_session else [],
            lambda c: c.get("code") == "BROKER_DISCONNECTED",
            state=state,
            clear_after=TIMER_CLEAR_AFTER,
        )
        await self.book.apply(
            tx,
            self._divergence(r) if in_session else [],
            lambda c: c.get("code") == "PRICE_DIVERGENCE",
            state=state,
            clear_after=TIMER_CLEAR_AFTER,
        )
        await self.book.apply(
            tx,
            self._account(r, now),
            lambda c: c.get("code") in ("DRAWDOWN", "DAILY_LOSS"),
            state=state,
            clear_after=TIMER_CLEAR_AFTER,
        )
        await self.book.apply(
            tx,
            self._dead_letters(r, tx),
            lambda c: (
                c.get("code") == "DEAD_LETTER" and now_ms - int(c.get("last_ms", 0)) >= DLQ_QUIET_S * 1000
            ),
            state=state,
        )
        await self.book.apply(
            tx,
            self._stalls(r),
            lambda c: c.get("code") == "SERVICE_STALLED",
            state=state,
            clear_after=TIMER_CLEAR_AFTER,
        )
        switches = r.switches
        re_enabled = {
            i
            for i, c in state.items()
            if c.get("code") == "STRATEGY_DISABLED"
            and text(switches.get(str(c.get("subject")))) != "disabled"
        }
        await self.book.apply(
            tx, [], lambda c: f"{c.get('code')}|{c.get('subject')}" in re_enabled, state=state
        )

    def _session_open_ms(self, now: datetime) -> int | None:
        """Today's session open (ms) while the NYSE regular session is open, else None."""
        cal = self.ctx.calendar
        if not cal.is_open(now):
            return None
        return int(cal.session(now.astimezone(NY).date()).open.timestamp() * 1000)

    def _feeds(self, r: CheckReads, now_ms: int, session_open_ms: int | None, tx: Tx) -> list[d.Finding]:
        symbols = list(self.settings.market.symbols)
        if not symbols:
            return []
        quotes, chains, seen = r.quotes, r.chain_meta, r.feeds_seen
        seen_key = self.keys.hash("anomaly_feeds")
        limits = self.cfg.stale_feed_s
        out: list[d.Finding] = []
        newer: dict[str, str] = {}  # one HSET for every feed that moved (was one HSET per feed and check)
        for sym, q_raw, c_raw in zip(symbols, quotes, chains, strict=True):
            q = load_json_obj(q_raw)
            current = {
                "quotes": parse_ts_ms(q.get("quote_ts")) if q else None,
                "chains": snapshot_asof_ms(c_raw) if c_raw is not None else None,
            }
            for source, ts in current.items():
                if source not in limits:
                    continue
                field = f"{source}:{sym}"
                last = parse_ts_ms(seen.get(field)) if seen.get(field) else None
                if ts is not None and (last is None or ts > last):
                    newer[field] = str(ts)
                    last = ts
                f = d.feed_staleness(source, sym, last, now_ms, session_open_ms or 0, float(limits[source]))
                if f is not None:
                    out.append(f)
        if newer:
            tx.pipe.hset(seen_key, mapping=newer)
        return out

    def _broker(self, r: CheckReads, now_ms: int, state: dict[str, dict[str, Any]]) -> list[d.Finding]:
        connected = r.broker_connected
        cur = state.get("BROKER_DISCONNECTED|broker")
        since = int(cur["since_ms"]) if cur and cur.get("since_ms") else None
        f = d.broker_connection(
            text(connected) if connected is not None else None, since, now_ms, self.cfg.broker_down_critical_s
        )
        return [f] if f else []

    def _divergence(self, r: CheckReads) -> list[d.Finding]:
        symbols = list(self.settings.market.symbols)
        if not symbols:
            return []
        quotes, vendors = r.quotes, r.vendors
        skew = float(self.cfg.stale_feed_s.get("quotes", 30.0))
        out = []
        for sym, q_raw, v_raw in zip(symbols, quotes, vendors, strict=True):
            q, v = load_json_obj(q_raw), load_json_obj(v_raw)
            if q is None or v is None:
                continue
            f = d.price_divergence(sym, q, v, self.cfg.price_divergence_pct, skew)
            if f is not None:
                out.append(f)
        return out

    def _account(self, r: CheckReads, now: datetime) -> list[d.Finding]:
        acct = account_from(r.account, self.settings, now)
        out = []
        f = d.drawdown(acct.drawdown_pct, self.cfg.drawdown_warn_pct, self.cfg.drawdown_critical_pct)
        if f is not None:
            out.append(f)
        level = daily_loss_level(
            RiskState(account_value=acct.account_value, daily_pnl=acct.daily_pnl), self.limits
        )
        f = d.daily_loss(
            level,
            acct.daily_pnl,
            acct.account_value,
            self.limits.daily_loss_warn_pct,
            self.limits.daily_loss_halt_pct,
        )
        if f is not None:
            out.append(f)
        return out

    def _stalls(self, r: CheckReads) -> list[d.Finding]:
        now_ms = self.wall_ms()
        out = []
        for service, rec in sorted(heartbeats_from(r.heartbeats).items()):
            for loop, beat in sorted(rec["loops"].items()):
                f = d.service_stalled(service, str(loop), beat, now_ms) if isinstance(beat, dict) else None
                if f is not None:
                    out.append(f)
        return out

    def _dead_letters(self, r: CheckReads, tx: Tx) -> list[d.Finding]:
        lens_key = self.keys.hash("anomaly_dlq")
        known = r.dlq_known
        out = []
        for group, n in r.dlq_lens.items():
            last = known.get(group, 0)
            new = n - last if n >= last else n
            if n != last:
                tx.pipe.hset(lens_key, group, str(n))
            f = d.dead_letters(group, new)
            if f is not None:
                out.append(f)
        return out
