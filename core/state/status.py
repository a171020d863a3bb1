"""What ``main.py status`` and Telegram ``/status`` show: one read of the shared state."""

from __future__ import annotations

import json
from typing import Any

from core.bus.bus import Bus
from core.config.model import Settings
from core.control.halt import read_halt
from core.format.numbers import money, pct, plural, signed_money
from core.pnl import NY, day_realized, open_pnl
from core.runtime.heartbeat import read_heartbeats, service_view, wall_ms
from core.state.account import data_ages, open_positions, read_account
from core.state.closed_today import closed_today

MARKET_DATA_TYPES = {"1": "live", "2": "frozen", "3": "delayed", "4": "delayed-frozen"}


async def collect_status(bus: Bus, settings: Settings) -> dict[str, Any]:
    now = bus.clock.now()
    redis, keys = bus.redis, bus.keys
    halt = await read_halt(redis, keys)
    acct = await read_account(redis, keys, settings, now)
    positions = await open_positions(redis, keys)
    ages = await data_ages(redis, keys, list(settings.market.symbols), now)
    broker = await redis.hgetall(keys.hash("broker"))
    feed = await redis.hgetall(keys.hash("feed_ibkr"))  # only when market data comes from IBKR
    policy = await redis.hget(keys.hash("runtime"), "approval_policy") or settings.approval.policy
    pending = await redis.zcard(keys.zset("cards"))
    beats = await read_heartbeats(redis, keys)
    now_wall = wall_ms()  # heartbeats are wall-clock times (see core.runtime.heartbeat)
    # the day's P&L by the one rule (core.pnl): realized = trades closed today; open = what open
    # positions booked so far (entry commissions, partial exits) + their mark-to-market
    closed = await closed_today(redis, keys, now)
    realized = day_realized(closed, now.astimezone(NY).date())
    held = open_pnl((float(p.get("realized_pnl") or 0.0) for p in positions), acct.unrealized)
    return {
        "now": now.isoformat(),
        "mode": settings.mode.value,
        "approval_policy": policy,
        "halted": halt.halted,
        "halt_reason": halt.reason,
        "halted_by": halt.by,
        "broker_connected": broker.get("connected") == "1" if broker else None,
        "broker": broker.get("name") if broker else None,
        "broker_account": broker.get("account") if broker else None,  # masked by the adapter
        "market_data_connected": feed.get("connected") == "1" if feed else None,
        # what IB actually serves: 1 live, 2 frozen, 3 delayed, 4 delayed-frozen (None: not IBKR)
        "market_data_type": MARKET_DATA_TYPES.get(str(feed.get("market_data_type", ""))) if feed else None,
        "account_value": acct.account_value,
        "daily_pnl": round(acct.daily_pnl, 2),
        "realized_today": round(acct.realized_today, 2),
        "unrealized": round(acct.unrealized, 2),
        "day_pnl": round(realized + held, 2),
        "realized_closed": realized,
        "trades_closed": len(closed),
        "open_pnl": held,
        "drawdown_pct": round(acct.drawdown_pct, 3),
        "open_positions": len(positions),
        "positions": positions,
        "pending_cards": pending,
        # inputs refused at a boundary and counted (core.market.quote_check: "market:<reason>")
        "rejections": {k: int(v) for k, v in sorted((await redis.hgetall(keys.hash("rejections"))).items())},
        "feed_age_s": {k: (None if v == float("inf") else round(v, 1)) for k, v in ages.items()},
        # per service of `run` (none under `demo`): ok / errors / stalled / stopped, heartbeat age
        "services": {name: service_view(rec, now_wall) for name, rec in sorted(beats.items())},
    }


def _connection(flag: bool | None) -> str:
    return "connected" if flag else "NOT connected" if flag is False else "unknown"


def _service(name: str, v: dict[str, Any]) -> str:
    """``execution ok 0.4s`` / ``telegram STALLED 45s (consume 45s > 31s) 3 errors: <last error>``."""
    state = str(v.get("state"))
    text = f"{name} {state.upper() if state in ('stalled', 'errors') else state}"
    if v.get("age_s") is not None:
        text += f" {v['age_s']:.1f}s"
    late = [f"{loop} {lv['age_s']:.0f}s > {lv['budget_s']:.0f}s" for loop, lv in v.get("loops", {}).items()
            if lv.get("state") == "stalled"]
    if late:
        text += f" ({', '.join(late)})"
    if v.get("errors"):
        text += f" {plural(v['errors'], 'error')}"
        if state in ("stalled", "errors") and v.get("last_error"):
            text += f": {str(v['last_error'])[:80]}"
    return text


def format_status(s: dict[str, Any]) -> str:
    halt = f"HALTED ({s['halt_reason']} by {s['halted_by']})" if s["halted"] else "trading enabled"
    broker = f"broker: {_connection(s['broker_connected'])}"
    if s.get("broker_account"):
        broker += f" ({s['broker']} {s['broker_account']})"
    lines = [f"mode {s['mode']} · approval {s['approval_policy']} · {halt}", broker]
    if s.get("market_data_connected") is not None:
        lines.append(f"market data: IBKR {_connection(s['market_data_connected'])}, "
                     f"{s['market_data_type'] or 'unknown type'}")
    lines += [
        (f"day P&L {signed_money(s['day_pnl'])} (realized {signed_money(s['realized_closed'])} from "
         f"{plural(s['trades_closed'], 'closed trade')}, open {signed_money(s['open_pnl'])}) on "
         f"{money(s['account_value'])}; drawdown {pct(s['drawdown_pct'], False)}"),
        f"open positions {s['open_positions']} · pending approvals {s['pending_cards']}",
        "rejected inputs: " + (", ".join(f"{k} {v}" for k, v in s.get("rejections", {}).items()) or "none"),
        "feeds: " + ", ".join(f"{k} {'n/a' if v is None else f'{v:.0f}s'}" for k, v in s["feed_age_s"].items()),
    ]
    services = s.get("services") or {}
    if services:
        lines.append("services (heartbeat age):")
        lines += [f"  {_service(n, v)}" for n, v in services.items()]
    else:
        lines.append("services: no heartbeats (nothing of this mode ran under `run`)")
    for p in s["positions"]:
        lines.append("  " + json.dumps({k: p.get(k) for k in ("symbol", "expiry", "strike", "right", "qty_open",
                                                                "avg_entry", "stop")}))
    return "\n".join(lines)
