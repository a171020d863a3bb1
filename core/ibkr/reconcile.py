"""Reconciliation: make the order store and the system's positions agree with the IB account.

Run by :class:`~core.ibkr.broker.IbkrBroker` at start and after every reconnect
(``IbConnection.on_ready``). It asks IB for the open orders (all clients), the completed orders,
the day's executions and the positions, and matches them to the order store by ``orderRef``
(= our order id):

- **orders**: a stored order IB holds open is linked (IB order id, perm id, status) and never
  placed again; a cancel asked while disconnected is sent now. One IB lists as completed ends
  as IB says (after its fills below). One IB does not know at all: still ``placing`` (the
  process died inside ``place``, before the service committed anything) -> ``never_placed``,
  so the retry of the same order id places it; already ``sent`` / acknowledged -> CANCELLED
  (``not_at_ib``), so it stops counting as working.
- **fills**: an execution of one of our orders whose execId is neither published (hash
  ``ib_exec_published``) nor already queued in this process is queued as a FILL exactly once
  (IB's commission when it came, else the estimate).
- **positions** per contract (long options): ``system`` = net quantity of the store's fills +
  fills waiting for a commission + what was adopted before; ``booked`` = the Redis position
  manager's ``qty_open`` + fills not yet published. IB holding more than both -> ADOPTED for the
  difference (the position manager opens it with its default exit plan). IB holding less than
  the system's view -> MISSING (flagged to the admin). When the store has history for the
  contract, the lower of the two views counts for MISSING (the position manager may not have
  booked a published sale yet); the higher for ADOPTED (it may not have booked a purchase).
- then one RECONCILED event whose ``detail["summary"]`` is one sentence for the admin.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, defaultdict
from datetime import date
from typing import TYPE_CHECKING, Any

from ib_async import Trade

from core.domain.contract import OptionContract, Right
from core.domain.signal import Side
from core.execution.broker import BrokerEvent, BrokerEventKind, BrokerPosition
from core.execution.orders import OrderStatus
from core.execution.pricing import ny
from core.ibkr.contracts import from_ib_option
from core.ibkr.order_store import IbOrderRecord, Phase
from core.ibkr.orders import ACK_STATES, CANCELLED_STATES

if TYPE_CHECKING:
    from core.ibkr.broker import IbkrBroker

__all__ = ["reconcile"]

log = logging.getLogger("quanticity.ibkr.reconcile")
REQUEST_TIMEOUT_S = 15.0


async def reconcile(broker: IbkrBroker) -> list[BrokerEvent]:
    """Reconcile ``broker`` with its IB account; returns the events to publish (RECONCILED last)."""
    ib = broker.ib
    t = REQUEST_TIMEOUT_S
    open_trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), t)
    completed = await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), t)
    executions = await asyncio.wait_for(ib.reqExecutionsAsync(), t)
    ib_positions = await asyncio.wait_for(ib.reqPositionsAsync(), t)
    counts: Counter[str] = Counter()
    events, open_at_ib = _orders(broker, open_trades, completed, executions, counts)
    events += await _fills(broker, executions, counts)
    events += _ended_at_ib(broker, open_at_ib, completed, executions, counts)
    events += await _positions(broker, ib_positions, events, counts)
    counts["open"] = sum(1 for r in broker.records.values() if r.live and r.phase != Phase.NEVER_PLACED)
    events.append(_summary(broker, counts, events))
    log.info("ibkr: %s", events[-1].detail["summary"])
    return events


# ---------------------------------------------------------------------- orders
def _by_ref(trades: list[Trade]) -> dict[str, list[Trade]]:
    out: dict[str, list[Trade]] = defaultdict(list)
    for tr in trades:
        if tr.order.orderRef:
            out[tr.order.orderRef].append(tr)
    return out


def _pick(rec: IbOrderRecord, found: list[Trade]) -> Trade | None:
    """The IB order that is ``rec`` (same perm id when both are known; else ours by client/order id)."""
    if rec.perm_id:
        same = [tr for tr in found if tr.order.permId == rec.perm_id]
        if same:
            return same[0]
    mine = [tr for tr in found if tr.order.clientId == rec.client_id and tr.order.orderId == rec.ib_order_id]
    best = mine or found
    return best[0] if best else None


def _orders(broker: IbkrBroker, open_trades: list[Trade], completed: list[Trade], executions: list[Any],
            counts: Counter[str]) -> tuple[list[BrokerEvent], set[str]]:
    """Link, mark never placed, or end each stored order; returns the events and the ids open at IB."""
    open_by_ref, done_by_ref = _by_ref(open_trades), _by_ref(completed)
    exec_refs = {f.execution.orderRef for f in executions if f.execution.orderRef}
    events: list[BrokerEvent] = []
    open_at_ib: set[str] = set()
    for rec in sorted(broker.records.values(), key=lambda r: (r.state.placed_ts, r.order_id)):
        if not rec.live:
            continue
        trade = _pick(rec, open_by_ref.get(rec.order_id, []))
        if trade is not None:
            open_at_ib.add(rec.order_id)
            broker.link(rec, trade)
            broker.trades[rec.order_id] = trade
            status = trade.orderStatus.status
            if status in ACK_STATES:
                rec.phase = Phase.ACKED
                rec.ib_status = status
            rec.modify_from = None  # IB's open order is the truth now
            if rec.state.limit is not None and trade.order.lmtPrice and rec.state.request.order_type == "LMT":
                rec.state.limit = float(trade.order.lmtPrice)
            if rec.cancel_requested:
                rec.cancel_sent = False  # may have been lost with the socket: ask again
                broker.send_cancel(rec)
            broker.store.save_soon(rec)
            continue
        done = _pick(rec, done_by_ref.get(rec.order_id, []))
        if done is not None or rec.order_id in exec_refs:
            if done is not None:
                broker.link(rec, done)
            continue  # ended at IB: settled after its fills
        if rec.phase == Phase.PLACING:
            rec.phase = Phase.NEVER_PLACED
            broker.store.save_soon(rec)
            counts["never_placed"] += 1
            log.warning("ibkr: order %s never reached IB: a retry may place it", rec.order_id)
            continue
        ev = broker.end(rec, BrokerEventKind.CANCELLED, "not_at_ib")
        if ev is not None:
            events.append(ev)
            counts["lost"] += 1
            log.error("ibkr: order %s (IB %d) is unknown to IB: ended", rec.order_id, rec.ib_order_id)
    return events, open_at_ib


# ---------------------------------------------------------------------- fills
async def _fills(broker: IbkrBroker, executions: list[Any], counts: Counter[str]) -> list[BrokerEvent]:
    ours = [f for f in executions if f.execution.orderRef in broker.records]
    published = await broker.store.published([f.execution.execId for f in ours])
    stored = broker.ib.wrapper.fills
    events: list[BrokerEvent] = []
    for f in sorted(ours, key=lambda f: (f.execution.time, f.execution.execId)):
        ex = f.execution
        if ex.execId in published or ex.execId in broker.seen_execs:
            continue
        rec = broker.records[ex.orderRef]
        known = stored.get(ex.execId)
        report = known.commissionReport if known is not None else f.commissionReport
        have = report is not None and report.execId == ex.execId
        events.append(broker.fill_event(rec, f, report.commission if have else None, estimated=not have,
                                        ts=ex.time))
        counts["fills"] += 1
    broker.resolve_pending()
    return events


def _ended_at_ib(broker: IbkrBroker, open_at_ib: set[str], completed: list[Trade], executions: list[Any],
                 counts: Counter[str]) -> list[BrokerEvent]:
    """Orders still open here that IB finished while we were away (after their fills)."""
    done_by_ref = _by_ref(completed)
    exec_refs = {f.execution.orderRef for f in executions}
    events: list[BrokerEvent] = []
    for rec in sorted(broker.records.values(), key=lambda r: (r.state.placed_ts, r.order_id)):
        if not rec.live or rec.order_id in open_at_ib:
            continue
        done = _pick(rec, done_by_ref.get(rec.order_id, []))
        if done is None and rec.order_id not in exec_refs:
            continue
        status = done.orderStatus.status if done is not None else "Filled"
        ev: BrokerEvent | None = None
        if status in CANCELLED_STATES:
            ev = broker.end(rec, BrokerEventKind.CANCELLED, rec.cancel_reason or "ib_cancelled")
        elif status == "Inactive":
            ev = broker.end(rec, BrokerEventKind.REJECTED, "inactive at IB")
        elif status == "Filled":
            ev = _filled_without_executions(broker, rec)
        if ev is not None:
            events.append(ev)
            counts["ended"] += 1
    return events


def _filled_without_executions(broker: IbkrBroker, rec: IbOrderRecord) -> BrokerEvent | None:
    """IB says filled but did not replay every execution (too old): close the order; the
    position check below adopts / flags what the missing fills changed."""
    st = rec.state
    if not st.is_open:
        return None
    log.error("ibkr: order %s filled at IB but only %d of %d contracts were replayed", rec.order_id,
              st.filled_qty, st.request.qty)
    now = broker.clock.now()
    st.status, st.reason, st.updated_ts = OrderStatus.FILLED, "filled_at_ib", now
    rec.phase = Phase.DONE
    broker.store.save_soon(rec)
    return BrokerEvent(kind=BrokerEventKind.STATUS, ts=now, order_id=rec.order_id,
                       correlation_id=st.correlation_id, contract_key=st.contract_key,
                       order=st.model_copy(deep=True), reason="filled_at_ib")


# ---------------------------------------------------------------------- positions
def _net(pairs: list[tuple[str, Side, int]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for key, side, qty in pairs:
        out[key] += qty if side == Side.BUY else -qty
    return out


async def _redis_positions(broker: IbkrBroker) -> dict[str, tuple[int, list[str], OptionContract]]:
    """The position manager's open positions (hash ``positions``) by contract key."""
    raw = await broker.redis.hgetall(broker.keys.hash("positions"))
    out: dict[str, tuple[int, list[str], OptionContract]] = {}
    for pid in sorted(raw):
        try:
            p = json.loads(raw[pid])
            c = OptionContract(symbol=p["symbol"], expiry=date.fromisoformat(p["expiry"]), strike=float(p["strike"]),
                               right=Right(p["right"]), multiplier=int(p.get("multiplier") or 100))
            qty = int(p.get("qty_open", 0))
        except (ValueError, KeyError, TypeError):
            log.error("ibkr: unreadable position %s skipped", pid)
            continue
        if qty > 0:
            q0, ids, _ = out.get(c.key, (0, [], c))
            out[c.key] = (q0 + qty, [*ids, pid], c)
    return out


