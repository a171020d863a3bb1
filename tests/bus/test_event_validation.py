"""Every constraint of the event models, at ``decode``: a bad value is a BadEvent (which the
consumer counts and dead-letters), a good one round-trips. Plus a property: no NaN, infinity
or negative price, and no quantity <= 0, ever decodes."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.bus.events import (
    AnalyticsEvent,
    ApprovalEvent,
    BadEvent,
    ChainEvent,
    Event,
    FillEvent,
    FlowEvent,
    ImbalanceEvent,
    OptionQuoteEvent,
    OrderEvent,
    OrderRequestEvent,
    PositionEvent,
    QuoteEvent,
    decode,
    encode,
)
from core.domain.contract import OptionContract, Right
from core.domain.signal import Quote, Signal

T = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
MS = int(T.timestamp() * 1000)
C = OptionContract(symbol="SPY", expiry=date(2026, 12, 3), strike=590.0, right=Right.CALL)
SIG = Signal(id="s1", ts=T, strategy="gamma_0dte", symbol="SPY", instrument=C.instrument(), qty=4, limit=1.2,
             quote=Quote(bid=1.19, ask=1.21, ts=T), stop=0.6, targets=[1.8, 2.4])
BASE = {"id": "e1", "ts": MS, "correlation_id": "c"}
OPT = {"symbol": "SPY", "expiry": "2026-12-03", "strike": 590.0, "right": "C"}

GOOD: dict[str, Event] = {
    "quote": QuoteEvent(**BASE, symbol="SPY", bid=590.01, ask=590.03, last=590.02, bid_size=3, ask_size=2,
                        volume=10, quote_ts=MS, depth_bid=[(590.01, 100.0)], depth_ask=[(590.03, 100.0)]),
    "option_quote": OptionQuoteEvent(**BASE, contract_key=C.key, **OPT, bid=1.19, ask=1.21, quote_ts=MS),
    "chain": ChainEvent(**BASE, symbol="SPY", spot=590.0, asof=MS, snapshot_key="k", contracts=10),
    "flow": FlowEvent(**BASE, symbol="SPY", buy_volume=5, net_put_premium=-1e6, price_change=-0.2, last=590),
    "imbalance": ImbalanceEvent(**BASE, symbol="SPY", side="buy", shares=1e5, confidence=60),
    "analytics": AnalyticsEvent(**BASE, snapshot_id="s", symbol="SPY", spot=590.0, asof=MS, gex_total=-1e9,
                                features={"a": 1.0}),
    "approval": ApprovalEvent(**BASE, signal=SIG, decision="approved", qty=4, decided_by="u", policy="manual"),
    "order": OrderEvent(**BASE, order_id="o", purpose="entry", status="working", **OPT, side="BUY", qty=4,
                        limit=1.2),
    "request": OrderRequestEvent(**BASE, request_id="r", position_id="p", **OPT, qty=2),
    "fill": FillEvent(**BASE, order_id="o", fill_id="f", purpose="entry", **OPT, side="BUY", qty=4, price=1.2),
    "position": PositionEvent(**BASE, kind="entry", position_id="p", strategy="g", **OPT, direction="bullish",
                              horizon="0dte", qty=4, qty_open=4, price=1.2, entry_price=1.2, stop=0.6,
                              targets=[1.8]),
}

NAN, INF = float("nan"), float("inf")
# (event, dotted path, bad value): each must fail decode
BAD: list[tuple[str, str, Any]] = [
    # every event: times in epoch ms 1970..2100, an id
    ("quote", "ts", -1), ("quote", "ts", 10**16), ("quote", "id", ""),
    # quotes: finite prices >= 0, not crossed, sizes >= 0, a sane source time
    ("quote", "bid", NAN), ("quote", "ask", INF), ("quote", "last", -0.01), ("quote", "bid", 590.04),
    ("quote", "bid_size", -1), ("quote", "volume", NAN), ("quote", "quote_ts", -5),
    ("quote", "depth_bid", [[NAN, 1.0]]), ("quote", "depth_ask", [[590.03, -1.0]]),
    ("option_quote", "bid", -0.05), ("option_quote", "ask", NAN), ("option_quote", "bid", 1.22),
    ("option_quote", "strike", 0), ("option_quote", "right", "X"), ("option_quote", "expiry", "Dec 3"),
    ("option_quote", "ask_size", INF), ("option_quote", "underlying", -1),
    ("chain", "spot", NAN), ("chain", "contracts", -1), ("chain", "asof", -1),
    ("flow", "buy_volume", -1), ("flow", "sweeps", -1), ("flow", "net_call_premium", INF),
    ("flow", "last", -1), ("flow", "price_change", NAN),
    ("imbalance", "shares", -1), ("imbalance", "confidence", 101), ("imbalance", "side", "up"),
    ("analytics", "spot", -1), ("analytics", "gex_total", NAN), ("analytics", "features", {"a": INF}),
    ("analytics", "gex_by_strike", {"590": NAN}), ("analytics", "contracts_used", -1),
    # approvals: 1..signal.qty when approving; the embedded signal's own constraints
    ("approval", "qty", -5), ("approval", "qty", 0), ("approval", "qty", 5), ("approval", "decision", "maybe"),
    ("approval", "signal.qty", 0), ("approval", "signal.limit", NAN), ("approval", "signal.limit", 0),
    ("approval", "signal.stop", -1), ("approval", "signal.targets", [0.0]), ("approval", "signal.targets", [INF]),
    ("approval", "signal.quote.bid", -0.01), ("approval", "signal.quote.ask", 0),
    ("approval", "signal.quote.bid", 1.3), ("approval", "signal.confidence", 101),
    ("approval", "signal.instrument.strike", -590), ("approval", "signal.instrument.multiplier", 0),
    ("approval", "signal.side", "SHORT"), ("approval", "premium_at_risk", NAN), ("approval", "expires_ts", -1),
    # orders, requests, fills, positions
    ("order", "qty", 0), ("order", "limit", -1.2), ("order", "filled_qty", -1), ("order", "strike", NAN),
    ("request", "qty", -5), ("request", "qty", 0), ("request", "limit", NAN), ("request", "limit", 0),
    ("request", "strike", -590), ("request", "right", "CALL"), ("request", "expiry", "20261203"),
    ("request", "multiplier", 0), ("request", "side", "BUY"), ("request", "order_type", "STP"),
    ("fill", "qty", 0), ("fill", "price", NAN), ("fill", "price", -1), ("fill", "commission", -1),
    ("fill", "strike", 0),
    ("position", "qty", -1), ("position", "qty_open", -1), ("position", "entry_price", NAN),
    ("position", "stop", -1), ("position", "targets", [0.0]), ("position", "realized_pnl", INF),
    ("position", "confidence", 101), ("position", "kind", "opened"),
]


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *head, last = path.split(".")
    node = body
    for part in head:
        node = node[part]
    node[last] = value
    return body


def _wire(ev: Event, path: str | None = None, value: Any = None) -> dict[str, str]:
    body = json.loads(ev.model_dump_json())
    if path is not None:
        _set(body, path, value)
    return {"t": ev.type, "d": json.dumps(body)}  # NaN / Infinity as JSON literals, as a poisoner writes them


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_events_round_trip(name: str) -> None:
    ev = GOOD[name]
    assert decode(encode(ev)) == ev
    assert decode(_wire(ev)) == ev


@pytest.mark.parametrize(("name", "path", "value"), BAD, ids=[f"{n}.{p}={v!r}" for n, p, v in BAD])
def test_bad_value_fails_decode(name: str, path: str, value: Any) -> None:
    with pytest.raises(BadEvent):
        decode(_wire(GOOD[name], path, value))


@pytest.mark.parametrize(("name", "path", "value"), [b for b in BAD if "." not in b[1] and b[1] != "id"][:12])
def test_a_producer_cannot_build_a_bad_event(name: str, path: str, value: Any) -> None:
    """Construction refuses too (``tx.emit`` fails before anything is queued)."""
    body = json.loads(GOOD[name].model_dump_json())
    body[path] = value
    with pytest.raises(ValueError):
        type(GOOD[name])(**body)


def test_zero_bid_and_locked_quotes_are_quotes() -> None:
    """Deep OTM options are bid at 0; bid == ask is a locked market, not a crossed one."""
    for path, value in (("bid", 0.0), ("bid", 1.21)):
        assert getattr(decode(_wire(GOOD["option_quote"], path, value)), path) == value
    assert decode(_wire(GOOD["approval"], "signal.quote.bid", 0.0)).signal.quote.bid == 0.0
    for decision in ("pending", "rejected", "expired"):  # only an approval needs a size
        body = json.loads(GOOD["approval"].model_dump_json())
        body.update(decision=decision, qty=0)
        assert decode({"t": "approval.decision", "d": json.dumps(body)}).qty == 0


def test_non_options_can_still_be_described_for_the_guard_to_refuse() -> None:
    """An equity or a short still validates: the risk layer and the broker guard refuse it by reason."""
    for path, value in (("signal.instrument", {"type": "STK"}), ("signal.side", "SELL")):
        decode(_wire(GOOD["approval"], path, value))


# ---------------------------------------------------------------- property
PRICE_PATHS = [("quote", "bid"), ("quote", "ask"), ("quote", "last"), ("option_quote", "bid"),
               ("option_quote", "ask"), ("option_quote", "strike"), ("approval", "signal.limit"),
               ("approval", "signal.stop"), ("approval", "signal.quote.bid"), ("approval", "signal.quote.ask"),
               ("request", "limit"), ("request", "strike"), ("fill", "price"), ("order", "limit"),
               ("position", "entry_price"), ("position", "price"), ("chain", "spot"), ("analytics", "spot")]
QTY_PATHS = [("approval", "qty"), ("approval", "signal.qty"), ("request", "qty"), ("fill", "qty"),
             ("order", "qty"), ("request", "multiplier")]
bad_price = st.one_of(st.sampled_from([NAN, INF, -INF]),
                      st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False))


@settings(max_examples=300, deadline=None)
@given(target=st.sampled_from(PRICE_PATHS), value=bad_price)
def test_no_nan_inf_or_negative_price_decodes(target: tuple[str, str], value: float) -> None:
    name, path = target
    with pytest.raises(BadEvent):
        decode(_wire(GOOD[name], path, value))


@settings(max_examples=200, deadline=None)
@given(target=st.sampled_from(QTY_PATHS), value=st.integers(max_value=0))
def test_no_non_positive_quantity_decodes(target: tuple[str, str], value: int) -> None:
    name, path = target
    with pytest.raises(BadEvent):
        decode(_wire(GOOD[name], path, value))


@settings(max_examples=200, deadline=None)
@given(bid=st.floats(min_value=0, max_value=1e6), ask=st.floats(min_value=0, max_value=1e6))
def test_a_quote_decodes_only_if_its_bid_is_not_above_its_ask(bid: float, ask: float) -> None:
    wire = _wire(GOOD["option_quote"], "bid", bid)
    body = json.loads(wire["d"])
    body["ask"] = ask
    wire["d"] = json.dumps(body)
    if bid <= ask:
        assert decode(wire).bid == bid and math.isfinite(decode(wire).ask)
    else:
        with pytest.raises(BadEvent):
            decode(wire)
