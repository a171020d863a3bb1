"""Sweep detection from a sequence of trade prints.

A *sweep* is an aggressive order that takes liquidity across several price levels
and/or exchanges almost at once. Given prints (any order), for each aggressor side
``'B'`` (bought at/near the ask) and ``'S'`` (sold at/near the bid) separately:

1. sort that side's prints by time (unknown side ``'?'`` is ignored);
2. group them greedily: a group starts at the first unassigned print and takes
   every later same-side print with ``ts_ms - start_ts <= window_ms``;
3. a group is a sweep when it has at least ``min_prints`` prints, spans at least
   ``min_levels`` distinct prices **or** at least ``min_exchanges`` distinct
   exchanges, and its total size is at least ``min_size``.

Prints of the other side in between do not break a group (other participants
trade at the same time). Sweeps are returned in start-time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Sweep", "SweepParams", "TradePrint", "detect_sweeps"]

Side = Literal["B", "S", "?"]


@dataclass(frozen=True, slots=True)
class TradePrint:
    """One trade print: epoch ms, price, size (contracts/shares), aggressor side, venue."""

    ts_ms: int
    price: float
    size: float
    side: Side
    exchange: str


@dataclass(frozen=True, slots=True)
class SweepParams:
    """Detection thresholds (see module docstring)."""

    window_ms: int = 500
    min_prints: int = 2
    min_levels: int = 2
    min_exchanges: int = 2
    min_size: float = 100.0


@dataclass(frozen=True, slots=True)
class Sweep:
    """A detected sweep. ``notional`` is sum(price * size) (times no multiplier)."""

    side: Literal["B", "S"]
    start_ms: int
    end_ms: int
    n_prints: int
    total_size: float
    notional: float
    vwap: float
    low_price: float
    high_price: float
    levels: int
    exchanges: tuple[str, ...]


def _make_sweep(side: Literal["B", "S"], group: list[TradePrint]) -> Sweep:
    size = sum(p.size for p in group)
    notional = sum(p.price * p.size for p in group)
    return Sweep(
        side=side,
        start_ms=group[0].ts_ms,
        end_ms=group[-1].ts_ms,
        n_prints=len(group),
        total_size=size,
        notional=notional,
        vwap=notional / size if size > 0 else float("nan"),
        low_price=min(p.price for p in group),
        high_price=max(p.price for p in group),
        levels=len({p.price for p in group}),
        exchanges=tuple(sorted({p.exchange for p in group})),
    )


def detect_sweeps(prints: list[TradePrint], params: SweepParams | None = None) -> list[Sweep]:
    """Find sweeps in ``prints`` (any order). Prints with size <= 0 are ignored."""
    p = params or SweepParams()
    found: list[Sweep] = []
    for side in ("B", "S"):
        seq = sorted((t for t in prints if t.side == side and t.size > 0), key=lambda t: t.ts_ms)
        i = 0
        while i < len(seq):
            j = i + 1
            while j < len(seq) and seq[j].ts_ms - seq[i].ts_ms <= p.window_ms:
                j += 1
            group = seq[i:j]
            if len(group) >= p.min_prints:
                sweep = _make_sweep(side, group)
                spread_out = sweep.levels >= p.min_levels or len(sweep.exchanges) >= p.min_exchanges
                if spread_out and sweep.total_size >= p.min_size:
                    found.append(sweep)
            i = j
    found.sort(key=lambda s: (s.start_ms, s.side))
    return found
