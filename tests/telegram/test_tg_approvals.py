"""Approval cards end to end: verdict -> ApprovalService card -> Telegram card -> button
press (real PTB polling the fake) -> atomic claim -> outcome on the approvals stream ->
card edited; fill alert threaded under the card."""

from __future__ import annotations

from core.approvals.claims import read_card
from core.bus.events import ApprovalEvent, AuditEvent
from tests.telegram._util import (
    ADMIN,
    ADMIN2,
    ADMIN_CHAT,
    STRANGER,
    buttons_of,
    make_signal,
    position,
    read_stream,
    visible,
)


async def approvals(bus, decision: str | None = None) -> list[ApprovalEvent]:
    evs = [e for e in await read_stream(bus, "approvals") if isinstance(e, ApprovalEvent)]
    return [e for e in evs if decision is None or e.decision == decision]


async def test_card_approve_then_fill(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    assert [c["command"] for c in telegram_fake.commands()][:3] == ["status", "positions", "pnl"]
    sig = make_signal(tbus.clock.now(), sid="SIGAPPROVE1")
    card = await h.open_card(sig)

    body = visible(card["text"])
    for part in ("Approval needed", "BUY 4 × SPY 11/20/26 590C", "SPY   261120C00590000", "Limit $2.15",
                 "Stop $1.55", "Targets $3.05 / $4.10", "$860.00", "0.86% of account", "gamma_0dte",
                 "gamma flip reclaimed", "Overseer: CAUTION", "spread 6% of mid", "Expires", "ET"):
        assert part in body, part
    assert "model review unavailable" not in body
    assert buttons_of(card) == [f"a:{sig.id}", f"h:{sig.id}", f"r:{sig.id}"]
    assert all(len(d.encode()) <= 64 for d in buttons_of(card))

    answer = await h.press(card, f"a:{sig.id}")
    assert answer["text"] == "Approved"
    [ok] = await approvals(tbus, "approved")
    assert ok.qty == 4 and ok.decided_by == f"tg:{ADMIN}" and ok.correlation_id == f"corr-{sig.id}"

    # the execution service would place the paper order now; the outcome comes back to the bot
    await h.pump()
    edit = await h.wait_edit(ADMIN_CHAT, card["message_id"], "APPROVED")
    assert "Approved 4" in visible(edit["text"]) and "@user1001" in edit["text"]
    assert "reply_markup" not in telegram_fake.message(ADMIN_CHAT, card["message_id"])

    n = len(telegram_fake.sent_messages(ADMIN_CHAT))
    await h.publish(position(tbus, "entry", corr=ok.correlation_id))
    fill = await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "Filled", timeout=5, after=n)
    assert "BUY 4 × SPY 11/20/26 590C @ $2.15" in visible(fill["text"])
    assert fill["reply_to_message"]["message_id"] == card["message_id"]

    audits = [e for e in await read_stream(tbus, "audit") if isinstance(e, AuditEvent)]
    assert any(a.actor == str(ADMIN) and a.action == "telegram.approve" for a in audits)


