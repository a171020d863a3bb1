"""Rolling in-memory history of analytics values, per symbol.

Each :class:`HistoryPoint` keeps the numbers of one :class:`AnalyticsEvent` that the
strategies look back at: ``spot``, ``obi_l1``, ``obi_l5``, ``vpin``, ``zero_gamma``,
``max_gamma_strike`` and every finite ``features`` value (``rr25_1dte``,
``flow_buy_ratio_5m``, ...). Points are ordered by the snapshot's ``asof`` (ms) and
de-duplicated by ``snapshot_id``, so rebuilding from the analytics stream after a
restart (``SignalService.start``) and then seeing the same events again is harmless.

Queries always take an upper bound (``until_ms``, exclusive) so a strategy compares
the current snapshot with what came *before* it, whatever the insertion order.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from core.bus.events import AnalyticsEvent

__all__ = ["HistoryBook", "HistoryPoint", "SeriesStats", "SymbolHistory", "point_from_event"]

TOP_LEVEL = ("obi_l1", "obi_l5", "vpin", "zero_gamma", "max_gamma_strike", "gex_total", "dex_total")


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    ts_ms: int
    snapshot_id: str
    spot: float
    values: Mapping[str, float] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        if name == "spot":
            return self.spot
        return self.values.get(name)


@dataclass(frozen=True, slots=True)
class SeriesStats:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    last: float


def _finite(x: object) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def point_from_event(ev: AnalyticsEvent) -> HistoryPoint | None:
    """The history point of a snapshot; None when its spot/asof is unusable."""
    spot = _finite(ev.spot)
    if spot is None or spot <= 0 or ev.asof <= 0:
        return None
    values: dict[str, float] = {}
    for name in TOP_LEVEL:
        v = _finite(getattr(ev, name, None))
        if v is not None:
            values[name] = v
    for name, raw in sorted(ev.features.items()):
        v = _finite(raw)
        if v is not None:
            values[name] = v
    return HistoryPoint(ts_ms=int(ev.asof), snapshot_id=ev.snapshot_id, spot=spot, values=values)


class SymbolHistory:
    """Points of one symbol, sorted by time, bounded by count and age."""

    def __init__(self, maxlen: int = 2000, max_age_s: float = 3 * 86_400) -> None:
        self.maxlen = maxlen
        self.max_age_ms = int(max_age_s * 1000)
        self._keys: list[tuple[int, str]] = []
        self._points: list[HistoryPoint] = []
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._points)

    def __iter__(self) -> Iterator[HistoryPoint]:
        return iter(self._points)

    def add(self, point: HistoryPoint) -> bool:
        """Insert in time order; False if this snapshot is already held."""
        if point.snapshot_id in self._ids:
            return False
        key = (point.ts_ms, point.snapshot_id)
        i = bisect.bisect_right(self._keys, key)
        self._keys.insert(i, key)
        self._points.insert(i, point)
        self._ids.add(point.snapshot_id)
        self._trim()
        return True

    def holds(self, snapshot_id: str) -> bool:
        return snapshot_id in self._ids

    def discard(self, snapshot_id: str) -> None:
        """Take a snapshot's point out again (its handling failed and will be retried)."""
        if snapshot_id in self._ids:
            i = next(i for i, (_ts, sid) in enumerate(self._keys) if sid == snapshot_id)
            del self._keys[i]
            del self._points[i]
            self._ids.discard(snapshot_id)

    def _trim(self) -> None:
        newest = self._keys[-1][0] if self._keys else 0
        drop = 0
        while drop < len(self._points) and (
                len(self._points) - drop > self.maxlen or newest - self._keys[drop][0] > self.max_age_ms):
            drop += 1
        if drop:
            for p in self._points[:drop]:
                self._ids.discard(p.snapshot_id)
            del self._points[:drop]
            del self._keys[:drop]

    def window(self, since_ms: int | None = None, until_ms: int | None = None) -> list[HistoryPoint]:
        """Points with ``since_ms <= ts < until_ms`` (either bound optional)."""
        lo = 0 if since_ms is None else bisect.bisect_left(self._keys, (since_ms, ""))
        hi = len(self._keys) if until_ms is None else bisect.bisect_left(self._keys, (until_ms, ""))
        return self._points[lo:hi]

    def series(self, name: str, since_ms: int | None = None, until_ms: int | None = None) -> list[float]:
        out = []
        for p in self.window(since_ms, until_ms):
            v = p.get(name)
            if v is not None:
                out.append(v)
        return out

    def stats(self, name: str, since_ms: int | None = None,
              until_ms: int | None = None) -> SeriesStats | None:
        """Mean / sample std of ``name`` over the window; None with fewer than 2 values."""
        xs = self.series(name, since_ms, until_ms)
        n = len(xs)
        if n < 2:
            return None
        mean = math.fsum(xs) / n
        var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
        return SeriesStats(n=n, mean=mean, std=math.sqrt(max(var, 0.0)), last=xs[-1])

    def last_before(self, until_ms: int, max_age_ms: int | None = None) -> HistoryPoint | None:
        pts = self.window(None if max_age_ms is None else until_ms - max_age_ms, until_ms)
        return pts[-1] if pts else None


class HistoryBook:
    """``symbol -> SymbolHistory``."""

    def __init__(self, maxlen: int = 2000, max_age_s: float = 3 * 86_400) -> None:
        self.maxlen = maxlen
        self.max_age_s = max_age_s
        self._by_symbol: dict[str, SymbolHistory] = {}

    def get(self, symbol: str) -> SymbolHistory:
        h = self._by_symbol.get(symbol)
        if h is None:
            h = self._by_symbol[symbol] = SymbolHistory(self.maxlen, self.max_age_s)
        return h

    def add_event(self, ev: AnalyticsEvent) -> bool:
        p = point_from_event(ev)
        return False if p is None else self.get(ev.symbol).add(p)

    def symbols(self) -> list[str]:
        return sorted(self._by_symbol)
