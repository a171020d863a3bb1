"""Account state (hash ``account``) and the risk view other services check against.

Fields of ``account``: ``account_value`` (start-of-day equity), ``day`` (NY date the
day fields belong to), ``realized_today``, ``unrealized`` (marked by the position
manager), ``peak_equity`` (intraday, for drawdown), ``premium_open`` (cost of open
positions). Open positions live in hash ``positions`` (position_id -> JSON); each
carries at least symbol, strategy, right, qty_open, avg_entry, multiplier, expiry,
strike. Strategy switches: hash ``strategies`` (name -> "enabled"/"disabled").
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis

from core.bus.keys import Keys
from core.clock.calendar import NY
from core.config.model import Settings
from core.risk.state import OpenPosition, RiskState
from core.runtime import metrics

log = logging.getLogger("quanticity.state")


@dataclass(frozen=True)
class Account:
    account_value: float
    day: str
    realized_today: float
    unrealized: float
    peak_equity: float
    premium_open: float

    @property
    def daily_pnl(self) -> float:
        return self.realized_today + self.unrealized

    @property
    def equity(self) -> float:
        return self.account_value + self.daily_pnl

    @property
    def drawdown_pct(self) -> float:
        peak = max(self.peak_equity, self.account_value)
        return 0.0 if peak <= 0 else max(0.0, (peak - self.equity) / peak * 100.0)


def _num(h: dict, field: str, default: float) -> float:
    """A stored figure; an unreadable one is NaN, so the risk rules fail closed on it."""
    raw = h.get(field)
    if not raw:
        return default
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


async def read_account(redis: aioredis.Redis, keys: Keys, settings: Settings, now: datetime) -> Account:
    return account_from(await redis.hgetall(keys.hash("account")), settings, now)


def account_from(h: dict, settings: Settings, now: datetime) -> Account:
    """:func:`read_account` of an ``account`` hash already read (e.g. in a caller's pipeline)."""
    today = now.astimezone(NY).date().isoformat()
    base = _num(h, "account_value", float(settings.risk.account_value))
    if h.get("day") != today:  # a new day: day fields start from zero (rolled by the position manager)
        return Account(base, today, 0.0, _num(h, "unrealized", 0.0), base, _num(h, "premium_open", 0.0))
    return Account(base, today, _num(h, "realized_today", 0.0), _num(h, "unrealized", 0.0),
                   _num(h, "peak_equity", base), _num(h, "premium_open", 0.0))


def _usable(p: object) -> bool:
    """An open-position record the readers can use: an object whose qty_open is a whole number >= 0
    and whose entry price and multiplier are > 0 (anything else is skipped and counted)."""
    if not isinstance(p, dict):
        return False
    try:
        qty, entry, mult = int(p.get("qty_open", 0)), float(p.get("avg_entry", 0.0)), int(p.get("multiplier", 100))
    except (TypeError, ValueError):
        return False
    return qty >= 0 and (qty == 0 or (math.isfinite(entry) and entry > 0 and mult > 0))


async def open_positions(redis: aioredis.Redis, keys: Keys) -> list[dict]:
    return positions_from(await redis.hgetall(keys.hash("positions")))


def positions_from(raw: dict) -> list[dict]:
    """:func:`open_positions` of a ``positions`` hash already read."""
    out = []
    for pid in sorted(raw):
        try:
            p = json.loads(raw[pid])
        except ValueError:
            p = None
        if not _usable(p):
            metrics.REJECTED.labels("state", "bad_position_record").inc()
            log.warning("positions record %s unusable: skipped", pid)
            continue
        if int(p.get("qty_open", 0)) > 0:
            out.append(p)
    return out


async def disabled_strategies(redis: aioredis.Redis, keys: Keys, settings: Settings) -> list[str]:
    return disabled_from(await redis.hgetall(keys.hash("strategies")), settings)


def disabled_from(switches: dict, settings: Settings) -> list[str]:
    """The disabled strategies given the ``strategies`` hash as read (HGETALL; a caller may read it
    in a pipeline with its other reads) and the config's ``enabled`` defaults."""
    names = set(settings.strategies) | set(switches)
    out = []
    for name in sorted(names):
        cfg = settings.strategies.get(name)
        state = switches.get(name)
        if state == "disabled" or (state is None and cfg is not None and not cfg.enabled):
            out.append(name)
    return out


async def data_ages(redis: aioredis.Redis, keys: Keys, symbols: list[str], now: datetime) -> dict[str, float]:
    """Seconds since each symbol's last quote (source timestamp); missing = very stale."""
    vals = await redis.mget([keys.snapshot("quote", s) for s in symbols]) if symbols else []
    return ages_from(symbols, vals, now)


def ages_from(symbols: list[str], vals: list, now: datetime) -> dict[str, float]:
    """:func:`data_ages` of the symbols' quote snapshots already read (MGET, same order)."""
    now_ms = int(now.timestamp() * 1000)
    ages: dict[str, float] = {}
    for sym, raw in zip(symbols, vals, strict=True):
        if raw is None:
            ages[sym] = float("inf")
            continue
        try:
            ages[sym] = max(0.0, (now_ms - int(json.loads(raw)["quote_ts"])) / 1000.0)
        except (ValueError, KeyError, TypeError):
            ages[sym] = float("inf")
    return ages


async def load_risk_state(redis: aioredis.Redis, keys: Keys, settings: Settings, now: datetime,
                          symbols: list[str] | None = None) -> RiskState:
    """The risk view in ONE round trip (it is read on the decision path: review, pre-trade check)."""
    syms = symbols if symbols is not None else list(settings.market.symbols)
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.hash("account"))
    pipe.hgetall(keys.hash("positions"))
    pipe.hget(keys.halt(), "halted")  # what core.control.halt.is_halted reads
    pipe.hgetall(keys.hash("strategies"))
    if syms:
        pipe.mget([keys.snapshot("quote", s) for s in syms])
    res = await pipe.execute()
    acct = account_from(res[0], settings, now)
    positions = positions_from(res[1])
    halted = res[2] == "1"  # = is_halted (tests/risk/test_risk_state_reads.py holds them equal)
    ages = ages_from(syms, res[4] if syms else [], now)
    return RiskState(
        account_value=acct.account_value,
        buying_power=max(0.0, acct.account_value + acct.realized_today - acct.premium_open),
        daily_pnl=acct.daily_pnl,
        open_positions=[OpenPosition(symbol=p.get("symbol", ""), strategy=p.get("strategy", ""),
                                     right=p.get("right"), qty=int(p.get("qty_open", 0)),
                                     entry_price=float(p.get("avg_entry", 0.0)),
                                     multiplier=int(p.get("multiplier", 100)), expiry=p.get("expiry"),
                                     strike=p.get("strike")) for p in positions],
        halted=halted,
        disabled_strategies=disabled_from(res[3], settings),
        data_age_s={k: (v if v != float("inf") else 1e9) for k, v in ages.items()},
    )
