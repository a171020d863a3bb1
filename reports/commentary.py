"""Premium commentary for report sections: the overseer's narrator when it is importable,
with this module's own deterministic text as the fallback, so a report never waits on (or
fails because of) a model.

:class:`Commentator` asks ``overseer.narratives.Narrator.narrate_commentary`` /
``narrate_daily_summary``; model text that passed the narrator's guards (numbers only from the
data, no links or mentions, sentence caps) is used as written. When the narrator answers with
its own template (no API key, budget, timeout, guard), or is missing, or raises, the text comes
from the functions below, which only use numbers of the report data. With
``reports.commentary: template`` the narrator is never asked (fully deterministic).

Commentary appears on premium pages only.
"""

from __future__ import annotations

import logging
from typing import Any

from core.format import numbers
from reports.model import FlowSummary, Levels, ReportData, SymbolMarket

log = logging.getLogger("quanticity.reports.commentary")


# the shared formatters (core.format.numbers), as the report pages and the posts show them
_p = numbers.price
_k = numbers.strike
_pct = numbers.pct
_money = numbers.signed_money
_big = numbers.compact_money
_n = numbers.plural


# ------------------------------------------------------------------ deterministic texts
# Each returns "" when its section has nothing to say (the page then shows its own "no data" note
# and the narrator is not asked).
def levels_text(levels: list[Levels]) -> str:
    if not levels:
        return ""
    parts = []
    for lv in levels[:3]:
        regime = ""
        if lv.zero_gamma is not None:
            regime = (" with spot above the flip (dealers long gamma, moves tend to be damped)"
                      if lv.spot >= lv.zero_gamma else
                      " with spot below the flip (dealers short gamma, moves tend to extend)")
        parts.append(f"{lv.symbol} at {_p(lv.spot)}{regime}: call wall {_k(lv.call_wall)}, put wall "
                     f"{_k(lv.put_wall)}, flip {_p(lv.zero_gamma)}, max pain {_k(lv.max_pain)}.")
    return " ".join(parts)


def moves_text(markets: list[SymbolMarket], phase: str) -> str:
    moves = [m for m in markets if m.change_pct is not None]
    if not moves:
        return ""
    return " ".join(f"{m.symbol} {m.direction} {phase} ({_pct(m.change_pct)}, last {_p(m.last)})."
                    for m in moves[:4])


def trades_text(data: ReportData) -> str:
    t = data.totals
    if not data.trades:
        return ""
    s = (f"{_n(t.trades_opened, 'trade')} opened and {t.trades_closed} closed ({t.wins} won, {t.losses} lost), "
         f"realized {_money(t.realized_pnl)}.")
    if t.best is not None and t.worst is not None and t.trades_closed > 1:
        s += f" Best {_money(t.best)}, worst {_money(t.worst)}."
    return s


def positions_text(data: ReportData) -> str:
    if not data.open_positions:
        return ""
    return (f"{_n(len(data.open_positions), 'position')} open with {numbers.money(data.account.premium_open)} "
            f"of premium at work; unrealized {_money(data.account.unrealized)}.")


def flow_text(flow: list[FlowSummary]) -> str:
    if not flow:
        return ""
    return " ".join(f"{f.symbol} flow {f.bias}: net call premium {_big(f.net_call_premium)}, net put premium "
                    f"{_big(f.net_put_premium)}, {_n(f.sweeps, 'sweep')}." for f in flow[:3])


def daily_text(data: ReportData) -> str:
    t = data.totals
    s = f"{data.primary_symbol or 'The market'} closed {data.direction}. " if data.direction != "unknown" else ""
    if t.trades_closed or t.trades_opened:
        s += (f"{_n(t.trades_closed, 'trade')} closed ({t.wins} won, {t.losses} lost) for {_money(t.realized_pnl)} "
              f"realized; {_n(t.open_positions, 'position')} carried.")
    else:
        s += "No trades today."
    if data.halted:
        s += " Trading is halted."
    elif t.alerts_raised:
        s += f" {_n(t.alerts_raised, 'alert')} raised, {t.alerts_active} still active."
    return s.strip()