async def _positions(broker: IbkrBroker, ib_positions: list[Any], new_events: list[BrokerEvent],
                     counts: Counter[str]) -> list[BrokerEvent]:
    account = broker.conn.account
    held: dict[str, tuple[int, float, int, OptionContract]] = {}
    for p in ib_positions:
        if (account and p.account != account) or p.contract.secType != "OPT" or p.position <= 0:
            continue
        c = from_ib_option(p.contract)
        q0, cost0, _, _ = held.get(c.key, (0, 0.0, 0, c))
        qty = int(p.position)
        held[c.key] = (q0 + qty, cost0 + float(p.avgCost) * qty, int(p.contract.conId), c)
    booked_in_redis = await _redis_positions(broker)
    store = _net([(f.contract.key, f.side, f.qty) for r in broker.records.values() for f in r.state.fills])
    history = {r.contract_key for r in broker.records.values() if r.state.fills}
    waiting = _net([(r.contract_key, r.state.request.side, int(f.execution.shares)) for r, f in broker.pending_fills()])
    unpublished = _net([(e.contract_key, e.fill.side, e.fill.qty) for e in [*broker.queued(), *new_events]
                        if e.kind == BrokerEventKind.FILL and e.fill is not None])
    now = broker.clock.now()
    day = f"{ny(now):%Y%m%d}"
    events: list[BrokerEvent] = []
    for key in sorted(set(held) | set(booked_in_redis)):
        contract = held[key][3] if key in held else booked_in_redis[key][2]
        ib_qty, cost, con_id, _ = held.get(key, (0, 0.0, 0, contract))
        redis_qty, pids, _ = booked_in_redis.get(key, (0, [], contract))
        system = store[key] + waiting[key] + broker.adopted.get(key, 0)
        booked = redis_qty + unpublished[key] + waiting[key]
        explained = max(system, booked)
        if ib_qty > explained:
            qty = ib_qty - explained
            before = broker.adopted.get(key, 0)
            broker.adopted[key] = before + qty
            oid = f"adopt-{con_id}" + (f"-{before}" if before else "")
            avg = round(cost / ib_qty / contract.multiplier, 6) if ib_qty else 0.0
            events.append(BrokerEvent(
                kind=BrokerEventKind.ADOPTED, ts=now, order_id=oid, correlation_id=f"adopt:{key}:{day}",
                contract_key=key, position=BrokerPosition(contract=contract, qty=qty, avg_cost=avg),
                reason="held at IB, not explained by this system's fills",
                detail={"ib_qty": ib_qty, "explained": explained, "con_id": con_id}))
            counts["adopted"] += 1
            continue
        expected = min(system, booked) if key in history or key in broker.adopted else booked
        if ib_qty < expected:
            events.append(BrokerEvent(
                kind=BrokerEventKind.MISSING, ts=now, order_id=f"missing-{key}",
                correlation_id=pids[0] if pids else f"missing:{key}", contract_key=key,
                position=BrokerPosition(contract=contract, qty=expected - ib_qty),
                reason="held here, not at IB",
                detail={"summary": f"{contract.label()}: the system holds {expected}, IBKR {ib_qty}",
                        "ib_qty": ib_qty, "system_qty": expected, "positions": ",".join(pids)}))
            counts["missing"] += 1
    return events


