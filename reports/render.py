"""HTML pages per report kind and tier, from ``templates/reports/*.html.j2``.

Redaction is structural: :func:`build_view` turns :class:`ReportData` into the dict a tier's
template gets, and a lower tier's dict simply does not contain what it must not show, so a
template slip cannot leak it.

- **premium**: everything — sizes, fill prices, strikes, analytics (GEX map, VPIN, OBI), flow
  numbers, realized P&L per trade and strategy, the account, signals and fills, commentary,
  and every chart (price paths with entries/exits for the index symbols and every symbol traded or
  held, GEX by strike for the index symbols, cumulative P&L, P&L by strategy).
- **basic**: trades with contract, fill prices and % result (no sizes, no dollar P&L, no
  strategy names), open positions by contract and entry price, summary levels (walls, flip,
  max pain), index moves, flow bias words, alert headlines (no messages; the subject only when it
  is a market symbol), counts; price charts
  whose hover text has no size. No account numbers.
- **free**: a teaser — the day's direction, number of trades and the win/loss count, the
  session calendar. No strike, no price, no size, no dollar figure, no chart.

:func:`summary_text` is the ReportEvent summary: built from free-tier facts only, so it can be
posted anywhere.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from core.format import numbers
from core.format.jinja import register as register_number_filters
from reports import charts
from reports.model import ReportData
from reports.values import ny_label

Tier = Literal["premium", "basic", "free"]
TIERS: tuple[Tier, ...] = ("premium", "basic", "free")
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates" / "reports"
LABELS = {"premarket": "Pre-market", "intraday": "Intraday", "close": "Market close"}
PHASE = {"premarket": "pre-market", "intraday": "so far today", "close": "on the day"}


# ------------------------------------------------------------------ formatting filters
# the shared formatters (core.format.numbers); the fmt_* names stay for the recap pages and tests
fmt_price = numbers.price
fmt_strike = numbers.strike
fmt_money = numbers.money
fmt_pct = numbers.pct
fmt_num = numbers.num
fmt_int = numbers.integer
fmt_big = numbers.compact


def fmt_date_long(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d:%A, %B} {d.day}, {d.year}"


@lru_cache(maxsize=1)
def env() -> Environment:
    e = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), autoescape=select_autoescape(["html", "j2"]),
                    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return register_number_filters(e)


# ------------------------------------------------------------------ views (redaction happens here)
def _headline(d: ReportData) -> str:
    if not d.primary_symbol or d.direction == "unknown":
        return f"{LABELS[d.kind]} report"
    verb = {"premarket": "is indicated", "intraday": "is trading", "close": "closed"}[d.kind]
    if d.direction == "flat":
        return f"{d.primary_symbol} {verb} flat {PHASE[d.kind] if d.kind == 'premarket' else ''}".strip()
    return f"{d.primary_symbol} {verb} {d.direction} {PHASE[d.kind] if d.kind != 'close' else ''}".strip()


def _common(d: ReportData, tier: Tier) -> dict[str, Any]:
    t = d.totals
    cal = d.calendar
    return {
        "tier": tier, "kind": d.kind, "label": LABELS[d.kind], "day": d.day, "date_long": fmt_date_long(d.day),
        "generated": d.generated, "headline": _headline(d), "primary_symbol": d.primary_symbol,
        "direction": d.direction, "halted": d.halted,
        "calendar": {"weekday": cal.weekday, "is_session": cal.is_session, "open": cal.open, "close": cal.close,
                     "early_close": cal.early_close, "next_session": cal.next_session,
                     "next_session_long": fmt_date_long(cal.next_session) if cal.next_session else "",
                     "next_open": cal.next_open, "next_close": cal.next_close,
                     "next_early_close": cal.next_early_close, "upcoming": list(cal.upcoming)},
        "counts": {"trades_opened": t.trades_opened, "trades_closed": t.trades_closed, "wins": t.wins,
                   "losses": t.losses, "open_positions": t.open_positions},
    }


def _free(d: ReportData) -> dict[str, Any]:
    v = _common(d, "free")
    v["markets"] = [{"symbol": m.symbol, "direction": m.direction} for m in d.markets]
    return v


def _basic(d: ReportData) -> dict[str, Any]:
    v = _common(d, "basic")
    t = d.totals
    v["counts"].update(signals=t.signals, approved=t.approved, rejected=t.rejected, win_rate_pct=t.win_rate_pct,
                       alerts_raised=t.alerts_raised, alerts_active=t.alerts_active)
    v["markets"] = [{"symbol": m.symbol, "prev_close": m.prev_close, "premarket_last": m.premarket_last,
                     "open": m.open, "last": m.last, "high": m.high, "low": m.low, "change_pct": m.change_pct,
                     "premarket_change_pct": m.premarket_change_pct, "direction": m.direction} for m in d.markets]
    v["levels"] = [{"symbol": lv.symbol, "spot": lv.spot, "call_wall": lv.call_wall, "put_wall": lv.put_wall,
                    "zero_gamma": lv.zero_gamma, "max_pain": lv.max_pain, "asof": lv.asof} for lv in d.levels]
    v["trades"] = [{"entry_time": tr.entry_time, "contract": tr.contract, "direction": tr.direction,
                    "horizon": tr.horizon, "entry_price": tr.entry_price, "exit_price": tr.exit_price,
                    "exit_time": tr.exit_time, "return_pct": tr.return_pct, "outcome": tr.outcome,
                    "status": tr.status} for tr in d.trades]
    v["open_positions"] = [{"contract": p.contract, "avg_entry": p.avg_entry} for p in d.open_positions]
    v["flow"] = [{"symbol": f.symbol, "bias": f.bias} for f in d.flow]
    # approved but never filled: what became of the order, no size, limit or strategy
    v["unfilled"] = [{"time": u.time, "contract": u.contract, "text": u.text} for u in d.unfilled]
    v["premarket"] = d.premarket.model_dump(mode="json") if d.premarket else None  # levels only, like v.levels
    symbols = {m.symbol for m in d.markets} | {lv.symbol for lv in d.levels}
    # the subject only when it names a market symbol (it may otherwise name a strategy, premium-only)
    v["alerts"] = [{"time": a.time, "severity": a.severity, "code": a.code,
                    "subject": a.subject if a.subject in symbols else "", "state": a.state} for a in d.alerts]
    return v


def _premium(d: ReportData, commentary: dict[str, str]) -> dict[str, Any]:
    v = _common(d, "premium")
    dump = d.model_dump(mode="json")
    v["counts"].update(dump["totals"])
    for key in ("markets", "levels", "flow", "fills", "trades", "strategies", "open_positions", "alerts", "account",
                "unfilled", "premarket"):
        v[key] = dump[key]
    unfilled = {u.signal_id: u.text for u in d.unfilled}
    # signals the rules refused are summarized by reason (a busy day has hundreds); the rest are listed
    refused: dict[str, int] = {}
    v["signals"] = []
    for row in dump["signals"]:
        if row["verdict"] == "reject":
            reason = row["verdict_reason"] or "rejected"
            refused[reason] = refused.get(reason, 0) + 1
        else:
            row["unfilled"] = unfilled.get(row["signal_id"], "")
            v["signals"].append(row)
    v["refused"] = [{"reason": r, "count": n} for r, n in sorted(refused.items(), key=lambda kv: (-kv[1], kv[0]))]
    v["commentary"] = dict(commentary)
    v["periods"] = dump["periods"]  # close report: week / month to date from the ledger (premium only)
    return v


def build_view(d: ReportData, tier: Tier, commentary: dict[str, str] | None = None) -> dict[str, Any]:
    if tier == "premium":
        return _premium(d, commentary or {})
    if tier == "basic":
        return _basic(d)
    if tier == "free":
        return _free(d)
    raise ValueError(f"unknown tier {tier!r}")


# ------------------------------------------------------------------ charts per tier
def _pnl_span(d: ReportData) -> tuple[str, str]:
    """The cumulative P&L chart's x range: the session's open to the report (or the close)."""
    if not d.calendar.open:
        return "", ""
    start = f"{d.day} {d.calendar.open}:00"
    end = ny_label(d.generated_ms, "%Y-%m-%d %H:%M:%S")
    return start, min(end, f"{d.day} {d.calendar.close}:00")


def tier_charts(d: ReportData, tier: Tier) -> dict[str, Any]:
    """HTML fragments (fixed div ids) for the tier; free gets none. A price path of fewer than
    ``charts.MIN_POINTS`` minutes is not drawn: its symbol goes in ``price_pending`` instead."""
    out: dict[str, Any] = {"price": [], "price_pending": [], "gex": [], "pnl": "", "strategy": ""}
    if tier == "free":
        return out
    premium = tier == "premium"
    # price paths: the index symbols and every symbol traded today or held; GEX maps: index symbols
    # (every symbol with levels on the pre-market page, whose subject they are)
    traded = {t.symbol for t in d.trades} | {p.symbol for p in d.open_positions}
    shown = [m for m in d.markets if m.symbol in d.index_symbols or m.symbol in traded]
    out["price"] = [Markup(charts.price_figure(m, d.trades, show_size=premium)) for m in shown
                    if len(m.times) >= charts.MIN_POINTS]
    out["price_pending"] = [m.symbol for m in shown if len(m.times) < charts.MIN_POINTS]
    if premium:
        out["gex"] = [Markup(charts.gex_figure(lv)) for lv in d.levels
                      if lv.gex_by_strike and (d.kind == "premarket" or lv.symbol in d.index_symbols)]
        if len(d.pnl_times) >= charts.MIN_POINTS:
            start, end = _pnl_span(d)
            out["pnl"] = Markup(charts.pnl_cumulative_figure(d.pnl_times, d.pnl_values, start, end))
        if d.strategies:
            out["strategy"] = Markup(charts.pnl_strategy_figure(d.strategies))
    return out


def render_page(d: ReportData, tier: Tier, commentary: dict[str, str] | None = None,
                plotlyjs: charts.PlotlyJs = "inline") -> str:
    view = build_view(d, tier, commentary)
    figs = tier_charts(d, tier)
    has_figs = bool(figs["price"] or figs["gex"] or figs["pnl"] or figs["strategy"])
    script = Markup(charts.plotly_script(plotlyjs)) if has_figs else Markup("")
    name = "free.html.j2" if tier == "free" else f"{d.kind}.html.j2"
    return env().get_template(name).render(v=view, charts=figs, plotly_script=script,
                                           csp=charts.content_security_policy(has_figs and plotlyjs == "cdn"))


def render_all(d: ReportData, commentary: dict[str, str] | None = None,
               plotlyjs: charts.PlotlyJs = "inline") -> dict[Tier, str]:
    return {tier: render_page(d, tier, commentary, plotlyjs) for tier in TIERS}


def file_stem(d: ReportData, suffix: str = "") -> str:
    """``2026-11-20-close`` (+ ``-<suffix>`` for on-demand builds)."""
    return f"{d.day}-{d.kind}" + (f"-{suffix}" if suffix else "")


def write_pages(pages: dict[Tier, str], out_dir: str | os.PathLike[str], stem: str) -> dict[str, str]:
    """Write ``<out_dir>/<stem>-<tier>.html`` (atomically: temp file + rename); returns tier -> path."""
    base = Path(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    for tier in TIERS:
        path = base / f"{stem}-{tier}.html"
        tmp = base / f".{stem}-{tier}.html.tmp"
        tmp.write_bytes(pages[tier].encode("utf-8"))
        os.replace(tmp, path)
        paths[tier] = str(path)
    return paths


# ------------------------------------------------------------------ the posted summary
def summary_text(d: ReportData) -> str:
    """One short paragraph with free-tier facts only (directions, counts, calendar words)."""
    when = f"{fmt_date_long(d.day)}"
    moves = [f"{m.symbol} {m.direction}" for m in d.markets[:4] if m.direction != "unknown"]
    t = d.totals
    parts = [f"{LABELS[d.kind]} report for {when}."]
    if moves:
        parts.append(f"{', '.join(moves)} {PHASE[d.kind]}.")
    if d.kind == "premarket":
        if d.levels:
            parts.append("Levels to watch: call and put walls, the gamma flip and max pain from the latest GEX map.")
        if d.calendar.early_close:
            parts.append(f"Early close today at {d.calendar.close} New York time.")
        if t.open_positions:
            parts.append(f"{numbers.plural(t.open_positions, 'position')} carried overnight.")
    else:
        parts.append(f"{numbers.plural(t.trades_opened, 'trade')} opened, "
                     f"{t.trades_closed} closed ({t.wins} won, {t.losses} lost); "
                     f"{t.open_positions} still open.")
        if d.halted:
            parts.append("Trading is halted.")
        elif t.alerts_raised:
            parts.append(f"{numbers.plural(t.alerts_raised, 'alert')} raised.")
    return " ".join(parts)
