"""Chat commands. Every handler runs behind :func:`guard` (allow-list check, refusal +
audit for anyone else, one audit record per admin command, once per update)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from bot.telegram.callbacks import pack
from bot.telegram.context import BotContext
from bot.telegram.names import actor
from bot.telegram.pnl import PERIODS, realized_pnl
from bot.telegram.render import clip
from bot.telegram.strategies import strategy_buttons, strategy_rows
from bot.telegram.views import contract_label
from core.approvals.claims import ClaimResult, pending_cards, read_card
from core.approvals.decide import decide_report, decide_signal
from core.approvals.policy import current_policy
from core.bus.events import ControlEvent
from core.control.halt import read_halt, set_halt
from core.domain.signal import Signal
from core.format.numbers import option_price
from core.ledger.reader import UNREADABLE
from core.state.account import open_positions
from core.state.status import collect_status

log = logging.getLogger("quanticity.telegram.commands")

REPORT_KINDS = ("premarket", "intraday", "close")

# (command, usage, description) - registered with setMyCommands and shown by /help
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("status", "", "mode, halt, feeds, broker, day P&L"),
    ("positions", "", "open positions"),
    ("pnl", "[day|week|month|year]", "realized P&L to date, from the trade ledger"),
    ("pending", "", "what waits for approval"),
    ("approve", "ID", "approve a signal or a report"),
    ("reject", "ID", "reject a signal or a report"),
    ("mode", "", "show / switch the approval mode"),
    ("halt", "[reason]", "halt trading now (persists until /resume)"),
    ("resume", "", "resume trading (asks to confirm)"),
    ("flatten", "", "close every position at market (asks to confirm)"),
    ("close", "ID", "close one position at market"),
    ("report", "premarket|intraday|close", "build a report now"),
    ("strategies", "", "enable / disable strategies"),
    ("help", "", "this list"),
)


@dataclass
class Request:
    user_id: int
    chat_id: int
    message_id: int
    args: list[str]

    @property
    def by(self) -> str:
        return actor(self.user_id)

    @property
    def idem(self) -> str:
        return f"reply:{self.chat_id}:{self.message_id}"


Command = Callable[[BotContext, Request], Awaitable[None]]


def guard(ctx: BotContext, name: str, fn: Command | None) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Any]:
    """The PTB callback of command ``name`` (``fn`` None: an unknown command)."""

    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user, chat, msg = update.effective_user, update.effective_chat, update.effective_message
        if user is None or chat is None or msg is None:
            return
        if not await ctx.first_time(update.update_id):
            return
        command = name
        if fn is None:
            command = (msg.text or "/").split()[0][1:].split("@")[0]
        if not ctx.auth.allowed(user.id, chat.id):
            await ctx.refuse(user.id, chat.id, f"/{command}")
            return
        await ctx.names.remember(user)
        req = Request(user.id, chat.id, msg.message_id, [clip(a, 200) for a in (context.args or [])])
        await ctx.audit(str(user.id), f"telegram.{command}" if fn else "telegram.unknown_command",
                        {"chat_id": str(chat.id), "args": req.args[:5]})
        try:
            if fn is None:
                await ctx.send(req.chat_id, ctx.renderer.reply("unknown_command", name=clip(command, 32)),
                               idem=req.idem)
            else:
                await fn(ctx, req)
        except Exception:
            log.exception("command /%s failed", command)
            await ctx.send(req.chat_id, ctx.renderer.reply("failed"), idem=req.idem + ":failed")

    return handler


async def _reply(ctx: BotContext, req: Request, text: str, buttons: Any = None) -> None:
    await ctx.send(req.chat_id, text, idem=req.idem, buttons=buttons)


# ------------------------------------------------------------------ information
async def cmd_help(ctx: BotContext, req: Request) -> None:
    await _reply(ctx, req, ctx.renderer.render("help", commands=COMMANDS))


async def cmd_status(ctx: BotContext, req: Request) -> None:
    s = await collect_status(ctx.bus, ctx.settings)
    s["feeds"] = sorted(s.pop("feed_age_s").items())
    s["halt_reason"] = clip(s.get("halt_reason"), 200)
    s["halted_by"] = await ctx.names.label(s["halted_by"]) if s.get("halted_by") else ""
    s["broker"] = clip(s.get("broker"), 40) if s.get("broker") else ""
    await _reply(ctx, req, ctx.renderer.render("status", s=s, stale_after_s=ctx.settings.risk.max_data_age_s))


async def position_rows(ctx: BotContext) -> list[dict[str, Any]]:
    raw = await ctx.redis.hgetall(ctx.keys.hash("positions"))
    rows = []
    for pid in sorted(raw):
        try:
            p = json.loads(raw[pid])
        except ValueError:
            continue
        if int(p.get("qty_open", 0) or 0) <= 0:
            continue
        rows.append({"id": clip(pid, 60), "label": contract_label(p.get("symbol", ""), p.get("expiry", ""),
                                                                   p.get("strike"), p.get("right", "")),
                     "qty_open": int(p.get("qty_open", 0)), "avg_entry": p.get("avg_entry"), "stop": p.get("stop"),
                     "strategy": clip(p.get("strategy", ""), 40), "unrealized": p.get("unrealized")})
    return rows


async def cmd_positions(ctx: BotContext, req: Request) -> None:
    await _reply(ctx, req, ctx.renderer.render("positions", rows=await position_rows(ctx)))


async def cmd_pnl(ctx: BotContext, req: Request) -> None:
    period = (req.args[0].lower() if req.args else "day")
    if period not in PERIODS:
        await _reply(ctx, req, ctx.renderer.reply("usage", name="pnl", usage=f"[{'|'.join(PERIODS)}]"))
        return
    try:
        summary = await realized_pnl(ctx.ledger, period, ctx.bus.clock.now())  # type: ignore[arg-type]
    except UNREADABLE as exc:  # the ledger is down / not there: one line, the bot carries on
        log.warning("/pnl: %s", exc)
        await _reply(ctx, req, ctx.renderer.render("pnl", p=None, error=clip(str(exc), 200)))
        return
    await _reply(ctx, req, ctx.renderer.render("pnl", p=summary.as_dict()))


async def pending_rows(ctx: BotContext) -> list[dict[str, Any]]:
    rows = []
    for item, expires in await pending_cards(ctx.redis, ctx.bus):
        card = await read_card(ctx.redis, ctx.bus, item)
        if card is None or card.get("state") != "pending":
            continue
        kind, _, ident = item.partition(":")
        p = card["payload"]
        if kind == "sig":
            try:
                s = Signal.model_validate(p["signal"])
                c = s.contract()
                label = contract_label(c.symbol, c.expiry, c.strike, c.right.value)
            except (KeyError, ValueError):
                continue
            rows.append({"id": clip(ident, 80), "title": f"{s.side.value} {s.qty} × {label}",
                         "detail": f"limit {option_price(s.limit)} · {clip(s.strategy, 40)}", "expires_ms": expires})
        elif kind == "rep":
            rows.append({"id": clip(ident, 80), "title": f"{clip(p.get('kind', ''), 20)} report",
                         "detail": clip(p.get("summary", ""), 80), "expires_ms": expires})
    return rows


async def cmd_pending(ctx: BotContext, req: Request) -> None:
    await _reply(ctx, req, ctx.renderer.render("pending", rows=await pending_rows(ctx)))


# ------------------------------------------------------------------ approvals
async def describe_claim(ctx: BotContext, res: ClaimResult, decision: str, half: bool = False) -> str:
    if res.ok:
        return {"approved": "approved (half size)" if half else "approved", "rejected": "rejected"}[decision]
    if res.status == "late" or (res.status == "already" and res.state == "expired"):
        return "expired"
    if res.status == "already":
        return f"already decided by {await ctx.names.label(res.decided_by)} ({res.state})"
    if res.status == "invalid":  # core.approvals.decide: the card's values cannot be traded
        return f"refused: the card holds invalid values ({res.decided_by}); it is closed as rejected"
    return "unknown id (nothing waiting under it)"


async def _decide(ctx: BotContext, req: Request, decision: str) -> None:
    name = "approve" if decision == "approved" else "reject"
    if len(req.args) != 1:
        await _reply(ctx, req, ctx.renderer.reply("usage", name=name, usage="ID"))
        return
    ident = req.args[0]
    kind = "signal"
    if ident.startswith(("sig:", "rep:")):
        kind = "signal" if ident.startswith("sig:") else "report"
        ident = ident[4:]
    res = ClaimResult("unknown", "", "")
    if kind == "signal":
        res = await decide_signal(ctx.bus, ident, decision, req.by)
    if res.status == "unknown":
        rep = await decide_report(ctx.bus, ident, decision, req.by)
        if rep.status != "unknown":
            kind, res = "report", rep
    text = await describe_claim(ctx, res, decision)
    await ctx.audit(str(req.user_id), f"telegram.{name}.result", {"kind": kind, "id": ident, "result": res.status,
                                                                 "state": res.state})
    await _reply(ctx, req, ctx.renderer.reply("decision", item=f"{kind.capitalize()} {ident}", result=text))


async def cmd_approve(ctx: BotContext, req: Request) -> None:
    await _decide(ctx, req, "approved")


async def cmd_reject(ctx: BotContext, req: Request) -> None:
    await _decide(ctx, req, "rejected")


async def mode_buttons(ctx: BotContext, policy: str) -> list[list[tuple[str, str]]]:
    row = []
    for p in ("manual", "auto", "auto_if"):
        row.append((f"• {p}" if p == policy else p, await pack(ctx.redis, ctx.keys, "m", p)))
    return [row]


async def cmd_mode(ctx: BotContext, req: Request) -> None:
    policy = await current_policy(ctx.redis, ctx.keys, ctx.settings)
    text = ctx.renderer.render("mode", policy=policy, auto_if_pct=ctx.settings.approval.auto_if_max_risk_pct,
                               changed_by="")
    await _reply(ctx, req, text, await mode_buttons(ctx, policy))


# ------------------------------------------------------------------ control
async def cmd_halt(ctx: BotContext, req: Request) -> None:
    reason = clip(" ".join(req.args), 200) or "halted from Telegram"
    tx = ctx.bus.tx()
    await set_halt(ctx.bus, reason, req.by, tx=tx)
    tx.emit(ControlEvent, action="cancel_entries", by=req.by, reason=f"halt: {reason}")
    await tx.commit()
    await _reply(ctx, req, ctx.renderer.reply("halted", reason=reason))


async def cmd_resume(ctx: BotContext, req: Request) -> None:
    halt = await read_halt(ctx.redis, ctx.keys)
    if not halt.halted:
        await _reply(ctx, req, ctx.renderer.reply("not_halted"))
        return
    nonce = await ctx.new_confirmation("resume", req.user_id)
    buttons = [[("▶️ Confirm resume", await pack(ctx.redis, ctx.keys, "ok", nonce)),
                ("Cancel", await pack(ctx.redis, ctx.keys, "no", nonce))]]
    by = await ctx.names.label(halt.by) if halt.by else ""
    await _reply(ctx, req, ctx.renderer.reply("confirm_resume", reason=clip(halt.reason, 200), by=by), buttons)


async def cmd_flatten(ctx: BotContext, req: Request) -> None:
    count = len(await open_positions(ctx.redis, ctx.keys))
    nonce = await ctx.new_confirmation("flatten", req.user_id)
    buttons = [[("🧯 Confirm flatten", await pack(ctx.redis, ctx.keys, "ok", nonce)),
                ("Cancel", await pack(ctx.redis, ctx.keys, "no", nonce))]]
    await _reply(ctx, req, ctx.renderer.reply("confirm_flatten", count=count), buttons)


async def cmd_close(ctx: BotContext, req: Request) -> None:
    if len(req.args) != 1:
        await _reply(ctx, req, ctx.renderer.reply("usage", name="close", usage="ID"))
        return
    pid = req.args[0]
    raw = await ctx.redis.hget(ctx.keys.hash("positions"), pid)
    pos: dict[str, Any] = {}
    if raw:
        try:
            pos = json.loads(raw)
        except ValueError:
            pos = {}
    if not pos or int(pos.get("qty_open", 0) or 0) <= 0:
        await _reply(ctx, req, ctx.renderer.reply("no_position", position_id=pid))
        return
    await ctx.bus.publish(ctx.bus.make(ControlEvent, action="close", by=req.by, reason="telegram /close",
                                       args={"position_id": pid}))
    label = contract_label(pos.get("symbol", ""), pos.get("expiry", ""), pos.get("strike"), pos.get("right", ""))
    await _reply(ctx, req, ctx.renderer.reply("close_sent", position_id=pid, label=label))


async def cmd_report(ctx: BotContext, req: Request) -> None:
    kind = req.args[0].lower() if len(req.args) == 1 else ""
    if kind not in REPORT_KINDS:
        await _reply(ctx, req, ctx.renderer.reply("usage", name="report", usage="premarket|intraday|close"))
        return
    await ctx.bus.publish(ctx.bus.make(ControlEvent, action="report", by=req.by, reason="telegram /report",
                                       args={"kind": kind}))
    await _reply(ctx, req, ctx.renderer.reply("report_sent", kind=kind))


async def cmd_strategies(ctx: BotContext, req: Request) -> None:
    rows = await strategy_rows(ctx)
    await _reply(ctx, req, ctx.renderer.render("strategies", rows=rows, changed=""),
                 await strategy_buttons(ctx, rows))


HANDLERS: dict[str, Command] = {
    "status": cmd_status, "positions": cmd_positions, "pnl": cmd_pnl, "pending": cmd_pending,
    "approve": cmd_approve, "reject": cmd_reject, "mode": cmd_mode, "halt": cmd_halt, "resume": cmd_resume,
    "flatten": cmd_flatten, "close": cmd_close, "report": cmd_report, "strategies": cmd_strategies,
    "help": cmd_help, "start": cmd_help,
}