# ---------------------------------------------------------------------- summary
def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def _summary(broker: IbkrBroker, counts: Counter[str], events: list[BrokerEvent]) -> BrokerEvent:
    """One sentence for the admin (the missing contracts are named: nothing else tells which)."""
    missing = [f"{e.position.contract.label()} x{e.position.qty}" for e in events
               if e.kind == BrokerEventKind.MISSING and e.position is not None]
    parts = [f"{_n(counts['fills'], 'fill')} replayed", f"{_n(counts['adopted'], 'position')} adopted",
             f"{counts['missing']} missing" + (f" ({', '.join(missing)})" if missing else ""),
             _n(counts["open"], "open order")]
    if counts["never_placed"]:
        parts.append(f"{_n(counts['never_placed'], 'order')} never reached IB")
    if counts["lost"]:
        parts.append(f"{_n(counts['lost'], 'order')} unknown to IB ended")
    if counts["ended"]:
        parts.append(f"{_n(counts['ended'], 'order')} ended at IB while away")
    now = broker.clock.now()
    ms = broker.clock.ms()
    return BrokerEvent(kind=BrokerEventKind.RECONCILED, ts=now, order_id=f"reconcile-{ms}",
                       correlation_id=f"reconcile:{ms}", contract_key="",
                       detail={"summary": "reconciled with IBKR: " + ", ".join(parts),
                               "fills_replayed": counts["fills"], "adopted": counts["adopted"],
                               "missing": counts["missing"], "open_orders": counts["open"],
                               "never_placed": counts["never_placed"], "ended": counts["lost"] + counts["ended"]})
