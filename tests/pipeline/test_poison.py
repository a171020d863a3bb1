"""The reviewer's scenario, end to end on the real Redis: poison input for a contract must
not block genuine work for the same contract.

Before the fix an approval with qty -5 or a NaN limit was stored unchecked as a pending entry;
every later quote of that contract then failed in the execution service (retried, and one
dead-lettered after 5 tries), and a bad exit request raised out of ``handle``. Now the poison
is refused at the boundary (``decode`` -> BadEvent, dead-lettered and counted; a bad card is
refused to the admin; a bad exit request becomes a counted ``BAD_INPUT`` rejection) and the
genuine approval that follows fills on the next quote.
"""

from __future__ import annotations

import json
import math
from datetime import time

from core.analytics.service import AnalyticsService
from core.approvals.claims import open_card, read_card
from core.approvals.decide import decide_signal
from core.bus.events import AnalyticsEvent, ChainEvent, FillEvent, OrderRequestEvent
from core.market.service import MarketDataService
from core.risk import daily_loss_level
from core.runtime.sim_runner import SimRunner
from core.state.account import load_risk_state
from tests.pipeline.conftest import at, stream
from tests.pipeline.test_execution_positions import EXPIRY, KEY, Desk


def _poisoned(event, **signal_changes) -> dict[str, str]:
    """The wire form of ``event`` with values its model refuses (NaN as the JSON literal)."""
    body = json.loads(event.model_dump_json())
    for k, v in signal_changes.items():
        if k.startswith("signal."):
            body["signal"][k.removeprefix("signal.")] = v
        else:
            body[k] = v
    return {"t": event.type, "d": json.dumps(body)}


async def _dead_letters(bus, group: str) -> list[dict]:
    return [f for _i, f in await bus.redis.xrange(bus.keys.dlq(group))]


async def test_poison_approvals_and_exits_do_not_block_the_genuine_trade(sim_bus, ctx_for):
    sim_bus.clock.set(at(time(10, 0)))
    # bad shared records the position manager reads, there before it first reads them: another
    # position's record, the reference snapshot of the symbol (a bad ACCOUNT figure is not poison
    # for one contract: it stops every entry, fail closed; see the test after this one)
    await sim_bus.redis.hset(sim_bus.keys.hash("positions"), "pos-garbage", "{not json")
    await sim_bus.redis.hset(sim_bus.keys.hash("positions"), "pos-nan", json.dumps({"position": {"avg_entry": "NaN"}}))
    await sim_bus.redis.set(sim_bus.keys.snapshot("reference", "SPY"), json.dumps({"next_earnings": "soon"}))

    desk = Desk(sim_bus, ctx_for())
    await desk.start()
    stream_key = sim_bus.keys.stream("approvals")
    poisons = [desk.approval(qty=4), desk.approval(qty=4), desk.approval(qty=4), desk.approval(qty=4)]
    for ev, bad in zip(poisons, ({"qty": -5}, {"qty": 0}, {"signal.limit": float("nan")},
                                 {"qty": 9}),  # more than the signal's 4 contracts
                       strict=True):
        await sim_bus.redis.xadd(stream_key, _poisoned(ev, **bad))
    await desk.runner.drain()
    # a poison exit request (negative qty) and one whose date does not exist
    req = sim_bus.make(OrderRequestEvent, correlation_id="pos-x", request_id="r1", position_id="pos-x",
                       symbol="SPY", expiry=EXPIRY.isoformat(), strike=590.0, right="C", qty=2)
    await sim_bus.redis.xadd(sim_bus.keys.stream("order_requests"), _poisoned(req, qty=-5))
    await desk.send(req.model_copy(update={"id": sim_bus.new_id(), "expiry": "2026-02-30"}))

    # nothing poisonous was stored for the contract
    assert await sim_bus.redis.hgetall(sim_bus.keys.hash("pending_entries")) == {}
    assert await sim_bus.redis.hget(sim_bus.keys.hash("watch"), KEY) is None

    genuine = desk.approval(qty=4)
    await desk.send(genuine)
    await desk.send(desk.quote(1.00, 1.04), 10)  # placed at mid 1.02
    await desk.send(desk.quote(0.98, 1.02), 10)  # filled
    orders = await stream(sim_bus, "orders")
    fills = [e for e in orders if e.type == "order.fill"]
    assert [(f.qty, f.price, f.purpose, f.correlation_id) for f in fills] == [
        (4, 1.02, "entry", genuine.correlation_id)]
    positions = await stream(sim_bus, "positions")
    assert [(p.kind, p.qty, p.correlation_id) for p in positions] == [("entry", 4, genuine.correlation_id)]
    # the exit request with an impossible date: a rejected exit order, counted, not an exception
    assert [(o.order_id, o.status, o.reason) for o in orders if o.purpose == "exit"] == [
        ("ex-r1", "rejected", "BAD_INPUT")]

    # the poison is dead-lettered at decode and counted; nothing genuine is dead-lettered or retried
    dlq = await _dead_letters(sim_bus, "execution")
    assert len(dlq) == 5 and all(f["error"].startswith("malformed:") for f in dlq)
    poison_ids = {p.id for p in poisons} | {req.id}
    assert {json.loads(f["f_d"])["id"] for f in dlq} == poison_ids
    consumers = {svc.name: c for svc, c in desk.runner.consumers}
    assert (consumers["execution"].rejected, consumers["execution"].failed) == (5, 0)
    assert await sim_bus.redis.hgetall(sim_bus.keys.tries("execution")) == {}
    assert await _dead_letters(sim_bus, "positions") == []
    assert (consumers["positions"].rejected, consumers["positions"].failed) == (0, 0)


