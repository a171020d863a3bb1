"""The order policy every broker shares: how an order is priced, when it is repriced,
when it is cancelled. Paper, dry-run and live manage orders the same way because the
paper broker and the IBKR adapter both ask this module and only differ in what they do
with the answer (the paper broker changes its own book; IBKR modifies or cancels the
order at IB).

Pure: no I/O, no clock. Times and quotes are passed in.

* :meth:`OrderPolicy.initial_limit` - entry ``BUY LMT`` with no limit: mid rounded *down*
  to the tick; exit ``SELL LMT`` with no limit: the bid (at least one tick). Never above
  ``max_price`` / below ``min_price``. ``MKT`` has no limit.
* :meth:`OrderPolicy.refuse_entry` - an entry whose spread is already wider than
  ``cancel_spread_pct_of_mid`` of mid is refused (``SPREAD_TOO_WIDE``).
* :meth:`OrderPolicy.time_cancel` - ``DAY`` orders end at ``day_close`` (16:00 NY) of their
  day (``day_end``); entries end ``order_timeout_s`` after placement (``timeout``); exits
  only if ``exit_timeout_s`` is set.
* :meth:`OrderPolicy.on_quote` - per quote: a time cancel first, then an entry whose
  spread widened past the limit is cancelled, then a limit order idle (no reprice, no
  fill) for ``reprice_after_s`` moves toward the far side by
  ``reprice_step_pct_of_spread`` of the current spread (rounded to the tick, at least
  one tick, never past the ask / bid, never past ``max_price`` / ``min_price``), at most
  ``max_reprices`` times for entries (``exit_max_reprices`` for exits; None = unlimited).

Boundaries are exact (:mod:`core.risk.compare`): a spread of exactly
``cancel_spread_pct_of_mid`` % is not too wide, a quote exactly ``max_quote_age_s`` old still
prices, an order is timed out / repriced at exactly ``order_timeout_s`` / ``reprice_after_s``.
A BUY never works above ``max_price`` (placement clips it to the per-trade cap, see
:mod:`core.execution.pretrade`), so its worst fill is ``max_price``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.domain.reasons import Reason
from core.domain.signal import Side
from core.execution.orders import OrderPurpose, OrderRequest, OrderState, OrderType, TimeInForce
from core.execution.pricing import ny, ny_at, to_tick
from core.risk.compare import EPS, exceeds, reaches

__all__ = ["EPS", "OrderPolicy", "PolicyAction", "PolicyConfig", "QuoteView"]



class PolicyConfig(BaseModel):
    """Order-management settings (names match ``execution:`` in ``config/default.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commission_per_contract: float = Field(default=0.65, ge=0)
    tick: float = Field(default=0.01, gt=0)
    reprice_after_s: float = Field(default=30.0, gt=0)
    reprice_step_pct_of_spread: float = Field(default=25.0, gt=0, le=100)
    max_reprices: int = Field(default=2, ge=0)
    exit_max_reprices: int | None = Field(default=None, ge=0)
    order_timeout_s: float | None = Field(default=120.0, gt=0)
    exit_timeout_s: float | None = Field(default=None, gt=0)
    cancel_spread_pct_of_mid: float | None = Field(default=10.0, gt=0)
    max_quote_age_s: float | None = Field(default=15.0, gt=0)
    passive_fill_prob: float = Field(default=0.0, ge=0, le=1)  # paper fill model only
    seed: int | None = None  # paper fill model only
    day_close: time = time(16, 0)

    @model_validator(mode="after")
    def _seeded(self) -> PolicyConfig:
        if 0.0 < self.passive_fill_prob < 1.0 and self.seed is None:
            raise ValueError("passive_fill_prob strictly between 0 and 1 needs a seed (determinism)")
        return self


class QuoteView(Protocol):
    """The quote fields the policy reads (``core.execution.broker.QuoteSnapshot`` fits)."""

    @property
    def bid(self) -> float: ...

    @property
    def ask(self) -> float: ...

    @property
    def mid(self) -> float: ...

    @property
    def spread(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PolicyAction:
    """What to do with a working order now: ``cancel`` (with ``reason``), ``reprice`` (to
    ``new_limit``), or nothing (``kind is None``)."""

    kind: str | None = None  # "cancel" | "reprice" | None
    reason: str = ""
    new_limit: float | None = None


NOTHING = PolicyAction()


class OrderPolicy:
    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()

    # ---------------------------------------------------------------- placement
    def too_wide(self, q: QuoteView) -> bool:
        pct = self.config.cancel_spread_pct_of_mid
        if pct is None:
            return False
        return q.mid <= 0 or exceeds(q.spread, pct / 100.0 * q.mid)

    def quote_age_problem(self, order: OrderRequest, quote_ts: datetime | None) -> str | None:
        """Why the last quote cannot price ``order`` (None: it can)."""
        if quote_ts is None:
            return f"no quote for {order.contract_key}"
        age = (order.created_ts - quote_ts).total_seconds()
        if self.config.max_quote_age_s is not None and exceeds(age, self.config.max_quote_age_s):
            return f"last quote is {age:.1f}s old"
        return None

    def refuse_entry(self, order: OrderRequest, q: QuoteView) -> tuple[Reason, str] | None:
        if order.purpose == OrderPurpose.ENTRY and self.too_wide(q):
            return (Reason.SPREAD_TOO_WIDE,
                    f"spread {q.spread:.2f} > {self.config.cancel_spread_pct_of_mid}% of mid {q.mid:.2f}")
        return None

    def initial_limit(self, order: OrderRequest, q: QuoteView) -> float | None:
        cfg = self.config
        if order.order_type != OrderType.LMT:
            return None
        if order.side == Side.BUY:
            limit = order.limit if order.limit is not None else to_tick(q.mid, cfg.tick, "down")
            if order.max_price is not None:
                limit = min(limit, order.max_price)
            return limit
        limit = order.limit if order.limit is not None else max(to_tick(q.bid, cfg.tick), cfg.tick)
        if order.min_price is not None:
            limit = max(limit, order.min_price)
        return limit

    # ---------------------------------------------------------------- working orders
    def time_cancel(self, o: OrderState, now: datetime) -> str | None:
        cfg = self.config
        req = o.request
        if req.tif == TimeInForce.DAY and now >= ny_at(ny(req.created_ts).date(), cfg.day_close):
            return "day_end"
        timeout = cfg.order_timeout_s if req.purpose == OrderPurpose.ENTRY else cfg.exit_timeout_s
        if timeout is not None and reaches((now - o.placed_ts).total_seconds(), timeout):
            return "timeout"
        return None

    def on_quote(self, o: OrderState, q: QuoteView, now: datetime) -> PolicyAction:
        """The one thing to do with working order ``o`` on quote ``q`` at ``now``."""
        why = self.time_cancel(o, now)
        if why is not None:
            return PolicyAction("cancel", why)
        req = o.request
        entry = req.purpose == OrderPurpose.ENTRY
        if entry and self.too_wide(q):
            return PolicyAction("cancel", Reason.SPREAD_TOO_WIDE.value)
        if req.order_type != OrderType.LMT or o.limit is None:
            return NOTHING
        cfg = self.config
        cap = cfg.max_reprices if entry else cfg.exit_max_reprices
        last = max([o.last_priced_ts] + [f.ts for f in o.fills])
        idle = (now - last).total_seconds()
        if reaches(idle, cfg.reprice_after_s) and (cap is None or o.repricings < cap):
            new = self.reprice_target(o, q)
            if new is not None:
                return PolicyAction("reprice", new_limit=new)
        return NOTHING

    def reprice_target(self, o: OrderState, q: QuoteView) -> float | None:
        cfg = self.config
        req = o.request
        assert o.limit is not None
        step = cfg.reprice_step_pct_of_spread / 100.0 * q.spread
        if req.side == Side.BUY:
            far = to_tick(q.ask, cfg.tick, "down")
            if req.max_price is not None:
                far = min(far, req.max_price)
            target = min(to_tick(o.limit + step, cfg.tick), far)
            if target <= o.limit + EPS:
                target = min(o.limit + cfg.tick, far)
            return round(target, 10) if target > o.limit + EPS else None
        far = max(to_tick(q.bid, cfg.tick, "up"), cfg.tick)
        if req.min_price is not None:
            far = max(far, req.min_price)
        target = max(to_tick(o.limit - step, cfg.tick), far)
        if target >= o.limit - EPS:
            target = max(o.limit - cfg.tick, far)
        return round(target, 10) if target < o.limit - EPS else None