async def test_reject(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    sig = make_signal(tbus.clock.now(), sid="SIGREJECT1")
    card = await h.open_card(sig, ai={"status": "timeout"})
    assert "model review unavailable" in card["text"]
    answer = await h.press(card, f"r:{sig.id}")
    assert answer["text"] == "Rejected"
    [rej] = await approvals(tbus, "rejected")
    assert rej.decided_by == f"tg:{ADMIN}" and not await approvals(tbus, "approved")
    await h.pump()
    await h.wait_edit(ADMIN_CHAT, card["message_id"], "REJECTED")
    assert buttons_of(telegram_fake.message(ADMIN_CHAT, card["message_id"])) == []


async def test_half_size(make_bot, tbus) -> None:
    h = await make_bot()
    sig = make_signal(tbus.clock.now(), sid="SIGHALF1", qty=5)
    card = await h.open_card(sig, premium_at_risk=1075.0, risk_pct=1.075)
    assert "Half (2)" in str(card["reply_markup"])
    answer = await h.press(card, f"h:{sig.id}")
    assert answer["text"] == "Approved (half size)"
    [ok] = await approvals(tbus, "approved")
    assert ok.qty == 2
    await h.pump()
    edit = await h.wait_edit(ADMIN_CHAT, card["message_id"], "APPROVED")
    assert "Approved 2 of 5 (half size)" in visible(edit["text"])
    assert "$430.00" in visible(edit["text"])  # premium at risk scaled to the approved size


async def test_expiry_then_press_changes_nothing(make_bot, tbus, clock, telegram_fake) -> None:
    h = await make_bot()
    sig = make_signal(tbus.clock.now(), sid="SIGEXPIRE1")
    card = await h.open_card(sig)  # gamma_0dte cards live 90 s
    clock.shift(91)
    # pressed after the expiry, before the sweep: the claim refuses it
    answer = await h.press(card, f"a:{sig.id}")
    assert answer["text"] == "Expired"
    assert not await approvals(tbus, "approved")
    # the approval service's sweep expires it; the card is edited and loses its buttons
    await h.approvals.on_timer(clock.now())
    await h.pump()
    edit = await h.wait_edit(ADMIN_CHAT, card["message_id"], "EXPIRED")
    assert "no decision, nothing ordered" in visible(edit["text"])
    assert buttons_of(telegram_fake.message(ADMIN_CHAT, card["message_id"])) == []
    # a stale client still showing the old buttons: nothing changes
    answer = await h.press(card, f"h:{sig.id}", check_button=False)
    assert answer["text"] == "Expired"
    assert [e.decision for e in await approvals(tbus)] == ["pending", "expired"]
    assert (await read_card(tbus.redis, tbus, f"sig:{sig.id}"))["state"] == "expired"


async def test_double_press_one_decision(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    sig = make_signal(tbus.clock.now(), sid="SIGDOUBLE1")
    card = await h.open_card(sig)
    u1 = telegram_fake.press_button(ADMIN, ADMIN_CHAT, card["message_id"], f"a:{sig.id}")
    u2 = telegram_fake.press_button(ADMIN2, ADMIN_CHAT, card["message_id"], f"r:{sig.id}")
    u3 = telegram_fake.press_button(ADMIN, ADMIN_CHAT, card["message_id"], f"a:{sig.id}")
    ids = [u["callback_query"]["id"] for u in (u1, u2, u3)]
    await telegram_fake.wait_for_async(lambda: all(telegram_fake.callback_answers(q) for q in ids), timeout=5)
    texts = [telegram_fake.callback_answers(q)[0]["text"] for q in ids]
    assert texts[0] == "Approved"
    assert texts[1].startswith("Already decided by @user1001") and "(approved)" in texts[1]
    assert texts[2].startswith("Already decided by")
    assert [e.decision for e in await approvals(tbus)] == ["pending", "approved"]


async def test_press_by_stranger_is_refused_and_audited(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    sig = make_signal(tbus.clock.now(), sid="SIGSTRANGER1")
    card = await h.open_card(sig)
    answer = await h.press(card, f"a:{sig.id}", user=STRANGER)
    assert answer["text"] == "Not authorized."
    assert [e.decision for e in await approvals(tbus)] == ["pending"]
    assert (await read_card(tbus.redis, tbus, f"sig:{sig.id}"))["state"] == "pending"
    refused = [e for e in await read_stream(tbus, "audit") if isinstance(e, AuditEvent) and e.action == "refused"]
    assert refused and refused[0].actor == str(STRANGER)
    # the card is untouched and an admin can still decide it
    assert telegram_fake.edits(ADMIN_CHAT, card["message_id"]) == []
    assert (await h.press(card, f"r:{sig.id}"))["text"] == "Rejected"


async def test_pending_card_survives_restart(make_bot, tbus, telegram_fake) -> None:
    h1 = await make_bot()
    sig = make_signal(tbus.clock.now(), sid="SIGRESTART1")
    card = await h1.open_card(sig)
    await h1.bot.stop()

    h2 = await make_bot()  # a new process: only Redis remembers the card
    answer = await h2.press(card, f"a:{sig.id}")
    assert answer["text"] == "Approved"
    await h2.pump()
    edit = await h2.wait_edit(ADMIN_CHAT, card["message_id"], "APPROVED")
    assert edit["message_id"] == card["message_id"]
    assert len([m for m in telegram_fake.sent_messages(ADMIN_CHAT) if "Approval needed" in (m.get("text") or "")]) == 1


async def test_approve_and_reject_commands(make_bot, tbus) -> None:
    h = await make_bot()
    s1 = make_signal(tbus.clock.now(), sid="SIGCMD1")
    s2 = make_signal(tbus.clock.now(), sid="SIGCMD2")
    await h.open_card(s1)
    await h.open_card(s2)
    listing = await h.command("/pending", contains="Waiting for approval")
    assert "/approve SIGCMD1" in listing["text"] and "/approve SIGCMD2" in listing["text"]
    reply = await h.command("/approve SIGCMD1", contains="Signal SIGCMD1")
    assert visible(reply["text"]) == "Signal SIGCMD1: approved"
    reply = await h.command("/reject SIGCMD1", contains="Signal SIGCMD1")
    assert "already decided by @user1001" in visible(reply["text"])
    reply = await h.command("/reject SIGCMD2", contains="Signal SIGCMD2")
    assert visible(reply["text"]).endswith("rejected")
    reply = await h.command("/approve NOPE", contains="NOPE")
    assert "unknown id" in reply["text"]
    assert sorted(e.decision for e in await approvals(tbus)) == ["approved", "pending", "pending", "rejected"]
