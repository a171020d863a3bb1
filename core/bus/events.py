"""Typed events. One model per event type; every event carries ``id``, ``ts``
(UTC epoch ms), ``type`` and the ``correlation_id`` that follows a trade from
signal -> review -> approval -> order -> fill -> position updates -> posts.

Each event family has its own stream (``STREAM``). On the wire an entry is
``{"t": <type>, "d": <json of the model>}``; :func:`decode` turns it back into
the right class and raises :class:`BadEvent` for anything malformed.

Validation at the boundary (decision): every number an event carries is constrained by its
type (``core.domain.values``): prices finite and >= 0 (> 0 where a zero cannot be meant: a
limit, a strike, a target), contract quantities whole and > 0, sizes and volumes >= 0, times
epoch ms in 1970..2100, enums as ``Literal``; a quote's bid is never above its ask, and an
approval that approves carries a quantity of 1..the signal's size. No float of any event may
be NaN or infinite (``allow_inf_nan=False`` for the whole model, nested lists and dicts too).
So a poison entry fails :func:`decode` with :class:`BadEvent` (the consumer counts, logs and
dead-letters it) and a producer that would publish one fails at construction, before
anything is written. The checks run in pydantic's core except the two cross-field ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.domain.signal import Signal
from core.domain.values import Count, EpochMs, Finite, IsoDate, Percent, PositivePrice, Price, Qty, Size

NY = ZoneInfo("America/New_York")
REGISTRY: dict[str, type[Event]] = {}


class BadEvent(ValueError):
    """A stream entry that is not a valid event (counted and dead-lettered by consumers)."""


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    STREAM: ClassVar[str] = ""
    type: str
    id: str = Field(min_length=1)
    ts: EpochMs
    correlation_id: str
    source: str = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        field = cls.model_fields.get("type")
        if field is not None and isinstance(field.default, str) and field.default:
            REGISTRY[field.default] = cls

    @property
    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.ts / 1000, tz=UTC)

    def iso_ny(self) -> str:
        return self.dt.astimezone(NY).isoformat(timespec="milliseconds")


def encode(event: Event) -> dict[str, str]:
    return {"t": event.type, "d": event.model_dump_json()}


def decode(fields: dict[Any, Any]) -> Event:
    def _s(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    norm = {_s(k): _s(v) for k, v in fields.items()}
    etype, data = norm.get("t"), norm.get("d")
    if not etype or data is None:
        raise BadEvent("entry has no type or data")
    cls = REGISTRY.get(etype)
    if cls is None:
        raise BadEvent(f"unknown event type {etype!r}")
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        raise BadEvent(f"invalid {etype}: {exc.errors()[0].get('msg')} at "
                       f"{'.'.join(str(p) for p in exc.errors()[0].get('loc', ()))}") from None


# ---------------------------------------------------------------- market data
class QuoteEvent(Event):
    STREAM: ClassVar[str] = "quotes"
    type: Literal["market.quote"] = "market.quote"
    symbol: str
    bid: Price
    ask: Price
    last: Price
    bid_size: Size = 0
    ask_size: Size = 0
    volume: Size = 0
    quote_ts: EpochMs  # source timestamp (ms); differs from ts when a feed is stale
    depth_bid: list[tuple[Price, Size]] = Field(default_factory=list)  # (price, size) best first
    depth_ask: list[tuple[Price, Size]] = Field(default_factory=list)
    feed: str = "sim"

    @model_validator(mode="after")
    def _uncrossed(self) -> Any:
        return _not_crossed(self)


class ChainEvent(Event):
    STREAM: ClassVar[str] = "chains"
    type: Literal["market.chain"] = "market.chain"
    symbol: str
    spot: Price
    asof: EpochMs
    snapshot_key: str
    contracts: Count
    feed: str = "sim"


class FlowEvent(Event):
    """Trade prints summary and vendor-style flow (alerts, net premium) for one symbol."""

    STREAM: ClassVar[str] = "flow"
    type: Literal["market.flow"] = "market.flow"
    symbol: str
    buy_volume: Size = 0
    sell_volume: Size = 0
    sweeps: Count = 0
    blocks: Count = 0
    net_call_premium: Finite = 0
    net_put_premium: Finite = 0
    dark_buy_volume: Size = 0
    dark_sell_volume: Size = 0
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    price_change: Finite = 0
    volume: Size = 0
    last: Price = 0


class OptionQuoteEvent(Event):
    """Quote of one watched option contract (working orders, open positions), every tick."""

    STREAM: ClassVar[str] = "option_quotes"
    type: Literal["market.option_quote"] = "market.option_quote"
    symbol: str
    contract_key: str
    expiry: IsoDate
    strike: PositivePrice
    right: Literal["C", "P"]
    bid: Price  # 0 is a normal bid for a deep out-of-the-money option
    ask: Price
    bid_size: Size = 0
    ask_size: Size = 0
    quote_ts: EpochMs
    underlying: Price = 0

    @model_validator(mode="after")
    def _uncrossed(self) -> Any:
        return _not_crossed(self)


class ImbalanceEvent(Event):
    STREAM: ClassVar[str] = "flow"
    type: Literal["market.imbalance"] = "market.imbalance"
    symbol: str
    side: Literal["buy", "sell", "none"]
    shares: Size
    paired: Size = 0
    indicative_price: Price = 0
    confidence: Percent = 0


# ---------------------------------------------------------------- analytics
class AnalyticsEvent(Event):
    STREAM: ClassVar[str] = "analytics"
    type: Literal["analytics.snapshot"] = "analytics.snapshot"
    snapshot_id: str
    symbol: str
    spot: Price
    asof: EpochMs
    gex_total: float | None = None
    dex_total: float | None = None
    call_wall: float | None = None
    put_wall: float | None = None
    zero_gamma: float | None = None
    max_gamma_strike: float | None = None
    max_pain: float | None = None  # nearest expiry
    obi_l1: float | None = None
    obi_l5: float | None = None
    vpin: float | None = None
    liquidity_grade: str | None = None
    contracts_used: Count = 0
    contracts_rejected: Count = 0
    # per-use validation (core.analytics.chain_analysis): r and q used, rows per use, rejections
    # by use and reason, and where the volatilities came from (vendor / solved_mid / solved_last)
    rate: Finite | None = None
    dividend_yield: Finite | None = None
    rows_by_use: dict[str, int] = Field(default_factory=dict)
    rejected_by_use: dict[str, dict[str, int]] = Field(default_factory=dict)
    iv_sources: dict[str, int] = Field(default_factory=dict)
    gex_by_strike: dict[str, float] = Field(default_factory=dict)
    features: dict[str, float] = Field(default_factory=dict)


# ---------------------------------------------------------------- signals and review
class SignalEvent(Event):
    STREAM: ClassVar[str] = "signals"
    type: Literal["signal.new"] = "signal.new"
    signal: Signal


class VerdictEvent(Event):
    STREAM: ClassVar[str] = "verdicts"
    type: Literal["review.verdict"] = "review.verdict"
    signal: Signal
    decision: Literal["approve", "caution", "reject"]
    reasons: list[str] = Field(default_factory=list)
    reviewed_by: list[str] = Field(default_factory=lambda: ["rules"])
    ai: dict[str, Any] = Field(default_factory=dict)
    concerns: list[str] = Field(default_factory=list)
    summary: str = ""
    premium_at_risk: Size = 0
    risk_pct: Size = 0


class ApprovalEvent(Event):
    STREAM: ClassVar[str] = "approvals"
    type: Literal["approval.decision"] = "approval.decision"
    signal: Signal
    decision: Literal["pending", "approved", "rejected", "expired"]
    qty: Count = 0
    decided_by: str
    policy: str
    verdict: str = ""
    explanation: str = ""
    expires_ts: EpochMs = 0  # pending cards: when the card expires (epoch ms)
    concerns: list[str] = Field(default_factory=list)
    ai_status: str = ""
    premium_at_risk: Size = 0
    risk_pct: Size = 0

    @model_validator(mode="after")
    def _approved_size(self) -> ApprovalEvent:
        """An approval trades 1..signal.qty contracts: never none, never more than was reviewed."""
        if self.decision == "approved" and not 0 < self.qty <= self.signal.qty:
            raise ValueError(f"approved qty {self.qty} must be within 1..{self.signal.qty} (the signal's size)")
        return self


# ---------------------------------------------------------------- execution
class OrderEvent(Event):
    STREAM: ClassVar[str] = "orders"
    type: Literal["order.update"] = "order.update"
    order_id: str
    purpose: Literal["entry", "exit"]
    status: str
    symbol: str
    expiry: str  # "" when a refused order described no option
    strike: Price  # 0 when a refused order described no option
    right: str
    side: str
    qty: Qty
    limit: PositivePrice | None = None
    filled_qty: Count = 0
    avg_price: Price | None = None
    reason: str = ""
    position_id: str | None = None


class OrderRequestEvent(Event):
    """Ask the execution service to trade: exits from the position manager, flatten, /close."""

    STREAM: ClassVar[str] = "order_requests"
    type: Literal["order.request"] = "order.request"
    request_id: str = Field(min_length=1)  # idempotency key
    position_id: str
    symbol: str = Field(min_length=1)
    expiry: IsoDate
    strike: PositivePrice
    right: Literal["C", "P"]
    multiplier: Qty = 100
    side: Literal["SELL"] = "SELL"  # the system only ever sells what it holds
    qty: Qty
    order_type: Literal["LMT", "MKT"] = "MKT"
    limit: PositivePrice | None = None
    reason: str = ""


class FillEvent(Event):
    STREAM: ClassVar[str] = "orders"
    type: Literal["order.fill"] = "order.fill"
    order_id: str
    fill_id: str
    purpose: Literal["entry", "exit"]
    symbol: str
    expiry: IsoDate
    strike: PositivePrice
    right: Literal["C", "P"]
    side: str
    qty: Qty
    price: Price
    commission: Size = 0
    slippage: Finite = 0
    mid_at_order: Price | None = None
    position_id: str | None = None
    strategy: str = ""


class PositionEvent(Event):
    STREAM: ClassVar[str] = "positions"
    type: Literal["position.update"] = "position.update"
    kind: Literal["entry", "stop_moved", "partial_exit", "closed"]
    position_id: str
    strategy: str
    symbol: str
    expiry: str = Field(min_length=1)  # ISO from the position manager; renderers take what they get
    strike: PositivePrice
    right: Literal["C", "P"]
    direction: str
    horizon: str
    qty: Count  # contracts in this event (bought, sold; 0 for stop moves)
    qty_open: Count
    price: Price | None = None  # fill price of this event
    entry_price: Price
    stop: Price | None = None
    targets: list[PositivePrice] = Field(default_factory=list)
    realized_pnl: Finite = 0  # cumulative for the position, after commissions
    reason: str = ""
    triggers: list[str] = Field(default_factory=list)
    confidence: Percent | None = None
    explanation: str = ""
    account_risk_pct: Finite | None = None
    analytics: dict[str, float | str | None] = Field(default_factory=dict)


# ---------------------------------------------------------------- overseer, control, outbound
class AlertEvent(Event):
    STREAM: ClassVar[str] = "alerts"
    type: Literal["alert"] = "alert"
    code: str
    severity: Literal["INFO", "WARNING", "CRITICAL"]
    state: Literal["raised", "cleared"]
    subject: str = ""
    message: str
    explanation: str = ""
    count: Count = 1


class ControlEvent(Event):
    STREAM: ClassVar[str] = "control"
    type: Literal["control"] = "control"
    action: Literal["halt", "resume", "flatten", "close", "cancel_entries", "set_policy", "strategy",
                    "report"]
    by: str
    reason: str = ""
    args: dict[str, Any] = Field(default_factory=dict)


class DeliveryEvent(Event):
    STREAM: ClassVar[str] = "deliveries"
    type: Literal["delivery"] = "delivery"
    channel: str
    tier: str
    event: str
    status: Literal["delivered", "retry", "dead_letter"]
    message_id: str | None = None
    reply_to: str | None = None
    payload_hash: str = ""
    text: str = ""
    attempts: Count = 1
    error: str = ""
    due_ts: EpochMs = 0


class ReportEvent(Event):
    STREAM: ClassVar[str] = "reports"
    type: Literal["report"] = "report"
    kind: Literal["premarket", "intraday", "close", "monthly"]  # monthly: the recap (reports/recap.py)
    status: Literal["built", "pending_approval", "approved", "rejected", "expired", "published"]
    path: str = ""
    summary: str = ""
    by: str = ""
    report_id: str = ""
    paths: dict[str, str] = Field(default_factory=dict)  # tier -> file


class AuditEvent(Event):
    STREAM: ClassVar[str] = "audit"
    type: Literal["audit"] = "audit"
    actor: str
    action: str
    detail: dict[str, Any] = Field(default_factory=dict)


def _not_crossed(q: Any) -> Any:
    """A quote's bid is never above its ask (bid == ask, a locked market, is a quote)."""
    if q.bid > q.ask:
        raise ValueError(f"crossed quote: bid {q.bid:g} > ask {q.ask:g}")
    return q


ALL_STREAMS: tuple[str, ...] = tuple(dict.fromkeys(cls.STREAM for cls in REGISTRY.values()))
