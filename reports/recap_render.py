"""The monthly recap's pages per tier, from ``templates/reports/recap*.html.j2``.

Redaction is structural, as for the daily reports (``reports.render``): each tier's view is built
field by field from :class:`reports.recap.RecapData` and a lower tier's view does not contain what
it must not show (the templates use ``StrictUndefined``, so reaching for it fails loudly).

- **premium**: everything — per-strategy and overall scorecards in dollars and in % of the account,
  best and worst trade with size and strategy, P&L by week (table and chart), every trade of the
  month with its size, the account size the percentages are of.
- **basic** (the daily reports' basic rule: no sizes, no dollar P&L, no strategy names, no account
  numbers): the overall scorecard with every dollar figure as % of the account, best and worst trade
  by contract with their % results, P&L by week in % of the account (table and chart), the month's
  trades by contract with entry fill and % result.
- **free**: a teaser — trades, won / lost, win rate and the month's result in % of the account, and a
  disclaimer. No contract, price, size, dollar figure, strategy name or chart.

:func:`recap_summary` is the ReportEvent summary (shown on the admin's card and the premium post):
free-tier facts only.
"""

from __future__ import annotations

from typing import Any, Literal

from reports.charts import content_security_policy
from reports.recap import RecapData, ScoreRow, TradeRow
from reports.recap_chart import week_bars
from reports.render import TIERS, Tier, env, fmt_pct

LABEL = "Monthly"


def _common(d: RecapData, tier: Tier) -> dict[str, Any]:
    o = d.overall
    return {"tier": tier, "kind": d.kind, "label": LABEL, "date_long": d.month_long, "month": d.month,
            "generated": d.generated, "halted": False, "sessions": d.sessions,
            "headline": f"{d.month_long}: {o.trades} trade{'' if o.trades == 1 else 's'} closed, "
                        f"{fmt_pct(o.pnl_pct)} on the account",
            "counts": {"trades": o.trades, "wins": o.wins, "losses": o.losses, "flat": o.flat,
                       "win_rate_pct": o.win_rate_pct, "pnl_pct": o.pnl_pct}}


def _free(d: RecapData) -> dict[str, Any]:
    return _common(d, "free")


def _basic_score(s: ScoreRow) -> dict[str, Any]:
    return {"trades": s.trades, "wins": s.wins, "losses": s.losses, "flat": s.flat, "win_rate_pct": s.win_rate_pct,
            "pnl_pct": s.pnl_pct, "avg_win_pct": s.avg_win_pct, "avg_loss_pct": s.avg_loss_pct}


def _basic_trade(t: TradeRow) -> dict[str, Any]:
    return {"contract": t.contract, "closed": t.closed, "entry_price": t.entry_price, "return_pct": t.return_pct,
            "pnl_pct": t.pnl_pct, "outcome": t.outcome}


def _basic(d: RecapData) -> dict[str, Any]:
    v = _common(d, "basic")
    v["overall"] = _basic_score(d.overall)
    v["best"], v["worst"] = _basic_trade(d.best), _basic_trade(d.worst)
    v["weeks"] = [{"label": w.label, "trades": w.trades, "wins": w.wins, "losses": w.losses, "flat": w.flat,
                   "pnl_pct": w.pnl_pct} for w in d.weeks]
    v["trades"] = [_basic_trade(t) for t in d.trades]
    return v


def _premium(d: RecapData) -> dict[str, Any]:
    v = _common(d, "premium")
    dump = d.model_dump(mode="json")
    for key in ("overall", "strategies", "weeks", "trades", "best", "worst", "account_value"):
        v[key] = dump[key]
    return v


def recap_view(d: RecapData, tier: Tier) -> dict[str, Any]:
    if tier == "premium":
        return _premium(d)
    if tier == "basic":
        return _basic(d)
    if tier == "free":
        return _free(d)
    raise ValueError(f"unknown tier {tier!r}")


def recap_chart(d: RecapData, tier: Tier) -> str:
    """P&L by week: dollars (premium), % of the account (basic), none (free)."""
    if tier == "free" or not d.weeks:
        return ""
    labels = [w.label for w in d.weeks]
    unit: Literal["$", "%"] = "$" if tier == "premium" else "%"
    values = [w.realized_pnl if unit == "$" else w.pnl_pct for w in d.weeks]
    title = f"Realized P&L by week, {d.month_long}" + (" (% of the account)" if unit == "%" else "")
    return week_bars(labels, values, unit=unit, title=title)


def render_recap_page(d: RecapData, tier: Tier) -> str:
    name = "recap_free.html.j2" if tier == "free" else "recap.html.j2"
    return env().get_template(name).render(v=recap_view(d, tier), chart=recap_chart(d, tier), plotly_script="",
                                           csp=content_security_policy())  # an SVG chart: no plotly.js


def render_recap_all(d: RecapData) -> dict[Tier, str]:
    return {tier: render_recap_page(d, tier) for tier in TIERS}


def recap_stem(d: RecapData) -> str:
    """``2026-11-monthly``: the month the recap is about (message texts read the month from it)."""
    return f"{d.month}-{d.kind}"


def recap_summary(d: RecapData) -> str:
    """One short paragraph with free-tier facts only (counts, win rate, % of the account)."""
    o = d.overall
    rate = f", win rate {fmt_pct(o.win_rate_pct, False, 0)}" if o.win_rate_pct is not None else ""
    flat = f", {o.flat} flat" if o.flat else ""
    return (f"Monthly recap for {d.month_long}: {o.trades} trade{'' if o.trades == 1 else 's'} closed "
            f"({o.wins} won, {o.losses} lost{flat}{rate}); realized {fmt_pct(o.pnl_pct)} of the account.")
