"""Exit-plan rule sets per horizon (pure data; :mod:`core.positions.exit_plan` applies them).

Gains and losses are fractions of the average entry premium: ``gain=0.5`` is +50 %,
``hard_stop_loss=0.5`` is a stop at 50 % of entry (-50 %). Scale-out fractions are
fractions of the *initial* quantity.

=============  =====================================================================
0DTE / 1DTE    25 % of initial qty off at +50 %, 50 % at +100 %; the trail (25 % below
               the high-water mark) activates at the first scale-out level (+50 %);
               hard stop at -50 %; 0DTE flat by ``flat_by`` (15:55 NY) every session,
               1DTE (and every horizon) flat by 15:55 on the contract's expiry day.
swing          50 % off at +100 %; trail 25 % below high water once +50 % was reached;
(14-45 DTE)    exit when down 30 % after 5 sessions; exit on the session before the
               position's ``next_earnings`` date; no price hard stop unless one is given
               at entry (e.g. the signal's stop).
=============  =====================================================================

Once the trail is active the stop is ``max(trail level, breakeven)`` (breakeven =
entry + the round-trip commission per share, rounded up to the tick), so a locked
trail never turns into a loss; stops only ratchet up.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.domain.signal import Horizon

__all__ = ["ONE_DTE_PLAN", "SWING_PLAN", "ZERO_DTE_PLAN", "ExitPlan", "TargetRule", "plan_for"]


class TargetRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    gain: float = Field(gt=0)  # 0.5 = +50 % over average entry
    fraction: float = Field(gt=0, le=1)  # of the initial quantity


class ExitPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    targets: tuple[TargetRule, ...] = ()
    trail_pct: float = Field(default=0.25, gt=0, lt=1)
    trail_activation_gain: float = Field(default=0.5, ge=0)
    hard_stop_loss: float | None = Field(default=0.5, gt=0, lt=1)
    flat_at_session_end: bool = False  # 0DTE: flat by SessionInfo.flat_by every session
    flat_on_expiry_day: bool = True  # every horizon: flat by flat_by on the expiry date
    time_stop_sessions: int | None = Field(default=None, gt=0)
    time_stop_loss: float | None = Field(default=None, gt=0, lt=1)
    exit_before_earnings: bool = False
    keep_runner: bool = True  # scale-outs never sell the last contract: the rest is trailed
    lock_breakeven: bool = True
    breakeven_includes_commissions: bool = True
    tick: float = Field(default=0.01, gt=0)


_SHORT_DATED_TARGETS = (
    TargetRule(name="t1", gain=0.5, fraction=0.25),
    TargetRule(name="t2", gain=1.0, fraction=0.5),
)

ZERO_DTE_PLAN = ExitPlan(name="0dte", targets=_SHORT_DATED_TARGETS, flat_at_session_end=True)
ONE_DTE_PLAN = ExitPlan(name="1dte", targets=_SHORT_DATED_TARGETS)
SWING_PLAN = ExitPlan(
    name="swing",
    targets=(TargetRule(name="t1", gain=1.0, fraction=0.5),),
    trail_activation_gain=0.5,
    hard_stop_loss=None,
    time_stop_sessions=5,
    time_stop_loss=0.30,
    exit_before_earnings=True,
)

_PLANS = {Horizon.ZERO_DTE: ZERO_DTE_PLAN, Horizon.ONE_DTE: ONE_DTE_PLAN, Horizon.SWING: SWING_PLAN}


def plan_for(horizon: Horizon | str) -> ExitPlan:
    return _PLANS[Horizon(horizon)]
