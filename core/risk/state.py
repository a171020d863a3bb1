"""Account/risk state the rules are checked against. Its JSON form is ``STATE.json``.

Defaults when a key is absent (so ``{}`` is a valid STATE.json: a flat, idle
$100k account with nothing open, not halted)::

    account_value        100000.0
    buying_power         = account_value (whatever account_value is)
    daily_pnl            0.0       realised + unrealised P&L today, dollars (loss < 0)
    open_positions       []        list of OpenPosition (below)
    halted               false
    disabled_strategies  []
    data_age_s           {}        symbol -> seconds since that symbol's market data updated
    session_open         null      optional override of today's session (aware datetimes);
    session_close        null      when both are set they replace the XNYS calendar

OpenPosition keys (all optional): symbol "", strategy "", right null ("C"/"P"),
direction null ("bullish"/"bearish"; derived from right when absent), qty 1,
entry_price 0.0, multiplier 100, expiry null, strike null. A position with
``qty == 0`` is closed and not counted. Unknown keys are ignored.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from core.domain.contract import Right
from core.domain.signal import Direction

DEFAULT_ACCOUNT_VALUE = 100_000.0


class OpenPosition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    symbol: str = ""
    strategy: str = ""
    right: Right | None = None
    direction: Direction | None = None
    qty: int = 1
    entry_price: float = 0.0
    multiplier: int = 100
    expiry: date | None = None
    strike: float | None = None

    @property
    def is_open(self) -> bool:
        return self.qty != 0

    def implied_direction(self) -> Direction | None:
        """Long calls are bullish, long puts bearish; ``direction`` only when right is unknown."""
        if self.right == Right.CALL:
            return Direction.BULLISH
        if self.right == Right.PUT:
            return Direction.BEARISH
        return self.direction


class RiskState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    account_value: float = DEFAULT_ACCOUNT_VALUE
    buying_power: float = DEFAULT_ACCOUNT_VALUE  # defaults to account_value, see validator
    daily_pnl: float = 0.0
    open_positions: list[OpenPosition] = Field(default_factory=list)
    halted: bool = False
    disabled_strategies: list[str] = Field(default_factory=list)
    data_age_s: dict[str, float] = Field(default_factory=dict)
    session_open: AwareDatetime | None = None
    session_close: AwareDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _buying_power_defaults_to_account_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("buying_power") is None:
            data = {**data, "buying_power": data.get("account_value", DEFAULT_ACCOUNT_VALUE)}
        return data

    def open_count(self) -> int:
        return sum(1 for p in self.open_positions if p.is_open)

    def count_direction(self, direction: Direction) -> int:
        return sum(1 for p in self.open_positions if p.is_open and p.implied_direction() == direction)
