"""Anomaly detectors: small pure functions over values read from Redis / events.

Each returns a :class:`Finding` while its condition holds (``None`` / empty otherwise). The
service (:mod:`overseer.anomaly.service`) feeds them and turns findings into alerts that are
raised once and cleared once (:mod:`overseer.anomaly.alerts`).

Codes, subjects and severities:

========================  =====================  ==============================================
code                      subject                severity
========================  =====================  ==============================================
FEED_STALE                ``quotes:SPY``          WARNING (session only)
BROKER_DISCONNECTED       ``broker``              WARNING; CRITICAL after broker_down_critical_s
PRICE_DIVERGENCE          ``SPY``                 WARNING (session only)
SLIPPAGE_SPIKE            ``entries``             WARNING
DRAWDOWN                  ``account``             WARNING / CRITICAL
DAILY_LOSS                ``account``             WARNING / CRITICAL (core.risk.daily_loss_level)
STRATEGY_DEGRADED         strategy name           INFO (one degradation flag)
STRATEGY_DISABLED         strategy name           WARNING (two or more flags: strategy disabled)
DELIVERY_RETRYING         channel                 INFO (3+ retries in a row)
DELIVERY_DEAD_LETTER      channel                 WARNING
DEAD_LETTER               consumer group          WARNING (new entries in a bus dead-letter stream)
SERVICE_STALLED           ``execution:consume``   WARNING (a runner loop past its heartbeat budget)
========================  =====================  ==============================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from core.runtime.heartbeat import loop_age_s, loop_state
from overseer._util import parse_ts_ms

Severity = Literal["INFO", "WARNING", "CRITICAL"]
SEVERITY_RANK: dict[str, int] = {"INFO": 0, "WARNING": 1, "CRITICAL": 2}


@dataclass(frozen=True)
class Finding:
    code: str
    subject: str
    severity: Severity
    message: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        return f"{self.code}|{self.subject}"


def _f(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------- feeds
def feed_staleness(
    source: str, symbol: str, last_ts_ms: int | None, now_ms: int, session_open_ms: int, limit_s: float
) -> Finding | None:
    """A feed is stale when its last source timestamp is older than ``limit_s``. Age counts from
    the session open at the earliest (yesterday's last tick is not stale at 09:30:05), and a
    feed never seen is not judged."""
    if last_ts_ms is None:
        return None
    age_s = (now_ms - max(last_ts_ms, session_open_ms)) / 1000.0
    if age_s <= limit_s:
        return None
    return Finding(
        "FEED_STALE",
        f"{source}:{symbol}",
        "WARNING",
        f"{source} feed for {symbol} is {age_s:.0f}s old (max {limit_s:g}s)",
        {"source": source, "symbol": symbol, "age_s": round(age_s, 1), "limit_s": limit_s},
    )


def broker_connection(
    connected: str | None, down_since_ms: int | None, now_ms: int, critical_after_s: float
) -> Finding | None:
    """Hash ``broker`` field ``connected == "0"``: WARNING, CRITICAL once down long enough."""
    if connected != "0":
        return None
    down_s = max(0.0, (now_ms - (down_since_ms if down_since_ms is not None else now_ms)) / 1000.0)
    sev: Severity = "CRITICAL" if down_s >= critical_after_s else "WARNING"
    return Finding(
        "BROKER_DISCONNECTED",
        "broker",
        sev,
        f"broker connection lost for {down_s:.0f}s",
        {"down_s": round(down_s, 1), "critical_after_s": critical_after_s},
    )


def quote_price(q: Mapping[str, Any]) -> float | None:
    """Mid of a sane two-sided quote, else last / price / mark."""
    bid, ask = _f(q.get("bid")), _f(q.get("ask"))
    if bid is not None and ask is not None and 0 < bid <= ask:
        return (bid + ask) / 2.0
    for k in ("last", "price", "mark"):
        v = _f(q.get(k))
        if v is not None and v > 0:
            return v
    return None


def price_divergence(
    symbol: str, broker: Mapping[str, Any], vendor: Mapping[str, Any], limit_pct: float, max_skew_s: float
) -> Finding | None:
    """Vendor vs broker price of one underlying. Quotes whose timestamps are further apart than
    ``max_skew_s`` are not comparable and not judged."""
    b, v = quote_price(broker), quote_price(vendor)
    if b is None or v is None:
        return None
    tb = parse_ts_ms(broker.get("quote_ts") or broker.get("ts"))
    tv = parse_ts_ms(vendor.get("quote_ts") or vendor.get("ts"))
    if tb is not None and tv is not None and abs(tb - tv) / 1000.0 > max_skew_s:
        return None
    pct = abs(v - b) / b * 100.0
    if pct <= limit_pct:
        return None
    return Finding(
        "PRICE_DIVERGENCE",
        symbol,
        "WARNING",
        f"{symbol}: vendor {v:g} vs broker {b:g} differ by {pct:.2f}% (max {limit_pct:g}%)",
        {
            "symbol": symbol,
            "vendor": round(v, 4),
            "broker": round(b, 4),
            "pct": round(pct, 2),
            "limit_pct": limit_pct,
        },
    )


# ----------------------------------------------------------------------------- execution
def slippage_pct(slippage: float, mid_at_order: float | None) -> float | None:
    """Entry slippage as % of the mid at order time (positive = paid above mid)."""
    mid = _f(mid_at_order)
    s = _f(slippage)
    if mid is None or mid <= 0 or s is None:
        return None
    return s / mid * 100.0


def slippage_spike(recent_pcts: Sequence[float], limit_pct: float) -> Finding | None:
    vals = [p for p in recent_pcts if _f(p) is not None]
    if not vals:
        return None
    avg = sum(vals) / len(vals)
    if avg < limit_pct:
        return None
    return Finding(
        "SLIPPAGE_SPIKE",
        "entries",
        "WARNING",
        f"average entry slippage {avg:.1f}% of mid over the last {len(vals)} fills (max {limit_pct:g}%)",
        {"avg_pct": round(avg, 2), "fills": len(vals), "limit_pct": limit_pct},
    )


# ----------------------------------------------------------------------------- account
def drawdown(drawdown_pct: float, warn_pct: float, critical_pct: float) -> Finding | None:
    dd = _f(drawdown_pct)
    if dd is None or dd < warn_pct:
        return None
    sev: Severity = "CRITICAL" if dd >= critical_pct else "WARNING"
    return Finding(
        "DRAWDOWN",
        "account",
        sev,
        f"intraday drawdown {dd:.2f}% from the equity peak",
        {"drawdown_pct": round(dd, 2), "warn_pct": warn_pct, "critical_pct": critical_pct},
    )


def daily_loss(
    level: str, daily_pnl: float, account_value: float, warn_pct: float, halt_pct: float
) -> Finding | None:
    """From ``core.risk.daily_loss_level``: "warning" -> WARNING, "halt" -> CRITICAL."""
    if level not in ("warning", "halt"):
        return None
    sev: Severity = "CRITICAL" if level == "halt" else "WARNING"
    return Finding(
        "DAILY_LOSS",
        "account",
        sev,
        f"daily P&L {daily_pnl:,.2f} hit the {level} level",
        {
            "daily_pnl": round(daily_pnl, 2),
            "account_value": account_value,
            "warn_pct": warn_pct,
            "halt_pct": halt_pct,
            "level": level,
        },
    )


# ----------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class StrategyHealth:
    trades: int
    win_rate_pct: float
    avg_win: float
    avg_loss: float
    losing_streak: int
    flags: tuple[str, ...]


def strategy_health(
    pnls_newest_first: Sequence[float],
    *,
    baseline_win_rate_pct: float,
    margin_pts: float,
    loss_win_ratio: float,
    max_losing_streak: int,
    min_trades: int,
) -> StrategyHealth:
    """Degradation flags over the rolling window of closed-trade P&Ls (newest first):

    - ``win_rate``: at least ``min_trades`` trades and win rate < baseline - margin points;
    - ``loss_size``: at least ``min_trades`` trades and average loss > ratio x average win
      (any loss counts when there is no win);
    - ``losing_streak``: the last ``max_losing_streak`` trades all lost.
    """
    pnls = [p for p in (_f(x) for x in pnls_newest_first) if p is not None]
    n = len(pnls)
    wins = [p for p in pnls if p > 0]
    losses = [-p for p in pnls if p < 0]
    win_rate = (len(wins) / n * 100.0) if n else 0.0
    avg_win = sum(wins) / len(wins) if wins else 0.0
    avg_loss = sum(losses) / len(losses) if losses else 0.0
    streak = 0
    for p in pnls:
        if p < 0:
            streak += 1
        else:
            break
    flags: list[str] = []
    if n >= min_trades and win_rate < baseline_win_rate_pct - margin_pts:
        flags.append("win_rate")
    if n >= min_trades and losses and avg_loss > loss_win_ratio * avg_win:
        flags.append("loss_size")
    if streak >= max_losing_streak:
        flags.append("losing_streak")
    return StrategyHealth(n, round(win_rate, 1), round(avg_win, 2), round(avg_loss, 2), streak, tuple(flags))


FLAG_TEXT = {
    "win_rate": "win rate below baseline",
    "loss_size": "losses much larger than wins",
    "losing_streak": "losing streak",
}


def strategy_findings(name: str, health: StrategyHealth, baseline_win_rate_pct: float) -> Finding | None:
    facts = {
        "strategy": name,
        "trades": health.trades,
        "win_rate_pct": health.win_rate_pct,
        "baseline_win_rate_pct": baseline_win_rate_pct,
        "avg_win": health.avg_win,
        "avg_loss": health.avg_loss,
        "losing_streak": health.losing_streak,
        "flags": [FLAG_TEXT[f] for f in health.flags],
    }
    if len(health.flags) >= 2:
        return Finding(
            "STRATEGY_DISABLED",
            name,
            "WARNING",
            f"strategy {name} disabled: {', '.join(FLAG_TEXT[f] for f in health.flags)}",
            facts,
        )
    if len(health.flags) == 1:
        return Finding(
            "STRATEGY_DEGRADED",
            name,
            "INFO",
            f"strategy {name} degrading: {FLAG_TEXT[health.flags[0]]}",
            facts,
        )
    return None


# ----------------------------------------------------------------------------- deliveries
def delivery_dead_letter(channel: str, tier: str, attempts: int, error: str) -> Finding:
    return Finding(
        "DELIVERY_DEAD_LETTER",
        channel,
        "WARNING",
        f"{channel} delivery ({tier}) dead-lettered after {attempts} attempts",
        {"channel": channel, "tier": tier, "attempts": attempts, "error": error[:120]},
    )


def delivery_retrying(channel: str, streak: int, threshold: int = 3) -> Finding | None:
    if streak < threshold:
        return None
    return Finding(
        "DELIVERY_RETRYING",
        channel,
        "INFO",
        f"{channel} deliveries failing ({streak} retries in a row)",
        {"channel": channel, "retries": streak},
    )


def dead_letters(group: str, new_entries: int) -> Finding | None:
    if new_entries <= 0:
        return None
    return Finding(
        "DEAD_LETTER",
        group,
        "WARNING",
        f"{new_entries} new event(s) in the {group} dead-letter stream",
        {"group": group, "new": new_entries},
    )


# ----------------------------------------------------------------------------- runner loops
def service_stalled(service: str, loop: str, beat: Mapping[str, Any], now_ms: int) -> Finding | None:
    """A running loop of a live service whose last completed iteration (``core.runtime.heartbeat``,
    wall clock) is older than its budget. Loops marked ``stopped`` (clean stop) or ``done`` (a
    start that succeeded) are not judged; a service that never wrote a heartbeat is never seen."""
    if loop_state(dict(beat), now_ms) != "stalled":
        return None
    age_s = loop_age_s(dict(beat), now_ms)
    budget_s = _f(beat.get("budget_s")) or 0.0
    errors = int(_f(beat.get("errors")) or 0)
    last_error = str(beat.get("last_error") or "")[:160]
    what = "has not started" if loop == "start" else f"{loop} loop has not completed an iteration"
    msg = f"service {service}: {what} for {age_s:.0f}s (budget {budget_s:g}s)"
    if errors:
        msg += f"; {errors} error(s), last: {last_error}"
    return Finding(
        "SERVICE_STALLED",
        f"{service}:{loop}",
        "WARNING",
        msg,
        {"service": service, "loop": loop, "age_s": round(age_s, 1), "budget_s": budget_s,
         "errors": errors, "last_error": last_error},
    )
