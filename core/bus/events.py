"""Typed events. One model per event type; every event carries ``id``, ``ts``
(UTC epoch ms), ``type`` and the ``correlation_id`` that follows a trade from
signal -> review -> approval -> order -> fill -> position updates -> posts.

Each event family has its own stream (``STREAM``). On the wire an entry is
``{"t": <type>, "d": <json of the model>}``; :func:`decode` turns it back into
the right class and raises :class:`BadEvent` for anything malformed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.domain.signal import Signal

NY = ZoneInfo("America/New_York")
REGISTRY: dict[str, type[Event]] = {}


class BadEvent(ValueError):
    """A stream entry that is not a valid event (counted and dead-lettered by consumers)."""


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    STREAM: ClassVar[str] = ""
    type: str
    id: str
    ts: int = Field(ge=0)
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
    bid: float
    ask: float
    last: float
    bid_size: float = 0
    ask_size: float = 0
    volume: float = 0
    quote_ts: int  # source timestamp (ms); differs from ts when a feed is stale
    depth_bid: list[tuple[float, float]] = Field(default_factory=list)  # (price, size) best first
    depth_ask: list[tuple[float, float]] = Field(default_factory=list)
    feed: str = "sim"


class ChainEvent(Event):
    STREAM: ClassVar[str] = "chains"
    type: Literal["market.chain"] = "market.chain"
    symbol: str
    spot: float
    asof: int
    snapshot_key: str
    contracts: int
    feed: str = "sim"


class FlowEvent(Event):
    """Trade prints summary and vendor-style flow (alerts, net premium) for one symbol."""

    STREAM: ClassVar[str] = "flow"
    type: Literal["market.flow"] = "market.flow"
    symbol: str
    buy_volume: float = 0
    sell_volume: float = 0
    sweeps: int = 0
    blocks: int = 0
    net_call_premium: float = 0
    net_put_premium: float = 0
    dark_buy_volume: float = 0
    dark_sell_volume: float = 0
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    price_change: float = 0
    volume: float = 0
    last: float = 0


class OptionQuoteEvent(Event):
    """Quote of one watched option contract (working orders, open positions), every tick."""

    STREAM: ClassVar[str] = "option_quotes"
    type: Literal["market.option_quote"] = "market.option_quote"
    symbol: str
    contract_key: str
    expiry: str
    strike: float
    right: str
    bid: float
    ask: float
    bid_size: float = 0
    ask_size: float = 0
    quote_ts: int
    underlying: float = 0


class ImbalanceEvent(Event):
    STREAM: ClassVar[str] = "flow"
    type: Literal["market.imbalance"] = "market.imbalance"
    symbol: str
    side: Literal["buy", "sell", "none"]
    shares: float
    paired: float = 0
    indicative_price: float = 0
    confidence: float = 0  # 0-100


# ---------------------------------------------------------------- analytics
class AnalyticsEvent(Event):
    STREAM: ClassVar[str] = "analytics"
    type: Literal["analytics.snapshot"] = "analytics.snapshot"
    snapshot_id: str
    symbol: str
    spot: float
    asof: int
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
    contracts_used: int = 0
    contracts_rejected: int = 0
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
    premium_at_risk: float = 0
    risk_pct: float = 0


class ApprovalEvent(Event):
    STREAM: ClassVar[str] = "approvals"
    type: Literal["approval.decision"] = "approval.decision"
    signal: Signal
    decision: Literal["pending", "approved", "rejected", "expired"]
    qty: int = 0
    decided_by: str
    policy: str
    verdict: str = ""
    explanation: str = ""
    expires_ts: int = 0  # pending cards: when the card expires (epoch ms)
    concerns: list[str] = Field(default_factory=list)
    ai_status: str = ""
    premium_at_risk: float = 0
    risk_pct: float = 0


# ---------------------------------------------------------------- execution
class OrderEvent(Event):
    STREAM: ClassVar[str] = "orders"
    type: Literal["order.update"] = "order.update"
    order_id: str
    purpose: Literal["entry", "exit"]
    status: str
    symbol: str
    expiry: str
    strike: float
    right: str
    side: str
    qty: int
    limit: float | None = None
    filled_qty: int = 0
    avg_price: float | None = None
    reason: str = ""
    position_id: str | None = None


class OrderRequestEvent(Event):
    """Ask the execution service to trade: exits from the position manager, flatten, /close."""

    STREAM: ClassVar[str] = "order_requests"
    type: Literal["order.request"] = "order.request"
    request_id: str  # idempotency key
    position_id: str
    symbol: str
    expiry: str
    strike: float
    right: str
    multiplier: int = 100
    side: Literal["SELL"] = "SELL"  # the system only ever sells what it holds
    qty: int
    order_type: Literal["LMT", "MKT"] = "MKT"
    limit: float | None = None
    reason: str = ""


class FillEvent(Event):
    STREAM: ClassVar[str] = "orders"
    type: Literal["order.fill"] = "order.fill"
    order_id: str
    fill_id: str
    purpose: Literal["entry", "exit"]
    symbol: str
    expiry: str
    strike: float
    right: str
    side: str
    qty: int
    price: float
    commission: float = 0
    slippage: float = 0
    mid_at_order: float | None = None
    position_id: str | None = None
    strategy: str = ""


class PositionEvent(Event):
    STREAM: ClassVar[str] = "positions"
    type: Literal["position.update"] = "position.update"
    kind: Literal["entry", "stop_moved", "partial_exit", "closed"]
    position_id: str
    strategy: str
    symbol: str
    expiry: str
    strike: float
    right: str
    direction: str
    horizon: str
    qty: int  # contracts in this event (bought, sold; 0 for stop moves)
    qty_open: int
    price: float | None = None  # fill price of this event
    entry_price: float
    stop: float | None = None
    targets: list[float] = Field(default_factory=list)
    realized_pnl: float = 0  # cumulative for the position, after commissions
    reason: str = ""
    triggers: list[str] = Field(default_factory=list)
    confidence: float | None = None
    explanation: str = ""
    account_risk_pct: float | None = None
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
    count: int = 1


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
    attempts: int = 1
    error: str = ""
    due_ts: int = 0


class ReportEvent(Event):
    STREAM: ClassVar[str] = "reports"
    type: Literal["report"] = "report"
    kind: Literal["premarket", "intraday", "close"]
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


ALL_STREAMS: tuple[str, ...] = tuple(dict.fromkeys(cls.STREAM for cls in REGISTRY.values()))