async def test_an_unreadable_account_figure_stops_entries_at_placement(sim_bus, ctx_for):
    """The day's realized P&L unreadable: the placement check reads it as NaN and refuses the entry
    (daily loss and buying power cannot be known), a counted refusal, not a failed handling."""
    sim_bus.clock.set(at(time(10, 0)))
    await sim_bus.redis.hset(sim_bus.keys.hash("account"), mapping={"day": EXPIRY.isoformat(), "realized_today": "nan"})
    desk = Desk(sim_bus, ctx_for())
    await desk.start()
    genuine = desk.approval(qty=4)
    await desk.send(genuine)
    await desk.send(desk.quote(1.00, 1.04), 10)
    orders = await stream(sim_bus, "orders")
    assert [(o.status, o.reason) for o in orders] == [("rejected", "DAILY_LOSS_LIMIT")]
    assert not [e for e in orders if e.type == "order.fill"]
    assert await _dead_letters(sim_bus, "execution") == []
    consumers = {svc.name: c for svc, c in desk.runner.consumers}
    assert consumers["execution"].failed == 0


async def test_poison_card_is_refused_to_the_admin_and_closed(sim_bus, ctx_for):
    sim_bus.clock.set(at(time(10, 0)))
    desk = Desk(sim_bus, ctx_for())
    await desk.start()
    good = desk.approval(qty=4)
    for sid, change in (("neg", {"qty": -5}), ("zero", {"qty": 0}), ("nan", {"limit": float("nan")})):
        sig = {**good.signal.model_dump(mode="json"), "id": sid, **change}
        tx = sim_bus.tx()
        open_card(tx, f"sig:{sid}", "signal", sim_bus.clock.ms() + 300_000, {"signal": sig, "policy": "manual"})
        await tx.commit()
        for half in (False, True):
            res = await decide_signal(sim_bus, sid, "approved", "tg:1", half=half)
            if not half:
                assert (res.status, res.state) == ("invalid", "rejected")
                assert ("qty" if "qty" in change else "limit") in res.decided_by
            else:  # the card was closed by the first press
                assert (res.status, res.state, res.decided_by) == ("already", "rejected", "validation")
        assert (await read_card(sim_bus.redis, sim_bus, f"sig:{sid}"))["state"] == "rejected"
    assert await stream(sim_bus, "approvals") == []  # nothing reached execution
    audits = [e for e in await stream(sim_bus, "audit") if e.action == "card_invalid"]
    assert sorted(a.detail["item_id"] for a in audits) == ["sig:nan", "sig:neg", "sig:zero"]
    assert await sim_bus.redis.zcard(sim_bus.keys.zset("cards")) == 0


