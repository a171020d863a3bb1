"""The hard risk rules: ``check_signal`` and friends. Pure and deterministic.

Nothing here does I/O or reads the clock: ``now`` is a parameter and the NYSE
calendar is static data (see :mod:`core.risk.sessions`). Every rule is evaluated
independently and *all* failing codes are reported. Malformed input never raises;
it produces ``BAD_INPUT`` (plus whatever else can still be determined), and when a
rule cannot be evaluated because a number it needs from the *state* is unusable
the rule fails closed.

Rules (code -> condition):

* NOT_OPTION        instrument.type != OPT, or a leg whose instrument is not an OPT
* NOT_LONG          side != BUY, or a leg that does not BUY
* NOT_SINGLE_LEG    more than one leg, or a BAG instrument (a BAG is also NOT_OPTION)
* EXPIRED_CONTRACT  expiry before today's New York date, or today's expiry at/after the
                    close (the XNYS close of the day, 16:00 NY when unknown)
* BAD_INPUT         malformed signal/state/now - see ``_signal_problems``
* RISK_PER_TRADE    qty x limit x multiplier > cap% x account_value. cap from the signal's
                    horizon and from the horizon implied by trading-day DTE (0 -> 0dte,
                    1 -> 1dte, else swing); when they disagree the stricter cap applies,
                    when neither is known the strictest configured cap applies
* DAILY_LOSS_LIMIT  daily_pnl <= -daily_loss_halt_pct% x account_value
* MAX_POSITIONS     open positions (qty != 0) >= max_open_positions
* SAME_DIRECTION_CAP open positions in the signal's direction >= max_same_direction
                    (long calls bullish, long puts bearish)
* SPREAD_TOO_WIDE   (ask - bid) / mid > max_spread_pct_of_mid %
* STALE_DATA        now - quote.ts > max_quote_age_s, or state.data_age_s[symbol] >
                    max_data_age_s (a non-finite age counts as stale)
* OUTSIDE_WINDOW    no XNYS session today (weekend/holiday), now outside [open, close),
                    outside the strategy's window, or a 0DTE entry at/after
                    min(no_new_0dte_after, close - zero_dte_cutoff_before_close_min)
* HALTED            state.halted
* BUYING_POWER      premium > state.buying_power
* STRATEGY_DISABLED strategy in state.disabled_strategies (case-insensitive)

Boundaries are exact as written: ">" means strictly over and "<=" / "at/after" includes the
limit. Computed numbers (spread %, ages, premium, P&L) are compared with
:mod:`core.risk.compare` so float noise never moves a value across its limit (a spread of
exactly 10 % of mid passes "> 10 %"); counts and times compare exactly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from typing import Any, Literal

from pydantic import ValidationError

from core.domain.reasons import Reason
from core.domain.signal import Direction, Horizon, Signal
from core.format.numbers import money, pct
from core.risk.compare import exceeds, reaches
from core.risk.decision import RiskDecision
from core.risk.limits import RiskLimits
from core.risk.sessions import NY, REGULAR_CLOSE, Session, nyse_session, trading_days_until
from core.risk.state import RiskState

DailyLossLevel = Literal["ok", "warning", "halt"]

_MISSING: Any = object()
_HORIZONS = {h.value for h in Horizon}
_DIRECTIONS = {d.value for d in Direction}


# --------------------------------------------------------------------------- coercion helpers
def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` for mappings, ``obj.key`` otherwise; ``_MISSING`` when absent."""
    if obj is None or obj is _MISSING:
        return _MISSING
    if isinstance(obj, Mapping):
        return obj.get(key, _MISSING)
    try:
        return getattr(obj, key, _MISSING)
    except Exception:  # noqa: BLE001 - a broken property is just "missing"
        return _MISSING


def _absent(x: Any) -> bool:
    return x is _MISSING or x is None


