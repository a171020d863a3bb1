"""Strategy switches: hash ``strategies`` (name -> "enabled" / "disabled"), which the
signal and risk services read; an unset name follows its config ``enabled``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.telegram.callbacks import pack
from bot.telegram.render import clip

if TYPE_CHECKING:
    from bot.telegram.context import BotContext


async def strategy_rows(ctx: BotContext) -> list[dict[str, Any]]:
    switches = await ctx.redis.hgetall(ctx.keys.hash("strategies"))
    names = sorted(set(ctx.settings.strategies) | set(switches))
    rows = []
    for name in names:
        cfg = ctx.settings.strategies.get(name)
        state = switches.get(name)
        enabled = state == "enabled" or (state is None and cfg is not None and cfg.enabled)
        rows.append({"name": clip(name, 40), "enabled": enabled, "raw": name})
    return rows


async def strategy_buttons(ctx: BotContext, rows: list[dict[str, Any]]) -> list[list[tuple[str, str]]]:
    out = []
    for r in rows:
        action, label = ("sd", f"Disable {r['name']}") if r["enabled"] else ("se", f"Enable {r['name']}")
        out.append([(label, await pack(ctx.redis, ctx.keys, action, r["raw"]))])
    return out


async def known_strategy(ctx: BotContext, name: str) -> bool:
    return name in ctx.settings.strategies or bool(await ctx.redis.hexists(ctx.keys.hash("strategies"), name))