async def test_bad_records_do_not_fail_the_risk_state_the_overseer_reads(sim_bus, ctx_for):
    """The overseer's hard rules read positions and the account through ``core.state.account``: a
    bad record is skipped (positions) or read as NaN so the rules fail closed (account), never raised."""
    sim_bus.clock.set(at(time(10, 0)))
    ctx = ctx_for()
    good = {"symbol": "SPY", "strategy": "gamma_0dte", "right": "C", "qty_open": 2, "avg_entry": 1.5,
            "multiplier": 100, "expiry": EXPIRY.isoformat(), "strike": 590.0}
    await sim_bus.redis.hset(sim_bus.keys.hash("positions"), mapping={
        "p-good": json.dumps(good), "p-garbage": "{not json", "p-list": "[1, 2]",
        "p-qty": json.dumps({**good, "qty_open": "lots"}), "p-nan": json.dumps({**good, "avg_entry": "NaN"}),
        "p-mult": json.dumps({**good, "multiplier": "x"})})
    state = await load_risk_state(sim_bus.redis, sim_bus.keys, ctx.settings, sim_bus.clock.now())
    assert [(p.symbol, p.qty, p.entry_price) for p in state.open_positions] == [("SPY", 2, 1.5)]
    await sim_bus.redis.hset(sim_bus.keys.hash("account"), mapping={"day": EXPIRY.isoformat(),
                                                                  "realized_today": "garbage"})
    state = await load_risk_state(sim_bus.redis, sim_bus.keys, ctx.settings, sim_bus.clock.now())
    assert math.isnan(state.daily_pnl)
    assert daily_loss_level(state) == "halt"  # an unreadable day P&L fails closed


async def test_bad_quote_and_reference_snapshots_do_not_stop_analytics(sim_bus, ctx_for):
    """Analytics reads the quote (book sizes) and reference snapshots another service wrote: a bad
    one is ignored and counted, and the chain's snapshot is still computed."""
    ctx = ctx_for(market={"symbols": ["SPY"]}, demo={"feed_gap_symbol": None})
    await SimRunner([MarketDataService(ctx)], sim_bus.clock).run(at(time(9, 30)), at(time(9, 30)))
    chain_key = sim_bus.keys.snapshot("chain", "SPY")
    for quote, ref in (("{not json", json.dumps({"next_earnings": "soon"})),
                       (json.dumps({"symbol": "SPY", "bid": 1, "ask": 2, "last": 1, "quote_ts": 1,
                                    "bid_sizes": [1, "NaN"], "ask_sizes": [1, 2]}), "[1, 2]")):
        await sim_bus.redis.set(sim_bus.keys.snapshot("quote", "SPY"), quote)
        await sim_bus.redis.set(sim_bus.keys.snapshot("reference", "SPY"), ref)
        ev = sim_bus.make(ChainEvent, symbol="SPY", spot=590.0, asof=sim_bus.clock.ms(), snapshot_key=chain_key,
                          contracts=3)
        tx = sim_bus.tx()
        await AnalyticsService(ctx).handle(ev, tx)
        await tx.commit()
    snaps = [e for e in await stream(sim_bus, "analytics") if isinstance(e, AnalyticsEvent)]
    assert len(snaps) == 2 and all(s.obi_l1 is None and s.contracts_used > 100 for s in snaps)
    assert all("days_to_earnings" not in s.features for s in snaps)


async def test_bad_trade_context_still_books_the_fill(sim_bus, ctx_for):
    """The position manager reads the trade's context (written at approval): a bad one is counted
    and the fill is booked with the default exit plan, never retried into the dead letters (which
    would leave contracts bought that nothing tracks)."""
    sim_bus.clock.set(at(time(10, 0)))
    desk = Desk(sim_bus, ctx_for())
    await desk.start()
    good = desk.approval(qty=4).signal.model_dump(mode="json")
    for corr, ctx in (("t-qty", {"signal": {**good, "qty": -5}}), ("t-nan", '{"risk_pct": NaN}'),
                      ("t-junk", "{not json")):
        await sim_bus.redis.hset(sim_bus.keys.hash("trade_ctx"), corr, ctx if isinstance(ctx, str) else json.dumps(ctx))
        await desk.send(sim_bus.make(FillEvent, correlation_id=corr, order_id=f"ent-{corr}", fill_id=f"{corr}:1",
                                     purpose="entry", symbol="SPY", expiry=EXPIRY.isoformat(), strike=590.0,
                                     right="C", side="BUY", qty=2, price=1.02))
    positions = await stream(sim_bus, "positions")
    assert sorted((p.correlation_id, p.kind, p.qty, p.strategy) for p in positions) == [
        ("t-junk", "entry", 2, "manual"), ("t-nan", "entry", 2, "manual"), ("t-qty", "entry", 2, "manual")]
    consumers = {svc.name: c for svc, c in desk.runner.consumers}
    assert consumers["positions"].failed == 0 and await _dead_letters(sim_bus, "positions") == []
