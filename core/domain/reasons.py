"""Risk reason codes. One vocabulary for ``core.risk``, the overseer's hard rules and the broker
adapters (``EXECUTION_ONLY`` codes are only ever given at the point of order)."""

from enum import StrEnum


class Reason(StrEnum):
    NOT_OPTION = "NOT_OPTION"
    NOT_LONG = "NOT_LONG"
    NOT_SINGLE_LEG = "NOT_SINGLE_LEG"
    EXPIRED_CONTRACT = "EXPIRED_CONTRACT"
    BAD_INPUT = "BAD_INPUT"
    RISK_PER_TRADE = "RISK_PER_TRADE"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    MAX_POSITIONS = "MAX_POSITIONS"
    SAME_DIRECTION_CAP = "SAME_DIRECTION_CAP"
    SPREAD_TOO_WIDE = "SPREAD_TOO_WIDE"
    STALE_DATA = "STALE_DATA"
    OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
    HALTED = "HALTED"
    BUYING_POWER = "BUYING_POWER"
    STRATEGY_DISABLED = "STRATEGY_DISABLED"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"  # the broker connection is down: nothing can be placed


EXECUTION_ONLY = frozenset({Reason.BROKER_UNAVAILABLE})
