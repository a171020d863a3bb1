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
* BAD_INPUT         malformed signal/state/now - see :mod:`core.risk.signal_check`
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

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import ValidationError

from core.domain.reasons import Reason
from core.domain.signal import Direction, Horizon, Signal
from core.format.numbers import money, pct
from core.risk.coerce import finite, summarise_validation
from core.risk.compare import exceeds
from core.risk.decision import RiskDecision
from core.risk.limits import RiskLimits
from core.risk.measures import coerce_state, daily_loss_level, per_trade_cap_pct
from core.risk.sessions import NY, REGULAR_CLOSE, Session, nyse_session, trading_days_until
from core.risk.signal_check import SignalView, read_signal
from core.risk.state import RiskState


# --------------------------------------------------------------------------- findings
class _Findings:
    def __init__(self) -> None:
        self.by_reason: dict[Reason, list[str]] = {}

    def add(self, reason: Reason, text: str) -> None:
        self.by_reason.setdefault(reason, []).append(text)

    def decision(self) -> RiskDecision:
        return RiskDecision.from_findings(self.by_reason)


def _state_problems(state: RiskState, f: _Findings) -> None:
    if not finite(state.account_value) or state.account_value <= 0:
        f.add(Reason.BAD_INPUT, f"state.account_value must be a positive finite number, got {state.account_value!r}")
    if not finite(state.buying_power):
        f.add(Reason.BAD_INPUT, f"state.buying_power must be finite, got {state.buying_power!r}")
    if not finite(state.daily_pnl):
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


# --------------------------------------------------------------------------- the engine
def _evaluate(v: SignalView, state: RiskState | None, limits: RiskLimits, now: Any, f: _Findings) -> None:
    for text in v.problems:
        f.add(Reason.BAD_INPUT, text)
    _check_structure(v, f)
    _check_spread(v, limits, f)
    _check_state(v, state, limits, f)
    dte = _check_clock(v, state, limits, now, f)
    _check_premium(v, state, limits, dte, f)


def _check_structure(v: SignalView, f: _Findings) -> None:
    """structure: option, long, single leg."""
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


def _check_spread(v: SignalView, limits: RiskLimits, f: _Findings) -> None:
    """quote spread (needs no clock)."""
    if v.bid is not None and v.ask is not None:
        mid = (v.bid + v.ask) / 2.0
        spread_pct = (v.ask - v.bid) / mid * 100.0
        if exceeds(spread_pct, limits.max_spread_pct_of_mid):
            f.add(Reason.SPREAD_TOO_WIDE,
                  f"spread {v.ask - v.bid:g} is {spread_pct:.1f}% of mid {mid:g} "
                  f"(max {limits.max_spread_pct_of_mid:g}%)")


def _check_state(v: SignalView, state: RiskState | None, limits: RiskLimits, f: _Findings) -> None:
    """state-only rules."""
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
                if not finite(age) or exceeds(age, limits.max_data_age_s):
                    f.add(Reason.STALE_DATA,
                          f"{key} market data is {age:g}s old (max {limits.max_data_age_s:g}s)")


def _check_clock(v: SignalView, state: RiskState | None, limits: RiskLimits, now: Any,
                 f: _Findings) -> int | None:
    """clock-dependent rules: future timestamps, quote age, expiry, session and windows.

    Returns the trading days to expiry (None when the expiry or the clock is unusable)."""
    inst = v.inst
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
    return dte


def _check_premium(v: SignalView, state: RiskState | None, limits: RiskLimits, dte: int | None,
                   f: _Findings) -> None:
    """premium-based rules: the per-trade cap and buying power."""
    premium = v.premium()
    if state is not None and premium is not None:
        cap, basis = per_trade_cap_pct(v.horizon, dte, limits)
        acct = state.account_value
        if not finite(acct) or acct <= 0:
            f.add(Reason.RISK_PER_TRADE, f"cannot size against account value {acct!r}")
        elif exceeds(premium * 100.0, cap * acct):
            f.add(Reason.RISK_PER_TRADE,
                  f"premium {money(premium)} is {pct(premium / acct * 100.0, False, 2)} of account "
                  f"{money(acct)} (cap {cap:g}% for {basis})")
        bp = state.buying_power
        if not finite(bp):
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
        return _run(obj, state, limits, now, extra_bad="invalid signal: " + summarise_validation(e))
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
        st, why = coerce_state(state)
        if why:
            f.add(Reason.BAD_INPUT, why)
        _evaluate(read_signal(signal), st, lim, now, f)
    except Exception as e:  # noqa: BLE001 - fail closed rather than crash the caller
        f.add(Reason.BAD_INPUT, f"internal error while checking: {type(e).__name__}: {e}")
    try:
        return f.decision()
    except Exception as e:  # noqa: BLE001
        return RiskDecision(ok=False, reasons=[Reason.BAD_INPUT],
                            details={Reason.BAD_INPUT: f"internal error: {type(e).__name__}"})

