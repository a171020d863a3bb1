"""Constrained value types shared by the domain models and the bus events.

Decision: a value that cannot be a price, a quantity or a time fails validation where it
enters (``decode`` of a bus entry, ``model_validate`` of a Redis record, construction of a
model), so nothing downstream ever computes with it. The constraints run inside pydantic's
core (no Python validators), which keeps encode/decode cheap.

* prices are finite; ``Price`` may be 0 (a zero bid of a deep out-of-the-money option, an
  unknown last), ``PositivePrice`` may not (a limit, a strike, a target);
* quantities of contracts are whole and positive (``Qty``); ``Count`` is a whole number >= 0
  (the open quantity of a closed position, a stop move's 0);
* sizes and volumes are finite and >= 0; signed figures (P&L, net premium) are finite;
* times are epoch milliseconds between 1970 and 2100 (``EpochMs``): a seconds value or an
  overflow is not silently taken as a time far in the past or future.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z

Finite = Annotated[float, Field(allow_inf_nan=False)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositivePrice = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Size = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Qty = Annotated[int, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
EpochMs = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS)]
IsoDate = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