def _num(x: Any) -> float | None:
    """A real number as float (NaN/inf kept); None when ``x`` is not a number."""
    if _absent(x) or isinstance(x, bool):
        return None
    if isinstance(x, Enum):
        x = x.value
    if isinstance(x, str):
        try:
            return float(x.strip())
        except ValueError:
            return None
    if isinstance(x, numbers.Real):
        try:
            return float(x)
        except OverflowError:
            return math.inf if x > 0 else -math.inf  # type: ignore[operator]
        except (TypeError, ValueError):
            return None
    return None


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _code(x: Any) -> str | None:
    """Enum/str -> stripped upper-case string; None otherwise."""
    if isinstance(x, Enum):
        x = x.value
    if isinstance(x, str):
        return x.strip().upper()
    return None


def _aware(x: Any) -> tuple[datetime | None, str | None]:
    """(aware datetime, None) or (None, problem)."""
    if _absent(x):
        return None, "missing"
    dt: Any = x
    if isinstance(x, str):
        try:
            dt = datetime.fromisoformat(x.strip())
        except ValueError:
            return None, f"unparseable timestamp {x!r}"
    elif isinstance(x, numbers.Real) and not isinstance(x, bool):
        v = float(x)
        if not math.isfinite(v):
            return None, f"non-finite timestamp {x!r}"
        if abs(v) > 2e10:  # milliseconds, like pydantic
            v /= 1000.0
        try:
            dt = datetime.fromtimestamp(v, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None, f"timestamp out of range {x!r}"
    if not isinstance(dt, datetime):
        return None, f"not a timestamp: {x!r}"
    try:
        if dt.tzinfo is None or dt.utcoffset() is None:
            return None, "timestamp has no timezone"
    except Exception:  # noqa: BLE001 - exotic tzinfo
        return None, "timestamp has an unusable timezone"
    return dt, None


def _date(x: Any) -> tuple[date | None, str | None]:
    if _absent(x):
        return None, "missing"
    if isinstance(x, datetime):
        return x.date(), None
    if isinstance(x, date):
        return x, None
    if isinstance(x, str):
        try:
            return date.fromisoformat(x.strip()), None
        except ValueError:
            return None, f"unparseable date {x!r}"
    return None, f"not a date: {x!r}"


def _fmt(x: float | None) -> str:
    return "missing" if x is None else f"{x:g}"


# --------------------------------------------------------------------------- normalised view
@dataclass
class _Inst:
    sec_type: str | None = None
    expiry: date | None = None
    strike: float | None = None
    right: str | None = None  # "C" / "P"
    multiplier: float | None = None

    def same_contract(self, other: _Inst) -> bool:
        return (self.sec_type, self.expiry, self.strike, self.right, self.multiplier) == (
            other.sec_type, other.expiry, other.strike, other.right, other.multiplier)


@dataclass
class _Leg:
    inst: _Inst | None
    side: str | None
    ratio: float | None


@dataclass
class _View:
    """A signal (model, constructed model or raw dict) reduced to plain, typed values.

    ``None`` means missing or unusable; every such problem is in ``problems``.
    """

    problems: list[str] = field(default_factory=list)
    strategy: str | None = None
    symbol: str | None = None
    inst: _Inst | None = None
    legs: list[_Leg] | None = None
    side: str | None = None
    qty: float | None = None
    limit: float | None = None
    stop: float | None = None
    targets: list[float | None] = field(default_factory=list)
    bid: float | None = None
    ask: float | None = None
    quote_ts: datetime | None = None
    ts: datetime | None = None
    horizon: str | None = None
    direction: str | None = None

    @property
    def option_direction(self) -> str | None:
        """Long call -> bullish, long put -> bearish; the stated direction otherwise."""
        if self.inst is not None and self.inst.right == "C":
            return Direction.BULLISH.value
        if self.inst is not None and self.inst.right == "P":
            return Direction.BEARISH.value
        return self.direction

    def premium(self) -> float | None:
        """qty x limit x multiplier, or None when any factor is unusable."""
        mult = self.inst.multiplier if self.inst is not None else None
        if not (_positive(self.qty) and _positive(self.limit) and _positive(mult)):
            return None
        assert self.qty is not None and self.limit is not None and mult is not None
        return self.qty * self.limit * mult


def _positive(x: float | None) -> bool:
    return _finite(x) and x > 0  # type: ignore[operator]


def _parse_instrument(obj: Any, where: str, problems: list[str]) -> _Inst | None:
    if _absent(obj):
        problems.append(f"{where} missing")
        return None
    if not isinstance(obj, Mapping) and _get(obj, "type") is _MISSING:
        problems.append(f"{where} is not an instrument: {type(obj).__name__}")
        return None
    inst = _Inst()
    t = _get(obj, "type")
    if t is _MISSING:
        inst.sec_type = "OPT"  # the model default
    else:
        inst.sec_type = _code(t)
        if not inst.sec_type:
            problems.append(f"{where}.type invalid: {t!r}")
            inst.sec_type = None
    is_opt = inst.sec_type == "OPT"

    exp = _get(obj, "expiry")
    inst.expiry, why = _date(exp)
    if why is not None and (is_opt or not _absent(exp)):
        problems.append(f"{where}.expiry {why}")

    raw_strike = _get(obj, "strike")
    strike = _num(raw_strike)
    if _absent(raw_strike):
        if is_opt:
            problems.append(f"{where}.strike missing")
    elif strike is None:
        problems.append(f"{where}.strike not a number: {raw_strike!r}")
    elif not _positive(strike):
        problems.append(f"{where}.strike must be a positive finite number, got {strike!r}")
    else:
        inst.strike = strike

    raw_right = _get(obj, "right")
    r = _code(raw_right)
    if _absent(raw_right):
        if is_opt:
            problems.append(f"{where}.right missing")
    elif r in ("C", "CALL"):
        inst.right = "C"
    elif r in ("P", "PUT"):
        inst.right = "P"
    else:
        problems.append(f"{where}.right must be C or P, got {raw_right!r}")

    raw_mult = _get(obj, "multiplier")
    if raw_mult is _MISSING:
        inst.multiplier = 100.0
    else:
        m = _num(raw_mult)
        if not _positive(m) or not float(m).is_integer():  # type: ignore[arg-type]
            problems.append(f"{where}.multiplier must be a positive whole number, got {raw_mult!r}")
        else:
            inst.multiplier = m
    return inst


def _extract(sig: Any) -> _View:
    v = _View()
    p = v.problems

    for name in ("strategy", "symbol"):
        raw = _get(sig, name)
        if isinstance(raw, str) and raw.strip():
            setattr(v, name, raw.strip())
        elif _absent(raw):
            p.append(f"{name} missing")
        else:
            p.append(f"{name} must be a non-empty string, got {raw!r}")
    raw_id = _get(sig, "id")
    if _absent(raw_id) or not isinstance(raw_id, str):
        p.append(f"id must be a string, got {None if raw_id is _MISSING else raw_id!r}")

    v.ts, why = _aware(_get(sig, "ts"))
    if why:
        p.append(f"ts {why}")

    v.inst = _parse_instrument(_get(sig, "instrument"), "instrument", p)

    raw_legs = _get(sig, "legs")
    if not _absent(raw_legs):
        if isinstance(raw_legs, Sequence) and not isinstance(raw_legs, (str, bytes)):
            v.legs = []
            for i, leg in enumerate(raw_legs):
                where = f"legs[{i}]"
                inst = _parse_instrument(_get(leg, "instrument"), f"{where}.instrument", p)
                side = _get(leg, "side")
                side_c = _code(side)
                if _absent(side):
                    p.append(f"{where}.side missing")
                elif side_c not in ("BUY", "SELL"):
                    p.append(f"{where}.side must be BUY or SELL, got {side!r}")
                raw_ratio = _get(leg, "ratio")
                ratio = 1.0 if raw_ratio is _MISSING else _num(raw_ratio)
                if not _positive(ratio) or not float(ratio).is_integer():  # type: ignore[arg-type]
                    p.append(f"{where}.ratio must be a positive whole number, got {raw_ratio!r}")
                v.legs.append(_Leg(inst=inst, side=side_c if not _absent(side) else None, ratio=ratio))
            if len(v.legs) == 1 and v.legs[0].inst is not None and v.inst is not None \
                    and not v.legs[0].inst.same_contract(v.inst):
                p.append("legs[0] does not match the signal's instrument")
        else:
            p.append(f"legs must be a list, got {type(raw_legs).__name__}")

    raw_side = _get(sig, "side")
    if raw_side is _MISSING:
        v.side = "BUY"  # the model default
    else:
        v.side = _code(raw_side)
        if v.side not in ("BUY", "SELL"):
            p.append(f"side must be BUY or SELL, got {raw_side!r}")

    raw_qty = _get(sig, "qty")
    qty = _num(raw_qty)
    if qty is None:
        p.append(f"qty {'missing' if _absent(raw_qty) else f'not a number: {raw_qty!r}'}")
    elif not _positive(qty) or not qty.is_integer():
        p.append(f"qty must be a positive whole number, got {raw_qty!r}")
    else:
        v.qty = qty

    raw_limit = _get(sig, "limit")
    limit = _num(raw_limit)
    if not _positive(limit):
        p.append(f"limit must be a positive finite price, got {None if raw_limit is _MISSING else raw_limit!r}")
    else:
        v.limit = limit

    raw_stop = _get(sig, "stop")
    stop = _num(raw_stop)
    if not _finite(stop) or stop < 0:  # type: ignore[operator]
        p.append(f"stop must be a finite price >= 0, got {None if raw_stop is _MISSING else raw_stop!r}")
    else:
        v.stop = stop
        if v.limit is not None and stop >= v.limit:  # type: ignore[operator]
            p.append(f"stop {stop:g} must be below limit {v.limit:g}")

    raw_targets = _get(sig, "targets")
    if not _absent(raw_targets):
        if isinstance(raw_targets, Sequence) and not isinstance(raw_targets, (str, bytes)):
            for i, t in enumerate(raw_targets):
                tv = _num(t)
                if not _finite(tv):
                    p.append(f"targets[{i}] must be a finite price, got {t!r}")
                    v.targets.append(None)
                    continue
                v.targets.append(tv)
                if v.limit is not None and tv <= v.limit:  # type: ignore[operator]
                    p.append(f"targets[{i}] {tv:g} must be above limit {v.limit:g}")
        else:
            p.append(f"targets must be a list, got {type(raw_targets).__name__}")

    quote = _get(sig, "quote")
    if _absent(quote):
        p.append("quote missing")
    else:
        raw_bid, raw_ask = _get(quote, "bid"), _get(quote, "ask")
        bid, ask = _num(raw_bid), _num(raw_ask)
        if not _finite(bid) or bid < 0:  # type: ignore[operator]
            p.append(f"quote.bid must be a finite price >= 0, got {None if raw_bid is _MISSING else raw_bid!r}")
        else:
            v.bid = bid
        if not _positive(ask):
            p.append(f"quote.ask must be a positive finite price, got {None if raw_ask is _MISSING else raw_ask!r}")
        else:
            v.ask = ask
        if v.bid is not None and v.ask is not None and v.bid > v.ask:
            p.append(f"crossed quote: bid {v.bid:g} > ask {v.ask:g}")
            v.bid = v.ask = None
        v.quote_ts, why = _aware(_get(quote, "ts"))
        if why:
            p.append(f"quote.ts {why}")

    raw_conf = _get(sig, "confidence")
    if raw_conf is not _MISSING:
        c = _num(raw_conf)
        if not _finite(c) or not 0 <= c <= 100:  # type: ignore[operator]
            p.append(f"confidence must be within 0..100, got {raw_conf!r}")

    raw_h = _get(sig, "horizon")
    if not _absent(raw_h):
        h = raw_h.value if isinstance(raw_h, Enum) else raw_h
        if isinstance(h, str) and h.strip().lower() in _HORIZONS:
            v.horizon = h.strip().lower()
        else:
            p.append(f"horizon must be one of {sorted(_HORIZONS)}, got {raw_h!r}")

    raw_d = _get(sig, "direction")
    if not _absent(raw_d):
        d = raw_d.value if isinstance(raw_d, Enum) else raw_d
        if isinstance(d, str) and d.strip().lower() in _DIRECTIONS:
            v.direction = d.strip().lower()
        else:
            p.append(f"direction must be one of {sorted(_DIRECTIONS)}, got {raw_d!r}")
    if v.direction is not None and v.inst is not None and v.inst.right is not None \
            and v.direction != v.option_direction:
        p.append(f"direction {v.direction} contradicts a long {'call' if v.inst.right == 'C' else 'put'}")
    return v


# --------------------------------------------------------------------------- findings
class _Findings:
    def __init__(self) -> None:
        self.by_reason: dict[Reason, list[str]] = {}

    def add(self, reason: Reason, text: str) -> None:
        self.by_reason.setdefault(reason, []).append(text)

    def decision(self) -> RiskDecision:
        return RiskDecision.from_findings(self.by_reason)


def _coerce_state(state: Any) -> tuple[RiskState | None, str | None]:
    if isinstance(state, RiskState):
        return state, None
    if state is None:
        return RiskState(), None
    try:
        return RiskState.model_validate(state), None
    except ValidationError as e:
        return None, "state: " + _summarise_validation(e)
    except Exception as e:  # noqa: BLE001 - never raise on bad input
        return None, f"state unusable: {type(e).__name__}"


def _summarise_validation(e: ValidationError, limit: int = 6) -> str:
    parts = []
    for err in e.errors()[:limit]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = e.error_count() - limit
    if more > 0:
        parts.append(f"... {more} more")
    return "; ".join(parts)


def _state_problems(state: RiskState, f: _Findings) -> None:
    if not _finite(state.account_value) or state.account_value <= 0:
        f.add(Reason.BAD_INPUT, f"state.account_value must be a positive finite number, got {state.account_value!r}")
    if not _finite(state.buying_power):
        f.add(Reason.BAD_INPUT, f"state.buying_power must be finite, got {state.buying_power!r}")
    if not _finite(state.daily_pnl):
        f.add(Reason.BAD_INPUT, f"state.daily_pnl must be finite, got {state.daily_pnl!r}")
    if (state.session_open is None) != (state.session_close is None):
        f.add(Reason.BAD_INPUT, "state.session_open and state.session_close must be given together")
    elif state.session_open is not None and state.session_close is not None \
            and not state.session_open < state.session_close:
        f.add(Reason.BAD_INPUT, "state.session_open must be before state.session_close")


def _session_today(state: RiskState | None, today: date) -> Session | None:
    if state is not None and state.session_open is not None and state.session_close is not None:
        if state.session_open < state.session_close:
            return Session(open=state.session_open, close=state.session_close)
        return None  # unusable override: fail closed (reported as BAD_INPUT)
    return nyse_session(today)


def per_trade_cap_pct(horizon: str | None, dte: int | None, limits: RiskLimits) -> tuple[float, str]:
    """(cap %, what it is based on) of the RISK_PER_TRADE rule: the stricter of the cap of the
    stated horizon and of the horizon implied by trading-day DTE; the strictest configured cap
    when neither is known. Also used at order placement (``core.execution.pretrade``)."""
    horizons = [h for h in (horizon, _infer_horizon(dte)) if h is not None]
    cap = min((limits.cap_pct(h) for h in horizons), default=limits.cap_pct(None))
    return cap, "/".join(dict.fromkeys(horizons)) or "unknown horizon, strictest cap"


def _infer_horizon(dte: int | None) -> str | None:
    if dte is None:
        return None
    if dte <= 0:
        return Horizon.ZERO_DTE.value
    if dte == 1:
        return Horizon.ONE_DTE.value
    return Horizon.SWING.value


# --------------------------------------------------------------------------- the engine
def _evaluate(v: _View, state: RiskState | None, limits: RiskLimits, now: Any, f: _Findings) -> None:
    for text in v.problems:
        f.add(Reason.BAD_INPUT, text)

    # ---- structure: option, long, single leg
    inst = v.inst
    if inst is not None and inst.sec_type is not None and inst.sec_type != "OPT":
        f.add(Reason.NOT_OPTION, f"instrument type is {inst.sec_type}, not OPT")
    if inst is not None and inst.sec_type == "BAG":
        f.add(Reason.NOT_SINGLE_LEG, "BAG (combo) instruments are not single-leg")
    if v.side is not None and v.side != "BUY":
        f.add(Reason.NOT_LONG, f"side is {v.side}; only BUY (long) entries are allowed")
    if v.legs:
        if len(v.legs) > 1:
            f.add(Reason.NOT_SINGLE_LEG, f"{len(v.legs)} legs; only single-leg signals are allowed")
        for i, leg in enumerate(v.legs):
            if leg.inst is not None and leg.inst.sec_type is not None and leg.inst.sec_type != "OPT":
                f.add(Reason.NOT_OPTION, f"legs[{i}] is a {leg.inst.sec_type}, not an OPT")
            if leg.inst is not None and leg.inst.sec_type == "BAG":
                f.add(Reason.NOT_SINGLE_LEG, f"legs[{i}] is a BAG (combo)")
            if leg.side is not None and leg.side != "BUY":
                f.add(Reason.NOT_LONG, f"legs[{i}] side is {leg.side}; only long legs are allowed")

    # ---- quote spread (needs no clock)
    if v.bid is not None and v.ask is not None:
        mid = (v.bid + v.ask) / 2.0
        spread_pct = (v.ask - v.bid) / mid * 100.0
        if exceeds(spread_pct, limits.max_spread_pct_of_mid):
            f.add(Reason.SPREAD_TOO_WIDE,
                  f"spread {v.ask - v.bid:g} is {spread_pct:.1f}% of mid {mid:g} "
                  f"(max {limits.max_spread_pct_of_mid:g}%)")

    # ---- state-only rules
    if state is not None:
        _state_problems(state, f)
        if state.halted:
            f.add(Reason.HALTED, "trading is halted")
        if daily_loss_level(state, limits) == "halt":
            f.add(Reason.DAILY_LOSS_LIMIT,
                  f"daily P&L {money(state.daily_pnl)} is at/below -{limits.daily_loss_halt_pct:g}% "
                  f"of account value {money(state.account_value)}")
        n_open = state.open_count()
        if n_open >= limits.max_open_positions:
            f.add(Reason.MAX_POSITIONS, f"{n_open} open positions (max {limits.max_open_positions})")
        direction = v.option_direction
        if direction is not None:
            n_dir = state.count_direction(Direction(direction))
            if n_dir >= limits.max_same_direction:
                f.add(Reason.SAME_DIRECTION_CAP,
                      f"{n_dir} open {direction} positions (max {limits.max_same_direction})")
        if v.strategy is not None:
            disabled = {s.casefold() for s in state.disabled_strategies}
            if v.strategy.casefold() in disabled:
                f.add(Reason.STRATEGY_DISABLED, f"strategy {v.strategy} is disabled")
        if v.symbol is not None:
            ages = state.data_age_s
            key = v.symbol if v.symbol in ages else v.symbol.upper() if v.symbol.upper() in ages else None
            if key is not None:
                age = ages[key]
                if not _finite(age) or exceeds(age, limits.max_data_age_s):
                    f.add(Reason.STALE_DATA,
                          f"{key} market data is {age:g}s old (max {limits.max_data_age_s:g}s)")

    # ---- clock-dependent rules
    now_ny: datetime | None = None
    if isinstance(now, datetime) and now.tzinfo is not None and now.utcoffset() is not None:
        try:
            now_ny = now.astimezone(NY)
            _ = now_ny + timedelta(days=1), now_ny - timedelta(days=1)
        except (OverflowError, ValueError):
            now_ny = None
    today: date | None = None
    dte: int | None = None
    if now_ny is None:
        f.add(Reason.BAD_INPUT, f"now must be a timezone-aware datetime within range, got {now!r}")
    else:
        today = now_ny.date()
        t_ny = now_ny.time()
        skew = limits.max_clock_skew_s
        session = _session_today(state, today)

        for label, ts in (("ts", v.ts), ("quote.ts", v.quote_ts)):
            if ts is not None and exceeds((ts - now).total_seconds(), skew):
                f.add(Reason.BAD_INPUT, f"{label} {ts.isoformat()} is in the future (now {now.isoformat()})")
        if v.quote_ts is not None:
            age = (now - v.quote_ts).total_seconds()
            if exceeds(age, limits.max_quote_age_s):
                f.add(Reason.STALE_DATA, f"quote is {age:.1f}s old (max {limits.max_quote_age_s:g}s)")

        # expiry
        close_today = datetime.combine(today, REGULAR_CLOSE, NY)
        if session is not None and session.close.astimezone(NY).date() == today:
            close_today = session.close
        expiry = inst.expiry if inst is not None else None
        if expiry is not None:
            dte = trading_days_until(today, expiry)
            if expiry < today:
                f.add(Reason.EXPIRED_CONTRACT, f"expiry {expiry} is before today {today} (New York)")
            elif expiry == today and now >= close_today:
                f.add(Reason.EXPIRED_CONTRACT,
                      f"expiry {expiry} is today and the close ({close_today.astimezone(NY):%H:%M} NY) has passed")

        # windows
        hhmm = f"{t_ny:%H:%M:%S} NY"
        if session is None:
            f.add(Reason.OUTSIDE_WINDOW, f"no NYSE regular session on {today} (weekend/holiday)")
        elif not session.contains(now):
            f.add(Reason.OUTSIDE_WINDOW,
                  f"{hhmm} is outside the regular session "
                  f"{session.open.astimezone(NY):%H:%M}-{session.close.astimezone(NY):%H:%M} NY")
        window = limits.window_for(v.strategy)
        if window is not None and not (window[0] <= t_ny < window[1]):
            f.add(Reason.OUTSIDE_WINDOW,
                  f"{hhmm} is outside the {v.strategy} window {window[0]:%H:%M}-{window[1]:%H:%M}")
        is_0dte = (expiry is not None and expiry == today) or v.horizon == Horizon.ZERO_DTE.value
        if is_0dte:
            cutoff: time = limits.no_new_0dte_after
            if session is not None and session.close.astimezone(NY).date() == today:
                early = (session.close.astimezone(NY)
                         - timedelta(minutes=limits.zero_dte_cutoff_before_close_min)).time()
                cutoff = min(cutoff, early)
            if t_ny >= cutoff:
                f.add(Reason.OUTSIDE_WINDOW, f"no new 0DTE entries at/after {cutoff:%H:%M} NY (now {hhmm})")

    # ---- premium-based rules
    premium = v.premium()
    if state is not None and premium is not None:
        cap, basis = per_trade_cap_pct(v.horizon, dte, limits)
        acct = state.account_value
        if not _finite(acct) or acct <= 0:
            f.add(Reason.RISK_PER_TRADE, f"cannot size against account value {acct!r}")
        elif exceeds(premium * 100.0, cap * acct):
            f.add(Reason.RISK_PER_TRADE,
                  f"premium {money(premium)} is {pct(premium / acct * 100.0, False, 2)} of account "
                  f"{money(acct)} (cap {cap:g}% for {basis})")
        bp = state.buying_power
        if not _finite(bp):
            f.add(Reason.BUYING_POWER, f"buying power unusable: {bp!r}")
        elif exceeds(premium, bp):
            f.add(Reason.BUYING_POWER, f"premium {money(premium)} exceeds buying power {money(bp)}")


# --------------------------------------------------------------------------- public API
def check_signal(signal: Signal, state: RiskState | Mapping[str, Any] | None,
                 limits: RiskLimits | None, now: datetime) -> RiskDecision:
    """Check one entry signal against every hard rule. Never raises.

    ``signal`` is normally a validated :class:`Signal`, but a ``model_construct``-ed
    one or a plain mapping (routed to :func:`check_signal_dict`) is handled too.
    ``state`` may be a :class:`RiskState`, its JSON-like mapping, or None (defaults).
    ``limits`` None means ``RiskLimits()``. ``now`` must be timezone-aware.
    """
    if isinstance(signal, Mapping):
        return check_signal_dict(signal, state, limits, now)
    return _run(signal, state, limits, now, extra_bad=None)


def check_signal_dict(obj: Any, state: RiskState | Mapping[str, Any] | None,
                      limits: RiskLimits | None, now: datetime) -> RiskDecision:
    """Like :func:`check_signal` for a raw SIGNAL.json object. Never raises.

    A valid object is checked as a :class:`Signal`. One that fails validation yields
    BAD_INPUT (with the validation errors) plus every other code that can still be
    determined from the raw values (NOT_OPTION, NOT_LONG, HALTED, ...).
    """
    if not isinstance(obj, Mapping):
        f = _Findings()
        f.add(Reason.BAD_INPUT, f"signal must be a JSON object, got {type(obj).__name__}")
        return f.decision()
    try:
        sig = Signal.model_validate(dict(obj))
    except ValidationError as e:
        return _run(obj, state, limits, now, extra_bad="invalid signal: " + _summarise_validation(e))
    except Exception as e:  # noqa: BLE001 - never raise on bad input
        return _run(obj, state, limits, now, extra_bad=f"invalid signal: {type(e).__name__}: {e}")
    return _run(sig, state, limits, now, extra_bad=None)


def _run(signal: Any, state: Any, limits: RiskLimits | None, now: Any, extra_bad: str | None) -> RiskDecision:
    f = _Findings()
    try:
        if extra_bad:
            f.add(Reason.BAD_INPUT, extra_bad)
        lim = limits if isinstance(limits, RiskLimits) else RiskLimits()
        if limits is not None and not isinstance(limits, RiskLimits):
            f.add(Reason.BAD_INPUT, f"limits must be RiskLimits, got {type(limits).__name__}; defaults used")
        st, why = _coerce_state(state)
        if why:
            f.add(Reason.BAD_INPUT, why)
        _evaluate(_extract(signal), st, lim, now, f)
    except Exception as e:  # noqa: BLE001 - fail closed rather than crash the caller
        f.add(Reason.BAD_INPUT, f"internal error while checking: {type(e).__name__}: {e}")
    try:
        return f.decision()
    except Exception as e:  # noqa: BLE001
        return RiskDecision(ok=False, reasons=[Reason.BAD_INPUT],
                            details={Reason.BAD_INPUT: f"internal error: {type(e).__name__}"})


def daily_loss_level(state: RiskState | Mapping[str, Any] | None,
                     limits: RiskLimits | None = None) -> DailyLossLevel:
    """``"ok"`` / ``"warning"`` (loss >= warn%) / ``"halt"`` (loss >= halt%) of account value.

    Fails closed: an unusable state (NaN P&L, account value <= 0, invalid mapping) is "halt".
    """
    lim = limits if isinstance(limits, RiskLimits) else RiskLimits()
    st, _ = _coerce_state(state)
    if st is None:
        return "halt"
    acct, pnl = st.account_value, st.daily_pnl
    if not _finite(acct) or acct <= 0 or not _finite(pnl):
        return "halt"
    if reaches(-pnl * 100.0, lim.daily_loss_halt_pct * acct):
        return "halt"
    if reaches(-pnl * 100.0, lim.daily_loss_warn_pct * acct):
        return "warning"
    return "ok"


def premium_at_risk(signal: Signal | Mapping[str, Any]) -> float:
    """Dollars at risk of a long option: qty x limit x multiplier. NaN when not computable."""
    try:
        p = _extract(signal).premium()
    except Exception:  # noqa: BLE001
        return math.nan
    return math.nan if p is None else p


def risk_pct_of_account(signal: Signal | Mapping[str, Any],
                        state: RiskState | Mapping[str, Any] | None) -> float:
    """Premium at risk as % of ``state.account_value``.

    NaN when the premium is not computable; +inf when the account value is not positive.
    """
    prem = premium_at_risk(signal)
    st, _ = _coerce_state(state)
    if math.isnan(prem):
        return math.nan
    if st is None or not _finite(st.account_value) or st.account_value <= 0:
        return math.inf
    return prem / st.account_value * 100.0
