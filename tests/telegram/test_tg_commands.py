"""Commands through the real PTB client: halt (persistent, survives a bot restart),
resume / flatten behind a confirm button, close, report, mode, strategies, status,
positions, pnl, help, and who may use them."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

from core.approvals.policy import current_policy
from core.bus.events import AuditEvent, ControlEvent
from core.clock.calendar import NY
from core.control.halt import read_halt
from core.ledger.store import LedgerStore
from tests.telegram._util import (
    ADMIN,
    ADMIN2,
    ADMIN_CHAT,
    STRANGER,
    buttons_of,
    eventually,
    position,
    read_stream,
    visible,
)


async def controls(bus, action: str | None = None) -> list[ControlEvent]:
    evs = [e for e in await read_stream(bus, "control") if isinstance(e, ControlEvent)]
    return [e for e in evs if action is None or e.action == action]


async def audits(bus) -> list[AuditEvent]:
    return [e for e in await read_stream(bus, "audit") if isinstance(e, AuditEvent)]


async def test_halt_persists_across_bot_restart_and_resume_needs_confirm(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    reply = await h.command("/halt vol <spike> & news", contains="HALTED")
    assert "vol &lt;spike&gt; &amp; news" in reply["text"]
    halt = await read_halt(tbus.redis, tbus.keys)
    assert halt.halted and halt.reason == "vol <spike> & news" and halt.by == f"tg:{ADMIN}"
    assert [e.action for e in await controls(tbus)] == ["halt", "cancel_entries"]
    assert any(a.action == "telegram.halt" and a.actor == str(ADMIN) for a in await audits(tbus))

    await h.bot.stop()
    h2 = await make_bot()  # the bot process restarts: the halt is Redis state
    assert (await read_halt(tbus.redis, tbus.keys)).halted
    status = await h2.command("/status", contains="Status")
    assert "HALTED" in status["text"] and "vol &lt;spike&gt;" in status["text"]

    prompt = await h2.command("/resume", contains="Resume trading?")
    assert (await read_halt(tbus.redis, tbus.keys)).halted  # nothing happens before the confirm
    ok, no = buttons_of(prompt)
    assert ok.startswith("ok:") and no.startswith("no:")
    answer = await h2.press(prompt, ok)
    assert answer["text"] == "Trading resumed."
    assert not (await read_halt(tbus.redis, tbus.keys)).halted
    await h2.wait_edit(ADMIN_CHAT, prompt["message_id"], "Trading resumed")
    assert [e.action for e in await controls(tbus)] == ["halt", "cancel_entries", "resume"]
    reply = await h2.command("/resume", contains="not halted")


async def test_flatten_only_after_confirm(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    prompt = await h.command("/flatten", contains="Flatten")
    assert await controls(tbus, "flatten") == []
    ok, _no = buttons_of(prompt)
    # cancel path first
    other = await h.command("/flatten", contains="Flatten")
    assert (await h.press(other, buttons_of(other)[1]))["text"] == "Cancelled."
    await h.wait_edit(ADMIN_CHAT, other["message_id"], "Cancelled by")
    assert await controls(tbus, "flatten") == []

    answer = await h.press(prompt, ok, user=ADMIN2)
    assert answer["text"] == "Flatten requested."
    [flat] = await controls(tbus, "flatten")
    assert flat.by == f"tg:{ADMIN2}"
    await h.wait_edit(ADMIN_CHAT, prompt["message_id"], "Flatten requested")
    # the confirm is single-use: a stale second press does nothing
    again = await h.press(prompt, ok, check_button=False)
    assert "expired" in again["text"]
    assert len(await controls(tbus, "flatten")) == 1


async def test_close_report_and_positions(make_bot, tbus) -> None:
    h = await make_bot()
    pos = {"symbol": "SPY", "strategy": "gamma_0dte", "right": "C", "strike": 590.0, "expiry": "2026-11-20",
           "qty_open": 2, "avg_entry": 2.15, "stop": 1.55, "multiplier": 100}
    await tbus.redis.hset(tbus.keys.hash("positions"), "pos-7", json.dumps(pos))
    listing = await h.command("/positions", contains="Open positions")
    assert "SPY 11/20/26 590C" in listing["text"] and "/close pos-7" in listing["text"]

    await h.command("/close pos-7", contains="Close requested")
    [close] = await controls(tbus, "close")
    assert close.args == {"position_id": "pos-7"} and close.by == f"tg:{ADMIN}"
    await h.command("/close nope", contains="No open position")
    assert len(await controls(tbus, "close")) == 1

    await h.command("/report intraday", contains="intraday report")
    [rep] = await controls(tbus, "report")
    assert rep.args == {"kind": "intraday"}
    await h.command("/report weekly", contains="Usage")
    assert len(await controls(tbus, "report")) == 1


async def test_mode_switch_is_what_the_policy_reads(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    msg = await h.command("/mode", contains="Approval mode")
    assert "manual" in msg["text"] and buttons_of(msg) == ["m:manual", "m:auto", "m:auto_if"]
    answer = await h.press(msg, "m:auto_if")
    assert answer["text"] == "Approval mode: auto_if"
    assert await tbus.redis.hget(tbus.keys.hash("runtime"), "approval_policy") == "auto_if"
    assert await current_policy(tbus.redis, tbus.keys, h.bot.settings) == "auto_if"
    [ev] = await controls(tbus, "set_policy")
    assert ev.args == {"policy": "auto_if"}
    edit = await h.wait_edit(ADMIN_CHAT, msg["message_id"], "auto_if")
    assert "Set by @user1001" in edit["text"]


async def test_strategies_toggle(make_bot, tbus) -> None:
    h = await make_bot()
    msg = await h.command("/strategies", contains="Strategies")
    assert "sd:gamma_0dte" in buttons_of(msg)
    await h.press(msg, "sd:gamma_0dte")
    assert await tbus.redis.hget(tbus.keys.hash("strategies"), "gamma_0dte") == "disabled"
    edit = await h.wait_edit(ADMIN_CHAT, msg["message_id"], "gamma_0dte disabled by")
    assert "se:gamma_0dte" in buttons_of(edit)
    [ev] = await controls(tbus, "strategy")
    assert ev.args == {"name": "gamma_0dte", "enabled": False}


async def test_pnl_by_new_york_date_from_the_ledger(make_bot, tbus, tmp_path) -> None:
    """/pnl reads the trade ledger (not the bus): a close only on the bus does not count."""
    path = tmp_path / "ledger.sqlite"
    h = await make_bot(sections={"ledger": {"sqlite_path": str(path)}})
    now_ny = tbus.clock.now().astimezone(NY)
    today = now_ny.replace(hour=0, minute=5, second=0, microsecond=0)
    old = today - timedelta(days=400)
    evs = []
    for pid, when, pnl in (("p1", today, 120.0), ("p2", today, -45.5), ("p3", old, 999.0)):
        ev = position(tbus, "closed", corr=pid, position_id=pid, realized_pnl=pnl)
        evs.append(ev.model_copy(update={"ts": int(when.astimezone(UTC).timestamp() * 1000)}))
    evs.append(position(tbus, "entry", corr="p4", position_id="p4"))  # not closed: no P&L
    store = LedgerStore(f"sqlite:///{path}", h.bot.settings.mode.value).open()
    store.write(evs)
    store.close()
    await tbus.publish(position(tbus, "closed", corr="p5", position_id="p5", realized_pnl=5000.0))  # bus only
    reply = await h.command("/pnl", contains="P&amp;L")
    text = visible(reply["text"])
    assert f"P&L · day {today.date().isoformat()}" in text
    assert "Realized +$74.50 · 2 trades · 1 won / 1 lost (50%)" in text
    assert "gamma_0dte: +$74.50 · 2 · 50%" in text and "999" not in text and "5,000" not in text
    assert "As of " in text
    reply = await h.command("/pnl year", contains="P&amp;L")
    assert "Realized +$74.50" in visible(reply["text"])
    await h.command("/pnl decade", contains="Usage: /pnl [day|week|month|year]")


async def test_status_help_and_unknown(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    status = await h.command("/status", contains="Status")
    text = visible(status["text"])
    assert "approval manual" in text and "Trading enabled" in text and "Day P&L" in text and "Feeds:" in text
    helptext = await h.command("/help", contains="admin bot")
    for name in ("status", "positions", "pnl", "pending", "approve", "reject", "mode", "halt", "resume",
                 "flatten", "close", "report", "strategies", "help"):
        assert f"/{name}" in helptext["text"]
    await h.command("/frobnicate", contains="Unknown command")
    # private chat of an admin works too
    await h.command("/status", chat=ADMIN, contains="Status")


async def test_strangers_and_foreign_groups_are_refused(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    reply = await h.command("/halt", user=STRANGER, chat=STRANGER)
    assert reply["text"] == "Not authorized."
    reply = await h.command("/status", user=STRANGER, chat=ADMIN_CHAT)  # a non-admin in the admin chat
    assert reply["text"] == "Not authorized."
    reply = await h.command("/status", user=ADMIN, chat=-999)  # an admin in some other group
    assert reply["text"] == "Not authorized."
    assert not (await read_halt(tbus.redis, tbus.keys)).halted
    assert await controls(tbus) == []
    refused = [a for a in await audits(tbus) if a.action == "refused"]
    assert [a.actor for a in refused] == [str(STRANGER), str(STRANGER), str(ADMIN)]
    assert all(a.detail["what"].startswith("/") for a in refused)
    # spam gets at most one refusal a minute per user and chat (every attempt is audited)
    n = len(telegram_fake.sent_messages(STRANGER))
    for _ in range(3):
        telegram_fake.send_command(STRANGER, STRANGER, "/status")
    await eventually(lambda: _count_refused(tbus), 6)
    assert len(telegram_fake.sent_messages(STRANGER)) == n


async def _count_refused(bus) -> int:
    return len([a for a in await audits(bus) if a.action == "refused"])


async def test_status_shows_the_ibkr_connection_and_a_delayed_data_downgrade(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    await tbus.redis.hset(tbus.keys.hash("broker"), mapping={"connected": "0", "name": "ibkr",
                                                             "account": "DU****567"})
    await tbus.redis.hset(tbus.keys.hash("feed_ibkr"), mapping={"connected": "1", "market_data_type": "3"})
    text = visible((await h.command("/status", contains="Status"))["text"])
    assert "Broker: NOT connected (ibkr)" in text
    assert "Market data: IBKR connected, delayed" in text
    await tbus.redis.hset(tbus.keys.hash("feed_ibkr"), "market_data_type", "1")
    text = visible((await h.command("/status", contains="Status"))["text"])
    assert "Market data: IBKR connected, live" in text
