"""An approved entry refused at placement: the real execution service refuses it (the account's
buying power went after the approval), and the admin's approved card is edited to say it was
refused, why (the reason code and the rule's words), and that nothing was ordered."""

from __future__ import annotations

from datetime import date

from core.bus.events import AuditEvent, OptionQuoteEvent, OrderEvent
from core.execution.service import ExecutionService
from core.risk.sessions import NY
from core.runtime.consumers import consumer_for
from tests.helpers import make_context
from tests.telegram._util import ADMIN_CHAT, make_signal, read_stream, verdict, visible

EXPIRY = date(2027, 1, 15)


def _swing_signal(bus, sid: str):
    return make_signal(bus.clock.now(), sid=sid, strategy="directional_swing", horizon="swing",
                       instrument={"type": "OPT", "expiry": EXPIRY.isoformat(), "strike": 590.0, "right": "C",
                                   "multiplier": 100})


async def _no_buying_power_then_quote(bus, sig) -> None:
    """The state changes after the approval: nothing left to buy with; then the contract's quote."""
    today = bus.clock.now().astimezone(NY).date().isoformat()
    await bus.redis.hset(bus.keys.hash("account"), mapping={"account_value": "100000", "day": today,
                                                            "premium_open": "100000"})
    await bus.publish(bus.make(OptionQuoteEvent, symbol="SPY", contract_key=sig.contract().key,
                               expiry=EXPIRY.isoformat(), strike=590.0, right="C", bid=2.10, ask=2.20,
                               bid_size=10, ask_size=10, quote_ts=bus.clock.ms()))


async def test_refusal_at_placement_edits_the_approved_card(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    execution = ExecutionService(make_context(tbus))
    await execution.start()
    exe = consumer_for(execution)
    assert exe is not None
    sig = _swing_signal(tbus, "SIGREFUSE1")
    card = await h.open_card(sig)
    await h.press(card, f"a:{sig.id}")
    await h.pump()
    await h.wait_edit(ADMIN_CHAT, card["message_id"], "APPROVED")
    await exe.poll(execution.handle)  # the approval waits for the contract's next quote

    await _no_buying_power_then_quote(tbus, sig)
    await exe.poll(execution.handle)
    [rejected] = [e for e in await read_stream(tbus, "orders") if isinstance(e, OrderEvent)]
    assert rejected.status == "rejected" and rejected.purpose == "entry"
    [audit] = [e for e in await read_stream(tbus, "audit")
               if isinstance(e, AuditEvent) and e.action == "order_refused"]
    assert audit.detail["reason"] == rejected.reason and "BUYING_POWER" in audit.detail["detail"]

    await h.pump()
    edit = await h.wait_edit(ADMIN_CHAT, card["message_id"], "REFUSED AT PLACEMENT")
    text = visible(edit["text"])
    assert "Approved 4" in text and "Refused at placement" in text and "Nothing was ordered." in text
    assert rejected.reason in text and "exceeds buying power $0.00" in text
    assert "APPROVED ·" not in text
    await execution.stop()


async def test_refusal_of_an_auto_approved_entry_is_sent_as_the_card(make_bot, tbus, telegram_fake) -> None:
    """Auto policy: no card was shown; the refusal brings the card, marked refused, as a message."""
    h = await make_bot(sections={"approval": {"policy": "auto"}})
    execution = ExecutionService(make_context(tbus))
    await execution.start()
    exe = consumer_for(execution)
    assert exe is not None
    sig = _swing_signal(tbus, "SIGREFUSE2")
    await h.publish(verdict(tbus, sig, decision="approve"))
    await h.pump()
    await exe.poll(execution.handle)
    await _no_buying_power_then_quote(tbus, sig)
    await exe.poll(execution.handle)
    await h.pump()
    msg = await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "REFUSED AT PLACEMENT", timeout=5)
    text = visible(msg["text"])
    assert sig.id in text or "BUY 4" in text
    assert "BUYING_POWER" in text and "Nothing was ordered." in text and "Approved 4" in text
    await execution.stop()
