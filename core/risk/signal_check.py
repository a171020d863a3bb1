"""The tolerant signal check: any signal-like object reduced to plain values plus problems.

``read_signal(sig)`` accepts a validated :class:`core.domain.signal.Signal`, a
``model_construct``-ed one or a raw SIGNAL.json mapping, and never raises. It returns a
:class:`SignalView` whose fields are ``None`` where the input is missing or unusable, each such
problem worded in ``SignalView.problems`` (the risk rules report them as BAD_INPUT). It is
hand-written rather than pydantic so that a signal that fails validation can still be judged
on everything else (a SELL of a stock with a bad timestamp is still NOT_OPTION and NOT_LONG).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any

from core.domain.signal import Direction, Horizon
from core.risk.coerce import (
    MISSING,
    absent,
    as_aware,
    as_code,
    as_date,
    as_number,
    finite,
    get_field,
    positive,
)

_HORIZONS = {h.value for h in Horizon}
_DIRECTIONS = {d.value for d in Direction}


@dataclass
class InstrumentView:
    sec_type: str | None = None
    expiry: date | None = None
    strike: float | None = None
    right: str | None = None  # "C" / "P"
    multiplier: float | None = None

    def same_contract(self, other: InstrumentView) -> bool:
        return (self.sec_type, self.expiry, self.strike, self.right, self.multiplier) == (
            other.sec_type, other.expiry, other.strike, other.right, other.multiplier)


@dataclass
class LegView:
    inst: InstrumentView | None
    side: str | None
    ratio: float | None


@dataclass
class SignalView:
    """A signal (model, constructed model or raw dict) reduced to plain, typed values.

    ``None`` means missing or unusable; every such problem is in ``problems``.
    """

    problems: list[str] = field(default_factory=list)
    strategy: str | None = None
    symbol: str | None = None
    inst: InstrumentView | None = None
    legs: list[LegView] | None = None
    side: str | None = None
    qty: float | None = None
    limit: float | None = None
    stop: float | None = None
    targets: list[float | None] = field(default_factory=list)
    bid: float | None = None
    ask: float | None = None
    quote_ts: datetime | None = None
    ts: datetime | None = None
    horizon: str | None = None
    direction: str | None = None

    @property
    def option_direction(self) -> str | None:
        """Long call -> bullish, long put -> bearish; the stated direction otherwise."""
        if self.inst is not None and self.inst.right == "C":
            return Direction.BULLISH.value
        if self.inst is not None and self.inst.right == "P":
            return Direction.BEARISH.value
        return self.direction

    def premium(self) -> float | None:
        """qty x limit x multiplier, or None when any factor is unusable."""
        mult = self.inst.multiplier if self.inst is not None else None
        if not (positive(self.qty) and positive(self.limit) and positive(mult)):
            return None
        assert self.qty is not None and self.limit is not None and mult is not None
        return self.qty * self.limit * mult


def _parse_instrument(obj: Any, where: str, problems: list[str]) -> InstrumentView | None:
    if absent(obj):
        problems.append(f"{where} missing")
        return None
    if not isinstance(obj, Mapping) and get_field(obj, "type") is MISSING:
        problems.append(f"{where} is not an instrument: {type(obj).__name__}")
        return None
    inst = InstrumentView()
    t = get_field(obj, "type")
    if t is MISSING:
        inst.sec_type = "OPT"  # the model default
    else:
        inst.sec_type = as_code(t)
        if not inst.sec_type:
            problems.append(f"{where}.type invalid: {t!r}")
            inst.sec_type = None
    is_opt = inst.sec_type == "OPT"

    exp = get_field(obj, "expiry")
    inst.expiry, why = as_date(exp)
    if why is not None and (is_opt or not absent(exp)):
        problems.append(f"{where}.expiry {why}")

    raw_strike = get_field(obj, "strike")
    strike = as_number(raw_strike)
    if absent(raw_strike):
        if is_opt:
            problems.append(f"{where}.strike missing")
    elif strike is None:
        problems.append(f"{where}.strike not a number: {raw_strike!r}")
    elif not positive(strike):
        problems.append(f"{where}.strike must be a positive finite number, got {strike!r}")
    else:
        inst.strike = strike

    raw_right = get_field(obj, "right")
    r = as_code(raw_right)
    if absent(raw_right):
        if is_opt:
            problems.append(f"{where}.right missing")
    elif r in ("C", "CALL"):
        inst.right = "C"
    elif r in ("P", "PUT"):
        inst.right = "P"
    else:
        problems.append(f"{where}.right must be C or P, got {raw_right!r}")

    raw_mult = get_field(obj, "multiplier")
    if raw_mult is MISSING:
        inst.multiplier = 100.0
    else:
        m = as_number(raw_mult)
        if not positive(m) or not float(m).is_integer():  # type: ignore[arg-type]
            problems.append(f"{where}.multiplier must be a positive whole number, got {raw_mult!r}")
        else:
            inst.multiplier = m
    return inst


def read_signal(sig: Any) -> SignalView:
    """``sig`` reduced to a :class:`SignalView`; every unusable field is a worded problem."""
    v = SignalView()
    _read_identity(sig, v)
    v.inst = _parse_instrument(get_field(sig, "instrument"), "instrument", v.problems)
    _read_legs(sig, v)
    _read_order(sig, v)
    _read_quote(sig, v)
    _read_labels(sig, v)
    return v


def _read_identity(sig: Any, v: SignalView) -> None:
    """strategy, symbol, id and ts."""
    p = v.problems
    for name in ("strategy", "symbol"):
        raw = get_field(sig, name)
        if isinstance(raw, str) and raw.strip():
            setattr(v, name, raw.strip())
        elif absent(raw):
            p.append(f"{name} missing")
        else:
            p.append(f"{name} must be a non-empty string, got {raw!r}")
    raw_id = get_field(sig, "id")
    if absent(raw_id) or not isinstance(raw_id, str):
        p.append(f"id must be a string, got {None if raw_id is MISSING else raw_id!r}")

    v.ts, why = as_aware(get_field(sig, "ts"))
    if why:
        p.append(f"ts {why}")


def _read_legs(sig: Any, v: SignalView) -> None:
    """The optional legs: each one's instrument, side and ratio, and that a single leg is the signal's."""
    p = v.problems
    raw_legs = get_field(sig, "legs")
    if not absent(raw_legs):
        if isinstance(raw_legs, Sequence) and not isinstance(raw_legs, (str, bytes)):
            v.legs = []
            for i, leg in enumerate(raw_legs):
                where = f"legs[{i}]"
                inst = _parse_instrument(get_field(leg, "instrument"), f"{where}.instrument", p)
                side = get_field(leg, "side")
                side_c = as_code(side)
                if absent(side):
                    p.append(f"{where}.side missing")
                elif side_c not in ("BUY", "SELL"):
                    p.append(f"{where}.side must be BUY or SELL, got {side!r}")
                raw_ratio = get_field(leg, "ratio")
                ratio = 1.0 if raw_ratio is MISSING else as_number(raw_ratio)
                if not positive(ratio) or not float(ratio).is_integer():  # type: ignore[arg-type]
                    p.append(f"{where}.ratio must be a positive whole number, got {raw_ratio!r}")
                v.legs.append(LegView(inst=inst, side=side_c if not absent(side) else None, ratio=ratio))
            if len(v.legs) == 1 and v.legs[0].inst is not None and v.inst is not None \
                    and not v.legs[0].inst.same_contract(v.inst):
                p.append("legs[0] does not match the signal's instrument")
        else:
            p.append(f"legs must be a list, got {type(raw_legs).__name__}")


def _read_order(sig: Any, v: SignalView) -> None:
    """side, qty, limit, stop and targets, with stop below and targets above the limit."""
    p = v.problems
    raw_side = get_field(sig, "side")
    if raw_side is MISSING:
        v.side = "BUY"  # the model default
    else:
        v.side = as_code(raw_side)
        if v.side not in ("BUY", "SELL"):
            p.append(f"side must be BUY or SELL, got {raw_side!r}")

    raw_qty = get_field(sig, "qty")
    qty = as_number(raw_qty)
    if qty is None:
        p.append(f"qty {'missing' if absent(raw_qty) else f'not a number: {raw_qty!r}'}")
    elif not positive(qty) or not qty.is_integer():
        p.append(f"qty must be a positive whole number, got {raw_qty!r}")
    else:
        v.qty = qty

    raw_limit = get_field(sig, "limit")
    limit = as_number(raw_limit)
    if not positive(limit):
        p.append(f"limit must be a positive finite price, got {None if raw_limit is MISSING else raw_limit!r}")
    else:
        v.limit = limit

    raw_stop = get_field(sig, "stop")
    stop = as_number(raw_stop)
    if not finite(stop) or stop < 0:  # type: ignore[operator]
        p.append(f"stop must be a finite price >= 0, got {None if raw_stop is MISSING else raw_stop!r}")
    else:
        v.stop = stop
        if v.limit is not None and stop >= v.limit:  # type: ignore[operator]
            p.append(f"stop {stop:g} must be below limit {v.limit:g}")

    raw_targets = get_field(sig, "targets")
    if not absent(raw_targets):
        if isinstance(raw_targets, Sequence) and not isinstance(raw_targets, (str, bytes)):
            for i, t in enumerate(raw_targets):
                tv = as_number(t)
                if not finite(tv):
                    p.append(f"targets[{i}] must be a finite price, got {t!r}")
                    v.targets.append(None)
                    continue
                v.targets.append(tv)
                if v.limit is not None and tv <= v.limit:  # type: ignore[operator]
                    p.append(f"targets[{i}] {tv:g} must be above limit {v.limit:g}")
        else:
            p.append(f"targets must be a list, got {type(raw_targets).__name__}")


def _read_quote(sig: Any, v: SignalView) -> None:
    """quote bid, ask and ts; a crossed quote leaves bid and ask unknown."""
    p = v.problems
    quote = get_field(sig, "quote")
    if absent(quote):
        p.append("quote missing")
    else:
        raw_bid, raw_ask = get_field(quote, "bid"), get_field(quote, "ask")
        bid, ask = as_number(raw_bid), as_number(raw_ask)
        if not finite(bid) or bid < 0:  # type: ignore[operator]
            p.append(f"quote.bid must be a finite price >= 0, got {None if raw_bid is MISSING else raw_bid!r}")
        else:
            v.bid = bid
        if not positive(ask):
            p.append(f"quote.ask must be a positive finite price, got {None if raw_ask is MISSING else raw_ask!r}")
        else:
            v.ask = ask
        if v.bid is not None and v.ask is not None and v.bid > v.ask:
            p.append(f"crossed quote: bid {v.bid:g} > ask {v.ask:g}")
            v.bid = v.ask = None
        v.quote_ts, why = as_aware(get_field(quote, "ts"))
        if why:
            p.append(f"quote.ts {why}")


def _read_labels(sig: Any, v: SignalView) -> None:
    """confidence, horizon and direction, and that the direction agrees with the option's right."""
    p = v.problems
    raw_conf = get_field(sig, "confidence")
    if raw_conf is not MISSING:
        c = as_number(raw_conf)
        if not finite(c) or not 0 <= c <= 100:  # type: ignore[operator]
            p.append(f"confidence must be within 0..100, got {raw_conf!r}")

    raw_h = get_field(sig, "horizon")
    if not absent(raw_h):
        h = raw_h.value if isinstance(raw_h, Enum) else raw_h
        if isinstance(h, str) and h.strip().lower() in _HORIZONS:
            v.horizon = h.strip().lower()
        else:
            p.append(f"horizon must be one of {sorted(_HORIZONS)}, got {raw_h!r}")

    raw_d = get_field(sig, "direction")
    if not absent(raw_d):
        d = raw_d.value if isinstance(raw_d, Enum) else raw_d
        if isinstance(d, str) and d.strip().lower() in _DIRECTIONS:
            v.direction = d.strip().lower()
        else:
            p.append(f"direction must be one of {sorted(_DIRECTIONS)}, got {raw_d!r}")
    if v.direction is not None and v.inst is not None and v.inst.right is not None \
            and v.direction != v.option_direction:
        p.append(f"direction {v.direction} contradicts a long {'call' if v.inst.right == 'C' else 'put'}")

