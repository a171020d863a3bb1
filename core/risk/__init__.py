"""Hard risk rules for single-leg LONG option entries. Pure: no I/O, no wall clock.

    from core.risk import RiskLimits, RiskState, check_signal
    decision = check_signal(signal, state, RiskLimits(), now)   # now: aware datetime
    decision.ok, decision.reasons, decision.details

Public API
----------
``check_signal(signal, state, limits, now) -> RiskDecision``      never raises
``check_signal_dict(obj, state, limits, now) -> RiskDecision``    raw SIGNAL.json dict; never raises
``daily_loss_level(state, limits=None) -> "ok" | "warning" | "halt"``
``premium_at_risk(signal) -> float``            qty x limit x multiplier (dollars)
``risk_pct_of_account(signal, state) -> float`` premium as % of account value
``RiskLimits``, ``RiskState``, ``OpenPosition``, ``RiskDecision``, ``nyse_session``

``RiskDecision.reasons`` lists every failing :class:`core.domain.reasons.Reason`, once
each, in enum order; ``details`` maps each to human text; ``ok`` iff no reasons.

STATE.json defaults (every key optional; ``{}`` is valid)
--------------------------------------------------------
::

    account_value        100000.0
    buying_power         = account_value
    daily_pnl            0.0           today's P&L in dollars, losses negative
    open_positions       []            [{symbol, strategy, right, direction, qty, entry_price,
                                         multiplier, expiry, strike}], all optional:
                                         "" / "" / null / null / 1 / 0.0 / 100 / null / null;
                                         direction derives from right (C bullish, P bearish);
                                         qty 0 = closed, not counted
    halted               false
    disabled_strategies  []            matched case-insensitively
    data_age_s           {}            symbol -> seconds since last data update
    session_open         null          optional aware datetimes overriding today's
    session_close        null          XNYS session (both or neither)

Unknown STATE.json keys are ignored.

Limit defaults (``RiskLimits``; override via ``RiskLimits.from_config(mapping)``)
-----------------------------------------------------------------------------
::

    risk_per_trade_pct   {"0dte": 2.0, "1dte": 3.0, "swing": 5.0}   % of account value
    daily_loss_warn_pct  4.0        daily_loss_halt_pct 6.0           % of account value
    max_open_positions   6          max_same_direction  3
    max_spread_pct_of_mid 10.0      (ask - bid) / mid
    max_quote_age_s      15.0       max_data_age_s      60.0
    max_clock_skew_s     5.0        a timestamp may be this far in the future
    no_new_0dte_after    15:30 NY   zero_dte_cutoff_before_close_min 30 (early closes)
    strategy_windows     gamma_0dte 09:45-15:00, overnight_1dte 15:00-15:45,
                         moc_imbalance 15:30-15:50, directional_swing 09:45-15:45
                         (New York time, start <= t < end; unlisted strategies: no window)

Sessions come from the XNYS calendar (holidays and early closes, e.g. 2026-11-27
closes 13:00) unless the state overrides them. See :mod:`core.risk.rules` for the
exact condition behind each reason code.

Modules: ``rules`` (the rule engine, ``check_signal``), ``signal_check`` (the tolerant reading
of a signal into plain values and BAD_INPUT problems), ``measures`` (premium, account share,
per-trade cap, daily loss level), ``coerce`` (tolerant readers of raw values), ``limits``,
``state``, ``sessions``, ``decision``, ``compare``.
"""

from core.risk.decision import RiskDecision
from core.risk.limits import DEFAULT_RISK_PER_TRADE_PCT, DEFAULT_STRATEGY_WINDOWS, RiskLimits
from core.risk.measures import (
    DailyLossLevel,
    daily_loss_level,
    per_trade_cap_pct,
    premium_at_risk,
    risk_pct_of_account,
)
from core.risk.rules import check_signal, check_signal_dict
from core.risk.sessions import NY, Session, nyse_session, trading_days_until
from core.risk.state import OpenPosition, RiskState

__all__ = [
    "DEFAULT_RISK_PER_TRADE_PCT",
    "DEFAULT_STRATEGY_WINDOWS",
    "NY",
    "DailyLossLevel",
    "OpenPosition",
    "RiskDecision",
    "RiskLimits",
    "RiskState",
    "Session",
    "check_signal",
    "check_signal_dict",
    "daily_loss_level",
    "nyse_session",
    "per_trade_cap_pct",
    "premium_at_risk",
    "risk_pct_of_account",
    "trading_days_until",
]
