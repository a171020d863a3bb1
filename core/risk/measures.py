"""Money measures of a signal and a state: premium at risk, its share of the account, the
per-trade cap that applies, and the daily loss level. Pure; none of them raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ValidationError

from core.domain.signal import Horizon, Signal
from core.risk.coerce import finite, summarise_validation
from core.risk.compare import reaches
from core.risk.limits import RiskLimits
from core.risk.signal_check import read_signal
from core.risk.state import RiskState

DailyLossLevel = Literal["ok", "warning", "halt"]


def coerce_state(state: Any) -> tuple[RiskState | None, str | None]:
    """(state, None), or (None, why) when ``state`` is not a usable RiskState / STATE.json mapping."""
    if isinstance(state, RiskState):
        return state, None
    if state is None:
        return RiskState(), None
    try:
        return RiskState.model_validate(state), None
    except ValidationError as e:
        return None, "state: " + summarise_validation(e)
    except Exception as e:  # noqa: BLE001 - never raise on bad input
        return None, f"state unusable: {type(e).__name__}"


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


def daily_loss_level(state: RiskState | Mapping[str, Any] | None,
                     limits: RiskLimits | None = None) -> DailyLossLevel:
    """``"ok"`` / ``"warning"`` (loss >= warn%) / ``"halt"`` (loss >= halt%) of account value.

    Fails closed: an unusable state (NaN P&L, account value <= 0, invalid mapping) is "halt".
    """
    lim = limits if isinstance(limits, RiskLimits) else RiskLimits()
    st, _ = coerce_state(state)
    if st is None:
        return "halt"
    acct, pnl = st.account_value, st.daily_pnl
    if not finite(acct) or acct <= 0 or not finite(pnl):
        return "halt"
    if reaches(-pnl * 100.0, lim.daily_loss_halt_pct * acct):
        return "halt"
    if reaches(-pnl * 100.0, lim.daily_loss_warn_pct * acct):
        return "warning"
    return "ok"


def premium_at_risk(signal: Signal | Mapping[str, Any]) -> float:
    """Dollars at risk of a long option: qty x limit x multiplier. NaN when not computable."""
    try:
        p = read_signal(signal).premium()
    except Exception:  # noqa: BLE001
        return math.nan
    return math.nan if p is None else p


def risk_pct_of_account(signal: Signal | Mapping[str, Any],
                        state: RiskState | Mapping[str, Any] | None) -> float:
    """Premium at risk as % of ``state.account_value``.

    NaN when the premium is not computable; +inf when the account value is not positive.
    """
    prem = premium_at_risk(signal)
    st, _ = coerce_state(state)
    if math.isnan(prem):
        return math.nan
    if st is None or not finite(st.account_value) or st.account_value <= 0:
        return math.inf
    return prem / st.account_value * 100.0
