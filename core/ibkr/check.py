"""``python main.py ibkr check``: can this machine reach TWS / IB Gateway, and what does the account hold?

One read-only API session with the ``check`` client id (so it never collides with a running
market or execution process), then disconnect. Raises :class:`IbUnavailable` with one line when
the connection cannot be made (refused port, no handshake, client id in use): the CLI prints it
and exits 2. Account numbers are shown unmasked here only (this is the operator's own terminal);
everywhere else they are masked.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from core.config.model import Settings
from core.ibkr.connection import IbConnection, IbUnavailable

__all__ = ["IbUnavailable", "check", "format_check"]

REQUEST_TIMEOUT_S = 10.0


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and abs(f) < 1e300 else None


def _expiry(text: str) -> str | None:
    t = (text or "")[:8]
    return f"{t[:4]}-{t[4:6]}-{t[6:8]}" if len(t) == 8 and t.isdigit() else None


def _instrument(c: Any) -> dict[str, Any]:
    opt = c.secType in ("OPT", "FOP")
    return {"symbol": c.symbol, "sec_type": c.secType, "expiry": _expiry(c.lastTradeDateOrContractMonth) if opt else None,
            "strike": _num(c.strike) if opt else None, "right": (c.right or "")[:1] or None if opt else None}


async def check(settings: Settings, host: str | None = None, port: int | None = None, client_id: int | None = None,
                timeout: float | None = None) -> dict[str, Any]:
    """Connect (role ``check``, read-only), read the account, disconnect."""
    s = settings.ibkr
    update: dict[str, Any] = {"client_ids": {**s.client_ids, "check": client_id if client_id is not None
                                              else s.client_ids["check"]}}
    if host:
        update["host"] = host
    if port:
        update["port"] = int(port)
    if timeout:
        update["connect_timeout_s"] = float(timeout)
    ibs = s.model_copy(update=update)
    conn = IbConnection(ibs, "check")
    await conn.start()
    try:
        ib = conn.ib
        wait = min(REQUEST_TIMEOUT_S, ibs.connect_timeout_s * 2)
        summary = await asyncio.wait_for(ib.accountSummaryAsync(), wait)
        trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), wait)
        accounts = list(ib.managedAccounts())
        account = ibs.account or (accounts[0] if accounts else None)
        net_liq = next((_num(v.value) for v in summary if v.tag == "NetLiquidation" and v.account == account
                        and v.currency in ("USD", "BASE", "")), None)
        positions = [{**_instrument(p.contract), "account": p.account, "qty": _num(p.position),
                      "avg_cost": _num(p.avgCost)} for p in ib.positions()]
        orders = [{**_instrument(t.contract), "order_id": t.order.orderId, "perm_id": t.order.permId,
                   "client_id": t.order.clientId, "action": t.order.action, "qty": _num(t.order.totalQuantity),
                   "order_type": t.order.orderType, "limit": _num(t.order.lmtPrice), "status": t.orderStatus.status,
                   "order_ref": t.order.orderRef or ""} for t in trades]
        return {"host": ibs.host, "port": ibs.port, "client_id": conn.client_id,
                "server_version": conn.server_version, "accounts": accounts, "account": account,
                "net_liquidation": net_liq, "positions": positions, "open_orders": orders}
    except (TimeoutError, ConnectionError) as exc:
        raise IbUnavailable(f"IBKR {ibs.host}:{ibs.port}: connected, but the account did not answer "
                            f"({type(exc).__name__})") from None
    finally:
        await conn.stop()


def _label(d: dict[str, Any]) -> str:
    if d.get("expiry"):
        return f"{d['symbol']} {d['expiry']} {d['strike']:g}{d['right'] or ''}"
    return f"{d['symbol']} ({d.get('sec_type') or '?'})"


def format_check(d: dict[str, Any]) -> str:
    """The human output of ``ibkr check``."""
    nl = d.get("net_liquidation")
    lines = [
        (f"IBKR {d.get('host')}:{d.get('port')} OK - server version {d.get('server_version')}, "
         f"client id {d.get('client_id')}"),
        f"accounts: {', '.join(d.get('accounts') or []) or '-'} (trading: {d.get('account') or '-'})",
        f"net liquidation: {'unknown' if nl is None else f'{nl:,.2f}'}",
        f"positions: {len(d.get('positions') or [])}",
    ]
    for p in d.get("positions") or []:
        lines.append(f"  {_label(p):28} qty {p['qty']:g}  avg cost {p['avg_cost'] or 0:,.2f}")
    lines.append(f"open orders: {len(d.get('open_orders') or [])}")
    for o in d.get("open_orders") or []:
        price = f" {o['limit']:g}" if o.get("limit") is not None else ""
        ref = f" ref {o['order_ref']}" if o.get("order_ref") else ""
        lines.append(f"  #{o['order_id']} (client {o['client_id']}) {o['action']} {o['qty']:g} {_label(o)} "
                     f"{o['order_type']}{price} {o['status']}{ref}")
    return "\n".join(lines)