# ------------------------------------------------------------------ data given to the narrator
def section_data(section: str, data: ReportData) -> dict[str, Any]:
    if section == "levels":
        return {lv.symbol: {"spot": lv.spot, "call_wall": lv.call_wall, "put_wall": lv.put_wall,
                            "zero_gamma": lv.zero_gamma, "max_pain": lv.max_pain, "vpin": lv.vpin}
                for lv in data.levels[:4]}
    if section == "moves":
        return {m.symbol: {"prev_close": m.prev_close, "last": m.last, "change_pct": m.change_pct,
                           "premarket_change_pct": m.premarket_change_pct} for m in data.markets[:4]}
    if section == "trades":
        return {"opened": data.totals.trades_opened, "closed": data.totals.trades_closed, "wins": data.totals.wins,
                "losses": data.totals.losses, "realized_pnl": data.totals.realized_pnl,
                "trades": [{"contract": t.contract, "strategy": t.strategy, "outcome": t.outcome,
                            "realized_pnl": t.realized_pnl, "return_pct": t.return_pct} for t in data.trades[:12]]}
    if section == "positions":
        return {"open": len(data.open_positions), "premium_open": data.account.premium_open,
                "unrealized": data.account.unrealized,
                "positions": [{"contract": p.contract, "qty": p.qty_open, "avg_entry": p.avg_entry}
                              for p in data.open_positions[:8]]}
    if section == "flow":
        return {f.symbol: {"bias": f.bias, "net_call_premium": f.net_call_premium,
                           "net_put_premium": f.net_put_premium, "sweeps": f.sweeps, "blocks": f.blocks}
                for f in data.flow[:4]}
    return {}


def daily_data(data: ReportData) -> dict[str, Any]:
    closed = [t for t in data.trades if t.status == "closed"]
    return {"date": data.day, "trades": len(closed), "wins": data.totals.wins, "losses": data.totals.losses,
            "realized_pnl": data.totals.realized_pnl, "best": data.totals.best, "worst": data.totals.worst,
            "alerts": data.totals.alerts_raised, "halted": data.halted, "direction": data.direction,
            "symbol": data.primary_symbol}


FALLBACKS = {
    "levels": lambda d: levels_text(d.levels),
    "moves": lambda d: moves_text(d.markets, "pre-market" if d.kind == "premarket" else "on the day"),
    "trades": trades_text,
    "positions": positions_text,
    "flow": lambda d: flow_text(d.flow),
}


class Commentator:
    """Section commentary and the daily summary; never raises, never blocks a report."""

    def __init__(self, ctx: Any, mode: str = "auto") -> None:
        self.ctx = ctx
        self.mode = mode
        self._narrator: Any = None
        self._tried = False

    def _get(self) -> Any:
        if self.mode != "auto":
            return None
        if not self._tried:
            self._tried = True
            if self.ctx is None:
                return None
            try:
                from overseer.narratives import Narrator

                self._narrator = Narrator.from_context(self.ctx)
            except Exception:
                log.warning("overseer narrator unavailable; report commentary uses templates", exc_info=True)
                self._narrator = None
        return self._narrator

    async def section(self, section: str, data: ReportData) -> str:
        fallback = FALLBACKS[section](data)
        if not fallback:
            return ""
        narrator = self._get()
        if narrator is None:
            return fallback
        try:
            n = await narrator.narrate_commentary(section, section_data(section, data))
        except Exception:
            log.warning("narrator failed for section %s", section, exc_info=True)
            return fallback
        return n.text if getattr(n, "source", "") == "model" and n.text else fallback

    async def daily(self, data: ReportData) -> str:
        fallback = daily_text(data)
        narrator = self._get()
        if narrator is None:
            return fallback
        try:
            n = await narrator.narrate_daily_summary(daily_data(data))
        except Exception:
            log.warning("narrator failed for the daily summary", exc_info=True)
            return fallback
        return n.text if getattr(n, "source", "") == "model" and n.text else fallback

    async def for_report(self, data: ReportData) -> dict[str, str]:
        """Commentary of every section a report kind shows (sequential: deterministic order)."""
        sections = {"premarket": ("moves", "levels", "positions"),
                    "intraday": ("trades", "positions", "flow"),
                    "close": ("trades", "levels")}[data.kind]
        out = {s: await self.section(s, data) for s in sections}
        if data.kind == "close":
            out["daily"] = await self.daily(data)
        return out

    async def aclose(self) -> None:
        if self._narrator is not None:
            try:
                await self._narrator.aclose()
            except Exception:
                log.debug("closing the narrator failed", exc_info=True)
