"""Positions: the position model, fill accounting and the exit-plan state machine.

Pure functions with ``now`` passed in; a bus service wraps them and keeps the
``Position`` JSON in Redis.
"""

from core.positions.exit_plan import (
    CloseAll,
    MoveStop,
    PositionAction,
    SellPartial,
    actions_adapter,
    apply_action,
    evaluate,
    exit_order,
    observe,
    scale_out_qty,
    step,
)
from core.positions.plans import ONE_DTE_PLAN, SWING_PLAN, ZERO_DTE_PLAN, ExitPlan, TargetRule, plan_for
from core.positions.position import (
    Position,
    PositionEvent,
    PositionEventKind,
    PositionStatus,
    apply_fill,
    open_position,
    release_exit,
)
from core.positions.session import SessionInfo

__all__ = [
    "ONE_DTE_PLAN",
    "SWING_PLAN",
    "ZERO_DTE_PLAN",
    "CloseAll",
    "ExitPlan",
    "MoveStop",
    "Position",
    "PositionAction",
    "PositionEvent",
    "PositionEventKind",
    "PositionStatus",
    "SellPartial",
    "SessionInfo",
    "TargetRule",
    "actions_adapter",
    "apply_action",
    "apply_fill",
    "evaluate",
    "exit_order",
    "observe",
    "open_position",
    "plan_for",
    "release_exit",
    "scale_out_qty",
    "step",
]
