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
from tests.telegram._util import ADMIN_CHAT, make_signal, read_stream, visible

EXPIRY = date(2027, 1, 15)


async def test_refusal_at_placement_edits_the_approved_card(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    execution = ExecutionService(make_context(tbus))
    await execution.start()
    exe = consumer_for(execution)
    assert exe is not None
    sig = make_signal(tbus.clock.now(), sid="SIGREFUSE1", strategy="directional_swing", horizon="swing",
                      instrument={"type": "OPT", "expiry": EXPIRY.isoformat(), "strike": 590.0, "right": "C",
                                  "multiplier": 100})
    card = await h.open_card(sig)
    await h.press(card, f"a:{sig.id}")
    await h.pump()
    await h.wait_edit(ADMIN_CHAT, card["message_id"], "APPROVED")
    await exe.poll(execution.handle)  # the approval waits for the contract's next quote

    # the state changes before that quote: nothing left to buy with
    today = tbus.clock.now().astimezone(NY).date().isoformat()
    await tbus.redis.hset(tbus.keys.hash("account"), mapping={"account_value": "100000", "day": today,
                                                              "premium_open": "100000"})
    await tbus.publish(tbus.make(OptionQuoteEvent, symbol="SPY", contract_key=sig.contract().key,
                                 expiry=EXPIRY.isoformat(), strike=590.0, right="C", bid=2.10, ask=2.20,
                                 bid_size=10, ask_size=10, quote_ts=tbus.clock.ms()))
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
