"""Inline-button presses. Every press is checked against the allow-list first; anyone
else gets "Not authorized." and an audit record, and nothing else happens.

Card buttons call the atomic claim of ``core.approvals`` (``decide_signal`` /
``decide_report``): the first press wins, a second press or a press after expiry changes
nothing and is answered with who decided it / "expired". The card itself is edited when
the outcome event comes back on the ``approvals`` / ``reports`` stream.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from bot.telegram.callbacks import Callback, unpack
from bot.telegram.commands import describe_claim, mode_buttons
from bot.telegram.context import BotContext
from bot.telegram.names import actor
from bot.telegram.render import clip
from bot.telegram.strategies import known_strategy, strategy_buttons, strategy_rows
from core.approvals.decide import decide_report, decide_signal
from core.approvals.policy import POLICIES
from core.bus.events import ControlEvent
from core.control.halt import clear_halt

log = logging.getLogger("quanticity.telegram.buttons")
CARD_ACTIONS = {"a": "approve", "r": "reject", "h": "half"}


def handler(ctx: BotContext) -> Any:
    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        user = query.from_user
        message = query.message
        chat_id = message.chat.id if message is not None else None
        if not await ctx.first_time(update.update_id):
            return
        if not ctx.auth.allowed(user.id, chat_id):
            await ctx.refuse(user.id, chat_id if chat_id is not None else "?", f"button {query.data or ''}",
                             query=query)
            return
        await ctx.names.remember(user)
        cb = await unpack(ctx.redis, ctx.keys, query.data)
        if cb is None or message is None:
            await ctx.audit(str(user.id), "telegram.button.unknown", {"data": clip(query.data, 64)})
            await ctx.answer(query, "Unknown button.")
            return
        try:
            await dispatch(ctx, query, cb, user.id, chat_id, message.message_id)  # type: ignore[arg-type]
        except Exception:
            log.exception("button %s failed", cb.action)
            await ctx.answer(query, "Something went wrong; the error was logged.")

    return on_button


async def dispatch(ctx: BotContext, query: Any, cb: Callback, user_id: int, chat_id: int, message_id: int) -> None:
    by = actor(user_id)
    if cb.action in ("a", "r", "h"):
        decision = "rejected" if cb.action == "r" else "approved"
        half = cb.action == "h"
        res = await decide_signal(ctx.bus, cb.arg, decision, by, half=half)
        text = await describe_claim(ctx, res, decision, half)
        await ctx.audit(str(user_id), f"telegram.{CARD_ACTIONS[cb.action]}",
                        {"signal_id": cb.arg, "result": res.status, "state": res.state})
        await ctx.answer(query, text[:1].upper() + text[1:])
    elif cb.action in ("ra", "rr"):
        decision = "approved" if cb.action == "ra" else "rejected"
        res = await decide_report(ctx.bus, cb.arg, decision, by)
        text = await describe_claim(ctx, res, decision)
        await ctx.audit(str(user_id), f"telegram.report_{'approve' if cb.action == 'ra' else 'reject'}",
                        {"report_id": cb.arg, "result": res.status, "state": res.state})
        await ctx.answer(query, text[:1].upper() + text[1:])
    elif cb.action == "m":
        await _set_mode(ctx, query, cb.arg, user_id, chat_id, message_id)
    elif cb.action in ("se", "sd"):
        await _switch_strategy(ctx, query, cb.arg, cb.action == "se", user_id, chat_id, message_id)
    elif cb.action in ("ok", "no"):
        await _confirmation(ctx, query, cb.arg, cb.action == "ok", user_id, chat_id, message_id)


async def _set_mode(ctx: BotContext, query: Any, policy: str, user_id: int, chat_id: int, message_id: int) -> None:
    if policy not in POLICIES:
        await ctx.answer(query, "Unknown mode.")
        return
    by = actor(user_id)
    tx = ctx.bus.tx()
    tx.pipe.hset(ctx.keys.hash("runtime"), "approval_policy", policy)
    tx.emit(ControlEvent, action="set_policy", by=by, reason="telegram /mode", args={"policy": policy})
    tx.publish(ctx.audit_event(str(user_id), "telegram.mode", {"policy": policy}))
    await tx.commit()
    await ctx.answer(query, f"Approval mode: {policy}")
    text = ctx.renderer.render("mode", policy=policy, auto_if_pct=ctx.settings.approval.auto_if_max_risk_pct,
                               changed_by=await ctx.names.label(by))
    await ctx.edit(chat_id, message_id, text, idem=f"mode:{chat_id}:{message_id}:{ctx.bus.new_id()}",
                   buttons=await mode_buttons(ctx, policy))


async def _switch_strategy(ctx: BotContext, query: Any, name: str, enable: bool, user_id: int, chat_id: int,
                           message_id: int) -> None:
    if not await known_strategy(ctx, name):
        await ctx.answer(query, "Unknown strategy.")
        return
    by = actor(user_id)
    state = "enabled" if enable else "disabled"
    tx = ctx.bus.tx()
    tx.pipe.hset(ctx.keys.hash("strategies"), name, state)
    tx.emit(ControlEvent, action="strategy", by=by, reason="telegram /strategies",
            args={"name": name, "enabled": enable})
    tx.publish(ctx.audit_event(str(user_id), "telegram.strategy", {"name": clip(name, 40), "state": state}))
    await tx.commit()
    await ctx.answer(query, f"{clip(name, 40)} {state}")
    rows = await strategy_rows(ctx)
    changed = f"{clip(name, 40)} {state} by {await ctx.names.label(by)}."
    await ctx.edit(chat_id, message_id, ctx.renderer.render("strategies", rows=rows, changed=changed),
                   idem=f"strategies:{chat_id}:{message_id}:{ctx.bus.new_id()}",
                   buttons=await strategy_buttons(ctx, rows))


async def _confirmation(ctx: BotContext, query: Any, nonce: str, confirmed: bool, user_id: int, chat_id: int,
                        message_id: int) -> None:
    pending = await ctx.take_confirmation(nonce)
    idem = f"confirm:{chat_id}:{message_id}"
    if pending is None:
        await ctx.answer(query, ctx.renderer.reply("confirm_expired"))
        await ctx.edit(chat_id, message_id, ctx.renderer.reply("confirm_expired"), idem=idem)
        return
    by = actor(user_id)
    label = await ctx.names.label(by)
    action = pending.get("action")
    if not confirmed:
        await ctx.audit(str(user_id), f"telegram.{action}.cancelled", {})
        await ctx.answer(query, "Cancelled.")
        await ctx.edit(chat_id, message_id, ctx.renderer.reply("cancelled", by=label), idem=idem)
        return
    if action == "flatten":
        tx = ctx.bus.tx()
        tx.emit(ControlEvent, action="flatten", by=by, reason="telegram /flatten")
        tx.publish(ctx.audit_event(str(user_id), "telegram.flatten.confirmed", {}))
        await tx.commit()
        await ctx.answer(query, "Flatten requested.")
        await ctx.edit(chat_id, message_id, ctx.renderer.reply("flatten_sent", by=label), idem=idem)
    elif action == "resume":
        await clear_halt(ctx.bus, by, reason="resume from Telegram")
        await ctx.answer(query, "Trading resumed.")
        await ctx.edit(chat_id, message_id, ctx.renderer.reply("resumed", by=label), idem=idem)
    else:
        await ctx.answer(query, "Unknown confirmation.")
