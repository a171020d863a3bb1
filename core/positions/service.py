"""PositionService: the position manager on the bus.

Consumes ``orders`` (fills and order outcomes), ``option_quotes`` (quotes of held
contracts) and ``control`` (``flatten``, ``close``). Books fills into positions
(hash ``positions``; closed ones move to ``positions_closed``), runs the exit plan
on every mark (mid of the option quote) and asks the execution service to sell
through :class:`OrderRequestEvent`. Every change is a :class:`PositionEvent`
(``entry``, ``stop_moved``, ``partial_exit``, ``closed``) carrying the trade's
correlation id, its context (strategy, triggers, the overseer's explanation) and
cumulative realized P&L; the account hash (day P&L, drawdown peak, premium at
work) is kept current for risk, the anomaly watch, ``/status`` and reports.

Shared records it reads (positions, trade_ctx, account, the reference snapshot) are
validated with typed models (``core.positions.records``): a bad one is a counted, logged
rejection that never blocks other work for the same contract.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from core.bus.bus import Tx
from core.bus.events import (
    ControlEvent,
    Event,
    FillEvent,
    OptionQuoteEvent,
    OrderEvent,
    OrderRequestEvent,
)
from core.bus.events import PositionEvent as BusPositionEvent
from core.clock.calendar import NY
from core.domain.contract import OptionContract, Right
from core.domain.signal import Horizon, Side, Signal
from core.execution.orders import Fill, OrderPurpose
from core.positions.exit_plan import CloseAll, SellPartial, apply_action, step
from core.positions.position import Position, PositionEvent, apply_fill, open_position, release_exit
from core.positions.records import account_figure, position_records, trade_context
from core.positions.session import SessionInfo
from core.runtime import metrics
from core.runtime.service import Context, Service

TERMINAL = {"filled", "cancelled", "rejected"}
# strategy of a position adopted from the broker account by reconciliation (never posted to subscribers)
ADOPTED = "adopted"


class PositionService(Service):
    name = "positions"
    streams = ("orders", "option_quotes", "control")
    event_types = frozenset({"order.fill", "order.update", "market.option_quote", "control"})

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._sessions: dict[date, SessionInfo] = {}
        # This service is the only writer of the positions hash, so it keeps a write-through copy
        # (read once per process); a failed handling drops the copy and it is re-read from Redis.
        self._cache: dict[str, Position] | None = None
        self._ctx_cache: dict[str, dict[str, Any]] = {}
        self._acct: dict[str, str] | None = None

    # ------------------------------------------------------------------ state
    async def _positions(self) -> dict[str, Position]:
        if self._cache is None:
            self._cache = position_records(await self.redis.hgetall(self.keys.hash("positions")))
        return self._cache

    async def _load(self, position_id: str) -> Position | None:
        return (await self._positions()).get(position_id)

    async def _open_positions(self) -> list[Position]:
        cache = await self._positions()
        return [cache[k] for k in sorted(cache)]

    def _save(self, tx: Tx, p: Position) -> None:
        if self._cache is not None:
            if p.is_open:
                self._cache[p.position_id] = p
            else:
                self._cache.pop(p.position_id, None)
        c = p.contract
        body = {"symbol": c.symbol, "expiry": c.expiry.isoformat(), "strike": c.strike, "right": c.right.value,
                "multiplier": c.multiplier, "strategy": p.strategy, "qty_open": p.qty_open,
                "avg_entry": p.avg_entry, "stop": p.stop, "last_mark": p.last_mark,
                "realized_pnl": p.realized_pnl, "position": p.model_dump(mode="json")}
        if p.is_open:
            tx.pipe.hset(self.keys.hash("positions"), p.position_id, json.dumps(body, sort_keys=True))
        else:
            tx.pipe.hdel(self.keys.hash("positions"), p.position_id)
            tx.pipe.hset(self.keys.hash("positions_closed"), p.position_id, json.dumps(body, sort_keys=True))
            tx.pipe.hdel(self.keys.hash("watch"), c.key)

    def _session(self, now: datetime) -> SessionInfo:
        day = now.astimezone(NY).date()
        s = self._sessions.get(day)
        if s is None:
            cal = self.ctx.calendar
            if cal.is_session(day):
                sess = cal.session(day)
                s = SessionInfo(session_date=day, open=sess.open, close=sess.close,
                                flat_by=sess.close - timedelta(minutes=5), next_session_date=cal.next_session(day))
            else:
                s = SessionInfo.regular(day, next_session_date=cal.next_session(day))
            self._sessions[day] = s
        return s

    async def _context(self, correlation_id: str) -> dict[str, Any]:
        got = self._ctx_cache.get(correlation_id)
        if got is None:
            got = trade_context(correlation_id, await self.redis.hget(self.keys.hash("trade_ctx"), correlation_id))
            if got:
                self._ctx_cache[correlation_id] = got
        return got

    # ------------------------------------------------------------------ events
    async def handle(self, event: Event, tx: Tx) -> None:
        try:
            await self._dispatch(event, tx)
        except BaseException:
            self._forget()
            raise
        tx.on_failure.append(self._forget)  # a failed commit too: the retry must start from Redis

    def _forget(self) -> None:
        """The tx will not commit: forget what this handling changed (re-read from Redis next time)."""
        self._cache = self._acct = None

    async def _dispatch(self, event: Event, tx: Tx) -> None:
        if isinstance(event, FillEvent):
            await self._fill(event, tx)
        elif isinstance(event, OrderEvent):
            await self._order_outcome(event, tx)
        elif isinstance(event, OptionQuoteEvent):
            await self._mark(event, tx)
        elif isinstance(event, ControlEvent) and event.action in ("flatten", "close"):
            await self._close_on_request(event, tx)

    async def _fill(self, ev: FillEvent, tx: Tx) -> None:
        contract = OptionContract(symbol=ev.symbol, expiry=date.fromisoformat(ev.expiry), strike=ev.strike,
                                  right=Right(ev.right))
        fill = Fill(fill_id=ev.fill_id, order_id=ev.order_id, correlation_id=ev.correlation_id, contract=contract,
                    side=Side(ev.side), purpose=OrderPurpose(ev.purpose), qty=ev.qty, price=ev.price,
                    commission=ev.commission, ts=ev.dt, mid_at_placement=ev.mid_at_order, slippage=ev.slippage)
        pos = await self._load(ev.correlation_id)
        ctx = await self._context(ev.correlation_id)
        before = pos.realized_pnl if pos else 0.0
        if pos is None:
            if fill.side != Side.BUY:
                metrics.REJECTED.labels(self.name, "orphan_sell_fill").inc()
                self.log.error("sell fill %s for unknown position %s", ev.fill_id, ev.correlation_id)
                return
            sig = Signal.model_validate(ctx["signal"]) if ctx.get("signal") else None
            horizon = (sig.horizon if sig and sig.horizon else _horizon(contract.expiry, ev.dt))
            strategy = sig.strategy if sig else (ADOPTED if ctx.get("adopted") else "manual")
            pos, events = open_position(fill, strategy=strategy, horizon=horizon,
                                        position_id=ev.correlation_id, stop=sig.stop if sig else None,
                                        next_earnings=await self._earnings(contract.symbol))
            events = [e for e in events if e.kind.value == "entry"][:1]
        else:
            pos, events = apply_fill(pos, fill)
            if fill.side == Side.BUY:
                events = []  # more contracts of a working entry: the entry was announced at the first fill
        self._save(tx, pos)
        if pos.is_open:
            tx.pipe.hset(self.keys.hash("watch"), contract.key, "1")
        for e in events:
            self._publish(tx, pos, e, ctx)
        await self._account(tx, realized_delta=pos.realized_pnl - before, changed=[pos])

    async def _order_outcome(self, ev: OrderEvent, tx: Tx) -> None:
        if ev.purpose != "exit" or ev.status not in ("cancelled", "rejected"):
            return
        pos = await self._load(ev.correlation_id)
        if pos is None:
            return
        pos = release_exit(pos, max(0, ev.qty - ev.filled_qty))
        self._save(tx, pos)

    async def _mark(self, q: OptionQuoteEvent, tx: Tx) -> None:
        positions = [p for p in await self._open_positions() if p.contract.key == q.contract_key]
        if not positions or q.bid <= 0 or q.ask <= 0 or q.bid > q.ask:
            return
        now = self.clock.now()
        mark = round((q.bid + q.ask) / 2.0, 4)
        session = self._session(now)
        changed: list[Position] = []
        for before in positions:
            pos, actions, events = step(before, mark, now, session)
            if not actions and not events and _unchanged(pos, before, mark):
                continue  # the same mark again: nothing to store (only last_mark_ts would move)
            pos = pos.model_copy(update={"last_mark": mark, "last_mark_ts": now})
            ctx = await self._context(pos.correlation_id)
            for e in events:
                self._publish(tx, pos, e, ctx)
            for a in actions:
                if isinstance(a, (SellPartial, CloseAll)) and a.qty > 0:
                    self._request_exit(tx, pos, a.qty, "MKT" if isinstance(a, CloseAll) else "LMT", a.reason)
            self._save(tx, pos)
            changed.append(pos)
        await self._account(tx, marks={q.contract_key: mark}, changed=changed)

    async def _close_on_request(self, ev: ControlEvent, tx: Tx) -> None:
        now = self.clock.now()
        targets = await self._open_positions()
        if ev.action == "close":
            pid = str(ev.args.get("position_id", ""))
            targets = [p for p in targets if p.position_id == pid or p.position_id.startswith(pid)] if pid else []
            if not targets:
                metrics.REJECTED.labels(self.name, "close_unknown_position").inc()
                return
        for pos in targets:
            qty = pos.available_qty
            if qty <= 0:
                continue
            pos, _ = apply_action(pos, CloseAll(reason=ev.action, qty=qty), now)
            self._request_exit(tx, pos, qty, "MKT", f"{ev.action} by {ev.by}")
            self._save(tx, pos)

    def _request_exit(self, tx: Tx, pos: Position, qty: int, order_type: str, reason: str) -> None:
        c = pos.contract
        tx.emit(OrderRequestEvent, correlation_id=pos.correlation_id, request_id=self.bus.new_id(),
                position_id=pos.position_id, symbol=c.symbol, expiry=c.expiry.isoformat(), strike=c.strike,
                right=c.right.value, multiplier=c.multiplier, qty=qty, order_type=order_type, reason=reason)

    def _publish(self, tx: Tx, pos: Position, e: PositionEvent, ctx: dict[str, Any]) -> None:
        c = pos.contract
        sig = ctx.get("signal") or {}
        snap = {"snapshot_id": sig["snapshot_id"]} if sig.get("snapshot_id") else {}
        tx.emit(BusPositionEvent, correlation_id=pos.correlation_id, kind=e.kind.value, position_id=pos.position_id,
                strategy=pos.strategy, symbol=c.symbol, expiry=c.expiry.isoformat(), strike=c.strike,
                right=c.right.value, direction="bullish" if c.right == Right.CALL else "bearish",
                horizon=pos.horizon.value, qty=e.qty, qty_open=e.qty_open, price=e.price,
                entry_price=pos.avg_entry, stop=e.stop, targets=[round(t, 2) for t in pos.target_levels],
                realized_pnl=round(e.realized_pnl, 2), reason=e.reason or "", triggers=list(sig.get("triggers") or []),
                confidence=sig.get("confidence"), explanation=ctx.get("explanation", ""),
                account_risk_pct=ctx.get("risk_pct"), analytics=snap)

    async def _earnings(self, symbol: str) -> date | None:
        raw = await self.redis.get(self.keys.snapshot("reference", symbol))
        if not raw:
            return None
        try:
            v = json.loads(raw).get("next_earnings")
            return date.fromisoformat(v) if v else None
        except (ValueError, TypeError, AttributeError) as exc:
            metrics.REJECTED.labels(self.name, "bad_reference").inc()
            self.log.warning("reference snapshot of %s unusable (%s): no earnings date", symbol, exc)
            return None

    # ------------------------------------------------------------------ account
    async def _account(self, tx: Tx, realized_delta: float = 0.0, marks: dict[str, float] | None = None,
                       changed: list[Position] | None = None) -> None:
        """Recompute the account hash; ``changed`` are positions saved in this (uncommitted) tx."""
        key = self.keys.hash("account")
        if self._acct is None:  # this service alone writes the account hash: read it once
            self._acct = await self.redis.hgetall(key)
        h = self._acct
        now = self.clock.now()
        today = now.astimezone(NY).date().isoformat()
        base = account_figure(h, "account_value", float(self.settings.risk.account_value))
        realized = account_figure(h, "realized_today", 0.0)
        peak = account_figure(h, "peak_equity", base)
        if h.get("day") != today:  # a new trading day: carry yesterday's result into the base
            base += realized if h.get("day") else 0.0
            realized, peak = 0.0, base
        realized += realized_delta
        unrealized = premium = 0.0
        current = {p.position_id: p for p in await self._open_positions()}
        current.update({p.position_id: p for p in changed or []})
        for p in current.values():
            if not p.is_open:
                continue
            mark = (marks or {}).get(p.contract.key, p.last_mark or p.avg_entry)
            unrealized += (mark - p.avg_entry) * p.qty_open * p.multiplier
            premium += p.avg_entry * p.qty_open * p.multiplier
        equity = base + realized + unrealized
        acct = {"account_value": f"{base:.2f}", "day": today, "realized_today": f"{realized:.2f}",
                "unrealized": f"{unrealized:.2f}", "premium_open": f"{premium:.2f}",
                "peak_equity": f"{max(peak, equity):.2f}"}
        if all(h.get(k) == v for k, v in acct.items()):
            return  # every figure as stored (updated_ms, read by nobody, keeps the last change's time)
        self._acct = {**acct, "updated_ms": str(self.clock.ms())}
        tx.pipe.hset(key, mapping=self._acct)


def _unchanged(observed: Position, before: Position, mark: float) -> bool:
    """Whether marking ``before`` at ``mark`` changed nothing but the mark's time: the stored
    record is kept as is (its ``last_mark_ts`` is when the mark last changed; nothing reads it)."""
    return before.last_mark == mark and observed.model_copy(
        update={"last_mark_ts": before.last_mark_ts}) == before


def _horizon(expiry: date, when: datetime) -> Horizon:
    days = (expiry - when.astimezone(NY).date()).days
    return Horizon.ZERO_DTE if days <= 0 else Horizon.ONE_DTE if days <= 3 else Horizon.SWING
